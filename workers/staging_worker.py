"""The ``staging`` worker: sleep staging of whole recordings with YASA.

A process of its own because a night is seconds of CPU (reading the file, resampling, YASA's
features and its LightGBM classifier) and hundreds of MB of memory, neither of which belongs
on the server's hub; and a recording that breaks the stager takes only this process down, while
the supervisor starts a new one. Jobs run one at a time, in the order they were sent; the
result goes to SQLite before the server hears of it, so an answer never waits on a second trip.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .protocol.base import Shutdown
from .protocol.staging import PrepareStaging, SessionStaged, StageSession, StagingProgress
from .runner import Channel

logger = logging.getLogger("miso.staging_worker")


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.staging_worker:run``).

    ``options``: ``database_path`` (the shared SQLite file).
    """
    from miso_runtime.neuro.recording import ensure_brainflow_loadable
    from miso_runtime.store.database import open_database
    from miso_runtime.store.sleep import SleepRepository

    ensure_brainflow_loadable()
    repository = SleepRepository(open_database(Path(options["database_path"]), run_migrations=False))
    try:
        while True:
            command = channel.receive(1.0)
            if isinstance(command, Shutdown):
                break
            if isinstance(command, StageSession):
                _stage(command, repository, channel.send)
            elif isinstance(command, PrepareStaging):
                threading.Thread(target=_prepare, daemon=True, name="prepare").start()
            elif command is not None:
                logger.warning("staging worker ignores %s", type(command).__name__)
    except EOFError:
        pass
    logger.info("staging worker %d exiting", os.getpid())


def _prepare() -> None:
    """Import YASA beside the command loop (a job that starts meanwhile waits on the import lock)."""
    from miso_runtime.sleep.yasa_stager import load_yasa

    took = load_yasa()
    if took > 0.05:
        logger.info("YASA loaded in %.1f s", took)


def _stage(command: StageSession, repository: Any, send: Callable[[Any], None]) -> None:
    from miso_runtime import constants
    from miso_runtime.sleep.yasa_stager import StagingError, stage_recording
    from miso_runtime.store.sleep import StagingKey, StagingStatus

    key = StagingKey(command.session_id, constants.SLEEP_METHOD_YASA, command.version, command.channel_request)
    began = time.perf_counter()
    last = {"reading": -1.0}

    def progress(phase: str, fraction: float) -> None:
        if phase == "reading" and fraction - last["reading"] < constants.SLEEP_PROGRESS_STEP and fraction < 1.0:
            return
        last[phase] = fraction
        send(StagingProgress(command.job_id, command.session_id, phase, fraction))

    outcome: dict[str, Any] = {"status": StagingStatus.FAILED, "night": None}
    try:
        staged = stage_recording(
            Path(command.recording_path),
            command.board_id,
            command.channel_names,
            command.channel_request,
            progress,
            expected_samples=command.session_n_samples,
        )
    except StagingError as exc:
        logger.info("session %s not staged: %s (%s)", command.session_id, exc.message, exc.code)
        outcome.update(code=exc.code, message=exc.message)
    except Exception as exc:  # noqa: BLE001 - reported, not stored: the next request tries again
        logger.exception("staging session %s failed", command.session_id)
        elapsed = (time.perf_counter() - began) * 1000.0
        send(
            SessionStaged(
                command.job_id, command.session_id, 0, StagingStatus.FAILED, "staging_failed", str(exc), 0, elapsed
            )
        )
        return
    else:
        send(StagingProgress(command.job_id, command.session_id, "storing", 0.0))
        truncated = staged.n_samples < command.session_n_samples
        outcome.update(
            status=StagingStatus.STAGED,
            night=staged.night,
            channel=staged.channel,
            channel_reason=staged.channel_reason,
            recorded_s=staged.recorded_s,
            truncated=truncated,
        )
        if truncated:
            outcome.update(
                code="recording_truncated",
                message=f"the recording holds {staged.recorded_s:.0f} s of the session's {command.expected_s:.0f} s",
            )
    elapsed = (time.perf_counter() - began) * 1000.0
    try:
        staging_id = repository.save(
            key,
            n_samples=command.session_n_samples,
            epoch_s=constants.SLEEP_EPOCH_S,
            expected_s=command.expected_s,
            elapsed_ms=elapsed,
            **outcome,
        )
    except sqlite3.IntegrityError:  # the session was deleted while it was being staged
        message = "the session was deleted while it was being staged"
        send(
            SessionStaged(
                command.job_id, command.session_id, 0, StagingStatus.FAILED, "session_deleted", message, 0, elapsed
            )
        )
        return
    night = outcome["night"]
    timings = None
    if night is not None:
        logger.info("session %s staged: %d epochs in %.1f s", command.session_id, len(night), elapsed / 1000)
        timings = {name: round(seconds * 1000.0, 1) for name, seconds in staged.timings_s.items()}
        timings["store"] = round(elapsed - sum(timings.values()), 1)
    send(
        SessionStaged(
            command.job_id,
            command.session_id,
            staging_id,
            outcome["status"],
            outcome.get("code"),
            outcome.get("message"),
            0 if night is None else len(night),
            elapsed,
            timings,
        )
    )

"""Sleep staging as the faces see it: ``POST /v1/analysis/sleep``, the hypnogram and the settings.

YASA stagings are computed by the ``staging`` worker, one whole session at a time (YASA's
features are smoothed and normalised over the whole night, so a session is staged whole and
a range is cut out of it afterwards), and stored; a request answers from the store and sends
jobs only for sessions that have no staging under the current key. A session of at least
:data:`~miso_runtime.constants.SLEEP_AUTO_STAGE_MIN_S` is staged as soon as it ends, so the
route usually finds it done. Jobs are shared: a request for a session that is already being
staged waits for that job; a request that gives up (its client left, or the wait ran out)
leaves the job running, and its result is stored for the next one. Jobs a dead worker was
running are sent again when it is back, up to :data:`~miso_runtime.constants.SLEEP_JOB_MAX_ATTEMPTS`
times.

The ``thresholds`` method needs no worker: it is the daemon's rule over stored epoch rows,
computed per request (a range of a night is a few thousand rows).

Plain ``threading`` only: in the server those primitives are gevent's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from workers.protocol.base import WorkerStarted
from workers.protocol.capture import CaptureEnded, EpochStored
from workers.protocol.staging import PrepareStaging, SessionStaged, StageSession, StagingProgress

from .. import constants
from ..errors import MisoError
from ..neuro.boards import BoardError, BoardParams, layout_of
from ..neuro.history import check_range
from ..settings_files import SettingsFile
from ..store.database import ConnectionPerThread
from ..store.eeg import EpochRepository, SessionRecord, SessionRepository, SessionStatus
from ..store.sleep import SleepRepository, StagingKey, StagingRecord, StagingStatus, StoredEpoch
from .channels import pick_channel
from .settings import SleepConfig
from .statistics import STAGE_CODES, sleep_statistics
from .thresholds import THRESHOLDS_VERSION, median_gap_epoch_secs, stage_epochs
from .yasa_stager import yasa_method_version

logger = logging.getLogger(__name__)

Publish = Callable[..., Any]

#: Failures that staging again cannot mend (a new key, e.g. another channel, can).
PERMANENT_FAILURES = frozenset(
    {"too_short", "sample_rate_too_low", "channel_not_found", "no_channels", "recording_unreadable"}
)


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


@dataclass
class _Job:
    command: StageSession
    done: threading.Event = field(default_factory=threading.Event)
    attempts: int = 0
    sent: bool = False
    outcome: SessionStaged | None = None


@dataclass
class SleepAnswer:
    """What a range resolves to: the epochs in it and how each session fared."""

    method: str
    version: str
    epochs: list[dict[str, Any]]
    epoch_secs: float
    sessions: list[dict[str, Any]]


class SleepService:
    def __init__(
        self,
        worker: CommandSink,
        store: ConnectionPerThread,
        config: SettingsFile[SleepConfig],
        data_dir: Path,
        publish: Publish,
        running_session_id: Callable[[], str | None],
    ) -> None:
        self._worker = worker
        self._store = store
        self.config = config
        self._data_dir = data_dir
        self._publish = publish
        self._running = running_session_id
        self.yasa_version = yasa_method_version()
        self._lock = threading.Lock()
        self._jobs: dict[StagingKey, _Job] = {}
        #: The first epoch start (UTC ms) of the session recording now, and whether the worker
        #: was asked to load YASA since it last started.
        self._recording_since: tuple[str, int] | None = None
        self._prepared = False

    # --- the route ----------------------------------------------------------------------------

    def resolve(
        self,
        start_utc: float,
        end_utc: float,
        method: str | None = None,
        channel: str | None = None,
        wait_s: float = constants.SLEEP_REQUEST_WAIT_S,
    ) -> SleepAnswer:
        """The staged epochs of ``[start_utc, end_utc]`` (UNIX s), staging what is missing first."""
        start_ms, end_ms = check_range(start_utc, end_utc)
        end_ms += 999
        config = self.config.get()
        method = method or config.method
        if method == constants.SLEEP_METHOD_THRESHOLDS:
            return self._thresholds(start_ms, end_ms)
        channel_request = channel or config.channel
        db = self._store.db()
        sessions = SessionRepository(db).overlapping(start_ms, end_ms)
        if channel and channel != constants.SLEEP_CHANNEL_AUTO:
            self._check_channel(channel, sessions)
        running = self._running()
        finished = [s for s in sessions if s.id != running and s.status != SessionStatus.RECORDING]
        jobs = [job for record in finished if (job := self._ensure_job(record, channel_request)) is not None]
        deadline = time.monotonic() + wait_s
        for job in jobs:
            job.done.wait(max(0.0, deadline - time.monotonic()))
        stagings = SleepRepository(self._store.db()).for_sessions(
            [s.id for s in finished], constants.SLEEP_METHOD_YASA, self.yasa_version, channel_request
        )
        samples = {s.id: s.n_samples for s in finished}
        stagings = {sid: r for sid, r in stagings.items() if r.n_samples == samples[sid]}
        usable = [r for r in stagings.values() if r.status == StagingStatus.STAGED]
        # Jobs that ended without storing anything: staging raised something unexpected (the next
        # request tries again), or the worker died on every try.
        unstored = {
            job.command.session_id: job.outcome
            for job in jobs
            if job.done.is_set() and job.outcome is not None and job.outcome.staging_id == 0
        }
        stored = SleepRepository(self._store.db()).epochs_in_range(usable, start_ms, end_ms)
        return SleepAnswer(
            method=constants.SLEEP_METHOD_YASA,
            version=self.yasa_version,
            epochs=[_yasa_epoch(epoch) for epoch in stored],
            epoch_secs=constants.SLEEP_EPOCH_S if stored else constants.SLEEP_DEFAULT_EPOCH_SECS,
            sessions=[_session_entry(s, stagings.get(s.id), running, unstored.get(s.id)) for s in sessions],
        )

    def analysis(self, answer: SleepAnswer) -> dict[str, Any]:
        """The route's body: the daemon's ``epochs`` and ``summary``, and what it lacks."""
        counts = {name: 0 for name in STAGE_CODES.values()}
        for epoch in answer.epochs:
            counts[STAGE_CODES[epoch["stage"]]] += 1
        return {
            "epochs": answer.epochs,
            "summary": {
                "total_epochs": len(answer.epochs),
                "wake_epochs": counts["wake"],
                "n1_epochs": counts["n1"],
                "n2_epochs": counts["n2"],
                "n3_epochs": counts["n3"],
                "rem_epochs": counts["rem"],
                "epoch_secs": answer.epoch_secs,
            },
            "method": answer.method,
            "version": answer.version,
            "statistics": sleep_statistics([epoch["stage"] for epoch in answer.epochs], answer.epoch_secs),
            "sessions": answer.sessions,
        }

    def _thresholds(self, start_ms: int, end_ms: int) -> SleepAnswer:
        db = self._store.db()
        rows = [
            (start // 1000, *relative) for start, *relative in EpochRepository(db).relative_in_range(start_ms, end_ms)
        ]
        staged = stage_epochs(rows)
        epoch_secs = median_gap_epoch_secs(np.array([epoch.utc for epoch in staged], dtype=np.int64))
        sessions = SessionRepository(db).overlapping(start_ms, end_ms)
        return SleepAnswer(
            method=constants.SLEEP_METHOD_THRESHOLDS,
            version=THRESHOLDS_VERSION,
            epochs=[
                {
                    "utc": epoch.utc,
                    "stage": epoch.stage,
                    "rel_delta": epoch.rel_delta,
                    "rel_theta": epoch.rel_theta,
                    "rel_alpha": epoch.rel_alpha,
                    "rel_beta": epoch.rel_beta,
                    "confidence": None,
                }
                for epoch in staged
            ],
            epoch_secs=epoch_secs,
            sessions=[
                {"session_id": s.id, "status": "staged", "method": constants.SLEEP_METHOD_THRESHOLDS} for s in sessions
            ],
        )

    @staticmethod
    def _check_channel(channel: str, sessions: list[SessionRecord]) -> None:
        """A 400 naming the channels there are, when no session of the range has ``channel``."""
        known: list[str] = []
        for record in sessions:
            names = _channel_names(record)
            try:
                pick_channel(names, channel)
                return
            except ValueError:
                known += [name for name in names if name not in known]
        if sessions:
            raise MisoError(
                400,
                "channel_not_found",
                f"no session in this range has channel {channel!r} (they have {', '.join(known)})",
            )

    # --- jobs -----------------------------------------------------------------------------------

    def _ensure_job(self, record: SessionRecord, channel_request: str) -> _Job | None:
        """The job staging ``record`` under the current key, or None when a usable staging is stored."""
        key = StagingKey(record.id, constants.SLEEP_METHOD_YASA, self.yasa_version, channel_request)
        with self._lock:
            job = self._jobs.get(key)
        if job is not None:
            return job
        stored = SleepRepository(self._store.db()).find(key)
        recording = self._data_dir / record.recording_path
        if stored is not None and stored.n_samples == record.n_samples:
            if stored.status == StagingStatus.STAGED or stored.code in PERMANENT_FAILURES:
                return None
            if stored.code == "recording_missing" and not recording.exists():
                return None  # still gone: the stored failure answers
        command = StageSession(
            job_id=uuid.uuid4().hex[:12],
            session_id=record.id,
            recording_path=str(recording),
            board_id=record.data_board_id,
            channel_names=tuple(_channel_names(record)),
            channel_request=channel_request,
            version=self.yasa_version,
            session_n_samples=record.n_samples,
            expected_s=record.duration_s,
        )
        job = _Job(command)
        with self._lock:
            if key in self._jobs:
                return self._jobs[key]
            self._jobs[key] = job
        self._progress(command, "queued", 0.0)
        self._send(job)
        return job

    def _send(self, job: _Job) -> None:
        try:
            self._worker.send(job.command)
            job.sent = True
            job.attempts += 1
        except Exception as exc:  # noqa: BLE001 - sent again when the worker is up
            job.sent = False
            logger.info("staging of %s waits for the worker: %s", job.command.session_id, exc)

    def stage_in_background(self, record: SessionRecord) -> None:
        """Start staging a finished session without waiting (when it ends), under the configured channel."""
        config = self.config.get()
        if config.method != constants.SLEEP_METHOD_YASA:
            return
        self._ensure_job(record, config.channel)

    def pending_jobs(self) -> int:
        with self._lock:
            return len(self._jobs)

    # --- worker and capture events --------------------------------------------------------------

    def handle_capture_event(self, _name: str, event: Any) -> None:
        """A session of ``auto_stage_min_minutes`` or more (half an hour by default) that ends is
        staged at once (the neuro service has already closed its row: it handles capture events
        first); once a recording session reaches that length, the worker loads YASA ahead of it."""
        if isinstance(event, EpochStored):
            self._note_epoch(event)
            return
        if not isinstance(event, CaptureEnded):
            return
        record = SessionRepository(self._store.db()).get(event.session_id)
        if record is None or record.duration_s < self.config.get().auto_stage_min_minutes * 60:
            return
        try:
            self.stage_in_background(record)
        except Exception:  # noqa: BLE001 - the route stages it on demand instead
            logger.exception("starting the staging of session %s failed", event.session_id)

    def _note_epoch(self, event: EpochStored) -> None:
        if self._recording_since is None or self._recording_since[0] != event.session_id:
            self._recording_since = (event.session_id, event.start_utc_ms)
        if self._prepared:
            return
        if event.end_utc_ms - self._recording_since[1] >= self.config.get().auto_stage_min_minutes * 60_000:
            try:
                self._worker.send(PrepareStaging())
                self._prepared = True
            except Exception:  # noqa: BLE001 - the job loads YASA itself
                logger.debug("the staging worker is not up to load YASA ahead")

    def handle_event(self, _name: str, event: Any) -> None:
        if isinstance(event, WorkerStarted):
            self._prepared = False
            with self._lock:
                waiting = [job for job in self._jobs.values() if not job.sent]
            for job in waiting:
                self._send(job)
        elif isinstance(event, StagingProgress):
            self._publish(
                constants.EVENT_SLEEP_STAGING,
                {
                    "job_id": event.job_id,
                    "session_id": event.session_id,
                    "phase": event.phase,
                    "fraction": round(event.fraction, 4),
                },
            )
        elif isinstance(event, SessionStaged):
            finished = None
            with self._lock:
                for key, job in list(self._jobs.items()):
                    if job.command.job_id == event.job_id:
                        finished = self._jobs.pop(key)
            payload = {
                "job_id": event.job_id,
                "session_id": event.session_id,
                "phase": "done" if event.status == StagingStatus.STAGED else "failed",
                "fraction": 1.0,
                "n_epochs": event.n_epochs,
                "elapsed_ms": round(event.elapsed_ms),
            }
            if event.code:
                payload.update(code=event.code, message=event.message)
            if event.timings_ms:
                payload["timings_ms"] = event.timings_ms
            self._publish(constants.EVENT_SLEEP_STAGING, payload)
            if finished is not None:
                finished.outcome = event
                finished.done.set()

    def handle_exit(self, _name: str, code: int | None) -> None:
        """The worker died: its jobs go again when it is back, or fail after too many tries."""
        given_up: list[_Job] = []
        with self._lock:
            for key, job in list(self._jobs.items()):
                job.sent = False
                if job.attempts >= constants.SLEEP_JOB_MAX_ATTEMPTS:
                    given_up.append(self._jobs.pop(key))
        for job in given_up:
            message = f"the staging worker exited (code {code}) {job.attempts} times while staging this session"
            job.outcome = SessionStaged(
                job.command.job_id, job.command.session_id, 0, StagingStatus.FAILED, "worker_exited", message, 0, 0.0
            )
            self._publish(
                constants.EVENT_SLEEP_STAGING,
                {
                    "job_id": job.command.job_id,
                    "session_id": job.command.session_id,
                    "phase": "failed",
                    "fraction": 1.0,
                    "code": "worker_exited",
                    "message": message,
                },
            )
            job.done.set()

    def _progress(self, command: StageSession, phase: str, fraction: float) -> None:
        self._publish(
            constants.EVENT_SLEEP_STAGING,
            {"job_id": command.job_id, "session_id": command.session_id, "phase": phase, "fraction": fraction},
        )


def _channel_names(record: SessionRecord) -> list[str]:
    if record.channel_names:
        return list(record.channel_names)
    try:
        return list(layout_of(record.data_board_id, BoardParams()).channel_names)
    except BoardError:
        return []


def _yasa_epoch(epoch: StoredEpoch) -> dict[str, Any]:
    rd, rt, ra, rb = epoch.relative
    return {
        "utc": epoch.start_utc_ms // 1000,
        "stage": epoch.stage,
        "rel_delta": rd,
        "rel_theta": rt,
        "rel_alpha": ra,
        "rel_beta": rb,
        "confidence": epoch.confidence,
        "probabilities": dict(zip(STAGE_CODES.values(), epoch.probabilities, strict=True)),
        "session_id": epoch.session_id,
    }


def _session_entry(
    record: SessionRecord, staging: StagingRecord | None, running: str | None, unstored: SessionStaged | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"session_id": record.id, "method": constants.SLEEP_METHOD_YASA}
    if record.id == running or record.status == SessionStatus.RECORDING:
        entry.update(status="recording", message="the session is still recording; it is staged when it ends")
    elif staging is None and unstored is not None:
        entry.update(status="failed", code=unstored.code, message=unstored.message)
    elif staging is None:
        entry.update(status="staging", message="staging is still running; ask again for its epochs")
    else:
        entry.update(
            status=staging.status,
            channel=staging.channel,
            channel_reason=staging.channel_reason,
            n_epochs=staging.n_epochs,
            truncated=staging.truncated,
        )
        if staging.code:
            entry.update(code=staging.code, message=staging.message)
    return entry

"""The ``embed`` worker's work: live epochs and background re-embedding, one encoder at a time.

Live epochs come first: the worker loop hands every waiting command to :class:`Embedder`
before it lets a background batch run, and a batch is small (``batch_size`` epochs, a few
milliseconds with the built-in encoder), so a live epoch waits at most one batch.

Background re-embedding visits every epoch without a vector of the current encoder, newest
session first, reading each session's recording file once. It stops at once on
``PauseReembed`` (a device connected) and reports each step as a ``reembed-progress``
payload with the daemon's fields (``status``, ``total``, ``done``, ``failed``, ``date``; also
``day``, which the daemon's own docs read).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from workers.protocol.base import Event
from workers.protocol.embed import (
    EmbedEpochs,
    EncoderStatus,
    EpochsEmbedded,
    PauseReembed,
    ReembedProgress,
    StartReembed,
    UseEncoder,
)

from ... import constants
from ...store.eeg import SessionRepository
from ...store.embeddings import EmbeddingRepository, MissingEpoch, utc_day
from .onnx_encoder import EncoderLoadError, OnnxEncoder
from .recording_epochs import LoadedRecording, load_recording
from .spectral_encoder import SPECTRAL_ENCODER_NAME, SpectralEncoder

logger = logging.getLogger(__name__)

Send = Callable[[Event], None]


class Encoder(Protocol):
    name: str
    dim: int

    def encode(self, signals_uv: np.ndarray, sample_rate_hz: float) -> np.ndarray: ...


class _Reembed:
    """One background run's counters."""

    def __init__(self, command: StartReembed, total: int) -> None:
        self.command = command
        self.total = total
        self.done = 0
        self.failed = 0
        self.skip: set[int] = set()
        self.failures_by_session: dict[str, int] = {}


class Embedder:
    """Encodes epochs and stores their vectors.

    Parameters
    ----------
    send : callable
        Delivers events to the server.
    embeddings, sessions : repositories
        Over the worker's own SQLite connection.
    data_dir : Path
        Where recording paths stored with sessions are relative to.
    sleep : callable
        Pause between batches (seconds); injectable for tests.
    """

    def __init__(
        self,
        send: Send,
        embeddings: EmbeddingRepository,
        sessions: SessionRepository,
        data_dir: Path,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._send = send
        self._embeddings = embeddings
        self._sessions = sessions
        self._data_dir = data_dir
        self._sleep = sleep
        self.encoder: Encoder | None = None
        self._run: _Reembed | None = None
        self._recording: LoadedRecording | None = None
        self._live_count = 0
        self._embed_ms: list[float] = []

    @property
    def reembedding(self) -> bool:
        return self._run is not None

    def avg_embed_ms(self) -> float | None:
        return float(np.mean(self._embed_ms[-200:])) if self._embed_ms else None

    # --- commands ---------------------------------------------------------------------------

    def use(self, command: UseEncoder) -> None:
        """Load an encoder; a failure leaves none loaded (``metrics_only``) and says why."""
        self._pause("encoder_changed")
        try:
            if command.kind == "spectral":
                encoder: Encoder = SpectralEncoder()
                providers: tuple[str, ...] = ()
            elif command.kind == "onnx" and command.path:
                onnx = OnnxEncoder(command.encoder, Path(command.path), command.providers)
                encoder, providers = onnx, onnx.providers
            else:
                raise EncoderLoadError(f"unknown encoder kind {command.kind!r}")
        except (EncoderLoadError, OSError, ValueError) as exc:
            self.encoder = None
            logger.warning("encoder %s not loaded: %s", command.encoder, exc)
            self._send(EncoderStatus(command.encoder, "metrics_only", 0, command.kind, (), str(exc)))
            return
        encoder.name = command.encoder if command.kind == "onnx" else SPECTRAL_ENCODER_NAME
        self.encoder = encoder
        logger.info("encoder %s ready (%d dims)", encoder.name, encoder.dim)
        self._send(EncoderStatus(encoder.name, "ready", encoder.dim, command.kind, providers))

    def embed_live(self, command: EmbedEpochs) -> tuple[str, list[tuple[int, int]], np.ndarray] | None:
        """Encode a running session's epochs and store them; always answers with ``EpochsEmbedded``.

        Returns what was stored, ``(encoder, [(epoch_id, start_utc_ms)], vectors)`` (for the
        hooks), or None when nothing was.
        """
        encoder = self.encoder
        ids = [epoch_id for epoch_id, _start in command.epochs]
        if encoder is None:
            self._send(EpochsEmbedded(command.session_id, "", 0, [], 0.0, ids, "no encoder loaded"))
            return None
        began = time.perf_counter()
        try:
            vectors = encoder.encode(command.signals_uv, command.sample_rate_hz)
            stored = self._embeddings.put_many(
                encoder.name, [(e, s, v) for (e, s), v in zip(command.epochs, vectors, strict=True)]
            )
        except Exception as exc:  # noqa: BLE001 - one bad epoch must not end the worker
            logger.exception("embedding %d live epoch(s) failed", len(ids))
            self._send(EpochsEmbedded(command.session_id, encoder.name, encoder.dim, [], 0.0, ids, str(exc)))
            return None
        elapsed = (time.perf_counter() - began) * 1000.0
        self._note_time(elapsed, len(ids))
        items = [(e, s, i) for (e, s), i in zip(command.epochs, stored, strict=True) if i >= 0]
        self._send(EpochsEmbedded(command.session_id, encoder.name, encoder.dim, items, elapsed))
        kept = [i for i, embedding_id in enumerate(stored) if embedding_id >= 0]
        return encoder.name, [command.epochs[i] for i in kept], np.asarray(vectors)[kept]

    def start_reembed(self, command: StartReembed) -> None:
        if self._run is not None:
            self._run.command = command
            return
        if self.encoder is None:
            self._progress({"status": "error", "message": "no encoder is loaded: check the model configuration"})
            return
        self._progress({"status": "scanning", "total": 0, "done": 0})
        total = sum(day["missing"] for day in self._embeddings.coverage_by_day(self.encoder.name))
        if total == 0:
            self._progress({"status": "done", "total": 0, "done": 0, "failed": 0, "reason": command.reason})
            return
        self._run = _Reembed(command, total)
        self._progress({"status": "started", "total": total, "done": 0, "reason": command.reason})

    def pause(self, command: PauseReembed) -> None:
        self._pause(command.reason)

    def _pause(self, reason: str) -> None:
        run = self._run
        if run is None:
            return
        self._run = None
        self._recording = None
        self._progress(
            {"status": "paused", "total": run.total, "done": run.done, "failed": run.failed, "reason": reason}
        )

    # --- the background run -----------------------------------------------------------------

    def step(self) -> None:
        """Embed one batch of the background run (the loop calls this when no command waits)."""
        run, encoder = self._run, self.encoder
        if run is None:
            return
        if encoder is None:
            self._pause("no_encoder")
            return
        batch = self._embeddings.missing(encoder.name, max(1, run.command.batch_size), run.skip)
        if not batch:
            self._finish(run)
            return
        began = time.perf_counter()
        rows: list[tuple[int, int, np.ndarray]] = []
        by_rate: dict[float, list[tuple[MissingEpoch, np.ndarray]]] = {}
        for epoch in batch:
            signal = self._signal_of(epoch, run)
            if signal is None:
                run.skip.add(epoch.epoch_id)
                run.failed += 1
                continue
            assert self._recording is not None
            by_rate.setdefault(self._recording.sample_rate_hz, []).append((epoch, signal))
        for rate, members in by_rate.items():
            shapes = {m[1].shape for m in members}
            for shape in shapes:
                group = [m for m in members if m[1].shape == shape]
                vectors = encoder.encode(np.stack([m[1] for m in group]), rate)
                rows += [(m[0].epoch_id, m[0].start_utc_ms, v) for m, v in zip(group, vectors, strict=True)]
        if rows:
            self._embeddings.put_many(encoder.name, rows)
            self._note_time((time.perf_counter() - began) * 1000.0, len(rows))
        run.done += len(rows)
        self._progress(
            {
                "status": "running",
                "total": run.total,
                "done": run.done,
                "failed": run.failed,
                "date": utc_day(batch[-1].start_utc_ms),
                "day": utc_day(batch[-1].start_utc_ms),
            }
        )
        pause_s = (run.command.batch_delay_ms + run.command.throttle_ms) / 1000.0
        if pause_s > 0:
            self._sleep(pause_s)

    def _signal_of(self, epoch: MissingEpoch, run: _Reembed) -> np.ndarray | None:
        if run.failures_by_session.get(epoch.session_id, 0) >= constants.REEMBED_MAX_FAILURES_PER_SESSION:
            return None
        if self._recording is None or self._recording.session_id != epoch.session_id:
            self._recording = None
            record = self._sessions.get(epoch.session_id)
            if record is None:
                return None
            try:
                self._recording = load_recording(
                    epoch.session_id,
                    self._data_dir / record.recording_path,
                    record.data_board_id,
                    record.sample_rate_hz,
                )
            except (OSError, ValueError) as exc:
                logger.warning("session %s: recording unreadable for re-embedding: %s", epoch.session_id, exc)
                run.failures_by_session[epoch.session_id] = constants.REEMBED_MAX_FAILURES_PER_SESSION
                return None
        signal = self._recording.cut(epoch.start_utc_ms, epoch.end_utc_ms)
        if signal is None:
            run.failures_by_session[epoch.session_id] = run.failures_by_session.get(epoch.session_id, 0) + 1
        return signal

    def _finish(self, run: _Reembed) -> None:
        self._run = None
        self._recording = None
        payload: dict[str, Any] = {"status": "done", "total": run.total, "done": run.done, "failed": run.failed}
        if run.command.reason == "idle":
            self._progress(payload)
            self._progress({"status": "idle_done"})
        else:
            self._progress(payload)

    def _note_time(self, elapsed_ms: float, n: int) -> None:
        if n:
            self._embed_ms.append(elapsed_ms / n)
            del self._embed_ms[:-1000]

    def _progress(self, payload: dict[str, Any]) -> None:
        if self.encoder is not None:
            payload.setdefault("encoder", self.encoder.name)
        self._send(ReembedProgress(payload, self.avg_embed_ms()))

"""One recording session on one device (a BrainFlow board or an LSL stream), run inside the capture worker.

The worker's loop calls :meth:`Capture.tick` every :data:`~miso_runtime.constants.CAPTURE_POLL_S`
seconds. Each tick moves whatever the board buffered into the recording file and through
the :class:`~miso_runtime.neuro.pipeline.SignalPipeline`, sends the band-power frames to the
server and stores finished epochs in the shared SQLite store.

Losing the board is expected (Bluetooth drops, a cable is pulled, a replay reaches its end):
when no sample arrives for :data:`~miso_runtime.constants.CAPTURE_STALL_S` seconds or BrainFlow
raises, the board is released and prepared again after a growing delay, and every step is
reported (``BoardLost``, ``ReconnectState``, ``BoardConnected``). The recording stays open
across reconnects; the pipeline restarts after the gap.

The device is a :class:`~miso_runtime.neuro.sources.CaptureSource`. An LSL stream
(:class:`~miso_runtime.lsl.source.LslSource`) differs in two ways only: it is lost when its
inlet says so (not after a few silent seconds), and a silence of its idle timeout ends the
session (``idle_timeout``, as the daemon does) instead of reconnecting.
"""

from __future__ import annotations

import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import Callable

import numpy as np
from brainflow.board_shim import BrainFlowError

from workers.protocol.base import Event
from workers.protocol.capture import (
    BandsComputed,
    BoardConnected,
    BoardLost,
    CaptureEnded,
    CaptureFailed,
    EpochStored,
    ReconnectState,
    StartCapture,
)

from .. import constants
from ..store.eeg import EpochRepository
from .boards import PLAYBACK_BOARD_ID, BoardError, BoardParams, layout_of
from .layout import lsl_channel_count
from .pipeline import BoardLayout, PipelineConfig, SignalPipeline, epoch_means, epoch_metrics_json
from .recording import RecordingWriter, time_scaled_copy
from .sources import BrainFlowSource, CaptureSource, SourceError, SourceUnavailable

logger = logging.getLogger(__name__)

Send = Callable[[Event], None]


class CaptureState(StrEnum):
    IDLE = "idle"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"


class Capture:
    """The capture worker's one session at a time.

    Parameters
    ----------
    send : callable
        Delivers an event to the server.
    epochs : EpochRepository
        Where finished epochs are stored (the worker's own database connection).
    clock : callable
        Monotonic seconds (injectable for tests of the reconnect timing).
    """

    def __init__(self, send: Send, epochs: EpochRepository, clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._epochs = epochs
        self._clock = clock
        self.state = CaptureState.IDLE
        self._request: StartCapture | None = None
        self._board: CaptureSource | None = None
        self._layout: BoardLayout | None = None
        self._pipeline: SignalPipeline | None = None
        self._writer: RecordingWriter | None = None
        self._replay_copy: Path | None = None
        self._replay_t0_s: float | None = None
        self._timeline_end_s = 0.0
        self._last_sample_at = 0.0
        self._connected_at = 0.0
        self._first_ts_s: float | None = None
        self._last_ts_s: float | None = None
        self._n_samples = 0
        self._attempt = 0
        self._next_try_at: float | None = None
        self._lost_reason = ""
        self._lsl_idle_timeout_s: float | None = None
        #: ``(lsl source id or None, reason)`` of the last session that ended (for auto-connect).
        self.last_ended: tuple[str | None, str] | None = None

    @property
    def active(self) -> bool:
        return self.state is not CaptureState.IDLE

    # --- commands ---------------------------------------------------------------------------

    def start(self, request: StartCapture) -> None:
        """Prepare the board and start streaming; ``CaptureFailed`` says why when it cannot."""
        if self.active:
            self._send(CaptureFailed(request.session_id, "busy", "a session is already running"))
            return
        params = BoardParams.from_dict(request.params)
        try:
            config = PipelineConfig(**request.pipeline)
            if request.lsl is not None:
                board = self._open_lsl(request)
                layout = board.layout
            else:
                layout = layout_of(request.board_id, params)
                if request.board_id == PLAYBACK_BOARD_ID and request.playback_speed != 1.0:
                    params = self._faster_replay(request, params, layout)
                board = self._open_board(request.board_id, params, layout)
        except (BoardError, ValueError, TypeError) as exc:
            self._send(CaptureFailed(request.session_id, "invalid_board", str(exc)))
            self._drop_replay_copy()
            return
        except (BrainFlowError, SourceError) as exc:
            self._send(CaptureFailed(request.session_id, "board_unavailable", _describe(exc, request.board_id)))
            self._drop_replay_copy()
            return
        try:
            writer = RecordingWriter(Path(request.recording_path), layout.board_id)
        except OSError as exc:
            board.close()
            self._drop_replay_copy()
            self._send(CaptureFailed(request.session_id, "recording_failed", f"cannot write the recording: {exc}"))
            return
        self._request = request
        self._board = board
        self._layout = layout
        self._pipeline = SignalPipeline(layout, config)
        self._writer = writer
        self._first_ts_s = self._last_ts_s = None
        self._replay_t0_s = None
        self._n_samples = 0
        self._attempt = 0
        self._mark_connected()
        logger.info("session %s: %s streaming at %s Hz", request.session_id, layout.board_name, layout.sample_rate_hz)
        self._send(BoardConnected(request.session_id, layout.to_dict(), reconnected=False))

    def stop(self, reason: str, message: str = "") -> None:
        """End the session: drain the board, close the recording, report ``CaptureEnded``."""
        if not self.active or self._request is None:
            return
        if self.state is CaptureState.STREAMING:
            try:
                self._read_board()
            except (BrainFlowError, SourceError, OSError) as exc:
                logger.warning("session %s: last read before stopping failed: %s", self._request.session_id, exc)
        self._release_board()
        if self._writer is not None:
            try:
                self._writer.close()
            except OSError as exc:
                logger.error("session %s: closing the recording failed: %s", self._request.session_id, exc)
        self._drop_replay_copy()
        request = self._request
        self.last_ended = (request.lsl.get("source_id") if request.lsl else None, reason)
        self.state = CaptureState.IDLE
        self._request = None
        self._writer = None
        self._pipeline = None
        self._send(
            CaptureEnded(
                request.session_id,
                reason,
                message,
                _ms(self._first_ts_s),
                _ms(self._last_ts_s),
                self._n_samples,
            )
        )
        logger.info("session %s ended (%s): %d samples", request.session_id, reason, self._n_samples)

    def configure(self, pipeline: dict) -> None:
        if self._pipeline is not None:
            self._pipeline.reconfigure(PipelineConfig(**pipeline))

    def configure_idle_timeout(self, idle_timeout_s: float | None) -> None:
        """A new idle timeout for a running LSL session, seconds (None: never); counted from the last sample."""
        if self._request is not None and self._request.lsl is not None:
            self._lsl_idle_timeout_s = idle_timeout_s

    def retry_now(self) -> None:
        if self.state is CaptureState.RECONNECTING:
            self._next_try_at = self._clock()

    def cancel_retry(self) -> None:
        if self.state is CaptureState.RECONNECTING and self._request is not None:
            self._report_reconnect("cancelled", None, "reconnecting cancelled")
            self.stop("user_cancel", "reconnecting cancelled")

    # --- the loop ---------------------------------------------------------------------------

    def tick(self) -> None:
        """One pass of the worker loop: read the board, or try to get it back."""
        if self.state is CaptureState.STREAMING:
            try:
                got = self._read_board()
            except SourceError as exc:
                self._lose_board("error", str(exc))
                return
            except BrainFlowError as exc:
                self._lose_board("error", f"the board raised: {exc}")
                return
            except OSError as exc:
                logger.error("session %s: writing the recording failed: %s", self._request.session_id, exc)
                self.stop("error", f"writing the recording failed: {exc}")
                return
            now = self._clock()
            if got:
                self._last_sample_at = now
                if self._attempt and now - self._connected_at > constants.CAPTURE_RECONNECT_STABLE_S:
                    self._attempt = 0
            elif self._request is not None and self._request.lsl is not None:
                idle_s = self._lsl_idle_timeout_s
                if idle_s is not None and now - self._last_sample_at > idle_s:
                    self.stop("idle_timeout", f"no samples from the LSL stream for {idle_s:g} s")
            elif now - self._last_sample_at > constants.CAPTURE_STALL_S:
                request = self._request
                if request is not None and request.board_id == PLAYBACK_BOARD_ID and request.stop_at_end:
                    self.stop("end_of_file", "the recording has been replayed to its end")
                else:
                    self._lose_board("idle_timeout", f"no samples for {constants.CAPTURE_STALL_S:g} s")
        elif self.state is CaptureState.RECONNECTING and self._next_try_at is not None:
            if self._clock() >= self._next_try_at:
                self._try_reconnect()

    def _read_board(self) -> bool:
        assert self._board is not None and self._pipeline is not None and self._writer is not None
        data = self._board.read()
        n = data.shape[1]
        if n == 0:
            return False
        layout = self._layout
        assert layout is not None and self._request is not None
        if self._replay_copy is not None:
            self._restamp(data, layout)
        self._writer.append(data)
        timestamps = data[layout.timestamp_row]
        if self._first_ts_s is None:
            self._first_ts_s = float(timestamps[0])
        self._last_ts_s = float(timestamps[-1])
        self._n_samples += n
        battery = None
        if layout.battery_row is not None:
            value = float(data[layout.battery_row, -1])
            battery = value if np.isfinite(value) else None
        frames, epochs = self._pipeline.process(data)
        session_id = self._request.session_id
        for frame in frames:
            payload = self._pipeline.frame_payload(frame)
            payload["session_id"] = session_id
            payload["battery"] = battery
            self._send(BandsComputed(session_id, payload, battery))
        for epoch in epochs:
            epoch_id = self._epochs.insert(
                session_id,
                epoch.start_utc_ms,
                epoch.end_utc_ms,
                epoch.metrics.n_windows if epoch.metrics else 0,
                epoch_means(epoch),
                epoch_metrics_json(epoch, layout.channel_names),
            )
            self._send(
                EpochStored(
                    session_id, epoch_id, epoch.start_utc_ms, epoch.end_utc_ms, epoch.raw_uv, layout.sample_rate_hz
                )
            )
        return True

    def _restamp(self, data: np.ndarray, layout: BoardLayout) -> None:
        """Give a faster-than-real-time replay the timeline of its data, in place.

        The playback board stamps samples with the time they arrive, so a replay at 20x would
        squeeze 20 s of EEG into 1 s of timestamps, and epochs cut by sample count would get
        times that overlap. Instead sample ``i`` of the session is stamped
        ``session start + i / rate``: the session lasts as long as its data, as if replayed in
        real time from the moment it started.
        """
        if self._replay_t0_s is None:
            # A replay's timeline runs ahead of the clock; the next one starts where it ended,
            # so two replays in a row never share a moment (a search by time would mix them).
            self._replay_t0_s = max(time.time(), self._timeline_end_s)
        index = self._n_samples + np.arange(data.shape[1])
        data[layout.timestamp_row] = self._replay_t0_s + index / layout.sample_rate_hz
        self._timeline_end_s = float(data[layout.timestamp_row, -1]) + 1.0 / layout.sample_rate_hz

    # --- losing and getting the board back ---------------------------------------------------

    def _lose_board(self, reason: str, message: str) -> None:
        assert self._request is not None
        logger.warning("session %s: board lost (%s): %s", self._request.session_id, reason, message)
        self._release_board()
        self.state = CaptureState.RECONNECTING
        self._lost_reason = reason
        self._send(BoardLost(self._request.session_id, reason, message))
        self._schedule_next_try(message)

    def _schedule_next_try(self, message: str) -> None:
        if self._attempt >= constants.CAPTURE_RECONNECT_MAX_ATTEMPTS:
            self._report_reconnect("gave_up", None, message)
            self.stop(self._lost_reason or "error", f"gave up after {self._attempt} reconnect attempts: {message}")
            return
        steps = constants.CAPTURE_RECONNECT_BACKOFF_S
        delay = steps[min(self._attempt, len(steps) - 1)]
        self._next_try_at = self._clock() + delay
        self._report_reconnect("waiting", delay, message)

    def _try_reconnect(self) -> None:
        assert self._request is not None
        self._attempt += 1
        self._next_try_at = None
        self._report_reconnect("connecting", None, "")
        try:
            if self._request.lsl is not None:
                self._board = self._open_lsl(self._request)
            else:
                params = BoardParams.from_dict(self._request.params)
                if self._replay_copy is not None:
                    params = BoardParams.from_dict({**params.to_dict(), "file": str(self._replay_copy)})
                assert self._layout is not None
                self._board = self._open_board(self._request.board_id, params, self._layout)
        except (BrainFlowError, SourceError) as exc:
            self._schedule_next_try(_describe(exc, self._request.board_id))
            return
        assert self._pipeline is not None and self._layout is not None
        self._pipeline.reset()
        self._mark_connected()
        self._report_reconnect("connected", None, "")
        self._send(BoardConnected(self._request.session_id, self._layout.to_dict(), reconnected=True))

    def _report_reconnect(self, state: str, next_try_in_s: float | None, message: str) -> None:
        assert self._request is not None
        self._send(
            ReconnectState(
                self._request.session_id,
                state,
                self._attempt,
                constants.CAPTURE_RECONNECT_MAX_ATTEMPTS,
                next_try_in_s,
                message,
            )
        )

    # --- the devices ------------------------------------------------------------------------

    @staticmethod
    def _open_board(board_id: int, params: BoardParams, layout: BoardLayout) -> CaptureSource:
        return BrainFlowSource(board_id, params, layout)

    def _open_lsl(self, request: StartCapture) -> CaptureSource:
        """The paired stream of ``request.lsl`` (``source_id``, ``idle_timeout_s``), by its source id.

        The session's board id fixes the channel count of its recording, so a stream that
        comes back with another count is refused (pairing it again starts a new recording).
        """
        from ..lsl.source import LslSource  # noqa: PLC0415 - pylsl loads liblsl; only LSL sessions need it

        assert request.lsl is not None
        if self._request is None:  # a new session, not a reconnect
            self._lsl_idle_timeout_s = request.lsl.get("idle_timeout_s")
        source_id = str(request.lsl.get("source_id") or "")
        if not source_id:
            raise SourceUnavailable("an LSL session needs the source_id of a paired stream")
        return LslSource(source_id, expect_channels=lsl_channel_count(request.board_id))

    def _mark_connected(self) -> None:
        self.state = CaptureState.STREAMING
        self._connected_at = self._last_sample_at = self._clock()

    def _release_board(self) -> None:
        if self._board is not None:
            self._board.close()
            self._board = None

    def _faster_replay(self, request: StartCapture, params: BoardParams, layout: BoardLayout) -> BoardParams:
        """Replay faster than real time through a copy with compressed timestamps (the playback
        board paces itself by the file's timestamps and has no speed setting)."""
        if not 0 < request.playback_speed <= constants.PLAYBACK_MAX_SPEED:
            raise ValueError(f"playback_speed must be in (0, {constants.PLAYBACK_MAX_SPEED:g}]")
        source = Path(params.file)
        if not source.is_file():
            raise BoardError(f"no recording at {source}")
        copy = Path(request.recording_path).with_suffix(".replay.csv")
        time_scaled_copy(source, copy, layout.board_id, request.playback_speed)
        self._replay_copy = copy
        return BoardParams.from_dict({**params.to_dict(), "file": str(copy)})

    def _drop_replay_copy(self) -> None:
        if self._replay_copy is not None:
            self._replay_copy.unlink(missing_ok=True)
            self._replay_copy = None


def _describe(error: Exception, board_id: int) -> str:
    if isinstance(error, SourceError):
        return str(error)
    return f"could not open board {board_id}: {error} (BrainFlow exit code {getattr(error, 'exit_code', '?')})"


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(round(seconds * 1000.0))

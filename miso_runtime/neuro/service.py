"""Live EEG as the faces see it: devices, the running session, and the capture worker's events.

The server process owns the session rows and the device list; the capture worker owns the
board, the recording file and the epochs. This service turns requests into worker commands
(waiting for the worker's answer where the caller needs one, e.g. a board that fails to
prepare), turns worker events into ``/v1/events`` events, and closes sessions that a crash
left open: from their recording file, whose last complete line is the true end.

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

from workers.protocol.capture import (
    BandsComputed,
    BoardConnected,
    BoardLost,
    CancelRetry,
    CaptureEnded,
    CaptureFailed,
    ConfigureLsl,
    ConfigurePipeline,
    EpochStored,
    LslStreamFound,
    ReconnectState,
    RetryConnect,
    StartCapture,
    StopCapture,
)

from .. import constants
from ..errors import MisoError
from ..lsl.config import LslConfig
from ..settings_files import SettingsFile
from ..store.eeg import DeviceRepository, NewSession, SessionRecord, SessionRepository, SessionStatus
from .boards import PLAYBACK_BOARD_ID, SYNTHETIC_BOARD_ID, BoardError, BoardParams, board_name, device_id, layout_of
from .layout import BoardLayout, PipelineConfig, lsl_board_id, lsl_channel_count, lsl_layout
from .recording import recording_end
from .settings import EpochConfig, FilterConfig, pipeline_config

logger = logging.getLogger(__name__)

Publish = Callable[..., Any]


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


class DeviceState:
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"


@dataclass
class SessionRequest:
    """What ``start-session`` asks for; every field optional (default: preferred device, else synthetic)."""

    board_id: int | None = None
    device_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    location: dict[str, Any] | None = None
    playback_speed: float = 1.0
    stop_at_end: bool = True


@dataclass(frozen=True)
class _Target:
    """The device a session records from, resolved from a request."""

    board_id: int
    params: BoardParams
    layout: BoardLayout
    device_id: str
    board_name: str
    #: ``{"source_id", "idle_timeout_s"}`` for a paired LSL stream.
    lsl: dict[str, Any] | None = None


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None


@dataclass
class _Live:
    """The running session as the server sees it."""

    session_id: str
    device_id: str
    board_id: int
    state: str = DeviceState.CONNECTING
    layout: dict[str, Any] = field(default_factory=dict)
    battery: float | None = None
    reconnect: dict[str, Any] | None = None
    n_epochs: int = 0
    last_frame_at_ms: int | None = None


class NeuroService:
    """Sessions, devices and live events of the capture worker."""

    def __init__(
        self,
        worker: CommandSink,
        sessions: SessionRepository,
        devices: DeviceRepository,
        filters: SettingsFile[FilterConfig],
        epochs: SettingsFile[EpochConfig],
        data_dir: Path,
        publish: Publish,
        lsl_config: Callable[[], LslConfig] | None = None,
    ) -> None:
        """``lsl_config`` gives the saved LSL settings (paired streams, idle timeout); without it
        a session cannot record from an LSL stream."""
        self._worker = worker
        self._lsl_config = lsl_config
        self.sessions = sessions
        self.devices = devices
        self.filters = filters
        self.epoch_config = epochs
        self.data_dir = data_dir
        self._publish = publish
        self._lock = threading.RLock()
        self._live: _Live | None = None
        self._starting: dict[str, _Pending] = {}
        self._ending: dict[str, _Pending] = {}

    # --- what runs now ----------------------------------------------------------------------

    @property
    def running_session_id(self) -> str | None:
        with self._lock:
            return self._live.session_id if self._live else None

    def status(self) -> dict[str, Any]:
        """Device state, board, channels, sample rate, battery and the current session."""
        with self._lock:
            live = self._live
            if live is None:
                return {
                    "state": DeviceState.DISCONNECTED,
                    "device": None,
                    "session": None,
                    "reconnect": None,
                    "preferred_device": self._preferred_id(),
                }
            session = self.sessions.get(live.session_id)
            return {
                "state": live.state,
                "device": {
                    "id": live.device_id,
                    "board_id": live.board_id,
                    **live.layout,
                    "battery": live.battery,
                },
                "session": {**session.to_dict(), "n_epochs": live.n_epochs} if session else None,
                "reconnect": live.reconnect,
                "preferred_device": self._preferred_id(),
            }

    def _preferred_id(self) -> str | None:
        preferred = self.devices.preferred()
        return preferred.id if preferred else None

    def pipeline_config(self) -> PipelineConfig:
        return pipeline_config(self.filters.get(), self.epoch_config.get())

    # --- control ----------------------------------------------------------------------------

    def start_session(self, request: SessionRequest) -> dict[str, Any]:
        """Open the board and start recording; returns when samples flow or the board failed."""
        target = self._resolve_target(request)
        board_id, params, layout, device = target.board_id, target.params, target.layout, target.device_id
        session_id = uuid.uuid4().hex
        now_ms = int(time.time() * 1000)
        relative = Path(constants.RECORDINGS_DIR_NAME) / time.strftime("%Y-%m-%d", time.gmtime()) / f"{session_id}.csv"
        config = self.pipeline_config()
        pending = _Pending()
        with self._lock:
            if self._live is not None:
                raise MisoError(409, "session_running", f"session {self._live.session_id} is running; cancel it first")
            self.sessions.insert(
                NewSession(
                    id=session_id,
                    device_id=device,
                    board_id=board_id,
                    data_board_id=layout.board_id,
                    board_name=target.board_name,
                    started_utc_ms=now_ms,
                    recording_path=str(relative),
                    location=request.location,
                    epoch_s=config.epoch_s,
                    overlap_s=config.overlap_s,
                    channel_names=list(layout.channel_names),
                    sample_rate_hz=layout.sample_rate_hz,
                )
            )
            self._live = _Live(session_id, device, board_id)
            self._starting[session_id] = pending
        self._publish_status()
        command = StartCapture(
            session_id=session_id,
            board_id=board_id,
            params=params.to_dict(),
            recording_path=str(self.data_dir / relative),
            pipeline=vars(config).copy(),
            playback_speed=request.playback_speed,
            stop_at_end=request.stop_at_end,
            lsl=target.lsl,
        )
        try:
            self._worker.send(command)
        except Exception as exc:  # noqa: BLE001 - WorkerUnavailable and a closed pipe alike
            self._forget_start(session_id)
            raise MisoError(503, "worker_unavailable", f"the capture worker is not running: {exc}") from None
        wait_s = constants.CAPTURE_START_TIMEOUT_S + max(0, params.timeout)
        if not pending.done.wait(wait_s):
            self._send_quietly(StopCapture("error"))
            self._forget_start(session_id)
            raise MisoError(408, "board_timeout", f"the board did not start streaming within {wait_s:g} s")
        result = pending.result
        if isinstance(result, CaptureFailed):
            self._forget_start(session_id)
            status = 409 if result.code == "busy" else 400
            raise MisoError(status, result.code, result.message)
        if isinstance(result, Exception):
            self._forget_start(session_id)
            raise MisoError(503, "worker_unavailable", str(result))
        seen_params = params.to_dict() if target.lsl is None else {"source_id": target.lsl["source_id"]}
        self.devices.seen(device, board_id, target.board_name, seen_params, int(time.time() * 1000))
        return self.status()

    def _resolve_target(self, request: SessionRequest) -> _Target:
        source_id = self._lsl_source_of(request)
        if source_id is not None:
            return self._lsl_target(source_id)
        board_id, params = self._resolve_board(request)
        try:
            layout = layout_of(board_id, params)
        except BoardError as exc:
            raise MisoError(400, "invalid_board", str(exc)) from None
        if board_id == PLAYBACK_BOARD_ID and not Path(params.file).is_file():
            raise MisoError(400, "invalid_board", f"no recording to replay at {params.file}")
        return _Target(board_id, params, layout, device_id(board_id, params), board_name(board_id))

    def _lsl_source_of(self, request: SessionRequest) -> str | None:
        """The source id when the request names an LSL stream: ``device_id`` ``lsl:<source_id>``, or
        no board nor device while the preferred device is an LSL stream."""
        if request.device_id and request.device_id.startswith(constants.LSL_DEVICE_PREFIX):
            return request.device_id[len(constants.LSL_DEVICE_PREFIX) :]
        if request.device_id is None and request.board_id is None:
            preferred = self.devices.preferred()
            if preferred is not None and lsl_channel_count(preferred.board_id) is not None:
                return str(preferred.params.get("source_id") or "")
        return None

    def _lsl_target(self, source_id: str) -> _Target:
        """A paired stream: its recording has the paired channel count; names and rate are
        placeholders until the worker opens the stream and reports its own."""
        config = self._lsl_config() if self._lsl_config is not None else None
        paired = config.paired(source_id) if config is not None else None
        if config is None or paired is None:
            raise MisoError(404, "not_paired", f"no paired LSL stream has source_id {source_id!r}; pair it first")
        if paired.sample_rate <= 0:
            raise MisoError(
                400, "invalid_board", f"LSL stream {paired.name!r} has an irregular rate; only regular EEG records"
            )
        layout = lsl_layout(
            paired.channels, paired.sample_rate, tuple(f"ch{i + 1}" for i in range(paired.channels)), paired.name
        )
        return _Target(
            lsl_board_id(paired.channels),
            BoardParams(),
            layout,
            constants.LSL_DEVICE_PREFIX + source_id,
            paired.name or source_id,
            {"source_id": source_id, "idle_timeout_s": config.idle_timeout_secs},
        )

    def lsl_changed(self, config: LslConfig) -> None:
        """The LSL settings changed: a running LSL session takes the new idle timeout."""
        with self._lock:
            live = self._live
            running_lsl = live is not None and lsl_channel_count(live.board_id) is not None
        if running_lsl:
            self._send_quietly(ConfigureLsl(config.idle_timeout_secs))

    def _auto_start(self, source_id: str) -> None:
        """Auto-connect found a paired stream: start its session unless one runs."""
        if self.running_session_id is not None:
            return
        try:
            self.start_session(SessionRequest(device_id=constants.LSL_DEVICE_PREFIX + source_id))
            logger.info("LSL auto-connect: recording from %s", source_id)
        except MisoError as exc:
            logger.warning("LSL auto-connect could not start a session on %s: %s", source_id, exc.message)

    def _resolve_board(self, request: SessionRequest) -> tuple[int, BoardParams]:
        if request.device_id:
            known = self.devices.get(request.device_id)
            if known is None:
                raise MisoError(404, "device_not_found", f"no known device {request.device_id!r}")
            return known.board_id, BoardParams.from_dict({**known.params, **request.params})
        if request.board_id is not None:
            return request.board_id, BoardParams.from_dict(request.params)
        preferred = self.devices.preferred()
        if preferred is not None:
            return preferred.board_id, BoardParams.from_dict({**preferred.params, **request.params})
        return SYNTHETIC_BOARD_ID, BoardParams.from_dict(request.params)

    def _forget_start(self, session_id: str) -> None:
        """A start that failed leaves nothing behind: no session row, no file."""
        with self._lock:
            self._starting.pop(session_id, None)
            if self._live and self._live.session_id == session_id:
                self._live = None
            record = self.sessions.get(session_id)
            if record is not None:
                self.sessions.delete(session_id)
                (self.data_dir / record.recording_path).unlink(missing_ok=True)
        self._publish_status()

    def cancel_session(self, reason: str = "user_cancel") -> dict[str, Any]:
        """Stop the running session; returns it as stored once its recording is closed."""
        session_id = self.running_session_id
        if session_id is None:
            raise MisoError(409, "no_session", "no session is running")
        return self._end_and_wait(session_id, StopCapture(reason))

    def retry_connect(self) -> dict[str, Any]:
        self._require_reconnecting()
        self._send_or_503(RetryConnect())
        return {"ok": True, "reconnect": self.status()["reconnect"]}

    def cancel_retry(self) -> dict[str, Any]:
        session_id = self._require_reconnecting()
        return self._end_and_wait(session_id, CancelRetry())

    def _require_reconnecting(self) -> str:
        with self._lock:
            if self._live is None or self._live.state != DeviceState.RECONNECTING:
                state = self._live.state if self._live else DeviceState.DISCONNECTED
                raise MisoError(409, "not_reconnecting", f"the device is {state}, not reconnecting")
            return self._live.session_id

    def _end_and_wait(self, session_id: str, command: Any) -> dict[str, Any]:
        pending = _Pending()
        with self._lock:
            self._ending[session_id] = pending
        self._send_or_503(command)
        if not pending.done.wait(constants.CAPTURE_STOP_TIMEOUT_S):
            logger.warning("session %s: the worker did not confirm the end; closing it from its file", session_id)
            self._close_from_file(session_id, "error", "the capture worker did not answer")
        record = self.sessions.get(session_id)
        return {"session": record.to_dict() if record else None}

    def _send_or_503(self, command: Any) -> None:
        try:
            self._worker.send(command)
        except Exception as exc:  # noqa: BLE001
            raise MisoError(503, "worker_unavailable", f"the capture worker is not running: {exc}") from None

    def _send_quietly(self, command: Any) -> None:
        try:
            self._worker.send(command)
        except Exception:  # noqa: BLE001
            pass

    def apply_settings(self) -> None:
        """Send changed filter/epoch settings to the running session (if any)."""
        if self.running_session_id is not None:
            self._send_quietly(ConfigurePipeline(vars(self.pipeline_config()).copy()))

    def stop(self) -> None:
        """At shutdown: end the running session cleanly so its row and file agree."""
        session_id = self.running_session_id
        if session_id is not None:
            try:
                self._end_and_wait(session_id, StopCapture("shutdown"))
            except MisoError:
                self._close_from_file(session_id, "shutdown", "the runtime stopped")

    # --- devices ----------------------------------------------------------------------------

    def list_devices(self) -> list[dict[str, Any]]:
        live_id = None
        with self._lock:
            if self._live is not None:
                live_id = self._live.device_id
        return [{**device.to_dict(), "connected": device.id == live_id} for device in self.devices.all()]

    def forget_device(self, device: str) -> None:
        if not self.devices.delete(device):
            raise MisoError(404, "device_not_found", f"no known device {device!r}")

    def set_preferred(self, device: str) -> None:
        if not self.devices.set_preferred(device):
            raise MisoError(404, "device_not_found", f"no known device {device!r}")

    # --- worker events ----------------------------------------------------------------------

    def handle_event(self, _name: str, event: Any) -> None:
        """Called by the supervisor's pump for every capture worker event."""
        if isinstance(event, BandsComputed):
            self._on_bands(event)
        elif isinstance(event, EpochStored):
            with self._lock:
                if self._live and self._live.session_id == event.session_id:
                    self._live.n_epochs += 1
        elif isinstance(event, BoardConnected):
            self._on_connected(event)
        elif isinstance(event, CaptureFailed):
            with self._lock:
                pending = self._starting.pop(event.session_id, None)
            if pending is not None:
                pending.result = event
                pending.done.set()
        elif isinstance(event, BoardLost):
            self._on_lost(event)
        elif isinstance(event, ReconnectState):
            self._on_reconnect_state(event)
        elif isinstance(event, CaptureEnded):
            self._on_ended(event)
        elif isinstance(event, LslStreamFound):
            # Not here: start_session waits for the worker's answer, which this pump delivers.
            threading.Thread(target=self._auto_start, args=(event.source_id,), daemon=True).start()

    def _on_bands(self, event: BandsComputed) -> None:
        with self._lock:
            live = self._live
            if live is None or live.session_id != event.session_id:
                return
            live.battery = event.battery
            live.last_frame_at_ms = int(time.time() * 1000)
            payload = {**event.payload, "device_id": live.device_id, "board_id": live.board_id}
        self._publish(constants.EVENT_EEG_BANDS, payload, correlation_id=event.session_id, droppable=True)

    def _on_connected(self, event: BoardConnected) -> None:
        with self._lock:
            live = self._live
            if live is None or live.session_id != event.session_id:
                return
            live.state = DeviceState.CONNECTED
            if lsl_channel_count(live.board_id) is not None and live.layout != event.layout:
                # The stream's own names and rate, known once it is open.
                self.sessions.set_board(event.session_id, event.layout["sample_rate_hz"], event.layout["channels"])
            live.layout = event.layout
            live.reconnect = None
            pending = self._starting.pop(event.session_id, None)
            payload = {
                "session_id": event.session_id,
                "device_id": live.device_id,
                "board_id": live.board_id,
                **event.layout,
                "reconnected": event.reconnected,
            }
        if pending is not None:
            pending.result = event
            pending.done.set()
        self._publish(constants.EVENT_DEVICE_CONNECTED, payload, correlation_id=event.session_id)
        self._publish_status()

    def _on_lost(self, event: BoardLost) -> None:
        with self._lock:
            live = self._live
            if live is None or live.session_id != event.session_id:
                return
            live.state = DeviceState.RECONNECTING
            payload = self._disconnected_payload(live, event.reason, event.message, will_retry=True)
        self._publish(constants.EVENT_DEVICE_DISCONNECTED, payload, correlation_id=event.session_id)
        self._publish_status()

    def _on_reconnect_state(self, event: ReconnectState) -> None:
        payload = {
            "session_id": event.session_id,
            "state": event.state,
            "attempt": event.attempt,
            "max_attempts": event.max_attempts,
            "next_try_in_s": event.next_try_in_s,
            "message": event.message,
        }
        with self._lock:
            if self._live and self._live.session_id == event.session_id:
                self._live.reconnect = payload if event.state in ("waiting", "connecting") else None
        self._publish(constants.EVENT_RECONNECT_STATE, payload, correlation_id=event.session_id)

    def _on_ended(self, event: CaptureEnded) -> None:
        record = self.sessions.get(event.session_id)
        ended_ms = event.last_sample_utc_ms or int(time.time() * 1000)
        if record is not None:
            self.sessions.end(
                event.session_id,
                ended_ms,
                event.n_samples,
                SessionStatus.COMPLETE,
                event.reason,
                started_utc_ms=event.first_sample_utc_ms,
            )
        with self._lock:
            live = self._live
            payload = None
            if live is not None and live.session_id == event.session_id:
                payload = self._disconnected_payload(live, event.reason, event.message, will_retry=False)
                self._live = None
            pending = self._ending.pop(event.session_id, None)
            starting = self._starting.pop(event.session_id, None)
        if starting is not None:
            starting.result = CaptureFailed(event.session_id, "board_unavailable", event.message or event.reason)
            starting.done.set()
        if pending is not None:
            pending.done.set()
        if payload is not None:
            self._publish(constants.EVENT_DEVICE_DISCONNECTED, payload, correlation_id=event.session_id)
            self._publish_status()

    def handle_exit(self, _name: str, code: int | None) -> None:
        """The capture worker died: end whatever it was doing, so nobody waits for it."""
        session_id = self.running_session_id
        with self._lock:
            starting = list(self._starting.values())
            self._starting.clear()
        for pending in starting:
            pending.result = RuntimeError(f"the capture worker exited (code {code}) while opening the board")
            pending.done.set()
        if session_id is not None:
            self._close_from_file(session_id, "error", f"the capture worker exited (code {code})")

    @staticmethod
    def _disconnected_payload(live: _Live, reason: str, message: str, *, will_retry: bool) -> dict[str, Any]:
        return {
            "session_id": live.session_id,
            "device_id": live.device_id,
            "board_id": live.board_id,
            "reason": reason,
            "message": message,
            "will_retry": will_retry,
        }

    def _publish_status(self) -> None:
        self._publish(constants.EVENT_STATUS, self.status())

    # --- crash recovery ---------------------------------------------------------------------

    def recover_interrupted(self) -> list[str]:
        """Close sessions a crash left open, with the end time of their last recorded sample."""
        recovered = []
        for record in self.sessions.recording():
            self._close_from_file(record.id, "interrupted", "the runtime stopped while recording", publish=False)
            recovered.append(record.id)
        if recovered:
            logger.info("closed %d session(s) left open by a crash: %s", len(recovered), ", ".join(recovered))
        return recovered

    def _close_from_file(self, session_id: str, reason: str, message: str, *, publish: bool = True) -> None:
        record = self.sessions.get(session_id)
        if record is not None and record.status == SessionStatus.RECORDING:
            ended_ms, n_samples, started_ms = self._span_of(record)
            self.sessions.end(
                session_id, ended_ms, n_samples, SessionStatus.RECOVERED, reason, started_utc_ms=started_ms
            )
        with self._lock:
            live = self._live
            payload = None
            if live is not None and live.session_id == session_id:
                payload = self._disconnected_payload(live, "error", message, will_retry=False)
                self._live = None
            pending = self._ending.pop(session_id, None)
        if pending is not None:
            pending.done.set()
        if publish and payload is not None:
            self._publish(constants.EVENT_DEVICE_DISCONNECTED, payload, correlation_id=session_id)
            self._publish_status()

    def _span_of(self, record: SessionRecord) -> tuple[int, int, int | None]:
        """End (UTC ms), sample count and start of a recording from its file's complete lines."""
        try:
            span = recording_end(self.data_dir / record.recording_path, record.data_board_id)
        except (OSError, ValueError) as exc:
            logger.warning("session %s: recording unreadable (%s); ending it at its start", record.id, exc)
            span = None
        if span is None:
            return record.started_utc_ms, 0, None
        return int(round(span.end_ms)), span.n_samples, int(round(span.start_ms))

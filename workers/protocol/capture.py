"""Messages of the ``capture`` worker: one session at a time, on a BrainFlow board or an LSL stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .base import Command, Event


@dataclass(frozen=True)
class StartCapture(Command):
    """Open a board and record a session (capture worker).

    ``params`` are the board's input params as a dict, ``pipeline`` the
    :class:`~miso_runtime.neuro.pipeline.PipelineConfig` fields, ``recording_path`` the
    absolute path of the session's raw file. ``playback_speed`` > 1 replays a playback
    file faster than real time; ``stop_at_end`` ends a playback session at the file's end
    (False: the file's end counts as a device that went silent, and reconnects).

    ``lsl`` makes it an LSL session: ``{"source_id", "idle_timeout_s"}`` (seconds or None);
    ``board_id`` is then the LSL board id of the paired channel count (``lsl_board_id``).
    """

    session_id: str
    board_id: int
    params: dict[str, Any]
    recording_path: str
    pipeline: dict[str, Any]
    playback_speed: float = 1.0
    stop_at_end: bool = True
    lsl: dict[str, Any] | None = None


@dataclass(frozen=True)
class StopCapture(Command):
    """End the running session; ``reason`` is reported in ``DeviceDisconnected``."""

    reason: str = "user_cancel"


@dataclass(frozen=True)
class RetryConnect(Command):
    """Reconnect now instead of waiting for the next backoff step."""


@dataclass(frozen=True)
class CancelRetry(Command):
    """Stop reconnecting and end the session."""


@dataclass(frozen=True)
class ConfigurePipeline(Command):
    """New filter/window/epoch settings for the running session (fields of ``PipelineConfig``)."""

    pipeline: dict[str, Any]


@dataclass(frozen=True)
class ConfigureLsl(Command):
    """A new idle timeout (seconds, None: never) for the running LSL session."""

    idle_timeout_s: float | None


@dataclass(frozen=True)
class LslStreamFound(Event):
    """Auto-connect: a paired stream is announced while no session runs; the server starts one."""

    source_id: str


@dataclass(frozen=True)
class CaptureFailed(Event):
    """``StartCapture`` failed before any sample: the board could not be prepared."""

    session_id: str
    code: str  # board_unavailable | invalid_board | busy
    message: str


@dataclass(frozen=True)
class BoardConnected(Event):
    """The board streams; ``layout`` is ``BoardLayout.to_dict()``; ``reconnected`` after a loss."""

    session_id: str
    layout: dict[str, Any]
    reconnected: bool = False


@dataclass(frozen=True)
class BoardLost(Event):
    """Samples stopped (``idle_timeout``) or the board raised (``error``); a reconnect follows."""

    session_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class ReconnectState(Event):
    """Where reconnecting stands: ``waiting`` (``next_try_in_s``), ``connecting``, ``connected``,
    ``gave_up`` or ``cancelled``."""

    session_id: str
    state: str
    attempt: int
    max_attempts: int
    next_try_in_s: float | None
    message: str = ""


@dataclass(frozen=True)
class BandsComputed(Event):
    """One ``EegBands`` payload (about 4 per second)."""

    session_id: str
    payload: dict[str, Any]
    battery: float | None = None


@dataclass(frozen=True)
class EpochStored(Event):
    """An epoch written to SQLite, with its raw EEG (``(n_channels, n_samples)`` µV at
    ``sample_rate_hz``) for the ``embed`` worker; None when the samples were not at hand."""

    session_id: str
    epoch_id: int
    start_utc_ms: int
    end_utc_ms: int
    signal_uv: np.ndarray | None = None
    sample_rate_hz: float = 0.0


@dataclass(frozen=True)
class CaptureEnded(Event):
    """The session is over and its recording closed.

    ``first_sample_utc_ms`` / ``last_sample_utc_ms`` are the board timestamps of the first and
    last recorded sample (None when none arrived); ``reason`` is ``user_cancel``,
    ``idle_timeout``, ``error``, ``end_of_file`` or ``shutdown``.
    """

    session_id: str
    reason: str
    message: str
    first_sample_utc_ms: int | None
    last_sample_utc_ms: int | None
    n_samples: int

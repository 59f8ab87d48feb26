"""The messages that cross the process boundary, as plain dataclasses (pickled over pipes).

Commands go from the server to a worker; events come back. Every message that belongs to one
generation carries its ``request_id`` so that the server can route it to the waiting request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- commands: server -> worker ------------------------------------------------------------


@dataclass(frozen=True)
class Shutdown:
    """Finish what is running at the next token and exit."""


@dataclass(frozen=True)
class LoadModel:
    """Load a GGUF model; the one loaded before stays loaded if this one fails."""

    name: str
    path: str
    n_ctx: int
    n_threads: int | None = None
    n_gpu_layers: int = 0
    chat_format: str | None = None
    mmproj_path: str | None = None


@dataclass(frozen=True)
class UnloadModel:
    """Free the loaded model (the worker stays up)."""


@dataclass(frozen=True)
class GenerationParams:
    """Sampling options of one generation; None leaves llama.cpp's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] | None = None
    seed: int | None = None


@dataclass(frozen=True)
class Generate:
    """One chat generation; ``messages`` are OpenAI-style ``{role, content}`` dicts."""

    request_id: str
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=lambda: GenerationParams())


@dataclass(frozen=True)
class Abort:
    """Stop the generation with this id (None: whatever is running) before its next token."""

    request_id: str | None = None


@dataclass(frozen=True)
class StartCapture:
    """Open a board and record a session (capture worker).

    ``params`` are the board's input params as a dict, ``pipeline`` the
    :class:`~miso_runtime.neuro.pipeline.PipelineConfig` fields, ``recording_path`` the
    absolute path of the session's raw file. ``playback_speed`` > 1 replays a playback
    file faster than real time; ``stop_at_end`` ends a playback session at the file's end
    (False: the file's end counts as a device that went silent, and reconnects).
    """

    session_id: str
    board_id: int
    params: dict[str, Any]
    recording_path: str
    pipeline: dict[str, Any]
    playback_speed: float = 1.0
    stop_at_end: bool = True


@dataclass(frozen=True)
class StopCapture:
    """End the running session; ``reason`` is reported in ``DeviceDisconnected``."""

    reason: str = "user_cancel"


@dataclass(frozen=True)
class RetryConnect:
    """Reconnect now instead of waiting for the next backoff step."""


@dataclass(frozen=True)
class CancelRetry:
    """Stop reconnecting and end the session."""


@dataclass(frozen=True)
class ConfigurePipeline:
    """New filter/window/epoch settings for the running session (fields of ``PipelineConfig``)."""

    pipeline: dict[str, Any]


@dataclass(frozen=True)
class Call:
    """Ask a worker to run one of its published methods (see ``workers/rpc.py``)."""

    call_id: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TerminalAttach:
    """Follow a session's terminal as stream ``stream_id`` (one per ``/ws/terminal`` client).

    ``last_seq``/``epoch``: what a reconnecting client already has (it then gets only what it
    missed); ``seed_lines``: scrollback lines in the first ``full``.
    """

    stream_id: str
    session_id: str
    seed_lines: int
    last_seq: int | None = None
    epoch: str | None = None


@dataclass(frozen=True)
class TerminalClientMessage:
    """A client message of a terminal stream: ``input`` (raw text), ``resize`` (cols, rows),
    ``pause`` or ``resume``."""

    stream_id: str
    type: str
    data: str = ""
    cols: int = 0
    rows: int = 0


@dataclass(frozen=True)
class TerminalDetach:
    stream_id: str


# --- events: worker -> server --------------------------------------------------------------


@dataclass(frozen=True)
class WorkerStarted:
    pid: int


@dataclass(frozen=True)
class LogLine:
    """A log record of the worker, for ``/v1/llm/server/logs`` and the server's log."""

    level: str
    message: str
    ts_ms: int


@dataclass(frozen=True)
class ModelLoaded:
    name: str
    path: str
    n_ctx: int
    chat_format: str | None
    load_ms: float


@dataclass(frozen=True)
class ModelLoadFailed:
    name: str
    path: str
    message: str
    #: Name of the model still loaded (the previous one), if any.
    still_loaded: str | None = None


@dataclass(frozen=True)
class ModelUnloaded:
    name: str | None


@dataclass(frozen=True)
class TextChunk:
    request_id: str
    text: str


@dataclass(frozen=True)
class GenerationDone:
    request_id: str
    finish_reason: str  # stop | length | abort
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    tokens_per_s: float


@dataclass(frozen=True)
class GenerationFailed:
    request_id: str
    code: str  # context_overflow | invalid_request | no_model | generation_error
    message: str


@dataclass(frozen=True)
class CaptureFailed:
    """``StartCapture`` failed before any sample: the board could not be prepared."""

    session_id: str
    code: str  # board_unavailable | invalid_board | busy
    message: str


@dataclass(frozen=True)
class BoardConnected:
    """The board streams; ``layout`` is ``BoardLayout.to_dict()``; ``reconnected`` after a loss."""

    session_id: str
    layout: dict[str, Any]
    reconnected: bool = False


@dataclass(frozen=True)
class BoardLost:
    """Samples stopped (``idle_timeout``) or the board raised (``error``); a reconnect follows."""

    session_id: str
    reason: str
    message: str


@dataclass(frozen=True)
class ReconnectState:
    """Where reconnecting stands: ``waiting`` (``next_try_in_s``), ``connecting``, ``connected``,
    ``gave_up`` or ``cancelled``."""

    session_id: str
    state: str
    attempt: int
    max_attempts: int
    next_try_in_s: float | None
    message: str = ""


@dataclass(frozen=True)
class BandsComputed:
    """One ``EegBands`` payload (about 4 per second)."""

    session_id: str
    payload: dict[str, Any]
    battery: float | None = None


@dataclass(frozen=True)
class EpochStored:
    session_id: str
    epoch_id: int
    start_utc_ms: int
    end_utc_ms: int


@dataclass(frozen=True)
class CaptureEnded:
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


@dataclass(frozen=True)
class CallDone:
    """The answer to a :class:`Call`: a result, or an error as an HTTP status, code and message."""

    call_id: str
    result: Any = None
    status: int = 200
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class AgentsState:
    """The agents worker's workspaces and sessions in the shape of ``GET /api/sessions``."""

    workspaces: list[dict[str, Any]]


@dataclass(frozen=True)
class TerminalOut:
    """A message for one terminal client (``{"type", "content", "seq"}``, ``epoch`` on ``full``);
    ``final`` when the stream ends with it (displaced, reconnect, closed, or refused)."""

    stream_id: str
    message: dict[str, Any]
    final: bool = False


Command = (
    Shutdown
    | LoadModel
    | UnloadModel
    | Generate
    | Abort
    | StartCapture
    | StopCapture
    | RetryConnect
    | CancelRetry
    | ConfigurePipeline
    | Call
    | TerminalAttach
    | TerminalClientMessage
    | TerminalDetach
)
Event = (
    WorkerStarted
    | LogLine
    | ModelLoaded
    | ModelLoadFailed
    | ModelUnloaded
    | TextChunk
    | GenerationDone
    | GenerationFailed
    | CaptureFailed
    | BoardConnected
    | BoardLost
    | ReconnectState
    | BandsComputed
    | EpochStored
    | CaptureEnded
    | CallDone
    | AgentsState
    | TerminalOut
)


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor starts: a name and the ``module:function`` that runs the worker."""

    name: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)

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


Command = Shutdown | LoadModel | UnloadModel | Generate | Abort
Event = (
    WorkerStarted
    | LogLine
    | ModelLoaded
    | ModelLoadFailed
    | ModelUnloaded
    | TextChunk
    | GenerationDone
    | GenerationFailed
)


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor starts: a name and the ``module:function`` that runs the worker."""

    name: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)

"""Messages of the ``llm`` worker: model loads and chat generations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import Command, Event


@dataclass(frozen=True)
class LoadModel(Command):
    """Load a GGUF model; the one loaded before stays loaded if this one fails."""

    name: str
    path: str
    n_ctx: int
    n_threads: int | None = None
    n_gpu_layers: int = 0
    chat_format: str | None = None
    mmproj_path: str | None = None


@dataclass(frozen=True)
class UnloadModel(Command):
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
class Generate(Command):
    """One chat generation; ``messages`` are OpenAI-style ``{role, content}`` dicts."""

    request_id: str
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=lambda: GenerationParams())


@dataclass(frozen=True)
class Abort(Command):
    """Stop the generation with this id (None: whatever is running) before its next token."""

    request_id: str | None = None


@dataclass(frozen=True)
class ModelLoaded(Event):
    name: str
    path: str
    n_ctx: int
    chat_format: str | None
    load_ms: float


@dataclass(frozen=True)
class ModelLoadFailed(Event):
    name: str
    path: str
    message: str
    #: Name of the model still loaded (the previous one), if any.
    still_loaded: str | None = None


@dataclass(frozen=True)
class ModelUnloaded(Event):
    name: str | None


@dataclass(frozen=True)
class TextChunk(Event):
    request_id: str
    text: str


@dataclass(frozen=True)
class GenerationDone(Event):
    request_id: str
    finish_reason: str  # stop | length | abort
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    tokens_per_s: float


@dataclass(frozen=True)
class GenerationFailed(Event):
    request_id: str
    code: str  # context_overflow | invalid_request | no_model | generation_error
    message: str

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
    #: Hold the answer to one JSON object of this schema (a grammar made from it).
    json_schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class ToolRequest:
    """The function tools of a generation and how the model may use them (already validated).

    ``tools`` are OpenAI function tools (``{"type": "function", "function": {...}}``), all of
    which the prompt shows; ``allowed`` names the ones a call may use (a named ``tool_choice``
    or ``allowed_tools`` narrows it). ``mode`` is ``auto`` (text, or calls) or ``required``
    (one call at least, nothing else); ``tool_choice: "none"`` sends no ToolRequest at all.
    ``parallel`` lets one answer hold several calls.
    """

    tools: tuple[dict[str, Any], ...]
    allowed: tuple[str, ...]
    mode: str = "auto"  # auto | required
    parallel: bool = True


@dataclass(frozen=True)
class Generate(Command):
    """One chat generation; ``messages`` are OpenAI-style chat messages.

    Plain turns are ``{role, content}``; assistant turns may carry ``tool_calls`` (``content``
    None) and ``tool`` turns ``tool_call_id`` (and ``name``), exactly as OpenAI's clients send them.
    """

    request_id: str
    messages: list[dict[str, Any]]
    params: GenerationParams = field(default_factory=lambda: GenerationParams())
    tools: ToolRequest | None = None


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
class ToolCallDelta(Event):
    """A piece of tool call ``index``: its first piece has ``id`` and ``name``, the rest ``arguments`` text.

    The pieces of one call, joined, are its arguments (JSON text); OpenAI streams them the same way.
    """

    request_id: str
    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True)
class GenerationDone(Event):
    request_id: str
    finish_reason: str  # stop | length | tool_calls | abort
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float | None
    tokens_per_s: float


@dataclass(frozen=True)
class GenerationFailed(Event):
    request_id: str
    code: str  # context_overflow | invalid_request | no_model | generation_error
    message: str

"""Plain values that flow between the chat service and its providers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatTurn:
    """One message of a conversation as sent to a model."""

    role: str  # system | user | assistant
    content: str


@dataclass(frozen=True)
class ModelRef:
    """A model on a provider; ``id`` is the ``provider:model`` form the contract uses."""

    provider: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling options; None leaves the provider's default."""

    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class ResponseSchema:
    """An answer that must be one JSON object of ``schema`` (a one-shot structured call).

    ``name`` labels it where a provider wants a name (OpenAI's ``json_schema.name``, the name of
    Anthropic's forced tool): letters, digits, ``_`` and ``-``.
    """

    name: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ProviderCall:
    """Everything a provider needs for one generation.

    ``api_key`` is the key for this call only (a per-request key wins over the configured
    one); it lives in memory for the duration of the call and is never logged or stored.
    ``response_schema`` holds the answer to one JSON object where the provider can (the text
    still streams as ``TextDelta`` pieces of that object).
    """

    model: str
    messages: list[ChatTurn]
    options: GenerationOptions = field(default_factory=GenerationOptions)
    api_key: str | None = field(default=None, repr=False)
    response_schema: ResponseSchema | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of generated text."""

    text: str


@dataclass(frozen=True)
class UsageReport:
    """Token counts as the provider reported them (None where it did not)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None


ProviderItem = TextDelta | UsageReport


class ProviderError(Exception):
    """A provider failed; ``code`` is one of the contract's stream error codes.

    Codes: ``provider_auth`` (key refused), ``provider_unavailable`` (cannot connect, timed
    out, overloaded, 5xx), ``rate_limited``, ``provider_error`` (the provider reported an
    error, e.g. an unknown model or a mid-stream error), ``stream_failed`` (the stream broke
    off without a reason).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

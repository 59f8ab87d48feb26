"""Which model a chat request runs on.

Precedence, first match wins:

1. ``modelId`` / ``model_id`` (``provider:model``);
2. ``provider`` together with ``model``;
3. a ``provider:model`` string in ``model`` (only when the prefix names a known provider, since
   Ollama model names carry colons of their own, e.g. ``deepseek-r1:14b``);
4. the configured default (``MISO_PROVIDER`` / ``MISO_MODEL``).

``provider`` alone picks that provider's default model; ``model`` alone (no known prefix)
runs on the default provider.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import constants
from ..errors import MisoError
from .types import ModelRef


@dataclass(frozen=True)
class ModelSelector:
    """The model fields of a request, as given."""

    model_id: str | None = None
    provider: str | None = None
    model: str | None = None


def _unknown_provider(name: str, known: list[str]) -> MisoError:
    return MisoError(400, "unknown_provider", f"unknown provider {name!r}; known providers: {', '.join(known)}")


def _split(text: str, known: list[str]) -> tuple[str | None, str]:
    """Split ``provider:model`` when the prefix is a known provider; else no provider."""
    prefix, sep, rest = text.partition(":")
    if sep and prefix in known and rest:
        return prefix, rest
    return None, text


def default_model(
    configured_provider: str | None,
    configured_model: str | None,
    keyed: list[str],
    known: list[str],
    local_model: str | None = None,
) -> ModelRef:
    """The configured default; with nothing configured, the first cloud provider that has a key,
    else the local model when one is on disk (``local_model``), else Ollama."""
    provider = configured_provider
    model = configured_model
    if model:
        prefix, rest = _split(model, known)
        if prefix and not provider:
            provider, model = prefix, rest
    if not provider:
        if keyed:
            provider = keyed[0]
        elif local_model and "local" in known:
            provider, model = "local", model or local_model
        else:
            provider = "ollama"
    if provider == "local" and not model and local_model:
        model = local_model
    return ModelRef(provider, model or constants.DEFAULT_CHAT_MODELS.get(provider, ""))


def select_model(selector: ModelSelector, default: ModelRef, known: list[str]) -> ModelRef:
    """Apply the precedence above; raises MisoError(400) for an unknown provider."""
    if selector.model_id:
        prefix, sep, rest = selector.model_id.strip().partition(":")
        if not sep or not rest:
            raise MisoError(400, "invalid_request", "modelId must look like 'provider:model', e.g. 'openai:gpt-5'")
        if prefix not in known:
            raise _unknown_provider(prefix, known)
        return ModelRef(prefix, rest)
    provider = (selector.provider or "").strip() or None
    model = (selector.model or "").strip() or None
    if provider:
        if provider not in known:
            raise _unknown_provider(provider, known)
        if model:
            prefix, rest = _split(model, known)
            if prefix == provider:
                model = rest
            return ModelRef(provider, model)
        default_for_provider = (
            default.model if default.provider == provider else constants.DEFAULT_CHAT_MODELS.get(provider, "")
        )
        return ModelRef(provider, default_for_provider)
    if model:
        prefix, rest = _split(model, known)
        if prefix:
            return ModelRef(prefix, rest)
        return ModelRef(default.provider, model)
    return default

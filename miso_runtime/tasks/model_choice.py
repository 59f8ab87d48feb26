"""Which model a task's model name runs on (``TasksConfig.model_map`` and provider prefixes).

Resolution, first match wins: the name in the map; ``provider/model`` or ``provider:model`` with
a known provider. Anything else is Maria's 404 ``Model not found``. A provider that cannot run
here (a cloud provider without a key, Ollama not listening) gives way to the runtime's default
chat model, so a fresh install with only the embedded model still runs tasks.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from .. import constants
from ..chat.types import ModelRef
from ..errors import MisoError
from .launch import ModelSpec
from .settings import TasksConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProviderAccess:
    """How to reach each provider: keys and URLs from the runtime's settings."""

    openai_key: str | None
    openai_base_url: str | None
    anthropic_key: str | None
    anthropic_base_url: str | None
    ollama_host: str
    #: The runtime's own ``/v1`` URL and a token for it (the local model), once serving.
    local_base_url: Callable[[], str | None]
    local_token: str
    #: Tokens of context of the local model (the configured ``n_ctx``).
    local_context_tokens: Callable[[], int]
    default_model: Callable[[], ModelRef]
    local_model_name: Callable[[], str | None]


def model_not_found(name: str) -> MisoError:
    return MisoError(404, "model_not_found", f"Model not found: {name}")


def requested_ref(name: str, config: TasksConfig) -> ModelRef:
    """The provider and model a name means; raises Maria's 404 for a name nothing maps."""
    target = config.model_map.get(name)
    if target is None:
        for separator in ("/", ":"):
            provider, sep, model = name.partition(separator)
            if sep and provider in constants.CHAT_PROVIDERS and model.strip():
                target = f"{provider}:{model}"
                break
    if target is None:
        if name == "local":
            target = "local"
        else:
            raise model_not_found(name)
    provider, _, model = target.partition(":")
    return ModelRef(provider, model)


def _ollama_listens(host: str) -> bool:
    parts = urlsplit(host if "://" in host else f"http://{host}")
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 11434), constants.TASK_OLLAMA_PROBE_S
        ):
            return True
    except OSError:
        return False


def _usable(ref: ModelRef, access: ProviderAccess) -> bool:
    if ref.provider == "openai":
        return bool(access.openai_key)
    if ref.provider == "anthropic":
        return bool(access.anthropic_key)
    if ref.provider == "ollama":
        return _ollama_listens(access.ollama_host)
    return bool(ref.model or access.local_model_name())


def context_tokens(ref: ModelRef, access: ProviderAccess) -> int:
    if ref.provider == "local":
        return access.local_context_tokens()
    for prefix, tokens in constants.TASK_CONTEXT_TOKENS_BY_PREFIX.items():
        if f"{ref.provider}:{ref.model}".startswith(prefix):
            return tokens
    return constants.TASK_CONTEXT_TOKENS_DEFAULT


def spec_for(ref: ModelRef, access: ProviderAccess) -> ModelSpec:
    if ref.provider == "openai":
        return ModelSpec("openai", ref.model, context_tokens(ref, access), access.openai_key, access.openai_base_url)
    if ref.provider == "anthropic":
        return ModelSpec(
            "anthropic", ref.model, context_tokens(ref, access), access.anthropic_key, access.anthropic_base_url
        )
    if ref.provider == "ollama":
        return ModelSpec("ollama", ref.model, context_tokens(ref, access), None, access.ollama_host)
    model = ref.model or access.local_model_name() or ""
    return ModelSpec("local", model, context_tokens(ref, access), access.local_token, access.local_base_url())


def resolve(name: str, config: TasksConfig, access: ProviderAccess) -> ModelSpec:
    """The model a task asking for ``name`` runs on (see the module docstring)."""
    ref = requested_ref(name, config)
    if not _usable(ref, access):
        fallback = access.default_model()
        logger.info("model %s (%s) cannot run here; the task runs on %s", name, ref.id, fallback.id)
        ref = fallback
    return spec_for(ref, access)

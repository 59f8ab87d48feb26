"""Ollama ``/api/chat``, streamed as NDJSON through the official ``ollama`` client.

Ollama needs no key. Usage comes from the final line (``prompt_eval_count``,
``eval_count``). A line ``{"error": ...}`` in the middle of a stream raises
``ollama.ResponseError`` in the client and becomes a stream error here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator

import httpx

from ... import constants
from ..types import ProviderCall, ProviderError, ProviderItem, TextDelta, UsageReport
from .base import ClientCache

if TYPE_CHECKING:
    import ollama

logger = logging.getLogger(__name__)


def _sdk():
    """The ``ollama`` client library, imported on first use: it takes a second or more to
    import, which would otherwise delay the ready line of every start."""
    import ollama

    return ollama


def _error(exc: Exception) -> ProviderError:
    """Map an ``ollama`` or transport exception to the contract's stream error codes."""
    ollama = _sdk()
    if isinstance(exc, ollama.ResponseError):
        if exc.status_code in (401, 403):
            return ProviderError("provider_auth", f"Ollama refused the request: {exc.error}")
        if exc.status_code == 429:
            return ProviderError("rate_limited", f"Ollama rate limit: {exc.error}")
        if exc.status_code >= 500:
            return ProviderError("provider_unavailable", f"Ollama is unavailable: {exc.error}")
        return ProviderError("provider_error", f"Ollama error: {exc.error}")
    if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.TimeoutException)):
        return ProviderError("provider_unavailable", f"cannot reach Ollama: {exc}")
    return ProviderError("stream_failed", f"the Ollama stream broke off: {exc}")


class OllamaProvider:
    name = "ollama"
    requires_key = False

    def __init__(self, host: str) -> None:
        self._host = host
        self._clients: ClientCache[ollama.Client] = ClientCache(self._new_client)

    @staticmethod
    def _new_client(host: str | None, _api_key: str | None) -> ollama.Client:
        ollama = _sdk()
        timeout = httpx.Timeout(constants.PROVIDER_READ_TIMEOUT_S, connect=constants.PROVIDER_CONNECT_TIMEOUT_S)
        return ollama.Client(host=host, timeout=timeout)

    def warm_up(self) -> None:
        _sdk()

    def configured_key(self) -> str | None:
        return None

    def stream(self, call: ProviderCall) -> Iterator[ProviderItem]:
        client = self._clients.get(self._host, None)
        options: dict[str, Any] = {}
        if call.options.temperature is not None:
            options["temperature"] = call.options.temperature
        if call.options.max_tokens is not None:
            options["num_predict"] = call.options.max_tokens
        parts = client.chat(
            model=call.model,
            messages=[{"role": turn.role, "content": turn.content} for turn in call.messages],
            stream=True,
            options=options or None,
            # Ollama holds the answer to a JSON schema given as ``format``.
            format=call.response_schema.schema if call.response_schema is not None else None,
        )
        try:
            for part in parts:
                if part.message and part.message.content:
                    yield TextDelta(part.message.content)
                if part.done:
                    yield UsageReport(part.prompt_eval_count, part.eval_count)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _error(exc) from exc
        finally:
            parts.close()

    def list_models(self) -> list[str]:
        ollama = _sdk()
        # A client of its own with a short timeout: the catalog must answer fast when Ollama
        # is not running, and a chat client's long read timeout must not apply here.
        client = ollama.Client(host=self._host, timeout=constants.CATALOG_TIMEOUT_S)
        try:
            return [model.model for model in client.list().models if model.model]
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc

"""OpenAI Chat Completions, streamed through the official ``openai`` client.

Usage comes from the final chunk that ``stream_options.include_usage`` asks for. Any server
that speaks this API (with a base URL ending in ``/v1``) works the same way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator

from ... import constants
from ..types import ProviderCall, ProviderError, ProviderItem, TextDelta, UsageReport
from .base import ClientCache

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)


def _sdk():
    """The ``openai`` client library, imported on first use: it takes a second or more to
    import, which would otherwise delay the ready line of every start."""
    import openai

    return openai


def _error(exc: Exception) -> ProviderError:
    """Map an ``openai`` exception to the contract's stream error codes."""
    openai = _sdk()
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return ProviderError("provider_auth", f"OpenAI refused the API key: {_detail(exc)}")
    if isinstance(exc, openai.RateLimitError):
        return ProviderError("rate_limited", f"OpenAI rate limit: {_detail(exc)}")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("provider_unavailable", f"cannot reach OpenAI: {exc}")
    if isinstance(exc, openai.InternalServerError):
        return ProviderError("provider_unavailable", f"OpenAI is unavailable: {_detail(exc)}")
    if isinstance(exc, openai.APIError):
        return ProviderError("provider_error", f"OpenAI error: {_detail(exc)}")
    return ProviderError("stream_failed", f"the OpenAI stream broke off: {exc}")


def _detail(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)
    return str(getattr(exc, "message", None) or exc)


class OpenAIProvider:
    name = "openai"
    requires_key = True

    def __init__(self, api_key: str | None, base_url: str | None) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._clients: ClientCache[openai.OpenAI] = ClientCache(self._new_client)

    @staticmethod
    def _new_client(base_url: str | None, api_key: str | None) -> openai.OpenAI:
        openai = _sdk()
        return openai.OpenAI(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=openai.Timeout(constants.PROVIDER_READ_TIMEOUT_S, connect=constants.PROVIDER_CONNECT_TIMEOUT_S),
        )

    def warm_up(self) -> None:
        _sdk()

    def configured_key(self) -> str | None:
        return self._api_key

    def stream(self, call: ProviderCall) -> Iterator[ProviderItem]:
        client = self._clients.get(self._base_url, call.api_key or self._api_key)
        kwargs: dict[str, Any] = {
            "model": call.model,
            "messages": [{"role": turn.role, "content": turn.content} for turn in call.messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if call.options.temperature is not None:
            kwargs["temperature"] = call.options.temperature
        if call.options.max_tokens is not None:
            kwargs["max_completion_tokens"] = call.options.max_tokens
        try:
            stream = client.chat.completions.create(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _error(exc) from exc
        with stream:
            try:
                for chunk in stream:
                    for choice in chunk.choices:
                        if choice.delta and choice.delta.content:
                            yield TextDelta(choice.delta.content)
                    if chunk.usage is not None:
                        yield UsageReport(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
            except Exception as exc:  # noqa: BLE001
                raise _error(exc) from exc

    def list_models(self) -> list[str]:
        client = self._clients.get(self._base_url, self._api_key)
        try:
            page = client.with_options(timeout=constants.CATALOG_TIMEOUT_S).models.list()
            return sorted(model.id for model in page)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc

"""Anthropic Messages, streamed through the official ``anthropic`` client.

System turns go to the ``system`` parameter (the Messages API has no system role). Usage
comes from ``message_start`` (input tokens) and ``message_delta`` (output tokens). An
``event: error`` that arrives after the HTTP 200 surfaces as an exception in the client and
becomes a stream error here, never a silent end.

The current Messages API (and its client) has no ``temperature``; a request's temperature is
therefore not sent to Anthropic rather than failing the whole request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterator

from ... import constants
from ..types import ProviderCall, ProviderError, ProviderItem, TextDelta, UsageReport
from .base import ClientCache

if TYPE_CHECKING:
    import anthropic

logger = logging.getLogger(__name__)


def _sdk():
    """The ``anthropic`` client library, imported on first use: it takes a second or more to
    import, which would otherwise delay the ready line of every start."""
    import anthropic

    return anthropic


_CODE_BY_ERROR_TYPE = {
    "authentication_error": "provider_auth",
    "permission_error": "provider_auth",
    "rate_limit_error": "rate_limited",
    "overloaded_error": "provider_unavailable",
    "api_error": "provider_unavailable",
}


def _error_type(exc: Exception) -> tuple[str | None, str]:
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        return error.get("type"), str(error.get("message") or exc)
    return None, str(getattr(exc, "message", None) or exc)


def _error(exc: Exception) -> ProviderError:
    """Map an ``anthropic`` exception to the contract's stream error codes."""
    anthropic = _sdk()
    error_type, message = _error_type(exc)
    if error_type in _CODE_BY_ERROR_TYPE:
        return ProviderError(_CODE_BY_ERROR_TYPE[error_type], f"Anthropic: {message}")
    if isinstance(exc, (anthropic.AuthenticationError, anthropic.PermissionDeniedError)):
        return ProviderError("provider_auth", f"Anthropic refused the API key: {message}")
    if isinstance(exc, anthropic.RateLimitError):
        return ProviderError("rate_limited", f"Anthropic rate limit: {message}")
    if isinstance(exc, anthropic.APIConnectionError):
        return ProviderError("provider_unavailable", f"cannot reach Anthropic: {exc}")
    if isinstance(exc, anthropic.APIStatusError) and exc.status_code >= 500:
        return ProviderError("provider_unavailable", f"Anthropic is unavailable: {message}")
    if isinstance(exc, anthropic.APIError):
        return ProviderError("provider_error", f"Anthropic error: {message}")
    return ProviderError("stream_failed", f"the Anthropic stream broke off: {exc}")


class AnthropicProvider:
    name = "anthropic"
    requires_key = True

    def __init__(self, api_key: str | None, base_url: str | None) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._clients: ClientCache[anthropic.Anthropic] = ClientCache(self._new_client)

    @staticmethod
    def _new_client(base_url: str | None, api_key: str | None) -> anthropic.Anthropic:
        anthropic = _sdk()
        return anthropic.Anthropic(
            api_key=api_key or "unset",
            base_url=base_url,
            max_retries=0,
            timeout=anthropic.Timeout(constants.PROVIDER_READ_TIMEOUT_S, connect=constants.PROVIDER_CONNECT_TIMEOUT_S),
        )

    def warm_up(self) -> None:
        _sdk()

    def configured_key(self) -> str | None:
        return self._api_key

    def stream(self, call: ProviderCall) -> Iterator[ProviderItem]:
        client = self._clients.get(self._base_url, call.api_key or self._api_key)
        system = "\n\n".join(turn.content for turn in call.messages if turn.role == "system")
        kwargs: dict[str, Any] = {
            "model": call.model,
            "messages": [
                {"role": turn.role, "content": turn.content} for turn in call.messages if turn.role != "system"
            ],
            "max_tokens": call.options.max_tokens or constants.ANTHROPIC_DEFAULT_MAX_TOKENS,
            "stream": True,
        }
        if system:
            kwargs["system"] = system
        if call.response_schema is not None:
            # The Messages API has no JSON mode: one forced tool whose input is the schema's object.
            name = call.response_schema.name
            kwargs["tools"] = [
                {"name": name, "description": "Give the answer.", "input_schema": call.response_schema.schema}
            ]
            kwargs["tool_choice"] = {"type": "tool", "name": name}
        try:
            stream = client.messages.create(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _error(exc) from exc
        prompt_tokens: int | None = None
        with stream:
            try:
                for event in stream:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield TextDelta(event.delta.text)
                    elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                        if event.delta.partial_json:  # the forced tool's input: the structured answer
                            yield TextDelta(event.delta.partial_json)
                    elif event.type == "message_start":
                        prompt_tokens = event.message.usage.input_tokens
                    elif event.type == "message_delta" and event.usage is not None:
                        yield UsageReport(prompt_tokens, event.usage.output_tokens)
            except Exception as exc:  # noqa: BLE001
                raise _error(exc) from exc

    def list_models(self) -> list[str]:
        client = self._clients.get(self._base_url, self._api_key)
        try:
            page = client.with_options(timeout=constants.CATALOG_TIMEOUT_S).models.list(limit=100)
            return [model.id for model in page.data]
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc

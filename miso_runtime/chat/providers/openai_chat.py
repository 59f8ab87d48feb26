"""OpenAI Chat Completions, streamed through the official ``openai`` client.

Usage comes from the final chunk that ``stream_options.include_usage`` asks for. Any server
that speaks this API (with a base URL ending in ``/v1``) works the same way.
"""

from __future__ import annotations

import json
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


def _sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
    if data:
        yield "\n".join(data)


def _chunks(lines: Iterator[str]) -> Iterator[ProviderItem]:
    """Text and usage from ``chat.completion.chunk`` events, until ``[DONE]``."""
    events = _sse_data(lines)
    for data in events:
        if data == "[DONE]":
            for _rest in events:  # read to the end so that the connection can be reused
                pass
            return
        chunk = json.loads(data)
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError("provider_error", f"OpenAI error: {message or 'error during streaming'}")
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield TextDelta(content)
        usage = chunk.get("usage")
        if usage:
            yield UsageReport(usage.get("prompt_tokens"), usage.get("completion_tokens"))
    raise ProviderError("stream_failed", "the OpenAI stream ended without [DONE]")


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
        """Stream one reply.

        The official client sends the request, checks its status and maps errors; the chunks
        are read as raw SSE lines and decoded with ``json.loads``. The client's own stream
        builds a pydantic object per chunk, which was nearly all of this process's CPU per
        token, and it closes the connection after ``[DONE]``; reading the body to its end here
        lets the pooled connection serve the next request without a new handshake.
        """
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
        if call.response_schema is not None:  # Structured Outputs: the answer is one object of the schema
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": call.response_schema.name,
                    "schema": call.response_schema.schema,
                    "strict": True,
                },
            }
        try:
            with client.chat.completions.with_streaming_response.create(**kwargs) as response:
                yield from _chunks(response.iter_lines())
        except ProviderError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _error(exc) from exc

    def list_models(self) -> list[str]:
        client = self._clients.get(self._base_url, self._api_key)
        try:
            page = client.with_options(timeout=constants.CATALOG_TIMEOUT_S).models.list()
            return sorted(model.id for model in page)
        except Exception as exc:  # noqa: BLE001
            raise _error(exc) from exc

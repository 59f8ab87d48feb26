"""Anthropic Messages stand-in, wire-compatible with the official ``anthropic`` client.

What the installed client (anthropic 2.x) does with it, read from its source:

- HTTP 4xx/5xx: ``make_status_error`` picks the class by status: 401 ``AuthenticationError``,
  404 ``NotFoundError``, 429 ``RateLimitError``, 500 ``InternalServerError``, 503
  ``ServiceUnavailableError``, 529 ``OverloadedError`` (the last two subclass
  ``InternalServerError``). 429 and 5xx are retried ``max_retries`` times first.
- Mid-stream ``event: error``: ``Stream.__stream__`` raises ``make_status_error`` against the
  200 response, so it is a plain ``APIStatusError`` with ``status_code == 200`` and ``type``
  set from the body (e.g. ``"overloaded_error"``); ``messages.stream()`` raises the same.
- Authentication: the SDK sends ``api_key`` as ``Authorization: Bearer``, not ``x-api-key``;
  the stand-in checks ``x-api-key`` when present (raw callers), else the Bearer token.
- ``event: ping`` is skipped by the client, so only a raw reader sees pings.
- Dropped connection: the SDK's stream does not wrap transport errors, so the raw
  ``httpx2.RemoteProtocolError`` (incomplete chunked read) reaches the caller.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from .server import Exchange, Script, StandInServer, StreamFrames, bearer_token, new_id

_DATED = re.compile(r"^(?P<stem>.+)-(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})$")
_UNDATED_CREATED_AT = "2025-01-01T00:00:00Z"

# status -> (error type, message); {model} is filled in. Texts follow what the API returns.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Request body is not valid JSON."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "model: {model}"),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per minute. "
        "Please reduce the prompt length or the maximum tokens requested, or try again later.",
    ),
    500: ("api_error", "Internal server error"),
    503: ("api_error", "Service unavailable"),
    529: ("overloaded_error", "Overloaded"),
}


def _event(name: str, payload: dict[str, Any]) -> bytes:
    """One SSE event with the ``event:`` line Anthropic always sends."""
    data = json.dumps(payload, separators=(",", ":"))
    return f"event: {name}\ndata: {data}\n\n".encode()


_PING = _event("ping", {"type": "ping"})


def _model_info(model_id: str) -> dict[str, Any]:
    """A ``/v1/models`` entry; the display name and date come from the id, as the API's do."""
    dated = _DATED.match(model_id)
    stem = dated["stem"] if dated else model_id
    created_at = f"{dated['y']}-{dated['m']}-{dated['d']}T00:00:00Z" if dated else _UNDATED_CREATED_AT
    words: list[str] = []
    for part in stem.split("-"):
        if part.isdigit() and words and words[-1][-1].isdigit():
            words[-1] += f".{part}"
        else:
            words.append(part.capitalize())
    return {
        "type": "model",
        "id": model_id,
        "display_name": " ".join(words),
        "created_at": created_at,
        "lifecycle": "active",
    }


class AnthropicStandIn(StandInServer):
    """Serves ``POST /v1/messages`` and ``GET /v1/models``; point clients at :attr:`base_url`."""

    default_models: ClassVar[tuple[str, ...]] = (
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5-20251001",
        "claude-opus-4-1-20250805",
    )

    @property
    def base_url(self) -> str:
        """What ``anthropic.Anthropic(base_url=...)`` takes: ``http://127.0.0.1:PORT``."""
        return self.url

    def response_headers(self) -> dict[str, str]:
        return {"request-id": new_id("req_", 24)}

    def error_body(self, status: int, model: str) -> dict[str, Any]:
        kind, message = _ERRORS.get(
            status, _ERRORS[500] if status >= 500 else ("invalid_request_error", f"Error {status}")
        )
        return {"type": "error", "error": {"type": kind, "message": message.format(model=model)}}

    def handle(self, exchange: Exchange, script: Script) -> None:
        request = exchange.request
        # The API takes the key as x-api-key; the installed SDK sends it as a Bearer token.
        if not self.api_key_ok(script, request.headers.get("x-api-key", bearer_token(request))):
            self.send_error(exchange, 401, "")
            return
        route = (request.method, request.path)
        if route == ("GET", "/v1/models"):
            self._list_models(exchange, script)
        elif route == ("POST", "/v1/messages"):
            self._messages(exchange, script)
        else:
            exchange.send_json(
                404,
                {"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}},
                self.response_headers(),
            )

    def _list_models(self, exchange: Exchange, script: Script) -> None:
        if script.http_error is not None:
            self.send_error(exchange, script.http_error, "")
            return
        data = [_model_info(name) for name in self.models]
        page = {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
        exchange.send_json(200, page, self.response_headers())

    def _messages(self, exchange: Exchange, script: Script) -> None:
        body = exchange.json
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            self.send_error(exchange, 400, "")
            return
        model: str = body["model"]
        if script.http_error is not None:
            self.send_error(exchange, script.http_error, model)
            return
        message = _Message(model, script)
        if body.get("stream"):
            self.stream(exchange, script, message.frames())
        elif self.generate_blocking(exchange, script, model):
            exchange.send_json(200, message.whole(), self.response_headers())


class _Message:
    """The events of one assistant message, all sharing its id."""

    def __init__(self, model: str, script: Script) -> None:
        self.model = model
        self.script = script
        self.id = new_id("msg_01", 22)

    def _message(self, content: list[dict[str, Any]], stop_reason: str | None, output_tokens: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.script.prompt_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": output_tokens,
                "service_tier": "standard",
            },
        }

    def frames(self) -> StreamFrames:
        ping_every = self.script.ping_every

        def token(index: int, text: str) -> bytes:
            delta = _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
            )
            return delta + _PING if ping_every and (index + 1) % ping_every == 0 else delta

        closing = (
            _event("content_block_stop", {"type": "content_block_stop", "index": 0})
            + _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": self.script.completion_token_count},
                },
            )
            + _event("message_stop", {"type": "message_stop"})
        )
        opening = (
            # The API reports output_tokens 1 at message_start, before generation.
            _event("message_start", {"type": "message_start", "message": self._message([], None, 1)})
            + _PING
            + _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        )
        return StreamFrames(
            content_type="text/event-stream; charset=utf-8",
            opening=opening,
            token=token,
            closing=lambda: closing,
            error=_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )

    def whole(self) -> dict[str, Any]:
        content = [{"type": "text", "text": self.script.text}]
        return self._message(content, "end_turn", self.script.completion_token_count)

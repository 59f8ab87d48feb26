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
- Tool calls: each is a ``content_block_start`` with a ``tool_use`` block (``ToolUseBlock``,
  ``id`` ``toolu_…``, ``input: {}``), ``content_block_delta`` events with ``input_json_delta``
  pieces of its JSON (``InputJSONDelta.partial_json``), then ``content_block_stop``; text, when
  the turn has some, is block 0 before them; ``message_delta`` says ``stop_reason: "tool_use"``.
  A whole message carries ``input`` as an object: a scripted str that is not a JSON object is
  sent as a JSON string there (the API itself always sends an object).
- Requests: roles must alternate and every ``tool_use`` block must be answered by a
  ``tool_result`` with its ``tool_use_id`` in the very next (user) message, and every
  ``tool_result`` must answer one; otherwise the API's 400 (``BadRequestError``,
  ``invalid_request_error``). The API has since learnt to merge consecutive messages of one
  role; the stand-in keeps the older, stricter rule, so that a client passes both.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar

from .server import Exchange, Piece, Reply, Script, StandInServer, StreamFrames, bearer_token, new_id

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


def _invalid(message: str) -> dict[str, Any]:
    """The body of a 400 the API answers when it refuses a request's content."""
    return {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


def _blocks(message: dict[str, Any], kind: str) -> list[tuple[int, dict[str, Any]]]:
    """The (position, block) of each content block of one type; a str content has none."""
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [(i, block) for i, block in enumerate(content) if isinstance(block, dict) and block.get("type") == kind]


def check_messages(body: dict[str, Any]) -> dict[str, Any] | None:
    """The API's 400 body for a conversation it refuses, or None when the request is fine.

    Checks what a client's bookkeeping gets wrong: alternating roles, and each ``tool_use``
    answered by a ``tool_result`` in the next message (and no ``tool_result`` answering nothing).
    """
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    previous_role: str | None = None
    asked: dict[str, None] = {}  # tool_use ids of the previous (assistant) message, in order
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == previous_role:
            return _invalid(
                f'messages: roles must alternate between "user" and "assistant", but found multiple "{role}" roles '
                "in a row"
            )
        answered = {str(block.get("tool_use_id")): i for i, block in _blocks(message, "tool_result")}
        for call_id, position in answered.items():
            if call_id not in asked:
                return _invalid(
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{call_id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous "
                    "message."
                )
        missing = [call_id for call_id in asked if call_id not in answered]
        if missing:
            return _invalid(
                f"messages.{index - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                "next message."
            )
        asked = {str(block.get("id")): None for _, block in _blocks(message, "tool_use")}
        previous_role = role
    if asked:
        return _invalid(
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
            f"{', '.join(asked)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
            "next message."
        )
    return None


def _call_id() -> str:
    return new_id("toolu_01", 22)


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
        refusal = check_messages(body)
        if refusal is not None:
            exchange.send_json(400, refusal, self.response_headers())
            return
        if script.http_error is not None:
            self.send_error(exchange, script.http_error, model)
            return
        message = _Message(model, script, script.reply(body, _call_id))
        if body.get("stream"):
            self.stream(exchange, script, message.frames())
        elif self.generate_blocking(exchange, script, model, len(message.reply.pieces())):
            exchange.send_json(200, message.whole(), self.response_headers())


class _Message:
    """The events of one assistant message, all sharing its id.

    Text, when there is any (or when there is nothing else), is content block 0; each tool call
    is a block after it.
    """

    def __init__(self, model: str, script: Script, reply: Reply) -> None:
        self.model = model
        self.script = script
        self.reply = reply
        self.id = new_id("msg_01", 22)
        self.text_block = bool(reply.texts) or not reply.calls
        self.first_call_block = 1 if self.text_block else 0

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.reply.calls else "end_turn"

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

    def _piece(self, piece: Piece) -> bytes:
        if piece.call is None:
            delta = {"type": "text_delta", "text": piece.text}
            return _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
        block = self.first_call_block + piece.call
        if not piece.opens:
            delta = {"type": "input_json_delta", "partial_json": piece.text}
            return _event("content_block_delta", {"type": "content_block_delta", "index": block, "delta": delta})
        call = self.reply.calls[piece.call]
        start = _event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": block,
                "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
            },
        )
        if block == 0:
            return start
        return _event("content_block_stop", {"type": "content_block_stop", "index": block - 1}) + start

    def frames(self) -> StreamFrames:
        ping_every = self.script.ping_every

        def token(index: int, piece: Piece) -> bytes:
            frame = self._piece(piece)
            return frame + _PING if ping_every and (index + 1) % ping_every == 0 else frame

        last_block = self.first_call_block + len(self.reply.calls) - 1
        closing = (
            _event("content_block_stop", {"type": "content_block_stop", "index": last_block})
            + _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": {"output_tokens": self.reply.completion_tokens},
                },
            )
            + _event("message_stop", {"type": "message_stop"})
        )
        # The API reports output_tokens 1 at message_start, before generation.
        opening = _event("message_start", {"type": "message_start", "message": self._message([], None, 1)}) + _PING
        if self.text_block:
            opening += _event(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            )
        return StreamFrames(
            content_type="text/event-stream; charset=utf-8",
            opening=opening,
            pieces=self.reply.pieces(),
            token=token,
            closing=lambda: closing,
            error=_event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )

    def whole(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": self.reply.text}] if self.text_block else []
        content += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments_value}
            for call in self.reply.calls
        ]
        return self._message(content, self.stop_reason, self.reply.completion_tokens)

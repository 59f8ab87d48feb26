"""OpenAI Chat Completions stand-in, wire-compatible with the official ``openai`` client.

What the installed client (openai 3.x) does with it, read from its source:

- HTTP 4xx/5xx: ``_make_status_error`` picks the class by status only: 401
  ``AuthenticationError``, 404 ``NotFoundError``, 429 ``RateLimitError``, >=500
  ``InternalServerError`` (all ``APIStatusError``). 429 and 5xx are retried ``max_retries`` times
  first, so tests pass ``max_retries=0``.
- Mid-stream ``data: {"error": {...}}``: ``Stream.__stream__`` raises the base ``APIError``
  (not an ``APIStatusError``: the status was 200), with ``body`` the inner error object.
- Dropped connection: httpx2 raises ``RemoteProtocolError`` (incomplete chunked read), which
  ``Stream._iter_events`` turns into ``APIConnectionError``.
- Tool calls: streamed as ``delta.tool_calls`` items (``ChoiceDeltaToolCall``) keyed by
  ``index``; a call's first item carries ``id``, ``type`` and ``function.name`` with empty
  ``arguments``, later items carry pieces of ``function.arguments``, and the last chunk's
  ``finish_reason`` is ``"tool_calls"``. A turn with no text opens with the first call in the
  role chunk and ``content: null``, as the API does. Whole, ``message.tool_calls`` holds
  ``ChatCompletionMessageFunctionToolCall`` objects and ``content`` is null when there is no text.
- Tool results: a request whose ``role: "tool"`` messages do not answer the calls of the
  assistant message just before them, one by one, gets the API's 400 (``BadRequestError``,
  ``param`` naming the message), as does an empty ``tools`` list.
"""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from .server import Exchange, Piece, Reply, Script, StandInServer, StreamFrames, bearer_token, new_id

_OWNED_BY = "system"
_MODEL_CREATED = 1_715_367_049

# status -> (type, code, message); {model} is filled in. Texts follow what the API returns.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "We could not parse the JSON body of your request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model `{model}` does not exist or you do not have access to it.",
    ),
    429: (
        "requests",
        "rate_limit_exceeded",
        "Rate limit reached for {model} in organization org-standin on requests per min (RPM): "
        "Limit 3, Used 3, Requested 1. Please try again in 20s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _invalid(message: str, param: str | None, code: str | None = None) -> dict[str, Any]:
    """The body of a 400 the API answers when it refuses a request's content."""
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def check_messages(body: dict[str, Any]) -> dict[str, Any] | None:
    """The API's 400 body for a tool-call sequence it refuses, or None when the request is fine.

    What it checks catches a client's bookkeeping bugs: each ``tool`` message must answer a call
    of the assistant message right before the run of tool messages it belongs to, and every call
    of that assistant message must be answered before any other message.
    """
    if body.get("tools") == []:
        return _invalid(
            "Invalid 'tools': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "tools",
            "empty_array",
        )
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    pending: dict[str, None] = {}  # call ids of the last assistant message not yet answered
    owner: int | None = None  # index of that assistant message
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            call_id = message.get("tool_call_id")
            if owner is None:
                return _invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                    "with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            if not isinstance(call_id, str):
                return _invalid(
                    f"Missing required parameter: 'messages.[{index}].tool_call_id'.",
                    f"messages.[{index}].tool_call_id",
                    "missing_required_parameter",
                )
            if call_id not in pending:
                return _invalid(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of previous message.",
                    f"messages.[{index}].tool_call_id",
                )
            del pending[call_id]
            continue
        if pending:
            return _unanswered(owner, pending)
        owner, pending = None, {}
        if role == "assistant" and message.get("tool_calls"):
            owner = index
            pending = {str(call.get("id")): None for call in message["tool_calls"] if isinstance(call, dict)}
    return _unanswered(owner, pending) if pending else None


def _unanswered(owner: int | None, pending: dict[str, None]) -> dict[str, Any]:
    return _invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
        f"messages.[{owner}].role",
    )


def _call_id() -> str:
    return new_id("call_", 24)


def _sse(payload: object) -> bytes:
    """One ``data:`` event; OpenAI writes compact JSON and no ``event:`` line."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


class OpenAIStandIn(StandInServer):
    """Serves ``POST /v1/chat/completions`` and ``GET /v1/models``; point clients at :attr:`base_url`."""

    default_models: ClassVar[tuple[str, ...]] = ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "o4-mini")

    @property
    def base_url(self) -> str:
        """What ``openai.OpenAI(base_url=...)`` takes: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.url}/v1"

    def response_headers(self) -> dict[str, str]:
        return {"x-request-id": new_id("req_", 32)}

    def error_body(self, status: int, model: str) -> dict[str, Any]:
        kind, code, message = _ERRORS.get(
            status,
            _ERRORS[500] if status >= 500 else ("invalid_request_error", None, f"Error {status}."),
        )
        return {
            "error": {
                "message": message.format(model=model),
                "type": kind,
                "param": None,
                "code": code,
            }
        }

    def handle(self, exchange: Exchange, script: Script) -> None:
        request = exchange.request
        if not self.api_key_ok(script, bearer_token(request)):
            self.send_error(exchange, 401, "")
            return
        route = (request.method, request.path)
        if route == ("GET", "/v1/models"):
            self._list_models(exchange, script)
        elif route == ("POST", "/v1/chat/completions"):
            self._chat(exchange, script)
        else:
            exchange.send_json(
                404,
                {
                    "error": {
                        "message": f"Invalid URL ({request.method} {request.path})",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                self.response_headers(),
            )

    def _list_models(self, exchange: Exchange, script: Script) -> None:
        if script.http_error is not None:
            self.send_error(exchange, script.http_error, "")
            return
        data = [
            {"id": name, "object": "model", "created": _MODEL_CREATED, "owned_by": _OWNED_BY} for name in self.models
        ]
        exchange.send_json(200, {"object": "list", "data": data}, self.response_headers())

    def _chat(self, exchange: Exchange, script: Script) -> None:
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
        completion = _Completion(model, script, script.reply(body, _call_id))
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self.stream(exchange, script, completion.frames(include_usage, self.error_body(500, model)))
        elif self.generate_blocking(exchange, script, model, len(completion.reply.pieces())):
            exchange.send_json(200, completion.whole(), self.response_headers())


class _Completion:
    """The objects of one completion; every chunk shares its id, created time and fingerprint."""

    def __init__(self, model: str, script: Script, reply: Reply) -> None:
        self.model = model
        self.script = script
        self.reply = reply
        self.id = new_id("chatcmpl-", 29)
        self.created = int(time.time())
        self.fingerprint = "fp_" + new_id("", 10).lower()

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.reply.calls else "stop"

    def usage(self) -> dict[str, Any]:
        prompt, completion = self.script.prompt_tokens, self.reply.completion_tokens
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _envelope(self, obj: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": self.fingerprint,
            "choices": choices,
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None, include_usage: bool) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        payload = self._envelope("chat.completion.chunk", [choice])
        if include_usage:
            # With include_usage the API puts "usage": null on every chunk but the last.
            payload["usage"] = None
        return _sse(payload)

    def _delta(self, index: int, piece: Piece) -> dict[str, Any]:
        if piece.call is None:
            return {"content": piece.text}
        if not piece.opens:
            return {"tool_calls": [{"index": piece.call, "function": {"arguments": piece.text}}]}
        call = self.reply.calls[piece.call]
        item = {
            "index": piece.call,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        if index == 0:  # no text: the first call rides in the role chunk
            return {"role": "assistant", "content": None, "tool_calls": [item], "refusal": None}
        return {"tool_calls": [item]}

    def frames(self, include_usage: bool, error_body: dict[str, Any]) -> StreamFrames:
        def closing() -> bytes:
            tail = self.chunk({}, self.finish_reason, include_usage)
            if include_usage:
                usage_chunk = self._envelope("chat.completion.chunk", [])
                usage_chunk["usage"] = self.usage()
                tail += _sse(usage_chunk)
            return tail + b"data: [DONE]\n\n"

        opens_with_call = not self.reply.texts and bool(self.reply.calls)
        opening = (
            b""
            if opens_with_call
            else self.chunk({"role": "assistant", "content": "", "refusal": None}, None, include_usage)
        )
        return StreamFrames(
            content_type="text/event-stream; charset=utf-8",
            opening=opening,
            pieces=self.reply.pieces(),
            token=lambda index, piece: self.chunk(self._delta(index, piece), None, include_usage),
            closing=closing,
            error=_sse(error_body),
        )

    def whole(self) -> dict[str, Any]:
        reply = self.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.texts or not reply.calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_text}}
                for call in reply.calls
            ]
        payload = self._envelope(
            "chat.completion",
            [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish_reason}],
        )
        payload["usage"] = self.usage()
        return payload

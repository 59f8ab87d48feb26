"""Ollama stand-in, wire-compatible with the official ``ollama`` client.

What the installed client (ollama 0.6.x, on legacy httpx) does with it, read from its source:

- HTTP errors: ``_request_raw`` / the stream's ``raise_for_status`` become
  ``ollama.ResponseError`` whose ``error`` is the body's ``"error"`` string and whose
  ``status_code`` is the HTTP status (404 for an unknown model).
- Mid-stream ``{"error": "..."}`` line: the streaming generator in ``Client._request`` checks
  every NDJSON line for ``error`` and raises ``ollama.ResponseError(err)``; the status was 200
  and is not passed, so ``status_code`` is ``-1``.
- Dropped connection: only ``httpx.ConnectError`` is wrapped, so the raw
  ``httpx.RemoteProtocolError`` (incomplete chunked read) reaches the caller.
- Ollama has no API key: ``Script.required_api_key`` is ignored.
- Tool calls: the message's ``tool_calls`` is ``[{"function": {"name", "arguments"}}]`` with
  ``arguments`` an object, not text (``Message.ToolCall``), and no id; streamed, each call comes
  whole in a line of its own after the text, and ``done_reason`` stays ``"stop"``. Ollama
  cannot send malformed JSON there, so a scripted str that is not a JSON object is sent as a
  JSON string value: the client then fails to validate that line, as it would on such a reply.
- Requests may carry ``tools`` and ``role: "tool"`` messages naming their tool in
  ``tool_name``; Ollama checks neither against the other, and neither does the stand-in.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timezone
from typing import Any, ClassVar

from .server import Exchange, Piece, Reply, Script, StandInServer, StreamFrames

_VERSION = "0.12.6"
_MODIFIED_AT = "2025-06-01T12:00:00.123456789Z"
_LOAD_DURATION_NS = 12_000_000
_PARAMS = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>[bm])$")
_BYTES_PER_PARAM = 0.6
"""Roughly what a Q4_K_M GGUF weighs per parameter."""

# status -> the "error" string Ollama answers with; {model} is filled in.
_ERRORS: dict[int, str] = {
    400: "invalid character looking for beginning of value",
    401: "unauthorized",
    404: 'model "{model}" not found, try pulling it first',
    429: "too many requests",
    500: "an error was encountered while running the model: unexpected EOF",
    503: "server busy, please try again.  maximum pending requests exceeded",
}


def _ndjson(payload: dict[str, Any]) -> bytes:
    """One NDJSON line, compact as Go's encoding/json writes it."""
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


def _now_rfc3339() -> str:
    """Current UTC time in RFC 3339 with nanoseconds, like Go's time.RFC3339Nano."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def _canonical(name: str) -> str:
    """Ollama treats a name without a tag as ``name:latest``."""
    return name if ":" in name else f"{name}:latest"


def _tag_entry(name: str) -> dict[str, Any]:
    """A ``/api/tags`` entry; size and details derive from the name so they stay stable."""
    base, _, tag = _canonical(name).partition(":")
    params = _PARAMS.match(tag.lower())
    if params:
        count = float(params["n"]) * (1e9 if params["unit"] == "b" else 1e6)
        parameter_size = tag.upper()
    else:
        count, parameter_size = 3.2e9, "3.2B"
    family = re.match(r"[a-z]+\d*", base.lower())
    family_name = family.group(0) if family else base
    return {
        "name": _canonical(name),
        "model": _canonical(name),
        "modified_at": _MODIFIED_AT,
        "size": int(count * _BYTES_PER_PARAM),
        "digest": hashlib.sha256(_canonical(name).encode()).hexdigest(),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family_name,
            "families": [family_name],
            "parameter_size": parameter_size,
            "quantization_level": "Q4_K_M",
        },
    }


class OllamaStandIn(StandInServer):
    """Serves ``POST /api/chat``, ``GET /api/tags``, ``GET /api/version`` and ``GET /``."""

    default_models: ClassVar[tuple[str, ...]] = ("llama3.2:latest", "qwen2.5:0.5b", "gemma3:1b")

    @property
    def host(self) -> str:
        """What ``ollama.Client(host=...)`` takes: ``http://127.0.0.1:PORT``."""
        return self.url

    def error_body(self, status: int, model: str) -> dict[str, Any]:
        message = _ERRORS.get(status, _ERRORS[500] if status >= 500 else f"error {status}")
        return {"error": message.format(model=model)}

    def handle(self, exchange: Exchange, script: Script) -> None:
        request = exchange.request
        route = (request.method, request.path)
        if route == ("POST", "/api/chat"):
            self._chat(exchange, script)
        elif route == ("GET", "/api/tags"):
            self._tags(exchange, script)
        elif route == ("GET", "/api/version"):
            exchange.send_json(200, {"version": _VERSION})
        elif route == ("GET", "/"):
            # What a client probing for a running Ollama gets.
            exchange.send_bytes(200, b"Ollama is running", "text/plain; charset=utf-8")
        else:
            exchange.send_bytes(404, b"404 page not found", "text/plain; charset=utf-8")

    def _tags(self, exchange: Exchange, script: Script) -> None:
        exchange.pause(script.tags_delay_s)
        if script.http_error is not None:
            self.send_error(exchange, script.http_error, "")
            return
        exchange.send_json(200, {"models": [_tag_entry(name) for name in self.models]})

    def _chat(self, exchange: Exchange, script: Script) -> None:
        body = exchange.json
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            self.send_error(exchange, 400, "")
            return
        model: str = body["model"]
        status = script.http_error
        if status is None and _canonical(model) not in {_canonical(name) for name in self.models}:
            status = 404
        if status is not None:
            self.send_error(exchange, status, model)
            return
        reply = _Reply(model, script, script.reply(body, None))
        # The API streams unless the request says "stream": false.
        if body.get("stream", True):
            self.stream(exchange, script, reply.frames(self.error_body(500, model)))
        elif self.generate_blocking(exchange, script, model, len(reply.reply.pieces(whole_calls=True))):
            exchange.send_json(200, reply.final(whole=True))


class _Reply:
    """The NDJSON lines of one chat reply, with durations measured while it runs."""

    def __init__(self, model: str, script: Script, reply: Reply) -> None:
        self.model = model
        self.script = script
        self.reply = reply
        self.started = time.monotonic_ns()
        self.first_token_at: int | None = None

    def _line(self, content: str, calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        return {"model": self.model, "created_at": _now_rfc3339(), "message": message}

    def _call(self, index: int) -> dict[str, Any]:
        call = self.reply.calls[index]
        return {"function": {"name": call.name, "arguments": call.arguments_value}}

    def token(self, index: int, piece: Piece) -> bytes:
        if index == 0:
            self.first_token_at = time.monotonic_ns()
        if piece.call is None:
            return _ndjson({**self._line(piece.text), "done": False})
        return _ndjson({**self._line("", [self._call(piece.call)]), "done": False})

    def final(self, whole: bool) -> dict[str, Any]:
        """The closing object: the whole message when not streaming, empty content when streaming."""
        now = time.monotonic_ns()
        if self.first_token_at is not None:
            first = self.first_token_at
        else:  # not streamed: split the wait at the scripted time to first token
            first = min(now, self.started + int(self.script.first_token_delay_s * 1e9))
        # Measured waits, plus a fixed load time as if the model were already warm.
        prompt_eval, eval_ = first - self.started, now - first
        if whole:
            line = self._line(self.reply.text, [self._call(i) for i in range(len(self.reply.calls))])
        else:
            line = self._line("")
        return {
            **line,
            "done": True,
            "done_reason": "stop",
            "total_duration": _LOAD_DURATION_NS + prompt_eval + eval_,
            "load_duration": _LOAD_DURATION_NS,
            "prompt_eval_count": self.script.prompt_tokens,
            "prompt_eval_duration": prompt_eval,
            "eval_count": self.reply.completion_tokens,
            "eval_duration": eval_,
        }

    def frames(self, error_body: dict[str, Any]) -> StreamFrames:
        return StreamFrames(
            content_type="application/x-ndjson",
            opening=b"",
            pieces=self.reply.pieces(whole_calls=True),
            token=self.token,
            closing=lambda: _ndjson(self.final(whole=False)),
            error=_ndjson(error_body),
        )

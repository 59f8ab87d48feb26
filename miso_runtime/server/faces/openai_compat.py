"""The OpenAI-compatible API of the local model (skill-daemon section 8).

``POST /v1/chat/completions`` (alias ``POST /v1/llm/chat-completions``) and ``GET /v1/models``,
in OpenAI's wire format so that the official client works with ``base_url=.../v1`` and the
runtime's token as API key. Errors use OpenAI's envelope ``{"error": {message, type, code}}``.

A stream waits for its first event before answering, so that a failure known at the start
(unknown model, context overflow) is an HTTP error; a queued stream learns its position in
SSE comments (``: queue_position 2``), which OpenAI clients ignore.

Function calling (``tools``, ``tool_choice``, ``parallel_tool_calls``, assistant ``tool_calls``
and ``tool`` messages) is checked here and carried out in the ``llm`` worker
(:mod:`miso_runtime.llm.tool_generation`); calls come back in OpenAI's shapes: streamed as
``delta.tool_calls`` pieces (the first of a call with ``index``, ``id``, ``type`` and
``function.name``, then ``function.arguments`` text), whole as ``message.tool_calls`` with
``content`` null when there is no text, and ``finish_reason`` ``tool_calls`` either way.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel

from ...auth import Access
from ...errors import MisoError
from ...llm.engine import (
    Finished,
    GenerationError,
    GenerationParams,
    Queued,
    Text,
    ToolCallPiece,
    ToolRequest,
    new_request_id,
    now_s,
)
from ...llm.tool_calls import ToolInputError, check_tool_messages, tool_request
from ..endpoint import endpoint
from ..request_ids import name_request
from ..sse import sse_response
from . import runtime, streams
from .openai_models import ChatCompletionBody

blueprint = Blueprint("openai_compat", __name__)


class _Chunk:
    """One ``data:`` line of an OpenAI stream (or a comment, or the final ``[DONE]``)."""

    def __init__(self, data: dict[str, Any] | None = None, comment: str | None = None, done: bool = False) -> None:
        self.data = data
        self.comment = comment
        self.done = done


def format_openai(chunk: _Chunk, _event_id: int) -> str:
    if chunk.done:
        return "data: [DONE]\n\n"
    if chunk.comment is not None:
        return f": {chunk.comment}\n\n"
    return f"data: {json.dumps(chunk.data, ensure_ascii=False, separators=(',', ':'))}\n\n"


SHUTDOWN_CHUNK = _Chunk(
    {"error": {"message": "the runtime is shutting down", "type": "server_error", "code": "server_shutdown"}}
)


def _params(body: ChatCompletionBody) -> GenerationParams:
    sampling = body.sampling()
    stop = [sampling.stop] if isinstance(sampling.stop, str) else sampling.stop
    return GenerationParams(
        max_tokens=sampling.max_tokens or sampling.max_completion_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        stop=stop,
        seed=sampling.seed,
    )


def _error_from(exc: GenerationError) -> MisoError:
    return MisoError(exc.status if exc.status < 500 or exc.status in (503, 504) else 500, exc.code, exc.message)


def _finish_reason(finished: Finished) -> str:
    return finished.finish_reason if finished.finish_reason in ("length", "tool_calls") else "stop"


def _usage(finished: Finished) -> dict[str, int]:
    return {
        "prompt_tokens": finished.prompt_tokens,
        "completion_tokens": finished.completion_tokens,
        "total_tokens": finished.prompt_tokens + finished.completion_tokens,
    }


def _first_event(events: Iterator[Any]) -> Any:
    try:
        return next(events)
    except GenerationError as exc:
        raise _error_from(exc) from None


def _stream(
    request_id: str, model: str, created: int, first: Any, events: Iterator[Any], include_usage: bool
) -> Iterator[_Chunk]:
    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> _Chunk:
        body: dict[str, Any] = {
            "id": request_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        }
        if include_usage:
            body["usage"] = None
        return _Chunk(body)

    sent_role = False
    item = first
    try:
        while True:
            if isinstance(item, Queued):
                yield _Chunk(comment=f"queue_position {item.position}")
            elif isinstance(item, Text):
                if not sent_role:
                    yield chunk({"role": "assistant", "content": ""})
                    sent_role = True
                yield chunk({"content": item.text})
            elif isinstance(item, ToolCallPiece):
                delta: dict[str, Any] = {"tool_calls": [_call_delta(item)]}
                if not sent_role:  # as OpenAI: the role comes with the first call, and no content
                    delta = {"role": "assistant", "content": None, **delta}
                    sent_role = True
                yield chunk(delta)
            elif isinstance(item, Finished):
                if not sent_role:
                    yield chunk({"role": "assistant", "content": ""})
                yield chunk({}, _finish_reason(item))
                if include_usage:
                    yield _Chunk(
                        {
                            "id": request_id,
                            "object": "chat.completion.chunk",
                            "created": created,
                            "model": model,
                            "choices": [],
                            "usage": _usage(item),
                        }
                    )
                yield _Chunk(done=True)
                return
            item = next(events)
    except GenerationError as exc:
        yield _Chunk({"error": {"message": exc.message, "type": "server_error", "code": exc.code}})
        yield _Chunk(done=True)
    finally:
        events.close()


def _call_delta(piece: ToolCallPiece) -> dict[str, Any]:
    """One ``delta.tool_calls`` entry: a call's opening piece, or more of its arguments."""
    if piece.id is not None:
        return {
            "index": piece.index,
            "id": piece.id,
            "type": "function",
            "function": {"name": piece.name, "arguments": piece.arguments},
        }
    return {"index": piece.index, "function": {"arguments": piece.arguments}}


def _message(text: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer as ``choices[0].message``: ``content`` null when the model only called tools."""
    if not calls:
        return {"role": "assistant", "content": text}
    return {"role": "assistant", "content": text or None, "tool_calls": calls}


def _complete(request_id: str, model: str, created: int, first: Any, events: Iterator[Any]) -> Response:
    pieces: list[str] = []
    calls: list[dict[str, Any]] = []
    item = first
    try:
        while not isinstance(item, Finished):
            if isinstance(item, Text):
                pieces.append(item.text)
            elif isinstance(item, ToolCallPiece):
                if item.id is not None:
                    calls.append(_call_delta(item))
                else:
                    calls[-1]["function"]["arguments"] += item.arguments
            item = next(events)
    except GenerationError as exc:
        raise _error_from(exc) from None
    finally:
        events.close()
    for call in calls:
        del call["index"]
    return jsonify(
        {
            "id": request_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": _message("".join(pieces), calls),
                    "logprobs": None,
                    "finish_reason": _finish_reason(item),
                }
            ],
            "usage": _usage(item),
        }
    )


def _messages(body: ChatCompletionBody) -> list[dict[str, Any]]:
    """The conversation as the worker takes it: OpenAI's message dicts, text parts joined."""
    messages = []
    for message in body.messages:
        item: dict[str, Any] = {"role": "system" if message.role == "developer" else message.role}
        item["content"] = message.text()
        if message.role == "assistant" and message.tool_calls:
            item["content"] = item["content"] or None
            item["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        elif message.role == "tool":
            item["tool_call_id"] = message.tool_call_id
            name = (message.model_extra or {}).get("name")
            if isinstance(name, str) and name:
                item["name"] = name
        messages.append(item)
    return messages


def _tools(body: ChatCompletionBody, messages: list[dict[str, Any]]) -> ToolRequest | None:
    """What the model may call; a 400 for tool input that does not hold together."""
    tools = [tool.openai() for tool in body.tools or []]
    choice = body.tool_choice.model_dump() if isinstance(body.tool_choice, BaseModel) else body.tool_choice
    try:
        check_tool_messages(messages)
        return tool_request(tools, choice, body.parallel_tool_calls)
    except ToolInputError as exc:
        raise MisoError(400, "invalid_request", str(exc)) from None


def _chat_completions(body: ChatCompletionBody) -> Response:
    llm = runtime().llm
    request_id = new_request_id()
    name_request(request_id)  # answered in x-request-id, and the id abort-stream takes
    messages = _messages(body)
    tools = _tools(body, messages)
    model, events = llm.chat(body.model, messages, _params(body), request_id, tools)
    created = now_s()
    first = _first_event(events)
    if not body.stream:
        return _complete(request_id, model, created, first, events)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    response = sse_response(
        _stream(request_id, model, created, first, events, include_usage),
        registry=streams(),
        environ=request.environ,
        final_on_shutdown=SHUTDOWN_CHUNK,
        formatter=format_openai,
    )
    return response


@blueprint.post("/v1/chat/completions")
@endpoint(Access.DATA, body=ChatCompletionBody, tags=("openai",))
def chat_completions(body: ChatCompletionBody):
    """Chat completion with the local model, streaming or not (OpenAI format)."""
    return _chat_completions(body)


@blueprint.post("/v1/llm/chat-completions")
@endpoint(Access.DATA, body=ChatCompletionBody, tags=("skill", "llm"))
def llm_chat_completions(body: ChatCompletionBody):
    """Alias of ``POST /v1/chat/completions`` (skill-daemon section 4.8)."""
    return _chat_completions(body)


@blueprint.get("/v1/models")
@endpoint(Access.READ, tags=("openai",))
def list_models():
    """The models that can be served, in OpenAI's list format."""
    llm = runtime().llm
    llm.catalog.refresh()
    data = [
        {"id": entry.id, "object": "model", "created": entry.modified_ns // 1_000_000_000, "owned_by": "miso-runtime"}
        for entry in llm.catalog.entries()
        if not entry.error
    ]
    return jsonify({"object": "list", "data": data})

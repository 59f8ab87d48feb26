"""OpenAI Chat Completions with tools, streamed through the official ``openai`` client.

The agent's messages are already in this API's shape, so the translation is nearly one to one.
A streamed tool call arrives as ``delta.tool_calls`` items keyed by ``index``: the first carries
its id and name, the rest pieces of its arguments, which are joined here and kept as the text
the model produced (even when it is not valid JSON: the loop reports that to the model). Usage
comes from the final chunk that ``stream_options.include_usage`` asks for.

Works with any server that speaks this API (a base URL ending in ``/v1``); one that gives a
call no id gets one made here.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ...chat.providers.openai_chat import OpenAIProvider, _sdk, _sse_data
from ...chat.providers.openai_chat import _error as _provider_error
from ...chat.types import ProviderError
from ..messages import AgentMessage, Cancelled, CancelToken, ModelTurn, TextSink, ToolCall, ToolSpec
from .base import Upstream, function_tools, new_call_id, run_cancellable, usage

if TYPE_CHECKING:
    import openai

logger = logging.getLogger(__name__)


def openai_messages(messages: list[AgentMessage]) -> list[dict[str, Any]]:
    """The request's ``messages``: system, user, assistant (with ``tool_calls``) and tool messages."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "assistant":
            item: dict[str, Any] = {"role": "assistant", "content": message.content}
            if message.tool_calls:
                item["content"] = message.content or None
                item["tool_calls"] = [call.openai() for call in message.tool_calls]
        elif message.role == "tool":
            item = {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
        elif message.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
            parts += [{"type": "image_url", "image_url": {"url": url}} for url in message.images]
            item = {"role": message.role, "content": parts}
        else:
            item = {"role": message.role, "content": message.content}
        out.append(item)
    return out


openai_tools = function_tools


@dataclass
class _PartialCall:
    id: str | None = None
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def done(self) -> ToolCall:
        return ToolCall(self.id or new_call_id(), self.name, "".join(self.arguments))


@dataclass
class _Accumulator:
    """The turn being read, chunk by chunk."""

    texts: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    chunks: int = 0
    on_text: TextSink | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        """One ``chat.completion.chunk`` as decoded JSON."""
        self.chunks += 1
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise ProviderError("provider_error", f"OpenAI error: {message or 'error during streaming'}")
        reported = chunk.get("usage")
        if isinstance(reported, dict):
            details = reported.get("prompt_tokens_details") or {}
            self.usage = usage(
                reported.get("prompt_tokens"), reported.get("completion_tokens"), details.get("cached_tokens")
            )
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.texts.append(delta["content"])
                if self.on_text is not None:
                    self.on_text(delta["content"])
            for item in delta.get("tool_calls") or ():
                call = self.calls.setdefault(int(item.get("index") or 0), _PartialCall())
                # The id and name come once, in the call's first item; a server that repeats
                # them must not double them.
                call.id = call.id or item.get("id")
                function = item.get("function") or {}
                call.name = call.name or function.get("name") or ""
                if function.get("arguments"):
                    call.arguments.append(function["arguments"])
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]

    def turn(self) -> ModelTurn:
        calls = tuple(self.calls[index].done() for index in sorted(self.calls))
        return ModelTurn("".join(self.texts), calls, self.usage, self.finish_reason)


class OpenAIToolModel:
    """A tool-calling model on OpenAI (or a server that speaks its Chat Completions API)."""

    def __init__(
        self,
        model: str,
        api_key: str | None,
        base_url: str | None,
        context_tokens: int,
        max_output_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.name = f"openai:{model}"
        self.context_tokens = context_tokens
        self.max_output_tokens = max_output_tokens
        self._api_key = api_key
        self._base_url = base_url

    @cached_property
    def _client(self) -> openai.OpenAI:
        # Built on first use: importing the SDK takes a second or more.
        return OpenAIProvider._new_client(self._base_url, self._api_key)

    def complete(
        self,
        messages: list[AgentMessage],
        tools: list[ToolSpec],
        cancel: CancelToken,
        on_text: TextSink | None = None,
    ) -> ModelTurn:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": openai_messages(messages),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:  # the API refuses an empty list
            request["tools"] = openai_tools(tools)
        if self.max_output_tokens is not None:
            request["max_completion_tokens"] = self.max_output_tokens
        return run_cancellable(lambda upstream: self._stream(request, upstream, on_text), cancel, self.name)

    def _stream(self, request: dict[str, Any], upstream: Upstream, on_text: TextSink | None) -> ModelTurn:
        """Send the request with the official client and read its SSE lines ourselves.

        ``client.post`` keeps the client's base URL, auth, timeouts and error classes but skips
        what ``chat.completions.create`` adds on top: a recursive transform of the whole
        request, which walks every message against the SDK's type hints. An agent's request
        holds its whole conversation, so that walk grew with every step (after 50 tool calls,
        most of the client's CPU per request). Chunks are decoded with ``json.loads``, as the
        chat provider does, instead of one pydantic object each.
        """
        import httpx2 as http

        client = self._client  # built here, in the request thread: a cancel need not wait for the import
        try:
            response = client.post("/chat/completions", body=request, cast_to=http.Response, stream=True)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _provider_error(exc) from exc
        upstream.attach(response)
        turn = _Accumulator(on_text=on_text)
        try:
            for data in _sse_data(response.iter_lines()):
                if upstream.is_cut:
                    raise Cancelled("the model request was cancelled")
                if data == "[DONE]":
                    break
                turn.add(json.loads(data))
            else:
                if upstream.is_cut:
                    raise Cancelled("the model request was cancelled")
                raise ProviderError("stream_failed", "the OpenAI stream ended without [DONE]")
        except (Cancelled, ProviderError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise _stream_error(exc, started=turn.chunks > 0) from exc
        finally:
            upstream.release()
            response.close()
        return turn.turn()


def _stream_error(exc: Exception, started: bool) -> ProviderError:
    """As the chat provider maps errors, except that a connection lost mid-stream is a broken
    stream (``stream_failed``), not an unreachable provider."""
    openai = _sdk()
    if started and isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError):
        return ProviderError("stream_failed", f"the OpenAI stream broke off: {exc}")
    return _provider_error(exc)

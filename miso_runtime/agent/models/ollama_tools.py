"""Ollama ``/api/chat`` with tools, streamed as NDJSON over httpx.

Unlike the chat provider this does not go through the ``ollama`` client's ``chat()``: that
validates ``tools`` into its own pydantic models, which keep only ``type``, ``description``,
``enum`` and ``items`` of each property, so a nested object's ``properties``, an ``anyOf`` or
``additionalProperties`` would silently never reach the model. The request is sent as written
here, and the SDK is used for what it is good at: its ``ResponseError`` (which reads Ollama's
error body) and the chat provider's mapping of it to the contract's codes.

Ollama gives tool-call arguments as an object, not text: they become compact JSON text (the
agent's form), and since it gives calls no id (older versions) one is made in OpenAI's form.
Tool results go back as ``role: "tool"`` messages naming their tool in ``tool_name``. Ollama
ends a turn that calls tools with ``done_reason: "stop"``; the turn reports ``tool_calls`` as
the other adapters do. Usage comes from the final line (``prompt_eval_count``, ``eval_count``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx

from ... import constants
from ...chat.providers.ollama_chat import _error as _provider_error
from ...chat.providers.ollama_chat import _sdk
from ...chat.types import ProviderError
from ..messages import AgentMessage, Cancelled, CancelToken, ModelTurn, TextSink, ToolCall, ToolSpec
from .base import (
    Upstream,
    arguments_object,
    arguments_text,
    function_tools,
    new_call_id,
    run_cancellable,
    split_data_url,
    usage,
)

logger = logging.getLogger(__name__)


def ollama_messages(messages: list[AgentMessage]) -> list[dict[str, Any]]:
    """The request's ``messages``; an assistant's calls carry their arguments as objects."""
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.tool_calls:
            item["tool_calls"] = [
                {"function": {"name": call.name, "arguments": arguments_object(call.arguments)}}
                for call in message.tool_calls
            ]
        elif message.role == "tool" and message.name:
            item["tool_name"] = message.name
        if message.images:
            item["images"] = [split_data_url(url)[1] for url in message.images]
        out.append(item)
    return out


ollama_tools = function_tools


def _base_url(host: str | None) -> str:
    """``OLLAMA_HOST`` style: a bare ``host:port`` means plain HTTP."""
    host = (host or constants.DEFAULT_OLLAMA_HOST).rstrip("/")
    return host if "://" in host else f"http://{host}"


@dataclass
class _Accumulator:
    """The turn being read, line by line."""

    texts: list[str] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    done_reason: str | None = None
    usage: dict[str, Any] | None = None
    done: bool = False
    on_text: TextSink | None = None

    def add(self, part: dict[str, Any]) -> None:
        message = part.get("message") or {}
        if message.get("content"):
            self.texts.append(message["content"])
            if self.on_text is not None:
                self.on_text(message["content"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") or {}
            call_id = call.get("id") or new_call_id()  # newer Ollama versions give one
            self.calls.append(
                ToolCall(call_id, str(function.get("name") or ""), arguments_text(function.get("arguments")))
            )
        if part.get("done"):
            self.done = True
            self.done_reason = part.get("done_reason")
            self.usage = usage(part.get("prompt_eval_count"), part.get("eval_count"))

    def turn(self) -> ModelTurn:
        finish = "tool_calls" if self.calls and self.done_reason in (None, "stop") else self.done_reason
        return ModelTurn("".join(self.texts), tuple(self.calls), self.usage, finish)


class OllamaToolModel:
    """A tool-calling model served by Ollama (no API key)."""

    def __init__(self, model: str, host: str | None, context_tokens: int) -> None:
        self.model = model
        self.name = f"ollama:{model}"
        self.context_tokens = context_tokens
        self._host = host

    @cached_property
    def _client(self) -> httpx.Client:
        timeout = httpx.Timeout(constants.PROVIDER_READ_TIMEOUT_S, connect=constants.PROVIDER_CONNECT_TIMEOUT_S)
        return httpx.Client(base_url=_base_url(self._host), timeout=timeout)

    def complete(
        self,
        messages: list[AgentMessage],
        tools: list[ToolSpec],
        cancel: CancelToken,
        on_text: TextSink | None = None,
    ) -> ModelTurn:
        request: dict[str, Any] = {"model": self.model, "messages": ollama_messages(messages), "stream": True}
        if tools:
            request["tools"] = ollama_tools(tools)
        return run_cancellable(lambda upstream: self._stream(request, upstream, on_text), cancel, self.name)

    def _stream(self, request: dict[str, Any], upstream: Upstream, on_text: TextSink | None) -> ModelTurn:
        client = self._client  # built here, in the request thread: a cancel need not wait for the import
        ollama = _sdk()
        turn = _Accumulator(on_text=on_text)
        try:
            with client.stream("POST", "/api/chat", json=request) as response:
                upstream.attach(response)
                try:
                    if response.status_code >= 400:
                        response.read()
                        raise ollama.ResponseError(response.text, response.status_code)
                    for line in response.iter_lines():
                        if upstream.is_cut:
                            raise Cancelled("the model request was cancelled")
                        if not line.strip():
                            continue
                        part = json.loads(line)
                        if part.get("error"):
                            raise ollama.ResponseError(str(part["error"]))  # as the SDK: status -1
                        turn.add(part)
                finally:
                    upstream.release()
        except (Cancelled, ProviderError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _provider_error(exc) from exc
        if not turn.done:
            raise ProviderError("stream_failed", "the Ollama stream ended before its last line")
        return turn.turn()

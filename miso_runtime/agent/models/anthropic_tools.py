"""Anthropic Messages with tools, streamed through the official ``anthropic`` client.

The Messages API differs from the agent's (OpenAI-shaped) messages in three ways that matter:

- System messages go to the ``system`` parameter; there is no system role.
- An assistant's tool calls are ``tool_use`` content blocks whose ``input`` is an object, and
  tool results are ``tool_result`` blocks in the *next user message*. Consecutive tool messages
  therefore become one user message, and a user text that follows them joins it (roles must
  alternate), after the results, which the API wants first.
- A streamed call is a ``content_block_start`` with a ``tool_use`` block followed by
  ``input_json_delta`` pieces; they are joined into the JSON text the agent keeps, without
  parsing them (the SDK's ``messages.stream()`` helper parses as it goes and fails on a
  model's malformed JSON, which the loop must instead report back to the model).

Usage: ``message_start`` carries the input tokens (cache reads and writes apart), and
``message_delta`` the output tokens; both become OpenAI's ``CompletionUsage`` form.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ... import constants
from ...chat.providers.anthropic_chat import AnthropicProvider
from ...chat.providers.anthropic_chat import _error as _provider_error
from ..messages import AgentMessage, Cancelled, CancelToken, ModelTurn, TextSink, ToolCall, ToolSpec
from .base import Upstream, arguments_object, arguments_text, run_cancellable, split_data_url, usage

if TYPE_CHECKING:
    import anthropic

logger = logging.getLogger(__name__)

#: Anthropic's stop reasons in OpenAI's ``finish_reason`` words, which ``ModelTurn`` uses.
_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "refusal": "content_filter",
}


def anthropic_request(messages: list[AgentMessage]) -> tuple[str, list[dict[str, Any]]]:
    """The request's ``system`` text and ``messages`` (content blocks, roles alternating)."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "system":
            if message.content:
                system.append(message.content)
            continue
        role, blocks = _blocks(message)
        if not blocks:
            continue  # the API refuses empty content; a neighbour of the same role merges instead
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        if turn["role"] == "user":
            # Tool results first, then text (a stable sort keeps each group's order).
            turn["content"].sort(key=lambda block: block["type"] != "tool_result")
    return "\n\n".join(system), turns


def _blocks(message: AgentMessage) -> tuple[str, list[dict[str, Any]]]:
    """The role and content blocks one agent message becomes."""
    if message.role == "tool":
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        if message.content:
            result["content"] = message.content
        return "user", [result]
    # The API refuses a text block that is empty or only whitespace.
    blocks = [{"type": "text", "text": message.content}] if message.content.strip() else []
    if message.role == "assistant":
        blocks += [
            {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments_object(call.arguments)}
            for call in message.tool_calls
        ]
        return "assistant", blocks
    images = []
    for url in message.images:
        media_type, data = split_data_url(url)
        images.append({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
    return "user", images + blocks


def anthropic_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """The request's ``tools``: name, description and the JSON Schema as ``input_schema``."""
    return [
        {
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.schema or {"type": "object", "properties": {}},
        }
        for tool in tools
    ]


@dataclass
class _PartialCall:
    id: str
    name: str
    start_input: Any
    pieces: list[str] = field(default_factory=list)

    def done(self) -> ToolCall:
        # A call without arguments streams no JSON (or only ""): the start's input says it all.
        return ToolCall(self.id, self.name, "".join(self.pieces) or arguments_text(self.start_input))


@dataclass
class _Accumulator:
    """The turn being read, event by event."""

    texts: list[str] = field(default_factory=list)
    calls: dict[int, _PartialCall] = field(default_factory=dict)
    stop_reason: str | None = None
    input_tokens: int | None = None
    cache_creation: int = 0
    cache_read: int | None = None
    output_tokens: int | None = None
    on_text: TextSink | None = None

    def _text(self, text: str) -> None:
        self.texts.append(text)
        if self.on_text is not None:
            self.on_text(text)

    def add(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self._input_usage(event.message.usage)
            self.output_tokens = event.message.usage.output_tokens
        elif kind == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                self.calls[event.index] = _PartialCall(block.id, block.name, block.input)
            elif block.type == "text" and block.text:
                self._text(block.text)
        elif kind == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                self._text(delta.text)
            elif delta.type == "input_json_delta" and event.index in self.calls:
                self.calls[event.index].pieces.append(delta.partial_json)
        elif kind == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            if event.usage is not None:
                self._input_usage(event.usage)  # newer API versions repeat the input counts here
                self.output_tokens = event.usage.output_tokens

    def _input_usage(self, report: Any) -> None:
        if getattr(report, "input_tokens", None) is not None:
            self.input_tokens = report.input_tokens
        if getattr(report, "cache_creation_input_tokens", None) is not None:
            self.cache_creation = report.cache_creation_input_tokens
        if getattr(report, "cache_read_input_tokens", None) is not None:
            self.cache_read = report.cache_read_input_tokens

    def turn(self) -> ModelTurn:
        calls = tuple(self.calls[index].done() for index in sorted(self.calls))
        prompt = None
        if self.input_tokens is not None:
            # OpenAI's prompt_tokens counts cached tokens too; Anthropic's input_tokens does not.
            prompt = self.input_tokens + self.cache_creation + (self.cache_read or 0)
        report = usage(prompt, self.output_tokens, self.cache_read)
        finish = _FINISH_REASONS.get(self.stop_reason or "", self.stop_reason)
        return ModelTurn("".join(self.texts), calls, report, finish)


class AnthropicToolModel:
    """A tool-calling model on Anthropic's Messages API."""

    def __init__(self, model: str, api_key: str | None, base_url: str | None, context_tokens: int) -> None:
        self.model = model
        self.name = f"anthropic:{model}"
        self.context_tokens = context_tokens
        self._api_key = api_key
        self._base_url = base_url

    @cached_property
    def _client(self) -> anthropic.Anthropic:
        # Built on first use: importing the SDK takes a second or more.
        return AnthropicProvider._new_client(self._base_url, self._api_key)

    def complete(
        self,
        messages: list[AgentMessage],
        tools: list[ToolSpec],
        cancel: CancelToken,
        on_text: TextSink | None = None,
    ) -> ModelTurn:
        system, turns = anthropic_request(messages)
        request: dict[str, Any] = {
            "model": self.model,
            "messages": turns,
            "max_tokens": constants.AGENT_ANTHROPIC_MAX_TOKENS,
            "stream": True,
        }
        if system:
            request["system"] = system
        if tools:
            request["tools"] = anthropic_tools(tools)
        return run_cancellable(lambda upstream: self._stream(request, upstream, on_text), cancel, self.name)

    def _stream(self, request: dict[str, Any], upstream: Upstream, on_text: TextSink | None) -> ModelTurn:
        client = self._client  # built here, in the request thread: a cancel need not wait for the import
        try:
            stream = client.messages.create(**request)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a contract code
            raise _provider_error(exc) from exc
        upstream.attach(stream.response)
        turn = _Accumulator(on_text=on_text)
        try:
            for event in stream:
                if upstream.is_cut:
                    raise Cancelled("the model request was cancelled")
                turn.add(event)
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _provider_error(exc) from exc
        finally:
            upstream.release()
            stream.close()
        return turn.turn()

"""The values the agent loop exchanges with tool-calling models and with its tools.

Messages are kept in OpenAI's shape (``tool_calls`` whose ``arguments`` are JSON *text*),
because that is the form Maria's events carry (``PreToolCall.tool_call``); each provider
adapter in :mod:`miso_runtime.agent.models` translates them to and from its own wire format.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

#: Told each piece of the reply's text as it streams in (from the request's thread).
TextSink = Callable[[str], None]


@dataclass(frozen=True)
class ToolCall:
    """One call the model asked for; ``arguments`` is the raw JSON text the model produced."""

    id: str
    name: str
    arguments: str

    def openai(self) -> dict[str, Any]:
        """The OpenAI ``ChatCompletionMessageToolCall`` form (Maria's ``tool_call`` field)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass(frozen=True)
class AgentMessage:
    """One message of the conversation as the model sees it.

    ``role`` is ``system``, ``user``, ``assistant`` or ``tool``. A ``tool`` message answers the
    call ``tool_call_id`` of tool ``name`` with ``content`` (the text the model receives).
    """

    role: str
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    #: Images the person attached to a user message, as ``data:image/<type>;base64,...`` URLs.
    images: tuple[str, ...] = ()


@dataclass(frozen=True)
class ToolSpec:
    """A tool as a model is told about it: name, description and JSON Schema of its arguments."""

    name: str
    description: str
    schema: dict[str, Any]


@dataclass(frozen=True)
class ModelTurn:
    """What the model answered in one request.

    ``usage`` is in OpenAI's ``CompletionUsage`` form (``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``, optionally ``prompt_tokens_details.cached_tokens``), or None when the
    provider reported none.
    """

    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None


@dataclass
class CancelToken:
    """Set once to cancel: tools and model requests check it and stop where they stand."""

    event: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.event.set()

    @property
    def cancelled(self) -> bool:
        return self.event.is_set()


class ToolCallingModel(Protocol):
    """A chat model that can call tools (one adapter per provider wire format)."""

    #: ``provider:model``, as ``ModelLoaded`` reports it.
    name: str
    #: Tokens the model's context holds (pruning keeps the prompt below its safe zone).
    context_tokens: int

    def complete(
        self,
        messages: list[AgentMessage],
        tools: list[ToolSpec],
        cancel: CancelToken,
        on_text: TextSink | None = None,
    ) -> ModelTurn:
        """One model turn; raises ``ProviderError`` (``chat.types``) when the provider fails.

        Streams where the provider can, handing each piece of text to ``on_text`` as it arrives
        (a face that shows the reply live, such as Caco's, needs it before the turn ends), and
        stops within about 100 ms once ``cancel`` is set (raising ``Cancelled``), closing the
        upstream request.
        """


class Cancelled(Exception):
    """The turn or tool was cancelled; the loop ends the run with ``Cancelled``."""

"""The conversation an agent sends its model, and how it is rebuilt from an event log.

A task's stored log is its whole history (Maria keeps nothing else), so a resumed task
rebuilds the model's view from it: user messages, assistant turns with their tool calls, tool
outputs (or the placeholder of an output that was pruned), and the system prompt.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable

from ..constants import PRUNED_TOOL_OUTPUT
from .messages import AgentMessage, ToolCall

#: The tool message for a call that never finished (cancelled, or its process died).
UNFINISHED_CALL_TEXT = "[The tool call did not finish: it was cancelled or interrupted.]"
#: The prefix Maria gives an "immediate" user message that arrives during a run.
IMMEDIATE_TEMPLATE = (
    "[Immediate User Message]\n\n{message}\n\nPlease address this message immediately before continuing."
)


def unknown_tool_text(name: str) -> str:
    return f"Unknown tool: {name}"


@dataclass
class Entry:
    """One message, plus the id of the ``PostToolCall`` event a tool message came from."""

    message: AgentMessage
    event_id: str | None = None
    pruned: bool = False


class Conversation:
    """The messages of one agent, oldest first, without the system prompt."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, message: AgentMessage, event_id: str | None = None) -> None:
        self.entries.append(Entry(message, event_id))

    def messages(self, system_prompt: str | None) -> list[AgentMessage]:
        """What the model is sent: the system prompt, then every message."""
        head = [AgentMessage("system", system_prompt)] if system_prompt else []
        return head + [entry.message for entry in self.entries]

    def prune(self, event_id: str) -> bool:
        """Replace the output of the tool call event ``event_id`` by the placeholder."""
        for entry in self.entries:
            if entry.event_id == event_id and not entry.pruned:
                entry.message = replace(entry.message, content=PRUNED_TOOL_OUTPUT)
                entry.pruned = True
                return True
        return False

    def answer_unanswered_calls(self, known_tools: Iterable[str]) -> None:
        """Give every tool call without an answer its tool message.

        Every provider refuses a conversation whose assistant tool calls are not each followed
        by a result; a cancel or a crash in the middle of a turn leaves such calls behind.
        """
        known = set(known_tools)
        repaired: list[Entry] = []
        index = 0
        while index < len(self.entries):
            entry = self.entries[index]
            repaired.append(entry)
            index += 1
            calls = entry.message.tool_calls if entry.message.role == "assistant" else ()
            if not calls:
                continue
            answered: set[str] = set()
            while index < len(self.entries) and self.entries[index].message.role == "tool":
                answered.add(self.entries[index].message.tool_call_id or "")
                repaired.append(self.entries[index])
                index += 1
            for call in calls:
                if call.id not in answered:
                    text = UNFINISHED_CALL_TEXT if call.name in known else unknown_tool_text(call.name)
                    repaired.append(Entry(AgentMessage("tool", text, tool_call_id=call.id, name=call.name)))
        self.entries = repaired


@dataclass
class Restored:
    """What a task's log says about its agent: the conversation, prompt, todos and tool switches."""

    conversation: Conversation
    system_prompt: str | None
    has_prompt: bool
    todos: list[dict[str, Any]] | None


def _tool_call(raw: dict[str, Any]) -> ToolCall | None:
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict):
        return None
    return ToolCall(str(raw.get("id") or ""), str(function.get("name") or ""), str(function.get("arguments") or ""))


def restore(events: Iterable[dict[str, Any]]) -> Restored:
    """Rebuild an agent's state from its ``{id, created, desc}`` events, oldest first."""
    conversation = Conversation()
    prompt: str | None = None
    has_prompt = False
    todos: list[dict[str, Any]] | None = None
    for event in events:
        desc = event.get("desc") or {}
        msg = desc.get("msg")
        if msg == "UserMessage":
            images = tuple(str(image) for image in desc.get("images") or ())
            conversation.add(AgentMessage("user", str(desc.get("content") or ""), images=images))
        elif msg == "AssistantMessage":
            calls = tuple(call for call in map(_tool_call, desc.get("tool_calls") or ()) if call)
            conversation.add(AgentMessage("assistant", str(desc.get("content") or ""), tool_calls=calls))
        elif msg == "PostToolCall":
            call = _tool_call(desc.get("tool_call") or {})
            if call is None:
                continue
            conversation.add(
                AgentMessage("tool", str(desc.get("text") or ""), tool_call_id=call.id, name=call.name), event.get("id")
            )
            result = desc.get("result")
            if call.name == "todo" and isinstance(result, list) and len(result) == 2 and isinstance(result[1], dict):
                todos = result[1].get("todos")
        elif msg == "Pruned":
            conversation.prune(str(desc.get("id") or ""))
        elif msg == "SystemPromptSet":
            prompt, has_prompt = desc.get("prompt"), True
    return Restored(conversation, prompt, has_prompt, todos)

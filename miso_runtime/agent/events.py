"""The agent loop's events, in Maria's vocabulary (``desc`` objects with a ``msg`` tag).

Maria's is the richest event set of the contracts this runtime serves (model, prompt, tools,
queue, every tool call with its structured result), so the loop speaks it and other faces
translate from it. Each builder returns the exact ``desc`` JSON of ``event/event.mbt``'s
``EventDesc``; :func:`envelope` wraps one as ``{id, created, desc}``.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .messages import ModelTurn, ToolCall, ToolSpec

#: ``msg`` values that end a run (``PostConversation`` and ``Failed``), start one, or cancel it.
STOPPING = frozenset({"PostConversation", "Failed"})
STARTING = frozenset({"PreConversation"})
CANCELLING = frozenset({"Cancelled"})
#: Events the task server keeps out of its SSE stream (they remain in the stored log).
HIDDEN_FROM_STREAM = frozenset({"TokenCounted", "ContextPruned"})


@dataclass(frozen=True)
class QueuedMessage:
    """A user message waiting for the agent (Maria's ``QueuedMessage``)."""

    id: str
    content: str
    web_search: bool = False
    #: Attached images (data URLs); they go to the model with the message, not into Maria's queue JSON.
    images: tuple[str, ...] = ()

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "message": {"role": "user", "content": self.content}, "web_search": self.web_search}


def new_id() -> str:
    return str(uuid.uuid4())


def now_ms() -> int:
    return int(time.time() * 1000)


def envelope(desc: dict[str, Any], event_id: str | None = None, created_ms: int | None = None) -> dict[str, Any]:
    """``{id, created, desc}``: one ``maria`` event as the stream and the stored log carry it."""
    return {"id": event_id or new_id(), "created": created_ms if created_ms is not None else now_ms(), "desc": desc}


def model_loaded(name: str) -> dict[str, Any]:
    return {"msg": "ModelLoaded", "name": name}


def system_prompt_set(prompt: str | None) -> dict[str, Any]:
    return {"msg": "SystemPromptSet"} if prompt is None else {"msg": "SystemPromptSet", "prompt": prompt}


def tool_added(spec: ToolSpec) -> dict[str, Any]:
    return {"msg": "ToolAdded", "tool": {"name": spec.name, "description": spec.description, "schema": spec.schema}}


def simple(msg: str) -> dict[str, Any]:
    """An event without fields: ``PreConversation``, ``PostConversation``, ``Cancelled``."""
    return {"msg": msg}


def message_queued(message_id: str) -> dict[str, Any]:
    return {"msg": "MessageQueued", "message": {"id": message_id}}


def message_unqueued(message_id: str) -> dict[str, Any]:
    return {"msg": "MessageUnqueued", "message": {"id": message_id}}


def user_message(content: str, images: tuple[str, ...] = ()) -> dict[str, Any]:
    """``images`` (data URLs) only when the message has some: Maria's messages never do."""
    desc: dict[str, Any] = {"msg": "UserMessage", "content": content}
    if images:
        desc["images"] = list(images)
    return desc


def assistant_message(turn: ModelTurn) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "msg": "AssistantMessage",
        "content": turn.content or "",
        "tool_calls": [call.openai() for call in turn.tool_calls],
    }
    if turn.usage is not None:
        desc["usage"] = turn.usage
    return desc


def pre_tool_call(call: ToolCall) -> dict[str, Any]:
    """``args`` parsed; the raw text plus ``error`` when it is not JSON; no ``args`` when empty."""
    desc: dict[str, Any] = {"msg": "PreToolCall", "tool_call": call.openai(), "name": call.name}
    if call.arguments.strip():
        try:
            desc["args"] = json.loads(call.arguments)
        except ValueError as exc:
            desc["args"] = call.arguments
            desc["error"] = f"invalid JSON arguments: {exc}"
    return desc


def post_tool_call(call: ToolCall, text: str, result: Any = None, error: Any = None) -> dict[str, Any]:
    """``result`` on success, ``error`` on failure; ``text`` is what the model receives."""
    desc: dict[str, Any] = {"msg": "PostToolCall", "tool_call": call.openai(), "name": call.name}
    if error is not None:
        desc["error"] = error
    else:
        desc["result"] = result
    desc["text"] = text
    return desc


def token_counted(count: int) -> dict[str, Any]:
    return {"msg": "TokenCounted", "token_count": count}


def context_pruned(origin: int, pruned: int) -> dict[str, Any]:
    return {"msg": "ContextPruned", "origin_token_count": origin, "pruned_token_count": pruned}


def pruned(post_tool_call_event_id: str) -> dict[str, Any]:
    return {"msg": "Pruned", "id": post_tool_call_event_id}


def failed(code: str, message: str) -> dict[str, Any]:
    """``Failed.error`` is free JSON in Maria; ours is ``{code, message}`` with a stable code."""
    return {"msg": "Failed", "error": {"code": code, "message": message}}

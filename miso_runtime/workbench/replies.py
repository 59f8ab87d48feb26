"""Caco's chat messages, made from a session's agent events: live as they happen, and as history.

A Caco session is an agent task of face ``caco``; its log holds the agent loop's events
(Maria's vocabulary). :class:`ReplyTracker` turns them into what Caco's page reads (research
part 2, section 2.5): ``message`` (a user message; a reply that starts streaming, its deltas,
and its ``complete`` end), ``activity`` (turn, tool, tool-result, error, info), ``output`` (a
display output to show now) and ``stateUpdate``. The same tracker, fed the stored log without
deltas, gives the history, so a page that reconnects sees the messages it saw live, with the
same ids:

- a user message's id is its queue id (the face chooses it before the agent has the message);
- its reply's id is ``msg_`` and that id.

Every reply ends with ``complete``, also when the model wrote no text or the run failed (its
text is then the error): Caco's page enables its input again only on that message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ..agent.tools.caco.env import RESULT_OUTPUT_ID, RESULT_RELOAD, RESULT_STATE_SESSION, RESULT_STATE_UPDATE
from .timestamps import iso_time

Send = Callable[[dict[str, Any]], None]

#: The prefixes Caco stores before a prompt that an applet or another agent sent.
_PREFIX = re.compile(r"^\[(applet|agent):([^\]\s]+)\] ", re.DOTALL)
#: Longest ``details`` of a tool-result activity (the page shows it folded; a command's whole
#: output would make every broadcast heavy).
ACTIVITY_DETAILS_MAX_CHARS = 4000


def prefixed_prompt(prompt: str, source: str, applet_slug: str | None, from_session: str | None) -> str:
    """The prompt as stored and as the model reads it: who sent it, when not the person."""
    if source == "applet" and applet_slug:
        return f"[applet:{applet_slug}] {prompt}"
    if source == "agent" and from_session:
        return f"[agent:{from_session}] {prompt}"
    return prompt


def user_message(
    message_id: str,
    prompt: str,
    *,
    source: str,
    applet_slug: str | None,
    from_session: str | None,
    has_image: bool,
    created_ms: int,
) -> dict[str, Any]:
    """Caco's ``ChatMessage`` of a user message (keys without a value are left out, as JSON.stringify does)."""
    message: dict[str, Any] = {
        "id": message_id,
        "role": "user",
        "content": prompt,
        "timestamp": iso_time(created_ms),
        "source": source,
    }
    if applet_slug:
        message["appletSlug"] = applet_slug
    if from_session:
        message["fromSession"] = from_session
    message["hasImage"] = has_image
    return message


def stored_user_message(message_id: str, stored: str, created_ms: int, has_image: bool = False) -> dict[str, Any]:
    """A user message read back from the log: the sender comes from the prompt's prefix."""
    match = _PREFIX.match(stored)
    if match is None:
        return user_message(
            message_id,
            stored,
            source="user",
            applet_slug=None,
            from_session=None,
            has_image=has_image,
            created_ms=created_ms,
        )
    kind, who = match.groups()
    return user_message(
        message_id,
        stored[match.end() :],
        source=kind,
        applet_slug=who if kind == "applet" else None,
        from_session=who if kind == "agent" else None,
        has_image=has_image,
        created_ms=created_ms,
    )


def reply_id(user_message_id: str) -> str:
    return f"msg_{user_message_id}"


def chat(session_id: str, message: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "sessionId": session_id, "message": message}


def activity(session_id: str, kind: str, text: str, details: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": kind, "text": text}
    if details is not None:
        item["details"] = details
    return {"type": "activity", "sessionId": session_id, "item": item}


def _clip(text: str) -> str:
    if len(text) <= ACTIVITY_DETAILS_MAX_CHARS:
        return text
    return text[:ACTIVITY_DETAILS_MAX_CHARS] + f"... ({len(text) - ACTIVITY_DETAILS_MAX_CHARS} more characters)"


@dataclass
class _Reply:
    """The reply being written to one user message."""

    id: str
    created_ms: int
    texts: list[str] = field(default_factory=list)
    streamed: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    error: str | None = None

    def content(self) -> str:
        text = "\n\n".join(part for part in self.texts if part)
        if self.streamed:  # deltas of a turn whose AssistantMessage has not come yet
            text = (text + "\n\n" if text else "") + "".join(self.streamed)
        if not text and self.error:
            return f"Error: {self.error}"
        return text


class ReplyTracker:
    """One session's translator from agent events to Caco messages (see the module docstring).

    ``live`` trackers send everything as it happens (the user message itself excepted: the face
    sent it before the agent had it); history trackers send only the messages, each reply once,
    complete, with its ``outputs``.
    """

    def __init__(self, session_id: str, send: Send, *, live: bool) -> None:
        self.session_id = session_id
        self._send = send
        self._live = live
        self._unqueued: str | None = None
        self._reply: _Reply | None = None
        self._turn = 0

    @property
    def replying(self) -> bool:
        return self._reply is not None

    def event(self, envelope: dict[str, Any]) -> None:
        """One stored agent event (``{id, created, desc}``)."""
        desc = envelope.get("desc") or {}
        kind = desc.get("msg")
        created = int(envelope.get("created") or 0)
        if kind == "MessageUnqueued":
            self._unqueued = str((desc.get("message") or {}).get("id") or "") or None
        elif kind == "UserMessage":
            has_image = bool(desc.get("images"))
            self._user_message(str(envelope.get("id")), str(desc.get("content") or ""), created, has_image)
        elif kind == "TokenCounted":
            self._turn += 1
            if self._live:
                self._send(activity(self.session_id, "turn", f"Turn {self._turn}..."))
        elif kind == "AssistantMessage" and self._reply is not None:
            self._reply.streamed = []
            self._reply.texts.append(str(desc.get("content") or ""))
        elif kind == "PreToolCall" and self._live:
            self._tool_started(desc)
        elif kind == "PostToolCall":
            self._tool_done(desc)
        elif kind == "Failed":
            error = desc.get("error")
            message = error.get("message") if isinstance(error, dict) else str(error)
            if self._live:
                self._send(activity(self.session_id, "error", f"Error: {message}"))
            if self._reply is not None:
                self._reply.error = str(message)
            self.finish()
        elif kind in ("PostConversation", "Cancelled"):
            self.finish()

    def delta(self, text: str) -> None:
        """A piece of reply text as it streams (live only)."""
        if self._reply is None or not text:
            return
        self._reply.streamed.append(text)
        self._send(chat(self.session_id, {"id": self._reply.id, "role": "assistant", "deltaContent": text}))

    def finish(self) -> None:
        """End the reply in progress (a run ended, or the next user message began)."""
        reply, self._reply = self._reply, None
        self._turn = 0
        if reply is None:
            return
        content = reply.content()
        if self._live:
            message = {"id": reply.id, "role": "assistant", "content": content, "status": "complete"}
            self._send(chat(self.session_id, message))
            return
        if not content and not reply.outputs:
            return  # Caco's history leaves out a reply with nothing to show
        message = {"id": reply.id, "role": "assistant", "content": content, "timestamp": iso_time(reply.created_ms)}
        if reply.outputs:
            message["outputs"] = list(reply.outputs)
        self._send(chat(self.session_id, message))

    # --- the parts of a run -----------------------------------------------------------------

    def _user_message(self, event_id: str, stored: str, created_ms: int, has_image: bool) -> None:
        self.finish()
        message_id, self._unqueued = self._unqueued or f"user_{event_id}", None
        self._reply = _Reply(reply_id(message_id), created_ms)
        if self._live:
            start = {"id": self._reply.id, "role": "assistant", "content": "", "status": "streaming"}
            self._send(chat(self.session_id, start))
        else:
            self._send(chat(self.session_id, stored_user_message(message_id, stored, created_ms, has_image)))

    def _tool_started(self, desc: dict[str, Any]) -> None:
        name = str(desc.get("name") or "tool")
        arguments = (desc.get("tool_call") or {}).get("function", {}).get("arguments")
        details = f"Arguments: {_clip(arguments)}" if isinstance(arguments, str) and arguments.strip() else None
        self._send(activity(self.session_id, "tool", f"▶ {name}", details))

    def _tool_done(self, desc: dict[str, Any]) -> None:
        result = desc.get("result")
        fields = result if isinstance(result, dict) else {}
        output_id = fields.get(RESULT_OUTPUT_ID) if "error" not in desc else None
        if isinstance(output_id, str) and self._reply is not None:
            self._reply.outputs.append(output_id)
        if not self._live:
            return
        name = str(desc.get("name") or "tool")
        if isinstance(output_id, str):
            self._send({"type": "output", "sessionId": self.session_id, "outputId": output_id})
            details = f"[Output: {output_id}]"
        else:
            details = _clip(json.dumps({"content": desc.get("text", "")}, ensure_ascii=False))
        mark = "✗" if "error" in desc else "✓"
        self._send(activity(self.session_id, "tool-result", f"{mark} {name}", details))
        if RESULT_STATE_UPDATE in fields:
            update: dict[str, Any] = {"type": "stateUpdate", "data": fields[RESULT_STATE_UPDATE]}
            target = fields.get(RESULT_STATE_SESSION)
            if target:  # none named: every open applet, as Caco
                update["sessionId"] = target
            self._send(update)
        if fields.get(RESULT_RELOAD) is True:
            self._send(activity(self.session_id, "info", "Reload triggered"))


def history(session_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``message`` frames of a session's stored log, oldest first."""
    frames: list[dict[str, Any]] = []
    tracker = ReplyTracker(session_id, frames.append, live=False)
    for envelope in events:
        tracker.event(envelope)
    tracker.finish()  # a reply whose run is still going (or was cut) ends the history as far as it got
    return frames

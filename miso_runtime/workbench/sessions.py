"""Caco's chat sessions: agent tasks of face ``caco``, each client's active session, and the live feed.

Who owns what:

- the :class:`~miso_runtime.tasks.service.TaskService` of face ``caco`` keeps the sessions (a
  thread of the store each, with its log), runs each agent in a task process with Caco's tools
  (profile ``caco``), holds one cwd per active session (Caco's ``cwdLocks``) and stops an idle
  session's process after ``idle_stop_secs`` (Caco's "inactive": the next message resumes it);
- this service adds what Caco has on top: the active-session pointer of each ``X-Client-ID``
  (``default`` when none is sent), the preferences it writes, the session list grouped by cwd,
  and the translation of every agent event into Caco's WebSocket messages
  (:mod:`.replies`), published on :attr:`feed`, which every socket of ``/caco/ws`` reads:
  Caco broadcasts every message to every socket and each page keeps those of its session.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
import time
import uuid
from typing import Any, Callable

from workers.protocol.tasks import AGENT_EVENT, TEXT_DELTA

from .. import constants
from ..bus import EventBus
from ..errors import MisoError
from ..tasks.service import TaskConflict, TaskRecord, TaskService
from . import replies
from .replies import ReplyTracker, prefixed_prompt, user_message
from .service import Workbench
from .timestamps import iso_time

logger = logging.getLogger(__name__)

FACE = "caco"
DEFAULT_CLIENT = "default"
#: Bus event type of every frame for the page.
FEED_EVENT = "caco.frame"
#: ``data:image/<type>;base64,<data>``, the form Caco's page pastes.
_DATA_URL = re.compile(r"^data:image/(png|jpeg|jpg|gif|webp);base64,([A-Za-z0-9+/=\s]*)$", re.DOTALL)


class CwdLocked(MisoError):
    """Caco's 409: an active session already works in this cwd (``holder`` is its id)."""

    def __init__(self, cwd: str, holder: str) -> None:
        super().__init__(409, "CWD_LOCKED", f"Directory {cwd} is locked by session {holder}")
        self.holder = holder


def session_not_found(session_id: str) -> MisoError:
    return MisoError(404, "session_not_found", f"Session not found: {session_id}")


class CacoSessions:
    """Every Caco session of this runtime; see the module docstring."""

    def __init__(
        self,
        tasks: TaskService,
        workbench: Workbench,
        models: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self.tasks = tasks
        self.workbench = workbench
        self._models = models
        self.feed = EventBus()
        self._active: dict[str, str] = {}
        self._trackers: dict[str, ReplyTracker] = {}
        tasks.observe(self._on_task_event)

    # --- reading ----------------------------------------------------------------------------

    def _record(self, session_id: str) -> TaskRecord:
        try:
            return self.tasks.get(session_id)
        except MisoError:
            raise session_not_found(session_id) from None

    def exists(self, session_id: str) -> bool:
        try:
            self.tasks.get(session_id)
        except MisoError:
            return False
        return True

    def active_session(self, client_id: str | None = None) -> str | None:
        session_id = self._active.get(client_id or DEFAULT_CLIENT)
        return session_id if session_id and self.exists(session_id) else None

    def _has_messages(self, session_id: str) -> bool:
        return any(
            (event.get("desc") or {}).get("msg") == "UserMessage" for event in self.tasks.log(session_id).agent_events()
        )

    def session_info(self, session_id: str | None) -> dict[str, Any]:
        """``GET /api/session``: an unknown id is echoed as inactive, as Caco does."""
        root = str(self.workbench.workspace_root)
        session_id = session_id or self.active_session()
        if not session_id:
            return {"sessionId": None, "cwd": root, "isActive": False, "hasMessages": False}
        if not self.exists(session_id):
            return {"sessionId": session_id, "cwd": root, "isActive": False, "hasMessages": False}
        record = self.tasks.get(session_id)
        return {
            "sessionId": session_id,
            "cwd": record.cwd,
            "isActive": record.owns_cwd,
            "hasMessages": self._has_messages(session_id),
        }

    def listing(self) -> dict[str, Any]:
        """``GET /api/sessions``: every session grouped by cwd (newest first), and the models."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for record in sorted(self.tasks.list(), key=lambda r: r.updated, reverse=True):
            grouped.setdefault(record.cwd or "(unknown)", []).append(
                {
                    "sessionId": record.id,
                    "cwd": record.cwd or None,
                    "summary": record.name or None,
                    "updatedAt": iso_time(record.updated),
                }
            )
        return {
            "activeSessionId": self.active_session(),
            "currentCwd": str(self.workbench.workspace_root),
            "grouped": grouped,
            "models": self.models(),
        }

    def models(self) -> list[dict[str, Any]]:
        """The models a session can run on (``{id, name, cost}``)."""
        return self._models()

    def state(self, session_id: str) -> dict[str, Any]:
        """``GET /api/sessions/:id/state`` (``streaming`` while a reply is being written: ours)."""
        record = self._record(session_id)
        status = {"generating": "streaming", "idle": "idle"}.get(record.status, "inactive")
        return {"sessionId": session_id, "status": status, "cwd": record.cwd, "isActive": record.owns_cwd}

    def history(self, session_id: str) -> list[dict[str, Any]]:
        """The ``message`` frames of a session's history (none for an unknown one, as Caco)."""
        if not self.exists(session_id):
            return []
        return replies.history(session_id, self.tasks.log(session_id).agent_events())

    def debug_messages(self) -> dict[str, Any]:
        """``GET /api/debug/messages``: the default client's session, message by message."""
        session_id = self.active_session()
        if session_id is None:
            return {"count": 0, "messages": []}
        messages = []
        for event in self.tasks.log(session_id).agent_events():
            desc = event.get("desc") or {}
            if desc.get("msg") == "UserMessage":
                messages.append({"type": "user.message", "content": desc.get("content"), "hasToolRequests": False})
            elif desc.get("msg") == "AssistantMessage":
                messages.append(
                    {
                        "type": "assistant.message",
                        "content": desc.get("content"),
                        "hasToolRequests": bool(desc.get("tool_calls")),
                    }
                )
        return {"count": len(messages), "messages": messages}

    # --- changing ---------------------------------------------------------------------------

    def create(self, cwd: str | None, model: str | None, client_id: str | None) -> dict[str, Any]:
        """``POST /api/sessions``: always a new session; 409 ``CWD_LOCKED`` while another holds the cwd."""
        directory = cwd or str(self.workbench.workspace_root)
        if not os.path.exists(directory):
            raise MisoError(400, "path_not_found", f"Path does not exist: {directory}")
        if not os.path.isdir(directory):
            raise MisoError(400, "not_a_directory", f"Path is not a directory: {directory}")
        self._active.pop(client_id or DEFAULT_CLIENT, None)
        model_name = model or self.workbench.preferences.get().get("lastModel") or constants.CACO_DEFAULT_MODEL
        try:
            record, _ = self.tasks.create(
                name=None, model=model_name, cwd=directory, web_search=False, message=None, check_model=False
            )
        except TaskConflict as exc:
            raise CwdLocked(exc.cwd, exc.existing["id"]) from None
        self._active[client_id or DEFAULT_CLIENT] = record.id
        self.workbench.preferences.update({"lastSessionId": record.id, "lastCwd": record.cwd})
        return {"sessionId": record.id, "cwd": record.cwd, "model": model or "default"}

    def resume(self, session_id: str, client_id: str | None) -> dict[str, Any]:
        """``POST /api/sessions/:id/resume``: this client's active session from now on (400 on any failure)."""
        if not self.exists(session_id):
            raise MisoError(400, "session_not_found", f"Session {session_id} not found")
        record = self.tasks.get(session_id)
        self.tasks.viewed(session_id)
        if not record.owns_cwd:
            holder = next((r for r in self.tasks.list() if r.cwd == record.cwd and r.owns_cwd), None)
            if holder is not None:
                raise MisoError(400, "CWD_LOCKED", f"Directory {record.cwd} is locked by session {holder.id}")
            raise MisoError(400, "cwd_not_found", f"Path does not exist: {record.cwd}")
        self._active[client_id or DEFAULT_CLIENT] = session_id
        preferences = self.workbench.preferences.update({"lastSessionId": session_id})
        return {"success": True, "sessionId": session_id, "cwd": preferences.get("lastCwd")}

    def delete(self, session_id: str, client_id: str | None) -> dict[str, Any]:
        """``DELETE /api/sessions/:id``: stop it and forget it (400 for an unknown id, as Caco)."""
        if not self.exists(session_id):
            raise MisoError(400, "session_not_found", f"Session {session_id} not found")
        was_active = self.tasks.delete(session_id)
        self._trackers.pop(session_id, None)
        for client, active in list(self._active.items()):
            if active == session_id:
                del self._active[client]
        if self.workbench.preferences.get().get("lastSessionId") == session_id:
            self.workbench.preferences.update({"lastSessionId": None})
        return {"success": True, "wasActive": was_active}

    def send(
        self,
        session_id: str,
        prompt: str,
        *,
        source: str = "user",
        applet_slug: str | None = None,
        from_session: str | None = None,
        image_data: str | None = None,
        applet_state: dict[str, Any] | None = None,
        applet_navigation: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``POST /api/sessions/:id/messages``: the user message goes out on the feed, then to the agent.

        Everything is checked before anything is changed: a refused message leaves the applet
        state and the session as they were.
        """
        if not self.exists(session_id):
            raise session_not_found(session_id)
        if source == "agent" and from_session == session_id:
            raise MisoError(400, "own_session", "Cannot post to own session")
        image = decode_image(image_data) if image_data else None  # the page sends "" without an image
        if applet_state:
            self.workbench.state.merge(applet_state)
        if applet_navigation is not None:
            self.workbench.state.set_navigation(applet_navigation)
        message_id = str(uuid.uuid4())
        stored = prefixed_prompt(prompt, source, applet_slug, from_session)
        shown = user_message(
            message_id,
            prompt,
            source=source,
            applet_slug=applet_slug if source == "applet" else None,
            from_session=from_session if source == "agent" else None,
            has_image=image is not None,
            created_ms=int(time.time() * 1000),
        )
        self.publish(replies.chat(session_id, shown))
        record = self.tasks.get(session_id)
        if not record.name:
            self.tasks.rename(session_id, prompt.strip().splitlines()[0][:100] if prompt.strip() else "")
        try:
            self.tasks.post_message(session_id, stored, message_id=message_id, images=[image_data] if image else None)
        except MisoError as exc:
            # The page shows the message already: end its turn so that the input comes back.
            self.publish(replies.activity(session_id, "error", f"Error: {exc.message}"))
            failed = {"id": replies.reply_id(message_id), "role": "assistant"}
            self.publish(replies.chat(session_id, {**failed, "content": f"Error: {exc.message}", "status": "complete"}))
            if isinstance(exc, TaskConflict):
                raise CwdLocked(exc.cwd, exc.existing["id"]) from None
            raise
        return {"ok": True, "sessionId": session_id}

    # --- the feed ---------------------------------------------------------------------------

    def publish(self, frame: dict[str, Any], origin: str | None = None) -> None:
        """Send ``frame`` to every page (``origin``: the socket that caused it, which skips it).

        A reply's deltas may be dropped for a page that cannot keep up: its ``complete`` frame
        carries the whole text.
        """
        droppable = "deltaContent" in (frame.get("message") or {})
        # Serialized once here, not once per page: a reply's every delta goes to every page.
        payload = {"frame": frame, "text": json.dumps(frame, ensure_ascii=False)}
        self.feed.publish(FEED_EVENT, payload, droppable=droppable, correlation_id=origin)

    def set_applet_state(self, changes: dict[str, Any], origin: str | None) -> None:
        """A page's ``setState``: merged into the applet state, and pushed to the other pages."""
        self.workbench.state.merge(changes)
        self.publish({"type": "stateUpdate", "data": changes}, origin)

    def _tracker(self, session_id: str) -> ReplyTracker:
        tracker = self._trackers.get(session_id)
        if tracker is None:
            tracker = self._trackers[session_id] = ReplyTracker(session_id, self.publish, live=True)
        return tracker

    def _on_task_event(self, record: TaskRecord, name: str, data: Any) -> None:
        if name == TEXT_DELTA:
            self._tracker(record.id).delta(str(data))
        elif name == AGENT_EVENT and isinstance(data, dict):
            self._tracker(record.id).event(data)


def decode_image(image_data: str) -> tuple[str, bytes]:
    """``(extension, bytes)`` of a pasted image; 400 for anything but a base64 image data URL within the limit."""
    if not isinstance(image_data, str):
        raise MisoError(400, "invalid_image", "imageData must be a data URL (data:image/<type>;base64,...)")
    match = _DATA_URL.match(image_data)
    if match is None:
        raise MisoError(400, "invalid_image", "imageData must be a base64 data URL of a png, jpeg, gif or webp image")
    kind, payload = match.groups()
    if len(payload) > constants.CACO_IMAGE_MAX_BYTES * 4 // 3 + 4:
        raise MisoError(413, "image_too_large", f"images are limited to {constants.CACO_IMAGE_MAX_BYTES} bytes")
    try:
        data = base64.b64decode(re.sub(r"\s", "", payload), validate=True)
    except (binascii.Error, ValueError):
        raise MisoError(400, "invalid_image", "imageData is not valid base64") from None
    if not data:
        raise MisoError(400, "invalid_image", "imageData holds no image")
    return ("jpg" if kind == "jpeg" else kind), data


def models_from_catalog(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    """The runtime's models (cloud and local) as Caco's ``models``: ``provider:model`` ids.

    ``cost`` is Caco's premium-request multiplier; nothing here bills by request, so it is 0
    for local models and 1 for cloud ones (the page marks 0 as "free").
    """
    pairs = [(provider, name) for provider, names in (snapshot.get("providers") or {}).items() for name in names]
    active = snapshot.get("active") or {}
    if active.get("provider") and (active["provider"], active.get("model")) not in pairs:
        # The default model (the preferences' lastModel) is listed even when its provider's list
        # lacks it: the page highlights the preferred model only if it is in the list.
        pairs.insert(0, (active["provider"], active.get("model") or ""))
    return [
        {
            "id": f"{provider}:{name}",
            "name": f"{name} ({provider})",
            "cost": 0 if provider in ("local", "ollama") else 1,
        }
        for provider, name in pairs
    ]

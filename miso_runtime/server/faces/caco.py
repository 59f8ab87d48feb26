"""Caco (seeds/001): chat sessions, their messages and the page's WebSocket, under ``/caco``.

Caco serves ``/api/...`` and ``/ws`` at its root; schmux owns ``/api`` here, so every Caco
route lives under ``/caco`` (``research/maria-and-caco.md`` part 2 says how its page is pointed
there). Behaviour is that of Caco's code at ``8a7e1d9``, the version its page matches: the
page opens ``/caco/ws`` once, asks for a session's history with ``requestHistory`` and sends
messages with ``POST .../messages``; every frame goes to every socket and the page keeps its
session's. The seed's older forms work too: ``/caco/ws?sessionId=`` streams that history on
connect, and ``{type: 'subscribe', sessionId}`` narrows a socket to the sessions it names.

Ours adds what Caco lacks: every route needs a token (the page passes it as ``?token=``), and
the runtime's Origin check covers the WebSocket and every write.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import gevent
from flask import Blueprint, Response, request
from flask_sock import ConnectionClosed

from ... import constants
from ...auth import Access
from ...errors import MisoError
from ...workbench.sessions import CacoSessions, CwdLocked
from ..endpoint import endpoint
from ..websocket import bus_events
from . import runtime
from .caco_models import CreateSessionBody, PostMessageBody, SessionQuery
from .events import sock

logger = logging.getLogger(__name__)

blueprint = Blueprint("caco", __name__)
TAGS = ("caco",)
PREFIX = "/caco/api"
#: Seconds a socket's sender waits for a frame before it checks that the page is still there.
IDLE_CHECK_S = 1.0
#: Most frames a page's socket takes from its queue at once (deltas among them are joined).
FEED_BATCH = 256


def _caco() -> CacoSessions:
    return runtime().caco


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def _client_id() -> str | None:
    value = request.headers.get("X-Client-ID")
    return value[:200] if value else None


@blueprint.errorhandler(CwdLocked)
def _cwd_locked(error: CwdLocked) -> Response:
    return _json({"error": error.message, "code": "CWD_LOCKED", "sessionId": error.holder}, 409)


# --- sessions ---------------------------------------------------------------------------------


@blueprint.get(f"{PREFIX}/session")
@endpoint(Access.READ, query=SessionQuery, tags=TAGS)
def current_session(query: SessionQuery):
    """The default client's active session, or the one named by ``?sessionId=``."""
    return _json(_caco().session_info(query.sessionId))


@blueprint.get(f"{PREFIX}/sessions")
@endpoint(Access.READ, tags=TAGS)
def list_sessions():
    """Every session grouped by cwd, newest first, with the models a session can run on."""
    return _json(_caco().listing())


@blueprint.post(f"{PREFIX}/sessions")
@endpoint(Access.ADMIN, body=CreateSessionBody, tags=TAGS)
def create_session(body: CreateSessionBody):
    """A new session in ``cwd``; 409 ``CWD_LOCKED`` while another active session works there."""
    return _json(_caco().create(body.cwd, body.model, _client_id()))


@blueprint.post(f"{PREFIX}/sessions/<session_id>/resume")
@endpoint(Access.ADMIN, tags=TAGS)
def resume_session(session_id: str):
    """Make a session this client's active one (it claims its cwd again)."""
    return _json(_caco().resume(session_id, _client_id()))


@blueprint.delete(f"{PREFIX}/sessions/<session_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def delete_session(session_id: str):
    """Stop a session and delete it with its history."""
    return _json(_caco().delete(session_id, _client_id()))


@blueprint.get(f"{PREFIX}/sessions/<session_id>/state")
@endpoint(Access.READ, tags=TAGS)
def session_state(session_id: str):
    """Whether a session is active and busy (the agent-to-agent tools poll it)."""
    return _json(_caco().state(session_id))


@blueprint.post(f"{PREFIX}/sessions/<session_id>/messages")
@endpoint(Access.ADMIN, body=PostMessageBody, tags=TAGS, max_body=constants.CACO_MESSAGE_MAX_BODY_BYTES)
def post_message(session_id: str, body: PostMessageBody):
    """Send a message; the reply streams over ``/caco/ws``. Answers once the page has the user message."""
    if not body.prompt:
        raise MisoError(400, "prompt_required", "prompt is required")
    navigation = body.appletNavigation.model_dump() if body.appletNavigation is not None else None
    answer = _caco().send(
        session_id,
        body.prompt,
        source=body.source,
        applet_slug=body.appletSlug,
        from_session=body.fromSession,
        image_data=body.imageData,
        applet_state=body.appletState,
        applet_navigation=navigation,
    )
    return _json(answer)


@blueprint.get(f"{PREFIX}/models")
@endpoint(Access.READ, tags=TAGS)
def models():
    """The models a session can run on (``multiplier``, where ``/sessions`` says ``cost``)."""
    listed = _caco().models()
    return _json({"models": [{"id": m["id"], "name": m["name"], "multiplier": m["cost"]} for m in listed]})


@blueprint.get(f"{PREFIX}/debug/messages")
@endpoint(Access.READ, tags=TAGS)
def debug_messages():
    """The default client's session as its model sees it, message by message."""
    return _json(_caco().debug_messages())


# --- the page's WebSocket ---------------------------------------------------------------------


class _PageSocket:
    """One page's socket: what it asked for, and its answers to the page's messages."""

    def __init__(self, ws: Any, caco: CacoSessions) -> None:
        self.ws = ws
        self.caco = caco
        self.id = uuid.uuid4().hex
        #: Sessions named by ``subscribe`` (the seed's later form); None: every session, as Caco.
        self.sessions: set[str] | None = None

    def send(self, frame: dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame, ensure_ascii=False))

    def send_feed(self, payloads: list[dict[str, Any]]) -> None:
        """Frames of the feed, in order, with each run of deltas of one reply sent as one delta.

        Why: a page that lags (or 50 pages on one session) would get every token as a frame of
        its own; joined, the page appends the same text with fewer frames, and a page that keeps
        up still gets each delta as it comes (nothing waits to be joined).
        """
        pending: dict[str, Any] | None = None
        pieces: list[str] = []
        for payload in payloads:
            frame = payload["frame"]
            message = frame.get("message") or {}
            if pending is not None and "deltaContent" in message and message.get("id") == pending["message"]["id"]:
                pieces.append(message["deltaContent"])
                continue
            self._flush(pending, pieces)
            pending, pieces = None, []
            if "deltaContent" in message:
                pending, pieces = frame, [message["deltaContent"]]
            else:
                self.ws.send(payload["text"])
        self._flush(pending, pieces)

    def _flush(self, frame: dict[str, Any] | None, pieces: list[str]) -> None:
        if frame is None:
            return
        if len(pieces) == 1:
            self.send(frame)
            return
        self.send({**frame, "message": {**frame["message"], "deltaContent": "".join(pieces)}})

    def wants(self, frame: dict[str, Any], origin: str | None) -> bool:
        if origin == self.id:
            return False  # a setState's stateUpdate goes to the *other* sockets
        session = frame.get("sessionId")
        return (
            self.sessions is None or session is None or frame.get("type") == "stateUpdate" or session in self.sessions
        )

    def stream_history(self, session_id: str) -> None:
        if session_id and session_id != "default":
            for frame in self.caco.history(session_id):
                self.send(frame)
        self.send({"type": "historyComplete", "sessionId": session_id})

    def handle(self, text: Any) -> None:
        """One frame from the page; a malformed one gets an ``error`` frame and the socket stays."""
        try:
            message = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.send({"type": "error", "error": "Invalid JSON message"})
            return
        kind, message_id = message.get("type"), message.get("id")
        reply: dict[str, Any] = {"type": "error"}
        if message_id is not None:
            reply["id"] = message_id
        if kind == "requestHistory":
            session_id = message.get("sessionId")
            if not isinstance(session_id, str) or not session_id:
                self.send({**reply, "error": "sessionId is required for requestHistory"})
                return
            self.stream_history(session_id)
        elif kind == "subscribe":
            session_id = message.get("sessionId")
            if isinstance(session_id, str) and session_id:
                self.sessions = (self.sessions or set()) | {session_id}
        elif kind == "setState":
            data = message.get("data")
            if not isinstance(data, dict):
                self.send({**reply, "error": "setState needs data: an object"})
                return
            self.caco.set_applet_state(data, self.id)
        elif kind == "getState":
            self.send({"type": "state", "id": message_id, "data": self.caco.workbench.state.get()})
        elif kind == "ping":
            self.send({"type": "pong", "id": message_id} if message_id is not None else {"type": "pong"})
        elif kind == "sendMessage":
            self.send({**reply, "error": "Use POST /caco/api/sessions/:id/messages instead"})
        else:
            self.send({**reply, "error": f"Unknown message type: {kind}"})


@sock.route("/caco/ws", bp=blueprint)
@endpoint(Access.STREAM, tags=TAGS)
def page_socket(ws):
    """Every session's live frames; ``requestHistory``, ``setState``, ``getState``, ``ping`` from the page."""
    caco = _caco()
    page = _PageSocket(ws, caco)
    with caco.feed.subscribe(capacity=constants.CACO_WS_QUEUE, info={"caco": page.id}) as subscription:

        def read_page() -> None:
            while True:
                try:
                    text = ws.receive()
                except ConnectionClosed:
                    return
                if text is None:
                    continue
                try:
                    page.handle(text)
                except (ConnectionClosed, OSError):
                    return
                except MisoError as exc:
                    page.send({"type": "error", "error": exc.message})

        first = request.args.get("sessionId")
        if first:
            page.stream_history(first)
        reader = gevent.spawn(read_page)
        try:
            for event in bus_events(ws, subscription, IDLE_CHECK_S):
                if reader.dead:
                    break
                batch = [event]
                while len(batch) < FEED_BATCH and (waiting := subscription.get(timeout=0)) is not None:
                    batch.append(waiting)
                page.send_feed([e.payload for e in batch if page.wants(e.payload["frame"], e.correlation_id)])
        except (ConnectionClosed, OSError):
            pass
        finally:
            reader.kill(block=False)

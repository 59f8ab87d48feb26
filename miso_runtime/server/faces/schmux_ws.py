"""schmux's WebSockets: ``/ws/terminal/{sessionId}`` (a live terminal) and ``/ws/dashboard``.

The terminal's bytes come from the agents worker (tmux control mode); this face relays them as
the contract's messages (``full``, ``append``, ``displaced``, ``reconnect``; each with ``seq``,
and ``epoch`` on ``full``, so a client that reconnects with ``?last_seq=&epoch=`` gets only what
it missed) and hands the client's ``input``, ``resize``, ``pause`` and ``resume`` to the worker.
A session that is unknown (404) or not running (410) is refused before the upgrade.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gevent
from flask import Blueprint, request
from flask_sock import ConnectionClosed

from ... import constants
from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from ..websocket import bus_events
from . import runtime
from .events import sock

logger = logging.getLogger(__name__)

blueprint = Blueprint("schmux_ws", __name__)

#: Seconds a sender waits for the next message before checking that the client is still there.
IDLE_CHECK_S = 1.0
#: Trailing debounce of dashboard updates, seconds: bursts of changes become one message.
DASHBOARD_DEBOUNCE_S = 0.1


@blueprint.before_request
def _refuse_before_upgrade() -> None:
    """A terminal of a session that is gone or finished is an HTTP error, not an empty socket."""
    if request.endpoint != f"{blueprint.name}.terminal":
        return
    session_id = (request.view_args or {}).get("session_id", "")
    if not session_id.strip():
        raise MisoError(400, "invalid_request", "session ID is required")
    status = runtime().agents.session_status(session_id)
    if not status["exists"]:
        raise MisoError(404, "session_not_found", f"session not found: {session_id}")
    if not status["running"]:
        raise MisoError(410, "session_not_running", "session not running")


def _client_message(text: Any) -> tuple[str, dict[str, Any]]:
    """``(type, fields)`` of a client message; ValueError with a reason when it is malformed."""
    if not isinstance(text, str):
        raise ValueError("messages are JSON text frames")
    message = json.loads(text)
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ValueError('a message is an object with a "type"')
    kind, data = message["type"], message.get("data", "")
    if kind in ("pause", "resume"):
        return kind, {}
    if kind == "input":
        if not isinstance(data, str):
            raise ValueError('"input" needs "data": the text to type')
        return kind, {"data": data}
    if kind == "resize":
        size = json.loads(data) if isinstance(data, str) else data
        if not isinstance(size, dict) or not all(
            isinstance(size.get(k), int) and size[k] > 0 for k in ("cols", "rows")
        ):
            raise ValueError('"resize" needs "data": {"cols": n, "rows": n} with positive integers')
        return kind, {"cols": size["cols"], "rows": size["rows"]}
    raise ValueError(f"unknown message type {kind!r} (input, resize, pause, resume)")


def _int_arg(name: str) -> int | None:
    value = request.args.get(name)
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


@sock.route("/ws/terminal/<session_id>", bp=blueprint)
@endpoint(Access.DATA, tags=("schmux",))
def terminal(ws, session_id: str):
    """A session's live terminal (token by ``?token=``; ``?last_seq=&epoch=`` to resume)."""
    rt = runtime()
    seed_lines = rt.agents_config.get().terminal.seed_lines
    stream = rt.terminals.open(session_id, seed_lines, _int_arg("last_seq"), request.args.get("epoch"))

    def read_client() -> None:
        while True:
            try:
                text = ws.receive()
            except ConnectionClosed:
                return
            if text is None:
                continue
            try:
                kind, fields = _client_message(text)
                stream.client_message(kind, **fields)
            except (ValueError, TypeError) as exc:
                ws.send(json.dumps({"type": "error", "content": f"malformed message: {exc}"}))
            except MisoError as exc:
                ws.send(json.dumps({"type": "error", "content": exc.message}))

    reader = gevent.spawn(read_client)
    try:
        while ws.connected and not reader.dead:
            item = stream.get(IDLE_CHECK_S)
            if item is None:
                continue
            message, final = item
            ws.send(json.dumps(message))
            if final:
                break
    except ConnectionClosed:
        pass
    finally:
        reader.kill(block=False)
        stream.close()


def _send_dashboard(ws, workspaces: list[dict[str, Any]], conflicts: list[dict[str, Any]]) -> None:
    """schmux's pair: the ``sessions`` frame, then one ``linear_sync_resolve_conflict`` frame per state."""
    ws.send(json.dumps({"type": "sessions", "workspaces": workspaces}))
    for state in conflicts:
        ws.send(json.dumps(state))


@sock.route("/ws/dashboard", bp=blueprint)
@endpoint(Access.READ, tags=("schmux",))
def dashboard(ws):
    """Workspaces and sessions, then every resolve-conflict state: on connect, and after every change of
    either (100 ms trailing debounce), always the whole pair, as schmux sends it."""
    rt = runtime()
    types = [constants.EVENT_AGENTS_STATE, constants.EVENT_AGENTS_CONFLICTS]
    with rt.bus.subscribe(types=types, capacity=64) as subscription:
        workspaces = rt.agents.last_state()
        conflicts = rt.agents.last_conflicts()
        _send_dashboard(ws, workspaces, conflicts)
        for event in bus_events(ws, subscription, IDLE_CHECK_S):
            gevent.sleep(DASHBOARD_DEBOUNCE_S)
            while event is not None:
                if event.type == constants.EVENT_AGENTS_STATE:
                    workspaces = event.payload["workspaces"]
                else:
                    conflicts = event.payload["states"]
                event = subscription.get(timeout=0)
            try:
                _send_dashboard(ws, workspaces, conflicts)
            except (ConnectionClosed, OSError):
                break

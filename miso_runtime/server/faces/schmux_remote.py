"""schmux (seeds/004): remote flavors, remote hosts and their provisioning terminals.

Remote flavors are kept and checked with schmux's rules (``agents/remote_flavors.py``). Hosts
are connected, watched and reconnected by the agents worker (``agents/remote_hosts.py``); this
face asks it over RPC and relays the provisioning terminal (the connect command's PTY) as raw
binary WebSocket frames. The dashboard calls ``flavor-statuses`` on every dashboard update of
``/spawn`` and polls ``/api/remote/hosts`` each second while a host connects.

Remote routes answer errors in plain text (``http.Error``) as schmux does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Iterator

import gevent
from flask import Blueprint, Response, jsonify, request
from flask_sock import ConnectionClosed
from pydantic import BaseModel, ConfigDict
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import RequestRedirect

from ... import constants
from ...agents.config import AgentsConfigStore
from ...agents.go_json import BodyError, decode_body
from ...agents.remote_flavors import CREATE_FIELDS, UPDATE_FIELDS, FlavorError
from ...agents.service import AgentsService
from ...auth import Access
from ...errors import MisoError
from ...fields import Printable
from ..endpoint import endpoint
from ..sse import sse_response
from . import runtime, streams
from .events import sock

logger = logging.getLogger(__name__)

blueprint = Blueprint("schmux_remote", __name__)
TAGS = ("schmux",)

#: Seconds between the connect stream's looks at the attempt's output.
PROGRESS_POLL_S = 0.2
#: Paths whose wrong method schmux answers in plain text.
_REMOTE_PREFIXES = ("/api/config/remote-flavors", "/api/remote/")


class FixedWindowLimiter:
    """At most ``rate`` attempts per key in a window that starts at the key's first attempt (schmux's bucket)."""

    def __init__(self, rate: int, window_s: float) -> None:
        self._rate = rate
        self._window_s = window_s
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, int]] = {}  # key -> (window start, attempts left)

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            self._buckets = {k: b for k, b in self._buckets.items() if now - b[0] <= 2 * self._window_s}
            start, left = self._buckets.get(key, (now - 2 * self._window_s, 0))
            if now - start > self._window_s:
                self._buckets[key] = (now, self._rate - 1)
                return True
            if left > 0:
                self._buckets[key] = (start, left - 1)
                return True
            return False


_connect_limiter = FixedWindowLimiter(constants.REMOTE_CONNECT_RATE, constants.REMOTE_CONNECT_WINDOW_S)


class ConnectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flavor_id: Printable = ""


@blueprint.before_app_request
def _wrong_method() -> Response | None:
    """schmux's plain-text 405 for a method its remote routes do not take (Flask's would be JSON).

    A redirect counts too: ``DELETE /api/config/remote-flavors`` matches only the no-id route's
    trailing-slash form, which Flask would answer with a 308 to it.
    """
    wrong = isinstance(request.routing_exception, (MethodNotAllowed, RequestRedirect))
    if wrong and request.path.startswith(_REMOTE_PREFIXES):
        return Response("Method not allowed\n", status=405, mimetype="text/plain")
    return None


@blueprint.before_request
def _before_the_handler() -> None:
    """The provisioning terminal is refused before the upgrade, in schmux's order."""
    if request.endpoint == f"{blueprint.name}.provision_without_id":
        raise MisoError(400, "invalid_request", "provision ID is required")
    if request.endpoint == f"{blueprint.name}.provision":
        provision_id = (request.view_args or {}).get("provision_id", "")
        if not provision_id.startswith("provision-") or provision_id == "provision-":
            raise MisoError(400, "invalid_request", "invalid provision ID format")
        if not any(h.get("provisioning_session_id") == provision_id for h in _agents().call("remote_hosts")):
            raise MisoError(404, "host_not_found", "remote host connection not found")


# --- remote flavors and hosts -------------------------------------------------------------------


def _flavors() -> AgentsConfigStore:
    return runtime().agents_config


def _agents() -> AgentsService:
    return runtime().agents


def _flavor_request(names: tuple[str, ...]) -> dict[str, str]:
    """The body's known fields, decoded as schmux's handler decodes them (400 ``Invalid request body``)."""
    try:
        raw = request.get_data(cache=True).decode("utf-8", "replace")
        return decode_body(raw, dict.fromkeys(names, str), allow_empty=False)
    except BodyError:
        raise MisoError(400, "invalid_request", "Invalid request body") from None


@blueprint.get("/api/config/remote-flavors")
@endpoint(Access.READ, tags=TAGS)
def remote_flavors():
    """The configured remote flavors (``[]`` when there are none)."""
    return jsonify([flavor.response() for flavor in _flavors().remote_flavors()])


@blueprint.post("/api/config/remote-flavors")
@endpoint(Access.ADMIN, tags=TAGS)
def create_remote_flavor():
    """Add a flavor (its id made from ``flavor``); 200 with it, 400 with schmux's reason."""
    try:
        flavor = _flavors().add_remote_flavor(_flavor_request(CREATE_FIELDS))
    except FlavorError as exc:
        raise MisoError(400, "invalid_config", str(exc)) from None
    return jsonify(flavor.response())


@blueprint.route("/api/config/remote-flavors/", methods=["GET", "PUT", "DELETE"])
@endpoint(Access.READ, tags=TAGS)
def remote_flavor_without_id():
    """400 ``Flavor ID required``."""
    raise MisoError(400, "invalid_request", "Flavor ID required")


@blueprint.get("/api/config/remote-flavors/<flavor_id>")
@endpoint(Access.READ, tags=TAGS)
def remote_flavor(flavor_id: str):
    """One flavor, or 404 ``Flavor not found``."""
    flavor = _flavors().remote_flavor(flavor_id)
    if flavor is None:
        raise MisoError(404, "flavor_not_found", "Flavor not found")
    return jsonify(flavor.response())


@blueprint.put("/api/config/remote-flavors/<flavor_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def update_remote_flavor(flavor_id: str):
    """Replace every field but ``id`` and ``flavor`` (one left out becomes empty, as in schmux)."""
    if _flavors().remote_flavor(flavor_id) is None:
        raise MisoError(404, "flavor_not_found", "Flavor not found")
    changes = _flavor_request(UPDATE_FIELDS)
    try:
        flavor = _flavors().update_remote_flavor(flavor_id, changes)
    except FlavorError as exc:
        raise MisoError(400, "invalid_config", str(exc)) from None
    if flavor is None:  # removed meanwhile
        raise MisoError(404, "flavor_not_found", "Flavor not found")
    return jsonify(flavor.response())


@blueprint.delete("/api/config/remote-flavors/<flavor_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def delete_remote_flavor(flavor_id: str):
    """204, or 404 ``invalid config: remote flavor not found: <id>``."""
    if not _flavors().remove_remote_flavor(flavor_id):
        raise MisoError(404, "flavor_not_found", f"invalid config: remote flavor not found: {flavor_id}")
    return Response(status=204)


@blueprint.get("/api/remote/hosts")
@endpoint(Access.READ, tags=TAGS)
def remote_hosts():
    """Every remote host kept, with its status (``[]`` when there are none)."""
    return jsonify(_agents().call("remote_hosts"))


@blueprint.get("/api/remote/flavor-statuses")
@endpoint(Access.READ, tags=TAGS)
def flavor_statuses():
    """Each flavor with the status of its host's live connection (``disconnected`` without one)."""
    return jsonify(_agents().call("remote_flavor_statuses"))


@blueprint.post("/api/remote/hosts/connect")
@endpoint(Access.ADMIN, body=ConnectBody, tags=TAGS)
def connect_host(body: ConnectBody):
    """202 while the flavor's host is provisioning (the attempt under way is joined), 200 with
    the host when it is connected; 429 past 3 attempts a minute.

    Attempts count from the first one whose body parses (schmux counts even a body it cannot
    read; here such a body is answered 400 naming the field before anything else). They count
    per GitHub login when the dashboard's login is on, else per client address.
    """
    if not _connect_limiter.allow(_attempt_key()):
        raise MisoError(429, "rate_limited", "Rate limit exceeded. Max 3 connection attempts per minute.")
    if not body.flavor_id:
        raise MisoError(400, "invalid_request", "flavor_id is required")
    answer = _agents().call("remote_connect", flavor_id=body.flavor_id)
    response = jsonify(answer["body"])
    response.status_code = answer["status"]
    return response


def _attempt_key() -> str:
    """Whom a connect attempt counts against: the logged-in GitHub user, else the client's address
    (without its port, which ``remote_addr`` never carries)."""
    session = request.environ.get(constants.LOGIN_SESSION_ENVIRON)
    if session is not None:
        return f"login:{session.login}"
    return f"addr:{request.remote_addr or ''}"


@blueprint.get("/api/remote/hosts/connect/stream")
@endpoint(Access.ADMIN, tags=TAGS)
def connect_stream():
    """Connect (or join the attempt under way) and stream the connect command's output lines as
    ``data: <line>``, then ``data: connected`` or ``data: error: <reason>`` (schmux's form)."""
    flavor_id = request.args.get("flavor_id", "")
    if not flavor_id:
        raise MisoError(400, "invalid_request", "flavor_id required")
    agents = _agents()
    return sse_response(
        _progress_lines(agents, flavor_id),
        registry=streams(),
        environ=request.environ,
        final_on_shutdown="error: the runtime is stopping",
        formatter=lambda line, _seq: f"data: {line}\n\n",
    )


def _progress_lines(agents: AgentsService, flavor_id: str) -> Iterator[str]:
    try:
        started = agents.call("remote_connect", flavor_id=flavor_id)
    except MisoError as exc:
        yield f"error: {exc.message}"
        return
    if started["status"] == 200:
        yield "connected"
        return
    host_id, cursor = started["host_id"], 0
    deadline = time.monotonic() + constants.REMOTE_CONNECT_STREAM_TIMEOUT_S
    while time.monotonic() < deadline:
        progress = agents.call("remote_progress", host_id=host_id, cursor=cursor)
        yield from progress["lines"]
        cursor = progress["cursor"]
        if progress["status"] == "connected":
            yield "connected"
            return
        if progress["status"] in ("disconnected", "expired"):
            yield f"error: {progress['error'] or 'connection failed'}"
            return
        gevent.sleep(PROGRESS_POLL_S)
    yield "error: connection timeout"


@blueprint.post("/api/remote/hosts/<host_id>/reconnect")
@endpoint(Access.ADMIN, tags=TAGS)
def reconnect_host(host_id: str):
    """202 while the host reconnects with the flavor's reconnect command; a reconnect that fails
    removes the host's sessions, its workspace and the host."""
    response = jsonify(_agents().call("remote_reconnect", host_id=host_id))
    response.status_code = 202
    return response


@blueprint.delete("/api/remote/hosts/<host_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def disconnect_host(host_id: str):
    """204 always: the connection closes, the host stays (``disconnected``) for a reconnect."""
    _agents().call("remote_disconnect", host_id=host_id)
    return Response(status=204)


@blueprint.delete("/api/remote/hosts/")
@endpoint(Access.ADMIN, tags=TAGS)
def disconnect_without_id():
    """400 ``Host ID required``."""
    raise MisoError(400, "invalid_request", "Host ID required")


@sock.route("/ws/provision/", bp=blueprint)
@endpoint(Access.DATA, tags=TAGS)
def provision_without_id(ws):
    """400 before the upgrade: the path names no provisioning session."""
    ws.close()


@sock.route("/ws/provision/<provision_id>", bp=blueprint)
@endpoint(Access.DATA, tags=TAGS)
def provision(ws, provision_id: str):
    """The connect command's terminal: its raw output as binary frames; binary frames (or
    ``{"type":"input"}``/``{"type":"resize"}`` text) typed into it."""
    stream = runtime().terminals.open_provision(provision_id)

    def read_client() -> None:
        while True:
            try:
                frame = ws.receive()
            except ConnectionClosed:
                return
            if frame is None:
                continue
            try:
                if isinstance(frame, (bytes, bytearray)):
                    stream.client_message("input", bytes(frame))
                    continue
                kind, fields = _provision_message(frame)
                stream.client_message(kind, **fields)
            except (ValueError, TypeError) as exc:
                logger.debug("provisioning terminal %s: malformed message: %s", provision_id, exc)
            except MisoError as exc:
                logger.debug("provisioning terminal %s: %s", provision_id, exc.message)

    reader = gevent.spawn(read_client)
    try:
        while ws.connected and not reader.dead:
            item = stream.get(1.0)
            if item is None:
                continue
            message, final = item
            if message.get("type") == "output":
                ws.send(bytes(message["data"]))
            if final:
                break
    except ConnectionClosed:
        pass
    finally:
        reader.kill(block=False)
        stream.close()


def _provision_message(text: str) -> tuple[str, dict[str, Any]]:
    """``{"type":"input","data":str}`` or ``{"type":"resize","data":"{\\"cols\\":N,\\"rows\\":M}"}``."""
    message = json.loads(text)
    if not isinstance(message, dict):
        raise ValueError("a message is an object")
    kind, data = message.get("type"), message.get("data", "")
    if kind == "input" and isinstance(data, str):
        return "input", {"data": data}
    if kind == "resize":
        size = json.loads(data) if isinstance(data, str) else data
        cols, rows = int(size["cols"]), int(size["rows"])
        if cols < 1 or rows < 1:
            raise ValueError("cols and rows must be positive")
        return "resize", {"cols": cols, "rows": rows}
    raise ValueError(f"unknown message type {kind!r}")

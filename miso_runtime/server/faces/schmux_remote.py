"""schmux (seeds/004): remote flavors and remote workspaces.

Remote flavors are kept and checked with schmux's rules (``agents/remote_flavors.py``). This
runtime has no remote-host manager yet (schmux's ``remoteManager == nil``), so the other routes
answer what schmux answers in that state, exactly: no hosts, every flavor ``disconnected``, an
action that needs a remote host is 503 ``Remote workspace support not enabled``. The dashboard
calls the read forms on every page load (``/spawn`` polls ``flavor-statuses`` on each dashboard
update), so they must answer, and answer the truth.

Remote routes answer errors in plain text (``http.Error``) as schmux does.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.routing import RequestRedirect

from ... import constants
from ...agents.config import AgentsConfigStore
from ...agents.go_json import BodyError, decode_body
from ...agents.remote_flavors import CREATE_FIELDS, UPDATE_FIELDS, FlavorError
from ...auth import Access
from ...errors import MisoError
from ...fields import Printable
from ..endpoint import endpoint
from . import runtime
from .events import sock

blueprint = Blueprint("schmux_remote", __name__)
TAGS = ("schmux",)

#: What schmux's remote routes answer without a remote manager (the WebSocket's is lower case).
REMOTE_OFF = "Remote workspace support not enabled"
PROVISION_OFF = "remote workspace support not enabled"
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
    """The provisioning terminal is refused before the upgrade, as schmux refuses it."""
    if request.endpoint == f"{blueprint.name}.provision_without_id":
        raise MisoError(400, "invalid_request", "provision ID is required")
    elif request.endpoint == f"{blueprint.name}.provision":
        raise MisoError(503, "remote_disabled", PROVISION_OFF)


# --- remote flavors and hosts -------------------------------------------------------------------


def _flavors() -> AgentsConfigStore:
    return runtime().agents_config


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
    """The remote hosts: none (``[]``)."""
    return jsonify([])


@blueprint.get("/api/remote/flavor-statuses")
@endpoint(Access.READ, tags=TAGS)
def flavor_statuses():
    """Each flavor with its connection status: no host is ever connected yet, so ``disconnected``."""
    flavors = _flavors().remote_flavors()
    return jsonify([{"flavor": f.status_view(), "connected": False, "status": "disconnected"} for f in flavors])


@blueprint.post("/api/remote/hosts/connect")
@endpoint(Access.ADMIN, body=ConnectBody, tags=TAGS)
def connect_host(body: ConnectBody):
    """429 past 3 attempts a minute, 400 without ``flavor_id``, else 503: there is no remote support.

    Attempts count from the first one whose body parses (schmux counts even a body it cannot
    read; here such a body is answered 400 naming the field before anything else).
    """
    if not _connect_limiter.allow(request.remote_addr or ""):
        raise MisoError(429, "rate_limited", "Rate limit exceeded. Max 3 connection attempts per minute.")
    if not body.flavor_id:
        raise MisoError(400, "invalid_request", "flavor_id is required")
    raise MisoError(503, "remote_disabled", REMOTE_OFF)


@blueprint.post("/api/remote/hosts/<host_id>/reconnect")
@endpoint(Access.ADMIN, tags=TAGS)
def reconnect_host(host_id: str):
    """503: there is no remote support, so no host to reconnect."""
    raise MisoError(503, "remote_disabled", REMOTE_OFF)


@sock.route("/ws/provision/", bp=blueprint)
@endpoint(Access.DATA, tags=TAGS)
def provision_without_id(ws):
    """400 before the upgrade: the path names no provisioning session."""
    ws.close()


@sock.route("/ws/provision/<provision_id>", bp=blueprint)
@endpoint(Access.DATA, tags=TAGS)
def provision(ws, provision_id: str):
    """503 before the upgrade: no remote host, so no provisioning terminal to attach to."""
    ws.close()

"""schmux (seeds/004): remote workspaces and pull requests, as a runtime without either answers them.

This runtime has no remote-host manager (schmux's ``remoteManager == nil``) and no GitHub pull
request discovery yet, so these routes answer what schmux answers in that state, exactly: the
lists are empty, an action that needs a remote host is 503 ``Remote workspace support not
enabled``, and a pull request is never in the (empty) cache. The dashboard calls the read forms
on every page load (``/spawn`` polls ``flavor-statuses`` on each dashboard update), so they
must answer, and answer the truth.

Remote routes answer errors in plain text (``http.Error``), the pull-request routes
``{"error": "..."}``, each as schmux does.
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict

from ... import constants
from ...auth import Access
from ...errors import MisoError
from ...fields import CInt, Printable
from ..endpoint import endpoint
from .events import sock

blueprint = Blueprint("schmux_remote", __name__)
prs_blueprint = Blueprint("schmux_prs", __name__)
TAGS = ("schmux",)

#: What schmux's remote routes answer without a remote manager (the WebSocket's is lower case).
REMOTE_OFF = "Remote workspace support not enabled"
PROVISION_OFF = "remote workspace support not enabled"
#: ``POST /api/prs/refresh``'s ``error``: said every time, so the dashboard shows why the list stays empty.
PR_DISCOVERY_OFF = "pull request discovery is not available in this runtime: no GitHub repositories are queried"


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


class PrCheckoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_url: Printable = ""
    pr_number: CInt = 0


@blueprint.before_request
def _before_the_handler() -> None:
    """The provisioning terminal is refused before the upgrade, as schmux refuses it."""
    if request.endpoint == f"{blueprint.name}.provision_without_id":
        raise MisoError(400, "invalid_request", "provision ID is required")
    elif request.endpoint == f"{blueprint.name}.provision":
        raise MisoError(503, "remote_disabled", PROVISION_OFF)


# --- remote flavors and hosts -------------------------------------------------------------------


@blueprint.get("/api/config/remote-flavors")
@endpoint(Access.READ, tags=TAGS)
def remote_flavors():
    """The configured remote flavors: none (``[]``)."""
    return jsonify([])


@blueprint.get("/api/config/remote-flavors/<flavor_id>")
@endpoint(Access.READ, tags=TAGS)
def remote_flavor(flavor_id: str):
    """404 ``Flavor not found``: no flavor is configured."""
    raise MisoError(404, "flavor_not_found", "Flavor not found")


@blueprint.get("/api/remote/hosts")
@endpoint(Access.READ, tags=TAGS)
def remote_hosts():
    """The remote hosts: none (``[]``)."""
    return jsonify([])


@blueprint.get("/api/remote/flavor-statuses")
@endpoint(Access.READ, tags=TAGS)
def flavor_statuses():
    """Each flavor with its connection status: no flavors (``[]``)."""
    return jsonify([])


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


# --- pull requests ------------------------------------------------------------------------------


@prs_blueprint.get("/api/prs")
@endpoint(Access.READ, tags=TAGS)
def prs():
    """The cached pull requests: none, never fetched."""
    return jsonify(prs=[], last_fetched_at=None)


@prs_blueprint.post("/api/prs/refresh")
@endpoint(Access.ADMIN, tags=TAGS)
def refresh_prs():
    """200 with no pull requests and an ``error`` saying why: this runtime queries no GitHub repositories."""
    return jsonify(prs=[], fetched_count=0, error=PR_DISCOVERY_OFF, retry_after_sec=None)


@prs_blueprint.post("/api/prs/checkout")
@endpoint(Access.ADMIN, body=PrCheckoutBody, tags=TAGS)
def checkout_pr(body: PrCheckoutBody):
    """400 without ``repo_url`` and a positive ``pr_number``; else 404: the pull-request cache is empty."""
    if not body.repo_url or body.pr_number <= 0:
        raise MisoError(400, "invalid_request", "repo_url and pr_number are required")
    raise MisoError(404, "pr_not_found", f"PR #{body.pr_number} not found for {body.repo_url}")

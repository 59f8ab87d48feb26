"""schmux's sync routes: push to branch, linear sync from and to main, conflict resolution and its
state, overlays.

The work is the agents worker's (``agents/linear_sync.py``, ``agents/overlays.py``); this face
sends each answer as the worker shaped it, because schmux's bodies differ per route and per
failure (``{"success": false, "message"}``, ``{"started": false, ...}``, ``{"error"}``, empty bodies).

schmux dispatches ``/api/workspaces/{id}/<suffix>`` by suffix before any handler runs: a method
other than POST (DELETE for the conflict state) is a plain-text ``405 Method not allowed``, and
any other DELETE a plain ``404``. :func:`_schmux_dispatch_errors` answers those here, for every
POST suffix of that dispatcher, where Flask would answer its JSON 405.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import MethodNotAllowed

from ...auth import Access
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_sync", __name__)
TAGS = ("schmux",)

#: Suffixes of schmux's ``/api/workspaces/{id}/`` dispatcher that only POST reaches.
POST_SUFFIXES = (
    "linear-sync-from-main",
    "linear-sync-to-main",
    "push-to-branch",
    "linear-sync-resolve-conflict",
    "git-commit-stage",
    "git-amend",
    "git-discard",
    "git-uncommit",
    "refresh-overlay",
    "dispose",
    "dispose-all",
)
STATE_SUFFIX = "linear-sync-resolve-conflict-state"
_DISPATCHED = re.compile(
    r"^/api/workspaces/.+/(?P<suffix>%s)$" % "|".join(map(re.escape, (*POST_SUFFIXES, STATE_SUFFIX)))
)
#: Seconds the worker gets beyond the git timeouts (a sync waits for the workspace's lock first).
RPC_MARGIN_S = 30.0


@blueprint.before_app_request
def _schmux_dispatch_errors() -> Response | None:
    """schmux's plain-text 405/404 for a wrong method on a dispatched suffix (Flask's would be JSON)."""
    if not isinstance(request.routing_exception, MethodNotAllowed):
        return None
    if request.path == "/api/overlays":
        return Response("Method not allowed\n", status=405, mimetype="text/plain")
    match = _DISPATCHED.match(request.path)
    if match is None:
        return None
    if request.method == "DELETE" or (request.method == "POST" and match["suffix"] == STATE_SUFFIX):
        return Response("404 page not found\n", status=404, mimetype="text/plain")
    return Response("Method not allowed\n", status=405, mimetype="text/plain")


def _send(answer: dict[str, Any]) -> Response:
    """The worker's ``{"status", "body"}`` as the response; ``body: null`` is an empty body."""
    body = answer.get("body")
    if body is None:
        response = Response(b"", status=answer["status"])
        del response.headers["Content-Type"]  # Go writes none for an empty body
        return response
    response = jsonify(body)
    response.status_code = answer["status"]
    return response


def _git_timeout_s() -> float:
    """The RPC wait of a sync: fetch, rebase and push each get the clone timeout."""
    return 3 * runtime().agents_config.get().sessions.git_clone_timeout_ms / 1000 + RPC_MARGIN_S


@blueprint.post("/api/workspaces/<workspace_id>/push-to-branch")
@endpoint(Access.ADMIN, tags=TAGS)
def push_to_branch(workspace_id: str):
    """Push ``HEAD`` to the workspace's branch on origin; ``success: false`` when behind, diverged or dirty."""
    return _send(runtime().agents.call("sync_push_to_branch", _git_timeout_s(), workspace_id=workspace_id))


@blueprint.post("/api/workspaces/<workspace_id>/linear-sync-from-main")
@endpoint(Access.ADMIN, tags=TAGS)
def sync_from_main(workspace_id: str):
    """Rebase onto origin's default branch one commit at a time; ``conflicting_hash`` where it stopped."""
    return _send(runtime().agents.call("sync_from_main", _git_timeout_s(), workspace_id=workspace_id))


@blueprint.post("/api/workspaces/<workspace_id>/linear-sync-to-main")
@endpoint(Access.ADMIN, tags=TAGS)
def sync_to_main(workspace_id: str):
    """Fast-forward origin's default branch to ``HEAD``; ``success: false`` unless clean and strictly ahead."""
    return _send(runtime().agents.call("sync_to_main", _git_timeout_s(), workspace_id=workspace_id))


@blueprint.post("/api/workspaces/<workspace_id>/linear-sync-resolve-conflict")
@endpoint(Access.ADMIN, status=202, tags=TAGS)
def resolve_conflict(workspace_id: str):
    """Start resolving the conflict with the next commit of main (202); progress goes over ``/ws/dashboard``."""
    return _send(runtime().agents.call("sync_resolve_conflict", workspace_id=workspace_id))


@blueprint.delete("/api/workspaces/<workspace_id>/linear-sync-resolve-conflict-state")
@endpoint(Access.ADMIN, tags=TAGS)
def dismiss_conflict_state(workspace_id: str):
    """Dismiss a finished resolve-conflict state: 200 or 404 with empty bodies, 409 while it runs."""
    return _send(runtime().agents.call("sync_dismiss_conflict_state", workspace_id=workspace_id))


@blueprint.post("/api/workspaces/<workspace_id>/refresh-overlay")
@endpoint(Access.ADMIN, tags=TAGS)
def refresh_overlay(workspace_id: str):
    """Copy the repo's overlay files (only those git ignores there) into the workspace; 400 ``{"error"}``."""
    timeout_s = runtime().agents_config.get().xterm.operation_timeout_ms / 1000 * 2 + RPC_MARGIN_S
    return _send(runtime().agents.call("overlays_refresh", timeout_s, workspace_id=workspace_id))


@blueprint.get("/api/overlays")
@endpoint(Access.READ, tags=TAGS)
def overlays():
    """Each configured repo's overlay folder: path, whether it exists, how many files it holds."""
    return jsonify(runtime().agents.call("overlays_list"))

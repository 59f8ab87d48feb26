"""schmux's git routes of a local workspace: diff, external diff, VS Code, graph, stage/amend/discard/uncommit.

The agents worker does the work (``agents/git_changes.py``: :class:`GitOperations`); this face
passes the path's id, the raw body or the query's limits, and renders each route's answers in
schmux's exact shapes, which differ by route:

- ``GET /api/diff/{id}``: errors in plain text (``http.Error``), and an empty 200 while an
  operation holds the workspace;
- ``POST /api/diff-external/{id}`` and ``POST /api/open-vscode/{id}``: ``{"success": false,
  "message"}`` with the error's status (their own blueprint documents that shape);
- ``git-graph`` and the four changes: ``{"error": "..."}`` (the schmux envelope).

Wrong methods and missing ids, which schmux answers before any handler, are answered by
:func:`_schmux_routing_errors` for these paths (the sync face answers them for the POST
suffixes of ``/api/workspaces/{id}/``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel

from ... import constants
from ...agents.git_graph import graph_limits
from ...agents.service import CALL_TIMEOUT_S
from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime

#: ``git-graph`` and the changes: ``{"error"}``.
blueprint = Blueprint("schmux_git", __name__)
#: External diff and VS Code: ``{"success": false, "message"}`` for their own errors.
tools_blueprint = Blueprint("schmux_git_tools", __name__)
TAGS = ("schmux",)

#: The tools' envelope: the guard's errors (401, 403, 413) are schmux's ``{"error"}``, the
#: routes' own are ``{"success": false, "message"}``; the document names both.
#: Top-level paths of these routes and the one method each takes.
_OWN_PREFIXES = {"/api/diff/": "GET", "/api/diff-external/": "POST", "/api/open-vscode/": "POST"}


class GitGraphQuery(BaseModel):
    """``git-graph``'s query, for the document: values that are not positive integers are ignored."""

    max_total: str | None = None
    main_context: str | None = None
    max_commits: str | None = None
    context: str | None = None


def _plain(message: str, status: int) -> Response:
    """``http.Error``: the message and a newline, in plain text."""
    return Response(message + "\n", status=status, mimetype="text/plain", headers={"X-Content-Type-Options": "nosniff"})


@blueprint.before_app_request
def _schmux_routing_errors() -> Response | None:
    """schmux's answers where Flask's routing failed on these paths (Flask's would be JSON)."""
    if request.url_rule is not None:
        return None
    path = request.path
    for prefix, method in _OWN_PREFIXES.items():
        if path.startswith(prefix):
            if request.method != method:
                return _plain("Method not allowed", 405)
            workspace_id = path[len(prefix) :]
            if not workspace_id:
                return _plain("workspace ID is required", 400)
            if prefix == "/api/diff/":  # an id with a slash: schmux looks it up, and finds nothing
                return _plain("workspace not found", 404)
            return None
    if path.startswith("/api/workspaces/") and path.endswith("/git-graph") and request.method != "GET":
        return _plain("Method not allowed", 405)
    return None


def _sessions() -> Any:
    return runtime().agents_config.get().sessions


def _read_timeout_s() -> float:
    """A read refreshes the status (several git commands) then runs its own within one git timeout."""
    status_s = _sessions().git_status_timeout_ms / 1000 or constants.AGENTS_GIT_STATUS_TIMEOUT_MS / 1000
    return status_s * constants.GITOPS_READ_TIMEOUT_BUDGETS + CALL_TIMEOUT_S


def _change_timeout_s() -> float:
    """A change runs at most three commands, each with the clone timeout, then refreshes the status."""
    sessions = _sessions()
    clone_s = sessions.git_clone_timeout_ms / 1000 or constants.AGENTS_GIT_CLONE_TIMEOUT_MS / 1000
    return clone_s * 3 + _read_timeout_s()


def _body() -> str:
    """The raw body as text; the worker reads it as schmux does (an empty body is allowed by some)."""
    return request.get_data(cache=True).decode("utf-8", "replace")


def _result(method: str, **args: Any) -> Response | tuple[Response, int]:
    """Call a tool route's method; its errors as ``{"success": false, "message"}``."""
    try:
        return jsonify(runtime().agents.call(method, _read_timeout_s(), **args))
    except MisoError as exc:
        return jsonify(success=False, message=exc.message), exc.status


@blueprint.get("/api/diff/<workspace_id>")
@endpoint(Access.READ, tags=TAGS)
def diff(workspace_id: str):
    """Uncommitted changes against ``HEAD`` with both texts, plus untracked files; errors in plain text."""
    try:
        answer = runtime().agents.call("git_diff", _read_timeout_s(), workspace_id=workspace_id)
    except MisoError as exc:
        return _plain(exc.message, exc.status)
    if answer is None:  # the workspace is busy (a sync or conflict resolution): schmux writes nothing
        response = Response(b"", status=200)
        del response.headers["Content-Type"]
        return response
    return jsonify(answer)


@tools_blueprint.post("/api/diff-external/<workspace_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def diff_external(workspace_id: str):
    """Open each modified or deleted file in a diff tool (``{"command"}``: a configured name or a command)."""
    return _result("git_diff_external", workspace_id=workspace_id, body=_body())


@tools_blueprint.post("/api/open-vscode/<workspace_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def open_vscode(workspace_id: str):
    """Open the workspace in a new VS Code window (``code -n``); 404 with how to install ``code``."""
    return _result("git_open_vscode", workspace_id=workspace_id)


@blueprint.get("/api/workspaces/<workspace_id>/git-graph")
@endpoint(Access.READ, query=GitGraphQuery, tags=TAGS)
def git_graph(workspace_id: str, query: GitGraphQuery):
    """The branch's commits against origin's default branch, heads first, with ``main_ahead_count``."""
    max_total, main_context = graph_limits(request.args)
    return jsonify(
        runtime().agents.call(
            "git_graph", _read_timeout_s(), workspace_id=workspace_id, max_total=max_total, main_context=main_context
        )
    )


@blueprint.post("/api/workspaces/<workspace_id>/git-commit-stage")
@endpoint(Access.ADMIN, tags=TAGS)
def git_commit_stage(workspace_id: str):
    """Stage ``{"files": [...]}`` (``git add``); an empty list stages nothing."""
    return jsonify(
        runtime().agents.call("git_commit_stage", _change_timeout_s(), workspace_id=workspace_id, body=_body())
    )


@blueprint.post("/api/workspaces/<workspace_id>/git-amend")
@endpoint(Access.ADMIN, tags=TAGS)
def git_amend(workspace_id: str):
    """Add ``{"files": [...]}`` to the last commit (``--amend --no-edit``); 400 without commits ahead."""
    return jsonify(runtime().agents.call("git_amend", _change_timeout_s(), workspace_id=workspace_id, body=_body()))


@blueprint.post("/api/workspaces/<workspace_id>/git-discard")
@endpoint(Access.ADMIN, tags=TAGS)
def git_discard(workspace_id: str):
    """Discard ``{"files": [...]}``, or every uncommitted change with no body or ``{}``."""
    return jsonify(runtime().agents.call("git_discard", _change_timeout_s(), workspace_id=workspace_id, body=_body()))


@blueprint.post("/api/workspaces/<workspace_id>/git-uncommit")
@endpoint(Access.ADMIN, tags=TAGS)
def git_uncommit(workspace_id: str):
    """Undo the last commit, keeping its changes unstaged, if ``{"hash"}`` is still ``HEAD`` (else 409)."""
    return jsonify(runtime().agents.call("git_uncommit", _change_timeout_s(), workspace_id=workspace_id, body=_body()))

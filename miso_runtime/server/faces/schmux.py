"""schmux (seeds/004), the core: config, health, tool detection and quick-launch presets.

Its config routes answer validation errors in plain text (``http.Error`` in schmux), the other
routes ``{"error": "..."}``; each group is its own blueprint so that the app renders each
route's errors in its contract's shape.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...agents.config import ConfigError
from ...agents.spawn import SpawnRequest
from ...agents.tools import builtin_quick_launch, detect_tools
from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime
from .schmux_models import BranchConflictBody, ConfigUpdateBody, NicknameBody, SpawnBody

blueprint = Blueprint("schmux", __name__)
config_blueprint = Blueprint("schmux_config", __name__)
TAGS = ("schmux",)


@blueprint.get("/api/healthz")
@endpoint(public=True, tags=TAGS)
def healthz():
    """Health and version, in schmux's shape."""
    return jsonify(status="ok", version=runtime().version)


@blueprint.get("/api/detect-tools")
@endpoint(Access.READ, tags=TAGS)
def tools():
    """Agent CLIs found on PATH (``source: detected``) and the configured run targets (``source: config``)."""
    return jsonify(tools=detect_tools(runtime().agents_config.get()))


@blueprint.get("/api/builtin-quick-launch")
@endpoint(Access.READ, tags=TAGS)
def quick_launch():
    """Built-in quick-launch presets."""
    return jsonify(builtin_quick_launch())


@config_blueprint.get("/api/config")
@endpoint(Access.READ, tags=TAGS)
def get_config():
    """The coding-agents config, with the detected tools and built-in models (never a secret);
    ``needs_restart`` after a change that applies at the next start."""
    return jsonify(runtime().agents_config.view())


@config_blueprint.route("/api/config", methods=["POST", "PUT"])
@endpoint(Access.ADMIN, body=ConfigUpdateBody, tags=TAGS)
def update_config(body: ConfigUpdateBody):
    """Change the fields given (sections merge field by field, lists replace); 400 in plain text if invalid."""
    rt = runtime()
    try:
        result = rt.agents_config.update(body.model_dump(exclude_unset=True))
    except ConfigError as exc:
        raise MisoError(400, "invalid_config", str(exc)) from None
    rt.agents.config_saved()
    try:
        sessions, workspaces = rt.agents.counts()
    except MisoError:  # the agents worker is down: the config is saved all the same
        sessions, workspaces = 0, 0
    return jsonify(result.response(session_count=sessions, workspace_count=workspaces))


@blueprint.get("/api/sessions")
@endpoint(Access.READ, tags=TAGS)
def sessions():
    """Workspaces with their sessions and git status (``git_*`` from a cache refreshed off the request path)."""
    return jsonify(runtime().agents.sessions())


@blueprint.post("/api/spawn")
@endpoint(Access.ADMIN, body=SpawnBody, tags=TAGS)
def spawn(body: SpawnBody):
    """Start sessions of the targets in a new workspace (repo + branch) or an existing one; per-result errors."""
    request = SpawnRequest(
        repo=body.repo,
        branch=body.branch,
        prompt=body.prompt,
        nickname=body.nickname,
        targets=body.targets,
        workspace_id=body.workspace_id,
        resume=body.resume,
        remote_flavor_id=body.remote_flavor_id,
    )
    return jsonify(runtime().agents.spawn(request))


@blueprint.post("/api/check-branch-conflict")
@endpoint(Access.READ, body=BranchConflictBody, tags=TAGS)
def check_branch_conflict(body: BranchConflictBody):
    """Whether the branch is checked out in a workspace already (worktree mode; else never)."""
    return jsonify(runtime().agents.check_branch_conflict(body.repo, body.branch))


@blueprint.post("/api/workspaces/scan")
@endpoint(Access.ADMIN, tags=TAGS)
def scan_workspaces():
    """Reconcile the workspace list with the disk."""
    return jsonify(runtime().agents.scan())


@blueprint.post("/api/workspaces/<workspace_id>/dispose")
@endpoint(Access.ADMIN, tags=TAGS)
def dispose_workspace(workspace_id: str):
    """Remove a workspace; 400 when it is dirty or has sessions."""
    return jsonify(runtime().agents.dispose_workspace(workspace_id, with_sessions=False))


@blueprint.post("/api/workspaces/<workspace_id>/dispose-all")
@endpoint(Access.ADMIN, tags=TAGS)
def dispose_workspace_and_sessions(workspace_id: str):
    """End the workspace's sessions, then remove it; 400 (nothing ended) when it is dirty."""
    return jsonify(runtime().agents.dispose_workspace(workspace_id, with_sessions=True))


@blueprint.post("/api/sessions/<session_id>/dispose")
@endpoint(Access.ADMIN, tags=TAGS)
def dispose_session(session_id: str):
    """End a session (its tmux session is killed)."""
    return jsonify(runtime().agents.dispose_session(session_id))


@blueprint.route("/api/sessions-nickname/<session_id>", methods=["PUT", "PATCH"])
@endpoint(Access.ADMIN, body=NicknameBody, tags=TAGS)
def rename_session(session_id: str, body: NicknameBody):
    """Set a session's nickname; 409 when another session has it."""
    return jsonify(runtime().agents.rename(session_id, body.nickname))

"""schmux (seeds/004), the core: config, health, tool detection and quick-launch presets.

Its config routes answer validation errors in plain text (``http.Error`` in schmux), the other
routes ``{"error": "..."}``; each group is its own blueprint so that the app renders each
route's errors in its contract's shape.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...agents.config import ConfigError
from ...agents.tools import builtin_quick_launch, detect_tools
from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime
from .schmux_models import ConfigUpdateBody

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
    """The coding-agents config; ``needs_restart`` after a change that applies at the next start."""
    store = runtime().agents_config
    return jsonify({**store.get().model_dump(), "needs_restart": store.needs_restart})


@config_blueprint.route("/api/config", methods=["POST", "PUT"])
@endpoint(Access.ADMIN, body=ConfigUpdateBody, tags=TAGS)
def update_config(body: ConfigUpdateBody):
    """Change the fields given (sections merge field by field, lists replace); 400 in plain text if invalid."""
    rt = runtime()
    try:
        result = rt.agents_config.update(body.model_dump(exclude_unset=True))
    except ConfigError as exc:
        raise MisoError(400, "invalid_config", str(exc)) from None
    return jsonify(result.response(session_count=0, workspace_count=len(rt.workspaces.list())))

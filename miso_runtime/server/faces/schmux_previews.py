"""schmux workspace previews: list, create and delete a workspace's dev-server proxies.

The proxies themselves live in the ``agents`` worker (``agents/previews.py``); this face checks
the request in schmux's order and calls the worker. schmux answers these routes' errors in plain
text (``http.Error``), in this order: 404 ``workspace not found``, 403 for a remote client in
network-access mode, then the body (400 ``invalid request body``), so the body is read here
rather than by ``@endpoint``, which would refuse a bad body before the workspace is known.
Success is 200 with the preview object (schmux answers 200, not 201, on create).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from flask import Blueprint, jsonify, request

from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_previews", __name__)
TAGS = ("schmux",)
#: Seconds a preview call may take in the worker (it probes each target, 0.4 s at most each).
CALL_TIMEOUT_S = 30.0
LOCAL_ONLY = "preview is only available to local clients in network-access mode"


def _checked(workspace_id: str) -> None:
    """schmux's first checks: the workspace exists (404), then a remote client in network-access
    mode is refused (403)."""
    if _network_access() and not _local_client():
        runtime().agents.call("previews_check", CALL_TIMEOUT_S, workspace_id=workspace_id)
        raise MisoError(403, "preview_local_only", LOCAL_ONLY)


def _network_access() -> bool:
    try:
        return runtime().agents_config.get().network.bind_address == "0.0.0.0"
    except Exception:  # noqa: BLE001 - an unreadable config is answered by the config routes
        return False


def _local_client() -> bool:
    try:
        return ipaddress.ip_address((request.remote_addr or "").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _create_body() -> tuple[str, int] | None:
    """``(target_host, target_port)`` as Go's decoder reads ``{"target_host","target_port"}``
    (a missing or null field is its zero value, other fields are ignored); ``None`` when invalid."""
    try:
        payload: Any = json.loads(request.get_data(cache=True), parse_constant=_refuse)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        return None
    host = payload.get("target_host")
    port = payload.get("target_port")
    if host is not None and not isinstance(host, str):
        return None
    if port is not None and (not isinstance(port, int) or isinstance(port, bool)):
        return None
    return host or "", port or 0


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@blueprint.get("/api/workspaces/<workspace_id>/previews")
@endpoint(Access.READ, tags=TAGS)
def list_previews(workspace_id: str):
    """The workspace's previews by target port, each listener re-opened if needed and its status re-checked."""
    _checked(workspace_id)
    return jsonify(runtime().agents.call("previews_list", CALL_TIMEOUT_S, workspace_id=workspace_id))


@blueprint.post("/api/workspaces/<workspace_id>/previews")
@endpoint(Access.ADMIN, tags=TAGS)
def create_preview(workspace_id: str):
    """Open (or reuse) a loopback proxy to ``target_host:target_port``; 200 with the preview."""
    _checked(workspace_id)
    body = _create_body()
    agents = runtime().agents
    if body is None:
        agents.call("previews_check", CALL_TIMEOUT_S, workspace_id=workspace_id)  # 404 comes first
        raise MisoError(400, "invalid_request", "invalid request body")
    host, port = body
    preview = agents.call(
        "previews_create", CALL_TIMEOUT_S, workspace_id=workspace_id, target_host=host, target_port=port
    )
    return jsonify(preview)


@blueprint.delete("/api/workspaces/<workspace_id>/previews")
@endpoint(Access.ADMIN, tags=TAGS)
def delete_without_id(workspace_id: str):
    """A delete that names no preview: 400 ``preview ID is required`` (after the workspace checks)."""
    _checked(workspace_id)
    runtime().agents.call("previews_check", CALL_TIMEOUT_S, workspace_id=workspace_id)
    raise MisoError(400, "invalid_request", "preview ID is required")


@blueprint.delete("/api/workspaces/<workspace_id>/previews/<preview_id>")
@endpoint(Access.ADMIN, tags=TAGS)
def delete_preview(workspace_id: str, preview_id: str):
    """Close a preview; an unknown id is fine (idempotent), one of another workspace is a 500."""
    _checked(workspace_id)
    return jsonify(
        runtime().agents.call("previews_delete", CALL_TIMEOUT_S, workspace_id=workspace_id, preview_id=preview_id)
    )

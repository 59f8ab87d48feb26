"""schmux NudgeNik: is a NudgeNik target set, and what state is a session in (asked of a model).

Errors are plain text, as schmux's ``http.Error`` writes them (the blueprint's envelope is
``SCHMUX_TEXT``); the service (:mod:`~miso_runtime.agents.nudgenik`) raises them with
schmux's statuses and texts. The model call runs on this greenlet: providers' clients and
``subprocess`` are cooperative in the server.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_nudgenik", __name__)
TAGS = ("schmux",)


@blueprint.get("/api/hasNudgenik")
@endpoint(Access.READ, tags=TAGS)
def has_nudgenik():
    """Whether ``nudgenik.target`` is set (the target itself is not checked)."""
    return jsonify(available=runtime().nudgenik.available())


@blueprint.get("/api/askNudgenik/")
@endpoint(Access.READ, tags=TAGS)
def ask_nudgenik_without_session():
    """No session named: 400, as schmux answers."""
    raise MisoError(400, "invalid_request", "session ID is required")


@blueprint.get("/api/askNudgenik/<session_id>")
@endpoint(Access.READ, tags=TAGS)
def ask_nudgenik(session_id: str):
    """The session's state as the NudgeNik target reads its terminal now; nothing is stored."""
    return jsonify(runtime().nudgenik.ask(session_id))

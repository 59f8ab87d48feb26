"""skill-daemon section 4.9: focus-driven Do Not Disturb (``/v1/settings/dnd/*``).

The daemon's shapes: the config POST answers ``{"ok": true}`` and replaces the whole struct
(missing fields take their defaults), raw or wrapped in ``{"config": ...}`` as its frontend
sends it. A wrong type is a 422 as in the daemon; so is a value out of range (the daemon stores
any number), and either changes nothing.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from ... import constants
from ...auth import Access
from ..endpoint import endpoint
from . import runtime
from .skill_embedding_models import WrappedOrRaw

blueprint = Blueprint("skill_dnd", __name__)
TAGS = ("skill", "settings")


class DndConfigBody(WrappedOrRaw):
    """A ``DoNotDisturbConfig``; fields left out take their defaults."""

    enabled: bool | None = None
    focus_threshold: float | None = Field(default=None, ge=0.0, le=100.0, description="focus score, 0-100")
    duration_secs: int | None = Field(default=None, ge=1, le=constants.DND_MAX_SECS)
    exit_duration_secs: int | None = Field(default=None, ge=1, le=constants.DND_MAX_SECS)
    focus_lookback_secs: int | None = Field(default=None, ge=0, le=constants.DND_MAX_SECS)
    focus_mode_identifier: str | None = Field(default=None, max_length=200)
    exit_notification: bool | None = None
    snr_exit_db: float | None = Field(default=None, ge=-100.0, le=100.0, description="dB; kept, not applied")
    grayscale: bool | None = None


class DndTestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    enabled: bool


def _given(body: DndConfigBody) -> dict:
    return {key: value for key, value in body.model_dump(exclude_unset=True).items() if value is not None}


@blueprint.get("/v1/settings/dnd/config")
@endpoint(Access.ADMIN, tags=TAGS)
def get_dnd_config():
    """The automation's settings."""
    return jsonify(runtime().dnd.config.get().model_dump())


@blueprint.post("/v1/settings/dnd/config")
@endpoint(Access.ADMIN, body=DndConfigBody, tags=TAGS)
def set_dnd_config(body: DndConfigBody):
    """Replace the settings; switching the automation off while it holds DND on turns DND off."""
    runtime().dnd.set_config(_given(body))
    return jsonify({"ok": True})


@blueprint.get("/v1/settings/dnd/status")
@endpoint(Access.ADMIN, tags=TAGS)
def get_dnd_status():
    """The live windows, whether DND is on (ours and the desktop's), and the last error."""
    return jsonify(runtime().dnd.status())


@blueprint.get("/v1/settings/dnd/active")
@endpoint(Access.ADMIN, tags=TAGS)
def get_dnd_active():
    """``{"value": bool}``: whether this runtime holds the desktop's DND on."""
    return jsonify({"value": runtime().dnd.active()})


@blueprint.post("/v1/settings/dnd/test")
@endpoint(Access.ADMIN, body=DndTestBody, tags=TAGS)
def test_dnd(body: DndTestBody):
    """Turn the desktop's DND on or off once; ``{"ok": false, "error"}`` when the desktop cannot."""
    return jsonify(runtime().dnd.test(body.enabled))


@blueprint.get("/v1/settings/dnd/focus-modes")
@endpoint(Access.ADMIN, tags=TAGS)
def get_dnd_focus_modes():
    """The modes the settings page offers (``[{identifier, name}]``)."""
    return jsonify(runtime().dnd.focus_modes())

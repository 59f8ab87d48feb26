"""Caco's applets and the applet state (research part 2, section 2.7).

Applets are written by the agents (``save_applet``); the page lists them, loads one (which
clears the applet state, as Caco's does) and pushes state for the agent to read. Where Caco
answers 500 for a slug it cannot use, this face answers 400 with the reason; an applet whose
files are broken is listed with an ``error`` and answers 422 when loaded.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response
from pydantic import RootModel

from ...auth import Access
from ...workbench.applets import Applet
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("caco_applets", __name__)
TAGS = ("caco",)
PREFIX = "/caco/api"


class StateBody(RootModel[dict[str, Any]]):
    """Keys to shallow-merge into the applet state (an object)."""


def _json(body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")


def _code(applet: Applet) -> dict[str, Any]:
    return {"slug": applet.slug, "title": applet.title, "html": applet.html, "js": applet.js, "css": applet.css}


@blueprint.get(f"{PREFIX}/applets")
@endpoint(Access.READ, tags=TAGS)
def list_applets():
    """Every applet, newest first, with the absolute paths of its files."""
    return _json({"applets": runtime().workbench.applets.list()})


@blueprint.get(f"{PREFIX}/applets/<slug>")
@endpoint(Access.READ, tags=TAGS)
def get_applet(slug: str):
    """An applet's code and metadata."""
    applet = runtime().workbench.applets.load(slug)
    return _json({**_code(applet), "meta": applet.meta})


@blueprint.get(f"{PREFIX}/applets/<slug>/history")
@endpoint(Access.READ, tags=TAGS)
def applet_history(slug: str):
    """The commits of the applet repository that changed this applet, newest first (ours)."""
    return _json({"slug": slug, "commits": runtime().workbench.applets.history(slug)})


@blueprint.post(f"{PREFIX}/applets/<slug>/load")
@endpoint(Access.DATA, tags=TAGS)
def load_applet(slug: str):
    """An applet's code for the page to run; the applet state starts empty."""
    workbench = runtime().workbench
    applet = workbench.applets.load(slug)
    workbench.state.clear()
    return _json({"ok": True, **_code(applet)})


@blueprint.get(f"{PREFIX}/applet/state")
@endpoint(Access.READ, tags=TAGS)
def get_state():
    """The applet state (one for every page and session, as Caco's)."""
    return _json({"state": runtime().workbench.state.get()})


@blueprint.post(f"{PREFIX}/applet/state")
@endpoint(Access.DATA, body=StateBody, tags=TAGS)
def set_state(body: StateBody):
    """Shallow-merge an object into the applet state."""
    runtime().workbench.state.merge(body.root)
    return _json({"ok": True})

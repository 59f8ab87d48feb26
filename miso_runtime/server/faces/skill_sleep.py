"""skill-daemon section 4.4's ``/v1/analysis/sleep``, its hypnogram picture, and 4.9's ``sleep-config``."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from ...auth import Access
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime
from .skill_sleep_models import HypnogramQuery, SleepConfigBody, SleepRangeBody

blueprint = Blueprint("skill_sleep", __name__)
ANALYSIS = ("skill", "analysis")
SETTINGS = ("skill", "settings")
MIMETYPES = {"svg": "image/svg+xml", "png": "image/png"}


@blueprint.post("/v1/analysis/sleep")
@endpoint(Access.DATA, body=SleepRangeBody, tags=ANALYSIS)
def sleep(body: SleepRangeBody):
    """Sleep stages of the range in 30 s epochs (YASA), or the daemon's threshold rule per stored epoch.

    Sessions without a staging are staged first (the request waits ``waitSecs`` for them, 8 s by
    default, then answers with those still running marked ``staging``); the answer adds each
    epoch's confidence, sleep statistics and how each session fared to the daemon's shape.
    """
    service = runtime().sleep
    answer = service.resolve(body.start_utc, body.end_utc, body.method, body.channel, body.wait_secs)
    return jsonify(service.analysis(answer))


@blueprint.get("/v1/analysis/sleep/hypnogram")
@endpoint(Access.DATA, query=HypnogramQuery, tags=ANALYSIS)
def hypnogram(query: HypnogramQuery):
    """The range's hypnogram as an SVG or PNG picture (for an ``<img>``: the token may be a query parameter)."""
    from ...sleep.hypnogram import render_hypnogram  # noqa: PLC0415 - matplotlib loads on the first picture

    service = runtime().sleep
    answer = service.resolve(query.start_utc, query.end_utc, query.method, query.channel, query.wait_secs)
    epochs = [(float(e["utc"]), int(e["stage"]), e.get("confidence")) for e in answer.epochs]
    title = f"Hypnogram ({answer.method})"
    picture = run_blocking(
        lambda: render_hypnogram(
            epochs,
            answer.epoch_secs,
            query.format,
            title=title,
            utc_offset_min=query.tz_offset_minutes,
            width_px=query.width,
            height_px=query.height,
        )
    )
    return Response(picture, mimetype=MIMETYPES[query.format], headers={"Cache-Control": "no-store"})


@blueprint.get("/v1/settings/sleep-config")
@endpoint(Access.ADMIN, tags=SETTINGS)
def get_sleep_config():
    """The sleep schedule (the daemon's fields) and how nights are staged (``method``, ``channel``)."""
    return jsonify(runtime().sleep.config.get().model_dump())


@blueprint.post("/v1/settings/sleep-config")
@endpoint(Access.ADMIN, body=SleepConfigBody, tags=SETTINGS)
def set_sleep_config(body: SleepConfigBody):
    """Change the fields given, raw or as ``{"config": ...}``; stagings of another method or channel are new ones."""
    runtime().sleep.config.update(body.model_dump(exclude_none=True))
    return jsonify(ok=True)

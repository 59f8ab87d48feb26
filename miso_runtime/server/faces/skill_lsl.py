"""skill-daemon section 4.13: Lab Streaming Layer streams (discover, pair, auto-connect, idle timeout)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ...lsl.config import PairedStream
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime
from .skill_lsl_models import AutoConnectBody, IdleTimeoutBody, PairBody, UnpairBody

blueprint = Blueprint("skill_lsl", __name__)
TAGS = ("skill", "lsl")


@blueprint.get("/v1/lsl/discover")
@endpoint(Access.ADMIN, tags=TAGS)
def discover():
    """The streams announced on the network within 3 s (liblsl's ``lsl_api.cfg`` sets how far it looks).

    The scan blocks for its whole wait, so it runs in the hub's threadpool: other requests and
    live streams go on meanwhile.
    """
    found = run_blocking(runtime().lsl.discover)
    return jsonify([stream.to_dict() for stream in found])


@blueprint.get("/v1/lsl/config")
@endpoint(Access.ADMIN, tags=TAGS)
def get_config():
    """Auto-connect and the paired streams."""
    return jsonify(runtime().lsl.view())


@blueprint.post("/v1/lsl/auto-connect")
@endpoint(Access.ADMIN, body=AutoConnectBody, tags=TAGS)
def set_auto_connect(body: AutoConnectBody):
    """On: a session starts by itself when a paired stream is announced and none is running."""
    config = runtime().lsl.set_auto_connect(body.enabled)
    return jsonify({"ok": True, "auto_connect": config.auto_connect})


@blueprint.post("/v1/lsl/pair")
@endpoint(Access.ADMIN, body=PairBody, tags=TAGS)
def pair(body: PairBody):
    """Remember a stream (by its ``sourceId``; pairing it again updates the entry)."""
    runtime().lsl.pair(PairedStream(**body.model_dump()))
    return jsonify({"ok": True})


@blueprint.post("/v1/lsl/unpair")
@endpoint(Access.ADMIN, body=UnpairBody, tags=TAGS)
def unpair(body: UnpairBody):
    """Forget a paired stream; 404 when none has that ``sourceId``."""
    runtime().lsl.unpair(body.source_id)
    return jsonify({"ok": True})


@blueprint.get("/v1/lsl/idle-timeout")
@endpoint(Access.ADMIN, tags=TAGS)
def get_idle_timeout():
    """Seconds without a sample that end an LSL session (null: never)."""
    return jsonify({"secs": runtime().lsl.config.idle_timeout_secs})


@blueprint.post("/v1/lsl/idle-timeout")
@endpoint(Access.ADMIN, body=IdleTimeoutBody, tags=TAGS)
def set_idle_timeout(body: IdleTimeoutBody):
    """Set it; a running LSL session uses it from now on."""
    config = runtime().lsl.set_idle_timeout(body.secs)
    return jsonify({"ok": True, "secs": config.idle_timeout_secs})

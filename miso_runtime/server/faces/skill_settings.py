"""skill-daemon section 4.9: the EEG filter, epoch overlap, WebSocket and watchdog settings."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ..endpoint import endpoint
from . import runtime
from .skill_neuro_models import FilterConfigBody, OverlapBody, WatchdogBody, WsConfigBody

blueprint = Blueprint("skill_settings", __name__)
TAGS = ("skill", "settings")


@blueprint.get("/v1/settings/filter-config")
@endpoint(Access.ADMIN, tags=TAGS)
def get_filter_config():
    """Notch, band-pass and band-power window of the EEG pipeline."""
    return jsonify(runtime().neuro.filters.get().model_dump())


@blueprint.post("/v1/settings/filter-config")
@endpoint(Access.ADMIN, body=FilterConfigBody, tags=TAGS)
def set_filter_config(body: FilterConfigBody):
    """Change the fields given; a running session applies them from its next samples."""
    neuro = runtime().neuro
    config = neuro.filters.update(body.model_dump(exclude_unset=True))
    neuro.apply_settings()
    return jsonify(config.model_dump())


@blueprint.get("/v1/settings/embedding-overlap")
@endpoint(Access.ADMIN, tags=TAGS)
def get_embedding_overlap():
    """Overlap of consecutive 5 s epochs, seconds."""
    return jsonify(runtime().neuro.epoch_config.get().model_dump())


@blueprint.post("/v1/settings/embedding-overlap")
@endpoint(Access.ADMIN, body=OverlapBody, tags=TAGS)
def set_embedding_overlap(body: OverlapBody):
    """Set the overlap (0 to 4.5 s); a running session uses it from its next epoch."""
    neuro = runtime().neuro
    config = neuro.epoch_config.update({"overlap_secs": body.overlap_secs})
    neuro.apply_settings()
    return jsonify(config.model_dump())


@blueprint.get("/v1/settings/ws-config")
@endpoint(Access.ADMIN, tags=TAGS)
def get_ws_config():
    """Per-client queue size and client limit of ``/v1/events``."""
    return jsonify(runtime().ws_config.get().model_dump())


@blueprint.post("/v1/settings/ws-config")
@endpoint(Access.ADMIN, body=WsConfigBody, tags=TAGS)
def set_ws_config(body: WsConfigBody):
    """Change the fields given; clients that connect from now on get them."""
    return jsonify(runtime().ws_config.update(body.model_dump(exclude_unset=True)).model_dump())


@blueprint.get("/v1/settings/daemon-watchdog")
@endpoint(Access.ADMIN, tags=TAGS)
def get_watchdog():
    """How crashed workers are restarted, and each worker's state."""
    rt = runtime()
    return jsonify({**rt.watchdog.get().model_dump(), "workers": rt.supervisor.status()})


@blueprint.post("/v1/settings/daemon-watchdog")
@endpoint(Access.ADMIN, body=WatchdogBody, tags=TAGS)
def set_watchdog(body: WatchdogBody):
    """Change the restart policy; turning it back on starts workers it left down."""
    rt = runtime()
    config = rt.set_watchdog(body.model_dump(exclude_unset=True))
    return jsonify({**config.model_dump(), "workers": rt.supervisor.status()})

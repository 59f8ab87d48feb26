"""skill-daemon sections 4.1 and 4.2: device control, known devices, and status.

Starting a session waits until the board streams (or says why it cannot), so a client learns
about a missing serial port from the answer, not from a later event.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request

from ... import constants
from ...auth import Access
from ...neuro.service import SessionRequest
from ..endpoint import endpoint
from ..pages import page_addresses
from . import runtime
from .skill_neuro_models import DeviceIdBody, StartSessionBody

blueprint = Blueprint("skill_neuro", __name__)
TAGS = ("skill", "eeg")


def status_document() -> dict[str, Any]:
    """``GET /v1/status`` and the first ``status`` event of ``/v1/events``: one shape for both."""
    rt = runtime()
    return {
        "version": rt.version,
        "protocol_version": constants.SKILL_PROTOCOL_VERSION,
        "started_at": rt.started_at_ms,
        "uptime_secs": round(time.time() - rt.started_at_ms / 1000, 3),
        **rt.neuro.status(),
        "workers": rt.supervisor.status(),
        "llm": rt.llm.engine.status(),
        "ws_clients": len(websocket_clients()),
        "pages": page_addresses(),
    }


def websocket_clients() -> list[dict[str, Any]]:
    return [
        {**sub.info, "queued": sub.queued, "dropped": sub.dropped, "queue_size": sub.capacity}
        for sub in runtime().bus.subscriptions()
        if sub.info.get("kind") == "websocket"
    ]


@blueprint.get("/v1/status")
@endpoint(Access.STATUS, tags=TAGS)
def status():
    """Device state, board, channels, sample rate, battery, current session, workers and the LLM server."""
    return jsonify(status_document())


@blueprint.get("/v1/version")
@endpoint(Access.STATUS, tags=TAGS)
def version():
    """Runtime version and the skill-daemon protocol version it serves."""
    rt = runtime()
    return jsonify(
        name="miso-runtime",
        version=rt.version,
        daemon_version=rt.version,
        protocol_version=constants.SKILL_PROTOCOL_VERSION,
    )


@blueprint.get("/v1/ws-port")
@endpoint(Access.STATUS, tags=TAGS)
def ws_port():
    """The port of ``/v1/events`` (the HTTP port: one server serves both)."""
    port = int(request.environ.get("SERVER_PORT") or runtime().settings.port)
    return jsonify(port=port, path="/v1/events", url=f"ws://127.0.0.1:{port}/v1/events")


@blueprint.get("/v1/ws-clients")
@endpoint(Access.STATUS, tags=TAGS)
def ws_clients():
    """Connected ``/v1/events`` clients with their queue length and dropped frames."""
    clients = websocket_clients()
    return jsonify(count=len(clients), clients=clients)


@blueprint.post("/v1/control/start-session")
@endpoint(Access.ADMIN, body=StartSessionBody, tags=TAGS)
def start_session(body: StartSessionBody):
    """Open a board (default: the preferred device, else the synthetic board) and record; 409 while one runs."""
    location = body.location.model_dump(exclude_none=True) if body.location else None
    session = SessionRequest(
        board_id=body.board_id,
        device_id=body.device_id,
        params=body.params.model_dump(exclude_none=True),
        location=location,
        playback_speed=body.playback_speed,
        stop_at_end=body.stop_at_end,
    )
    return jsonify(runtime().neuro.start_session(session))


@blueprint.post("/v1/control/cancel-session")
@endpoint(Access.ADMIN, tags=TAGS)
def cancel_session():
    """Stop recording; answers with the closed session."""
    return jsonify(runtime().neuro.cancel_session())


@blueprint.post("/v1/control/retry-connect")
@endpoint(Access.ADMIN, tags=TAGS)
def retry_connect():
    """Try to reconnect now instead of at the next backoff step (409 unless reconnecting)."""
    return jsonify(runtime().neuro.retry_connect())


@blueprint.post("/v1/control/cancel-retry")
@endpoint(Access.ADMIN, tags=TAGS)
def cancel_retry():
    """Stop reconnecting and end the session (409 unless reconnecting)."""
    return jsonify(runtime().neuro.cancel_retry())


@blueprint.get("/v1/devices")
@endpoint(Access.READ, tags=TAGS)
def list_devices():
    """Devices that have streamed here, the preferred one first."""
    return jsonify(devices=runtime().neuro.list_devices())


@blueprint.post("/v1/devices/forget")
@endpoint(Access.ADMIN, body=DeviceIdBody, tags=TAGS)
def forget_device(body: DeviceIdBody):
    """Remove a device from the list (its sessions stay)."""
    runtime().neuro.forget_device(body.id)
    return jsonify(ok=True)


@blueprint.post("/v1/devices/set-preferred")
@endpoint(Access.ADMIN, body=DeviceIdBody, tags=TAGS)
def set_preferred(body: DeviceIdBody):
    """The device ``start-session`` opens when none is named."""
    runtime().neuro.set_preferred(body.id)
    return jsonify(ok=True, devices=runtime().neuro.list_devices())

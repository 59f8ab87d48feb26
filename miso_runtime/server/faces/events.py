"""``WS /v1/events``: every event published on the EventBus, one JSON envelope per text frame.

The envelope is ``{type, ts_unix_ms, correlation_id, payload}`` (skill-daemon section 3). A
client first gets a ``status`` snapshot, then live events. Each client has its own bounded
queue on the bus, so a slow one loses its oldest live frames and never slows anyone else.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint
from flask_sock import ConnectionClosed, Sock

from ...auth import Access
from ...bus import BusEvent
from ..endpoint import endpoint
from . import runtime

logger = logging.getLogger(__name__)

blueprint = Blueprint("skill_events", __name__)
sock = Sock()

#: Seconds a sender waits for the next bus event before checking that the client is still there.
IDLE_CHECK_S = 1.0


def status_snapshot() -> dict:
    rt = runtime()
    return {
        "version": rt.version,
        "started_at": rt.started_at_ms,
        "model": rt.chat.default_model().id,
        "ws_clients": rt.bus.subscriber_count,
    }


@sock.route("/v1/events", bp=blueprint)
@endpoint(Access.STREAM, tags=("skill", "events"))
def events(ws):
    """Live events of the runtime over a WebSocket (token by ``?token=``)."""
    bus = runtime().bus
    with bus.subscribe() as subscription:
        ws.send(json.dumps(BusEvent("status", status_snapshot()).envelope()))
        while ws.connected:
            event = subscription.get(timeout=IDLE_CHECK_S)
            if event is None:
                if subscription.closed:
                    break
                continue
            try:
                ws.send(json.dumps(event.envelope()))
            except ConnectionClosed:
                break

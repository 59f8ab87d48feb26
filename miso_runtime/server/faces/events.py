"""``WS /v1/events``: every event published on the EventBus, one JSON envelope per text frame.

The envelope is ``{type, ts_unix_ms, correlation_id, payload}`` (skill-daemon section 3). A
client first gets a ``status`` snapshot (the body of ``GET /v1/status``), then live events.
Each client has its own bounded queue on the bus (``/v1/settings/ws-config``), so a slow one
loses its oldest ``EegBands`` frames and never slows capture or anyone else. Beyond the
client limit a new client is closed at once with code 1013 (try again later).
"""

from __future__ import annotations

import itertools
import json
import logging
import socket
import time

from flask import Blueprint, request
from flask_sock import ConnectionClosed, Sock

from ... import constants
from ...auth import Access
from ...bus import BusEvent
from ..endpoint import endpoint
from ..websocket import bus_events
from . import runtime
from .skill_neuro import status_document, websocket_clients

logger = logging.getLogger(__name__)

blueprint = Blueprint("skill_events", __name__)
sock = Sock()

#: Seconds a sender waits for the next bus event before checking that the client is still there.
IDLE_CHECK_S = 1.0
#: WebSocket close code for "server busy, try again later" (RFC 6455 registry).
CLOSE_TRY_AGAIN_LATER = 1013

_client_ids = itertools.count(1)


def _bound_send_buffer(ws) -> None:
    """Keep the kernel's send buffer for this client small.

    Why: with the default autotuned buffer (up to megabytes) a client that stops reading has
    seconds of stale frames parked in the kernel before its queue notices anything; with a
    small one, its bounded queue is what fills, and it drops the oldest ``EegBands`` there.
    """
    connection = getattr(ws, "sock", None)
    connection = getattr(connection, "raw", connection)  # under our WholeFrameSocket
    if isinstance(connection, socket.socket):
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, constants.WS_SEND_BUFFER_BYTES)
        except OSError as exc:
            logger.debug("could not set the send buffer of a /v1/events client: %s", exc)


@sock.route("/v1/events", bp=blueprint)
@endpoint(Access.STREAM, tags=("skill", "events"))
def events(ws):
    """Live events of the runtime over a WebSocket (token by ``?token=``)."""
    rt = runtime()
    config = rt.ws_config.get()
    if len(websocket_clients()) >= config.max_clients:
        ws.close(CLOSE_TRY_AGAIN_LATER, f"at most {config.max_clients} clients; try again later")
        return
    _bound_send_buffer(ws)
    info = {
        "kind": "websocket",
        "id": next(_client_ids),
        "remote_addr": request.remote_addr,
        "user_agent": request.headers.get("User-Agent"),
        "connected_at_ms": int(time.time() * 1000),
    }
    with rt.bus.subscribe(capacity=config.client_queue_size, info=info) as subscription:
        ws.send(json.dumps(BusEvent(constants.EVENT_STATUS, status_document()).envelope()))
        for event in bus_events(ws, subscription, IDLE_CHECK_S):
            try:
                ws.send(json.dumps(event.envelope()))
            except (ConnectionClosed, OSError):
                break

"""WebSocket connections that write whole frames, one frame at a time.

simple-websocket (what flask-sock accepts connections with; 1.1.0 is the newest release) writes
each frame with a single ``socket.send()`` and ignores how much of it was written. When the
client's window is full, gevent's ``send`` writes part of the frame and returns; the rest is
lost, the next frame starts in the middle of the old one, and the client waits forever for a
frame that never ends (upstream issue miguelgrinberg/simple-websocket#45). It happens under
load: a fast EEG replay, a terminal printing megabytes to a slow reader.

Our connections' socket writes everything it is given, and only one frame at a time: with
gevent a write that must wait lets other greenlets run, and a second frame must not be
written into the middle of the first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import flask_sock
import simple_websocket

from ..bus import BusEvent, Subscription


class WholeFrameSocket:
    """A socket whose ``send`` is ``sendall`` under a lock; everything else is the socket's."""

    def __init__(self, sock: Any) -> None:
        self.raw = sock
        self._write_lock = threading.Lock()

    def send(self, data: bytes, *flags: int) -> int:
        with self._write_lock:
            self.raw.sendall(data, *flags)
        return len(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.raw, name)


class WholeFrameServer(simple_websocket.Server):
    """simple-websocket's server side, writing through a :class:`WholeFrameSocket`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # the handshake is one small write
        self.sock = WholeFrameSocket(self.sock)


def install() -> None:
    """Make flask-sock accept every WebSocket with :class:`WholeFrameServer`.

    flask-sock builds its connection as ``Server(request.environ, ...)`` from its module's
    namespace, and has no option to choose the class, so the name is replaced there.
    """
    flask_sock.Server = WholeFrameServer  # type: ignore[misc]


def bus_events(ws: Any, subscription: Subscription, idle_check_s: float) -> Iterator[BusEvent]:
    """The subscription's events for as long as the client stays connected; while nothing
    comes, whether it still is gets checked every ``idle_check_s`` seconds."""
    while ws.connected:
        event = subscription.get(timeout=idle_check_s)
        if event is not None:
            yield event
        elif subscription.closed:
            return

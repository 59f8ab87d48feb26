"""Server-sent event streams that stop their work when the client leaves.

The work (an upstream LLM call, a search) runs in a producer greenlet and hands events to
the response through a queue. Three things end a stream early: the client's socket closes
(watched directly, so an idle stream notices within milliseconds, not at its next write), a
write fails (the fallback when the socket cannot be watched; heartbeats make that happen
within ``SSE_HEARTBEAT_S``), or the server shuts down (the stream sends one final event).
In each case the producer is killed, which closes the upstream request where it stands.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Any, Callable, Iterable, Iterator, Protocol

import gevent
import gevent.queue
import gevent.socket
from flask import Response

from .. import constants

logger = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Events handed to the client in one write when several are waiting.
MAX_EVENTS_PER_WRITE = 64


class StreamEvent(Protocol):
    name: str

    @property
    def payload(self) -> dict[str, Any]: ...


def format_named_event(event: "StreamEvent", event_id: int) -> str:
    """The default framing: ``event:``, ``id:`` and ``data:`` lines (the Miso contract's)."""
    return format_event(event.name, event.payload, event_id)


def format_event(name: str, payload: dict[str, Any], event_id: int | None = None) -> str:
    lines = [f"event: {name}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The client's socket where the server exposes it (gunicorn, or our gevent handler)."""
    return environ.get("gunicorn.socket") or environ.get("miso.client_socket")


class _Signal:
    """Markers that end a stream, placed in its queue."""

    def __init__(self, name: str) -> None:
        self.name = name


_END = _Signal("end")
_CLIENT_GONE = _Signal("client-gone")
_SHUTDOWN = _Signal("shutdown")


class LiveStream:
    """One open stream, as the registry sees it."""

    def __init__(self) -> None:
        self.outbox: gevent.queue.Queue = gevent.queue.Queue()
        self.producer: gevent.Greenlet | None = None

    def stop(self, reason: _Signal) -> None:
        self.outbox.put(reason)
        if self.producer is not None:
            self.producer.kill(block=False)


class StreamRegistry:
    """The open streams of this process, so shutdown can end each with a final event."""

    def __init__(self) -> None:
        self._streams: set[LiveStream] = set()
        self._lock = threading.Lock()
        self.closing = False

    def add(self, stream: LiveStream) -> None:
        with self._lock:
            self._streams.add(stream)

    def discard(self, stream: LiveStream) -> None:
        with self._lock:
            self._streams.discard(stream)

    def __len__(self) -> int:
        with self._lock:
            return len(self._streams)

    def shutdown(self, timeout_s: float) -> None:
        """Tell every stream to send its final event and wait (up to ``timeout_s``) until they are gone."""
        self.closing = True
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.stop(_SHUTDOWN)
        with gevent.Timeout(timeout_s, False):
            while len(self):
                gevent.sleep(0.02)


def _watch_for_close(sock: socket.socket, stream: LiveStream) -> None:
    """Wait until the client's socket is readable; an empty peek means the client closed it."""
    try:
        gevent.socket.wait_read(sock.fileno())
        if sock.recv(1, socket.MSG_PEEK) != b"":
            return  # the client sent more data (pipelining); writes will tell us if it leaves
    except (OSError, ValueError):
        pass
    stream.stop(_CLIENT_GONE)


def sse_response(
    events: Iterable[StreamEvent],
    *,
    registry: StreamRegistry,
    environ: dict[str, Any],
    final_on_shutdown: Any,
    formatter: Callable[[Any, int], str] = format_named_event,
) -> Response:
    """Stream ``events`` as SSE; see the module docstring for how a stream ends early.

    ``formatter`` frames one event as text given its sequence number (default: named events;
    the OpenAI-compatible API frames bare ``data:`` lines).
    """
    stream = LiveStream()

    def produce() -> None:
        try:
            for event in events:
                stream.outbox.put(event)
                # When the upstream is ahead, its reads never block, and without this yield
                # the writer would run only after the whole reply was read: every token would
                # reach the client at the end.
                gevent.sleep(0)
        except Exception:  # noqa: BLE001 - the producer's failure must end the stream, not hang it
            logger.exception("stream producer failed")
        finally:
            stream.outbox.put(_END)

    def body() -> Iterator[bytes]:
        registry.add(stream)
        stream.producer = gevent.spawn(produce)
        sock = client_socket(environ)
        watcher = gevent.spawn(_watch_for_close, sock, stream) if sock is not None else None
        next_id = 1
        try:
            yield b": stream open\n\n"
            while True:
                try:
                    first = stream.outbox.get(timeout=constants.SSE_HEARTBEAT_S)
                except gevent.queue.Empty:
                    yield b": keep-alive\n\n"
                    continue
                batch = [first]
                while len(batch) < MAX_EVENTS_PER_WRITE and not stream.outbox.empty():
                    batch.append(stream.outbox.get_nowait())
                chunks: list[str] = []
                ended = False
                for item in batch:
                    if item is _SHUTDOWN:
                        chunks.append(formatter(final_on_shutdown, next_id))
                        ended = True
                        break
                    if isinstance(item, _Signal):
                        ended = True
                        break
                    chunks.append(formatter(item, next_id))
                    next_id += 1
                if chunks:
                    yield "".join(chunks).encode("utf-8")
                if ended:
                    return
        finally:
            if watcher is not None:
                watcher.kill(block=False)
            # Killing the producer closes the upstream request; wait so that the reply is
            # stored before the response is finished.
            stream.producer.kill(block=True, timeout=2.0)
            registry.discard(stream)

    return Response(body(), mimetype="text/event-stream", headers=SSE_HEADERS, direct_passthrough=True)

"""The server's side of the terminals: routes each client's messages to and from the agents worker.

A ``/ws/terminal`` handler opens a :class:`RelayStream`, sends the client's messages through it
and reads what the worker sends back from its queue. When the worker dies, every open stream
gets ``reconnect`` at once (the client reconnects to the restarted worker), never a hang.

Plain ``threading``/``queue``: in the server, gevent's.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any, Protocol

from workers.protocol.agents import ProvisionAttach, TerminalAttach, TerminalClientMessage, TerminalDetach, TerminalOut

from ..errors import MisoError

logger = logging.getLogger(__name__)

#: Messages a stream may have waiting for its WebSocket writer; a client this far behind is
#: told to reconnect (it gets a fresh screen) rather than grow the server's memory.
RELAY_QUEUE_MESSAGES = 4096


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


class RelayStream:
    """One terminal client: ``get`` what to send it, ``client_message`` what it sent."""

    def __init__(self, relay: "TerminalRelay", stream_id: str) -> None:
        self._relay = relay
        self.stream_id = stream_id
        self.outbox: queue.Queue[tuple[dict[str, Any], bool]] = queue.Queue(RELAY_QUEUE_MESSAGES)
        self.ended = False

    def get(self, timeout: float) -> tuple[dict[str, Any], bool] | None:
        """The next ``(message, final)``, or None after ``timeout`` seconds."""
        try:
            return self.outbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def client_message(self, kind: str, data: str | bytes = "", cols: int = 0, rows: int = 0) -> None:
        self._relay.send(TerminalClientMessage(self.stream_id, kind, data, cols, rows))

    def close(self) -> None:
        self._relay.close(self)


class TerminalRelay:
    def __init__(self, worker: CommandSink) -> None:
        self._worker = worker
        self._lock = threading.Lock()
        self._streams: dict[str, RelayStream] = {}

    def send(self, command: Any) -> None:
        try:
            self._worker.send(command)
        except Exception as exc:  # noqa: BLE001 - WorkerUnavailable or a closed pipe
            raise MisoError(503, "worker_unavailable", f"the agents worker is not running: {exc}") from None

    def open(self, session_id: str, seed_lines: int, last_seq: int | None, epoch: str | None) -> RelayStream:
        stream = RelayStream(self, uuid.uuid4().hex)
        with self._lock:
            self._streams[stream.stream_id] = stream
        try:
            self.send(TerminalAttach(stream.stream_id, session_id, seed_lines, last_seq, epoch))
        except MisoError:
            self.close(stream)
            raise
        return stream

    def open_provision(self, provision_id: str) -> RelayStream:
        """A client of a remote host's provisioning terminal (``WS /ws/provision/{id}``)."""
        stream = RelayStream(self, uuid.uuid4().hex)
        with self._lock:
            self._streams[stream.stream_id] = stream
        try:
            self.send(ProvisionAttach(stream.stream_id, provision_id))
        except MisoError:
            self.close(stream)
            raise
        return stream

    def close(self, stream: RelayStream) -> None:
        with self._lock:
            known = self._streams.pop(stream.stream_id, None)
        if known is not None and not stream.ended:
            try:
                self._worker.send(TerminalDetach(stream.stream_id))
            except Exception:  # noqa: BLE001 - the worker is gone: nothing to detach
                pass

    def handle_event(self, _name: str, event: Any) -> None:
        if not isinstance(event, TerminalOut):
            return
        with self._lock:
            stream = self._streams.get(event.stream_id)
        if stream is None:
            return
        if event.final:
            stream.ended = True
        try:
            stream.outbox.put_nowait((event.message, event.final))
        except queue.Full:
            stream.ended = True
            self._drain_and_end(stream, "the terminal client fell too far behind; reconnect")

    def handle_exit(self, _name: str, code: int | None) -> None:
        with self._lock:
            streams = list(self._streams.values())
        for stream in streams:
            stream.ended = True
            self._drain_and_end(stream, f"the agents worker restarted (exit code {code}); reconnect")

    @staticmethod
    def _drain_and_end(stream: RelayStream, reason: str) -> None:
        while True:
            try:
                stream.outbox.get_nowait()
            except queue.Empty:
                break
        stream.outbox.put_nowait(({"type": "reconnect", "content": reason}, True))

"""The provisioning terminals of the agents worker: a connect command's raw PTY, shown live.

``WS /ws/provision/provision-<host id>`` shows what the connect command prints (a login
banner, a password prompt, a key-touch request) and types what the user types into it, byte
for byte: the dashboard's provisioning modal is an xterm.js fed with binary frames. Each client
is a stream id here, relayed by the server like a session terminal's (``TerminalOut`` messages
carrying ``{"type": "output", "data": bytes}``, then ``{"type": "end"}`` once control mode
starts or the command ends).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from workers.protocol.agents import ProvisionAttach, TerminalClientMessage, TerminalOut
from workers.protocol.base import Event

from .remote_connection import RemoteConnection, Subscriber

logger = logging.getLogger(__name__)

#: The largest terminal a resize may ask for (as for session terminals).
MAX_COLS = 1000
MAX_ROWS = 500


class ProvisionTerminals:
    """``connection_for(provision id)`` finds the live connection of a provisioning session."""

    def __init__(self, connection_for: Callable[[str], RemoteConnection | None], send: Callable[[Event], None]) -> None:
        self._connection_for = connection_for
        self._send = send
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[RemoteConnection, Subscriber]] = {}

    def owns(self, stream_id: str) -> bool:
        with self._lock:
            return stream_id in self._clients

    def attach(self, command: ProvisionAttach) -> None:
        conn = self._connection_for(command.provision_id)
        if conn is None:
            message = {"type": "error", "content": "remote host connection not found"}
            self._send(TerminalOut(command.stream_id, message, True))
            return
        stream_id = command.stream_id

        def on_data(data: bytes) -> None:
            self._send(TerminalOut(stream_id, {"type": "output", "data": data}))

        def on_end() -> None:
            with self._lock:
                self._clients.pop(stream_id, None)
            self._send(TerminalOut(stream_id, {"type": "end"}, True))

        with self._lock:
            # registered first: a key typed right after the upgrade must find its connection
            self._clients[stream_id] = (conn, Subscriber(on_data, on_end))
        subscriber = conn.subscribe(on_data, on_end)
        with self._lock:
            if stream_id in self._clients:
                self._clients[stream_id] = (conn, subscriber)

    def message(self, command: TerminalClientMessage) -> None:
        with self._lock:
            entry = self._clients.get(command.stream_id)
        if entry is None:
            return
        conn = entry[0]
        if command.type == "input":
            data = command.data
            conn.write_input(data.encode("utf-8") if isinstance(data, str) else bytes(data))
        elif command.type == "resize":
            conn.resize(max(1, min(command.cols, MAX_COLS)), max(1, min(command.rows, MAX_ROWS)))

    def detach(self, stream_id: str) -> None:
        with self._lock:
            entry = self._clients.pop(stream_id, None)
        if entry is not None:
            entry[0].unsubscribe(entry[1])

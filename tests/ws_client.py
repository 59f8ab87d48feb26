"""A JSON WebSocket client for tests: reads in a thread, keeps every message, sends objects."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from wsproto.events import CloseConnection, Message, TextMessage

from tests.eeg import open_websocket


class JsonSocket:
    def __init__(self, port: int, path: str) -> None:
        self.sock, self._connection = open_websocket(port, path)
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        parts: list[str] = []
        try:
            while True:
                for event in self._connection.events():
                    if isinstance(event, CloseConnection):
                        with self._lock:
                            self.close_code = event.code
                            self._lock.notify_all()
                        return
                    if isinstance(event, Message):
                        parts.append(event.data)
                        if event.message_finished:
                            with self._lock:
                                self.messages.append(json.loads("".join(parts)))
                                self._lock.notify_all()
                            parts = []
                data = self.sock.recv(65536)
                if not data:
                    with self._lock:
                        self.close_code = self.close_code or 1006
                        self._lock.notify_all()
                    return
                self._connection.receive_data(data)
        except OSError:
            pass

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(self._connection.send(TextMessage(json.dumps(message))))

    def send_text(self, text: str) -> None:
        self.sock.sendall(self._connection.send(TextMessage(text)))

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate(messages so far)`` is truthy; return its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(list(self.messages))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"condition not met within {timeout} s; got {self.messages[-5:]}")
                self._lock.wait(left)

    def text(self) -> str:
        """Everything the terminal showed: the last ``full`` and every ``append`` after it."""
        with self._lock:
            out = ""
            for message in self.messages:
                if message.get("type") == "full":
                    out = message["content"]
                elif message.get("type") == "append":
                    out += message["content"]
            return out

    def close(self) -> None:
        try:
            self.sock.sendall(self._connection.send(CloseConnection(code=1000)))
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.sock.close()

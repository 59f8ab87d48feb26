"""A JSON WebSocket client for tests: reads in a thread, keeps every message, sends objects."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any, Callable

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, CloseConnection, Message, Request, TextMessage


def open_websocket(port: int, path: str, receive_buffer_bytes: int | None = None) -> tuple[socket.socket, WSConnection]:
    """A WebSocket handshake on a plain socket; returns the socket and the wsproto connection.

    Why not simple-websocket's client: it parses only the handshake from its first read, so a
    frame the server sends right after accepting waits in its buffer until another arrives.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer_bytes is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer_bytes)
    sock.connect(("127.0.0.1", port))
    connection = WSConnection(ConnectionType.CLIENT)
    sock.sendall(connection.send(Request(host=f"127.0.0.1:{port}", target=path)))
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"{path}: the server closed the connection during the handshake")
        connection.receive_data(data)
        for event in connection.events():
            if isinstance(event, AcceptConnection):
                return sock, connection
            raise ConnectionError(f"{path}: handshake refused: {event}")


class JsonSocket:
    """``receive_buffer_bytes`` and ``read_delay_s`` make a slow client: a small kernel buffer,
    and nothing read for that long after the handshake."""

    def __init__(
        self, port: int, path: str, receive_buffer_bytes: int | None = None, read_delay_s: float = 0.0
    ) -> None:
        self.sock, self._connection = open_websocket(port, path, receive_buffer_bytes)
        self._read_delay_s = read_delay_s
        #: ``(arrival time, message)`` of everything received, in order.
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._messages: list[dict[str, Any]] = []  # the same messages, without times
        self.close_code: int | None = None
        #: Why the reader thread stopped, when it was not the connection closing.
        self.reader_error: str | None = None
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        parts: list[str] = []
        time.sleep(self._read_delay_s)
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
                            message = json.loads("".join(parts))
                            with self._lock:
                                self.received.append((time.time(), message))
                                self._messages.append(message)
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
        except Exception as exc:  # noqa: BLE001 - a reader that dies says why, and waits end at once
            with self._lock:
                self.reader_error = f"{type(exc).__name__}: {exc}"
                self.close_code = self.close_code or 1006
                self._lock.notify_all()

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [message for _at, message in self.received]

    def send(self, message: dict[str, Any]) -> None:
        self.sock.sendall(self._connection.send(TextMessage(json.dumps(message))))

    def send_text(self, text: str) -> None:
        self.sock.sendall(self._connection.send(TextMessage(text)))

    def wait_messages(self, predicate: Callable[[list[dict[str, Any]]], Any], timeout: float = 10.0) -> Any:
        """Wait until ``predicate(messages so far)`` is truthy; return its value.

        The predicate runs under the reader's lock on the live list (not a copy: a busy stream
        would make every check copy thousands of messages), so it must only read it.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(self._messages)
                if value:
                    return value
                left = deadline - time.monotonic()
                if self.reader_error is not None:
                    raise AssertionError(f"the WebSocket reader failed: {self.reader_error}")
                if left <= 0:
                    last = [message for _at, message in self.received[-5:]]
                    raise AssertionError(f"condition not met within {timeout} s; got {last}")
                self._lock.wait(left)

    def text(self) -> str:
        """Everything the terminal showed: the last ``full`` and every ``append`` after it."""
        with self._lock:
            out = ""
            for _at, message in self.received:
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


class BinarySocket:
    """A WebSocket whose server sends binary frames (a raw terminal): every byte received, in order."""

    def __init__(self, port: int, path: str) -> None:
        self.sock, self._connection = open_websocket(port, path)
        self._data = bytearray()
        self.text_frames: list[str] = []
        self.close_code: int | None = None
        self._lock = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while True:
                for event in self._connection.events():
                    if isinstance(event, CloseConnection):
                        with self._lock:
                            self.close_code = event.code
                            self._lock.notify_all()
                        return
                    if isinstance(event, Message):
                        with self._lock:
                            if isinstance(event.data, (bytes, bytearray)):
                                self._data += event.data
                            else:
                                self.text_frames.append(event.data)
                            self._lock.notify_all()
                data = self.sock.recv(65536)
                if not data:
                    break
                self._connection.receive_data(data)
        except OSError:
            pass
        with self._lock:
            self.close_code = self.close_code or 1006
            self._lock.notify_all()

    @property
    def data(self) -> bytes:
        with self._lock:
            return bytes(self._data)

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(self._connection.send(BytesMessage(data)))

    def send_json(self, message: dict[str, Any]) -> None:
        self.sock.sendall(self._connection.send(TextMessage(json.dumps(message))))

    def wait_for(self, predicate: Callable[[bytes], Any], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(bytes(self._data))
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"condition not met within {timeout} s; got {bytes(self._data)[-300:]!r}")
                self._lock.wait(left)

    def wait_closed(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        with self._lock:
            while self.close_code is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not closed within {timeout} s")
                self._lock.wait(left)
            return self.close_code

    def close(self) -> None:
        try:
            self.sock.sendall(self._connection.send(CloseConnection(code=1000)))
        except Exception:  # noqa: BLE001 - already closed
            pass
        self.sock.close()

"""Helpers for the EEG tests: a `/v1/events` client that records everything, and recordings
written in BrainFlow's file format for the playback board to replay."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from brainflow.board_shim import BoardShim
from brainflow.data_filter import DataFilter
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Request

import miso_runtime.neuro.recording  # noqa: F401 - lets BrainFlow find its libraries

SYNTHETIC = -1
PLAYBACK = -3
GANGLION = 1


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


class EventsClient:
    """A `/v1/events` WebSocket client that reads in a thread and keeps every event with its arrival time."""

    def __init__(self, port: int, token: str) -> None:
        self.sock, self._connection = open_websocket(port, f"/v1/events?token={token}")
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.close_code: int | None = None
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        parts: list[str] = []
        try:
            while True:
                for event in self._connection.events():
                    if isinstance(event, CloseConnection):
                        self.close_code = event.code
                        return
                    if isinstance(event, Message):
                        parts.append(event.data)
                        if event.message_finished:
                            with self._lock:
                                self.events.append((time.time(), json.loads("".join(parts))))
                                self._lock.notify_all()
                            parts = []
                data = self.sock.recv(65536)
                if not data:
                    return
                self._connection.receive_data(data)
        except OSError:
            pass

    def of_type(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            return [event for at, event in self.events if event["type"] == kind and at >= since]

    def arrivals(self, kind: str) -> list[float]:
        with self._lock:
            return [at for at, event in self.events if event["type"] == kind]

    def wait_for(
        self, kind: str, predicate: Callable[[dict], bool] = lambda _e: True, timeout: float = 15.0, since: float = 0.0
    ) -> dict[str, Any]:
        """The first event of ``kind`` (arrived after ``since``) that matches, waiting up to ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for at, event in self.events:
                    if at >= since and event["type"] == kind and predicate(event["payload"]):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({event["type"] for _at, event in self.events})
                    raise AssertionError(f"no {kind} event within {timeout} s (seen: {seen})")
                self._lock.wait(left)

    def close(self) -> None:
        try:
            self.sock.sendall(self._connection.send(CloseConnection(code=1000)))
        except Exception:  # noqa: BLE001 - already closed by the server
            pass
        self.sock.close()


def write_recording(path: Path, board_id: int, eeg_uv: np.ndarray, start_s: float | None = None) -> Path:
    """Write EEG (µV, ``(n_channels, n_samples)``; fewer rows than the board are repeated) as a
    BrainFlow recording in ``board_id``'s row layout, timestamps at the board's nominal rate."""
    rate = BoardShim.get_sampling_rate(board_id)
    rows = BoardShim.get_eeg_channels(board_id)
    n = eeg_uv.shape[1]
    data = np.zeros((BoardShim.get_num_rows(board_id), n))
    for i, row in enumerate(rows):
        data[row] = eeg_uv[i % eeg_uv.shape[0]]
    start = time.time() if start_s is None else start_s
    data[BoardShim.get_timestamp_channel(board_id)] = start + np.arange(n) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    DataFilter.write_file(np.ascontiguousarray(data), str(path), "w")
    return path


def sine_eeg(freq_hz: float, seconds: float, rate: float, n_channels: int, amplitude_uv: float = 20.0) -> np.ndarray:
    """A sine of ``freq_hz`` on every channel (phase shifted per channel) plus a little white noise."""
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(7).normal(0.0, 0.5, size=(n_channels, t.size))
    phases = np.linspace(0, np.pi, n_channels)[:, None]
    return amplitude_uv * np.sin(2 * np.pi * freq_hz * t[None, :] + phases) + noise


def full_windows(frames: list[dict], window_s: float = 2.0) -> list[dict]:
    """EegBands payloads over a full window (warm-up frames cover less)."""
    return [frame for frame in frames if abs(frame["window_s"] - window_s) < 1e-9]


def wait_until(condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")

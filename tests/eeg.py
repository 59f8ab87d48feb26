"""Helpers for the EEG tests: a `/v1/events` client that records everything, and recordings
written in BrainFlow's file format for the playback board to replay."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from brainflow.board_shim import BoardShim
from brainflow.data_filter import DataFilter

import miso_runtime.neuro.recording  # noqa: F401 - lets BrainFlow find its libraries
from tests.ws_client import JsonSocket

SYNTHETIC = -1
PLAYBACK = -3
GANGLION = 1


class EventsClient(JsonSocket):
    """A `/v1/events` client: every event with its arrival time, looked up by type."""

    def __init__(
        self, port: int, token: str, receive_buffer_bytes: int | None = None, read_delay_s: float = 0.0
    ) -> None:
        super().__init__(port, f"/v1/events?token={token}", receive_buffer_bytes, read_delay_s)

    @property
    def events(self) -> list[tuple[float, dict[str, Any]]]:
        return self.received

    def of_type(self, kind: str, since: float = 0.0) -> list[dict[str, Any]]:
        with self._lock:
            return [event for at, event in self.received if event["type"] == kind and at >= since]

    def arrivals(self, kind: str) -> list[float]:
        with self._lock:
            return [at for at, event in self.received if event["type"] == kind]

    def wait_for(
        self, kind: str, predicate: Callable[[dict], bool] = lambda _e: True, timeout: float = 15.0, since: float = 0.0
    ) -> dict[str, Any]:
        """The first event of ``kind`` (arrived after ``since``) that matches, waiting up to ``timeout`` s.

        Each event is looked at once, however many arrive while waiting (a fast replay sends
        hundreds of ``EegBands`` a second).
        """
        looked_at = 0

        def next_match(_messages: list[dict[str, Any]]) -> dict[str, Any] | None:
            nonlocal looked_at
            while looked_at < len(self.received):
                at, event = self.received[looked_at]
                looked_at += 1
                if at >= since and event["type"] == kind and predicate(event["payload"]):
                    return event
            return None

        try:
            return self.wait_messages(next_match, timeout)
        except AssertionError as exc:
            recent = Counter(event["type"] for at, event in self.received if at >= since)
            last = f"{time.time() - self.received[-1][0]:.1f} s ago" if self.received else "never"
            raise AssertionError(f"no {kind} event: {exc}; since then: {dict(recent)}; the last came {last}") from None


def board_data(board_id: int, eeg_uv: np.ndarray, start_s: float | None = None) -> np.ndarray:
    """EEG (µV, ``(n_channels, n_samples)``; fewer rows than the board are repeated) in ``board_id``'s
    row layout, timestamps at the board's nominal rate from ``start_s`` (default: now)."""
    rate = BoardShim.get_sampling_rate(board_id)
    rows = BoardShim.get_eeg_channels(board_id)
    n = eeg_uv.shape[1]
    data = np.zeros((BoardShim.get_num_rows(board_id), n))
    for i, row in enumerate(rows):
        data[row] = eeg_uv[i % eeg_uv.shape[0]]
    start = time.time() if start_s is None else start_s
    data[BoardShim.get_timestamp_channel(board_id)] = start + np.arange(n) / rate
    return data


def write_recording(path: Path, board_id: int, eeg_uv: np.ndarray, start_s: float | None = None) -> Path:
    """Write :func:`board_data` as a BrainFlow recording file (the text alone, as a board's own tools would)."""
    data = board_data(board_id, eeg_uv, start_s)
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


def wait_until(
    condition: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """The first truthy value of ``condition()``; ``what`` names it when it never comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


@contextmanager
def listening_sidecar(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """A sidecar whose ``events`` attribute is an :class:`EventsClient` connected from the start."""
    from tests.sidecar import Sidecar

    sidecar = Sidecar(data_dir, env=env)
    events = EventsClient(sidecar.port, sidecar.token)
    sidecar.events = events  # type: ignore[attr-defined]
    try:
        yield sidecar
    finally:
        events.close()
        sidecar.terminate()

"""Cut stored epochs back out of their session's recording file, for re-embedding.

Live epochs reach the ``embed`` worker with their samples; epochs recorded before an encoder
existed (or before a switch) only have their times in SQLite. The recording file holds every
sample with its UNIX timestamp, so an epoch is found again by its start time, and gets the
very samples it was computed from (the file stores them with 6 decimals).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..recording import read_recording

logger = logging.getLogger(__name__)


@dataclass
class LoadedRecording:
    """One session's EEG rows (µV) and timestamps (UNIX s) in memory."""

    session_id: str
    eeg_uv: np.ndarray
    timestamps_s: np.ndarray
    sample_rate_hz: float

    def cut(self, start_utc_ms: int, end_utc_ms: int) -> np.ndarray | None:
        """The epoch's ``(n_channels, n_samples)`` µV, or None when the file does not hold it whole."""
        n = int(round((end_utc_ms - start_utc_ms) / 1000.0 * self.sample_rate_hz))
        if n <= 0 or self.timestamps_s.size == 0:
            return None
        start_s = start_utc_ms / 1000.0
        first = int(np.searchsorted(self.timestamps_s, start_s - 0.5 / self.sample_rate_hz))
        if first >= self.timestamps_s.size or abs(self.timestamps_s[first] - start_s) > 2.0 / self.sample_rate_hz:
            return None
        if first + n > self.eeg_uv.shape[1]:
            return None
        return self.eeg_uv[:, first : first + n]


def load_recording(session_id: str, path: Path, board_id: int, sample_rate_hz: float | None = None) -> LoadedRecording:
    """Read a whole recording (raises OSError/ValueError when it cannot be read); ``sample_rate_hz``
    (Hz) for an LSL session's recording."""
    data, rate, eeg_rows, ts_row = read_recording(path, board_id, sample_rate_hz)
    return LoadedRecording(session_id, data[eeg_rows].astype(np.float32), data[ts_row], float(rate))

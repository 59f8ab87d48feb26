"""A binary copy of a recording's timestamps and EEG rows, for reading a whole night fast.

The recording itself stays BrainFlow's text file (it replays through the playback board and
opens in BrainFlow's tools), but parsing text is the slow part of staging a night: 1.1 s of
pandas for one channel of an 8-hour Muse S file against 2.2 s for all of YASA. Beside each
recording ``X.csv`` the writer appends ``X.csv.samples``: a 16-byte header (``MISOSMP1``, the
number of EEG channels as little-endian uint32, a reserved uint32) and then one record per
sample of little-endian float64 values: the UNIX timestamp in seconds, then each EEG channel in
µV, in board row order. They are the board's own doubles, so the copy is more exact than the
text's 6 decimals; reading one channel of a night is a memory map and a strided copy.

The text file is the recording; this file only stands in for it when it holds exactly the
samples the session recorded (:func:`read_channel` is told how many). A writer that resumes a
recording whose copy does not match it removes the copy instead of continuing a wrong one, and
a failed write disables the copy for that recording, never the recording.

==============================  =========================================
Disk per sample                 8 bytes x (1 + EEG channels): 40 B for Muse
                                S (4 channels), about half its text line
==============================  =========================================
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path
from typing import Sequence

import numpy as np

logger = logging.getLogger(__name__)

MAGIC = b"MISOSMP1"
HEADER = struct.Struct("<8sII")
SUFFIX = ".samples"


def samples_path(recording: Path) -> Path:
    """``X.csv`` -> ``X.csv.samples``."""
    recording = Path(recording)
    return recording.with_name(recording.name + SUFFIX)


def _record_bytes(n_channels: int) -> int:
    return 8 * (1 + n_channels)


def _count(path: Path, n_channels: int) -> int | None:
    """Whole records in the file, or None when its header is not ours for ``n_channels``."""
    try:
        with path.open("rb") as handle:
            header = handle.read(HEADER.size)
    except OSError:
        return None
    if len(header) < HEADER.size:
        return None
    magic, channels, _reserved = HEADER.unpack(header)
    if magic != MAGIC or channels != n_channels:
        return None
    return (path.stat().st_size - HEADER.size) // _record_bytes(n_channels)


class SampleFileWriter:
    """Appends to the copy of one recording; ``existing_samples`` is what the recording already holds."""

    def __init__(self, recording: Path, eeg_rows: Sequence[int], timestamp_row: int, existing_samples: int) -> None:
        self.path = samples_path(recording)
        self._rows = [int(timestamp_row), *(int(row) for row in eeg_rows)]
        self._channels = len(self._rows) - 1
        self.enabled = True
        try:
            self._open(existing_samples)
        except OSError as exc:
            self._disable(f"cannot write {self.path}: {exc}")

    def _open(self, existing_samples: int) -> None:
        if existing_samples == 0:
            with self.path.open("wb") as handle:
                handle.write(HEADER.pack(MAGIC, self._channels, 0))
            return
        records = _count(self.path, self._channels)
        if records != existing_samples:
            self._disable(f"{self.path} holds {records} samples, its recording {existing_samples}")
            self.path.unlink(missing_ok=True)
            return
        keep = HEADER.size + records * _record_bytes(self._channels)
        if self.path.stat().st_size != keep:
            os.truncate(self.path, keep)  # a record torn by a crash

    def _disable(self, why: str) -> None:
        if self.enabled:
            logger.warning("no fast copy of this recording: %s", why)
        self.enabled = False

    def append(self, block: np.ndarray) -> None:
        """Append the samples of a board chunk ``(n_rows, n)`` (the rows the text file got)."""
        if not self.enabled or block.shape[1] == 0:
            return
        records = np.ascontiguousarray(block[self._rows].T, dtype="<f8")
        try:
            with self.path.open("ab") as handle:
                handle.write(records.tobytes())
        except OSError as exc:
            self._disable(f"writing {self.path} failed: {exc}")
            self.path.unlink(missing_ok=True)

    def sync(self) -> None:
        if self.enabled and self.path.exists():
            with self.path.open("rb") as handle:
                os.fsync(handle.fileno())


def read_channel(
    recording: Path, n_channels: int, index: int, expected_samples: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``(timestamps_s (n,), channel ``index``'s µV (n,))`` from the copy, or None when it cannot stand
    in for the recording (missing, another layout, or not exactly ``expected_samples`` long)."""
    path = samples_path(recording)
    records = _count(path, n_channels)
    if records is None or records != expected_samples or records == 0:
        return None
    table = np.memmap(path, dtype="<f8", mode="r", offset=HEADER.size, shape=(records, 1 + n_channels))
    return np.array(table[:, 0]), np.array(table[:, 1 + index])

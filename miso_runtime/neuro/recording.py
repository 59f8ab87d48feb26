"""Append-only raw recordings in BrainFlow's own file format, crash-safe and replayable.

Why BrainFlow's format: a recording written with :func:`DataFilter.write_file` semantics can
be read back with ``DataFilter.read_file`` for offline analysis *and* streamed through
``BoardIds.PLAYBACK_FILE_BOARD``, so every session can be replayed through exactly the same
capture pipeline as a live board.

File format (what ``DataFilter.write_file(data, file, "a")`` writes, checked on 5.23.0):

* plain text, one line per **sample** (the board array transposed), ``\\n``-terminated;
* fields are **all board rows** (``BoardShim.get_num_rows(board_id)``: 32 for the synthetic
  board) in row order, separated by ``\\t``, each formatted with C ``%lf`` (6 decimals);
* the timestamp row (``BoardShim.get_timestamp_channel(board_id)``: row 30 for the synthetic
  board) holds UNIX time in **seconds** (float, µs resolution); this module reports UTC ms.
* EEG rows are in µV as the board delivers them; no header, no footer.

Beside the text the writer keeps a binary copy of the timestamps and EEG rows
(:mod:`~miso_runtime.neuro.sample_file`), which reads a whole night in milliseconds.

Crash safety: the writer buffers chunks in memory and hands them to the OS at least every
:data:`FLUSH_INTERVAL_S` (a background timer enforces it even when no chunk arrives), so a
``kill -9`` loses at most that much. A kill in the middle of a write can leave a partial
last line (no trailing ``\\n``); :func:`recording_end` ignores it and :class:`RecordingWriter`
cuts it off before resuming, so a resumed file never has a torn line in its middle.

Constants
---------

=========================  ==========  ==============================================
Name                       Value       Meaning
=========================  ==========  ==============================================
FLUSH_INTERVAL_S           0.5 s       max age of buffered samples before OS write
TAIL_BLOCK_BYTES           64 KiB      first read size when seeking for the last line
COUNT_BLOCK_BYTES          1 MiB       block size when streaming the line count
PLAYBACK_MAX_LINE_BYTES    8192 bytes  BrainFlow playback reads lines with this fgets
=========================  ==========  ==============================================

BrainFlow 5.23.0 on Python 3.11 note: its loaders call ``importlib.resources.files`` with a
*module* name, which only Python 3.12+ accepts, then fall back to ``pkg_resources``, which
setuptools >= 81 no longer ships. :func:`ensure_brainflow_loadable` (run on import of this
module) patches that lookup so the bundled shared libraries are found.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

import numpy as np
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams
from brainflow.data_filter import DataFilter

from .layout import lsl_channel_count
from .sample_file import SampleFileWriter

log = logging.getLogger(__name__)

# =============================================================================================
# Constants (see the table in the module docstring)
# =============================================================================================

#: Maximum time (seconds) appended samples may sit in memory before reaching the OS. Half of
#: the 1 s loss budget so that timer jitter never stretches it past 1 s.
FLUSH_INTERVAL_S: float = 0.5
#: First tail read (bytes) when looking for the last complete line; doubled until two line
#: ends are seen, so a long recording is never read whole.
TAIL_BLOCK_BYTES: int = 64 * 1024
#: Block size (bytes) for streaming the newline count (sample count) of a recording.
COUNT_BLOCK_BYTES: int = 1024 * 1024
#: BrainFlow's playback board reads a line with ``fgets(buf, 8192)``; longer lines would be
#: split and rejected, so the writer refuses boards whose lines could exceed it.
PLAYBACK_MAX_LINE_BYTES: int = 8192


# =============================================================================================
# BrainFlow loader fix (5.23.0 on Python < 3.12)
# =============================================================================================

_PATCHED = False


def _files_compat(anchor: str) -> Any:
    """``importlib.resources.files`` that also accepts a module name (Python < 3.12).

    Why: BrainFlow passes ``__name__`` of a module (``brainflow.board_shim``); Python 3.11
    raises ``TypeError`` for non-packages, so resolve against the parent package instead,
    which is the directory holding ``lib/``.
    """
    try:
        return importlib.resources.files(anchor)
    except TypeError:
        return importlib.resources.files(anchor.rpartition(".")[0])


def ensure_brainflow_loadable() -> None:
    """Let BrainFlow find its bundled shared libraries without ``pkg_resources``.

    Idempotent; a no-op when ``pkg_resources`` is importable (BrainFlow's own fallback then
    works). Must run before the first ``BoardShim``/``DataFilter`` call in a process, which
    importing this module guarantees.
    """
    global _PATCHED
    if _PATCHED:
        return
    _PATCHED = True
    try:
        import pkg_resources  # noqa: F401

        return
    except ImportError:
        pass
    import brainflow.board_shim as board_shim_mod
    import brainflow.data_filter as data_filter_mod
    import brainflow.ml_model as ml_model_mod

    for mod in (board_shim_mod, data_filter_mod, ml_model_mod):
        if hasattr(mod, "files"):
            mod.files = _files_compat  # type: ignore[attr-defined]
    log.debug("patched brainflow resource lookup (no pkg_resources available)")


# BrainFlow loads its shared libraries lazily (first BoardShim/DataFilter call), so patching
# after the imports at the top of this module is early enough.
ensure_brainflow_loadable()


# =============================================================================================
# Row layouts: BrainFlow's boards and LSL streams
# =============================================================================================


def board_rows(board_id: int) -> Tuple[int, List[int], int]:
    """``(num_rows, eeg_rows, timestamp_row)`` of a recording in ``board_id``'s layout.

    BrainFlow's board table for its boards; for an LSL session's id (see
    :func:`~miso_runtime.neuro.layout.lsl_board_id`) one row per channel, then the timestamp.
    """
    n_lsl = lsl_channel_count(board_id)
    if n_lsl is not None:
        return n_lsl + 1, list(range(n_lsl)), n_lsl
    return (
        BoardShim.get_num_rows(board_id),
        list(BoardShim.get_eeg_channels(board_id)),
        BoardShim.get_timestamp_channel(board_id),
    )


# =============================================================================================
# Writer
# =============================================================================================


def _cut_partial_tail(path: Path) -> int:
    """Truncate bytes after the last ``\\n`` (a write torn by ``kill -9``); return bytes cut.

    Why: appending after a torn line would glue the new first sample onto it, producing one
    corrupt line in the middle of the file that playback would reject or misparse.
    """
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        block = TAIL_BLOCK_BYTES
        while True:
            start = max(0, size - block)
            fh.seek(start)
            tail = fh.read(size - start)
            idx = tail.rfind(b"\n")
            if idx >= 0:
                keep = start + idx + 1
                break
            if start == 0:
                keep = 0
                break
            block *= 2
        cut = size - keep
        if cut:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    return cut


class RecordingWriter:
    """Append BrainFlow data chunks to a recording file, reaching the OS at least every 0.5 s.

    Parameters
    ----------
    path
        Recording file; created if missing, appended to (resumed) if it exists. A torn last
        line left by a crash is cut off first.
    board_id
        BrainFlow board id whose full row layout the chunks have (the master board id for a
        playback session); used to validate chunk shapes.
    flush_interval_s
        Maximum age in seconds of buffered samples; a daemon timer flushes even when
        :meth:`append` is not called (a stalled board must not hold data in memory).

    Notes
    -----
    Thread-safe: :meth:`append`, :meth:`flush` and the timer share one lock. Data is written
    with ``DataFilter.write_file(..., "a")`` so the bytes are exactly BrainFlow's format.
    """

    def __init__(self, path: Path, board_id: int, flush_interval_s: float = FLUSH_INTERVAL_S) -> None:
        self.path = Path(path)
        self.board_id = int(board_id)
        self.num_rows, eeg_rows, timestamp_row = board_rows(self.board_id)
        if self.num_rows * 24 > PLAYBACK_MAX_LINE_BYTES:
            log.warning(
                "board %s has %d rows; lines may exceed playback's %d-byte limit",
                self.board_id,
                self.num_rows,
                PLAYBACK_MAX_LINE_BYTES,
            )
        self.flush_interval_s = float(flush_interval_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        existing = 0
        if self.path.exists():
            cut = _cut_partial_tail(self.path)
            if cut:
                log.warning("recording %s: cut %d bytes of a torn last line before resuming", self.path, cut)
            span = recording_end(self.path, self.board_id)
            existing = 0 if span is None else span.n_samples
        else:
            self.path.touch()
        self._samples = SampleFileWriter(self.path, eeg_rows, timestamp_row, existing)
        self._lock = threading.Lock()
        self._pending: List[np.ndarray] = []
        self._pending_since: Optional[float] = None  # monotonic s of oldest buffered chunk
        self._closed = False
        self.samples_written = 0
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._flush_loop, name=f"rec-flush:{self.path.name}", daemon=True)
        self._timer.start()

    def append(self, data: np.ndarray) -> None:
        """Buffer one chunk ``(n_rows, n_samples)`` as returned by ``get_board_data()``.

        Empty chunks are ignored. Flushes at once if the oldest buffered chunk is already
        ``flush_interval_s`` old, so a fast loop never relies on the timer alone.
        """
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] != self.num_rows:
            raise ValueError(f"expected ({self.num_rows}, n) array for board {self.board_id}, got {arr.shape}")
        if arr.shape[1] == 0:
            return
        with self._lock:
            if self._closed:
                raise ValueError(f"recording {self.path} is closed")
            self._pending.append(np.array(arr, dtype=np.float64, order="C", copy=True))
            if self._pending_since is None:
                self._pending_since = time.monotonic()
            if time.monotonic() - self._pending_since >= self.flush_interval_s:
                self._flush_locked()

    def flush(self) -> None:
        """Hand all buffered samples to the OS now (survives a process kill, not power loss)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        block = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending, axis=1)
        block = np.ascontiguousarray(block, dtype=np.float64)
        DataFilter.write_file(block, str(self.path), "a")  # fopen("a") .. fclose: in the OS now
        self._samples.append(block)
        self.samples_written += block.shape[1]
        self._pending.clear()
        self._pending_since = None

    def _flush_loop(self) -> None:
        """Timer thread: flush buffered samples older than the interval (checks 4x per interval)."""
        period = self.flush_interval_s / 4.0
        while not self._stop.wait(period):
            try:
                with self._lock:
                    if (
                        self._pending_since is not None
                        and time.monotonic() - self._pending_since >= self.flush_interval_s
                    ):
                        self._flush_locked()
            except Exception:  # keep the timer alive; append()/close() surface the error
                log.exception("recording %s: background flush failed", self.path)

    def close(self) -> None:
        """Flush, fsync (so a finished session also survives power loss) and stop the timer."""
        with self._lock:
            if self._closed:
                return
            self._flush_locked()
            self._closed = True
        self._stop.set()
        self._timer.join(timeout=2.0)
        with open(self.path, "rb") as fh:
            os.fsync(fh.fileno())
        self._samples.sync()

    def __enter__(self) -> "RecordingWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# =============================================================================================
# Reading
# =============================================================================================


@dataclass(frozen=True)
class RecordingSpan:
    """Extent of a recording file, from its complete lines only.

    Attributes
    ----------
    start_ms, end_ms
        Timestamps (UTC ms since the epoch) of the first and last complete sample.
    n_samples
        Number of complete lines (samples).
    partial_tail_bytes
        Bytes after the last ``\\n`` (a torn write), ignored; 0 for a clean file.
    """

    start_ms: float
    end_ms: float
    n_samples: int
    partial_tail_bytes: int

    @property
    def duration_s(self) -> float:
        """Seconds between first and last sample."""
        return (self.end_ms - self.start_ms) / 1000.0


def _parse_timestamp_ms(line: bytes, num_rows: int, ts_row: int, path: Path) -> float:
    fields = line.rstrip(b"\r\n").split(b"\t")
    if len(fields) != num_rows:
        raise ValueError(f"{path}: line has {len(fields)} fields, board expects {num_rows}")
    return float(fields[ts_row]) * 1000.0


def recording_end(path: Path, board_id: int) -> Optional[RecordingSpan]:
    """Find a recording's start/end time and sample count without loading it.

    Reads the first line and a tail block (doubled until it holds the last complete line),
    then streams the file in 1 MiB blocks to count line ends. A partial last line (no
    ``\\n``; a write cut by ``kill -9``) is ignored.

    Parameters
    ----------
    path
        Recording file.
    board_id
        Board whose row layout the file has (gives the timestamp row).

    Returns
    -------
    RecordingSpan or None
        None when the file is missing, empty or holds no complete line.
    """
    path = Path(path)
    if not path.exists():
        return None
    num_rows, _eeg_rows, ts_row = board_rows(board_id)
    size = path.stat().st_size
    if size == 0:
        return None
    with open(path, "rb") as fh:
        # last complete line: the text between the last two '\n' at/before the final '\n'
        block = TAIL_BLOCK_BYTES
        while True:
            start = max(0, size - block)
            fh.seek(start)
            tail = fh.read(size - start)
            last_nl = tail.rfind(b"\n")
            if last_nl < 0 and start == 0:
                return None  # only a torn first line
            if last_nl >= 0:
                prev_nl = tail.rfind(b"\n", 0, last_nl)
                if prev_nl >= 0 or start == 0:
                    last_line = tail[prev_nl + 1 : last_nl]
                    partial = len(tail) - last_nl - 1
                    break
            block *= 2
        fh.seek(0)
        first_line = fh.readline()
        fh.seek(0)
        n_samples = 0
        while True:
            chunk = fh.read(COUNT_BLOCK_BYTES)
            if not chunk:
                break
            n_samples += chunk.count(b"\n")
    return RecordingSpan(
        start_ms=_parse_timestamp_ms(first_line, num_rows, ts_row, path),
        end_ms=_parse_timestamp_ms(last_line, num_rows, ts_row, path),
        n_samples=n_samples,
        partial_tail_bytes=partial,
    )


def read_recording(
    path: Path, board_id: int, sample_rate_hz: float | None = None
) -> Tuple[np.ndarray, float, List[int], int]:
    """Load a whole recording for offline analysis (``DataFilter.read_file``).

    ``sample_rate_hz`` (Hz) is needed for an LSL session's recording, whose rate is its
    session's (BrainFlow boards have theirs in BrainFlow's table).

    Returns
    -------
    data
        ``(n_rows, n_samples)`` float64, the board layout (EEG rows in µV, timestamp row in
        UNIX seconds); a torn last line is dropped.
    sample_rate_hz
        Nominal board sampling rate in Hz.
    eeg_rows
        Row indices of the EEG channels.
    timestamp_row
        Row index of the timestamp (seconds).
    """
    path = Path(path)
    span = recording_end(path, board_id)
    num_rows, eeg_rows, ts_row = board_rows(board_id)
    if lsl_channel_count(board_id) is not None:
        if sample_rate_hz is None:
            raise ValueError(f"{path}: an LSL recording's rate is its session's; give sample_rate_hz")
        rate: float = float(sample_rate_hz)
    else:
        rate = BoardShim.get_sampling_rate(board_id)
    if span is None:
        data = np.zeros((num_rows, 0), dtype=np.float64)
    else:
        data = DataFilter.read_file(str(path))
        if data is None:
            data = np.zeros((num_rows, 0), dtype=np.float64)
        if data.shape[0] != num_rows:
            raise ValueError(f"{path}: {data.shape[0]} rows, board {board_id} has {num_rows}")
        data = data[:, : span.n_samples]  # never trust a torn line, whatever read_file does
    return data, rate, eeg_rows, ts_row


# =============================================================================================
# Playback
# =============================================================================================


def playback_params(path: Path, master_board_id: int) -> Tuple[int, BrainFlowInputParams]:
    """Board id and params to replay a recording through ``BoardShim``.

    Usage::

        board_id, params = playback_params(path, BoardIds.SYNTHETIC_BOARD)
        board = BoardShim(board_id, params)
        board.prepare_session()
        board.config_board("old_timestamps")   # optional: keep recorded timestamps
        board.start_stream()

    The playback board paces samples by the differences of the file's timestamp row
    (real time), and rows/channels follow the master board.

    Playback config commands (``board.config_board(cmd)``), as compiled into BrainFlow
    5.23.0's ``PlaybackFileBoard``: ``loopback_true`` / ``loopback_false`` (restart at end
    of file), ``new_timestamps`` (default: stamp with the current time) / ``old_timestamps``
    (keep the file's; read when the stream starts), ``set_index_percentage:<0..99>`` (seek).
    There is **no speed command**: ``set_speed:4`` is not recognised, only logged as "invalid
    config string" and ``config_board`` still returns OK, so it silently plays at 1x.

    Faster than real time: write a copy whose timestamps are compressed with
    :func:`time_scaled_copy` and replay that (pacing follows the file's timestamp deltas);
    combine with ``new_timestamps`` (the default) for live-like stamps. For analysis without
    pacing, use :func:`read_recording` instead.
    """
    params = BrainFlowInputParams()
    params.file = str(Path(path))
    params.master_board = int(master_board_id)
    return int(BoardIds.PLAYBACK_FILE_BOARD), params


def time_scaled_copy(src: Path, dst: Path, board_id: int, speed: float) -> Path:
    """Write ``dst``: ``src`` with timestamps compressed ``speed``-fold around the first one.

    Why: the playback board sleeps for each timestamp delta, so dividing deltas by ``speed``
    replays ``speed`` times faster. Loads ``src`` whole (offline tool). EEG values unchanged.
    """
    if speed <= 0:
        raise ValueError("speed must be > 0")
    data, _, _, ts_row = read_recording(src, board_id)
    if data.shape[1]:
        t0 = data[ts_row, 0]
        data = data.copy()
        data[ts_row] = t0 + (data[ts_row] - t0) / float(speed)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    DataFilter.write_file(np.ascontiguousarray(data), str(dst), "w")
    return Path(dst)


__all__ = [
    "FLUSH_INTERVAL_S",
    "RecordingSpan",
    "RecordingWriter",
    "ensure_brainflow_loadable",
    "playback_params",
    "read_recording",
    "recording_end",
    "time_scaled_copy",
]

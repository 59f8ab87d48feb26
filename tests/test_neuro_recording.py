"""Tests of miso_runtime.neuro.recording against real BrainFlow boards (synthetic, playback)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams

from miso_runtime.neuro.recording import (
    RecordingWriter,
    playback_params,
    read_recording,
    recording_end,
    time_scaled_copy,
)

SYN = int(BoardIds.SYNTHETIC_BOARD)
TS_ROW = BoardShim.get_timestamp_channel(SYN)
EEG_ROWS = BoardShim.get_eeg_channels(SYN)
FMT_TOL = 1e-6  # %lf keeps 6 decimals: |error| <= 5e-7


@pytest.fixture(autouse=True)
def _quiet_brainflow() -> None:
    BoardShim.disable_board_logger()


def capture(path: Path, seconds: float) -> np.ndarray:
    """Capture ``seconds`` of synthetic data in ~0.1 s chunks into a writer; return all data."""
    board = BoardShim(SYN, BrainFlowInputParams())
    chunks = []
    try:
        board.prepare_session()
        board.start_stream()
        with RecordingWriter(path, SYN) as writer:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                time.sleep(0.1)
                chunk = board.get_board_data()
                writer.append(chunk)
                chunks.append(chunk)
            board.stop_stream()
            chunk = board.get_board_data()
            writer.append(chunk)
            chunks.append(chunk)
    finally:
        board.release_session()
    return np.concatenate(chunks, axis=1)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, np.ndarray]]:
    path = tmp_path_factory.mktemp("rec") / "session.tsv"
    data = capture(path, 2.0)
    yield path, data


def test_span_and_read_back(recorded: tuple[Path, np.ndarray]) -> None:
    path, data = recorded
    assert data.shape[0] == BoardShim.get_num_rows(SYN) == 32
    assert data.shape[1] > 300  # ~2 s at 250 Hz
    span = recording_end(path, SYN)
    assert span is not None
    assert span.n_samples == data.shape[1]
    assert span.partial_tail_bytes == 0
    assert span.start_ms == pytest.approx(data[TS_ROW, 0] * 1000.0, abs=1e-3)
    assert span.end_ms == pytest.approx(data[TS_ROW, -1] * 1000.0, abs=1e-3)

    back, fs, eeg, ts = read_recording(path, SYN)
    assert (fs, eeg, ts) == (250, EEG_ROWS, TS_ROW)
    assert back.shape == data.shape
    np.testing.assert_allclose(back, data, rtol=0, atol=FMT_TOL)
    np.testing.assert_allclose(back[TS_ROW], data[TS_ROW], rtol=0, atol=FMT_TOL)


def test_resume_appends(tmp_path: Path, recorded: tuple[Path, np.ndarray]) -> None:
    _, data = recorded
    path = tmp_path / "r.tsv"
    with RecordingWriter(path, SYN) as w:
        w.append(data[:, :10])
    with RecordingWriter(path, SYN) as w:
        w.append(data[:, 10:25])
    span = recording_end(path, SYN)
    assert span is not None and span.n_samples == 25
    assert span.end_ms == pytest.approx(data[TS_ROW, 24] * 1000.0, abs=1e-3)


def test_background_flush_without_appends(tmp_path: Path, recorded: tuple[Path, np.ndarray]) -> None:
    _, data = recorded
    path = tmp_path / "f.tsv"
    w = RecordingWriter(path, SYN)
    try:
        w.append(data[:, :5])
        time.sleep(1.0)  # no further append: the timer must have written it
        span = recording_end(path, SYN)
        assert span is not None and span.n_samples == 5
    finally:
        w.close()


def _replay(path: Path, n_expected: int, timeout_s: float) -> tuple[np.ndarray, float]:
    board_id, params = playback_params(path, SYN)
    board = BoardShim(board_id, params)
    try:
        board.prepare_session()
        board.config_board("old_timestamps")
        t0 = time.monotonic()
        board.start_stream()
        deadline = t0 + timeout_s
        while board.get_board_data_count() < n_expected and time.monotonic() < deadline:
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        board.stop_stream()
        return board.get_board_data(), elapsed
    finally:
        board.release_session()


def test_playback_round_trip_fast(tmp_path: Path, recorded: tuple[Path, np.ndarray]) -> None:
    path, data = recorded
    span = recording_end(path, SYN)
    assert span is not None
    fast = time_scaled_copy(path, tmp_path / "fast.tsv", SYN, speed=8.0)
    replayed, elapsed = _replay(fast, data.shape[1], timeout_s=10.0)
    assert replayed.shape[1] == data.shape[1]
    np.testing.assert_allclose(replayed[EEG_ROWS], data[EEG_ROWS], rtol=0, atol=FMT_TOL)
    # compressed 8x: ~0.25 s instead of ~2 s real time
    assert elapsed < span.duration_s / 2.0, (elapsed, span.duration_s)
    # old_timestamps: the (scaled) file timestamps come back
    assert replayed[TS_ROW, -1] - replayed[TS_ROW, 0] == pytest.approx(span.duration_s / 8.0, abs=0.01)


def test_playback_real_time_original(recorded: tuple[Path, np.ndarray]) -> None:
    path, data = recorded
    n = 100  # 0.4 s at 250 Hz is enough to see pacing and equality
    replayed, elapsed = _replay(path, n, timeout_s=5.0)
    k = min(replayed.shape[1], n)
    assert k >= n
    np.testing.assert_allclose(replayed[EEG_ROWS, :k], data[EEG_ROWS, :k], rtol=0, atol=FMT_TOL)
    assert elapsed >= (data[TS_ROW, n - 1] - data[TS_ROW, 0]) * 0.8


def test_partial_last_line_ignored(tmp_path: Path, recorded: tuple[Path, np.ndarray]) -> None:
    src, data = recorded
    lines = src.read_bytes().splitlines(keepends=True)
    path = tmp_path / "torn.tsv"
    path.write_bytes(b"".join(lines[:50]) + lines[50][: len(lines[50]) // 2])
    span = recording_end(path, SYN)
    assert span is not None
    assert span.n_samples == 50 and span.partial_tail_bytes > 0
    assert span.end_ms == pytest.approx(data[TS_ROW, 49] * 1000.0, abs=1e-3)
    back, *_ = read_recording(path, SYN)
    assert back.shape[1] == 50
    # resuming cuts the torn line so the next sample starts on its own line
    with RecordingWriter(path, SYN) as w:
        w.append(data[:, 50:60])
    span = recording_end(path, SYN)
    assert span is not None and span.n_samples == 60 and span.partial_tail_bytes == 0
    back, *_ = read_recording(path, SYN)
    np.testing.assert_allclose(back[TS_ROW], data[TS_ROW, :60], rtol=0, atol=FMT_TOL)


def test_empty_and_missing(tmp_path: Path) -> None:
    assert recording_end(tmp_path / "none.tsv", SYN) is None
    (tmp_path / "empty.tsv").write_bytes(b"")
    assert recording_end(tmp_path / "empty.tsv", SYN) is None
    (tmp_path / "torn_only.tsv").write_bytes(b"1.0\t2.0")
    assert recording_end(tmp_path / "torn_only.tsv", SYN) is None


CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from miso_runtime.neuro.recording import RecordingWriter
    from brainflow.board_shim import BoardIds, BoardShim, BrainFlowInputParams
    BoardShim.disable_board_logger()
    sid = int(BoardIds.SYNTHETIC_BOARD)
    ts = BoardShim.get_timestamp_channel(sid)
    board = BoardShim(sid, BrainFlowInputParams())
    board.prepare_session(); board.start_stream()
    w = RecordingWriter(Path(sys.argv[1]), sid)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
        d = board.get_board_data()
        if d.shape[1]:
            w.append(d)
            print(repr(float(d[ts, -1])), flush=True)
    """
)


def test_kill_9_loses_at_most_one_second(tmp_path: Path) -> None:
    path = tmp_path / "killed.tsv"
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, env=env, cwd=root)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(2.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        out = proc.stdout.read().decode().split()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(out) > 10
    last_appended_s = float(out[-1])
    span = recording_end(path, SYN)
    assert span is not None
    assert span.end_ms <= last_appended_s * 1000.0 + 1e-3
    assert last_appended_s * 1000.0 - span.end_ms <= 1000.0
    assert span.n_samples > 250  # > 1 s of the ~2.5 s made it to disk

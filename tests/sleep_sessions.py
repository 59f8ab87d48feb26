"""Finished sessions put into a sidecar's store as a capture would have left them.

A night cannot be replayed through the playback board in test time (8 hours at the board's
100x top speed is 5 minutes), so the tests write what a finished capture leaves behind: the
recording in the board's layout under the data dir, written by the capture's own
``RecordingWriter`` (so its binary copy is there too), and a ``complete`` session row that
names it. Everything after that (the staging worker reading the file, YASA, the store, the
route) is the runtime's own.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from miso_runtime import constants
from miso_runtime.neuro.boards import BoardParams, board_name, layout_of
from miso_runtime.neuro.recording import RecordingWriter
from miso_runtime.store.database import open_database
from miso_runtime.store.eeg import NewSession, SessionRepository, SessionStatus
from tests.eeg import board_data

MUSE_S = 39


def seed_session(
    data_dir: Path,
    eeg_uv: np.ndarray,
    start_s: float,
    board_id: int = MUSE_S,
    session_id: str | None = None,
) -> tuple[str, Path]:
    """Write ``eeg_uv`` (µV, ``(n_channels, n_samples)``) as a finished session; ``(session id, file)``."""
    session_id = session_id or uuid.uuid4().hex[:12]
    layout = layout_of(board_id, BoardParams())
    relative = Path(constants.RECORDINGS_DIR_NAME) / "seeded" / f"{session_id}.csv"
    path = data_dir / relative
    with RecordingWriter(path, board_id) as writer:
        writer.append(board_data(board_id, eeg_uv, start_s))
    n = eeg_uv.shape[1]
    db = open_database(data_dir / constants.DATABASE_FILE_NAME)
    try:
        sessions = SessionRepository(db)
        sessions.insert(
            NewSession(
                id=session_id,
                device_id=None,
                board_id=board_id,
                data_board_id=board_id,
                board_name=board_name(board_id),
                started_utc_ms=int(round(start_s * 1000)),
                recording_path=str(relative),
                channel_names=list(layout.channel_names),
                sample_rate_hz=layout.sample_rate_hz,
            )
        )
        last_ms = int(round((start_s + (n - 1) / layout.sample_rate_hz) * 1000))
        sessions.end(session_id, last_ms, n, SessionStatus.COMPLETE, "user_cancel", started_utc_ms=None)
    finally:
        db.conn.close()
    return session_id, path

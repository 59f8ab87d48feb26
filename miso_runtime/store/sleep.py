"""SQL for ``sleep_stagings`` and ``sleep_epochs`` (migration 5).

The ``staging`` worker writes a night's epochs in one transaction; the server reads the epochs
of a range back. Stage probabilities are kept per epoch, so an answer from here is the very
one YASA gave, never recomputed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np
import sqlite_utils

PROBABILITY_COLUMNS = ("p_wake", "p_n1", "p_n2", "p_n3", "p_rem")
RELATIVE_COLUMNS = ("rel_delta", "rel_theta", "rel_alpha", "rel_beta")


class StagingStatus:
    STAGED = "staged"
    FAILED = "failed"


@dataclass(frozen=True)
class StagingKey:
    """What makes two stagings the same: the session, the method and its version, the channel setting."""

    session_id: str
    method: str
    version: str
    channel_request: str


@dataclass(frozen=True)
class StagingRecord:
    id: int
    session_id: str
    method: str
    version: str
    channel_request: str
    channel: str | None
    channel_reason: str | None
    status: str
    code: str | None
    message: str | None
    n_samples: int
    recorded_s: float | None
    expected_s: float | None
    truncated: bool
    epoch_s: float
    n_epochs: int
    elapsed_ms: float | None
    created_ms: int


_RECORD_COLUMNS = ", ".join(f.name for f in fields(StagingRecord))


@dataclass
class StagedNight:
    """A staged session: per 30 s epoch its start, stage code, confidence, probabilities (Wake, N1,
    N2, N3, REM) and the staged channel's relative delta, theta, alpha and beta powers."""

    start_utc_ms: np.ndarray  # (n,) int64
    stage: np.ndarray  # (n,) int8, daemon codes
    confidence: np.ndarray  # (n,) float64, the largest probability
    probabilities: np.ndarray  # (n, 5) float64
    relative: np.ndarray  # (n, 4) float64

    def __len__(self) -> int:
        return int(self.start_utc_ms.size)


@dataclass(frozen=True)
class StoredEpoch:
    """One row of ``sleep_epochs`` as the route answers it."""

    session_id: str
    start_utc_ms: int
    stage: int
    confidence: float | None
    probabilities: tuple[float | None, ...]
    relative: tuple[float | None, ...]


class SleepRepository:
    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def find(self, key: StagingKey) -> StagingRecord | None:
        row = self._db.execute(
            f"SELECT {_RECORD_COLUMNS} FROM sleep_stagings"
            " WHERE session_id = ? AND method = ? AND version = ? AND channel_request = ?",
            [key.session_id, key.method, key.version, key.channel_request],
        ).fetchone()
        return None if row is None else _record(row)

    def for_sessions(
        self, session_ids: Sequence[str], method: str, version: str, channel_request: str
    ) -> dict[str, StagingRecord]:
        if not session_ids:
            return {}
        marks = ", ".join("?" for _ in session_ids)
        rows = self._db.execute(
            f"SELECT {_RECORD_COLUMNS} FROM sleep_stagings WHERE session_id IN ({marks})"
            " AND method = ? AND version = ? AND channel_request = ?",
            [*session_ids, method, version, channel_request],
        ).fetchall()
        return {record.session_id: record for record in map(_record, rows)}

    def save(
        self,
        key: StagingKey,
        *,
        status: str,
        n_samples: int,
        epoch_s: float,
        night: StagedNight | None = None,
        channel: str | None = None,
        channel_reason: str | None = None,
        code: str | None = None,
        message: str | None = None,
        recorded_s: float | None = None,
        expected_s: float | None = None,
        truncated: bool = False,
        elapsed_ms: float | None = None,
    ) -> int:
        """Store a staging (replacing any of the same key) and its epochs in one transaction."""
        n_epochs = 0 if night is None else len(night)
        with self._db.conn:
            self._db.execute(
                "DELETE FROM sleep_stagings"
                " WHERE session_id = ? AND method = ? AND version = ? AND channel_request = ?",
                [key.session_id, key.method, key.version, key.channel_request],
            )
            cursor = self._db.execute(
                "INSERT INTO sleep_stagings (session_id, method, version, channel_request, channel, channel_reason,"
                " status, code, message, n_samples, recorded_s, expected_s, truncated, epoch_s, n_epochs, elapsed_ms,"
                " created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    key.session_id,
                    key.method,
                    key.version,
                    key.channel_request,
                    channel,
                    channel_reason,
                    status,
                    code,
                    message,
                    n_samples,
                    recorded_s,
                    expected_s,
                    int(truncated),
                    epoch_s,
                    n_epochs,
                    elapsed_ms,
                    int(time.time() * 1000),
                ],
            )
            staging_id = int(cursor.lastrowid)
            if night is not None and n_epochs:
                rows = zip(
                    [staging_id] * n_epochs,
                    range(n_epochs),
                    night.start_utc_ms.tolist(),
                    night.stage.tolist(),
                    night.confidence.tolist(),
                    *night.probabilities.T.tolist(),
                    *night.relative.T.tolist(),
                    strict=True,
                )
                columns = (
                    "staging_id",
                    "idx",
                    "start_utc_ms",
                    "stage",
                    "confidence",
                    *PROBABILITY_COLUMNS,
                    *RELATIVE_COLUMNS,
                )
                marks = ", ".join("?" for _ in columns)
                self._db.conn.executemany(f"INSERT INTO sleep_epochs ({', '.join(columns)}) VALUES ({marks})", rows)
        return staging_id

    def epochs_in_range(self, stagings: Sequence[StagingRecord], start_ms: int, end_ms: int) -> list[StoredEpoch]:
        """Epochs of ``stagings`` that start in ``[start_ms, end_ms]``, oldest first."""
        if not stagings:
            return []
        by_id = {record.id: record.session_id for record in stagings}
        marks = ", ".join("?" for _ in by_id)
        rows = self._db.execute(
            f"SELECT staging_id, start_utc_ms, stage, confidence, {', '.join(PROBABILITY_COLUMNS)},"
            f" {', '.join(RELATIVE_COLUMNS)} FROM sleep_epochs WHERE staging_id IN ({marks})"
            " AND start_utc_ms >= ? AND start_utc_ms <= ? ORDER BY start_utc_ms, staging_id, idx",
            [*by_id, start_ms, end_ms],
        ).fetchall()
        return [StoredEpoch(by_id[row[0]], row[1], row[2], row[3], tuple(row[4:9]), tuple(row[9:13])) for row in rows]

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM sleep_stagings").fetchone()[0]


def _record(row: tuple[Any, ...]) -> StagingRecord:
    values = dict(zip((f.name for f in fields(StagingRecord)), row, strict=True))
    values["truncated"] = bool(values["truncated"])
    return StagingRecord(**values)

"""SQL for epoch embeddings: one float32 vector per epoch and encoder (migration 4).

Written by the ``embed`` worker, read by the server (search, counts) and the ``analysis``
worker (index builds, UMAP), each over its own connection. Vectors are stored as
little-endian float32 blobs; the arrays handed out are read-only views into one buffer per
query, so a million rows cost one copy, not a million small ones.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import sqlite_utils

#: Milliseconds in a UTC day (days are ``start_utc_ms // DAY_MS``).
DAY_MS = 86_400_000


@dataclass(frozen=True)
class VectorRows:
    """Embedding rows as arrays: ``ids``/``epoch_ids``/``start_ms`` int64 ``(n,)``, ``vectors`` ``(n, dim)`` float32."""

    ids: np.ndarray
    epoch_ids: np.ndarray
    start_ms: np.ndarray
    vectors: np.ndarray

    @classmethod
    def empty(cls, dim: int = 0) -> "VectorRows":
        none = np.zeros(0, dtype=np.int64)
        return cls(none, none.copy(), none.copy(), np.zeros((0, dim), dtype=np.float32))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0


@dataclass(frozen=True)
class MissingEpoch:
    """An epoch without a vector of some encoder, with what re-embedding it needs."""

    epoch_id: int
    session_id: str
    start_utc_ms: int
    end_utc_ms: int


def utc_day(start_ms: int) -> str:
    """``YYYYMMDD`` of a UTC time in ms."""
    return time.strftime("%Y%m%d", time.gmtime(start_ms / 1000.0))


def _rows(cursor_rows: list[tuple], dim_hint: int = 0) -> VectorRows:
    if not cursor_rows:
        return VectorRows.empty(dim_hint)
    ids = np.fromiter((r[0] for r in cursor_rows), dtype=np.int64, count=len(cursor_rows))
    epoch_ids = np.fromiter((r[1] for r in cursor_rows), dtype=np.int64, count=len(cursor_rows))
    start_ms = np.fromiter((r[2] for r in cursor_rows), dtype=np.int64, count=len(cursor_rows))
    blob = b"".join(r[3] for r in cursor_rows)
    dim = len(cursor_rows[0][3]) // 4
    vectors = np.frombuffer(blob, dtype="<f4").reshape(len(cursor_rows), dim)
    return VectorRows(ids, epoch_ids, start_ms, vectors)


class EmbeddingRepository:
    """SQL for ``eeg_embeddings``."""

    _SELECT = "SELECT id, epoch_id, start_utc_ms, vector FROM eeg_embeddings"

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    # --- writing (the embed worker) ---------------------------------------------------------

    def put_many(self, encoder: str, items: Sequence[tuple[int, int, np.ndarray]]) -> list[int]:
        """Store ``(epoch_id, start_utc_ms, vector)`` rows in one transaction; returns their ids.

        A vector that exists for the same epoch and encoder is replaced (and gets a new id).
        Epochs deleted meanwhile are skipped (id -1).
        """
        now = int(time.time() * 1000)
        ids: list[int] = []
        with self._db.conn:
            for epoch_id, start_ms, vector in items:
                values = np.ascontiguousarray(vector, dtype="<f4")
                exists = self._db.execute("SELECT 1 FROM eeg_epochs WHERE id = ?", [int(epoch_id)]).fetchone()
                if exists is None:
                    ids.append(-1)
                    continue
                cursor = self._db.execute(
                    "INSERT OR REPLACE INTO eeg_embeddings (epoch_id, encoder, dim, vector, start_utc_ms, created_ms) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [int(epoch_id), encoder, int(values.shape[0]), values.tobytes(), int(start_ms), now],
                )
                ids.append(int(cursor.lastrowid))
        return ids

    # --- what is missing --------------------------------------------------------------------

    def missing(self, encoder: str, limit: int, skip: Iterable[int] = ()) -> list[MissingEpoch]:
        """Up to ``limit`` epochs without a vector of ``encoder``, newest session first, in time order
        within a session (so a batch reads one recording file); ``skip`` are epoch ids to leave out."""
        skipped = sorted(set(int(i) for i in skip))
        marks = ", ".join("?" for _ in skipped)
        not_skipped = f"AND ep.id NOT IN ({marks})" if skipped else ""
        rows = self._db.execute(
            "SELECT ep.id, ep.session_id, ep.start_utc_ms, ep.end_utc_ms FROM eeg_epochs ep "
            "JOIN eeg_sessions s ON s.id = ep.session_id "
            "WHERE NOT EXISTS (SELECT 1 FROM eeg_embeddings e WHERE e.epoch_id = ep.id AND e.encoder = ?) "
            f"{not_skipped} ORDER BY s.started_utc_ms DESC, ep.session_id, ep.start_utc_ms, ep.id LIMIT ?",
            [encoder, *skipped, int(limit)],
        ).fetchall()
        return [MissingEpoch(*row) for row in rows]

    def coverage_by_day(self, encoder: str) -> list[dict[str, Any]]:
        """Per UTC day (ascending): epochs, epochs with a vector of ``encoder``, epochs without."""
        rows = self._db.execute(
            "SELECT ep.start_utc_ms / ? AS day, COUNT(*), COUNT(e.id) FROM eeg_epochs ep "
            "LEFT JOIN eeg_embeddings e ON e.epoch_id = ep.id AND e.encoder = ? GROUP BY day ORDER BY day",
            [DAY_MS, encoder],
        ).fetchall()
        return [
            {"date": utc_day(day * DAY_MS), "total": total, "embedded": embedded, "missing": total - embedded}
            for day, total, embedded in rows
        ]

    def count_in_range(self, encoder: str, start_ms: int, end_ms: int) -> tuple[int, int]:
        """Epochs starting in ``[start_ms, end_ms]`` and how many of them have a vector of ``encoder``."""
        row = self._db.execute(
            "SELECT COUNT(*), COUNT(e.id) FROM eeg_epochs ep "
            "LEFT JOIN eeg_embeddings e ON e.epoch_id = ep.id AND e.encoder = ? "
            "WHERE ep.start_utc_ms >= ? AND ep.start_utc_ms <= ?",
            [encoder, start_ms, end_ms],
        ).fetchone()
        return int(row[0]), int(row[1])

    # --- reading vectors --------------------------------------------------------------------

    def in_range(self, encoder: str, start_ms: int, end_ms: int, session_ids: list[str] | None = None) -> VectorRows:
        """Vectors of epochs starting in ``[start_ms, end_ms]``, in time order."""
        if session_ids is not None:
            marks = ", ".join("?" for _ in session_ids) or "NULL"
            rows = self._db.execute(
                "SELECT e.id, e.epoch_id, e.start_utc_ms, e.vector FROM eeg_embeddings e "
                f"JOIN eeg_epochs ep ON ep.id = e.epoch_id WHERE e.encoder = ? AND ep.session_id IN ({marks}) "
                "AND e.start_utc_ms >= ? AND e.start_utc_ms <= ? ORDER BY e.start_utc_ms, e.id",
                [encoder, *session_ids, start_ms, end_ms],
            ).fetchall()
        else:
            rows = self._db.execute(
                f"{self._SELECT} WHERE encoder = ? AND start_utc_ms >= ? AND start_utc_ms <= ? "
                "ORDER BY start_utc_ms, id",
                [encoder, start_ms, end_ms],
            ).fetchall()
        return _rows(rows)

    def after(self, encoder: str, after_id: int, *, day: str | None = None) -> VectorRows:
        """Vectors of ``encoder`` with an id above ``after_id`` (of one UTC day if given), by id."""
        if day is None:
            rows = self._db.execute(
                f"{self._SELECT} WHERE encoder = ? AND id > ? ORDER BY id", [encoder, after_id]
            ).fetchall()
        else:
            start = day_start_ms(day)
            rows = self._db.execute(
                f"{self._SELECT} WHERE encoder = ? AND id > ? AND start_utc_ms >= ? AND start_utc_ms < ? ORDER BY id",
                [encoder, after_id, start, start + DAY_MS],
            ).fetchall()
        return _rows(rows)

    def recent(self, encoder: str, limit: int) -> VectorRows:
        """The newest ``limit`` vectors of ``encoder`` by epoch time (newest first)."""
        rows = self._db.execute(
            f"{self._SELECT} WHERE encoder = ? ORDER BY start_utc_ms DESC LIMIT ?", [encoder, limit]
        ).fetchall()
        return _rows(rows)

    def max_id(self, encoder: str) -> int:
        row = self._db.execute("SELECT MAX(id) FROM eeg_embeddings WHERE encoder = ?", [encoder]).fetchone()
        return int(row[0] or 0)

    def count_since(self, encoder: str, start_ms: int) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM eeg_embeddings WHERE encoder = ? AND start_utc_ms >= ?", [encoder, start_ms]
        ).fetchone()
        return int(row[0])

    def time_span_after(self, encoder: str, after_id: int) -> tuple[int, int] | None:
        """Earliest and latest ``start_utc_ms`` of the vectors with ids above ``after_id`` (None if none)."""
        row = self._db.execute(
            "SELECT MIN(start_utc_ms), MAX(start_utc_ms) FROM eeg_embeddings WHERE encoder = ? AND id > ?",
            [encoder, after_id],
        ).fetchone()
        return None if row[0] is None else (int(row[0]), int(row[1]))

    def range_marker(self, encoder: str, start_ms: int, end_ms: int) -> tuple[int, int]:
        """Count and largest id of the vectors in a range: changes whenever the range's vectors do."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(MAX(id), 0) FROM eeg_embeddings WHERE encoder = ? "
            "AND start_utc_ms >= ? AND start_utc_ms <= ?",
            [encoder, start_ms, end_ms],
        ).fetchone()
        return int(row[0]), int(row[1])

    def max_epoch_id(self) -> int:
        """The newest epoch's id (0 without epochs): a cheap marker of "new epochs arrived"."""
        return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM eeg_epochs").fetchone()[0])

    def count(self, encoder: str) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM eeg_embeddings WHERE encoder = ?", [encoder]).fetchone()[0])

    def days(self, encoder: str) -> list[str]:
        """UTC days (``YYYYMMDD``, ascending) that hold vectors of ``encoder``."""
        rows = self._db.execute(
            "SELECT DISTINCT start_utc_ms / ? FROM eeg_embeddings WHERE encoder = ? ORDER BY 1", [DAY_MS, encoder]
        ).fetchall()
        return [utc_day(row[0] * DAY_MS) for row in rows]

    def counts_by_encoder(self) -> dict[str, int]:
        rows = self._db.execute("SELECT encoder, COUNT(*) FROM eeg_embeddings GROUP BY encoder").fetchall()
        return {encoder: count for encoder, count in rows}

    def describe(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """What a search result shows of each embedding id: time, session, device, epoch metrics.

        Ids that no longer exist (their epoch was deleted, or the vector replaced) are absent.
        """
        found: dict[int, dict[str, Any]] = {}
        unique = sorted(set(int(i) for i in ids if i >= 0))
        for offset in range(0, len(unique), 500):
            chunk = unique[offset : offset + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._db.execute(
                "SELECT e.id, e.epoch_id, e.start_utc_ms, ep.session_id, s.device_id, s.board_name, "
                "ep.relaxation, ep.engagement, ep.frontal_alpha_asymmetry, ep.alpha_theta, "
                "ep.rel_delta, ep.rel_theta, ep.rel_alpha, ep.rel_beta, ep.rel_gamma "
                "FROM eeg_embeddings e JOIN eeg_epochs ep ON ep.id = e.epoch_id "
                f"JOIN eeg_sessions s ON s.id = ep.session_id WHERE e.id IN ({marks})",
                chunk,
            ).fetchall()
            for row in rows:
                found[int(row[0])] = {
                    "epoch_id": row[1],
                    "start_utc_ms": row[2],
                    "session_id": row[3],
                    "device_id": row[4],
                    "device_name": row[5],
                    "relaxation": row[6],
                    "engagement": row[7],
                    "faa": row[8],
                    "alpha_theta": row[9],
                    "rel_delta": row[10],
                    "rel_theta": row[11],
                    "rel_alpha": row[12],
                    "rel_beta": row[13],
                    "rel_gamma": row[14],
                }
        return found


def day_start_ms(day: str) -> int:
    """UTC midnight of ``YYYYMMDD`` in ms."""
    return calendar.timegm(time.strptime(day, "%Y%m%d")) * 1000

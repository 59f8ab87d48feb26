"""SQL for labels: a text a person gave a moment of their EEG, with its three vectors (migration 4).

A label keeps the daemon's fields (``eeg_start``/``eeg_end`` in UNIX seconds, ``label_start``,
``created_at`` as a float of seconds) and three float32 vectors: its text's and its context's
(of ``embedding_model``) and the mean EEG embedding over its window (of ``eeg_encoder``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import sqlite_utils


def _vector(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<f4")


def _blob(vector: np.ndarray | None) -> bytes | None:
    return None if vector is None else np.ascontiguousarray(vector, dtype="<f4").tobytes()


@dataclass(frozen=True)
class LabelRecord:
    id: int
    text: str
    context: str
    eeg_start: int
    eeg_end: int
    label_start: float
    label_end: float
    created_at: float
    embedding_model: str | None
    text_vector: np.ndarray | None
    context_vector: np.ndarray | None
    eeg_encoder: str | None
    eeg_vector: np.ndarray | None

    def entry(self) -> dict[str, Any]:
        """``LabelEntry`` as the daemon answers it, plus ``label_start``/``label_end`` (the client types them)."""
        entry: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "context": self.context,
            "eeg_start": self.eeg_start,
            "eeg_end": self.eeg_end,
            "label_start": self.label_start,
            "label_end": self.label_end,
            "created_at": float(self.created_at),
        }
        if self.embedding_model is not None:
            entry["embedding_model"] = self.embedding_model
        return entry


@dataclass(frozen=True)
class NewLabel:
    text: str
    context: str
    eeg_start: int
    eeg_end: int
    label_start: float
    embedding_model: str | None
    text_vector: np.ndarray | None
    context_vector: np.ndarray | None


class LabelRepository:
    """SQL for ``labels``."""

    _COLUMNS = (
        "id, text, context, eeg_start, eeg_end, label_start, label_end, created_at, embedding_model, "
        "text_vector, context_vector, eeg_encoder, eeg_vector"
    )

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    @staticmethod
    def _record(row: tuple) -> LabelRecord:
        return LabelRecord(
            *row[:9],
            _vector(row[9]),
            _vector(row[10]),
            row[11],
            _vector(row[12]),  # type: ignore[arg-type]
        )

    def insert(self, new: NewLabel) -> LabelRecord:
        cursor = self._db.execute(
            "INSERT INTO labels (text, context, eeg_start, eeg_end, label_start, label_end, created_at, updated_ms, "
            "embedding_model, text_vector, context_vector) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                new.text,
                new.context,
                new.eeg_start,
                new.eeg_end,
                new.label_start,
                new.label_start,
                new.label_start,
                int(time.time() * 1000),
                new.embedding_model,
                _blob(new.text_vector),
                _blob(new.context_vector),
            ],
        )
        record = self.get(int(cursor.lastrowid))
        assert record is not None
        return record

    def get(self, label_id: int) -> LabelRecord | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM labels WHERE id = ?", [label_id]).fetchone()
        return self._record(row) if row else None

    def recent(self, limit: int) -> list[LabelRecord]:
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM labels ORDER BY created_at DESC, id DESC LIMIT ?", [limit]
        ).fetchall()
        return [self._record(row) for row in rows]

    def distinct_texts(self, limit: int) -> list[str]:
        """Label texts that say something, each once, most recently used first."""
        rows = self._db.execute(
            "SELECT text FROM labels WHERE length(trim(text)) > 0 GROUP BY text ORDER BY MAX(created_at) DESC LIMIT ?",
            [limit],
        ).fetchall()
        return [row[0] for row in rows]

    def all(self) -> list[LabelRecord]:
        rows = self._db.execute(f"SELECT {self._COLUMNS} FROM labels ORDER BY id").fetchall()
        return [self._record(row) for row in rows]

    def covering(self, ts_s: Sequence[int]) -> dict[int, list[LabelRecord]]:
        """Labels whose ``[eeg_start, eeg_end]`` contains each time (UNIX seconds)."""
        if not len(ts_s):
            return {}
        lo, hi = int(min(ts_s)), int(max(ts_s))
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM labels WHERE eeg_start <= ? AND eeg_end >= ? ORDER BY eeg_start, id",
            [hi, lo],
        ).fetchall()
        labels = [self._record(row) for row in rows]
        return {int(t): [label for label in labels if label.eeg_start <= t <= label.eeg_end] for t in ts_s}

    def update_text(
        self,
        label_id: int,
        text: str,
        context: str,
        model: str | None,
        text_vector: np.ndarray | None,
        context_vector: np.ndarray | None,
    ) -> bool:
        cursor = self._db.execute(
            "UPDATE labels SET text = ?, context = ?, embedding_model = ?, text_vector = ?, context_vector = ?, "
            "updated_ms = ? WHERE id = ?",
            [text, context, model, _blob(text_vector), _blob(context_vector), int(time.time() * 1000), label_id],
        )
        return cursor.rowcount > 0

    def set_eeg_vector(self, label_id: int, encoder: str | None, vector: np.ndarray | None) -> None:
        self._db.execute(
            "UPDATE labels SET eeg_encoder = ?, eeg_vector = ? WHERE id = ?", [encoder, _blob(vector), label_id]
        )

    def delete(self, label_id: int) -> bool:
        return self._db.execute("DELETE FROM labels WHERE id = ?", [label_id]).rowcount > 0

    def model_counts(self) -> dict[str, int]:
        rows = self._db.execute(
            "SELECT COALESCE(embedding_model, '(none)'), COUNT(*) FROM labels GROUP BY 1 ORDER BY 1"
        ).fetchall()
        return {model: count for model, count in rows}

"""SQL for kept screen captures (migration 8): insert, by time, by text, and their OCR vectors.

Rows are answered as the daemon's ``ScreenshotResult`` (``similarity`` 0 where no search ranked
them); the service ranks by meaning itself, reading the vectors here one chunk at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import sqlite_utils

#: The columns of a ``ScreenshotResult``, in the daemon's order (``similarity`` is added).
_RESULT_COLUMNS = "timestamp, unix_ts, filename, app_name, window_title, ocr_text, gif_filename"


@dataclass(frozen=True)
class NewScreenshot:
    """A capture to keep: ``timestamp`` ``YYYYMMDDHHmmss`` UTC, ``unix_ts`` seconds, ``filename``
    relative to the screenshots folder; ``ocr_vector`` float32 of ``ocr_model`` or None."""

    timestamp: int
    unix_ts: int
    filename: str
    width: int
    height: int
    file_size: int
    image_size: int
    quality: int
    phash: str
    app_name: str
    window_title: str
    ocr_text: str
    ocr_model: str | None
    ocr_vector: np.ndarray | None


def _result(row: tuple, similarity: float = 0.0) -> dict[str, Any]:
    timestamp, unix_ts, filename, app_name, window_title, ocr_text, gif_filename = row
    return {
        "timestamp": int(timestamp),
        "unix_ts": int(unix_ts),
        "filename": filename,
        "app_name": app_name,
        "window_title": window_title,
        "ocr_text": ocr_text,
        "similarity": float(similarity),
        "gif_filename": gif_filename,
    }


def _like_pattern(query: str) -> str:
    """``%query%`` with LIKE's own wildcards in ``query`` taken literally (escaped with ``\\``)."""
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ScreenshotRepository:
    """``screenshots``: one row per kept capture."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def insert(self, shot: NewScreenshot) -> int:
        vector = None if shot.ocr_vector is None else np.asarray(shot.ocr_vector, dtype="<f4").tobytes()
        with self._db.conn:
            cursor = self._db.execute(
                "INSERT INTO screenshots (timestamp, unix_ts, filename, width, height, file_size, image_size,"
                " quality, phash, app_name, window_title, ocr_text, ocr_model, ocr_vector, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    shot.timestamp,
                    shot.unix_ts,
                    shot.filename,
                    shot.width,
                    shot.height,
                    shot.file_size,
                    shot.image_size,
                    shot.quality,
                    shot.phash,
                    shot.app_name,
                    shot.window_title,
                    shot.ocr_text,
                    shot.ocr_model if vector is not None else None,
                    vector,
                    int(time.time() * 1000),
                ],
            )
        return int(cursor.lastrowid)

    def has_file(self, filename: str) -> bool:
        """Whether ``filename`` (``YYYYMMDD/YYYYMMDDHHmmss.webp``) is one of ours."""
        return self._db.execute("SELECT 1 FROM screenshots WHERE filename = ?", [filename]).fetchone() is not None

    def around(self, low_unix: int, high_unix: int) -> list[dict[str, Any]]:
        """Captures with ``low_unix <= unix_ts <= high_unix``, oldest first."""
        rows = self._db.execute(
            f"SELECT {_RESULT_COLUMNS} FROM screenshots WHERE unix_ts BETWEEN ? AND ? ORDER BY unix_ts, id",
            [low_unix, high_unix],
        ).fetchall()
        return [_result(row) for row in rows]

    def search_substring(self, query: str, limit: int) -> list[dict[str, Any]]:
        """Captures whose OCR text contains ``query`` (ASCII letters in any case), newest first."""
        rows = self._db.execute(
            f"SELECT {_RESULT_COLUMNS} FROM screenshots WHERE ocr_text LIKE ? ESCAPE '\\'"
            " ORDER BY unix_ts DESC, id DESC LIMIT ?",
            [_like_pattern(query), limit],
        ).fetchall()
        return [_result(row) for row in rows]

    def ocr_vectors(self, model: str, chunk_rows: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` of every capture with an OCR vector of ``model``, ``chunk_rows`` at a time."""
        after = 0
        while True:
            rows = self._db.execute(
                "SELECT id, ocr_vector FROM screenshots WHERE ocr_model = ? AND id > ? ORDER BY id LIMIT ?",
                [model, after, chunk_rows],
            ).fetchall()
            if not rows:
                return
            ids = np.array([row[0] for row in rows], dtype=np.int64)
            vectors = np.stack([np.frombuffer(row[1], dtype="<f4") for row in rows])
            yield ids, vectors
            after = int(ids[-1])

    def by_ids(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._db.execute(f"SELECT id, {_RESULT_COLUMNS} FROM screenshots WHERE id IN ({marks})", ids)
        return {int(row[0]): _result(row[1:]) for row in rows.fetchall()}

    def count_stale(self, backend: str, model_id: str) -> int:
        """Captures whose image vector is of another model than ``backend``/``model_id`` (the daemon's
        ``stale_count``); a capture without one is not stale."""
        return int(
            self._db.execute(
                "SELECT COUNT(*) FROM screenshots"
                " WHERE embedding IS NOT NULL AND (model_backend != ? OR model_id != ?)",
                [backend, model_id],
            ).fetchone()[0]
        )

    def summary(self) -> dict[str, int]:
        """``stored`` rows, ``with_text`` (OCR text), and the newest capture's and embedding's UNIX seconds."""
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(ocr_text != ''), 0), COALESCE(MAX(unix_ts), 0),"
            " COALESCE(MAX(CASE WHEN ocr_vector IS NOT NULL THEN unix_ts END), 0) FROM screenshots"
        ).fetchone()
        return {
            "stored": int(row[0]),
            "with_text": int(row[1]),
            "last_capture_unix": int(row[2]),
            "last_embed_unix": int(row[3]),
        }

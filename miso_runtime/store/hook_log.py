"""SQL for the log of fired hooks (migration 7), read by ``/v1/hooks/log`` and ``statuses``."""

from __future__ import annotations

import json
from typing import Any

import sqlite_utils


def change_markers(db: sqlite_utils.Database, encoder: str) -> tuple[tuple[int, int], int]:
    """``((label count, newest label id), newest embedding id of encoder)`` in one statement: what
    the hooks look at every few seconds to see whether their references may be stale."""
    row = db.conn.execute(
        "SELECT (SELECT COUNT(*) FROM labels), (SELECT COALESCE(MAX(id), 0) FROM labels),"
        " (SELECT COALESCE(MAX(id), 0) FROM eeg_embeddings WHERE encoder = ?)",
        [encoder],
    ).fetchone()
    return (int(row[0]), int(row[1])), int(row[2])


class HookLogRepository:
    """``hook_log``: one row per firing, newest last."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def insert(
        self,
        triggered_at_utc: int,
        triggered_at_ms: int,
        hook: dict[str, Any],
        trigger: dict[str, Any],
        payload: dict[str, Any],
    ) -> int:
        with self._db.conn:
            cursor = self._db.execute(
                "INSERT INTO hook_log (triggered_at_utc, triggered_at_ms, hook_name, hook_json, trigger_json,"
                " payload_json) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    triggered_at_utc,
                    triggered_at_ms,
                    str(hook.get("name", "")),
                    json.dumps(hook),
                    json.dumps(trigger),
                    json.dumps(payload),
                ],
            )
        return int(cursor.lastrowid)

    def add_to_payload(self, row_id: int, extra: dict[str, Any]) -> None:
        """Merge ``extra`` (the command's outcome) into a row's payload."""
        with self._db.conn:
            row = self._db.execute("SELECT payload_json FROM hook_log WHERE id = ?", [row_id]).fetchone()
            if row is None:
                return
            payload = {**json.loads(row[0]), **extra}
            self._db.execute("UPDATE hook_log SET payload_json = ? WHERE id = ?", [json.dumps(payload), row_id])

    def page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        """Rows newest first, as the daemon answers them (the ``*_json`` fields as strings)."""
        rows = self._db.execute(
            "SELECT id, triggered_at_utc, hook_json, trigger_json, payload_json FROM hook_log"
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            [limit, offset],
        ).fetchall()
        keys = ("id", "triggered_at_utc", "hook_json", "trigger_json", "payload_json")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM hook_log").fetchone()[0])

    def last_triggers(self) -> dict[str, dict[str, Any]]:
        """The newest firing of each hook name: ``{name: trigger}`` (the trigger as logged)."""
        rows = self._db.execute(
            "SELECT hook_name, trigger_json FROM hook_log WHERE id IN (SELECT MAX(id) FROM hook_log GROUP BY hook_name)"
        ).fetchall()
        return {name: json.loads(trigger) for name, trigger in rows}

    def distances(self, limit: int) -> list[float]:
        """The distances of the newest ``limit`` firings."""
        rows = self._db.execute(
            "SELECT json_extract(trigger_json, '$.distance') FROM hook_log ORDER BY id DESC LIMIT ?", [limit]
        ).fetchall()
        return [float(row[0]) for row in rows if isinstance(row[0], (int, float))]

"""The conversation store: threads, messages and per-thread events.

Miso chat threads, Caco sessions and Maria tasks are all conversations; each face reads and
writes them through this one repository, so that history, replies and event logs behave the
same everywhere.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable

import sqlite_utils


def now_ms() -> int:
    """The current UTC time in milliseconds since the epoch."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Thread:
    id: str
    face: str
    title: str
    created_at_ms: int
    updated_at_ms: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Message:
    """One message of a thread.

    ``status`` is ``complete`` for a whole message, ``cancelled`` for a reply cut off because
    the client left or the server stopped, and ``error`` for a reply the provider broke off.
    """

    id: int
    thread_id: str
    seq: int
    role: str
    content: str
    status: str
    provider: str | None
    model: str | None
    usage: dict[str, Any] | None
    created_at_ms: int


@dataclass(frozen=True)
class ThreadEvent:
    id: int
    thread_id: str
    seq: int
    type: str
    #: A JSON value (an object for most faces; Maria's queue snapshots are arrays).
    payload: Any
    created_at_ms: int


class ConversationStore:
    """Reads and writes threads, messages and thread events in the shared database."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    # --- threads ----------------------------------------------------------------------------

    def get_thread(self, thread_id: str) -> Thread | None:
        row = self._db.execute("SELECT * FROM threads WHERE id = ?", [thread_id]).fetchone()
        return _thread(row) if row else None

    def ensure_thread(self, thread_id: str | None, face: str, title: str = "") -> tuple[Thread, bool]:
        """The thread with ``thread_id``, created when absent; also whether it was created.

        A client may name a new thread itself (Miso front ends make their own ids), so an
        unknown id creates a thread rather than failing.
        """
        if thread_id:
            existing = self.get_thread(thread_id)
            if existing:
                return existing, False
        stamp = now_ms()
        thread = Thread(thread_id or str(uuid.uuid4()), face, title[:200], stamp, stamp)
        self._db.execute(
            "INSERT OR IGNORE INTO threads (id, face, title, created_at_ms, updated_at_ms, metadata)"
            " VALUES (?, ?, ?, ?, ?, '{}')",
            [thread.id, face, thread.title, stamp, stamp],
        )
        return self.get_thread(thread.id) or thread, True

    def list_threads(self, face: str | None = None, limit: int = 100) -> list[Thread]:
        sql = "SELECT * FROM threads"
        params: list[Any] = []
        if face:
            sql += " WHERE face = ?"
            params.append(face)
        sql += " ORDER BY updated_at_ms DESC LIMIT ?"
        params.append(limit)
        return [_thread(row) for row in self._db.execute(sql, params).fetchall()]

    def update_thread(
        self, thread_id: str, *, title: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        """Change a thread's title and/or replace its metadata, and touch its ``updated_at_ms``."""
        sets, params = ["updated_at_ms = ?"], [now_ms()]
        if title is not None:
            sets.append("title = ?")
            params.append(title[:200])
        if metadata is not None:
            sets.append("metadata = ?")
            params.append(json.dumps(metadata))
        self._db.execute(f"UPDATE threads SET {', '.join(sets)} WHERE id = ?", [*params, thread_id])

    def delete_thread(self, thread_id: str) -> bool:
        """Delete a thread with its messages and events; whether it existed."""
        conn = self._db.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM thread_events WHERE thread_id = ?", [thread_id])
            conn.execute("DELETE FROM messages WHERE thread_id = ?", [thread_id])
            deleted = conn.execute("DELETE FROM threads WHERE id = ?", [thread_id]).rowcount
        return deleted > 0

    # --- messages ---------------------------------------------------------------------------

    def append_message(
        self,
        thread_id: str,
        role: str,
        content: str,
        *,
        status: str = "complete",
        provider: str | None = None,
        model: str | None = None,
        usage: dict[str, Any] | None = None,
    ) -> Message:
        """Add a message at the end of a thread and touch the thread's ``updated_at_ms``."""
        stamp = now_ms()
        conn = self._db.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE thread_id = ?", [thread_id]
            ).fetchone()[0]
            cursor = conn.execute(
                "INSERT INTO messages (thread_id, seq, role, content, status, provider, model, usage, created_at_ms)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [thread_id, seq, role, content, status, provider, model, _dump(usage), stamp],
            )
            conn.execute("UPDATE threads SET updated_at_ms = ? WHERE id = ?", [stamp, thread_id])
        return Message(cursor.lastrowid, thread_id, seq, role, content, status, provider, model, usage, stamp)

    def messages(self, thread_id: str, statuses: Iterable[str] | None = None) -> list[Message]:
        """The messages of a thread in order; ``statuses`` keeps only those with these statuses."""
        sql = "SELECT * FROM messages WHERE thread_id = ?"
        params: list[Any] = [thread_id]
        if statuses is not None:
            wanted = list(statuses)
            sql += f" AND status IN ({', '.join('?' for _ in wanted)})"
            params.extend(wanted)
        sql += " ORDER BY seq"
        return [_message(row) for row in self._db.execute(sql, params).fetchall()]

    # --- events -----------------------------------------------------------------------------

    def append_event(self, thread_id: str, event_type: str, payload: Any) -> ThreadEvent:
        """Append one event to a thread's log; ``seq`` numbers a thread's events from 1."""
        stamp = now_ms()
        conn = self._db.conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            seq = conn.execute(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM thread_events WHERE thread_id = ?", [thread_id]
            ).fetchone()[0]
            cursor = conn.execute(
                "INSERT INTO thread_events (thread_id, seq, type, payload, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                [thread_id, seq, event_type, json.dumps(payload), stamp],
            )
        return ThreadEvent(cursor.lastrowid, thread_id, seq, event_type, payload, stamp)

    def events(self, thread_id: str, after_seq: int = 0) -> list[ThreadEvent]:
        """A thread's events after ``after_seq``, so a reconnecting reader replays only what it missed."""
        rows = self._db.execute(
            "SELECT * FROM thread_events WHERE thread_id = ? AND seq > ? ORDER BY seq", [thread_id, after_seq]
        ).fetchall()
        return [_event(row) for row in rows]


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _thread(row: tuple) -> Thread:
    return Thread(row[0], row[1], row[2] or "", row[3], row[4], _load(row[5]) or {})


def _message(row: tuple) -> Message:
    return Message(row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], _load(row[8]), row[9])


def _event(row: tuple) -> ThreadEvent:
    return ThreadEvent(row[0], row[1], row[2], row[3], _load(row[4]), row[5])

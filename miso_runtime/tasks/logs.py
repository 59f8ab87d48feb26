"""The replayable logs behind Maria's two event streams.

Maria's UI has no history endpoint: a task's timeline exists in the browser only because every
connection to ``/v1/task/{id}/events`` replays the whole log. :class:`TaskLog` is that log in
memory (loaded from the store once, appended as events arrive, each entry numbered by its
``seq`` in the store, which is the SSE ``id``), and readers wait on it for what comes next.
:class:`DaemonLog` is the same for the task-list stream, kept since this runtime started.

Built on :mod:`threading`; in the server gevent has patched it, so a waiting reader is a
greenlet and never blocks the hub.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from .. import constants


@dataclass(frozen=True)
class LogEntry:
    """One event of a stream: its number (the SSE ``id``), event name and JSON data."""

    seq: int
    name: str
    data: Any


class TaskLog:
    """One task's events, oldest first, with a wait for newer ones."""

    def __init__(self, entries: list[LogEntry]) -> None:
        self._entries = entries
        self._changed = threading.Condition()

    @property
    def last_seq(self) -> int:
        with self._changed:
            return self._entries[-1].seq if self._entries else 0

    def append(self, entry: LogEntry) -> None:
        with self._changed:
            self._entries.append(entry)
            self._changed.notify_all()

    def after(self, seq: int) -> list[LogEntry]:
        """Entries numbered above ``seq`` (``seq`` 0: all of them)."""
        with self._changed:
            return self._after_locked(seq)

    def wait_after(self, seq: int, timeout_s: float) -> list[LogEntry]:
        """Entries above ``seq``, waiting up to ``timeout_s`` for one when there are none yet."""
        with self._changed:
            found = self._after_locked(seq)
            if not found:
                self._changed.wait(timeout_s)
                found = self._after_locked(seq)
            return found

    def _after_locked(self, seq: int) -> list[LogEntry]:
        if not self._entries or self._entries[-1].seq <= seq:
            return []
        if seq <= 0:
            return list(self._entries)
        low, high = 0, len(self._entries)
        while low < high:  # entries are sorted by seq: find the first one above it
            middle = (low + high) // 2
            if self._entries[middle].seq <= seq:
                low = middle + 1
            else:
                high = middle
        return self._entries[low:]

    def agent_events(self) -> list[dict[str, Any]]:
        """The ``{id, created, desc}`` events (what a task process is rebuilt from)."""
        with self._changed:
            return [entry.data for entry in self._entries if entry.name == "maria"]


@dataclass(frozen=True)
class DaemonEntry:
    seq: int
    name: str
    task_id: str


class DaemonLog:
    """``daemon.task.changed`` events since start (bounded), each naming its task.

    The data is written when an event is *sent*, from the task's state then, as Maria's daemon
    does: a replayed change shows the task as it is now.
    """

    def __init__(self, kept: int = constants.TASK_DAEMON_EVENTS_KEPT) -> None:
        self._entries: deque[DaemonEntry] = deque(maxlen=kept)
        self._seq = 0
        self._changed = threading.Condition()

    def append(self, name: str, task_id: str) -> None:
        with self._changed:
            self._seq += 1
            self._entries.append(DaemonEntry(self._seq, name, task_id))
            self._changed.notify_all()

    def wait_after(self, seq: int, timeout_s: float) -> list[DaemonEntry]:
        with self._changed:
            found = [entry for entry in self._entries if entry.seq > seq]
            if not found:
                self._changed.wait(timeout_s)
                found = [entry for entry in self._entries if entry.seq > seq]
            return found

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

import bisect
import threading
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .. import constants


class _Numbered(Protocol):
    seq: int


EntryT = TypeVar("EntryT", bound=_Numbered)


@dataclass(frozen=True)
class LogEntry:
    """One event of a stream: its number (the SSE ``id``), event name and JSON data."""

    seq: int
    name: str
    data: Any


@dataclass(frozen=True)
class DaemonEntry:
    seq: int
    name: str
    task_id: str


class ReplayLog(Generic[EntryT]):
    """Entries numbered in increasing ``seq``, oldest first, with a wait for newer ones.

    ``keep`` bounds how many are kept (the oldest go first); None keeps them all.
    """

    def __init__(self, entries: list[EntryT] | None = None, keep: int | None = None) -> None:
        self._entries: list[EntryT] = list(entries or [])
        self._keep = keep
        self._changed = threading.Condition()

    def append(self, entry: EntryT) -> None:
        with self._changed:
            self._entries.append(entry)
            if self._keep is not None and len(self._entries) > self._keep:
                del self._entries[0]
            self._changed.notify_all()

    def wait_after(self, seq: int, timeout_s: float) -> list[EntryT]:
        """Entries above ``seq``, waiting up to ``timeout_s`` for one when there are none yet."""
        with self._changed:
            found = self._after_locked(seq)
            if not found:
                self._changed.wait(timeout_s)
                found = self._after_locked(seq)
            return found

    def _after_locked(self, seq: int) -> list[EntryT]:
        """Entries numbered above ``seq`` (``seq`` 0: all of them)."""
        return self._entries[bisect.bisect_right(self._entries, seq, key=lambda entry: entry.seq) :]


class TaskLog(ReplayLog[LogEntry]):
    """One task's events (the ``seq`` of each is its number in the store)."""

    def agent_events(self) -> list[dict[str, Any]]:
        """The ``{id, created, desc}`` events (what a task process is rebuilt from)."""
        with self._changed:
            return [entry.data for entry in self._entries if entry.name == "maria"]


class DaemonLog(ReplayLog[DaemonEntry]):
    """``daemon.task.changed`` events since start (bounded), each naming its task.

    The data is written when an event is *sent*, from the task's state then, as Maria's daemon
    does: a replayed change shows the task as it is now.
    """

    def __init__(self, keep: int = constants.TASK_DAEMON_EVENTS_KEPT) -> None:
        super().__init__(keep=keep)
        self._next_seq = 0

    def add(self, name: str, task_id: str) -> None:
        with self._changed:
            self._next_seq += 1
            self.append(DaemonEntry(self._next_seq, name, task_id))

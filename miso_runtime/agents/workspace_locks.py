"""One lock per workspace, so that two git operations on the same worktree never interleave.

Every operation that changes a worktree (stage, commit, discard, sync, push, conflict
resolution, overlay refresh) runs inside ``locks.hold(workspace_id)``; operations on different
workspaces run side by side. The agents worker uses native threads, so these are plain
``threading`` locks.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class WorkspaceLocks:
    """``{workspace id: lock}``, created on first use and forgotten with the workspace."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def _lock_for(self, workspace_id: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(workspace_id, threading.Lock())

    @contextmanager
    def hold(self, workspace_id: str) -> Iterator[None]:
        """Run the block with the workspace's lock held (waits for an operation already running)."""
        lock = self._lock_for(workspace_id)
        with lock:
            yield

    def busy(self, workspace_id: str) -> bool:
        """Whether an operation holds the workspace's lock right now."""
        with self._guard:
            lock = self._locks.get(workspace_id)
        return bool(lock and lock.locked())

    def forget(self, workspace_id: str) -> None:
        with self._guard:
            self._locks.pop(workspace_id, None)

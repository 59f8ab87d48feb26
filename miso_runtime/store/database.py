"""Opening the SQLite database with the settings every process needs.

WAL lets readers in other processes work while one process writes; the busy timeout makes a
writer wait for a lock instead of failing at once.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import sqlite_utils

from .. import constants
from .migrations import migrate

logger = logging.getLogger(__name__)


def open_database(path: Path, *, run_migrations: bool = True) -> sqlite_utils.Database:
    """Open (creating if needed) the database at ``path`` in WAL mode, migrated to the latest schema.

    The connection is shared by the greenlets of one process: each statement runs to the end
    without yielding, and multi-statement writes use ``with db.conn:`` so that no greenlet sees
    half of another's transaction.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        str(path),
        timeout=constants.SQLITE_BUSY_TIMEOUT_MS / 1000,
        check_same_thread=False,
        isolation_level=None,
    )
    conn.execute(f"PRAGMA busy_timeout = {constants.SQLITE_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    db = sqlite_utils.Database(conn)
    db.enable_wal()
    conn.execute("PRAGMA synchronous = NORMAL")
    if run_migrations:
        migrate(db)
    return db


class ConnectionPerThread:
    """One connection per OS thread, for services called both on the hub and in its threadpool.

    Greenlets of the hub thread share one connection (each statement runs without yielding,
    as everywhere in the server); a threadpool thread gets its own, because a SQLite connection
    must not run statements of two OS threads at once. Keyed by the OS thread id, which gevent
    leaves as it is (``threading.get_ident`` names the greenlet instead). No lock: each thread
    only ever adds its own key, and gevent's patched locks cannot be shared with native threads.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._connections: dict[int, sqlite_utils.Database] = {}

    def db(self) -> sqlite_utils.Database:
        key = threading.get_native_id()
        found = self._connections.get(key)
        if found is None:
            found = open_database(self._path, run_migrations=False)
            self._connections[key] = found
        return found

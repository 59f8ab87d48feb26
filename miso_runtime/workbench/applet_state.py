"""Caco's one applet state and navigation context, shared by every page, session and agent.

Caco keeps them in its server's memory; here a session's agent runs in its own process, so
they live in the shared SQLite store (table ``caco_applet_state``), where the server's routes,
the page's ``setState`` and the agent's tools all see the same object. A merge is one
``BEGIN IMMEDIATE`` transaction, so two writers never lose each other's keys.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..errors import MisoError
from ..store.database import ConnectionPerThread

_STATE = "state"
_NAVIGATION = "navigation"
EMPTY_NAVIGATION: dict[str, Any] = {"stack": [], "urlParams": {}}


def invalid_state() -> MisoError:
    return MisoError(400, "invalid_state", "Invalid state object")


class AppletState:
    """The state (a JSON object) and the navigation (``{stack, urlParams}``) in the store at ``database_path``."""

    def __init__(self, database_path: Path) -> None:
        self._connections = ConnectionPerThread(database_path)

    def _read(self, key: str) -> dict[str, Any] | None:
        row = self._connections.db().execute("SELECT value FROM caco_applet_state WHERE key = ?", [key]).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return value if isinstance(value, dict) else None

    def _write(self, conn: Any, key: str, value: dict[str, Any]) -> None:
        conn.execute(
            "INSERT INTO caco_applet_state (key, value, updated_at_ms) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at_ms = excluded.updated_at_ms",
            [key, json.dumps(value, ensure_ascii=False), int(time.time() * 1000)],
        )

    def get(self) -> dict[str, Any]:
        return self._read(_STATE) or {}

    def merge(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Shallow-merge ``changes`` into the state (Caco's ``Object.assign``); returns the new state."""
        if not isinstance(changes, dict):
            raise invalid_state()
        conn = self._connections.db().conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT value FROM caco_applet_state WHERE key = ?", [_STATE]).fetchone()
            current = json.loads(row[0]) if row else {}
            merged = {**(current if isinstance(current, dict) else {}), **changes}
            self._write(conn, _STATE, merged)
        return merged

    def clear(self) -> None:
        conn = self._connections.db().conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            self._write(conn, _STATE, {})

    def navigation(self) -> dict[str, Any]:
        return self._read(_NAVIGATION) or dict(EMPTY_NAVIGATION)

    def set_navigation(self, navigation: dict[str, Any]) -> None:
        if not isinstance(navigation, dict):
            raise MisoError(400, "invalid_navigation", "appletNavigation must be an object")
        value = {"stack": list(navigation.get("stack") or []), "urlParams": dict(navigation.get("urlParams") or {})}
        conn = self._connections.db().conn
        with conn:
            conn.execute("BEGIN IMMEDIATE")
            self._write(conn, _NAVIGATION, value)

"""Caco's preferences: the last cwd, the last model and the last open session, in one JSON file.

The frontend reads them on load (``lastSessionId`` decides whether it opens a session or shows
the list) and posts ``{"lastModel": id}`` when a model is picked; the session routes update the
cwd and the session. Caco's rules for an update: ``lastModel`` and ``lastCwd`` change only to a
non-empty value, ``lastSessionId`` changes whenever it is present (``null`` clears it); other
keys are ignored. Unlike Caco, a value of the wrong type is refused instead of stored.

The file is rewritten atomically on each change, under a lock, so two updates at once (two
greenlets, or two threads) each see the other's result.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from .. import constants
from ..errors import MisoError
from ..fields import is_printable
from ..settings_files import write_atomic

logger = logging.getLogger(__name__)

#: Each preference and the longest value it takes.
_LIMITS = {
    "lastCwd": constants.MAX_PATH_CHARS,
    "lastModel": constants.MAX_ID_CHARS,
    "lastSessionId": constants.MAX_ID_CHARS,
}


def _check_text(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise MisoError(400, "invalid_request", f"{key} must be a string")
    if len(value) > _LIMITS[key] or not is_printable(value):
        raise MisoError(
            400, "invalid_request", f"{key} must be at most {_LIMITS[key]} characters, without control characters"
        )
    return value


class Preferences:
    """The preferences file at ``path``; missing keys read as the defaults.

    Parameters
    ----------
    path : Path
        The JSON file (created on the first update).
    default_cwd : str
        ``lastCwd`` until one is set (Caco: the server's cwd).
    default_model : callable
        ``lastModel`` until one is set, asked each time (the runtime's default model can change).
    """

    def __init__(self, path: Path, *, default_cwd: str, default_model: Callable[[], str]) -> None:
        self.path = path
        self._default_cwd = default_cwd
        self._default_model = default_model
        self._lock = threading.Lock()

    def get(self) -> dict[str, Any]:
        """``{"lastCwd", "lastModel", "lastSessionId"}``."""
        with self._lock:
            stored = self._stored()
        return self._complete(stored)

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply ``changes`` by Caco's rules and answer the whole preferences; 400 for a value of the wrong type."""
        applied: dict[str, Any] = {}
        for key in ("lastModel", "lastCwd"):
            value = changes.get(key)
            if value is None or value == "":
                continue
            applied[key] = _check_text(key, value)
        if "lastSessionId" in changes:
            value = changes["lastSessionId"]
            # "" is no session either: the frontend tests the value for truth.
            applied["lastSessionId"] = None if value is None or value == "" else _check_text("lastSessionId", value)
        with self._lock:
            stored = self._stored()
            if applied:
                stored.update(applied)
                write_atomic(self.path, json.dumps(stored, indent=2) + "\n")
        return self._complete(stored)

    def _stored(self) -> dict[str, Any]:
        """What the file holds, keeping only known keys with values of the right type."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            logger.warning("ignoring the unreadable Caco preferences file %s: %s", self.path, error)
            return {}
        if not isinstance(data, dict):
            logger.warning("ignoring the Caco preferences file %s: not a JSON object", self.path)
            return {}
        stored: dict[str, Any] = {}
        for key in ("lastCwd", "lastModel"):
            if isinstance(data.get(key), str) and data[key]:
                stored[key] = data[key]
        if "lastSessionId" in data and (data["lastSessionId"] is None or isinstance(data["lastSessionId"], str)):
            stored["lastSessionId"] = data["lastSessionId"] or None
        return stored

    def _complete(self, stored: dict[str, Any]) -> dict[str, Any]:
        return {
            "lastCwd": stored.get("lastCwd") or self._default_cwd,
            "lastModel": stored.get("lastModel") or self._default_model(),
            "lastSessionId": stored.get("lastSessionId"),
        }

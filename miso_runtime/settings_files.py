"""Settings a user changes at run time (``/v1/settings/*``), each kept in a JSON file in the data dir.

Why files and not the database: they are read at start-up before anything else, by people
too, and a setting must survive a broken store. Every write is atomic (temp file, fsync,
rename), so a crash leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import MisoError

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def describe_errors(error: ValidationError) -> str:
    """``field: message; ...`` for a settings update that does not validate."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in error.errors(include_url=False))


class SettingsFile(Generic[ConfigT]):
    """One settings model kept in one JSON file; partial updates, validated as a whole."""

    def __init__(self, path: Path, model: type[ConfigT]) -> None:
        self._path = path
        self._model = model
        self._lock = threading.Lock()
        self._config = self._read()

    def _read(self) -> ConfigT:
        if not self._path.is_file():
            return self._model()
        try:
            return self._model.model_validate(json.loads(self._path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as exc:
            logger.warning("ignoring unreadable %s (using defaults): %s", self._path, exc)
            return self._model()

    def get(self) -> ConfigT:
        with self._lock:
            return self._config

    def update(self, changes: dict[str, Any]) -> ConfigT:
        """Apply the fields given (others unchanged) and save; a combination that is invalid is a 422."""
        with self._lock:
            try:
                updated = self._model.model_validate({**self._config.model_dump(), **changes})
            except ValidationError as exc:
                raise MisoError(422, "invalid_request", describe_errors(exc)) from None
            write_atomic(self._path, updated.model_dump_json(indent=2))
            self._config = updated
            return updated

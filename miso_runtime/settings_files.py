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
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from .errors import MisoError, describe_validation_error

logger = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=BaseModel)


def write_atomic(path: Path, content: str | bytes) -> None:
    """Replace ``path`` with ``content`` (text as UTF-8) so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def merge_settings(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``current``: objects merge key by key, anything else (lists too) replaces."""
    merged = dict(current)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged


class SettingsFile(Generic[ConfigT]):
    """One settings model kept in one JSON file; partial updates, validated as a whole.

    Parameters
    ----------
    path : Path
        The JSON file (missing: the defaults).
    model : type
        The pydantic model of the settings.
    default : callable, optional
        The settings before any update (default: ``model()``); a stored file is read over them,
        so fields added in a later version get their defaults.
    invalid : callable, optional
        Builds the exception for an update that does not validate, from its message (default:
        a 422 ``invalid_request``, the skill-daemon contract's status).
    """

    def __init__(
        self,
        path: Path,
        model: type[ConfigT],
        *,
        default: Callable[[], ConfigT] | None = None,
        invalid: Callable[[str], Exception] | None = None,
    ) -> None:
        self._path = path
        self._model = model
        self._default = default or model
        self._invalid = invalid or (lambda message: MisoError(422, "invalid_request", message))
        self._lock = threading.Lock()
        self._config = self._read()

    def _read(self) -> ConfigT:
        defaults = self._default()
        if not self._path.is_file():
            return defaults
        try:
            stored = json.loads(self._path.read_text(encoding="utf-8"))
            return self._model.model_validate(merge_settings(defaults.model_dump(), stored))
        except (ValueError, TypeError, ValidationError) as exc:
            logger.warning("ignoring unreadable %s (using defaults): %s", self._path, exc)
            return defaults

    def get(self) -> ConfigT:
        with self._lock:
            return self._config

    def update(self, changes: dict[str, Any]) -> ConfigT:
        """Apply the fields given (sections merge, others unchanged) and save; ``invalid`` if it does not validate."""
        with self._lock:
            try:
                updated = self._model.model_validate(merge_settings(self._config.model_dump(), changes))
            except ValidationError as exc:
                raise self._invalid(describe_validation_error(exc, "settings")) from None
            write_atomic(self._path, updated.model_dump_json(indent=2))
            self._config = updated
            return updated

    def replace(self, values: dict[str, Any]) -> ConfigT:
        """Save ``values`` as the whole settings (missing fields: their defaults); ``invalid`` if they do not validate.

        The skill-daemon's settings POSTs replace the struct rather than merge into it.
        """
        with self._lock:
            try:
                updated = self._model.model_validate(merge_settings(self._default().model_dump(), values))
            except ValidationError as exc:
                raise self._invalid(describe_validation_error(exc, "settings")) from None
            write_atomic(self._path, updated.model_dump_json(indent=2))
            self._config = updated
            return updated

"""Values a client sent, checked once more where a service turns them into a path or a stored time.

The request models bound every field (``miso_runtime.fields``), but services are also called
from other faces, workers and future contracts; these two conversions are where an unchecked
value would become a crash (``int(inf)``, SQLite's 64-bit integers, ``open()`` on a path with a
NUL byte) instead of the caller's 400.
"""

from __future__ import annotations

import math
from pathlib import Path

from . import constants
from .errors import MisoError
from .fields import is_printable


def unix_ms(seconds: float, name: str = "time") -> int:
    """UTC milliseconds of a time given in UNIX seconds, 1970 to 9999; else a 400 naming ``name``."""
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and 0 <= seconds <= constants.MAX_UNIX_S):
        raise MisoError(
            400, "invalid_time", f"{name} must be UNIX seconds from 0 to {constants.MAX_UNIX_S} (9999), got {seconds!r}"
        )
    return int(round(seconds * 1000.0))


def client_path(text: str, name: str = "path") -> Path:
    """``text`` as a path; a 400 when no file could have that name (empty, too long, a control character)."""
    if not text or len(text) > constants.MAX_PATH_CHARS or not is_printable(text):
        raise MisoError(
            400,
            "invalid_path",
            f"{name} must be 1 to {constants.MAX_PATH_CHARS} characters with no NUL or other control character",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MisoError(400, "invalid_path", f"{name} holds a lone UTF-16 surrogate, which no file name has") from None
    path = Path(text)
    if any(len(part.encode("utf-8")) > constants.MAX_FILE_NAME_CHARS for part in path.parts):
        raise MisoError(
            400,
            "invalid_path",
            f"{name} has a part longer than {constants.MAX_FILE_NAME_CHARS} bytes, which no file has",
        )
    return path

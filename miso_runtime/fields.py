"""Field types that request and settings models share, each bounded to what the code behind it can take.

A number or string from a client ends up in SQLite (64-bit integers), in ``datetime`` or
``int()`` (finite floats only), or in an OS call (no NUL byte in a path). A bound in the model
turns each of those failures into a 4xx naming the field, and puts the bound into
``/openapi.json`` where clients and the fuzz test read it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field

from . import constants

#: No NUL and no other C0 control character: such a string cannot name a file, an id or a
#: branch (the OS, git and SQLite would cut it or refuse it).
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
_PRINTABLE = re.compile(PRINTABLE)


def is_printable(text: str) -> bool:
    """Whether ``text`` matches :data:`PRINTABLE` (whole: Python's ``$`` would let a final newline by)."""
    return _PRINTABLE.fullmatch(text) is not None


#: A time in UNIX seconds, 1970 to 9999 (a finite number: ``1e309`` and NaN are refused).
UnixSeconds = Annotated[
    float, Field(ge=0, le=constants.MAX_UNIX_S, allow_inf_nan=False, description="UNIX seconds (1970-9999)")
]
#: A row offset or a count that SQLite compares with its integers.
Offset = Annotated[int, Field(ge=0, le=constants.SQLITE_MAX_INT)]
#: An id or a name: printable, and short enough for a file name or a log line.
Identifier = Annotated[str, Field(min_length=1, max_length=constants.MAX_ID_CHARS, pattern=PRINTABLE)]
#: A file path as a client names it (absolute, or relative to a folder the route names).
PathText = Annotated[str, Field(min_length=1, max_length=constants.MAX_PATH_CHARS, pattern=PRINTABLE)]
#: A duration setting in milliseconds, zero to one day.
SettingMs = Annotated[int, Field(ge=0, le=constants.MAX_SETTING_MS)]
#: A number handed to a C library as its ``int`` (a BrainFlow board id, a protocol).
CInt = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
#: Free text that becomes a command-line argument or a name (a branch, a repository URL, a
#: nickname): any length up to a path's, possibly empty, with no control character.
Printable = Annotated[str, Field(max_length=constants.MAX_PATH_CHARS, pattern=PRINTABLE)]

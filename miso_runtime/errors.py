"""The one error type that crosses from services to faces.

A service raises :class:`MisoError` with an HTTP status, a stable machine-readable ``code`` and
a message a person can act on; each face renders it in its own contract's envelope. Services
never build HTTP responses themselves.
"""

from __future__ import annotations

from pydantic import ValidationError

from .fields import PRINTABLE


class MisoError(Exception):
    """An error with a status, a stable code and a human message.

    Parameters
    ----------
    status : int
        HTTP status the face should answer with (4xx for the caller's mistakes).
    code : str
        Stable identifier clients can branch on (``invalid_request``, ``unauthorized``...).
    message : str
        What went wrong, written for the person reading it.
    headers : dict, optional
        Extra response headers, e.g. ``Retry-After`` on a 503.
    """

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def __repr__(self) -> str:
        return f"MisoError({self.status}, {self.code!r}, {self.message!r})"


def bad_request(message: str, code: str = "invalid_request") -> MisoError:
    """A 400 for input the caller can fix."""
    return MisoError(400, code, message)


def not_found(message: str, code: str = "not_found") -> MisoError:
    """A 404 for a resource that does not exist."""
    return MisoError(404, code, message)


def describe_validation_error(error: ValidationError, whole: str = "body") -> str:
    """One line naming each bad field and what is wrong with it, e.g. ``options.temperature: ...``.

    ``whole`` names the object itself when the error is not about one field.
    """
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or whole
        message = item["msg"]
        if item["type"] == "string_pattern_mismatch" and (item.get("ctx") or {}).get("pattern") == PRINTABLE:
            message = "must not contain NUL or other control characters"
        parts.append(f"{location}: {message}")
    return "; ".join(parts)

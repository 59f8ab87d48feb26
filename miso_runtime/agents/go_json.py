"""Request bodies read as schmux's Go handlers read them, and strings quoted as Go quotes them.

schmux decodes a body with Go's ``json.Decoder`` into a struct: the first JSON value counts, an
empty body is "EOF" (allowed by some routes), ``null`` is an empty object, keys match fields
case-insensitively with the later one winning, unknown keys are ignored, and a value of the
wrong type fails the whole body. Its messages quote values with ``%q``. Routes that answer as
schmux does read their bodies here, so a request with a fault gets schmux's answer.
"""

from __future__ import annotations

import json
from typing import Any

#: Bytes of a body schmux reads (``http.MaxBytesReader(..., 1<<20)``); more fails to decode.
MAX_BODY_BYTES = 1 << 20
_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


class BodyError(ValueError):
    """A body that Go's decoder would refuse; the message says why."""


class _Pairs(list):
    """A JSON object as its ``(key, value)`` pairs in order (duplicates kept, as Go sees them)."""


def decode_body(raw: str | None, fields: dict[str, type], *, allow_empty: bool) -> dict[str, Any]:
    """The known ``fields`` of a JSON body (``str`` or ``list`` of ``str``), as Go decodes a struct.

    An empty body is ``{}`` when ``allow_empty``, else a :class:`BodyError`. Keys match their
    field case-insensitively and a later key wins, as in Go; a field absent or ``null`` is
    left out of the answer.
    """
    text = raw or ""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        raise BodyError("http: request body too large")
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        if allow_empty:
            return {}
        raise BodyError("EOF")
    try:
        value, _end = json.JSONDecoder(object_pairs_hook=_Pairs).raw_decode(text, start)
    except ValueError as exc:
        raise BodyError(str(exc)) from None
    if value is None:
        return {}
    if not isinstance(value, _Pairs):
        raise BodyError(f"cannot unmarshal {_json_kind(value)} into an object")
    answer: dict[str, Any] = {}
    for key, item in value:
        name = next((f for f in fields if f.lower() == key.lower()), None)
        if name is None or item is None:
            continue
        if fields[name] is str:
            if not isinstance(item, str):
                raise BodyError(f"cannot unmarshal {_json_kind(item)} into field {name} of type string")
            answer[name] = item
        else:
            if (
                not isinstance(item, list)
                or isinstance(item, _Pairs)
                or any(not isinstance(entry, (str, type(None))) for entry in item)
            ):
                raise BodyError(f"cannot unmarshal {_json_kind(item)} into field {name} of type []string")
            answer[name] = ["" if entry is None else entry for entry in item]
    return answer


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    return "value"


def go_quote(text: str) -> str:
    """``text`` as Go's ``%q`` writes it (a double-quoted string with Go's escapes)."""
    out = ['"']
    for char in text:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _GO_ESCAPES:
            out.append(_GO_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)

"""The command templates of remote flavors: the part of Go's ``text/template`` that schmux uses.

schmux writes a flavor's ``connect_command``, ``reconnect_command`` and ``provision_command`` as
Go templates run with ``missingkey=error`` on a map of strings (``ssh -tt {{.Hostname}} --``).
What people write there is text and field references, so that is what runs here: literal text,
``{{.Field}}``, the trim markers ``{{-`` and ``-}}``, and comments ``{{/* ... */}}``. Anything
else inside an action (a pipeline, a function, ``if``) is refused at validation with a message
that says so, rather than run in a way Go would not. Errors read as Go's do, since the dashboard
shows them as they come.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_FIELD = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)")
_FUNCTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Go's trim markers: a dash with white space on its inner side.
_TRIM_LEFT = re.compile(r"-[ \t\r\n]")
_TRIM_RIGHT = re.compile(r"[ \t\r\n]-$")


class TemplateError(ValueError):
    """A template that does not parse, or names a field the data does not have (Go's message)."""


def render(text: str, name: str, data: Mapping[str, str]) -> str:
    """``text`` with each ``{{.Field}}`` replaced by ``data[Field]``.

    Raises :class:`TemplateError` for a syntax error (``template: <name>:<line>: ...``) and for
    a field missing from ``data`` (``template: <name>:<line>:<col>: executing "<name>" at
    <.Field>: map has no entry for key "Field"``), as Go's ``missingkey=error`` does.
    """
    pieces: list[str] = []
    position = 0
    trim_next = False
    while True:
        start = text.find("{{", position)
        literal = text[position:] if start < 0 else text[position:start]
        if trim_next:
            literal = literal.lstrip(" \t\r\n")
        if start < 0:
            pieces.append(literal)
            return "".join(pieces)
        body_start = start + 2
        if _TRIM_LEFT.match(text, body_start):
            literal = literal.rstrip(" \t\r\n")
            body_start += 1
        pieces.append(literal)
        end = text.find("}}", body_start)
        if end < 0:
            raise TemplateError(f"template: {name}:{_line(text, start)}: unclosed action")
        body = text[body_start:end]
        trim_next = bool(_TRIM_RIGHT.search(body))
        if trim_next:
            body = body[:-1]
        pieces.append(_action(text, name, body, body_start, data))
        position = end + 2


def _action(text: str, name: str, body: str, body_start: int, data: Mapping[str, str]) -> str:
    """The output of one action (the text between ``{{`` and ``}}``, trim markers removed)."""
    stripped = body.strip()
    line = _line(text, body_start)
    if stripped.startswith("/*"):
        if not stripped.endswith("*/"):
            raise TemplateError(f"template: {name}:{line}: unclosed comment")
        return ""
    if not stripped:
        raise TemplateError(f"template: {name}:{line}: missing value for command")
    field = _FIELD.fullmatch(stripped)
    if field is None:
        word = _FUNCTION.match(stripped)
        if word is not None and word.group() not in ("if", "range", "with", "end", "else", "define", "template"):
            raise TemplateError(f'template: {name}:{line}: function "{word.group()}" not defined')
        raise TemplateError(
            f"template: {name}:{line}: {stripped!r} is not supported here: a command template may only "
            "name fields, as {{.Field}}"
        )
    key = field.group(1)
    if key not in data:
        node = body_start + body.index(".")
        column = node - (text.rfind("\n", 0, node) + 1)
        raise TemplateError(
            f'template: {name}:{line}:{column}: executing "{name}" at <.{key}>: map has no entry for key "{key}"'
        )
    return data[key]


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1

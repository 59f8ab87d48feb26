"""Turning a tool call's JSON text into checked arguments, with messages a model can act on.

The check is written out here rather than done by a JSON Schema library: the tools' schemas use
only ``type``, ``enum``, ``required``, ``properties`` and ``items``, the messages name the
argument and what was wrong with it in words, and the runtime does not depend on a validator
that is installed only for the test suite (``jsonschema-rs``; the ``jsonschema`` package is not).
"""

from __future__ import annotations

import json
import math
from typing import Any

_TYPE_NAMES = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean (true or false)",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


class ArgumentsError(ValueError):
    """The arguments do not parse or do not fit the schema; the message is for the model."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_arguments(text: str | None) -> dict[str, Any]:
    """The call's arguments as a dict; no text at all means no arguments (some models send "").

    Raises ``json.JSONDecodeError``/``ValueError`` for text that is not JSON (the caller reports
    "Error parsing tool arguments") and :class:`ArgumentsError` for JSON that is not an object.
    """
    if text is None or not text.strip():
        return {}
    value = json.loads(text, parse_constant=_refuse_constant)
    if not isinstance(value, dict):
        raise ArgumentsError(f"the arguments must be a JSON object, not {json_type(value)}")
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fits(value: Any, kind: str) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if kind == "integer":
        return _fits(value, "number") and float(value).is_integer()
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "null":
        return value is None
    return True


def check_arguments(args: Any, schema: dict[str, Any], where: str = "") -> None:
    """Raise :class:`ArgumentsError` naming the first argument that breaks ``schema``."""
    label = f"'{where}'" if where else "the arguments"
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_fits(args, kind) for kind in kinds):
            wanted = " or ".join(_TYPE_NAMES.get(kind, kind) for kind in kinds)
            raise ArgumentsError(f"{label} must be {wanted}, got {json_type(args)} {_preview(args)}")
    if "enum" in schema and args not in schema["enum"]:
        choices = ", ".join(json.dumps(choice) for choice in schema["enum"])
        raise ArgumentsError(f"{label} must be one of {choices}, got {_preview(args)}")
    if isinstance(args, dict):
        for name in schema.get("required", ()):
            if name not in args:
                prefix = f"{where}." if where else ""
                raise ArgumentsError(f"missing required argument '{prefix}{name}'")
        for name, subschema in schema.get("properties", {}).items():
            if name in args and isinstance(subschema, dict):
                check_arguments(args[name], subschema, f"{where}.{name}" if where else name)
    if isinstance(args, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(args):
            check_arguments(item, schema["items"], f"{where}[{index}]")


def _preview(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."

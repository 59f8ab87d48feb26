"""Each contract's error envelope, and which one a request gets.

The Miso contract answers ``{"error": {"code", "message"}}`` and 400 for a bad body; the
skill-daemon contract answers ``{"code", "message"}`` and 422 for a body that does not
deserialize (its section 7); schmux answers ``{"error": "..."}``, or plain text where
its contract says so (``/api/config``), and 400 for a bad body. A face's blueprint names its
envelope; requests that match no route get the envelope of their path's contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from flask import Request, Response

ENVELOPE_ATTRIBUTE = "miso_envelope"


@dataclass(frozen=True)
class Envelope:
    name: str
    #: Status for a body or query that does not validate.
    validation_status: int
    shape: Callable[[str, str], dict[str, Any] | str]
    #: JSON Schema of what :attr:`shape` makes: ``/openapi.json`` documents every error with it.
    schema: dict[str, Any]
    mimetype: str = "application/json"

    def render(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        shaped = self.shape(code, message)
        body = shaped if isinstance(shaped, str) else json.dumps(shaped)
        return Response(body, status=status, mimetype=self.mimetype, headers=headers)


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON object with exactly ``properties``, all required."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


_STRING: dict[str, Any] = {"type": "string"}

MISO = Envelope(
    "miso",
    400,
    lambda code, message: {"error": {"code": code, "message": message}},
    _object(error=_object(code=_STRING, message=_STRING)),
)
SKILL = Envelope(
    "skill", 422, lambda code, message: {"code": code, "message": message}, _object(code=_STRING, message=_STRING)
)


def _openai_shape(code: str, message: str) -> dict[str, Any]:
    kind = "invalid_request_error" if code in ("invalid_request", "invalid_json", "model_not_found") else "server_error"
    if code in ("unauthorized", "forbidden"):
        kind = "authentication_error" if code == "unauthorized" else "permission_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


#: OpenAI's envelope, so that OpenAI clients surface the message.
OPENAI = Envelope(
    "openai",
    400,
    _openai_shape,
    _object(error=_object(message=_STRING, type=_STRING, param={"type": "null"}, code=_STRING)),
)

#: schmux's JSON errors (``{"error": "..."}``), and its plain-text ones (``http.Error``).
SCHMUX = Envelope("schmux", 400, lambda code, message: {"error": message}, _object(error=_STRING))
SCHMUX_TEXT = Envelope("schmux-text", 400, lambda code, message: message + "\n", _STRING, mimetype="text/plain")

#: The schmux routes that answer their own result objects on failure, not ``{"error"}``: the
#: external diff and VS Code (``{"success": false, "message"}``), the syncs (``LinearSyncResult``,
#: or ``{"success": false, "message", "is_pre_commit_hook_error", "pre_commit_error_detail"}``),
#: the conflict resolution (``{"started": false, "message"}``) and its state (``{"message"}``).
#: Errors this runtime raises itself (a bad token, a worker that is down) are ``{"error"}``.
SCHMUX_RESULT = Envelope(
    "schmux-result",
    400,
    lambda code, message: {"error": message},
    {
        "anyOf": [
            _object(error=_STRING),
            {
                "type": "object",
                "properties": {
                    "success": {"type": "boolean"},
                    "message": _STRING,
                    "success_count": {"type": "integer"},
                    "conflicting_hash": _STRING,
                    "branch": _STRING,
                    "is_pre_commit_hook_error": {"type": "boolean"},
                    "pre_commit_error_detail": _STRING,
                },
                "required": ["success"],
                "additionalProperties": False,
            },
            {
                "type": "object",
                "properties": {"started": {"type": "boolean"}, "message": _STRING, "workspace_id": _STRING},
                "required": ["started"],
                "additionalProperties": False,
            },
            _object(message=_STRING),
        ]
    },
)

#: Caco's errors: ``{"error": "..."}`` (Express ``res.status(n).json({error})``), and the plain
#: text of ``/api/file`` (``res.status(n).send(text)``).
CACO = Envelope(
    "caco",
    400,
    lambda code, message: {"error": message},
    {
        "type": "object",
        # ``code`` and ``sessionId`` only on the 409 of a new session in a locked directory.
        "properties": {"error": _STRING, "code": _STRING, "sessionId": _STRING},
        "required": ["error"],
        "additionalProperties": False,
    },
)
CACO_TEXT = Envelope("caco-text", 400, lambda code, message: message, _STRING, mimetype="text/plain")


def _maria_shape(code: str, message: str) -> dict[str, Any]:
    if code in ("invalid_json", "invalid_request"):
        return {"error": {"code": 400, "message": "Invalid request body", "data": message}}
    return {"error": {"code": -1, "message": message}}


#: Maria's daemon: ``{"error": {"code": -1, "message"}}``; a body it cannot decode is
#: ``{"error": {"code": 400, "message": "Invalid request body", "data"}}`` (``internal/httpx/json.mbt``).
MARIA = Envelope(
    "maria",
    400,
    _maria_shape,
    {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "code": {"type": "integer"},
                    "message": _STRING,
                    "data": _STRING,
                    "metadata": {"type": "object"},
                },
                "required": ["code", "message"],
            },
            "task": {"type": "object"},
        },
        "required": ["error"],
    },
)

#: Path prefixes of each contract, for requests that matched no route.
_BY_PREFIX: list[tuple[str, Envelope]] = [
    ("/caco/", CACO),
    ("/v1/task", MARIA),
    ("/task", MARIA),
    ("/models", MARIA),
    ("/events", MARIA),
    ("/v1/", SKILL),
    ("/screenshots", SKILL),
    ("/healthz", SKILL),
    ("/readyz", SKILL),
    ("/api/", SCHMUX),
    ("/ws/", SCHMUX),
]


def envelope_for(request: Request, blueprints: dict[str, Envelope]) -> Envelope:
    """The envelope of the face that serves ``request`` (by blueprint, else by path)."""
    return envelope_of_route(request.blueprint, request.path, blueprints)


def envelope_of_route(blueprint: str | None, path: str, blueprints: dict[str, Envelope]) -> Envelope:
    """The envelope of the face whose blueprint is ``blueprint``; by ``path``'s contract when none is."""
    if blueprint and blueprint in blueprints:
        return blueprints[blueprint]
    for prefix, envelope in _BY_PREFIX:
        if path.startswith(prefix):
            return envelope
    return MISO

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
    mimetype: str = "application/json"

    def render(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        shaped = self.shape(code, message)
        body = shaped if isinstance(shaped, str) else json.dumps(shaped)
        return Response(body, status=status, mimetype=self.mimetype, headers=headers)


MISO = Envelope("miso", 400, lambda code, message: {"error": {"code": code, "message": message}})
SKILL = Envelope("skill", 422, lambda code, message: {"code": code, "message": message})


def _openai_shape(code: str, message: str) -> dict[str, Any]:
    kind = "invalid_request_error" if code in ("invalid_request", "invalid_json", "model_not_found") else "server_error"
    if code in ("unauthorized", "forbidden"):
        kind = "authentication_error" if code == "unauthorized" else "permission_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


#: OpenAI's envelope, so that OpenAI clients surface the message.
OPENAI = Envelope("openai", 400, _openai_shape)

#: schmux's JSON errors (``{"error": "..."}``), and its plain-text ones (``http.Error``).
SCHMUX = Envelope("schmux", 400, lambda code, message: {"error": message})
SCHMUX_TEXT = Envelope("schmux-text", 400, lambda code, message: message + "\n", mimetype="text/plain")

#: Path prefixes of each contract, for requests that matched no route.
_BY_PREFIX: list[tuple[str, Envelope]] = [
    ("/v1/", SKILL),
    ("/healthz", SKILL),
    ("/readyz", SKILL),
    ("/api/", SCHMUX),
    ("/ws/", SCHMUX),
]


def envelope_for(request: Request, blueprints: dict[str, Envelope]) -> Envelope:
    """The envelope of the face that serves ``request`` (by blueprint, else by path)."""
    if request.blueprint and request.blueprint in blueprints:
        return blueprints[request.blueprint]
    for prefix, envelope in _BY_PREFIX:
        if request.path.startswith(prefix):
            return envelope
    return MISO

"""Each contract's error envelope, and which one a request gets.

The Miso contract answers ``{"error": {"code", "message"}}`` and 400 for a bad body; the
skill-daemon contract answers ``{"code", "message"}`` and 422 for a body that does not
deserialize (its section 7). A face's blueprint names its envelope; requests that match no
route get the envelope of their path's contract.
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
    shape: Callable[[str, str], dict[str, Any]]

    def render(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        body = json.dumps(self.shape(code, message))
        return Response(body, status=status, mimetype="application/json", headers=headers)


MISO = Envelope("miso", 400, lambda code, message: {"error": {"code": code, "message": message}})
SKILL = Envelope("skill", 422, lambda code, message: {"code": code, "message": message})


def _openai_shape(code: str, message: str) -> dict[str, Any]:
    kind = "invalid_request_error" if code in ("invalid_request", "invalid_json", "model_not_found") else "server_error"
    if code in ("unauthorized", "forbidden"):
        kind = "authentication_error" if code == "unauthorized" else "permission_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


#: OpenAI's envelope, so that OpenAI clients surface the message.
OPENAI = Envelope("openai", 400, _openai_shape)

#: Path prefixes of each contract, for requests that matched no route.
_BY_PREFIX: list[tuple[str, Envelope]] = [("/v1/", SKILL), ("/healthz", SKILL), ("/readyz", SKILL)]


def envelope_for(request: Request, blueprints: dict[str, Envelope]) -> Envelope:
    """The envelope of the face that serves ``request`` (by blueprint, else by path)."""
    if request.blueprint and request.blueprint in blueprints:
        return blueprints[request.blueprint]
    for prefix, envelope in _BY_PREFIX:
        if request.path.startswith(prefix):
            return envelope
    return MISO

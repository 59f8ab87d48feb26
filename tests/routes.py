"""The app's routes as a test sees them: every rule, its view's declarations, a concrete path."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from miso_runtime.auth import Access
from miso_runtime.config import load_settings
from miso_runtime.runtime import build_runtime
from miso_runtime.server.app import create_app
from miso_runtime.server.endpoint import declared_access, declared_body, is_public

OPENAI_PATHS = frozenset({"/v1/chat/completions", "/v1/llm/chat-completions", "/v1/models"})


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    path: str
    access: Access | None
    public: bool
    body_model: type | None
    websocket: bool
    blueprint: str | None = None
    #: The name of the envelope the app gives the route's blueprint, where it gives one.
    blueprint_envelope: str | None = None

    @property
    def envelope(self) -> str:
        """The error envelope of this route's contract: miso, skill, openai, schmux, schmux-text, maria,
        caco or caco-text."""
        if self.blueprint_envelope in ("schmux-text", "caco-text"):
            return self.blueprint_envelope
        if self.blueprint == "maria":
            return "maria"
        if self.blueprint == "caco_file_raw":
            return "caco-text"
        if self.path.startswith("/caco/"):
            return "caco"
        if self.path in OPENAI_PATHS:
            return "openai"
        if self.path.startswith(("/v1/", "/screenshots/")) or self.path in ("/healthz", "/readyz"):
            return "skill"
        if self.path == "/api/config":
            return "schmux-text"
        if self.path.startswith(("/api/", "/ws/")):
            return "schmux"
        return "miso"

    def error_of(self, response) -> tuple[str | None, str]:
        """(code, message) of an error response, checking that it has exactly its envelope's shape.

        schmux's envelopes carry no code (``{"error": "..."}`` or plain text): the code is None.
        """
        if self.envelope in ("schmux-text", "caco-text"):
            assert response.headers["content-type"].startswith("text/plain"), response.headers
            return None, response.text.strip()
        assert response.headers["content-type"].startswith("application/json"), response.headers
        body = response.json()
        if self.envelope == "schmux":
            assert set(body) == {"error"} and isinstance(body["error"], str), body
            return None, body["error"]
        if self.envelope == "caco":
            # Caco's 409 CWD_LOCKED also names the code and the session holding the directory.
            assert set(body) <= {"error", "code", "sessionId"} and isinstance(body["error"], str), body
            return body.get("code"), body["error"]
        if self.envelope == "skill":
            assert set(body) == {"code", "message"}, body
            return body["code"], body["message"]
        if self.envelope == "maria":
            # Maria's code is a number (-1, or 400 for a body it cannot read): no stable code to return.
            assert set(body) <= {"error", "task"} and isinstance(body["error"]["code"], int), body
            assert set(body["error"]) <= {"code", "message", "data", "metadata"}, body
            detail = body["error"].get("data")  # what is wrong with a body Maria cannot read
            return None, body["error"]["message"] + (f": {detail}" if detail else "")
        assert set(body) == {"error"}, body
        error = body["error"]
        expected = {"code", "message"} if self.envelope == "miso" else {"code", "message", "type", "param"}
        assert set(error) == expected, body
        return error["code"], error["message"]


def app_routes(data_dir: Path) -> list[Route]:
    """Every (rule, method) the app serves, with placeholders filled with harmless values."""
    app = create_app(build_runtime(load_settings({"data_dir": data_dir, "auth_token": "unused"})))
    envelopes = app.extensions["miso.envelopes"]
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"placeholder-\1", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            routes.append(
                Route(
                    rule=rule.rule,
                    method=method,
                    path=path,
                    access=declared_access(view),
                    public=is_public(view),
                    body_model=declared_body(view),
                    websocket=bool(getattr(rule, "websocket", False)),
                    blueprint=rule.endpoint.rpartition(".")[0] or None,
                    blueprint_envelope=getattr(envelopes.get(rule.endpoint.rpartition(".")[0]), "name", None),
                )
            )
    return routes

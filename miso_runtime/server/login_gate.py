"""The door of the schmux dashboard's listener when GitHub login is on (``access_control.enabled``).

That listener is served with TLS and may listen beyond loopback, so it answers by schmux's rules
(research/schmux-rest.md section 1) before anything reaches the app or the build's files:

- ``/api/*`` and ``/auth/me``: an ``Origin`` that is not allowed is 403 ``Forbidden``; every
  answer carries schmux's CORS headers (with ``Access-Control-Allow-Credentials``); ``OPTIONS`` is
  200 with an empty body; then ``/api/*`` without a login is 401 ``Unauthorized``.
- ``/ws/*``: without a login 401 ``Unauthorized``; then the upgrade's origin must be allowed
  (``/ws/dashboard`` also takes none; ``/ws/terminal/``, ``/ws/provision/`` do not) or 403.
- ``/auth/login``, ``/auth/callback``, ``/auth/logout``: straight to their routes.
- the dashboard's files: without a login a redirect to ``/auth/login`` (302), and 401 under
  ``/assets/``.

A login is a valid ``schmux_auth`` cookie, or a token the runtime accepts (presented, or behind
the page's own session cookie): the runtime's scoped tokens keep working beside GitHub login. The
gate marks what it let through in the environ; the guard (``guard.py``) then skips its loopback
host and origin checks, which are the gate's here, and takes the session for the caller.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable

from werkzeug.wrappers import Request, Response

from .. import constants
from ..auth.github_login import GitHubLogin

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable], Iterable[bytes]]

ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = f"Content-Type, {constants.LOGIN_CSRF_HEADER}"
#: WebSockets whose upgrade must name an allowed origin; an empty one is refused (schmux's rule
#: for the terminals when login is on).
_ORIGIN_REQUIRED_WS = ("/ws/terminal/", "/ws/provision/")


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def _plain(status: int, text: str, headers: list[tuple[str, str]] | None = None) -> Response:
    response = Response(text + "\n", status=status, mimetype="text/plain")
    for name, value in headers or []:
        response.headers.add(name, value)
    return response


class LoginGate:
    """schmux's origin, CORS and login checks in front of one listener's WSGI app."""

    def __init__(self, login: GitHubLogin, runtime_token_ok: Callable[[Request], bool]) -> None:
        """``runtime_token_ok(request)``: whether the request carries a token the runtime accepts."""
        self._login = login
        self._runtime_token_ok = runtime_token_ok

    def __call__(self, environ: dict[str, Any], start_response: Callable, forward: WsgiApp) -> Iterable[bytes]:
        request = Request(environ)
        path = request.path
        session = self._login.session_of(request.cookies.get(constants.LOGIN_SESSION_COOKIE))
        environ[constants.LOGIN_GATE_ENVIRON] = True
        if session is not None:
            environ[constants.LOGIN_SESSION_ENVIRON] = session
        logged_in = session is not None or self._runtime_token_ok(request)
        origin = request.headers.get("Origin", "")
        port = int(environ.get("SERVER_PORT") or 0)

        if _under(path, "/api") or path == "/auth/me":
            if origin and not self._login.origin_allowed(origin, port):
                logger.info("refused origin %s for %s %s", origin, request.method, path)
                return _plain(403, "Forbidden")(environ, start_response)
            cors = self._cors_headers(origin)
            if request.method == "OPTIONS":
                return Response(b"", status=200, headers=cors)(environ, start_response)
            if _under(path, "/api") and not logged_in:
                return _plain(401, "Unauthorized", cors)(environ, start_response)
            return forward(environ, _adding(start_response, cors))
        if _under(path, "/ws"):
            if not logged_in:
                return _plain(401, "Unauthorized")(environ, start_response)
            origin_required = path.startswith(_ORIGIN_REQUIRED_WS)
            if (origin or origin_required) and not self._login.origin_allowed(origin, port):
                logger.info("refused the WebSocket origin %r for %s", origin, path)
                return _plain(403, "Forbidden")(environ, start_response)
            return forward(environ, start_response)
        if _under(path, "/auth"):
            return forward(environ, start_response)
        if logged_in or "token" in request.args:  # a runtime token opens the page's own session
            return forward(environ, start_response)
        if _under(path, "/assets"):
            return _plain(401, "Unauthorized")(environ, start_response)
        return Response(b"", status=302, headers={"Location": "/auth/login"})(environ, start_response)

    @staticmethod
    def _cors_headers(origin: str) -> list[tuple[str, str]]:
        headers = []
        if origin:
            headers += [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true")]
        return headers + [
            ("Access-Control-Allow-Methods", ALLOWED_METHODS),
            ("Access-Control-Allow-Headers", ALLOWED_HEADERS),
        ]


def _adding(start_response: Callable, headers: list[tuple[str, str]]) -> Callable:
    """``start_response`` with ``headers`` appended to whatever the app answers."""

    def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*response_headers, *headers], exc_info)

    return start

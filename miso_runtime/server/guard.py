"""The checks every request passes before its view runs.

In order: the ``Host`` header must name a loopback host (a page on another site that rebinds
its DNS name to 127.0.0.1 still sends its own name); a browser ``Origin`` must be allowed;
the body must fit the size limit; and the token must exist and carry a scope that the
route's declared access allows. Preflight ``OPTIONS`` requests get their CORS answer here.

The schmux dashboard's TLS listener with GitHub login on (``login_gate.py``) checks host, origin
and CORS itself, by schmux's rules, and marks its requests; for them the guard skips those
checks, and a verified login session stands for an admin caller on schmux's routes only.

A request the iroh worker bridged from a remote peer is authorised by that peer's registration
instead of a token (``remote_peers.py``), against the same access table.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request

from .. import constants
from ..auth import Principal, TokenScope, TokenService, allows
from ..config import Settings
from ..errors import MisoError
from .endpoint import declared_access, declared_max_body, is_public
from .remote_peers import check_peer, remote_peer

if TYPE_CHECKING:
    from ..iroh.service import IrohService

logger = logging.getLogger(__name__)

ALLOWED_HEADERS = "Authorization, Content-Type, x-miso-auth, Last-Event-ID"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def presented_token(req=None) -> str | None:
    """The token from ``x-miso-auth``, ``Authorization: Bearer`` or ``?token=``, in that order.

    ``req``: a werkzeug request outside Flask (the dashboard's login gate); default Flask's.
    """
    req = request if req is None else req
    header = req.headers.get("x-miso-auth")
    if header:
        return header.strip()
    authorization = req.headers.get("Authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return req.args.get("token") or None


def _login_principal() -> Principal | None:
    """The caller of a request the dashboard's login gate verified a GitHub session for.

    schmux gives a logged-in person the whole of its API and nothing else exists there, so the
    session counts as admin, on schmux's routes only (never the Miso, Maria or Caco faces).
    """
    session = request.environ.get(constants.LOGIN_SESSION_ENVIRON)
    if session is None or not (request.blueprint or "").startswith("schmux"):
        return None
    return Principal(f"github:{session.login}", TokenScope.ADMIN)


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[: host_header.find("]") + 1]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class RequestGuard:
    """Host, origin, size and token checks, installed as the app's first ``before_request``."""

    def __init__(self, settings: Settings, tokens: TokenService, remote: "IrohService | None" = None) -> None:
        self._tokens = tokens
        #: The iroh service: requests bridged from its tunnel are authorised by peer, not token.
        self._remote = remote
        self._max_body = settings.max_body_bytes
        self._origins = frozenset(origin.rstrip("/") for origin in settings.cors_origins)
        hosts = set(constants.LOOPBACK_HOSTS)
        if settings.host not in ("0.0.0.0", "::", ""):
            hosts.add(settings.host)
        self._hosts = frozenset(hosts)

    def install(self, app: Flask) -> None:
        app.before_request(self.check)
        app.after_request(self.add_cors_headers)

    def _origin_allowed(self, origin: str) -> bool:
        if origin.rstrip("/") in self._origins:
            return True
        # Same origin: a page served by this runtime itself.
        try:
            parts = urlsplit(origin)
            port = parts.port
        except ValueError:  # "http://[x" or a port past 65535: not an origin at all
            return False
        return parts.hostname in self._hosts and f"{parts.hostname}:{port}" == request.host

    def check(self) -> Response | None:
        gated = bool(request.environ.get(constants.LOGIN_GATE_ENVIRON))
        if not gated and _hostname(request.host) not in self._hosts:
            raise MisoError(403, "forbidden_host", f"requests must address a loopback host, not {request.host!r}")
        origin = request.headers.get("Origin")
        if not gated and origin is not None and not self._origin_allowed(origin):
            raise MisoError(403, "origin_not_allowed", f"origin {origin!r} is not in the allowed origins")
        if request.method == "OPTIONS":
            return self._preflight(origin)
        if request.url_rule is None:
            self._check_size(self._max_body)
            return None  # routing failed: the 404/405 handler answers
        view = current_app.view_functions[request.endpoint]
        self._check_size(declared_max_body(view, self._max_body))
        if is_public(view):
            return None
        access = declared_access(view)
        peer = remote_peer(self._remote, request)
        if peer is not None:
            check_peer(self._remote, peer, view, access)
            return None
        # On a page's own port (server/pages.py) its session cookie stands for the token that opened it.
        principal = self._tokens.authenticate(presented_token() or request.environ.get(constants.PAGE_TOKEN_ENVIRON))
        if principal is None:
            principal = _login_principal()
        if principal is None:
            raise MisoError(401, "unauthorized", "Invalid auth token")
        if access is None or not allows(principal.scope, access):
            raise MisoError(403, "forbidden", f"a {principal.scope} token cannot call {request.method} {request.path}")
        g.principal = principal
        return None

    def _check_size(self, limit: int) -> None:
        """413 for a body over ``limit`` bytes (declared, or met while reading a chunked body)."""
        if request.content_length is not None and request.content_length > limit:
            raise MisoError(413, "payload_too_large", f"request bodies are limited to {limit} bytes")
        request.max_content_length = limit

    def _preflight(self, origin: str | None) -> Response:
        response = Response(status=204)
        if origin is not None:
            response.headers["Access-Control-Allow-Methods"] = ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        return response

    def add_cors_headers(self, response: Response) -> Response:
        origin = request.headers.get("Origin")
        if request.environ.get(constants.LOGIN_GATE_ENVIRON):
            return response  # the login gate adds schmux's CORS headers
        if origin is not None and self._origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers.add("Vary", "Origin")
        return response

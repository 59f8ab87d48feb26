"""The users' own builds of schmux's, Maria's and Caco's web pages, each on a loopback port of its own.

Those pages call absolute paths on their own origin (``/api/...``, ``/assets/...``, ``/ws/...``,
``/v1/...``) with no base-URL setting, and send no token. So each build gets a listener of its
own on 127.0.0.1 in this process, serving the same Flask app: its API paths reach the same
routes as on the main port, and everything else is a file of the build.

- API paths (schmux ``/api``, ``/ws``; Maria ``/v1``; Caco ``/api``, ``/ws``, ``/caco``) go to the
  app. Caco's root ``/api/...`` and ``/ws`` are rewritten onto ``/caco/...`` first, where its
  routes live here (its paths collide with schmux's).
- Other paths: the file when the build has it, a 404 for a missing file under ``/assets/``,
  and ``index.html`` for anything else (the pages route in the browser: ``/sessions/abc``).
  A path that leaves the folder, directly or through a link, is refused.
- Login: opening any page path with ``?token=<a token the runtime accepts>`` opens a session
  and redirects to the same URL without the token; the cookie (``miso_page_<name>``, HttpOnly,
  SameSite=Strict) stands for that token on that page's port only. The guard
  (``guard.py``) checks it like a presented token, so the token's scope, revocation and expiry
  all apply. Sessions live in memory: a new start of the runtime ends them.
- GitHub login (``access_control.enabled``): the schmux dashboard's listener is served with TLS
  on ``network.bind_address`` and every request passes the login gate (``login_gate.py``) first;
  a valid ``schmux_auth`` cookie then opens the page as a page session does.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote, urlencode, urlsplit

from flask import Flask, current_app, has_app_context
from werkzeug.security import safe_join
from werkzeug.utils import send_file
from werkzeug.wrappers import Request, Response

from .. import constants
from ..auth import TokenService
from ..auth.github_login import GitHubLogin
from .guard import presented_token
from .login_gate import LoginGate

logger = logging.getLogger(__name__)

#: Types a browser insists on (a module script served as ``text/plain`` is refused), whatever
#: the machine's ``mime.types`` says; ``send_file`` adds ``charset=utf-8`` to the text ones.
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".txt": "text/plain",
}
#: ``Sec-Fetch-Site`` values under which a cookie counts for an API call: the page itself, or a
#: request the user typed. Another port of 127.0.0.1 is "same-site", and its requests carry the
#: SameSite=Strict cookie too; they get no access through it.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class PageKind:
    """What one contract's page calls: which paths are the API's, and where its routes live here."""

    name: str
    api_prefixes: tuple[str, ...]
    #: Where this contract's routes are mounted, when not at the root (Caco's ``/caco``).
    mount: str = ""

    def is_api(self, path: str) -> bool:
        return any(_under(path, prefix) for prefix in self.api_prefixes)

    def route_path(self, path: str) -> str:
        return path if not self.mount or _under(path, self.mount) else self.mount + path


PAGE_KINDS: dict[str, PageKind] = {
    # schmux's server: /api/*, /ws/* and its login's /auth/* are its routes, anything else is the dashboard.
    "schmux": PageKind("schmux", ("/api", "/ws", "/auth")),
    # Maria's web UI, built with VITE_API_BASE_URL=/v1: /v1/task*, /v1/events.
    "maria": PageKind("maria", ("/v1",)),
    # Caco's page calls /api/... and /ws at its origin's root; its routes here are under /caco.
    "caco": PageKind("caco", ("/api", "/ws", "/caco"), mount="/caco"),
}


def cookie_name(page: str) -> str:
    return constants.PAGE_COOKIE_PREFIX + page


class PageSessions:
    """Each page's session ids and the token behind each, in memory: a restart ends them all.

    The token itself is kept (not its scope) so that each request checks it again: a revoked
    or expired token ends its sessions at once.
    """

    def __init__(self, per_page: int = constants.PAGE_SESSIONS_MAX) -> None:
        self._per_page = per_page
        self._lock = threading.Lock()
        self._by_page: dict[str, OrderedDict[str, str]] = {}

    def open(self, page: str, token: str) -> str:
        session_id = secrets.token_urlsafe(constants.PAGE_SESSION_BYTES)
        with self._lock:
            sessions = self._by_page.setdefault(page, OrderedDict())
            sessions[session_id] = token
            while len(sessions) > self._per_page:
                sessions.popitem(last=False)
        return session_id

    def token(self, page: str, session_id: str | None) -> str | None:
        """The token behind ``session_id`` when that session was opened on ``page``."""
        if not session_id:
            return None
        with self._lock:
            return self._by_page.get(page, {}).get(session_id)


def _hostname(host_header: str) -> str | None:
    try:
        return urlsplit(f"//{host_header}").hostname
    except ValueError:
        return None


class PageSite:
    """The WSGI app of one page's port: its API paths to ``app``, the rest from its build folder."""

    def __init__(
        self,
        kind: PageKind,
        folder: Path,
        app: Flask,
        tokens: TokenService,
        sessions: PageSessions,
        login: GitHubLogin | None = None,
    ) -> None:
        """``login``: GitHub login, on for this page (schmux's only): its gate checks every request first."""
        self.kind = kind
        self.folder = Path(os.path.realpath(folder))
        self._app = app
        self._tokens = tokens
        self._sessions = sessions
        self._cookie = cookie_name(kind.name)
        self._hosts = {host.strip("[]") for host in constants.LOOPBACK_HOSTS}
        self._gate = LoginGate(login, self.runtime_token_ok) if login is not None and login.enabled else None

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if self._gate is not None:
            return self._gate(environ, start_response, self._serve)
        return self._serve(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if self.kind.is_api(path):
            return self._app(self._to_app(environ, path), start_response)
        return self._page(Request(environ))(environ, start_response)

    def runtime_token_ok(self, request: Request) -> bool:
        """Whether ``request`` carries a token the runtime accepts: presented, or behind this page's session."""
        token = presented_token(request)
        if token is None and request.headers.get("Sec-Fetch-Site", "same-origin") in _OWN_FETCH_SITES:
            token = self._sessions.token(self.kind.name, request.cookies.get(self._cookie))
        return self._tokens.authenticate(token) is not None

    # --- API calls -------------------------------------------------------------------------

    def _to_app(self, environ: dict[str, Any], path: str) -> dict[str, Any]:
        environ["PATH_INFO"] = self.kind.route_path(path)
        request = Request(environ)
        if request.headers.get("Sec-Fetch-Site", "same-origin") in _OWN_FETCH_SITES:
            token = self._sessions.token(self.kind.name, request.cookies.get(self._cookie))
            if token is not None:
                environ[constants.PAGE_TOKEN_ENVIRON] = token
        return environ

    # --- the page's own files --------------------------------------------------------------

    def _page(self, request: Request) -> Response:
        gated = bool(request.environ.get(constants.LOGIN_GATE_ENVIRON))  # the login gate checked it all
        if not gated and _hostname(request.host) not in self._hosts:
            return _text(403, f"requests must address a loopback host, not {request.host!r}\n")
        if request.method not in ("GET", "HEAD"):
            return _text(405, "the page's files are read with GET\n", {"Allow": "GET, HEAD"})
        if "token" in request.args:
            return self._login(request)
        token = self._sessions.token(self.kind.name, request.cookies.get(self._cookie))
        logged_in = request.environ.get(constants.LOGIN_SESSION_ENVIRON) is not None
        if not logged_in and self._tokens.authenticate(token) is None:
            return self._how_to_open(request, "This page needs a session with the runtime.")
        return self._file(request)

    def _login(self, request: Request) -> Response:
        token = request.args.get("token", "")
        if self._tokens.authenticate(token) is None:
            return self._how_to_open(request, "The runtime does not accept this token.")
        session_id = self._sessions.open(self.kind.name, token)
        rest = [(key, value) for key, value in request.args.items(multi=True) if key != "token"]
        # One leading slash: "//host" in Location would send the browser to another site.
        location = "/" + quote(request.path, safe="/:@!$&'()*+,;=-._~").lstrip("/")
        if rest:
            location += "?" + urlencode(rest)
        response = Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})
        response.headers["Referrer-Policy"] = "no-referrer"
        secure = bool(request.environ.get(constants.LOGIN_GATE_ENVIRON))  # served with TLS
        response.set_cookie(self._cookie, session_id, path="/", httponly=True, samesite="Strict", secure=secure)
        logger.info("opened a session for the %s page", self.kind.name)
        return response

    def _how_to_open(self, request: Request, reason: str) -> Response:
        origin = f"http://{request.host}/"
        text = (
            f"<!doctype html><meta charset=utf-8><title>Miso runtime: {self.kind.name}</title>"
            f"<p>{html.escape(reason)}</p><p>Open <code>{html.escape(origin)}?token=&lt;token&gt;</code> once, "
            "with the runtime's admin token (<code>miso-runtime token</code> prints it) or a token "
            "issued by <code>POST /v1/auth/tokens</code>; the page then keeps a session cookie.</p>\n"
        )
        return _text(401, text, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})

    def _file(self, request: Request) -> Response:
        relative = request.path.lstrip("/")
        if "\x00" in relative:  # no file has one; os.path would raise
            return _text(404, "not found\n")
        target = safe_join(str(self.folder), relative) if relative else str(self.folder / "index.html")
        real = os.path.realpath(target) if target is not None else None
        if real is None or os.path.commonpath([real, str(self.folder)]) != str(self.folder):
            return _text(404, "not found\n")
        if not os.path.isfile(real):
            if _under(request.path, "/assets"):
                return _text(404, "not found\n")
            real = str(self.folder / "index.html")
            if not os.path.isfile(real):
                return _text(404, f"the {self.kind.name} page's build has no index.html\n")
        suffix = os.path.splitext(real)[1].lower()
        mimetype = _TYPES.get(suffix) or mimetypes.guess_type(real)[0] or "application/octet-stream"
        try:
            response = send_file(real, request.environ, mimetype=mimetype, conditional=True, max_age=None)
        except OSError as exc:  # unreadable, or gone since the check
            logger.warning("cannot serve %s of the %s page: %s", real, self.kind.name, exc)
            return _text(404, "not found\n")
        del response.headers["Content-Disposition"]  # a page's file, not a download
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
        return response


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(text, status=status, mimetype="text/plain")
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@dataclass
class PageServer:
    """One page's listener: its name, the address to open, and the server."""

    name: str
    url: str
    server: Any


def start_pages(
    settings: Any, app: Flask, tokens: TokenService, make_server: Callable[[tuple[str, int], Any], Any]
) -> list[PageServer]:
    """Start a listener for each configured page; ``make_server(address, wsgi_app)`` builds one.

    With GitHub login on, schmux's is built ``make_server(address, wsgi_app, tls=(cert, key))``
    on ``network.bind_address``, behind the login gate. The addresses go into ``app.extensions``
    for ``/v1/status``. A port that cannot be bound stops the ones already started and raises
    (the runtime does not start half its pages).
    """
    sessions = PageSessions()
    started: list[PageServer] = []
    login = app.extensions["miso.runtime"].login
    try:
        for name, folder, port in settings.pages:
            if name == "schmux" and login.enabled:
                server, url = _start_login_dashboard(folder, port, app, tokens, sessions, login, make_server)
                started.append(PageServer(name, url, server))
                continue
            site = PageSite(PAGE_KINDS[name], folder, app, tokens, sessions)
            server = make_server((constants.PAGES_HOST, port), site)
            server.start()
            url = f"http://{constants.PAGES_HOST}:{server.server_port}/"
            started.append(PageServer(name, url, server))
            logger.info("serving the %s page from %s on %s (open it once with ?token=...)", name, folder, url)
    except BaseException:
        stop_pages(started)
        raise
    app.extensions[constants.PAGES_EXTENSION] = {page.name: page.url for page in started}
    return started


def _start_login_dashboard(
    folder: Path,
    port: int,
    app: Flask,
    tokens: TokenService,
    sessions: PageSessions,
    login: GitHubLogin,
    make_server: Callable,
) -> tuple[Any, str]:
    """schmux's dashboard with GitHub login: TLS, ``network.bind_address``, the login gate in front."""
    site = PageSite(PAGE_KINDS["schmux"], folder, app, tokens, sessions, login)
    host = login.config.bind_address
    server = make_server((host, port), site, tls=login.config.tls)
    server.start()
    shown = constants.PAGES_HOST if host in ("0.0.0.0", "::", "") else host
    url = f"https://{shown}:{server.server_port}/"
    logger.info("serving the schmux dashboard with GitHub login from %s on %s (bound to %s)", folder, url, host)
    return server, url


def close_pages(pages: list[PageServer]) -> None:
    """Stop accepting on every page's port (open streams end with the app's own shutdown)."""
    for page in pages:
        page.server.close()


def stop_pages(pages: list[PageServer], timeout: float = 1.0) -> None:
    for page in pages:
        page.server.stop(timeout=timeout)


def page_addresses() -> dict[str, str]:
    """``{name: url}`` of the pages this process serves (empty when none, or outside an app)."""
    if not has_app_context():
        return {}
    return dict(current_app.extensions.get(constants.PAGES_EXTENSION, {}))

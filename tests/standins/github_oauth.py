"""GitHub OAuth stand-in: the web flow's authorize and token endpoints and the API's ``/user``.

What it serves, laid out as a GitHub Enterprise server is (web at the root, REST API under
``/api/v3``), with the answers github.com gives:

- ``GET /login/oauth/authorize?client_id&redirect_uri&state&scope``: the signed-in user has
  already approved the app, so GitHub redirects at once (302) to ``redirect_uri`` with a fresh
  single-use ``code`` and the ``state`` it was given. An unknown ``client_id`` is GitHub's 404
  page; a ``redirect_uri`` outside the app's callback URL redirects with
  ``error=redirect_uri_mismatch`` instead of a code.
- ``POST /login/oauth/access_token`` (form-encoded): with ``Accept: application/json`` a JSON
  answer, otherwise GitHub's form-encoded one. Failures are 200s carrying ``error`` and
  ``error_description``: ``incorrect_client_credentials``, ``redirect_uri_mismatch``,
  ``bad_verification_code`` (unknown, used or expired code).
- ``GET /api/v3/user`` with ``Authorization: Bearer <token>`` (or ``token <token>``): the user, in
  GitHub's shape; 401 ``{"message": "Bad credentials", ...}`` otherwise.

Every request is recorded (``requests``), so a test can check what the runtime sent.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .server import Exchange, Script, StandInServer

_DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"
_ERRORS = {
    "incorrect_client_credentials": "The client_id and/or client_secret passed are incorrect.",
    "redirect_uri_mismatch": "The redirect_uri MUST match the registered callback URL for this application.",
    "bad_verification_code": "The code passed is incorrect or expired.",
}


@dataclass(frozen=True)
class GitHubAccount:
    """The person signed in at the stand-in, who approves the app."""

    id: int = 583231
    login: str = "octocat"
    name: str = "The Octocat"
    avatar_url: str = "https://avatars.githubusercontent.com/u/583231?v=4"


class GitHubOAuthStandIn(StandInServer):
    """An OAuth app (``client_id``, ``client_secret``, callback URL) and the account that approves it."""

    def __init__(
        self,
        client_id: str = "Iv1.standin0client",
        client_secret: str = "standin-client-secret",
        account: GitHubAccount | None = None,
    ) -> None:
        super().__init__(Script())
        self.client_id = client_id
        self.client_secret = client_secret
        self.account = account or GitHubAccount()
        #: The app's callback URL; None accepts any (a test sets it once it knows the runtime's URL).
        self.callback_url: str | None = None
        self._lock = threading.Lock()
        self._codes: dict[str, tuple[str, GitHubAccount]] = {}  # code -> (redirect_uri, account)
        self._tokens: dict[str, GitHubAccount] = {}

    @property
    def web_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v3"

    # -- routes ----------------------------------------------------------------------------

    def handle(self, exchange: Exchange, script: Script) -> None:
        request = exchange.request
        if request.method == "GET" and request.path == "/login/oauth/authorize":
            self._authorize(exchange)
        elif request.method == "POST" and request.path == "/login/oauth/access_token":
            self._access_token(exchange)
        elif request.method == "GET" and request.path == "/api/v3/user":
            self._user(exchange)
        else:
            exchange.send_json(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})

    def error_body(self, status: int, model: str) -> object:
        return {"message": "Server Error"}

    def _authorize(self, exchange: Exchange) -> None:
        query = {key: values[0] for key, values in parse_qs(exchange.request.query).items()}
        if query.get("client_id") != self.client_id:
            exchange.send_bytes(404, b"<!DOCTYPE html><title>Page not found</title>", "text/html; charset=utf-8")
            return
        redirect_uri = query.get("redirect_uri", "")
        answer: dict[str, str]
        if not self._callback_ok(redirect_uri):
            answer = {"error": "redirect_uri_mismatch", "error_description": _ERRORS["redirect_uri_mismatch"]}
            redirect_uri = self.callback_url or redirect_uri
        else:
            code = secrets.token_hex(10)
            with self._lock:
                self._codes[code] = (redirect_uri, self.account)
            answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        exchange.send_bytes(302, b"", "text/html; charset=utf-8", {"Location": f"{redirect_uri}?{urlencode(answer)}"})

    def _access_token(self, exchange: Exchange) -> None:
        request = exchange.request
        form = {key: values[0] for key, values in parse_qs(request.body.decode("utf-8", "replace")).items()}
        wants_json = "application/json" in request.headers.get("accept", "")
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            self._token_answer(exchange, wants_json, self._error("incorrect_client_credentials"))
            return
        with self._lock:
            issued = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if issued is None:
            self._token_answer(exchange, wants_json, self._error("bad_verification_code"))
            return
        redirect_uri, account = issued
        if form.get("redirect_uri") and form["redirect_uri"] != redirect_uri:
            self._token_answer(exchange, wants_json, self._error("redirect_uri_mismatch"))
            return
        token = "gho_" + secrets.token_urlsafe(27)
        with self._lock:
            self._tokens[token] = account
        self._token_answer(exchange, wants_json, {"access_token": token, "token_type": "bearer", "scope": "read:user"})

    def _user(self, exchange: Exchange) -> None:
        authorization = exchange.request.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        with self._lock:
            account = self._tokens.get(token.strip()) if scheme.lower() in ("bearer", "token") else None
        if account is None:
            exchange.send_json(
                401,
                {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"},
            )
            return
        exchange.send_json(
            200,
            {
                "login": account.login,
                "id": account.id,
                "node_id": "MDQ6VXNlcjU4MzIzMQ==",
                "avatar_url": account.avatar_url,
                "html_url": f"{self.web_url}/{account.login}",
                "type": "User",
                "site_admin": False,
                "name": account.name,
                "company": None,
                "blog": "",
                "public_repos": 8,
                "followers": 20,
                "following": 9,
                "created_at": "2011-01-25T18:44:36Z",
            },
        )

    # -- helpers ---------------------------------------------------------------------------

    def _callback_ok(self, redirect_uri: str) -> bool:
        """GitHub's rule: the redirect URI must be the callback URL or a path beneath it, same host and port."""
        if self.callback_url is None:
            return True
        registered, given = urlsplit(self.callback_url), urlsplit(redirect_uri)
        return (given.scheme, given.netloc) == (registered.scheme, registered.netloc) and given.path.startswith(
            registered.path
        )

    @staticmethod
    def _error(name: str) -> dict[str, str]:
        return {"error": name, "error_description": _ERRORS[name], "error_uri": f"{_DOCS}#{name.replace('_', '-')}"}

    @staticmethod
    def _token_answer(exchange: Exchange, wants_json: bool, body: dict[str, Any]) -> None:
        if wants_json:
            exchange.send_json(200, body)
        else:
            exchange.send_bytes(200, urlencode(body).encode(), "application/x-www-form-urlencoded; charset=utf-8")

"""Logging a person into the schmux dashboard with GitHub OAuth: signed sessions, states, the client.

Why a signed cookie and no session table: schmux's dashboard keeps who is logged in in the
``schmux_auth`` cookie itself, ``base64(JSON) "." base64(HMAC-SHA256(key, JSON))`` (standard
base64 without padding), so any process holding the key can check it and a restart logs nobody
out. The key is ``auth.session_secret`` of the secrets file. A cookie whose signature does not
match, whose JSON is not a session, or whose ``expires_at`` has passed counts as no login.

The OAuth client speaks GitHub's web flow: the browser is sent to ``/login/oauth/authorize``
with a random state (also kept in a cookie, so a callback that did not start here is refused),
the code it comes back with is exchanged at ``/login/oauth/access_token`` (form-encoded, JSON
answer), and the user is read from ``<api>/user``. Both base URLs are settings, for GitHub
Enterprise and for tests.

Nothing here imports Flask or gevent; the routes are ``server/faces/schmux_auth.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable
from urllib.parse import urlencode, urlsplit

import httpx

from .. import constants
from .login_config import LoginConfig

logger = logging.getLogger(__name__)


# --- encoding ---------------------------------------------------------------------------------


def b64raw(data: bytes) -> str:
    """Standard base64 without ``=`` padding (Go's ``RawStdEncoding``), as schmux's cookies use it."""
    return base64.b64encode(data).decode("ascii").rstrip("=")


def from_b64raw(text: str) -> bytes:
    """The bytes of unpadded standard base64; ValueError for anything else (padding included)."""
    if "=" in text or len(text) % 4 == 1:
        raise ValueError("not base64 without padding")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 without padding") from None


def random_token() -> str:
    """A fresh OAuth state or CSRF token: random bytes, base64 without padding."""
    return b64raw(secrets.token_bytes(constants.LOGIN_RANDOM_BYTES))


def same_secret(presented: str | None, expected: str | None) -> bool:
    """Whether two secrets match (both non-empty), in time that does not depend on where they differ."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


# --- sessions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginSession:
    """Who is logged in and until when (unix seconds): the JSON inside ``schmux_auth``, and ``/auth/me``."""

    github_id: int
    login: str
    name: str
    avatar_url: str
    expires_at: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def sign_session(key: bytes, session: LoginSession) -> str:
    """The ``schmux_auth`` cookie value of ``session``."""
    payload = json.dumps(session.as_json(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signature = hmac.new(key, payload, hashlib.sha256).digest()
    return f"{b64raw(payload)}.{b64raw(signature)}"


def verify_session(key: bytes, value: str | None, now_s: float) -> LoginSession | None:
    """The session a cookie value carries, or None when it is absent, forged, malformed or expired."""
    if not value or not key:
        return None
    encoded_payload, dot, encoded_signature = value.partition(".")
    if not dot:
        return None
    try:
        payload = from_b64raw(encoded_payload)
        signature = from_b64raw(encoded_signature)
    except ValueError:
        return None
    if not hmac.compare_digest(signature, hmac.new(key, payload, hashlib.sha256).digest()):
        return None
    try:
        fields = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    session = _session_from(fields)
    if session is None or session.expires_at <= now_s:
        return None
    return session


def _session_from(fields: Any) -> LoginSession | None:
    """A signed payload is ours, but check its shape anyway: a key shared with an older schmux may sign others."""
    if not isinstance(fields, dict):
        return None
    number_fields = ("github_id", "expires_at")
    text_fields = ("login", "name", "avatar_url")
    if not all(type(fields.get(name)) is int for name in number_fields):
        return None
    if not all(isinstance(fields.get(name, ""), str) for name in text_fields):
        return None
    return LoginSession(
        github_id=fields["github_id"],
        login=fields.get("login", ""),
        name=fields.get("name", ""),
        avatar_url=fields.get("avatar_url", ""),
        expires_at=fields["expires_at"],
    )


# --- the OAuth client -------------------------------------------------------------------------


class OAuthError(Exception):
    """A step of the OAuth flow failed; the message says why, without any secret."""


@dataclass(frozen=True)
class GitHubUser:
    id: int
    login: str
    name: str
    avatar_url: str


class GitHubOAuth:
    """GitHub's OAuth web flow and its user endpoint, at configurable base URLs."""

    def __init__(self, web_url: str, api_url: str, timeout_s: float = constants.LOGIN_HTTP_TIMEOUT_S) -> None:
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")
        self._timeout = httpx.Timeout(timeout_s)

    def authorize_url(self, client_id: str, redirect_uri: str, state: str) -> str:
        query = urlencode(
            {"client_id": client_id, "redirect_uri": redirect_uri, "state": state, "scope": constants.LOGIN_OAUTH_SCOPE}
        )
        return f"{self.web_url}/login/oauth/authorize?{query}"

    def exchange(self, client_id: str, client_secret: str, code: str, redirect_uri: str, state: str) -> str:
        """The access token for ``code``; OAuthError when GitHub refuses or cannot be reached."""
        form = {
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
            "state": state,
        }
        url = f"{self.web_url}/login/oauth/access_token"
        try:
            answer = httpx.post(url, data=form, headers={"Accept": "application/json"}, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise OAuthError(f"POST {url}: {exc}") from None
        try:
            body = answer.json()
        except ValueError:
            raise OAuthError(f"the token answer (HTTP {answer.status_code}) is not JSON") from None
        if not isinstance(body, dict):
            raise OAuthError("the token answer is not a JSON object")
        if body.get("error"):
            raise OAuthError(f"oauth error: {body.get('error_description') or body['error']}")
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise OAuthError("missing access_token")
        return token

    def user(self, access_token: str) -> GitHubUser:
        """The user the token belongs to; OAuthError when the API refuses or answers something else."""
        url = f"{self.api_url}/user"
        headers = {
            "Accept": constants.GITHUB_ACCEPT,
            "Authorization": f"Bearer {access_token}",
            "User-Agent": constants.GITHUB_USER_AGENT,
        }
        try:
            answer = httpx.get(url, headers=headers, timeout=self._timeout)
        except httpx.HTTPError as exc:
            raise OAuthError(f"GET {url}: {exc}") from None
        if answer.status_code >= 300:
            raise OAuthError(f"github api error: {answer.text.strip()[: constants.GITHUB_ERROR_BODY_CHARS]}")
        try:
            body = answer.json()
        except ValueError:
            raise OAuthError("the user answer is not JSON") from None
        if not isinstance(body, dict):
            raise OAuthError("invalid GitHub user response")
        user_id, login = body.get("id"), body.get("login")
        if type(user_id) is not int or not user_id or not isinstance(login, str) or not login:
            raise OAuthError("invalid GitHub user response")
        name = body.get("name")
        avatar = body.get("avatar_url")
        return GitHubUser(
            user_id, login, name if isinstance(name, str) else "", avatar if isinstance(avatar, str) else ""
        )


# --- the login service --------------------------------------------------------------------------


class LoginError(Exception):
    """A login step the route answers with ``status`` and ``message`` (plain text, as schmux)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class IssuedLogin:
    """What a finished login sets: the signed session cookie, the CSRF cookie, and their lifetime."""

    session_cookie: str
    csrf_token: str
    max_age_s: int
    session: LoginSession


class GitHubLogin:
    """The dashboard's login, as configured when the runtime started (``LoginConfig``).

    The config is a snapshot: turning access control on or off, or changing the TLS files or the
    public URL, takes a restart, because the dashboard's listener is bound with them.
    """

    def __init__(self, config: LoginConfig, oauth: GitHubOAuth, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.oauth = oauth
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def cookie_secure(self) -> bool:
        """Cookies are ``Secure`` when the public URL is https (schmux's rule)."""
        return urlsplit(self.config.public_base_url).scheme == "https"

    def redirect_uri(self) -> str:
        base = self.config.public_base_url.rstrip("/")
        if not base:
            raise LoginError(500, "public_base_url is required")
        return base + "/auth/callback"

    def begin(self) -> tuple[str, str]:
        """``(GitHub authorize URL, state)``; the state goes into its cookie."""
        if not self.config.client_id.strip():
            raise LoginError(500, "GitHub auth not configured")
        state = random_token()
        return self.oauth.authorize_url(self.config.client_id, self.redirect_uri(), state), state

    def finish(self, code: str, state: str) -> IssuedLogin:
        """Exchange ``code`` (its state already checked against the cookie) and sign the session."""
        try:
            token = self.oauth.exchange(
                self.config.client_id, self.config.client_secret, code, self.redirect_uri(), state
            )
        except OAuthError as exc:
            raise LoginError(400, f"OAuth exchange failed: {exc}") from None
        try:
            user = self.oauth.user(token)
        except OAuthError as exc:
            raise LoginError(400, f"Failed to fetch GitHub user: {exc}") from None
        if not self.config.session_key:
            raise LoginError(500, "Failed to set session: session secret missing")
        ttl_s = self.config.session_ttl_s
        session = LoginSession(user.id, user.login, user.name, user.avatar_url, int(self._clock()) + ttl_s)
        logger.info("GitHub user %s (id %d) logged into the schmux dashboard", user.login, user.id)
        return IssuedLogin(sign_session(self.config.session_key, session), random_token(), ttl_s, session)

    def session_of(self, cookie_value: str | None) -> LoginSession | None:
        """The valid session a ``schmux_auth`` cookie carries (None when auth is off)."""
        if not self.enabled:
            return None
        return verify_session(self.config.session_key, cookie_value, self._clock())

    def origin_allowed(self, origin: str, port: int) -> bool:
        """schmux's origin rule with login on: the public URL's origin, ``https://localhost`` or
        ``https://127.0.0.1`` on the dashboard's ``port``, or any origin on a network bind."""
        if not origin:
            return False
        public = urlsplit(self.config.public_base_url)
        if public.scheme and public.netloc and origin == f"{public.scheme}://{public.netloc}":
            return True
        if origin in (f"https://localhost:{port}", f"https://127.0.0.1:{port}"):
            return True
        return self.config.network_access

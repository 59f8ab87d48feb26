"""schmux's GitHub login routes: ``/auth/login``, ``/auth/callback``, ``/auth/logout``, ``/auth/me``.

The flow, its cookies and its plain-text answers are schmux's (research/schmux-rest.md section 10);
the signing, the state and the OAuth calls live in ``auth/github_login.py``. The routes are public
as far as the runtime's tokens go: they are how a person without a token gets in. ``/auth/me``
reads the session cookie itself. Logout takes no login, only the CSRF header that repeats the
``schmux_csrf`` cookie, so another site cannot log a person out.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect, request
from werkzeug.exceptions import MethodNotAllowed

from ... import constants
from ...auth.github_login import GitHubLogin, IssuedLogin, LoginError, same_secret
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_auth", __name__)
TAGS = ("schmux",)


def _login() -> GitHubLogin:
    return runtime().login


def _enabled_login() -> GitHubLogin:
    login = _login()
    if not login.enabled:
        raise MisoError(404, "auth_disabled", "Auth disabled")
    return login


def _fail(error: LoginError) -> MisoError:
    return MisoError(error.status, "login_failed", error.message)


def _set(response: Response, name: str, value: str, max_age: int, *, httponly: bool, samesite: str) -> None:
    """One of the login's cookies: whole site, ``Secure`` when the public URL is https; ``max_age`` 0 expires it."""
    secure = _login().cookie_secure
    if max_age <= 0:
        response.set_cookie(
            name, "", max_age=0, expires=0, path="/", httponly=httponly, samesite=samesite, secure=secure
        )
    else:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=httponly, samesite=samesite, secure=secure)


def _set_session(response: Response, issued: IssuedLogin) -> None:
    ttl = issued.max_age_s
    _set(response, constants.LOGIN_SESSION_COOKIE, issued.session_cookie, ttl, httponly=True, samesite="Lax")
    _set(response, constants.LOGIN_CSRF_COOKIE, issued.csrf_token, ttl, httponly=False, samesite="Strict")


@blueprint.before_app_request
def _wrong_method() -> Response | None:
    """schmux's plain-text 405 for a logout that is not a POST (Flask's would be in another shape)."""
    if request.path == "/auth/logout" and isinstance(request.routing_exception, MethodNotAllowed):
        return Response("Method not allowed\n", status=405, mimetype="text/plain", headers={"Allow": "POST"})
    return None


@blueprint.get("/auth/login")
@endpoint(public=True, tags=TAGS)
def login():
    """Send the browser to GitHub to authorize, with a fresh state also kept in ``schmux_oauth_state``."""
    service = _enabled_login()
    try:
        url, state = service.begin()
    except LoginError as exc:
        raise _fail(exc) from None
    response = redirect(url, 302)
    _set(response, constants.LOGIN_STATE_COOKIE, state, constants.LOGIN_STATE_MAX_AGE_S, httponly=True, samesite="Lax")
    return response


@blueprint.get("/auth/callback")
@endpoint(public=True, tags=TAGS)
def callback():
    """GitHub's way back: check the state, exchange the code, read the user, set the session; then ``/``."""
    service = _enabled_login()
    state, code = request.args.get("state", ""), request.args.get("code", "")
    if not state or not code:
        raise MisoError(400, "invalid_request", "Missing OAuth parameters")
    if not same_secret(request.cookies.get(constants.LOGIN_STATE_COOKIE), state):
        raise MisoError(400, "invalid_state", "Invalid OAuth state")
    try:
        issued = service.finish(code, state)
    except LoginError as exc:
        raise _fail(exc) from None
    response = redirect("/", 302)
    _set_session(response, issued)
    _set(response, constants.LOGIN_STATE_COOKIE, "", 0, httponly=True, samesite="Lax")
    return response


@blueprint.post("/auth/logout")
@endpoint(public=True, tags=TAGS)
def logout():
    """Expire the session and CSRF cookies; 403 ``Forbidden`` unless ``X-CSRF-Token`` repeats the CSRF cookie."""
    presented = request.headers.get(constants.LOGIN_CSRF_HEADER, "").strip()
    expected = (request.cookies.get(constants.LOGIN_CSRF_COOKIE) or "").strip()
    if not same_secret(presented, expected):
        raise MisoError(403, "forbidden", "Forbidden")
    response = jsonify(status="ok")
    _set(response, constants.LOGIN_SESSION_COOKIE, "", 0, httponly=True, samesite="Lax")
    _set(response, constants.LOGIN_CSRF_COOKIE, "", 0, httponly=False, samesite="Strict")
    return response


@blueprint.get("/auth/me")
@endpoint(public=True, tags=TAGS)
def me():
    """Who the ``schmux_auth`` cookie says is logged in, and until when (``expires_at``, unix seconds)."""
    service = _enabled_login()
    session = service.session_of(request.cookies.get(constants.LOGIN_SESSION_COOKIE))
    if session is None:
        raise MisoError(401, "unauthorized", "Unauthorized")
    return jsonify(session.as_json())

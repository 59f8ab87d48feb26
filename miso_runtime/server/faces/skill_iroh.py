"""skill-daemon section 4.12: remote access through the iroh tunnel (``/v1/iroh/*``).

The daemon's envelope for these routes: every answer is its object with ``"ok": true`` added,
and a failure of the request itself (an unknown id, a wrong code, the tunnel offline, a field
left out) is a 200 ``{"ok": false, "error": "..."}``, which its frontend turns into an error.
The token checks come first and keep their 401/403 in the skill envelope; a body that is not
JSON, or a field of the wrong type, is a 422 as on every skill route.

Reads (status, credentials list, clients, groups) need a ``read_only`` token; everything that
changes credentials or clients, and the QR codes (they hold TOTP secrets), needs ``admin``.
``POST /v1/iroh/clients/register`` is also open to a tunnel peer that has not registered yet.
"""

from __future__ import annotations

from typing import Any, Callable

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from ... import constants
from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from ..remote_peers import current_peer, open_to_unregistered_peers
from . import runtime

blueprint = Blueprint("skill_iroh", __name__)
TAGS = ("skill", "iroh")


def _name() -> Any:
    return Field(default=None, max_length=constants.IROH_NAME_MAX_CHARS)


def _id() -> Any:
    return Field(default=None, max_length=constants.IROH_ENDPOINT_ID_MAX_CHARS)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PhoneInviteBody(_Body):
    """``{totp_id}`` to reuse a live credential, or ``{name}`` to create one."""

    totp_id: str | None = _id()
    name: str | None = _name()


class TotpCreateBody(_Body):
    name: str | None = _name()


class RegisterBody(_Body):
    """``endpoint_id`` and ``otp`` are required (left out: ``{"ok": false}``, as the daemon answers)."""

    endpoint_id: str | None = _id()
    otp: str | None = Field(default=None, max_length=constants.IROH_OTP_MAX_CHARS)
    totp_id: str | None = _id()
    name: str | None = _name()
    scope: str | None = Field(default=None, max_length=20, description="read, full or custom (default read)")


class ScopeBody(_Body):
    scope: str | None = Field(default=None, max_length=20, description="read, full or custom")
    groups: list[str] | None = Field(default=None, max_length=100)
    allow: list[str] | None = Field(default=None, max_length=500)
    deny: list[str] | None = Field(default=None, max_length=500)


def _answer(work: Callable[[], dict[str, Any]]) -> Response:
    """The daemon's envelope: ``{..., "ok": true}``, or 200 ``{"ok": false, "error"}``."""
    try:
        result = work()
    except MisoError as error:
        if error.status >= 500:
            raise
        return jsonify({"ok": False, "error": error.message})
    return jsonify({**result, "ok": True})


def _required(value: str | None, name: str, kind: str = "string") -> str:
    if value is None:
        raise MisoError(400, "invalid_request", f'missing required field: "{name}" ({kind})')
    return value


@blueprint.get("/v1/iroh/info")
@endpoint(Access.READ, tags=TAGS)
def iroh_info():
    """Whether the tunnel is up, where it can be reached, and how many credentials and clients exist."""
    return _answer(runtime().iroh.info)


@blueprint.post("/v1/iroh/phone-invite")
@endpoint(Access.ADMIN, body=PhoneInviteBody, tags=TAGS)
def iroh_phone_invite(body: PhoneInviteBody):
    """One QR code with the endpoint id, relay, and a TOTP credential's secret (the tunnel must be online)."""
    return _answer(lambda: runtime().iroh.phone_invite(body.totp_id, body.name))


@blueprint.get("/v1/iroh/totp")
@endpoint(Access.READ, tags=TAGS)
def iroh_totp_list():
    """Every TOTP credential, newest first (never their secrets)."""
    return _answer(lambda: {"totp": runtime().iroh.store.list_totp()})


@blueprint.post("/v1/iroh/totp")
@endpoint(Access.ADMIN, body=TotpCreateBody, tags=TAGS)
def iroh_totp_create(body: TotpCreateBody):
    """A new credential, its ``otpauth://`` URL and that URL's QR code for an authenticator app."""
    return _answer(lambda: runtime().iroh.create_totp(_required(body.name, "name")))


@blueprint.get("/v1/iroh/totp/<totp_id>/qr")
@endpoint(Access.ADMIN, tags=TAGS)
def iroh_totp_qr(totp_id: str):
    """The credential's ``otpauth://`` URL and QR code again (admin: they hold the secret)."""
    return _answer(lambda: runtime().iroh.totp_qr(totp_id))


@blueprint.post("/v1/iroh/totp/<totp_id>/revoke")
@endpoint(Access.ADMIN, tags=TAGS)
def iroh_totp_revoke(totp_id: str):
    """Revoke a credential and every client registered with it (their connections are closed)."""
    return _answer(lambda: runtime().iroh.revoke_totp(totp_id))


@blueprint.get("/v1/iroh/scope-groups")
@endpoint(Access.READ, tags=TAGS)
def iroh_scope_groups():
    """The command groups a ``custom`` scope chooses from, and what ``read`` and ``full`` mean."""
    return _answer(runtime().iroh.scope_groups)


@blueprint.get("/v1/iroh/clients")
@endpoint(Access.READ, tags=TAGS)
def iroh_clients_list():
    """Every registered client, newest first, revoked ones included."""
    return _answer(lambda: {"clients": runtime().iroh.store.list_clients()})


@blueprint.post("/v1/iroh/clients/register")
@open_to_unregistered_peers
@endpoint(Access.ADMIN, body=RegisterBody, tags=TAGS)
def iroh_client_register(body: RegisterBody):
    """Register an endpoint id with a fresh TOTP code (a tunnel peer registers only itself)."""

    def register() -> dict[str, Any]:
        return runtime().iroh.register_client(
            _required(body.endpoint_id, "endpoint_id"),
            _required(body.otp, "otp"),
            body.totp_id,
            body.name,
            body.scope,
            peer=current_peer(),
        )

    return _answer(register)


@blueprint.post("/v1/iroh/clients/<client_id>/revoke")
@endpoint(Access.ADMIN, tags=TAGS)
def iroh_client_revoke(client_id: str):
    """Revoke a client: its open connection is closed and its requests are refused from now on."""
    return _answer(lambda: runtime().iroh.revoke_client(client_id))


@blueprint.post("/v1/iroh/clients/<client_id>/scope")
@endpoint(Access.ADMIN, body=ScopeBody, tags=TAGS)
def iroh_client_set_scope(client_id: str, body: ScopeBody):
    """Set a client's scope (and a custom scope's groups, allow and deny lists)."""
    return _answer(
        lambda: runtime().iroh.set_scope(
            client_id, _required(body.scope, "scope", "string: read|full|custom"), body.groups, body.allow, body.deny
        )
    )


@blueprint.get("/v1/iroh/clients/<client_id>/permissions")
@endpoint(Access.READ, tags=TAGS)
def iroh_client_permissions(client_id: str):
    """Every group and command, and whether this client's scope allows it."""
    return _answer(lambda: runtime().iroh.permissions(client_id))

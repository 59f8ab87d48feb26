"""skill-daemon section 1: scoped tokens, and the public ``/healthz`` and ``/readyz`` probes."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ...store.tokens import TokenRecord
from ..endpoint import endpoint
from . import runtime
from .skill_models import CreatedToken, CreateTokenBody, OkResponse, TokenIdBody, TokenInfo, TokenList

blueprint = Blueprint("skill_auth", __name__)


def _info(record: TokenRecord) -> dict:
    expired = runtime().tokens.is_expired(record)
    return TokenInfo(
        id=record.id,
        name=record.name,
        acl=record.acl,
        created_at=record.created_at_ms,
        expires_at=record.expires_at_ms,
        revoked=record.revoked_at_ms is not None,
        revoked_at=record.revoked_at_ms,
        expired=expired,
    ).model_dump()


@blueprint.get("/healthz")
@endpoint(public=True, response=OkResponse, tags=("skill",))
def healthz():
    """Liveness probe."""
    return jsonify(ok=True)


@blueprint.get("/readyz")
@endpoint(public=True, response=OkResponse, tags=("skill",))
def readyz():
    """Readiness probe: true once the store is open and the routes are served."""
    return jsonify(ok=True)


@blueprint.get("/v1/auth/tokens")
@endpoint(Access.ADMIN, response=TokenList, tags=("skill", "auth"))
def list_tokens():
    """Issued tokens (never their secret values)."""
    return jsonify(tokens=[_info(record) for record in runtime().tokens.list()])


@blueprint.post("/v1/auth/tokens")
@endpoint(Access.ADMIN, body=CreateTokenBody, response=CreatedToken, status=201, tags=("skill", "auth"))
def create_token(body: CreateTokenBody):
    """Issue a token with a scope and an expiry; its secret is returned only here."""
    issued = runtime().tokens.issue(body.name, body.acl, body.expiry)
    return jsonify({**_info(issued.record), "token": issued.token}), 201


@blueprint.post("/v1/auth/tokens/revoke")
@endpoint(Access.ADMIN, body=TokenIdBody, response=OkResponse, tags=("skill", "auth"))
def revoke_token(body: TokenIdBody):
    """Revoke a token: it stays listed, and is refused from now on."""
    runtime().tokens.revoke(body.id)
    return jsonify(ok=True)


@blueprint.post("/v1/auth/tokens/delete")
@endpoint(Access.ADMIN, body=TokenIdBody, response=OkResponse, tags=("skill", "auth"))
def delete_token(body: TokenIdBody):
    """Delete a token: refused from now on, and gone from the list."""
    runtime().tokens.delete(body.id)
    return jsonify(ok=True)

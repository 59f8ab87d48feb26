"""Request and response bodies of the skill-daemon contract (``shared/seeds/002``) built so far."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ...auth import TokenScope
from ...fields import Identifier

Expiry = Literal["hour", "day", "week", "month", "never"]


class OkResponse(BaseModel):
    ok: bool


class CreateTokenBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=100)
    acl: TokenScope
    expiry: Expiry = "never"


class TokenIdBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Identifier


class TokenInfo(BaseModel):
    """A token as listed: never its secret value."""

    id: str
    name: str
    acl: TokenScope
    created_at: int = Field(description="UTC epoch ms")
    expires_at: int | None = Field(description="UTC epoch ms; null for never")
    revoked: bool
    revoked_at: int | None = Field(description="UTC epoch ms")
    expired: bool


class TokenList(BaseModel):
    tokens: list[TokenInfo]


class CreatedToken(TokenInfo):
    token: str = Field(description="the secret; shown only in this response")

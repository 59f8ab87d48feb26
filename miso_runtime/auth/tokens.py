"""The token service: the admin token, issued scoped tokens, and checking a presented token.

Only SHA-256 hashes of tokens are stored or kept in memory; a presented token is hashed and
compared with :func:`hmac.compare_digest`, so the comparison takes the same time whatever the
presented value is. Issued tokens are cached in memory (this process is their only writer)
so that checking a request costs no SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Callable

from .. import constants
from ..errors import MisoError
from ..store.conversations import now_ms
from ..store.tokens import TokenRecord, TokenRepository
from .scopes import TokenScope

logger = logging.getLogger(__name__)

ADMIN_TOKEN_ID = "admin"


class AdminTokenSource(StrEnum):
    ENVIRONMENT = "environment"
    GENERATED = "generated"
    FILE = "file"


def new_token() -> str:
    """A fresh random token, recognisable by its prefix."""
    return constants.TOKEN_PREFIX + secrets.token_urlsafe(constants.TOKEN_BYTES)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_admin_token(configured: str | None, data_dir: Path) -> tuple[str, AdminTokenSource]:
    """The admin token: the configured one, else the one in the data dir's 0600 file, else a new one.

    A generated token is written to ``auth.token`` with mode 0600 so that local tools run by
    the same user can read it and nobody else can.
    """
    if configured:
        return configured, AdminTokenSource.ENVIRONMENT
    path = data_dir / constants.ADMIN_TOKEN_FILE_NAME
    if path.is_file():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            os.chmod(path, 0o600)
            return stored, AdminTokenSource.FILE
    token = new_token()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    logger.info("generated an admin token in %s", path)
    return token, AdminTokenSource.GENERATED


@dataclass(frozen=True)
class Principal:
    """The caller behind a request: which token, and its scope."""

    token_id: str
    scope: TokenScope


@dataclass(frozen=True)
class IssuedToken:
    """A newly issued token: the only moment its secret value is known."""

    record: TokenRecord
    token: str


class TokenService:
    """Checks presented tokens and manages issued ones."""

    def __init__(self, admin_token: str, repository: TokenRepository, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._admin_hash = hash_token(admin_token).encode()
        self._repository = repository
        self._lock = threading.Lock()
        self._by_hash: dict[str, TokenRecord] = {}
        self._reload()

    def _reload(self) -> None:
        with self._lock:
            self._by_hash = {record.token_hash: record for record in self._repository.all()}

    def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a presented token, or None when it is missing, unknown, revoked or expired."""
        if not presented:
            return None
        digest = hash_token(presented)
        if hmac.compare_digest(digest.encode(), self._admin_hash):
            return Principal(ADMIN_TOKEN_ID, TokenScope.ADMIN)
        record = self._by_hash.get(digest)
        if record is None or not hmac.compare_digest(record.token_hash, digest):
            return None
        stamp = self._clock()
        if record.revoked_at_ms is not None:
            return None
        if record.expires_at_ms is not None and record.expires_at_ms <= stamp:
            return None
        return Principal(record.id, TokenScope(record.acl))

    def issue(self, name: str, acl: TokenScope, expiry: str) -> IssuedToken:
        """Create a token of scope ``acl`` that expires after ``expiry`` (a key of TOKEN_EXPIRY_S)."""
        if expiry not in constants.TOKEN_EXPIRY_S:
            raise MisoError(400, "invalid_request", f"expiry must be one of {', '.join(constants.TOKEN_EXPIRY_S)}")
        token = new_token()
        created = self._clock()
        lifetime = constants.TOKEN_EXPIRY_S[expiry]
        record = TokenRecord(
            id=uuid.uuid4().hex,
            name=name,
            acl=str(acl),
            token_hash=hash_token(token),
            created_at_ms=created,
            expires_at_ms=None if lifetime is None else created + lifetime * 1000,
            revoked_at_ms=None,
            last_used_at_ms=None,
        )
        self._repository.insert(record)
        self._reload()
        logger.info("issued token %s (%s, scope %s, expiry %s)", record.id, name, acl, expiry)
        return IssuedToken(record, token)

    def list(self) -> list[TokenRecord]:
        return self._repository.all()

    def is_expired(self, record: TokenRecord) -> bool:
        return record.expires_at_ms is not None and record.expires_at_ms <= self._clock()

    def revoke(self, token_id: str) -> None:
        if not self._repository.revoke(token_id, self._clock()):
            raise MisoError(404, "not_found", f"no token with id {token_id!r}")
        self._reload()
        logger.info("revoked token %s", token_id)

    def delete(self, token_id: str) -> None:
        if not self._repository.delete(token_id):
            raise MisoError(404, "not_found", f"no token with id {token_id!r}")
        self._reload()
        logger.info("deleted token %s", token_id)

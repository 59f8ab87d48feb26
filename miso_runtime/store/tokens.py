"""Issued API tokens, stored as SHA-256 hashes only."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils


@dataclass(frozen=True)
class TokenRecord:
    """An issued token as stored: never the token itself, only its hash."""

    id: str
    name: str
    acl: str
    token_hash: str
    created_at_ms: int
    expires_at_ms: int | None
    revoked_at_ms: int | None
    last_used_at_ms: int | None


class TokenRepository:
    """SQL for the ``auth_tokens`` table."""

    _COLUMNS = "id, name, acl, token_hash, created_at_ms, expires_at_ms, revoked_at_ms, last_used_at_ms"

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def insert(self, record: TokenRecord) -> None:
        self._db.execute(
            f"INSERT INTO auth_tokens ({self._COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                record.id,
                record.name,
                record.acl,
                record.token_hash,
                record.created_at_ms,
                record.expires_at_ms,
                record.revoked_at_ms,
                record.last_used_at_ms,
            ],
        )

    def all(self) -> list[TokenRecord]:
        rows = self._db.execute(f"SELECT {self._COLUMNS} FROM auth_tokens ORDER BY created_at_ms").fetchall()
        return [TokenRecord(*row) for row in rows]

    def revoke(self, token_id: str, at_ms: int) -> bool:
        cursor = self._db.execute(
            "UPDATE auth_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?) WHERE id = ?", [at_ms, token_id]
        )
        return cursor.rowcount > 0

    def delete(self, token_id: str) -> bool:
        return self._db.execute("DELETE FROM auth_tokens WHERE id = ?", [token_id]).rowcount > 0

    def touch(self, token_id: str, at_ms: int) -> None:
        self._db.execute("UPDATE auth_tokens SET last_used_at_ms = ? WHERE id = ?", [at_ms, token_id])

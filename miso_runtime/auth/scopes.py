"""Token scopes and the access level each route declares.

A token carries one scope (skill-daemon contract, section 1):

========== ===========================================================
admin      everything, including token management, control and settings
read_only  GET requests only: status, sessions, metrics; no mutations
data       labels, history, search, analysis and conversations
stream     WebSocket events and status only
========== ===========================================================

A route declares the :class:`Access` it needs rather than a scope, because several scopes may
call it; :func:`allows` is the single table that says which.
"""

from __future__ import annotations

from enum import StrEnum


class TokenScope(StrEnum):
    ADMIN = "admin"
    READ_ONLY = "read_only"
    DATA = "data"
    STREAM = "stream"


class Access(StrEnum):
    """What a route needs from the caller's token."""

    #: Liveness and status reads that every scope may see.
    STATUS = "status"
    #: Event subscriptions (WebSocket, SSE of live events).
    STREAM = "stream"
    #: Reads of stored data (GET).
    READ = "read"
    #: Data work: conversations, labels, search, analysis, and their mutations.
    DATA = "data"
    #: Control, settings and token management.
    ADMIN = "admin"


_ALLOWED: dict[Access, frozenset[TokenScope]] = {
    Access.STATUS: frozenset(TokenScope),
    Access.STREAM: frozenset(TokenScope),
    Access.READ: frozenset({TokenScope.ADMIN, TokenScope.READ_ONLY, TokenScope.DATA}),
    Access.DATA: frozenset({TokenScope.ADMIN, TokenScope.DATA}),
    Access.ADMIN: frozenset({TokenScope.ADMIN}),
}


def allows(scope: TokenScope, access: Access) -> bool:
    """Whether a token of ``scope`` may call a route that needs ``access``."""
    return scope in _ALLOWED[access]


def weaker_scopes(access: Access) -> list[TokenScope]:
    """The scopes refused by a route that needs ``access`` (what a 403 test should try)."""
    return [scope for scope in TokenScope if scope not in _ALLOWED[access]]

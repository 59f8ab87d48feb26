"""Requests that came through the iroh tunnel: whose they are and what they may call.

The iroh worker forwards each peer request to this server on loopback with the bridge's
secret and the peer's verified endpoint id (``miso_runtime.iroh.tunnel``). The guard hands such
a request here instead of reading a token: a registered, active client gets the token scope its
iroh scope maps onto and then meets the very same :func:`~miso_runtime.auth.allows` table as a
local token; a peer that has not registered may call only the routes marked
:func:`open_to_unregistered_peers` (registration, with a TOTP code); a revoked one nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, TypeVar

from flask import Request, g

from .. import constants
from ..auth import Access, allows
from ..errors import MisoError

if TYPE_CHECKING:
    from ..iroh.service import IrohService

OPEN_TO_PEERS_ATTRIBUTE = "miso_open_to_iroh_peers"
View = TypeVar("View", bound=Callable[..., Any])


def open_to_unregistered_peers(view: View) -> View:
    """Mark a route that a tunnel peer may call before it has registered (apply above ``endpoint``)."""
    setattr(view, OPEN_TO_PEERS_ATTRIBUTE, True)
    return view


def remote_peer(remote: "IrohService | None", request: Request) -> str | None:
    """The endpoint id a request speaks for, or None for a local request."""
    if remote is None:
        return None
    return remote.bridged_peer(
        request.headers.get(constants.IROH_BRIDGE_SECRET_HEADER), request.headers.get(constants.IROH_BRIDGE_PEER_HEADER)
    )


def current_peer() -> str | None:
    """In a view: the verified endpoint id of the tunnel peer calling it (None when local)."""
    return g.get("iroh_peer")


def check_peer(remote: "IrohService", peer: str, view: Callable[..., Any], access: Access | None) -> None:
    """Authorise a tunnel request, as the guard does a token, or raise the 401/403 it gets."""
    g.iroh_peer = peer
    principal = remote.principal_for(peer)
    if principal is None:
        if getattr(view, OPEN_TO_PEERS_ATTRIBUTE, False):
            return
        raise MisoError(401, "unauthorized", "this iroh peer is not registered: POST /v1/iroh/clients/register first")
    if access is None or not allows(principal.scope, access):
        raise MisoError(403, "forbidden", f"an iroh client of scope {principal.scope} cannot call this route")
    g.principal = principal

"""Messages between the server and the ``iroh`` worker (the remote-access endpoint)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Command, Event


@dataclass(frozen=True)
class ServeApi(Command):
    """Bring the endpoint up (once) and bridge peers' requests to the API on this loopback port."""

    api_port: int


@dataclass(frozen=True)
class DropPeer(Command):
    """Close every open connection of this peer (its client was revoked)."""

    endpoint_id: str


@dataclass(frozen=True)
class TunnelOnline(Event):
    """The endpoint is bound and accepting connections."""

    endpoint_id: str
    relay_url: str
    direct_addrs: tuple[str, ...]
    started_at: int
    #: Up, but with a problem worth showing (no relay answered yet).
    last_error: str | None = None


@dataclass(frozen=True)
class TunnelFailed(Event):
    """The endpoint could not come up, or stopped; ``message`` says why."""

    message: str


@dataclass(frozen=True)
class PeerConnected(Event):
    """A peer finished the QUIC handshake on our ALPN (its endpoint id is verified by iroh)."""

    endpoint_id: str
    remote_addr: str

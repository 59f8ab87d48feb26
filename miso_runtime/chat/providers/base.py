"""What every provider offers, and a small cache of client objects.

Client objects hold a connection pool; reusing one saves a TCP (and TLS) handshake on every
request, which is most of the time to first token on loopback. Clients are keyed by base URL
and a hash of the key, so a per-request key gets its own client and never leaks into another
request; the cache is small and evicts the least recently used.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Generic, Iterator, Protocol, TypeVar

from ... import constants
from ..types import ProviderCall, ProviderItem

ClientT = TypeVar("ClientT")


class ChatProvider(Protocol):
    """A vendor API that can stream a chat reply and list its models."""

    name: str
    #: Whether a call without an API key is refused before it is sent.
    requires_key: bool

    def warm_up(self) -> None:
        """Import the client library now, off the request path."""

    def configured_key(self) -> str | None:
        """The key from the runtime's configuration, if any."""

    def stream(self, call: ProviderCall) -> Iterator[ProviderItem]:
        """Stream one reply; closing the iterator closes the upstream request."""

    def list_models(self) -> list[str]:
        """The models the provider offers now (raises ProviderError when it cannot say)."""


class ClientCache(Generic[ClientT]):
    """A thread-safe LRU of client objects keyed by (base URL, key hash)."""

    def __init__(
        self, factory: Callable[[str | None, str | None], ClientT], size: int = constants.PROVIDER_CLIENT_CACHE_SIZE
    ) -> None:
        self._factory = factory
        self._size = size
        self._clients: OrderedDict[tuple[str | None, str], ClientT] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, base_url: str | None, api_key: str | None) -> ClientT:
        key = (base_url, hashlib.sha256((api_key or "").encode()).hexdigest())
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        client = self._factory(base_url, api_key)
        with self._lock:
            self._clients[key] = client
            while len(self._clients) > self._size:
                self._clients.popitem(last=False)
        return client

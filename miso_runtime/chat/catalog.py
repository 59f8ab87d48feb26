"""The model catalog: the active model and what each provider offers.

Ollama lists what the configured host really has; OpenAI and Anthropic are asked when a key
is configured, else the configured defaults are listed (there is nothing to ask them with).
Each answer, a failure included, is kept for ``CATALOG_TTL_S`` so that a catalog request is
fast even when a provider is down, and the providers are asked in parallel with a short
timeout each.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from .. import constants
from .providers.registry import ProviderRegistry
from .types import ModelRef, ProviderError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Listing:
    models: list[str]
    error: str | None
    fetched_at: float


class ModelCatalog:
    """Lists models per provider, cached with a TTL."""

    def __init__(
        self, registry: ProviderRegistry, active: Callable[[], ModelRef], ttl_s: float = constants.CATALOG_TTL_S
    ) -> None:
        self._registry = registry
        self._active = active
        self._ttl_s = ttl_s
        self._lock = threading.Lock()
        self._listings: dict[str, _Listing] = {}

    def _fetch(self, name: str) -> _Listing:
        provider = self._registry.get(name)
        assert provider is not None
        if provider.requires_key and not provider.configured_key():
            return _Listing(list(constants.FALLBACK_CATALOG.get(name, [])), None, time.monotonic())
        try:
            return _Listing(provider.list_models(), None, time.monotonic())
        except ProviderError as exc:
            logger.info("catalog: %s unavailable: %s", name, exc.message)
            fallback = list(constants.FALLBACK_CATALOG.get(name, []))
            return _Listing(fallback, exc.message, time.monotonic())

    def _listing(self, name: str) -> _Listing:
        with self._lock:
            cached = self._listings.get(name)
        if cached and time.monotonic() - cached.fetched_at < self._ttl_s:
            return cached
        fresh = self._fetch(name)
        with self._lock:
            self._listings[name] = fresh
        return fresh

    def snapshot(self) -> dict[str, Any]:
        """The catalog in the Miso contract's shape, plus ``errors`` for providers that could not answer."""
        names = self._registry.names()
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            listings = dict(zip(names, pool.map(self._listing, names), strict=True))
        active = self._active()
        catalog: dict[str, Any] = {
            "active": {"provider": active.provider, "model": active.model, "model_id": active.id},
            "providers": {name: listing.models for name, listing in listings.items()},
        }
        errors = {name: listing.error for name, listing in listings.items() if listing.error}
        if errors:
            catalog["errors"] = errors
        return catalog

"""The runtime: every service of one sidecar, assembled from the settings.

The server and the command line build one :class:`Runtime` and hand it to the app factory;
tests can build one against a temporary data dir. Nothing here imports Flask or gevent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from . import __version__
from .auth import AdminTokenSource, TokenService, load_admin_token
from .bus import EventBus
from .chat.catalog import ModelCatalog
from .chat.providers.registry import ProviderRegistry
from .chat.service import ChatService
from .config import Settings
from .store import ConversationStore, TokenRepository, open_database

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    tokens: TokenService
    admin_token_source: AdminTokenSource
    conversations: ConversationStore
    chat: ChatService
    catalog: ModelCatalog
    bus: EventBus
    version: str = __version__
    started_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))


def build_runtime(settings: Settings) -> Runtime:
    """Open the store, run migrations and wire the services for ``settings``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.database_path)
    configured_token = settings.auth_token.get_secret_value() if settings.auth_token else None
    admin_token, source = load_admin_token(configured_token, settings.data_dir)
    conversations = ConversationStore(db)
    registry = ProviderRegistry.from_settings(settings)
    bus = EventBus()
    chat = ChatService(conversations, registry, bus, settings.provider, settings.model)
    return Runtime(
        settings=settings,
        tokens=TokenService(admin_token, TokenRepository(db)),
        admin_token_source=source,
        conversations=conversations,
        chat=chat,
        catalog=ModelCatalog(registry, chat.default_model),
        bus=bus,
    )

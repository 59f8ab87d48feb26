"""The SQLite store: one database file per data dir, shared by every process.

Each process opens its own connection with :func:`open_database`; schema changes are the
numbered migrations in :mod:`miso_runtime.store.migrations`. Repositories in this package are
the only code that writes SQL.
"""

from .conversations import ConversationStore, Message, Thread, ThreadEvent
from .database import open_database
from .tokens import TokenRecord, TokenRepository

__all__ = [
    "ConversationStore",
    "Message",
    "Thread",
    "ThreadEvent",
    "TokenRecord",
    "TokenRepository",
    "open_database",
]

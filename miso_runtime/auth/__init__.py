"""Who may call what: token scopes, route access levels and the token service."""

from .scopes import Access, TokenScope, allows
from .tokens import AdminTokenSource, Principal, TokenService, load_admin_token

__all__ = ["Access", "AdminTokenSource", "Principal", "TokenScope", "TokenService", "allows", "load_admin_token"]

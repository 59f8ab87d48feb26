"""Cloud and local model providers, one module per vendor API.

Every provider streams :class:`~miso_runtime.chat.types.ProviderItem` values and raises
:class:`~miso_runtime.chat.types.ProviderError` with one of the contract's codes, so that the
chat service never sees a vendor's exception types.
"""

from .base import ChatProvider, ClientCache
from .registry import ProviderRegistry

__all__ = ["ChatProvider", "ClientCache", "ProviderRegistry"]

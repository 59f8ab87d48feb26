"""The providers this runtime can talk to, built from the settings."""

from __future__ import annotations

from ...config import Settings, secret_text
from .anthropic_chat import AnthropicProvider
from .base import ChatProvider
from .ollama_chat import OllamaProvider
from .openai_chat import OpenAIProvider


class ProviderRegistry:
    """Provider objects by name, in the contract's order."""

    def __init__(self, providers: dict[str, ChatProvider]) -> None:
        self._providers = providers

    @classmethod
    def from_settings(cls, settings: Settings, local: ChatProvider | None = None) -> "ProviderRegistry":
        providers: dict[str, ChatProvider] = {
            "openai": OpenAIProvider(secret_text(settings.openai_api_key), settings.openai_base_url),
            "anthropic": AnthropicProvider(secret_text(settings.anthropic_api_key), settings.anthropic_base_url),
            "ollama": OllamaProvider(settings.ollama_host),
        }
        if local is not None:
            providers["local"] = local
        return cls(providers)

    def get(self, name: str) -> ChatProvider | None:
        return self._providers.get(name)

    def names(self) -> list[str]:
        return list(self._providers)

    def warm_up(self, names: list[str]) -> None:
        """Import these providers' client libraries (slow imports) before the first chat needs them."""
        for name in names:
            if name in self._providers:
                self._providers[name].warm_up()

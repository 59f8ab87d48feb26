"""Tool-calling model adapters, one per provider wire format.

Each implements :class:`~miso_runtime.agent.messages.ToolCallingModel`: it translates the
agent's OpenAI-shaped messages and tool specs to its provider's form, streams one turn, and
returns it as a :class:`~miso_runtime.agent.messages.ModelTurn` (tool-call arguments as JSON
text, usage in OpenAI's ``CompletionUsage`` form, ``finish_reason`` in OpenAI's words).
Failures are :class:`~miso_runtime.chat.types.ProviderError` with the chat contract's codes;
a cancel ends the request within a poll interval with
:class:`~miso_runtime.agent.messages.Cancelled`.
"""

from .anthropic_tools import AnthropicToolModel
from .ollama_tools import OllamaToolModel
from .openai_tools import OpenAIToolModel

__all__ = ["AnthropicToolModel", "OllamaToolModel", "OpenAIToolModel"]

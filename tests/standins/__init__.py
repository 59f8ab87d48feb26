"""Loopback stand-ins for the cloud LLM providers the tests cannot reach.

Each speaks its provider's exact wire format so the official client libraries (``openai``,
``anthropic``, ``ollama``) work against it unchanged::

    with OpenAIStandIn() as server:
        server.script = Script(tokens=["Hi", "!"], token_delay_s=0.01)
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
"""

from .anthropic_standin import AnthropicStandIn
from .github_api import GitHubApiStandIn
from .ollama_standin import OllamaStandIn
from .openai_standin import OpenAIStandIn
from .server import RecordedRequest, Script, ScriptedToolCall, StandInServer, StreamOutcome, Turn

__all__ = [
    "AnthropicStandIn",
    "GitHubApiStandIn",
    "OllamaStandIn",
    "OpenAIStandIn",
    "RecordedRequest",
    "Script",
    "ScriptedToolCall",
    "StandInServer",
    "StreamOutcome",
    "Turn",
]

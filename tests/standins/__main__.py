"""Run the cloud stand-ins as a process, for test suites that are not Python (``electron_bridge``).

``python -m tests.standins`` starts the OpenAI, Anthropic and Ollama stand-ins on free loopback
ports and prints one JSON line when they serve::

    {"event": "ready", "env": {"MISO_OPENAI_BASE_URL": "http://127.0.0.1:41233/v1", ...}}

``env`` is what a sidecar needs to use them. Then it answers one JSON command per line on
stdin, with one JSON line on stdout, and exits when stdin closes (its test runner is gone):

- ``{"provider": "openai", "cmd": "script", "script": {"tokens": ["a"], "token_delay_s": 0.1}}``
  replaces that stand-in's :class:`~tests.standins.server.Script` (omitted fields: defaults);
  ``"turns": [{"text": "…", "tool_calls": [{"name": "…", "arguments": {…}}]}]`` scripts tool
  calls (a ``responder`` cannot cross a pipe);
- ``{"provider": "openai", "cmd": "stats"}``: requests, completed, aborted and active streams;
- ``{"provider": "openai", "cmd": "wait_for_disconnect", "timeout_s": 5}``: ``ok`` is whether a
  client closed a stream before its end within the time.

Every answer has ``ok``; a bad command gets ``ok: false`` and ``error``.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import fields
from typing import Any

from .anthropic_standin import AnthropicStandIn
from .ollama_standin import OllamaStandIn
from .openai_standin import OpenAIStandIn
from .server import Script, ScriptedToolCall, StandInServer, Turn

logger = logging.getLogger(__name__)

TEST_KEYS = {"openai": "sk-standin-openai", "anthropic": "sk-ant-standin"}


def sidecar_env(servers: dict[str, StandInServer]) -> dict[str, str]:
    openai, anthropic, ollama = servers["openai"], servers["anthropic"], servers["ollama"]
    assert isinstance(openai, OpenAIStandIn) and isinstance(anthropic, AnthropicStandIn)
    assert isinstance(ollama, OllamaStandIn)
    return {
        "MISO_OPENAI_API_KEY": TEST_KEYS["openai"],
        "MISO_OPENAI_BASE_URL": openai.base_url,
        "MISO_ANTHROPIC_API_KEY": TEST_KEYS["anthropic"],
        "MISO_ANTHROPIC_BASE_URL": anthropic.base_url,
        "MISO_OLLAMA_HOST": ollama.host,
    }


def answer(servers: dict[str, StandInServer], command: dict[str, Any]) -> dict[str, Any]:
    server = servers.get(str(command.get("provider")))
    if server is None:
        return {"ok": False, "error": f"provider must be one of {sorted(servers)}"}
    cmd = command.get("cmd")
    if cmd == "script":
        given = command.get("script") or {}
        known = {f.name for f in fields(Script)} - {"responder"}
        unknown = sorted(set(given) - known)
        if unknown:
            return {"ok": False, "error": f"unknown script fields: {unknown}"}
        if given.get("turns") is not None:
            given = {**given, "turns": [_turn(turn) for turn in given["turns"]]}
        server.script = Script(**given)
        return {"ok": True}
    if cmd == "stats":
        return {
            "ok": True,
            "requests": len(server.requests),
            "completed": server.completed_streams,
            "aborted": server.aborted_streams,
            "active": server.active_streams,
        }
    if cmd == "wait_for_disconnect":
        return {"ok": server.wait_for_disconnect(float(command.get("timeout_s", 5.0)))}
    return {"ok": False, "error": f"unknown cmd {cmd!r}"}


def _turn(given: dict[str, Any]) -> Turn:
    """A :class:`Turn` from its JSON form (TypeError on unknown fields, answered as a bad command)."""
    calls = [ScriptedToolCall(**call) for call in given.get("tool_calls") or []]
    return Turn(**{**given, "tool_calls": calls})


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    servers: dict[str, StandInServer] = {
        "openai": OpenAIStandIn().start(),
        "anthropic": AnthropicStandIn().start(),
        "ollama": OllamaStandIn().start(),
    }
    try:
        print(json.dumps({"event": "ready", "env": sidecar_env(servers)}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = answer(servers, json.loads(line))
            except (ValueError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            print(json.dumps(reply), flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

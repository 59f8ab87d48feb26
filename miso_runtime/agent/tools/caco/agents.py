"""Caco's agent-to-agent tools: one session sends another work, starts one, or asks how it is.

They go through this runtime's own Caco routes (as Caco's call its own HTTP API), so a message
from an agent takes exactly the path a person's takes: the target's page shows it live, marked
``[agent:<id>]``, and the target resumes if it was inactive. The calls carry the session's
token and an ``X-Client-ID`` of their own, so creating a session never moves the page's
pointer to its active session.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from ...messages import ToolSpec
from ..base import ToolContext, ToolError, ToolOutcome, failure, success
from .env import CacoToolEnv

logger = logging.getLogger(__name__)

#: Seconds an agent-to-agent call may take (creating a session starts nothing slow).
CALL_TIMEOUT_S = 30.0


def _string(args: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = args.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ToolError(f"Error: '{name}' must be a non-empty string")
    return value


class _CacoApi:
    """The session's client of the Caco routes."""

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        if not self._env.server_url:
            raise ToolError("Error: the runtime's address is not known yet; try again in a moment")
        headers = {"X-Client-ID": f"agent:{self._env.session_id}"}
        if self._env.token:
            headers["Authorization"] = f"Bearer {self._env.token}"
        try:
            response = httpx.request(
                method, f"{self._env.server_url}/caco/api{path}", json=body, headers=headers, timeout=CALL_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            raise ToolError(f"Error: the session API did not answer: {exc}") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = {"error": response.text}
        return response.status_code, payload


def _error_text(payload: Any) -> str:
    return str(payload.get("error")) if isinstance(payload, dict) and payload.get("error") else str(payload)


class SendAgentMessage:
    spec = ToolSpec(
        "send_agent_message",
        "Send a message to another agent session, to delegate work or coordinate. The target sees it marked "
        "[agent:<your session id>] and can answer with send_agent_message to your session: ask it to, and say "
        "what to send back.",
        {
            "type": "object",
            "properties": {
                "sessionId": {"type": "string", "description": "The target session's id."},
                "message": {"type": "string", "description": "The message for the target session."},
            },
            "required": ["sessionId", "message"],
        },
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env
        self._api = _CacoApi(env)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        target = _string(args, "sessionId")
        message = _string(args, "message")
        if target == self._env.session_id:
            return failure("Error: a session cannot send a message to itself")
        body = {"prompt": message, "source": "agent", "fromSession": self._env.session_id}
        status, payload = self._api.call("POST", f"/sessions/{target}/messages", body)
        if status != 200:
            return failure(f"Failed to send message: {_error_text(payload)}")
        return success(
            f"Message sent to session {target}; it works on it on its own. It can answer you with "
            f"send_agent_message to session {self._env.session_id}.",
            {"sessionId": target},
        )


class GetSessionState:
    spec = ToolSpec(
        "get_session_state",
        "The state of an agent session: whether it exists, is busy (streaming), idle or inactive, and its "
        "working directory.",
        {
            "type": "object",
            "properties": {"sessionId": {"type": "string", "description": "The session's id."}},
            "required": ["sessionId"],
        },
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._api = _CacoApi(env)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        target = _string(args, "sessionId")
        status, payload = self._api.call("GET", f"/sessions/{target}/state")
        if status == 404:
            return failure(f"Session {target} not found")
        if status != 200:
            return failure(f"Failed to get session state: {_error_text(payload)}")
        return success(json.dumps(payload, indent=2), payload)


class CreateAgentSession:
    spec = ToolSpec(
        "create_agent_session",
        "Start a new agent session in a working directory (for a subtask), optionally with a first message. "
        "Returns its id; give it work with send_agent_message, asking it to report back to you.",
        {
            "type": "object",
            "properties": {
                "cwd": {"type": "string", "description": "The new session's working directory (absolute)."},
                "initialMessage": {"type": "string", "description": "A first message to send it at once."},
            },
            "required": ["cwd"],
        },
    )

    def __init__(self, env: CacoToolEnv) -> None:
        self._env = env
        self._api = _CacoApi(env)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        cwd = _string(args, "cwd")
        initial = _string(args, "initialMessage", required=False)
        status, payload = self._api.call("POST", "/sessions", {"cwd": cwd})
        if status != 200:
            return failure(f"Failed to create session: {_error_text(payload)}")
        session_id = payload["sessionId"]
        text = f"Created session {session_id} in {payload.get('cwd', cwd)}."
        if initial is not None:
            body = {"prompt": initial, "source": "agent", "fromSession": self._env.session_id}
            sent, answer = self._api.call("POST", f"/sessions/{session_id}/messages", body)
            if sent != 200:
                return failure(f"{text} Its first message failed: {_error_text(answer)}")
            text += " Its first message is on its way."
        return success(text, {"sessionId": session_id, "cwd": payload.get("cwd", cwd)})


def caco_agent_tools(env: CacoToolEnv) -> list:
    return [SendAgentMessage(env), GetSessionState(env), CreateAgentSession(env)]

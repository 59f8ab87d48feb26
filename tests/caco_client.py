"""What tests of Caco's face share: its page's socket and the calls its page makes."""

from __future__ import annotations

from typing import Any, Callable

from tests.sidecar import Sidecar
from tests.ws_client import JsonSocket

API = "/caco/api"


def page_socket(side: Sidecar, query: str = "") -> JsonSocket:
    """``/caco/ws`` as the page opens it (plus the token ours needs)."""
    separator = "&" if query else ""
    return JsonSocket(side.port, f"/caco/ws?{query}{separator}token={side.token}")


def create_session(side: Sidecar, cwd: str, client: str | None = None, **body: Any) -> dict[str, Any]:
    headers = {**side.auth, **({"X-Client-ID": client} if client else {})}
    response = side.post(f"{API}/sessions", json={"cwd": cwd, **body}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def send(side: Sidecar, session_id: str, prompt: str, **body: Any) -> dict[str, Any]:
    response = side.post(f"{API}/sessions/{session_id}/messages", json={"prompt": prompt, **body}, headers=side.auth)
    assert response.status_code == 200, response.text
    return response.json()


def of_session(session_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda frame: frame.get("sessionId") == session_id


def complete(session_id: str, count: int = 1) -> Callable[[list[dict[str, Any]]], Any]:
    """A predicate: the socket has ``count`` ``complete`` replies of the session."""

    def done(frames: list[dict[str, Any]]) -> Any:
        ends = [
            frame
            for frame in frames
            if frame.get("type") == "message"
            and frame.get("sessionId") == session_id
            and frame["message"].get("status") == "complete"
        ]
        return ends if len(ends) >= count else None

    return done


def history_complete(session_id: str) -> Callable[[list[dict[str, Any]]], Any]:
    return lambda frames: any(f.get("type") == "historyComplete" and f.get("sessionId") == session_id for f in frames)


def messages_of(frames: list[dict[str, Any]], session_id: str) -> list[dict[str, Any]]:
    return [f["message"] for f in frames if f.get("type") == "message" and f.get("sessionId") == session_id]


def shown(messages: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """What the page ends up showing: each bubble's id, role and final text, in order.

    Deltas are appended to their bubble and a ``complete`` message's content replaces it, as the
    page does (``response-streaming.ts``).
    """
    bubbles: dict[str, list[str]] = {}
    order: list[str] = []
    roles: dict[str, str] = {}
    for message in messages:
        key = message["id"]
        if key not in bubbles:
            bubbles[key], roles[key] = [message.get("content") or ""], message["role"]
            order.append(key)
            continue
        if message.get("deltaContent"):
            bubbles[key].append(message["deltaContent"])
        if message.get("status") == "complete" and message.get("content"):
            bubbles[key] = [message["content"]]
    return [(key, roles[key], "".join(bubbles[key])) for key in order]

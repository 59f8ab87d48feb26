"""The events of one chat stream, in the order a client sees them.

``Meta`` first, then any number of ``Token``, then exactly one of ``Done`` or ``Error``.
Each event's ``payload`` is the JSON object of the Miso contract's SSE event of that name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Meta:
    thread_id: str
    model: str
    started_at: int  # UTC epoch ms
    name = "meta"

    @property
    def payload(self) -> dict[str, Any]:
        return {"thread_id": self.thread_id, "model": self.model, "started_at": self.started_at}


@dataclass(frozen=True)
class Token:
    delta: str
    name = "token"

    @property
    def payload(self) -> dict[str, Any]:
        return {"delta": self.delta}


@dataclass(frozen=True)
class Done:
    thread_id: str
    finished_at: int  # UTC epoch ms
    usage: dict[str, Any] = field(default_factory=dict)
    name = "done"

    @property
    def payload(self) -> dict[str, Any]:
        return {"thread_id": self.thread_id, "finished_at": self.finished_at, "usage": self.usage}


@dataclass(frozen=True)
class Error:
    code: str
    message: str
    name = "error"

    @property
    def payload(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}


ChatEvent = Meta | Token | Done | Error

"""Messages of a call by name into a worker (``workers/rpc.py``): any worker may answer them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .base import Command, Event


@dataclass(frozen=True)
class Call(Command):
    """Ask a worker to run one of its published methods (see ``workers/rpc.py``)."""

    call_id: str
    method: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CallDone(Event):
    """The answer to a :class:`Call`: a result, or an error as an HTTP status, code and message."""

    call_id: str
    result: Any = None
    status: int = 200
    code: str = ""
    message: str = ""

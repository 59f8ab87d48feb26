"""What every worker shares: the message base classes, the worker spec, start, stop and log lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Command:
    """A message from the server to a worker (a frozen dataclass, pickled over the command pipe)."""


class Event:
    """A message from a worker to the server (a frozen dataclass, pickled over the event pipe)."""


@dataclass(frozen=True)
class Shutdown(Command):
    """Finish what is running at the next token and exit."""


@dataclass(frozen=True)
class WorkerStarted(Event):
    pid: int


@dataclass(frozen=True)
class LogLine(Event):
    """A log record of the worker, for ``/v1/llm/server/logs`` and the server's log."""

    level: str
    message: str
    ts_ms: int


@dataclass(frozen=True)
class WorkerSpec:
    """What the supervisor starts: a name and the ``module:function`` that runs the worker."""

    name: str
    target: str
    options: dict[str, Any] = field(default_factory=dict)

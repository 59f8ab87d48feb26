"""Messages of a task worker (one process per running agent task).

The server calls the task's agent by name over RPC (``workers/rpc.py``: post a message, cancel,
read the queue, switch tools); the worker streams what the agent does as :class:`TaskEvent`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Event

#: ``TaskEvent.name`` of an agent event (``{id, created, desc}``).
AGENT_EVENT = "maria"
#: ``TaskEvent.name`` of the queue snapshot sent after each change (a list of queued messages).
QUEUE_SNAPSHOT = "maria.queued_messages.synchronized"
#: ``TaskEvent.name`` of a piece of reply text as it streams (a str; live only, never stored:
#: the ``AssistantMessage`` event that follows holds the whole text).
TEXT_DELTA = "text.delta"


@dataclass(frozen=True)
class CommandGroup(Event):
    """A command of the task started (``running``) or ended in process group ``pgid``.

    If the task's process dies while the group runs, the server kills the group: the
    command's processes would otherwise outlive the task that started them.
    """

    task_id: str
    pgid: int
    running: bool


@dataclass(frozen=True)
class TaskEvent(Event):
    """One entry of the task's log, as the per-task stream sends it (event name and JSON data)."""

    task_id: str
    name: str
    data: Any

"""What every agent tool is: a spec the model reads, and a ``run`` that turns arguments into an outcome.

A tool never raises for something the model did wrong (a bad path, a missing file, a command
that fails): it returns a :class:`ToolOutcome` with ``error`` set and a ``text`` that tells the
model what happened, because the model is the one who can fix it. Only :class:`Cancelled`
(from :mod:`miso_runtime.agent.messages`) escapes a tool, so the loop can end the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..messages import CancelToken, ToolSpec
from .todo_list import TodoList


@dataclass
class ToolContext:
    """What a tool may use: the task's working directory, its cancel token and its todo list.

    ``cwd`` is absolute and resolved; every path a tool touches is inside it
    (:func:`miso_runtime.agent.tools.paths.resolve_inside`). ``todos`` lives as long as the
    task and goes to and from JSON (:meth:`TodoList.to_json`) so that a resumed task has it back.
    """

    cwd: Path
    cancel: CancelToken = field(default_factory=CancelToken)
    todos: TodoList = field(default_factory=TodoList)
    #: Told ``(pgid, running)`` when a command's process group starts and ends (see ``run_shell``).
    on_process_group: Callable[[int, bool], None] | None = None


@dataclass(frozen=True)
class ToolOutcome:
    """The result of one call.

    ``text`` is what the model receives (``PostToolCall.text``). On success ``result`` is the
    structured form Maria's UI reads (``PostToolCall.result``); on failure ``error`` is set
    (a string or small JSON) and ``result`` is None.
    """

    text: str
    result: Any = None
    error: Any = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Tool(Protocol):
    """One tool as the agent loop sees it."""

    spec: ToolSpec

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        """Do the call with arguments already checked against ``spec.schema``."""


class ToolError(Exception):
    """Raised inside a tool for a failure the model should be told about (becomes an error outcome)."""


def failure(message: str) -> ToolOutcome:
    """An error outcome whose text and error are ``message``."""
    return ToolOutcome(text=message, error=message)


def success(text: str, result: Any) -> ToolOutcome:
    return ToolOutcome(text=text, result=result)

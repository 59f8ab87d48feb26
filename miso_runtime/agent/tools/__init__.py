"""Maria's agent tools: what a task's model may do in its working directory.

Each tool is a small class with a ``spec`` (name, description, JSON Schema) and a ``run``
(:class:`~.base.Tool`). :func:`~.registry.maria_tools` picks a model's tool set and
:func:`~.registry.run_tool_call` runs one call from its raw JSON arguments. Every path a tool
touches goes through :func:`~.paths.resolve_inside`, which keeps it inside the task's cwd.
"""

from __future__ import annotations

from .base import Tool, ToolContext, ToolError, ToolOutcome
from .registry import maria_tools, run_tool_call, uses_apply_patch
from .todo_list import TodoItem, TodoList

__all__ = [
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutcome",
    "TodoItem",
    "TodoList",
    "maria_tools",
    "run_tool_call",
    "uses_apply_patch",
]

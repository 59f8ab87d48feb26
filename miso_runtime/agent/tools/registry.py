"""Maria's tool set for a model, and running one tool call from the model's raw JSON text.

:func:`run_tool_call` is the one place a call's arguments are parsed and checked, so every
tool gets a dict that fits its schema, and every way a call can go wrong (JSON that does not
parse, a wrong type, a missing argument, a failure inside the tool) comes back as an outcome
the model can read. Only :class:`Cancelled` is raised.
"""

from __future__ import annotations

import json
import logging
from typing import Sequence

from ...constants import AGENT_APPLY_PATCH_MODELS
from ..messages import Cancelled, ToolCall
from .arguments import ArgumentsError, check_arguments, parse_arguments
from .base import Tool, ToolContext, ToolError, ToolOutcome, failure
from .commands import ExecuteCommand
from .files import ListFiles, ReadFile, WriteToFile
from .patch import ApplyPatch
from .search import SearchFiles
from .todo import Todo

logger = logging.getLogger(__name__)


def uses_apply_patch(model_name: str) -> bool:
    """Maria gives GPT-5.1 and GPT-5.2 ``apply_patch``, every other model ``write_to_file``."""
    name = model_name.lower()
    return any(marker in name for marker in AGENT_APPLY_PATCH_MODELS)


def maria_tools(model_name: str) -> list[Tool]:
    """The tools of a Maria task, in Maria's order."""
    tools: list[Tool] = [ExecuteCommand(), ListFiles(), ReadFile(), Todo(), SearchFiles()]
    tools.append(ApplyPatch() if uses_apply_patch(model_name) else WriteToFile())
    return tools


def run_tool_call(tools: Sequence[Tool], call: ToolCall, ctx: ToolContext) -> ToolOutcome | None:
    """Run ``call`` with the tool of its name; None when no tool has that name.

    The loop answers None with the tool message ``Unknown tool: <name>`` and emits no events.
    """
    tool = next((tool for tool in tools if tool.spec.name == call.name), None)
    if tool is None:
        return None
    try:
        args = parse_arguments(call.arguments)
    except ArgumentsError as exc:
        return failure(f"Error: invalid arguments for {call.name}: {exc}")
    except ValueError as exc:  # json.JSONDecodeError included
        text = f"Error parsing tool arguments: {exc}, arguments: {call.arguments}"
        return ToolOutcome(text=text, error={"message": str(exc), "arguments": call.arguments})
    try:
        check_arguments(args, tool.spec.schema)
    except ArgumentsError as exc:
        return failure(f"Error: invalid arguments for {call.name}: {exc}")
    try:
        return tool.run(args, ctx)
    except Cancelled:
        raise
    except ToolError as exc:
        return failure(str(exc))
    except Exception as exc:  # a bug in a tool must not end the task: the model is told, the log has it
        logger.exception("tool %s failed on %s", call.name, json.dumps(args)[:500])
        return failure(f"Error: {call.name} failed unexpectedly: {type(exc).__name__}: {exc}")

"""``execute_command``: a shell command in the task's directory, with Maria's result and text.

The structured result is ``["Completed", {command, status, stdout, stderr, max_output_lines}]``
or ``["TimedOut", {command, timeout, stdout, stderr, max_output_lines}]`` (Maria's enum as
JSON), which the UI draws; the model gets the text, where each stream is cut to its first
``max_output_lines`` lines as Maria does. Output past :data:`AGENT_COMMAND_MAX_OUTPUT_BYTES`
stops the command (see :mod:`.processes`); the result is then ``Completed`` with the status of
the killed shell (137) and the text says why. Commands get the runtime's environment without its
own ``MISO_*`` variables (settings, keys, the sidecar's token), with pagers and git prompts off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ...constants import (
    AGENT_COMMAND_ENV,
    AGENT_COMMAND_ENV_DROP_PREFIXES,
    AGENT_COMMAND_MAX_OUTPUT_BYTES,
    AGENT_COMMAND_MAX_OUTPUT_LINES,
    AGENT_COMMAND_TIMEOUT_MS,
    AGENT_RESULT_STREAM_CHARS,
)
from ..messages import Cancelled, ToolSpec
from .base import ToolContext, ToolError, ToolOutcome, failure, success
from .paths import resolve_inside
from .processes import CommandRun, run_shell

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "The shell command line, run with `sh -c`."},
        "timeout": {
            "type": "number",
            "description": "Milliseconds the command may run before it is stopped. Defaults to 600000 (10 minutes).",
            "default": AGENT_COMMAND_TIMEOUT_MS,
        },
        "max_output_lines": {
            "type": "number",
            "description": "Lines of stdout and of stderr to show you; longer output is cut after them. "
            "Defaults to 100.",
            "default": AGENT_COMMAND_MAX_OUTPUT_LINES,
        },
    },
    "required": ["command"],
}

DESCRIPTION = (
    "Run a shell command (`sh -c`) in the working directory and return its exit status, stdout and stderr. "
    "Standard input is empty, so nothing can wait for a key press. The command must end by itself: there is "
    "no background execution, and any process it leaves running is stopped when it exits. Output beyond "
    "`max_output_lines` lines per stream is cut; redirect it to a file and read or search that file when you "
    f"need all of it. A command that prints more than {AGENT_COMMAND_MAX_OUTPUT_BYTES // (1024 * 1024)} MiB "
    "is stopped."
)


def _positive_number(args: dict[str, Any], name: str, default: int) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToolError(f"Error: '{name}' must be a number")
    if value <= 0:
        raise ToolError(f"Error: '{name}' must be a positive number, got {value}")
    return max(1, int(value))


def render_stream(name: str, text: str, max_lines: int) -> str:
    """One stream as the model sees it: a header with its length, then its first ``max_lines`` lines."""
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    total = len(lines)
    if total <= max_lines:
        return f"=== {name} ({total} lines) ===\n{text.rstrip(chr(10))}"
    shown = "\n".join(lines[:max_lines])
    return (
        f"=== {name} (first {max_lines} of {total} lines) ===\n{shown}\n"
        f"... ({total - max_lines} more lines cut; redirect the output to a file to see all of it) ..."
    )


def shown_in_result(text: str) -> str:
    """A stream as the structured result carries it: at most ``AGENT_RESULT_STREAM_CHARS`` characters.

    The result goes into the task's log and to every viewer of its stream; a command that
    printed a megabyte must not make each replay carry that megabyte.
    """
    if len(text) <= AGENT_RESULT_STREAM_CHARS:
        return text
    return text[:AGENT_RESULT_STREAM_CHARS] + f"\n... ({len(text) - AGENT_RESULT_STREAM_CHARS} more characters cut) ..."


def run_agent_command(
    command: str, workdir: Path, ctx: ToolContext, *, timeout_s: float, max_output_bytes: int
) -> CommandRun:
    """Run ``command`` as every agent tool does: its own process group, reported to ``ctx``, no
    ``MISO_*`` variables, pagers and git prompts off. Raises :class:`Cancelled` when the task's
    cancel stopped it, and ``OSError`` when the shell could not start."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(AGENT_COMMAND_ENV_DROP_PREFIXES)}
    env.update(AGENT_COMMAND_ENV)
    run = run_shell(
        command,
        workdir,
        timeout_s=timeout_s,
        max_output_bytes=max_output_bytes,
        cancel=ctx.cancel,
        env=env,
        on_group=ctx.on_process_group,
    )
    if run.ended == "cancelled":
        raise Cancelled()
    return run


class ExecuteCommand:
    spec = ToolSpec(name="execute_command", description=DESCRIPTION, schema=SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        command = args["command"]
        try:
            timeout_ms = _positive_number(args, "timeout", AGENT_COMMAND_TIMEOUT_MS)
            max_lines = _positive_number(args, "max_output_lines", AGENT_COMMAND_MAX_OUTPUT_LINES)
            background = args.get("background", False)
            if not isinstance(background, bool):
                raise ToolError("Error: 'background' must be a boolean")
            if background:
                raise ToolError("Error: background execution is not supported; run the command in the foreground.")
            workdir = ctx.cwd
            if "working_directory" in args:
                if not isinstance(args["working_directory"], str):
                    raise ToolError("Error: 'working_directory' must be a string")
                workdir = resolve_inside(ctx.cwd, args["working_directory"], what="working_directory")
                if not workdir.is_dir():
                    raise ToolError(f"Error: working directory not found: {args['working_directory']}")
        except ToolError as exc:
            return failure(str(exc))
        try:
            run = run_agent_command(
                command, workdir, ctx, timeout_s=timeout_ms / 1000, max_output_bytes=AGENT_COMMAND_MAX_OUTPUT_BYTES
            )
        except OSError as exc:
            return failure(f"Failed to execute command '{command}': {exc}")
        stdout = run.stdout.decode("utf-8", errors="replace")
        stderr = run.stderr.decode("utf-8", errors="replace")
        if run.ended == "timed_out":
            head = f"Command {command} timed out after {timeout_ms} ms and was stopped."
            shown = {"stdout": shown_in_result(stdout), "stderr": shown_in_result(stderr)}
            result = ["TimedOut", {"command": command, "timeout": timeout_ms, **shown}]
        else:
            head = f"Command {command} exited with status {run.status}."
            shown = {"stdout": shown_in_result(stdout), "stderr": shown_in_result(stderr)}
            result = ["Completed", {"command": command, "status": run.status, **shown}]
        result[1]["max_output_lines"] = max_lines
        parts = [head]
        if run.ended == "output_limit":
            parts.append(
                f"It printed more than {AGENT_COMMAND_MAX_OUTPUT_BYTES} bytes and was stopped; "
                "redirect its output to a file, then search or read that file."
            )
        elif run.output_cut:
            parts.append(f"Only the first {AGENT_COMMAND_MAX_OUTPUT_BYTES} bytes of its output were kept.")
        if run.stopped_leftovers:
            parts.append(
                f"{run.stopped_leftovers} process(es) it left running in the background were stopped "
                "(background jobs are not supported)."
            )
        if stdout.strip():
            parts.append(render_stream("STDOUT", stdout, max_lines))
        if stderr.strip():
            parts.append(render_stream("STDERR", stderr, max_lines))
        return success("\n".join(parts), result)

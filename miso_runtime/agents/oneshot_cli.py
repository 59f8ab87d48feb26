"""One-shot answers from agent CLIs and user commands, as schmux runs them.

- ``claude``: ``<command> -p --dangerously-skip-permissions --output-format json --json-schema
  '<schema>'``, the prompt on stdin; the answer is the envelope's ``structured_output``.
- ``codex``: ``<command> exec --json [--model M] --output-schema <file> -``, the prompt on stdin;
  the answer is the ``text`` of the last ``item.completed`` item of type ``agent_message``.
- a user's promptable run target: its command split on whitespace, the prompt on stdin; the
  answer is its stdout.

Each runs in a process group of its own with a time limit; at the limit the whole group is
killed, so a CLI's helpers do not outlive it. The command gets the runtime's environment without
what must not leak to it (the admin token; ``constants.TMUX_ENV_DROP``). In the server the
wait is cooperative: gevent patches ``subprocess`` there.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from pathlib import Path

from .. import constants
from ..chat.types import ResponseSchema
from .oneshot import SCHEMA_TOOLS, CliTarget, OneShotError

logger = logging.getLogger(__name__)


def run_target(target: CliTarget, prompt: str, schema: ResponseSchema, timeout_s: float) -> str:
    """Run ``target`` on ``prompt`` and return its answer text; :class:`OneShotError` when it fails."""
    if not target.tool:
        argv = target.command.split()
        if not argv:
            raise OneShotError("command cannot be empty")
        return _run(argv, prompt, timeout_s, {}, "command")
    if target.tool not in SCHEMA_TOOLS:
        raise OneShotError(f"{target.tool} cannot answer to a JSON schema (only {', '.join(SCHEMA_TOOLS)} can)")
    base = shlex.split(target.command)
    if not base:
        raise OneShotError("agent command cannot be empty")
    env = dict(target.env)
    if target.tool == "claude":
        if target.model and "ANTHROPIC_MODEL" not in env:
            env["ANTHROPIC_MODEL"] = target.model
        argv = base + list(target.model_args) + ["-p", "--dangerously-skip-permissions", "--output-format", "json"]
        argv += ["--json-schema", json.dumps(schema.schema)]
        return claude_answer(_run(argv, prompt, timeout_s, env, "agent claude"))
    with tempfile.TemporaryDirectory(prefix="miso-oneshot-") as folder:
        schema_file = Path(folder) / f"{schema.name}.json"
        schema_file.write_text(json.dumps(schema.schema), encoding="utf-8")
        chosen = list(target.model_args) or (["--model", target.model] if target.model else [])
        argv = base + ["exec", "--json"] + chosen + ["--output-schema", str(schema_file), "-"]
        return codex_answer(_run(argv, prompt, timeout_s, env, "agent codex"))


def _run(argv: list[str], prompt: str, timeout_s: float, extra_env: dict[str, str], who: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in constants.TMUX_ENV_DROP}
    env.update(extra_env)
    shown = " ".join("<schema>" if part.startswith("{") else part for part in argv) + " <prompt>"
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        raise OneShotError(f"{who}: cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:
        stdout, stderr = proc.communicate(prompt.encode("utf-8"), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise OneShotError(f"{who}: one-shot execution timed out after {timeout_s:g} s (command: {shown})") from None
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode != 0:
        output = (stdout + stderr).decode("utf-8", "replace").strip()[-constants.ONESHOT_ERROR_OUTPUT_CHARS :]
        raise OneShotError(
            f"{who}: one-shot execution failed (command: {shown}): exit status {proc.returncode}\noutput: {output}"
        )
    return stdout.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the command and everything it started, then reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.communicate(timeout=constants.TMUX_COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        logger.warning("one-shot command %d did not exit after SIGKILL", proc.pid)


def claude_answer(output: str) -> str:
    """``structured_output`` of claude's JSON envelope, as JSON text; the output itself when it has none."""
    try:
        envelope = json.loads(output.strip())
    except ValueError:
        return output
    if isinstance(envelope, dict) and envelope.get("structured_output") is not None:
        return json.dumps(envelope["structured_output"])
    return output


def codex_answer(output: str) -> str:
    """The text of codex's last ``agent_message``; the output itself when there is none.

    Lines that are not JSON events are skipped: only the final message matters.
    """
    last = ""
    for line in output.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or event.get("type") != "item.completed":
            continue
        item = event.get("item")
        if isinstance(item, dict) and item.get("type") == "agent_message" and isinstance(item.get("text"), str):
            last = item["text"]
    return last or output

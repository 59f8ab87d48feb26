"""A fired hook's command: run beside the embedding, never in its way, and logged.

The command is split like a shell would (``shlex``) and run directly, so a label's words never
reach a shell; only a command that needs one (a pipe, a redirection, ``$VAR``, ``&&``, a glob)
runs under ``/bin/sh -c``, as its author wrote it. Each runs in a session of its own with
``MISO_HOOK_*`` variables saying what fired it, for at most ``timeout_s`` seconds (then its whole
process group is killed); stdout and stderr, the exit code and the time taken are added to the
log row. At most :data:`~miso_runtime.constants.HOOK_COMMAND_SLOTS` run at once: a firing beyond
that is logged as ``skipped`` rather than queued behind a command that hangs.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .. import constants

logger = logging.getLogger(__name__)

#: Characters that make a command need a shell (pipes, lists, redirection, expansion, globs).
_SHELL_CHARACTERS = set("|&;<>()$`*?[]{}~\n")

Report = Callable[[int, dict[str, Any]], None]


def needs_shell(command: str) -> bool:
    """Whether ``command`` uses what only a shell does (outside single quotes counts the same)."""
    return any(character in _SHELL_CHARACTERS for character in command) or _starts_with_assignment(command)


def _starts_with_assignment(command: str) -> bool:
    first = command.strip().split(" ", 1)[0]
    name, equals, _value = first.partition("=")
    return bool(equals) and name.isidentifier()


def command_argv(command: str) -> list[str]:
    """The argv ``command`` runs as (``ValueError`` for unbalanced quotes)."""
    if needs_shell(command):
        return ["/bin/sh", "-c", command]
    return shlex.split(command)


class HookCommands:
    """Runs fired hooks' commands on a few threads of their own.

    ``report(log_id, outcome)`` receives each command's outcome: ``status`` (``ok``, ``failed``,
    ``timeout``, ``not_found``, ``invalid``, ``skipped``), ``exit_code``, ``output``, ``error``,
    ``duration_ms``.
    """

    def __init__(self, report: Report, timeout_s: float = constants.HOOK_COMMAND_TIMEOUT_S) -> None:
        self._report = report
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(constants.HOOK_COMMAND_SLOTS, thread_name_prefix="hook-command")
        self._running = 0
        self._lock = threading.Lock()

    def start(self, log_id: int, command: str, env: dict[str, str]) -> None:
        """Run ``command`` for log row ``log_id`` (returns at once)."""
        with self._lock:
            if self._running >= constants.HOOK_COMMAND_SLOTS:
                busy = f"{self._running} hook commands are still running"
                self._report(log_id, {"status": "skipped", "error": busy, "exit_code": None, "output": ""})
                return
            self._running += 1
        self._pool.submit(self._run_and_report, log_id, command, env)

    def _run_and_report(self, log_id: int, command: str, env: dict[str, str]) -> None:
        try:
            outcome = run_command(command, env, self._timeout_s)
        except Exception as exc:  # noqa: BLE001 - the log says what went wrong, the worker goes on
            logger.exception("hook command failed to run")
            outcome = {"status": "failed", "error": str(exc), "exit_code": None, "output": ""}
        finally:
            with self._lock:
                self._running -= 1
        try:
            self._report(log_id, outcome)
        except Exception:  # noqa: BLE001 - a log write that fails must not end the thread
            logger.exception("could not log the outcome of hook command %d", log_id)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def run_command(command: str, env: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """Run one command to its end or its timeout; its outcome as logged."""
    began = time.monotonic()

    def outcome(status: str, exit_code: int | None, output: bytes = b"", error: str = "") -> dict[str, Any]:
        text = output.decode("utf-8", "replace")[-constants.HOOK_OUTPUT_CHARS :]
        duration = round((time.monotonic() - began) * 1000.0, 1)
        return {"status": status, "exit_code": exit_code, "output": text, "error": error, "duration_ms": duration}

    try:
        argv = command_argv(command)
    except ValueError as exc:
        return outcome("invalid", None, error=f"the command cannot be split into words: {exc}")
    if not argv:
        return outcome("invalid", None, error="the command is empty")
    try:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    except FileNotFoundError:
        return outcome("not_found", None, error=f"command not found: {argv[0]}")
    except OSError as exc:
        return outcome("failed", None, error=f"could not start {argv[0]}: {exc.strerror or exc}")
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        try:
            output, _ = process.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:  # a descendant that left the group holds the pipe
            output = b""
        return outcome("timeout", None, output, f"killed after {timeout_s:g} s")
    return outcome("ok" if process.returncode == 0 else "failed", process.returncode, output)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

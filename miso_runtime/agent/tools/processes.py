"""One shell command in a process group of its own: bounded in time and output, stoppable, leaving nothing.

``sh -c`` runs as the leader of a new session, so the command and everything it starts share
one process group, and one ``SIGKILL`` to the group stops them all, grandchildren included.
The group is killed whenever the command ends: on cancel, on timeout, when it prints more than
the output limit, and also when the shell exits normally, since a process it left in the
background would outlive the tool call (background jobs are not supported, as in Maria).

Killed processes must also be reaped, or they stay as zombies in the group (and in the process
table) for as long as nobody waits for them: the orphans of a command are reparented to init,
and in a container init may never reap them. On Linux this process therefore makes itself a
"child subreaper" (``prctl(PR_SET_CHILD_SUBREAPER)``) before its first command, so those orphans
become its own children and are waited for here, by process group. The setting lasts for the
life of the process (a task's worker): orphans of other children come to it too, as they would
have gone to init.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from ...constants import AGENT_COMMAND_POLL_S, AGENT_COMMAND_REAP_S
from ..messages import CancelToken

logger = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_subreaper_lock = threading.Lock()
_subreaper: bool | None = None


def become_subreaper() -> bool:
    """Make orphaned descendants this process's children (Linux); True when that holds."""
    global _subreaper
    with _subreaper_lock:
        if _subreaper is None:
            _subreaper = False
            if sys.platform.startswith("linux"):
                try:
                    libc = ctypes.CDLL(None, use_errno=True)
                    _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
                except (OSError, AttributeError) as exc:
                    logger.warning("cannot become a child subreaper, killed commands may stay as zombies: %s", exc)
        return _subreaper


@dataclass
class CommandRun:
    """How a command ended, and what it printed (at most the output limit, both streams together).

    ``ended`` is ``exited``, ``timed_out``, ``output_limit`` or ``cancelled``. ``status`` is
    the shell's exit status, 128 + N when a signal N ended it, None unless it was reaped
    after exiting or being killed. ``stopped_leftovers`` counts processes the command left
    running that were killed after the shell exited. ``output_cut`` says that more was
    printed than was kept (the command was stopped for it, or had already ended).
    """

    ended: str
    status: int | None
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    stopped_leftovers: int = 0
    output_cut: bool = False


def _exited_unreaped(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it: its pid, the group's id, stays reserved."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _exit_watch(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux's pidfd), or None where there is none.

    With it the wait for a command's end is one ``select`` that wakes the moment the shell
    exits; without it the loop looks every ``AGENT_COMMAND_POLL_S``, which would add up to that
    much to every command (half of it on average) once its output pipes have closed.
    """
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _reap_group(pgid: int, deadline: float) -> int:
    """Wait for the group's remaining members; returns how many a SIGKILL ended."""
    killed = 0
    while True:
        try:
            pid, status = os.waitpid(-pgid, os.WNOHANG)
        except ChildProcessError:
            pid, status = 0, 0
            if not _subreaper:
                return killed  # the rest are not ours to wait for: init reaps them
        if pid > 0:
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL:
                killed += 1
            continue
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return killed
        if time.monotonic() >= deadline:
            logger.warning("process group %d still has members after SIGKILL", pgid)
            return killed
        time.sleep(0.01)


def run_shell(
    command: str,
    cwd: Path,
    *,
    timeout_s: float,
    max_output_bytes: int,
    cancel: CancelToken,
    env: Mapping[str, str] | None = None,
    on_group: Callable[[int, bool], None] | None = None,
) -> CommandRun:
    """Run ``sh -c command`` in ``cwd`` with stdin from /dev/null until it ends one way or another.

    ``on_group(pgid, running)`` is told when the command's process group starts and once it is
    gone, so that whoever watches this process can kill the group if this process dies first
    (its orphans would otherwise go on running).
    """
    become_subreaper()
    proc = subprocess.Popen(
        ["sh", "-c", command],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env=dict(env) if env is not None else None,
        close_fds=True,
    )
    pgid = proc.pid
    if on_group is not None:
        on_group(pgid, True)
    assert proc.stdout is not None and proc.stderr is not None
    run = CommandRun(ended="exited", status=None)
    buffers = {proc.stdout.fileno(): run.stdout, proc.stderr.fileno(): run.stderr}
    selector = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        selector.register(fd, selectors.EVENT_READ)
    exit_fd = _exit_watch(proc.pid)
    if exit_fd is not None:
        selector.register(exit_fd, selectors.EVENT_READ)
    kept = 0

    def read_ready(wait_s: float) -> bool:
        """Read what the pipes have; False once the output limit is passed."""
        nonlocal kept
        for key, _ in selector.select(wait_s):
            if key.fd == exit_fd:
                continue  # the shell exited: the loop's next check sees it
            try:
                chunk = os.read(key.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(key.fd)
                continue
            room = max_output_bytes - kept
            buffers[key.fd].extend(chunk[:room])
            kept += min(room, len(chunk))
            if len(chunk) > room:
                return False
        return True

    deadline = time.monotonic() + timeout_s
    shell_exited = False
    try:
        while True:
            if cancel.cancelled:
                run.ended = "cancelled"
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.ended = "timed_out"
                break
            if _exited_unreaped(proc.pid):
                shell_exited = True
                break
            wait_s = min(AGENT_COMMAND_POLL_S, remaining)
            if selector.get_map():
                if not read_ready(wait_s):
                    run.ended = "output_limit"
                    run.output_cut = True
                    break
            else:
                cancel.event.wait(wait_s)
    finally:
        if exit_fd is not None:
            selector.unregister(exit_fd)
            os.close(exit_fd)
        _kill_group(pgid)
        returncode = proc.wait()
        reap_deadline = time.monotonic() + AGENT_COMMAND_REAP_S
        stopped = _reap_group(pgid, reap_deadline)
        # What the command wrote before it was stopped is still in the pipes.
        if run.ended != "cancelled" and not run.output_cut:
            while selector.get_map() and time.monotonic() < reap_deadline:
                if not read_ready(min(AGENT_COMMAND_POLL_S, reap_deadline - time.monotonic())):
                    run.output_cut = True
                    break
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
        if on_group is not None:
            on_group(pgid, False)
    if run.ended in ("exited", "output_limit"):
        run.status = returncode if returncode >= 0 else 128 - returncode
    if shell_exited:
        run.stopped_leftovers = stopped
    return run

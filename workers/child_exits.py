"""Exit statuses of worker processes, also where gevent's event loop reaps them first.

Once anything in the server process has run a command through gevent's patched ``subprocess``
(git, tmux, a CLI model target), libev answers every SIGCHLD with ``waitpid(-1)``: it reaps
every child of the process, the workers included. ``multiprocessing`` then finds nothing left
to wait for, its ``exitcode`` stays None, and ``/v1/status`` could not say that a worker was
killed. A libev child watcher started with each worker keeps the status libev reaped.

Without gevent (the tests of the supervisor, a plain ``python -c``) multiprocessing's own wait
is enough and a watch records nothing. As in ``native_lock``, gevent is looked up only if it is
already loaded, so this module imports nothing of it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

#: Seconds to wait for the event loop to hand over a status it reaped, once the worker's pipes
#: have closed (it runs the watcher's callback on its next turn, so this is an upper bound).
HANDOVER_WAIT_S = 2.0
HANDOVER_POLL_S = 0.02


def _patched_event_loop() -> Any:
    """gevent's default loop when this thread runs on it in a monkey-patched process, else None."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not (monkey.is_module_patched("os") and monkey.is_module_patched("threading")):
        return None
    # With threading patched, the supervisor's threads are greenlets of the main thread's hub, whose
    # loop is libev's default one: the only loop that can watch children.
    loop = sys.modules["gevent.hub"].get_hub().loop
    return loop if getattr(loop, "default", False) else None


class ChildExitWatch:
    """The exit status of one child process as libev reaped it, if libev did."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._code: int | None = None
        self._watcher: Any = None
        loop = _patched_event_loop()
        if loop is not None:
            self._watcher = loop.child(pid, False, ref=False)
            self._watcher.start(self._reaped)

    def _reaped(self) -> None:
        status = self._watcher.rstatus
        self._watcher.stop()
        self._code = os.waitstatus_to_exitcode(status)

    def exit_code(self) -> int | None:
        """The status in multiprocessing's convention (negative for a signal), waiting briefly for it.

        None where no watcher was started (no gevent) or libev did not reap this child.
        """
        if self._watcher is None:
            return None
        deadline = time.monotonic() + HANDOVER_WAIT_S
        while self._code is None and time.monotonic() < deadline:
            time.sleep(HANDOVER_POLL_S)
        return self._code

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()

"""The entry point of every worker process (runs in the child, never imports gevent).

It watches the parent (a worker must not outlive the server), forwards the worker's log
records to the server as ``LogLine`` events, then calls the worker's ``module:function`` with
a :class:`Channel` to the server.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from .protocol.base import Command, Event, LogLine, WorkerStarted

#: Seconds between checks that the parent is alive; a worker exits within about this long.
PARENT_POLL_S = 0.25


class Channel:
    """The worker's end of its two pipes: commands in, events out."""

    def __init__(self, inbox: Connection, outbox: Connection) -> None:
        self._inbox = inbox
        self._outbox = outbox
        self._send_lock = threading.Lock()

    def send(self, event: Event) -> None:
        with self._send_lock:
            self._outbox.send(event)

    def receive(self, timeout: float | None = None) -> Command | None:
        """The next command, or None when none came within ``timeout`` seconds."""
        if timeout is not None and not self._inbox.poll(timeout):
            return None
        return self._inbox.recv()

    def pending(self) -> bool:
        """Whether a command is waiting (cheap: checks the pipe without blocking)."""
        return self._inbox.poll(0)


class _ForwardLogs(logging.Handler):
    def __init__(self, channel: Channel) -> None:
        super().__init__(logging.INFO)
        self._channel = channel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._channel.send(LogLine(record.levelname, self.format(record), int(record.created * 1000)))
        except (OSError, ValueError):
            pass  # the server is gone; the parent watch ends us


def _watch_parent(parent_pid: int) -> None:
    """Exit the whole process when the parent is gone (we are reparented)."""
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(PARENT_POLL_S)


def worker_main(target: str, inbox: Connection, outbox: Connection, parent_pid: int, options: dict[str, Any]) -> None:
    """Run one worker: ``target`` is ``package.module:function(channel, options)``."""
    # The server's stdout carries only its ready line: anything a worker or a native library
    # prints goes to stderr instead.
    os.dup2(2, 1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()
    channel = Channel(inbox, outbox)
    root = logging.getLogger()
    root.handlers[:] = [_ForwardLogs(channel)]
    root.setLevel(logging.INFO)
    channel.send(WorkerStarted(os.getpid()))
    module_name, _, function_name = target.partition(":")
    run = getattr(importlib.import_module(module_name), function_name)
    run(channel, options)

"""Starting, watching, restarting and stopping worker processes, from the server process.

Each worker gets two one-way pipes. A pump thread per worker waits on the event pipe with
``select`` (which gevent patches in the server, so the wait never blocks the hub) and hands
each event to ``on_event``. End of file on that pipe means the worker died: ``on_exit`` is
called at once (so requests waiting on it end with an error instead of hanging) and the
worker is started again after an exponential backoff.

This module uses only ``threading`` and ``select``; it never imports gevent. Where gevent's loop
reaps a worker before multiprocessing can, ``child_exits`` keeps its exit status.
"""

from __future__ import annotations

import logging
import multiprocessing
import select
import threading
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

from .child_exits import ChildExitWatch
from .protocol.base import Command, Event, Shutdown, WorkerSpec, WorkerStarted
from .runner import worker_main

logger = logging.getLogger(__name__)

#: Restart backoff: first delay, growth factor and cap, in seconds. A worker that stayed up for
#: ``STABLE_AFTER_S`` gets its backoff reset.
RESTART_FIRST_S = 0.5
RESTART_FACTOR = 2.0
RESTART_CAP_S = 15.0
STABLE_AFTER_S = 30.0
#: Seconds a worker gets to exit after ``Shutdown`` before it is terminated, then killed.
STOP_GRACE_S = 2.0
#: Seconds between checks of the event pipe when it is idle (bounds how fast a stop is seen).
PUMP_POLL_S = 0.5


@dataclass(frozen=True)
class RestartPolicy:
    """How a crashed worker is started again (``/v1/settings/daemon-watchdog``).

    The first restart waits ``first_s`` seconds, each further one ``factor`` times longer up
    to ``cap_s``; a worker that stayed up ``stable_after_s`` starts over at ``first_s``.
    ``enabled=False`` leaves a crashed worker down until the policy is enabled again.
    """

    enabled: bool = True
    first_s: float = RESTART_FIRST_S
    factor: float = RESTART_FACTOR
    cap_s: float = RESTART_CAP_S
    stable_after_s: float = STABLE_AFTER_S


class WorkerState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    #: Crashed and left down because the restart policy is disabled.
    CRASHED = "crashed"
    STOPPED = "stopped"


class WorkerUnavailable(Exception):
    """A command could not be delivered: the worker is down or restarting."""


@dataclass
class WorkerStatus:
    name: str
    state: WorkerState
    pid: int | None
    restarts: int
    last_exit_code: int | None
    started_at_ms: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": str(self.state),
            "pid": self.pid,
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "started_at_ms": self.started_at_ms,
        }


EventHandler = Callable[[str, Event], None]
ExitHandler = Callable[[str, int | None], None]


class Worker:
    """One named worker process, restarted when it dies."""

    def __init__(self, spec: WorkerSpec, on_event: EventHandler, on_exit: ExitHandler) -> None:
        self.spec = spec
        self._on_event = on_event
        self._on_exit = on_exit
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._process: Any = None
        self._commands: Any = None
        self._stopping = False
        self.policy = RestartPolicy()
        self._backoff_s = self.policy.first_s
        self._status = WorkerStatus(spec.name, WorkerState.STOPPED, None, 0, None, None)

    @property
    def status(self) -> WorkerStatus:
        with self._lock:
            return WorkerStatus(**vars(self._status))

    def start(self) -> None:
        """Start the process and its pump thread."""
        command_reader, command_writer = self._context.Pipe(duplex=False)
        event_reader, event_writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(
                self.spec.target,
                command_reader,
                event_writer,
                multiprocessing.current_process().pid,
                self.spec.options,
            ),
            name=f"miso-{self.spec.name}",
            daemon=True,
        )
        process.start()
        exit_watch = ChildExitWatch(process.pid)
        command_reader.close()
        event_writer.close()
        with self._lock:
            self._process = process
            self._commands = command_writer
            self._status.state = WorkerState.STARTING
            self._status.pid = process.pid
            self._status.started_at_ms = int(time.time() * 1000)
        threading.Thread(
            target=self._pump, args=(process, exit_watch, event_reader), name=f"pump-{self.spec.name}", daemon=True
        ).start()
        logger.info("worker %s started (pid %s)", self.spec.name, process.pid)

    def send(self, command: Command) -> None:
        """Deliver a command; raises WorkerUnavailable when the worker is not up."""
        with self._lock:
            writer = self._commands
            up = self._status.state in (WorkerState.STARTING, WorkerState.RUNNING)
            if writer is None or not up:
                raise WorkerUnavailable(f"the {self.spec.name} worker is {self._status.state}")
            try:
                writer.send(command)
            except (OSError, ValueError) as exc:
                raise WorkerUnavailable(f"the {self.spec.name} worker is gone: {exc}") from exc

    def _pump(self, process: Any, exit_watch: ChildExitWatch, events: Any) -> None:
        """Forward events until the pipe ends (the worker exited), then handle the exit."""
        try:
            while True:
                readable, _, _ = select.select([events], [], [], PUMP_POLL_S)
                if not readable:
                    if not process.is_alive() and not events.poll(0):
                        break
                    continue
                event = events.recv()
                if isinstance(event, WorkerStarted):
                    with self._lock:
                        self._status.state = WorkerState.RUNNING
                self._on_event(self.spec.name, event)
        except (EOFError, OSError):
            pass
        finally:
            events.close()
        process.join(timeout=5)
        code = process.exitcode
        if code is None:
            code = exit_watch.exit_code()
        exit_watch.close()
        self._exited(process, code)

    def _exited(self, process: Any, code: int | None) -> None:
        with self._lock:
            if self._process is not process:
                return
            ran_s = time.time() - (self._status.started_at_ms or 0) / 1000
            self._status.last_exit_code = code
            self._status.pid = None
            if self._commands is not None:
                self._commands.close()
                self._commands = None
            stopping = self._stopping
            policy = self.policy
            restart = not stopping and policy.enabled
            if stopping:
                self._status.state = WorkerState.STOPPED
            else:
                self._status.state = WorkerState.RESTARTING if restart else WorkerState.CRASHED
            if ran_s > policy.stable_after_s:
                self._backoff_s = policy.first_s
            delay = min(self._backoff_s, policy.cap_s)
            self._backoff_s = min(policy.cap_s, delay * policy.factor)
        if restart:
            logger.warning("worker %s exited with code %s; restarting in %.1f s", self.spec.name, code, delay)
        elif not stopping:
            logger.warning("worker %s exited with code %s; the watchdog is off, it stays down", self.spec.name, code)
        self._on_exit(self.spec.name, code)
        if restart:
            threading.Thread(target=self._restart_after, args=(delay,), daemon=True).start()

    def set_policy(self, policy: RestartPolicy) -> None:
        """Use ``policy`` from the next exit on; a worker left down by a disabled policy starts now."""
        with self._lock:
            self.policy = policy
            self._backoff_s = min(max(self._backoff_s, policy.first_s), policy.cap_s)
            revive = policy.enabled and self._status.state is WorkerState.CRASHED and not self._stopping
            if revive:
                self._status.state = WorkerState.RESTARTING
                self._status.restarts += 1
        if revive:
            self.start()

    def _restart_after(self, delay: float) -> None:
        time.sleep(delay)
        with self._lock:
            if self._stopping:
                return
            self._status.restarts += 1
        self.start()

    def stop(self, timeout: float = STOP_GRACE_S) -> None:
        """Ask the worker to exit, then terminate and kill it if it does not."""
        with self._lock:
            self._stopping = True
            process = self._process
        if process is None:
            return
        try:
            self.send(Shutdown())
        except WorkerUnavailable:
            pass
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
        with self._lock:
            self._status.state = WorkerState.STOPPED
            self._status.pid = None


class Supervisor:
    """The workers of this server process."""

    def __init__(self) -> None:
        self._workers: dict[str, Worker] = {}
        self._event_handlers: dict[str, list[EventHandler]] = {}
        self._exit_handlers: dict[str, list[ExitHandler]] = {}

    def add(self, spec: WorkerSpec) -> Worker:
        worker = Worker(spec, self._dispatch_event, self._dispatch_exit)
        self._workers[spec.name] = worker
        return worker

    def on_event(self, name: str, handler: EventHandler) -> None:
        self._event_handlers.setdefault(name, []).append(handler)

    def on_exit(self, name: str, handler: ExitHandler) -> None:
        self._exit_handlers.setdefault(name, []).append(handler)

    def _dispatch_event(self, name: str, event: Event) -> None:
        for handler in self._event_handlers.get(name, ()):
            try:
                handler(name, event)
            except Exception:  # noqa: BLE001 - one bad handler must not stop the pump
                logger.exception("handler for %s event %s failed", name, type(event).__name__)

    def _dispatch_exit(self, name: str, code: int | None) -> None:
        for handler in self._exit_handlers.get(name, ()):
            try:
                handler(name, code)
            except Exception:  # noqa: BLE001
                logger.exception("exit handler for %s failed", name)

    def get(self, name: str) -> Worker:
        return self._workers[name]

    def start_all(self) -> None:
        for worker in self._workers.values():
            worker.start()

    def stop_all(self, timeout: float = STOP_GRACE_S) -> None:
        """Stop every worker in parallel; returns within about ``timeout`` + 2 s."""
        threads = [threading.Thread(target=worker.stop, args=(timeout,)) for worker in self._workers.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def status(self) -> list[dict[str, Any]]:
        return [worker.status.to_dict() for worker in self._workers.values()]

    def set_policy(self, policy: RestartPolicy) -> None:
        """Apply one restart policy to every worker."""
        for worker in self._workers.values():
            worker.set_policy(policy)

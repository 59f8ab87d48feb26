"""Calls into a worker process: the server asks, a worker thread answers.

Why: the ``agents`` worker owns git and tmux, and most of what the schmux routes do is a
request with one answer (spawn, dispose, scan, rename). Rather than one command and one event
type per operation, a worker publishes plain methods and the server calls them by name;
errors come back as an HTTP status, code and message, so a face renders them like its own.

:class:`RpcClient` runs in the server (plain ``threading``: gevent's there), :func:`answer`
in the worker. This module imports nothing from ``miso_runtime``: an error raised by a published
method is recognised by its ``status``/``code``/``message`` attributes (``MisoError`` has them), and
the client raises errors through the ``error`` factory it is given.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from .protocol.rpc import Call, CallDone

logger = logging.getLogger(__name__)


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


class RpcError(Exception):
    """A failed call as an HTTP status, a stable code and a message (the default error factory)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


ErrorFactory = Callable[[int, str, str], Exception]


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    answer: CallDone | None = None


class RpcClient:
    """The server's side: :meth:`call` sends a :class:`Call` and waits for its :class:`CallDone`."""

    def __init__(self, worker: CommandSink, worker_name: str, error: ErrorFactory = RpcError) -> None:
        self._worker = worker
        self._name = worker_name
        self._error = error
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}

    def call(self, method: str, timeout_s: float, **args: Any) -> Any:
        """The method's result; its error through the error factory; 503 when the worker is down or dies."""
        call_id = uuid.uuid4().hex
        pending = _Pending()
        with self._lock:
            self._pending[call_id] = pending
        try:
            try:
                self._worker.send(Call(call_id, method, args))
            except Exception as exc:  # noqa: BLE001 - WorkerUnavailable or a closed pipe
                raise self._error(503, "worker_unavailable", f"the {self._name} worker is not running: {exc}") from None
            if not pending.done.wait(timeout_s):
                raise self._error(
                    504, "worker_timeout", f"the {self._name} worker did not answer {method} in {timeout_s:g} s"
                )
        finally:
            with self._lock:
                self._pending.pop(call_id, None)
        answer = pending.answer
        assert answer is not None
        if answer.status >= 400:
            raise self._error(answer.status, answer.code, answer.message)
        return answer.result

    def handle_event(self, _name: str, event: Any) -> None:
        if isinstance(event, CallDone):
            with self._lock:
                pending = self._pending.get(event.call_id)
            if pending is not None:
                pending.answer = event
                pending.done.set()

    def handle_exit(self, _name: str, code: int | None) -> None:
        """The worker died: every call waiting on it ends now with a 503."""
        with self._lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.answer = CallDone(
                "", status=503, code="worker_exited", message=f"the {self._name} worker exited (code {code})"
            )
            pending.done.set()


def answer(methods: dict[str, Callable[..., Any]], call: Call) -> CallDone:
    """Run ``call`` against the published ``methods`` (in the worker) and build its answer."""
    method = methods.get(call.method)
    if method is None:
        return CallDone(call.call_id, status=404, code="no_such_method", message=f"no method {call.method!r}")
    try:
        return CallDone(call.call_id, result=method(**call.args))
    except Exception as exc:  # noqa: BLE001 - one failed call must not end the worker
        status = getattr(exc, "status", None)
        if isinstance(status, int) and isinstance(getattr(exc, "code", None), str):
            return CallDone(call.call_id, status=status, code=exc.code, message=str(getattr(exc, "message", exc)))
        if isinstance(exc, TypeError):
            return CallDone(call.call_id, status=400, code="invalid_request", message=str(exc))
        logger.exception("%s failed", call.method)
        return CallDone(call.call_id, status=500, code="internal_error", message=f"{call.method} failed: {exc}")

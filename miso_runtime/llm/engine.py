"""The local LLM service: the ``llm`` worker's model, its FIFO of jobs, and request routing.

One job runs at a time: a generation, or a model load (so a switch waits for the requests
admitted before it, and requests admitted after it wait for the new model). Every job gets
its own event queue; the supervisor's pump hands each worker event to :meth:`handle_event`,
which routes it by request id. When the worker dies, every waiting request ends at once
with an error, and the model that was loaded is loaded again after the restart.

Plain ``threading`` only: in the server those primitives are gevent's, elsewhere real ones.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Iterator, Protocol

from workers.protocol.base import LogLine, WorkerStarted
from workers.protocol.llm import (
    Abort,
    Generate,
    GenerationDone,
    GenerationFailed,
    GenerationParams,
    LoadModel,
    ModelLoaded,
    ModelLoadFailed,
    ModelUnloaded,
    TextChunk,
    ToolCallDelta,
    ToolRequest,
    UnloadModel,
)

from .. import constants
from ..errors import MisoError

logger = logging.getLogger(__name__)


class LlmState(StrEnum):
    STOPPED = "stopped"
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


#: A model to load, resolved from the catalog and the LLM settings: exactly the worker's command.
ModelSpec = LoadModel


# What a generation yields to its caller.
@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next after the job that is running


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class ToolCallPiece:
    """A piece of tool call ``index``: the first has ``id`` and ``name``, later ones ``arguments`` text."""

    index: int
    id: str | None
    name: str | None
    arguments: str


#: The end of a generation, as the worker reported it (finish reason, token counts, speed).
Finished = GenerationDone


class GenerationError(Exception):
    """A generation failed; ``status`` is what an HTTP caller should answer if nothing was sent yet."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_STATUS_BY_CODE = {"context_overflow": 400, "invalid_request": 400, "no_model": 409, "aborted": 499}


@dataclass
class _Job:
    id: str
    events: "queue.Queue[Any]" = field(default_factory=queue.Queue)
    started: bool = False
    done: bool = False


@dataclass
class _GenerationJob(_Job):
    command: Generate | None = None


@dataclass
class _LoadJob(_Job):
    spec: ModelSpec | None = None


class LocalLLM:
    """Serves generations from the ``llm`` worker, one at a time, in arrival order."""

    def __init__(self, worker: CommandSink, publish: Callable[[str, dict], None], max_queue: int) -> None:
        self._worker = worker
        self._publish = publish
        self.max_queue = max_queue
        self._lock = threading.RLock()
        self._jobs: deque[_Job] = deque()
        self._current: _Job | None = None
        self._state = LlmState.STOPPED
        self._model: ModelSpec | None = None
        self._loaded_n_ctx: int | None = None
        self._error: str | None = None
        self._last_tokens_per_s: float | None = None
        self._logs: deque[dict[str, Any]] = deque(maxlen=constants.LLM_LOG_LINES)
        self._ids = itertools.count(1)
        #: The model to load again once a crashed worker is back.
        self._restart_model: ModelSpec | None = None

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            waiting = sum(1 for job in self._jobs if isinstance(job, _GenerationJob))
            running = isinstance(self._current, _GenerationJob)
            return {
                "state": str(self._state),
                "model": self._model.name if self._model else None,
                "model_path": self._model.path if self._model else None,
                "n_ctx": self._loaded_n_ctx,
                "chat_format": self._model.chat_format if self._model else None,
                "queue_length": waiting,
                "generating": running,
                "last_tokens_per_s": self._last_tokens_per_s,
                "error": self._error,
            }

    @property
    def loaded_model(self) -> str | None:
        with self._lock:
            return self._model.name if self._model and self._state == LlmState.READY else None

    def logs(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._logs)[-limit:]

    def _set_state(self, state: LlmState, error: str | None = None) -> None:
        self._state = state
        self._error = error
        self._publish("llm:status", self.status())

    # --- jobs -------------------------------------------------------------------------------

    def _admit(self, job: _Job) -> None:
        with self._lock:
            self._jobs.append(job)
            self._run_next()
            self._tell_positions()

    def _run_next(self) -> None:
        """Start the job at the head of the FIFO when nothing runs (lock held)."""
        while self._current is None and self._jobs:
            job = self._jobs.popleft()
            try:
                if isinstance(job, _LoadJob):
                    assert job.spec is not None
                    self._state = LlmState.LOADING
                    self._worker.send(job.spec)
                    self._publish("llm:status", self.status())
                else:
                    assert isinstance(job, _GenerationJob) and job.command is not None
                    if self._state != LlmState.READY:
                        self._finish(
                            job,
                            GenerationError(
                                409, "no_model", "no model is loaded: start the LLM server or pick a model"
                            ),
                        )
                        continue
                    self._worker.send(job.command)
            except Exception as exc:  # noqa: BLE001 - the worker is down: the job fails at once
                self._finish(job, GenerationError(503, "worker_unavailable", str(exc)))
                continue
            job.started = True
            self._current = job

    def _tell_positions(self) -> None:
        position = 0
        for job in self._jobs:
            if isinstance(job, _GenerationJob):
                position += 1
                job.events.put(Queued(position))

    def _finish(self, job: _Job, outcome: Any) -> None:
        job.done = True
        job.events.put(outcome)

    def _complete_current(self, outcome: Any) -> None:
        with self._lock:
            job = self._current
            self._current = None
            if job is not None:
                self._finish(job, outcome)
            self._run_next()
            self._tell_positions()

    # --- worker events ----------------------------------------------------------------------

    def handle_event(self, _worker: str, event: Any) -> None:
        """Route one event from the worker (called by the supervisor's pump)."""
        if isinstance(event, TextChunk):
            current = self._current
            if current is not None and current.id == event.request_id:
                current.events.put(Text(event.text))
        elif isinstance(event, ToolCallDelta):
            current = self._current
            if current is not None and current.id == event.request_id:
                current.events.put(ToolCallPiece(event.index, event.id, event.name, event.arguments))
        elif isinstance(event, GenerationDone):
            self._last_tokens_per_s = round(event.tokens_per_s, 2)
            self._complete_current(event)
        elif isinstance(event, GenerationFailed):
            status = _STATUS_BY_CODE.get(event.code, 500)
            self._complete_current(GenerationError(status, event.code, event.message))
        elif isinstance(event, ModelLoaded):
            with self._lock:
                job = self._current
                if isinstance(job, _LoadJob) and job.spec is not None:
                    self._model = job.spec
                self._loaded_n_ctx = event.n_ctx
                self._set_state(LlmState.READY)
            self._complete_current(event)
        elif isinstance(event, ModelLoadFailed):
            with self._lock:
                still = event.still_loaded
                if still is None:
                    self._model = None
                    self._loaded_n_ctx = None
                self._set_state(LlmState.READY if still else LlmState.ERROR, event.message)
            self._complete_current(event)
        elif isinstance(event, ModelUnloaded):
            with self._lock:
                self._model = None
                self._loaded_n_ctx = None
                self._set_state(LlmState.STOPPED)
        elif isinstance(event, LogLine):
            with self._lock:
                self._logs.append({"ts_ms": event.ts_ms, "level": event.level, "message": event.message})
            logger.log(logging.getLevelName(event.level), "llm worker: %s", event.message)
        elif isinstance(event, WorkerStarted):
            self._reload_after_restart()

    def handle_exit(self, _worker: str, code: int | None) -> None:
        """The worker died: end every waiting request now."""
        error = GenerationError(503, "worker_crashed", f"the LLM worker stopped unexpectedly (exit code {code})")
        with self._lock:
            self._restart_model = self._model if self._state in (LlmState.READY, LlmState.LOADING) else None
            jobs = ([self._current] if self._current else []) + list(self._jobs)
            self._current = None
            self._jobs.clear()
            for job in jobs:
                self._finish(job, error)
            self._loaded_n_ctx = None
            self._set_state(LlmState.ERROR, error.message)

    def _reload_after_restart(self) -> None:
        with self._lock:
            spec = self._restart_model
            self._restart_model = None
        if spec is not None:
            logger.info("reloading %s after the worker restarted", spec.name)
            self._admit(_LoadJob(id=f"load-{next(self._ids)}", spec=spec))

    # --- operations -------------------------------------------------------------------------

    def load(self, spec: ModelSpec, timeout_s: float = constants.LLM_LOAD_TIMEOUT_S) -> dict[str, Any]:
        """Load ``spec`` after the jobs already admitted; the old model stays if this one fails."""
        job = _LoadJob(id=f"load-{next(self._ids)}", spec=spec)
        self._admit(job)
        try:
            outcome = job.events.get(timeout=timeout_s)
        except queue.Empty:
            raise MisoError(504, "load_timeout", f"loading {spec.name} took longer than {timeout_s:.0f} s") from None
        if isinstance(outcome, GenerationError):
            raise MisoError(outcome.status, outcome.code, outcome.message)
        if isinstance(outcome, ModelLoadFailed):
            kept = f"; {outcome.still_loaded} is still loaded" if outcome.still_loaded else ""
            raise MisoError(422, "model_load_failed", f"could not load {spec.name}: {outcome.message}{kept}")
        return self.status()

    def stop(self) -> dict[str, Any]:
        """Abort what runs, fail what waits, and free the model."""
        error = GenerationError(503, "server_stopped", "the local LLM server was stopped")
        with self._lock:
            waiting = list(self._jobs)
            self._jobs.clear()
            for job in waiting:
                self._finish(job, error)
            if isinstance(self._current, _GenerationJob):
                self._send(Abort(self._current.id))
        self._send(UnloadModel())
        return self.status()

    def abort(self, request_id: str | None = None) -> bool:
        """Stop a generation (the running one when ``request_id`` is None); True if one was found."""
        with self._lock:
            current = self._current
            if isinstance(current, _GenerationJob) and request_id in (None, current.id):
                self._send(Abort(current.id))
                return True
            for job in list(self._jobs):
                if isinstance(job, _GenerationJob) and job.id == request_id:
                    self._jobs.remove(job)
                    self._finish(job, GenerationError(499, "aborted", "the request was aborted"))
                    self._tell_positions()
                    return True
        return False

    def _send(self, command: Any) -> None:
        try:
            self._worker.send(command)
        except Exception as exc:  # noqa: BLE001 - a dead worker has nothing to stop
            logger.info("could not send %s: %s", type(command).__name__, exc)

    def generate(
        self,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        request_id: str | None = None,
        tools: ToolRequest | None = None,
    ) -> Iterator[Queued | Text | ToolCallPiece | Finished]:
        """Yield ``Queued`` while waiting, ``Text`` and ``ToolCallPiece`` pieces, then ``Finished``.

        Raises GenerationError. ``tools`` offers the model functions to call (``ToolCallPiece``s
        then stream the calls, and ``Finished.finish_reason`` is ``tool_calls``).

        Closing the iterator aborts the generation (or leaves the queue): a client that goes
        away stops the model within one token.
        """
        with self._lock:
            waiting = sum(1 for job in self._jobs if isinstance(job, _GenerationJob))
            if self._current is not None and waiting >= self.max_queue:
                raise MisoError(
                    503,
                    "queue_full",
                    f"{waiting} requests are already waiting; try again shortly",
                    {"Retry-After": str(constants.LLM_RETRY_AFTER_S)},
                )
        job = _GenerationJob(id=request_id or f"gen-{uuid.uuid4().hex[:12]}")
        job.command = Generate(job.id, messages, params, tools)
        self._admit(job)
        finished = False
        try:
            while True:
                item = job.events.get()
                if isinstance(item, GenerationError):
                    finished = True
                    raise item
                if isinstance(item, (ModelLoaded, ModelLoadFailed)):
                    continue
                if isinstance(item, Finished):
                    finished = True
                    yield item
                    return
                yield item
        finally:
            if not finished:
                self.abort(job.id)


def new_request_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def now_s() -> int:
    return int(time.time())

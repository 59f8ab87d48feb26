"""Agent tasks: each owns a cwd and a conversation, and runs its agent in a process of its own.

Who owns what:

- the store (face ``maria``) keeps every task as a thread (its metadata: cwd, model name,
  tool switches) and its whole event log as thread events, so after a restart every task is
  back as ``stopped`` with its timeline;
- a task's *process* (``workers/task_worker.py``) holds the agent: the conversation, the
  queue, the run in progress. It is started when the task is created or gets a message, and
  stopped after ``idle_stop_secs`` idle (Maria's ``stopped``; the next message resumes it from
  the log). If it dies, only this task fails: ``Failed`` goes into its log, its status goes
  back to ``idle`` and the next message starts a new process;
- this service sees every event on its way into the log and keeps the status Maria's daemon
  derives from them (``PreConversation`` -> ``generating``; ``PostConversation``, ``Failed``,
  ``Cancelled`` -> ``idle``), announcing each change as ``daemon.task.changed``.

At most one task with a process (``idle`` or ``generating``) owns a cwd.
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from workers.protocol.base import LogLine, WorkerSpec
from workers.protocol.tasks import AGENT_EVENT, QUEUE_SNAPSHOT, TEXT_DELTA, CommandGroup, TaskEvent
from workers.rpc import RpcClient
from workers.supervisor import RestartPolicy, Worker

from .. import constants
from ..agent import events as agent_events
from ..agent.prompts import maria_system_prompt
from ..agent.tools.registry import maria_tools
from ..errors import MisoError
from ..settings_files import SettingsFile
from ..store.conversations import ConversationStore
from .launch import TaskLaunch
from .logs import DaemonLog, LogEntry, TaskLog
from .model_choice import ProviderAccess, requested_ref, resolve, spec_for
from .settings import TasksConfig

logger = logging.getLogger(__name__)

FACE = "maria"
TASK_WORKER_TARGET = "workers.task_worker:run"
#: Event names of the task-list stream.
TASKS_SYNCHRONIZED = "daemon.tasks.synchronized"
TASK_CHANGED = "daemon.task.changed"


class TaskConflict(MisoError):
    """Maria's 409: a task with a process already owns this cwd (``existing`` is that task)."""

    def __init__(self, cwd: str, existing: dict[str, Any]) -> None:
        super().__init__(409, "cwd_busy", f"A running task already exists for the specified 'cwd': {cwd}")
        self.cwd = cwd
        self.existing = existing


class CwdMissing(MisoError):
    def __init__(self, message: str, cwd: str) -> None:
        super().__init__(404, "cwd_not_found", message)
        self.cwd = cwd


@dataclass
class TaskProcess:
    """One life of a task's worker process."""

    worker: Worker
    rpc: RpcClient
    stopping: bool = False
    #: Process groups of the commands it runs now (killed if the process dies first).
    command_groups: set[int] = field(default_factory=set)


@dataclass
class TaskRecord:
    id: str
    cwd: str
    model: str
    created: int
    updated: int
    name: str | None = None
    web_search: bool = False
    enabled_tools: list[str] | None = None
    status: str = "stopped"
    #: When the task last became idle (monotonic seconds): an idle task stops after ``idle_stop_secs``.
    idle_since: float = field(default_factory=time.monotonic)
    queued: list[dict[str, Any]] = field(default_factory=list)
    process: TaskProcess | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def owns_cwd(self) -> bool:
        return self.status != "stopped"

    def metadata(self) -> dict[str, Any]:
        return {
            "cwd": self.cwd,
            "model": self.model,
            "name": self.name,
            "web_search": self.web_search,
            "enabled_tools": self.enabled_tools,
        }

    def wire(self) -> dict[str, Any]:
        """Maria's task JSON: a stopped task has no queue or model, and ``name`` is left out when there is none."""
        task: dict[str, Any] = {
            "id": self.id,
            "cwd": self.cwd,
            "status": self.status,
            "created": self.created,
            "updated": self.updated,
            "web_search": self.web_search,
        }
        if self.status != "stopped":
            task.update(queued_messages=list(self.queued), model=self.model)
        if self.name is not None:
            task["name"] = self.name
        return task


#: Told ``(task, name, data)`` of every event of every task as it happens: each stored one
#: (``AGENT_EVENT``, ``QUEUE_SNAPSHOT``) once it is in the log, and each ``TEXT_DELTA``, which is
#: never stored. Called on the hub (the worker's pump), so it must not block.
Observer = Callable[["TaskRecord", str, Any], None]


class TaskService:
    """Every task of one face; see the module docstring.

    ``face`` is the store's face of its threads: ``maria`` for Maria's tasks, ``caco`` for Caco's
    chat sessions, which are the same agents with Caco's tools (``profile``) and the workbench's
    places in their launch (``workbench``, called at each process start).
    """

    def __init__(
        self,
        conversations: ConversationStore,
        config: SettingsFile[TasksConfig],
        access: ProviderAccess,
        *,
        face: str = FACE,
        profile: str = "maria",
        workbench: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._store = conversations
        self.config = config
        self._access = access
        self.face = face
        self._profile = profile
        self._workbench = workbench
        self._observers: list[Observer] = []
        self._records: dict[str, TaskRecord] = {}
        self._logs: dict[str, TaskLog] = {}
        self.daemon_log = DaemonLog()
        self._closing = False
        for thread in conversations.list_threads(face, limit=constants.SQLITE_MAX_INT):
            meta = thread.metadata
            self._records[thread.id] = TaskRecord(
                id=thread.id,
                cwd=str(meta.get("cwd") or ""),
                model=str(meta.get("model") or constants.TASK_UI_MODEL),
                created=thread.created_at_ms,
                updated=thread.updated_at_ms,
                name=meta.get("name"),
                web_search=bool(meta.get("web_search")),
                enabled_tools=meta.get("enabled_tools"),
            )

    @property
    def conversations(self) -> ConversationStore:
        return self._store

    @property
    def access(self) -> ProviderAccess:
        """How this service's agents reach each provider (another face's service shares it)."""
        return self._access

    def observe(self, observer: Observer) -> None:
        """Have ``observer`` told every event from now on (see :data:`Observer`)."""
        self._observers.append(observer)

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        threading.Thread(target=self._stop_idle_processes, name="task-idle-stop", daemon=True).start()

    def stop(self) -> None:
        """Stop every task process (in parallel; each within a few seconds)."""
        self._closing = True
        stopping = [_stop(record.process) for record in list(self._records.values()) if record.process is not None]
        for thread in stopping:
            thread.join()

    # --- reading ----------------------------------------------------------------------------

    def get(self, task_id: str) -> TaskRecord:
        record = self._records.get(task_id)
        if record is None:
            raise MisoError(404, "task_not_found", f"Task not found: {task_id}")
        return record

    def list(self) -> list[TaskRecord]:
        return sorted(self._records.values(), key=lambda record: record.created, reverse=True)

    def log(self, task_id: str) -> TaskLog:
        """The task's log, loaded from the store on first use.

        A run cut off by a restart of the runtime (its last ``PreConversation`` has no end) is
        closed with ``Failed`` first, so the timeline says what happened and the status agrees.
        """
        log = self._logs.get(task_id)
        if log is None:
            self.get(task_id)
            entries = [LogEntry(event.seq, event.type, event.payload) for event in self._store.events(task_id)]
            log = self._logs.setdefault(task_id, TaskLog(entries))
            if _run_left_open(entries) and self._records[task_id].process is None:
                failed = agent_events.failed("runtime_restarted", "the runtime stopped while the task was running")
                self._append(task_id, AGENT_EVENT, agent_events.envelope(failed))
        return log

    # --- creating and messaging -------------------------------------------------------------

    def create(
        self,
        *,
        name: str | None,
        model: str | None,
        cwd: str | None,
        web_search: bool,
        message: str | None,
        check_model: bool = True,
    ) -> tuple[TaskRecord, dict[str, Any] | None]:
        """Maria's ``POST /v1/task``: check the model and cwd, then forward the message.

        The task is ``idle`` (it owns its cwd) from here on; its process starts with its first
        message, or with the first call that needs the agent. ``check_model=False`` keeps a
        name nothing maps (it runs on the default model, as a name the settings no longer map).
        """
        model_name = model or constants.TASK_UI_MODEL
        if check_model:
            requested_ref(model_name, self.config.get())  # Maria's 404 for a name nothing maps
        if cwd is None:
            directory = tempfile.mkdtemp(prefix=constants.TASK_TEMP_DIR_PREFIX)
        else:
            if not os.path.isdir(cwd):
                raise CwdMissing(f"Specified 'cwd' path does not exist: {cwd}", cwd)
            directory = os.path.realpath(cwd)
        self._refuse_busy_cwd(directory, None)
        thread, _ = self._store.ensure_thread(None, self.face, title=name or "")
        record = TaskRecord(
            id=thread.id,
            cwd=directory,
            model=model_name,
            created=thread.created_at_ms,
            updated=thread.updated_at_ms,
            name=name,
            web_search=web_search,
            status="idle",
        )
        self._store.update_thread(record.id, metadata=record.metadata())
        self._records[record.id] = record
        self._logs[record.id] = TaskLog([])
        self._changed(record)
        answer = None
        if message is not None:
            answer = self.post_message(record.id, message, web_search)
        return record, answer

    def post_message(
        self,
        task_id: str,
        content: str,
        web_search: bool = False,
        message_id: str | None = None,
        images: list[str] | None = None,
    ) -> dict[str, Any]:
        """Forward a user message (resuming a stopped task first): ``{id, queued}``.

        ``message_id`` names the message in its queue events (a new id when None); ``images``
        are data URLs the model sees with it.
        """
        record = self.get(task_id)
        options: dict[str, Any] = {"content": content, "web_search": web_search, "message_id": message_id}
        if images:
            options["images"] = list(images)
        return self._call(record, "post_message", resume=True, **options)

    def delete(self, task_id: str) -> bool:
        """Forget a task: its process is stopped and its thread and log leave the store.

        Whether it had a process (Caco's ``wasActive``).
        """
        record = self.get(task_id)
        had_process = record.owns_cwd
        del self._records[task_id]
        self._logs.pop(task_id, None)
        record.status = "stopped"
        if record.process is not None:
            _stop(record.process)
        self._store.delete_thread(task_id)
        return had_process

    def rename(self, task_id: str, name: str) -> None:
        """Give a task a name (kept with it in the store)."""
        record = self.get(task_id)
        record.name = name
        self._store.update_thread(task_id, title=name, metadata=record.metadata())

    def cancel(self, task_id: str) -> dict[str, Any]:
        """Stop the run now: ``{pending_messages}``; Maria's 404 when nothing runs."""
        return self._call(self.get(task_id), "cancel", resume=False)

    def call(self, task_id: str, method: str, *, resume: bool, **args: Any) -> Any:
        """Any other method of the task's agent (status, tools, prompt, external events)."""
        return self._call(self.get(task_id), method, resume=resume, **args)

    def viewed(self, task_id: str) -> None:
        """Someone opened the task's stream: a ``stopped`` task whose cwd is there and free becomes ``idle``.

        Why: Maria's web UI sends nothing to a ``stopped`` task, so after a restart (or an idle
        stop) a task could be read but never continued from the UI. Becoming ``idle`` only
        claims the cwd; the process starts with the next message.
        """
        record = self.get(task_id)
        if record.status != "stopped" or self._closing or not os.path.isdir(record.cwd):
            return
        try:
            self._refuse_busy_cwd(record.cwd, record.id)
        except TaskConflict:
            return
        record.status = "idle"
        record.idle_since = time.monotonic()
        self._changed(record)

    def has_process(self, task_id: str) -> bool:
        return self.get(task_id).process is not None

    # --- tools and prompt: answered here, so that reading or changing them starts no process ---

    def tool_switches(self, task_id: str) -> dict[str, dict[str, bool]]:
        """``{"<tool>": {"enabled": bool}}``: the task's tool set (by its model name) and its switches."""
        record = self.get(task_id)
        on = record.enabled_tools
        return {tool.spec.name: {"enabled": on is None or tool.spec.name in on} for tool in maria_tools(record.model)}

    def set_enabled_tools(self, task_id: str, names: list[str]) -> dict[str, Any]:
        """Switch on exactly ``names``: kept with the task, and told to its agent if it has a process."""
        record = self.get(task_id)
        record.enabled_tools = list(names)
        self._store.update_thread(task_id, metadata=record.metadata())
        if record.process is not None:
            return self._call(record, "set_enabled_tools", resume=False, names=list(names))
        return {"success": True}

    def system_prompt(self, task_id: str) -> str | None:
        """The prompt of the task's last ``SystemPromptSet``, else the one its agent will start with."""
        record = self.get(task_id)
        for event in reversed(self.log(task_id).agent_events()):
            desc = event.get("desc") or {}
            if desc.get("msg") == "SystemPromptSet":
                return desc.get("prompt")
        return maria_system_prompt(record.model)

    def set_system_prompt(self, task_id: str, prompt: str | None) -> dict[str, Any]:
        """A new prompt from the next request on: told to the agent, or logged for the next process to read."""
        record = self.get(task_id)
        if record.process is not None:
            return self._call(record, "set_system_prompt", resume=False, prompt=prompt)
        self._append(task_id, AGENT_EVENT, agent_events.envelope(agent_events.system_prompt_set(prompt)))
        return {"success": True}

    # --- processes --------------------------------------------------------------------------

    def _refuse_busy_cwd(self, cwd: str, task_id: str | None) -> None:
        for other in self._records.values():
            if other.id != task_id and other.cwd == cwd and other.owns_cwd:
                raise TaskConflict(cwd, other.wire())

    def _ensure_process(self, record: TaskRecord) -> TaskProcess:
        with record.lock:
            if record.process is not None:
                return record.process
            if self._closing:
                raise MisoError(503, "shutting_down", "the runtime is stopping")
            if not os.path.isdir(record.cwd):
                raise CwdMissing("Cannot resume conversation: working directory has been removed", record.cwd)
            self._refuse_busy_cwd(record.cwd, record.id)
            config = self.config.get()
            try:
                spec = resolve(record.model, config, self._access)
            except MisoError:  # the name no longer maps (the setting changed): run on the default
                spec = spec_for(self._access.default_model(), self._access)
            self._make_room(record)
            history = self.log(record.id).agent_events()
            launch = TaskLaunch(
                record.id,
                record.cwd,
                spec,
                record.model,
                history,
                record.enabled_tools,
                profile=self._profile,
                workbench=self._workbench() if self._workbench is not None else None,
            )
            was_stopped = record.status == "stopped"
            if was_stopped:
                record.status, record.idle_since = "idle", time.monotonic()  # owns its cwd from here on
            try:
                process = self._start_process(record, launch)
            except BaseException:
                if was_stopped:
                    record.status = "stopped"
                raise
            record.process = process
            if was_stopped:
                self._changed(record)
            return process

    def _make_room(self, starting: TaskRecord) -> None:
        """Keep at most ``TASK_MAX_PROCESSES`` task processes: stop the longest-idle ones first.

        A stopped task loses nothing (its next message resumes it); a task that is generating is
        never stopped for another, so when all of them are, the new one is refused (503).
        """
        running = [r for r in self._records.values() if r.process is not None and not r.process.stopping]
        excess = len(running) + 1 - constants.TASK_MAX_PROCESSES
        if excess <= 0:
            return
        idle = sorted(
            (r for r in running if r.status == "idle" and r.id != starting.id),
            key=lambda r: r.idle_since,
        )
        if len(idle) < excess:
            raise MisoError(
                503, "too_many_tasks", f"{len(running)} tasks are running; try again when one of them is idle"
            )
        for record in idle[:excess]:
            if record.process is not None:
                logger.info("stopping the idle process of task %s to make room", record.id[:8])
                _stop(record.process)

    def _start_process(self, record: TaskRecord, launch: TaskLaunch) -> TaskProcess:
        # The handlers name ``process``, bound below before the worker starts (and so before any event).
        def on_event(_name: str, event: Any) -> None:
            self._handle_event(record, process, event)

        def on_exit(name: str, code: int | None) -> None:
            process.rpc.handle_exit(name, code)
            self._handle_exit(record, process, code)

        spec = WorkerSpec(f"task-{record.id[:8]}", TASK_WORKER_TARGET, launch.to_options())
        worker = Worker(spec, on_event, on_exit)
        worker.set_policy(RestartPolicy(enabled=False))  # a task's process is started on demand, never restarted
        process = TaskProcess(worker, RpcClient(worker, spec.name, error=MisoError))
        worker.start()
        return process

    def _call(self, record: TaskRecord, method: str, *, resume: bool, **args: Any) -> Any:
        process = self._ensure_process(record) if resume else record.process
        if process is None:
            raise MisoError(404, "nothing_running", "No running task to cancel.")
        try:
            return process.rpc.call(method, constants.TASK_CALL_TIMEOUT_S, **args)
        except MisoError as exc:
            if exc.code == "worker_timeout":  # the process hangs: it fails alone, the task stays usable
                self._kill(process)
                raise MisoError(
                    503, "task_hung", f"the task's process did not answer {method}; it was stopped"
                ) from None
            raise

    def _kill(self, process: TaskProcess) -> None:
        pid = process.worker.status.pid
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _handle_event(self, record: TaskRecord, process: TaskProcess, event: Any) -> None:
        if isinstance(event, TaskEvent):
            if event.name == TEXT_DELTA:
                self._tell(record, event.name, event.data)
                return
            self._append(record.id, event.name, event.data)
            if event.name == QUEUE_SNAPSHOT:
                record.queued = list(event.data)
            elif event.name == AGENT_EVENT:
                self._follow_status(record, process, str((event.data.get("desc") or {}).get("msg")))
        elif isinstance(event, CommandGroup):
            (process.command_groups.add if event.running else process.command_groups.discard)(event.pgid)
        elif isinstance(event, LogLine):
            logger.info("task %s: %s", record.id[:8], event.message)
        else:
            process.rpc.handle_event("", event)

    def _follow_status(self, record: TaskRecord, process: TaskProcess, msg: str) -> None:
        if msg in agent_events.STARTING:
            status = "generating"
        elif msg in agent_events.STOPPING or msg in agent_events.CANCELLING:
            status = "idle"
        else:
            return
        record.updated = agent_events.now_ms()
        if record.status != status and record.process is process:
            record.status = status
            record.idle_since = time.monotonic()
            self._store.update_thread(record.id)
            self._changed(record)

    def _handle_exit(self, record: TaskRecord, process: TaskProcess, code: int | None) -> None:
        if record.process is not process:
            return
        record.process = None
        record.queued = []
        _kill_groups(process.command_groups)
        if process.stopping:
            record.status = "stopped"  # Maria sends no change event for a task that gives its process back
            logger.info("task %s stopped its process", record.id[:8])
            return
        logger.warning("the process of task %s exited with code %s", record.id[:8], code)
        failed = agent_events.failed("task_process_exited", f"the task's process exited (code {code})")
        self._append(record.id, AGENT_EVENT, agent_events.envelope(failed))
        record.status = "idle"
        record.idle_since = time.monotonic()
        self._changed(record)

    def _stop_idle_processes(self) -> None:
        while not self._closing:
            time.sleep(constants.TASK_IDLE_CHECK_S)
            limit = self.config.get().idle_stop_secs
            now = time.monotonic()
            for record in list(self._records.values()):
                if record.status != "idle" or now - record.idle_since <= limit:
                    continue
                if record.process is None:
                    record.status = "stopped"  # no process to give back: only the cwd is released
                elif not record.process.stopping:
                    _stop(record.process)

    # --- the log ----------------------------------------------------------------------------

    def _append(self, task_id: str, name: str, data: Any) -> None:
        if task_id not in self._records:
            return  # deleted while its process still spoke
        stored = self._store.append_event(task_id, name, data)
        log = self._logs.get(task_id)
        if log is not None:
            log.append(LogEntry(stored.seq, name, data))
        self._tell(self._records[task_id], name, data)

    def _tell(self, record: TaskRecord, name: str, data: Any) -> None:
        for observer in self._observers:
            try:
                observer(record, name, data)
            except Exception:  # noqa: BLE001 - a face's bug must not lose the task's events
                logger.exception("an observer of task %s failed on %s", record.id[:8], name)

    def _changed(self, record: TaskRecord) -> None:
        self.daemon_log.add(TASK_CHANGED, record.id)


def _kill_groups(groups: set[int]) -> None:
    """Kill what the commands of a dead task process left running (their process groups)."""
    for pgid in list(groups):
        try:
            os.killpg(pgid, signal.SIGKILL)
            logger.info("killed process group %d of a command whose task process died", pgid)
        except (ProcessLookupError, PermissionError):
            pass
    groups.clear()


def _stop(process: TaskProcess) -> threading.Thread:
    """Ask a task's process to exit (its exit then marks the task ``stopped``), off the caller's way."""
    process.stopping = True
    thread = threading.Thread(target=process.worker.stop, daemon=True)
    thread.start()
    return thread


def _run_left_open(entries: list[LogEntry]) -> bool:
    """Whether the last run in ``entries`` started and never ended."""
    for entry in reversed(entries):
        if entry.name != AGENT_EVENT:
            continue
        msg = (entry.data.get("desc") or {}).get("msg")
        if msg in agent_events.STARTING:
            return True
        if msg in agent_events.STOPPING or msg in agent_events.CANCELLING:
            return False
    return False

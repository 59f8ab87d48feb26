"""Maria's daemon (seeds/003): agent tasks, their queues and their two event streams.

Every route is served under ``/v1`` (where the real daemon and its web UI have them) and at
the seed's unprefixed path. Bodies are JSON whatever their ``Content-Type``: the UI sends
``text/plain`` (RTK Query with a string body), which also makes them CORS "simple requests"
without a preflight, so the guard's Origin check is what keeps other pages out.

Streams: ``GET /v1/task/{id}/events`` replays the task's whole log on every connection (the
UI's only history) and ``GET /v1/events`` (a plain GET; a WebSocket upgrade there is the
skill-daemon's stream) sends the task list, then every change since start. Unlike the real
daemon, each event has an ``id:`` line, ``Last-Event-ID`` replays only what was missed, and
idle streams get keep-alive comments.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterator

from flask import Blueprint, Response, jsonify, request

from ...agent.events import HIDDEN_FROM_STREAM
from ...auth import Access
from ...errors import MisoError
from ...tasks.logs import LogEntry, TaskLog
from ...tasks.service import TASKS_SYNCHRONIZED, CwdMissing, TaskConflict, TaskService
from ..endpoint import endpoint
from ..sse import format_event, sse_response
from . import runtime, streams
from .maria_models import (
    CreateTaskBody,
    EnabledToolsBody,
    ExternalEventBody,
    ImmediateMessageBody,
    PostMessageBody,
    SystemPromptBody,
    TasksConfigBody,
    message_text,
)

blueprint = Blueprint("maria", __name__)
TAGS = ("maria",)
#: Seconds a stream waits on its log before it looks again (the writer heartbeats meanwhile).
STREAM_POLL_S = 1.0


def _route(path: str, **options: Any):
    """Register a view at ``/v1<path>`` and at the seed's ``<path>``."""

    def register(view):
        blueprint.add_url_rule("/v1" + path, view_func=view, **options)
        blueprint.add_url_rule(path, endpoint=f"{view.__name__}_unprefixed", view_func=view, **options)
        return view

    return register


def _tasks() -> TaskService:
    return runtime().tasks


def _task_id(task_id: str) -> str:
    try:
        uuid.UUID(task_id)
    except ValueError:
        raise MisoError(400, "invalid_uuid", f"Invalid UUID: {task_id}") from None
    _tasks().get(task_id)
    return task_id


def _json(body: Any, status: int = 200, indent: int | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, indent=indent)
    return Response(text, status=status, mimetype="application/json")


def _maria_error(error: MisoError, metadata: dict[str, Any], task: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"error": {"code": -1, "message": error.message, "metadata": metadata}}
    if task is not None:
        body["task"] = task  # what the seed promises; the real daemon sends only the error
    return _json(body, error.status)


def _guarded(call):
    """Run ``call``, answering Maria's 409 and missing-cwd errors with their metadata."""
    try:
        return call()
    except TaskConflict as conflict:
        return _maria_error(conflict, {"cwd": conflict.cwd}, conflict.existing)
    except CwdMissing as missing:
        return _maria_error(missing, {"cwd": missing.cwd})


def _agent(task_id: str, method: str, **args: Any) -> Response:
    """Call a method of the task's agent (its process starts, or resumes, for it) and answer its result."""
    task_id = _task_id(task_id)
    return _guarded(lambda: _json(_tasks().call(task_id, method, resume=True, **args)))


# --- tasks ------------------------------------------------------------------------------------


@_route("/tasks", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def list_tasks():
    """Every task, newest first: running ones with their queue, past ones as ``stopped``."""
    return _json({"tasks": [record.wire() for record in _tasks().list()]})


@_route("/task", methods=["POST"])
@endpoint(Access.ADMIN, body=CreateTaskBody, status=201, tags=TAGS)
def create_task(body: CreateTaskBody):
    """Create a task (a new temporary cwd unless ``cwd`` names one) and send it ``message``; 201."""

    def create() -> Response:
        record, answer = _tasks().create(
            name=body.name,
            model=body.model,
            cwd=body.cwd,
            web_search=bool(body.web_search),
            message=None if body.message is None else body.message.text(),
        )
        result: dict[str, Any] = {"task": record.wire()}
        if answer is not None:
            result["message"] = answer
        return _json(result, 201, indent=2)

    return _guarded(create)


@_route("/task/<task_id>", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def get_task(task_id: str):
    """One task as ``{"task": ...}``."""
    return _json({"task": _tasks().get(_task_id(task_id)).wire()})


@_route("/task/<task_id>/message", methods=["POST"])
@endpoint(Access.ADMIN, body=PostMessageBody, tags=TAGS)
def post_message(task_id: str, body: PostMessageBody):
    """A user message: ``{id, queued}``, ``queued`` true when a run was going (a stopped task resumes first)."""
    task_id = _task_id(task_id)
    return _guarded(lambda: _json(_tasks().post_message(task_id, body.message.text(), bool(body.web_search))))


@_route("/task/<task_id>/cancel", methods=["POST"])
@endpoint(Access.ADMIN, tags=TAGS)
def cancel_task(task_id: str):
    """Stop the run now (its commands' process groups are killed): ``{pending_messages}``; 404 when idle."""
    return _json(_tasks().cancel(_task_id(task_id)))


@_route("/task/<task_id>/status", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def task_status(task_id: str):
    """``{status: idle|generating, web_search}``."""
    record = _tasks().get(_task_id(task_id))
    status = "generating" if record.status == "generating" else "idle"
    return _json({"status": status, "web_search": record.web_search})


@_route("/task/<task_id>/queued-messages", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def queued_messages(task_id: str):
    """The messages waiting for the agent: ``[{id, message}]``."""
    record = _tasks().get(_task_id(task_id))
    return _json([{"id": queued["id"], "message": queued["message"]} for queued in record.queued])


@_route("/task/<task_id>/tools", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def task_tools(task_id: str):
    """``{"<tool>": {"enabled": bool}}`` for every tool of the task."""
    return _json(_tasks().tool_switches(_task_id(task_id)))


@_route("/task/<task_id>/enabled-tools", methods=["POST"])
@endpoint(Access.ADMIN, body=EnabledToolsBody, tags=TAGS)
def enabled_tools(task_id: str, body: EnabledToolsBody):
    """Switch on exactly the tools named in the JSON array (kept across restarts)."""
    return _json(_tasks().set_enabled_tools(_task_id(task_id), list(body.root)))


@_route("/task/<task_id>/system-prompt", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def get_system_prompt(task_id: str):
    """The task's system prompt as a JSON string, or ``null``."""
    return _json(_tasks().system_prompt(_task_id(task_id)))


@_route("/task/<task_id>/system-prompt", methods=["POST"])
@endpoint(Access.ADMIN, body=SystemPromptBody, tags=TAGS)
def set_system_prompt(task_id: str, body: SystemPromptBody):
    """Replace the system prompt (a JSON string, or ``null``) from the next request on."""
    return _json(_tasks().set_system_prompt(_task_id(task_id), body.root))


@_route("/task/<task_id>/external-event", methods=["POST"])
@endpoint(Access.ADMIN, body=ExternalEventBody, tags=TAGS)
def external_event(task_id: str, body: ExternalEventBody):
    """``{"type": "UserMessage", "message"}`` (read before the next request) or ``{"type": "Cancelled"}``."""
    task_id = _task_id(task_id)
    if body.type == "Cancelled":
        return _gentle_cancel(task_id)
    return _agent(task_id, "immediate_message", content=message_text(body.message))


@_route("/task/<task_id>/external-event/user-message", methods=["POST"])
@endpoint(Access.ADMIN, body=ImmediateMessageBody, tags=TAGS)
def external_user_message(task_id: str, body: ImmediateMessageBody):
    """An immediate user message: the running agent reads it before its next request."""
    return _agent(task_id, "immediate_message", content=message_text(body.message))


@_route("/task/<task_id>/external-event/cancel", methods=["POST"])
@endpoint(Access.ADMIN, tags=TAGS)
def external_cancel(task_id: str):
    """The gentle cancel: the run stops before its next request (``Cancelled``, then ``PostConversation``)."""
    return _gentle_cancel(_task_id(task_id))


def _gentle_cancel(task_id: str) -> Response:
    if not _tasks().has_process(task_id):
        return _json({"success": True})
    return _json(_tasks().call(task_id, "stop_soon", resume=False))


# --- streams ----------------------------------------------------------------------------------


def _last_event_id() -> int:
    """The ``Last-Event-ID`` a reconnecting EventSource sends (0: replay everything)."""
    value = request.headers.get("Last-Event-ID", "").strip()
    return int(value) if value.isdigit() and len(value) < 19 else 0


def _frame(entry: LogEntry, _position: int) -> str:
    return format_event(entry.name, entry.data, entry.seq or None)


def _stream(entries: Iterator[LogEntry]) -> Response:
    return sse_response(
        entries,
        registry=streams(),
        environ=request.environ,
        final_on_shutdown=LogEntry(0, "error", {"code": "server_shutdown", "message": "the runtime is stopping"}),
        formatter=_frame,
    )


def _task_entries(log: TaskLog, after: int) -> Iterator[LogEntry]:
    seq = after
    while True:
        for entry in log.wait_after(seq, STREAM_POLL_S):
            seq = entry.seq
            if entry.name == "maria" and (entry.data.get("desc") or {}).get("msg") in HIDDEN_FROM_STREAM:
                continue
            yield entry


@_route("/task/<task_id>/events", methods=["GET"])
@endpoint(Access.STREAM, tags=TAGS)
def task_events(task_id: str):
    """SSE: the task's whole log (``maria`` and ``maria.queued_messages.synchronized``), then live events.

    Opening it makes a ``stopped`` task ``idle`` when its cwd is there and free, so that Maria's
    web UI, which sends nothing to a stopped task, can go on with it.
    """
    task_id = _task_id(task_id)
    log = _tasks().log(task_id)
    _tasks().viewed(task_id)
    return _stream(_task_entries(log, _last_event_id()))


def _daemon_entries(service: TaskService, after: int) -> Iterator[LogEntry]:
    yield LogEntry(0, TASKS_SYNCHRONIZED, {"tasks": [record.wire() for record in service.list()]})
    seq = after
    while True:
        for entry in service.daemon_log.wait_after(seq, STREAM_POLL_S):
            seq = entry.seq
            yield LogEntry(entry.seq, entry.name, {"task": service.get(entry.task_id).wire()})


@_route("/events", methods=["GET"])
@endpoint(Access.STREAM, tags=TAGS)
def daemon_events():
    """SSE: ``daemon.tasks.synchronized`` with every task, then each ``daemon.task.changed`` since start."""
    return _stream(_daemon_entries(_tasks(), _last_event_id()))


# --- models and settings ------------------------------------------------------------------------


@blueprint.get("/models")
@endpoint(Access.READ, tags=TAGS)
def list_models():
    """Maria's model list, ``{"models": [{"name"}]}``: the names the model map knows (``/v1/models`` is OpenAI's)."""
    names = list(_tasks().config.get().model_map)
    return _json({"models": [{"name": name} for name in names]})


@blueprint.get("/v1/auth/status")
@endpoint(Access.READ, tags=TAGS)
def auth_status():
    """Maria's sign-in state of Codex and Copilot: this runtime signs in to neither."""
    signed_out = {"authenticated": False}
    return _json({"codex": dict(signed_out), "copilot": dict(signed_out)})


@blueprint.get("/v1/settings/agent-tasks")
@endpoint(Access.READ, tags=TAGS)
def get_tasks_config():
    """Which model each model name runs on, and after how long an idle task stops its process."""
    return jsonify(_tasks().config.get().model_dump())


@blueprint.post("/v1/settings/agent-tasks")
@endpoint(Access.ADMIN, body=TasksConfigBody, tags=TAGS)
def set_tasks_config(body: TasksConfigBody):
    """Change the fields given; ``model_map`` entries are added or replaced one by one."""
    config = _tasks().config.update(body.model_dump(exclude_none=True))
    return jsonify(config.model_dump())

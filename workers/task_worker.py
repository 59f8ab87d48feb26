"""A task worker: the agent loop of one Maria task, in a process of its own.

Why a process per task: a task runs commands and tools the model chose, and streams from a
provider; if any of that crashes or hangs, only this task fails (the server reports
``Failed``, and the next message starts a fresh process that resumes from the log), never
the server or another task.

The server publishes the agent's methods over RPC; calls run on the worker's main thread and
are short (a cancel waits at most ``CANCEL_JOIN_S`` for the run to end), while the agent's run
has a thread of its own.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from .protocol.base import Shutdown
from .protocol.rpc import Call
from .protocol.tasks import AGENT_EVENT, QUEUE_SNAPSHOT, TEXT_DELTA, CommandGroup, TaskEvent
from .rpc import answer
from .runner import Channel

logger = logging.getLogger("miso.task_worker")


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.task_worker:run``).

    ``options`` is a :class:`miso_runtime.tasks.launch.TaskLaunch` as a dict (task id, cwd, model,
    prompt, tool switches, and the task's log so far, from which the agent is rebuilt).
    """
    from miso_runtime.tasks.agent_host import AgentHost
    from miso_runtime.tasks.launch import TaskLaunch

    launch = TaskLaunch.from_options(options)

    def send(name: str, data: Any) -> None:
        channel.send(TaskEvent(launch.task_id, name, data))

    def report_group(pgid: int, running: bool) -> None:
        channel.send(CommandGroup(launch.task_id, pgid, running))

    host = AgentHost(
        launch,
        emit_event=lambda envelope: send(AGENT_EVENT, envelope),
        emit_queue=lambda q: send(QUEUE_SNAPSHOT, q),
        report_group=report_group,
        emit_text=lambda text: send(TEXT_DELTA, text),
    )
    methods = host.methods()
    try:
        while True:
            command = channel.receive()
            if isinstance(command, Shutdown):
                break
            if isinstance(command, Call):
                channel.send(answer(methods, command))
    except EOFError:
        pass
    finally:
        host.close()
    logger.info("task worker %d for %s exiting", os.getpid(), launch.task_id)

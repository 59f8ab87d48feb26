"""The ``agents`` worker: owns git workspaces and the tmux sessions of coding agents.

Git clones and tmux calls block, so they live here, not on the server's hub. The server calls
the backend's published methods over RPC (``workers/rpc.py``); each call runs on a small thread
pool so that a long clone never holds up a rename or a dispose. Whenever the state the
dashboard shows may have changed (a call changed it, a session ended, git status moved), the
worker sends the whole state as ``AgentsState``; the server debounces and broadcasts it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .protocol.agents import AgentsState, ProvisionAttach, TerminalAttach, TerminalClientMessage, TerminalDetach
from .protocol.base import Shutdown
from .protocol.rpc import Call
from .rpc import answer
from .runner import Channel

logger = logging.getLogger("miso.agents_worker")

#: Calls that may run at once (a clone, a status refresh and a dispose side by side).
CALL_THREADS = 4


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.agents_worker:run``).

    ``options``: ``config_file``, ``default_workspace_path``, ``workspaces_file``, ``clones_dir``,
    ``sessions_file`` (paths) and ``tmux_socket``.
    """
    from miso_runtime.agents.backend import AgentsBackend, SessionRecords
    from miso_runtime.agents.branches import BranchQueries
    from miso_runtime.agents.config import AgentsConfigStore
    from miso_runtime.agents.git_changes import GitOperations
    from miso_runtime.agents.linear_sync import sync_methods
    from miso_runtime.agents.nudges import SessionNudges
    from miso_runtime.agents.pr_checkout import PullRequestCheckouts
    from miso_runtime.agents.previews import PreviewManager
    from miso_runtime.agents.provision_terminal import ProvisionTerminals
    from miso_runtime.agents.remote_hosts import HostStore, RemoteHostManager
    from miso_runtime.agents.remote_sessions import RemoteSessions
    from miso_runtime.agents.terminal_hub import TerminalHub
    from miso_runtime.agents.tmux_sessions import TmuxSessions
    from miso_runtime.agents.workspaces import WorkspaceManager

    store = AgentsConfigStore(Path(options["config_file"]), Path(options["default_workspace_path"]))
    config = store.get()
    workspaces = WorkspaceManager(
        Path(config.workspace_path),
        Path(options["clones_dir"]),
        Path(options["workspaces_file"]),
        source_code_management=config.source_code_management,
        clone_timeout_s=config.sessions.git_clone_timeout_ms / 1000 or None,
        status_timeout_s=config.sessions.git_status_timeout_ms / 1000 or None,
    )
    publisher = _StatePublisher(channel)
    tmux = TmuxSessions(options["tmux_socket"])
    terminals = TerminalHub(tmux, channel.send)
    backend = AgentsBackend(
        config,
        workspaces,
        tmux,
        SessionRecords(Path(options["sessions_file"])),
        on_change=lambda: publisher.publish(backend.state()),
    )

    def configured_flavors() -> list[Any]:
        """Read fresh: the server's flavor routes write the file."""
        return AgentsConfigStore(Path(options["config_file"]), Path(options["default_workspace_path"])).remote_flavors()

    remote = RemoteSessions(
        backend,
        RemoteHostManager(
            HostStore(Path(options["remote_hosts_file"])),
            configured_flavors,
            ready_timeout_s=float(options["remote_ready_timeout_s"]),
            on_change=backend.changed,
        ),
    )
    backend.remote = remote
    terminals.remote_stream = remote.stream_factory
    provisions = ProvisionTerminals(remote.manager.provisioning_connection, channel.send)

    def reload_config() -> dict[str, Any]:
        """Pick up a saved config (targets, terminal size, poll intervals; the workspace path at restart)."""
        fresh = AgentsConfigStore(Path(options["config_file"]), Path(options["default_workspace_path"])).get()
        backend.config = fresh
        workspaces.source_code_management = fresh.source_code_management
        backend.git.poll_interval_s = max(0.5, fresh.sessions.git_status_poll_interval_ms / 1000)
        return {"status": "ok"}

    methods = {
        "state": backend.state,
        "session_count": backend.session_count,
        "spawn": backend.spawn,
        "dispose_session": backend.dispose_session,
        "dispose_workspace": backend.dispose_workspace,
        "rename": backend.rename,
        "scan": backend.scan,
        "check_branch_conflict": backend.check_branch_conflict,
        "session_status": backend.session_status,
        "reload_config": reload_config,
    }
    # Methods of the modules beside the backend (git operations, syncs, previews, nudges): each
    # module adds its own with one ``methods.update(...)`` line below.
    methods.update(PreviewManager.attach(backend, Path(options["previews_file"])).methods())
    methods.update(sync_methods(backend, options, channel.send))
    methods.update(GitOperations(backend).methods())
    methods.update(remote.methods())
    methods.update(SessionNudges(backend, terminals).methods() | BranchQueries(backend).methods())
    methods.update(PullRequestCheckouts(backend).methods())
    stop = threading.Event()
    threading.Thread(target=_watch_state, args=(backend, publisher, stop), name="state-watch", daemon=True).start()
    pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="agents-call")
    try:
        while True:
            command = channel.receive()
            if isinstance(command, Shutdown):
                break
            if isinstance(command, Call):
                pool.submit(lambda call=command: channel.send(answer(methods, call)))
            elif isinstance(command, TerminalClientMessage):
                # in order, on this thread: keystrokes must not overtake
                (provisions if provisions.owns(command.stream_id) else terminals).message(command)
            elif isinstance(command, TerminalAttach):
                pool.submit(terminals.attach, command)
            elif isinstance(command, ProvisionAttach):
                provisions.attach(command)
            elif isinstance(command, TerminalDetach):
                (provisions if provisions.owns(command.stream_id) else terminals).detach(command.stream_id)
            else:
                logger.warning("agents worker ignores %s", type(command).__name__)
    except EOFError:
        pass
    finally:
        stop.set()
        terminals.close_all()
        remote.manager.close_all()
        pool.shutdown(wait=False, cancel_futures=True)
        backend.git.close(timeout=1.0)
    logger.info("agents worker %d exiting (tmux sessions keep running)", os.getpid())


class _StatePublisher:
    """Sends ``AgentsState`` when the state differs from the last one sent."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._lock = threading.Lock()
        self._last = ""

    def publish(self, workspaces: list[dict[str, Any]]) -> None:
        text = json.dumps(workspaces, sort_keys=True)
        with self._lock:
            if text == self._last:
                return
            self._last = text
        self._channel.send(AgentsState(workspaces))


def _watch_state(backend: Any, publisher: _StatePublisher, stop: threading.Event) -> None:
    """Notice what no call changed (a session that exited, output, git status) every poll interval."""
    while not stop.is_set():
        try:
            publisher.publish(backend.state())
        except Exception as exc:  # noqa: BLE001 - tmux missing or busy: try again next round
            logger.debug("state poll failed: %s", exc)
        interval_s = max(0.25, backend.config.sessions.dashboard_poll_interval_ms / 1000)
        stop.wait(interval_s)

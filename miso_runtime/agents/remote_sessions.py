"""Agent sessions on remote hosts, as ordinary sessions of the dashboard.

A session on a host is a window of the host's ``schmux`` tmux session, in the one workspace
of that host (``remote-<host id>``, at the flavor's ``workspace_path``: schmux makes no git
worktree there). Its record is a :class:`~miso_runtime.agents.backend.SessionRecord` with
the host and the window/pane ids, so renames, nudges and the state file treat it like a local
one; its terminal is a :class:`~miso_runtime.agents.remote_terminal.RemoteTerminalStream`
fed by the connection. When a reconnect finds the windows again (by id, never by name, as
schmux matches) the sessions go on; when a reconnect fails, the host's sessions, workspace
and the host itself are removed, as schmux removes them.
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from .. import constants
from ..errors import MisoError
from .remote_connection import CONNECTED, DISCONNECTED, RemoteConnection, RemoteError
from .remote_hosts import RemoteHost, RemoteHostManager, reconnect_command
from .remote_terminal import RemoteTerminalStream
from .spawn import PlannedSession
from .terminal import TerminalStream
from .tmux_sessions import session_name_for

if TYPE_CHECKING:
    from .backend import AgentsBackend, SessionRecord

logger = logging.getLogger(__name__)

#: Prefix of a remote host's workspace id (schmux: ``remote-<host id>``).
WORKSPACE_PREFIX = "remote-"


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class RemoteSessions:
    def __init__(self, backend: AgentsBackend, manager: RemoteHostManager) -> None:
        self.backend = backend
        self.manager = manager
        self._lock = threading.Lock()
        self._streams: dict[str, RemoteTerminalStream] = {}  # session id -> its open stream
        manager.on_output = self._output
        manager.on_window_close = self._window_closed
        manager.on_lost = self._lost
        manager.on_connected = self._reconcile

    # --- RPC methods ------------------------------------------------------------------------

    def methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "remote_hosts": self.manager.hosts,
            "remote_flavor_statuses": self.manager.flavor_statuses,
            "remote_connect": self.connect,
            "remote_reconnect": self.reconnect,
            "remote_disconnect": self.disconnect,
            "remote_progress": self.manager.progress,
            "spawn_remote": self.spawn,
        }

    def connect(self, flavor_id: str) -> dict[str, Any]:
        status, body = self.manager.connect(flavor_id)
        host_id = self.manager.live_for_flavor(flavor_id)
        return {"status": status, "body": body, "host_id": host_id[0] if host_id else ""}

    def reconnect(self, host_id: str) -> dict[str, Any]:
        return self.manager.reconnect(host_id, on_fail=self._reconnect_failed)

    def disconnect(self, host_id: str) -> dict[str, Any]:
        self.manager.disconnect(host_id)
        return {"status": "ok"}

    # --- spawning ---------------------------------------------------------------------------

    def spawn(self, flavor_id: str, workspace_id: str, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One window per planned session on the flavor's host (connecting it first if needed)."""
        from .backend import SessionRecord

        if not flavor_id and workspace_id.startswith(WORKSPACE_PREFIX):
            host = self.manager.store.get(workspace_id[len(WORKSPACE_PREFIX) :])
            flavor_id = host.flavor_id if host else ""
        flavor = self.manager.flavor(flavor_id)
        if flavor is None:
            raise MisoError(404, "flavor_not_found", f"remote flavor not found: {flavor_id}")
        conn = self.manager.connect_and_wait(flavor_id, self.manager.ready_timeout_s + constants.TMUX_COMMAND_TIMEOUT_S)
        host_id = conn.host_id
        ws_id = f"{WORKSPACE_PREFIX}{host_id}"
        self.manager.store.update(host_id, workspace=True)
        terminal = self.backend.config.terminal
        results: list[dict[str, Any]] = []
        for item in sessions:
            plan = PlannedSession(**item)
            session_id = f"remote-{flavor_id}-{secrets.token_hex(4)}"
            name = (plan.nickname or session_id).replace(".", "_").replace(":", "_")
            env = {"SCHMUX_ENABLED": "1", "SCHMUX_SESSION_ID": session_id, "SCHMUX_WORKSPACE_ID": ws_id}
            try:
                window_id, pane_id = conn.create_window(name, flavor.workspace_path, plan.command, env)
                conn.client.call([f"resize-window -t {window_id} -x {terminal.width} -y {terminal.height}"])
            except MisoError as exc:
                results.append({"target": plan.target, "error": f"failed to create remote session: {exc.message}"})
                continue
            record = SessionRecord(
                session_id, ws_id, plan.target, conn.facts.hostname or flavor.display_name, plan.nickname, plan.prompt
            )
            record.remote_host_id, record.remote_window, record.remote_pane = host_id, window_id, pane_id
            record.created_at, record.status = _now_iso(), "running"
            self.backend.records.put(record)
            results.append(plan.result(session_id, ws_id))
        self.backend.changed()
        return results

    # --- the dashboard's state --------------------------------------------------------------

    def workspaces(self) -> list[dict[str, Any]]:
        """The remote hosts' workspaces in ``GET /api/sessions`` form (schmux's fields)."""
        records = [r for r in self.backend.records.all() if r.remote_host_id]
        flavors = {f.id: f for f in self.manager.flavors()}
        answer = []
        for host in self.manager.store.all():
            mine = [r for r in records if r.remote_host_id == host.id]
            if not mine and not host.workspace:
                continue
            flavor = flavors.get(host.flavor_id)
            live = self._windows(host.id)
            branch = host.hostname or (flavor.display_name if flavor else host.id)
            sessions = [self._session_item(r, host, flavor, branch, live) for r in mine]
            sessions.sort(key=lambda s: s.get("created_at") or "")
            entry: dict[str, Any] = {
                "id": f"{WORKSPACE_PREFIX}{host.id}",
                "repo": flavor.display_name if flavor else host.flavor_id,
                "branch": branch,
                "path": flavor.workspace_path if flavor else "",
                "session_count": len(sessions),
                "sessions": sessions,
                "git_ahead": 0,
                "git_behind": 0,
                "git_lines_added": 0,
                "git_lines_removed": 0,
                "git_files_changed": 0,
                "remote_host_id": host.id,
                "remote_host_status": self.manager.live_status(host.id),
            }
            if flavor:
                entry.update(remote_flavor_name=flavor.display_name, remote_flavor=flavor.flavor, vcs=flavor.vcs)
            entry["commits_synced_with_remote"] = False
            answer.append(entry)
        return answer

    def _windows(self, host_id: str) -> dict[str, Any] | None:
        """The host's windows by window id, or None when it is not connected."""
        conn = self.manager.connection(host_id)
        if conn is None or not conn.connected:
            return None
        try:
            return {w.window_id: w for w in conn.list_windows()}
        except MisoError as exc:
            logger.debug("remote %s: windows not listed: %s", host_id, exc.message)
            return None

    def _session_item(
        self, record: SessionRecord, host: RemoteHost, flavor: Any, branch: str, live: dict[str, Any] | None
    ) -> dict[str, Any]:
        window = live.get(record.remote_window) if live is not None else None
        item: dict[str, Any] = {"id": record.id, "target": record.target, "branch": branch}
        if record.nickname:
            item["nickname"] = record.nickname
        item["created_at"] = record.created_at
        if window is not None and window.activity:
            item["last_output_at"] = datetime.fromtimestamp(window.activity, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        item["running"] = bool(window is not None and not window.dead)
        status = record.status
        if live is not None and window is None:
            status = "disconnected"
        if status:
            item["status"] = status
        attach = ""
        if flavor is not None and host.hostname:
            try:
                attach = reconnect_command(flavor, host.hostname)
            except RemoteError:
                attach = ""
        item["attach_cmd"] = attach
        item.update(record.nudge_fields())
        item.update(remote_host_id=host.id, remote_pane_id=record.remote_pane)
        if host.hostname:
            item["remote_hostname"] = host.hostname
        if flavor is not None and flavor.display_name:
            item["remote_flavor_name"] = flavor.display_name
        return item

    # --- sessions: status, dispose, terminal ------------------------------------------------

    def capture(self, record: SessionRecord, lines: int) -> str:
        """A remote pane's last ``lines`` lines as text (NudgeNik reads them)."""
        conn = self.manager.connection(record.remote_host_id)
        if conn is None or not conn.connected:
            raise MisoError(500, "capture_failed", f"capture remote session {record.id}: remote host not connected")
        return conn.capture(record.remote_pane, lines).rstrip("\n")

    def session_status(self, record: SessionRecord) -> dict[str, Any]:
        """A session of a host that is not connected exists but does not run (its terminal is 410)."""
        live = self._windows(record.remote_host_id)
        if live is None:
            return {"exists": True, "running": False}
        window = live.get(record.remote_window) if live else None
        return {"exists": window is not None, "running": bool(window is not None and not window.dead)}

    def dispose_session(self, record: SessionRecord) -> dict[str, Any]:
        conn = self.manager.connection(record.remote_host_id)
        if conn is not None and conn.connected and record.remote_window:
            try:
                conn.kill_window(record.remote_window)
            except MisoError as exc:  # already gone on the host
                logger.debug("remote window %s not killed: %s", record.remote_window, exc.message)
        self._end_stream(record.id, "session disposed")
        self.backend.records.drop(record.id)
        self.backend.changed()
        return {"status": "ok"}

    def owns_workspace(self, workspace_id: str) -> bool:
        """Whether ``workspace_id`` is a remote host's workspace (a local id may look alike)."""
        return (
            workspace_id.startswith(WORKSPACE_PREFIX)
            and self.manager.store.get(workspace_id[len(WORKSPACE_PREFIX) :]) is not None
        )

    def dispose_workspace(self, workspace_id: str, with_sessions: bool) -> dict[str, Any]:
        host_id = workspace_id[len(WORKSPACE_PREFIX) :]
        if self.manager.store.get(host_id) is None:
            raise MisoError(404, "workspace_not_found", f"workspace not found: {workspace_id}")
        mine = [r for r in self.backend.records.all() if r.remote_host_id == host_id]
        if mine and not with_sessions:
            raise MisoError(400, "active_sessions", f"workspace {workspace_id} has {len(mine)} active session(s)")
        for record in mine:
            self.dispose_session(record)
        self.manager.store.update(host_id, workspace=False)
        self.backend.changed()
        answer: dict[str, Any] = {"status": "ok"}
        if with_sessions:
            answer["sessions_disposed"] = len(mine)
        return answer

    def stream_factory(self, session_id: str) -> Callable[[], TerminalStream] | None:
        """For the terminal hub: how to open a remote session's stream; None for a local session."""
        record = self.backend.records.get(session_id)
        if record is None or not record.remote_host_id:
            return None

        def open_stream() -> TerminalStream:
            conn = self.manager.connection(record.remote_host_id)
            if conn is None or not conn.connected:
                raise MisoError(410, "session_not_running", "remote host not connected")
            live = self._windows(record.remote_host_id) or {}
            window = live.get(record.remote_window)
            if window is None:
                raise MisoError(404, "session_not_found", f"session not found: {session_id}")
            if window.dead:
                raise MisoError(410, "session_not_running", "session not running")
            stream = RemoteTerminalStream(conn.client, session_name_for(session_id), window.window_id, window.pane_id)
            stream.host_id = record.remote_host_id
            with self._lock:
                self._streams[session_id] = stream
            return stream.start()

        return open_stream

    # --- the connection's news --------------------------------------------------------------

    def _output(self, host_id: str, pane_id: str, data: bytes) -> None:
        with self._lock:
            streams = [s for s in self._streams.values() if s.host_id == host_id and s.pane_id == pane_id]
        for stream in streams:
            stream.feed(data)

    def _window_closed(self, host_id: str, window_id: str) -> None:
        """On the connection's reader thread: the state is published from another thread (it
        asks the host for its windows, and only this thread reads the answer)."""
        for record in self.backend.records.all():
            if record.remote_host_id == host_id and record.remote_window == window_id:
                self._end_stream(record.id, "session ended")
        threading.Thread(target=self.backend.changed, name="remote-window-closed", daemon=True).start()

    def _lost(self, host_id: str) -> None:
        """The connection ended: the host's terminals end (clients reconnect after a reconnect)."""
        for record in self.backend.records.all():
            if record.remote_host_id == host_id:
                self._end_stream(record.id, "remote host disconnected")

    def _end_stream(self, session_id: str, reason: str) -> None:
        with self._lock:
            stream = self._streams.pop(session_id, None)
        if stream is not None:
            stream.ended(reason)

    def _reconcile(self, host_id: str, conn: RemoteConnection) -> None:
        """After a (re)connect: sessions whose window is still there go on, the others are
        ``disconnected`` (matched by window id, then pane id; never by name)."""
        try:
            windows = conn.list_windows()
        except MisoError as exc:
            logger.warning("remote %s: windows not listed after connecting: %s", host_id, exc.message)
            return
        for record in self.backend.records.all():
            if record.remote_host_id != host_id:
                continue
            match = next((w for w in windows if record.remote_window and w.window_id == record.remote_window), None)
            match = match or next((w for w in windows if record.remote_pane and w.pane_id == record.remote_pane), None)
            if match is not None:
                record.remote_window, record.remote_pane, record.status = match.window_id, match.pane_id, "running"
            else:
                record.status = DISCONNECTED
            self.backend.records.put(record)

    def _reconnect_failed(self, host_id: str) -> None:
        """schmux's cleanup after a failed reconnect: the host's sessions, its workspace (with
        whatever hangs on it, previews included) and the host leave the state."""
        for record in self.backend.records.all():
            if record.remote_host_id == host_id:
                self._end_stream(record.id, "remote host reconnect failed")
                self.backend.records.drop(record.id)
        self.backend._workspace_removed(f"{WORKSPACE_PREFIX}{host_id}")
        self.manager.forget(host_id)
        self.backend.changed()


__all__ = ["CONNECTED", "WORKSPACE_PREFIX", "RemoteSessions"]

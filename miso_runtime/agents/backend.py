"""What the ``agents`` worker does: workspaces (git) and sessions (tmux) behind the schmux routes.

It runs in the worker process, never in the server: git clones and tmux calls block. Its public
methods are what the server calls over RPC (``workers/rpc.py``); each returns JSON-ready data
in the contract's shape or raises a :class:`~miso_runtime.errors.MisoError`.

tmux is the truth about which sessions exist and whether they run (so sessions survive a
runtime restart and are adopted again); what tmux does not keep (target, nickname, prompt,
branch) is in a small JSON file beside the workspace list, written atomically.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..constants import AGENTS_GIT_STATUS_POLL_FLOOR_S
from ..errors import MisoError
from ..settings_files import write_atomic
from .branch_url import branch_url
from .config import AgentsConfig
from .git_status import GitStatus, StatusCache
from .spawn import PlannedSession
from .tmux_sessions import SessionInfo, TmuxSessions, session_name_for
from .workspace_locks import WorkspaceLocks
from .workspaces import WorkspaceError, WorkspaceManager

logger = logging.getLogger(__name__)


@dataclass
class SessionRecord:
    """What we know of a session beyond tmux."""

    id: str
    workspace_id: str
    target: str
    branch: str
    nickname: str | None = None
    prompt: str | None = None
    #: The last NudgeNik answer or agent signal, as schmux stores it: a JSON text, ``None`` when clear.
    nudge: str | None = None
    #: Rises with every agent signal that asks for attention (the dashboard plays a sound on a rise).
    nudge_seq: int = 0
    #: A session on a remote host: the host, its tmux window and pane there, when it was made
    #: (the host's tmux is not asked), and schmux's remote session status (running, disconnected).
    remote_host_id: str = ""
    remote_window: str = ""
    remote_pane: str = ""
    created_at: str = ""
    status: str = ""

    def nudge_fields(self) -> dict[str, Any]:
        """``nudge_state``, ``nudge_summary`` and ``nudge_seq`` of the session item (each omitted when empty)."""
        fields: dict[str, Any] = {}
        if self.nudge:
            try:
                parsed = json.loads(self.nudge)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                if parsed.get("state"):
                    fields["nudge_state"] = str(parsed["state"])
                if parsed.get("summary"):
                    fields["nudge_summary"] = str(parsed["summary"])
        if self.nudge_seq:
            fields["nudge_seq"] = self.nudge_seq
        return fields


class SessionRecords:
    """``{session id: SessionRecord}`` in a JSON file, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._records: dict[str, SessionRecord] = {}
        if path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                self._records = {item["id"]: SessionRecord(**item) for item in raw.get("sessions", [])}
            except (ValueError, TypeError, KeyError) as exc:
                logger.warning("ignoring unreadable %s: %s", path, exc)

    def _save(self) -> None:
        body = {"version": 1, "sessions": [asdict(r) for r in self._records.values()]}
        write_atomic(self._path, json.dumps(body, indent=2))

    def all(self) -> list[SessionRecord]:
        with self._lock:
            return list(self._records.values())

    def get(self, session_id: str) -> SessionRecord | None:
        with self._lock:
            return self._records.get(session_id)

    def put(self, record: SessionRecord) -> None:
        with self._lock:
            self._records[record.id] = record
            self._save()

    def drop(self, session_id: str) -> None:
        with self._lock:
            if self._records.pop(session_id, None) is not None:
                self._save()


def _iso(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with its ``Z``, as Go's ``time.Time`` marshals: a browser reads it as UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


class AgentsBackend:
    """Workspaces and sessions; ``on_change`` is called after anything the dashboard shows changed."""

    def __init__(
        self,
        config: AgentsConfig,
        workspaces: WorkspaceManager,
        tmux: TmuxSessions,
        records: SessionRecords,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.workspaces = workspaces
        self.tmux = tmux
        self.records = records
        self._on_change = on_change
        self._lock = threading.RLock()
        #: Held by every operation that changes a worktree (git operations, syncs, overlays).
        self.locks = WorkspaceLocks()
        #: A workspace's previews for the dashboard (set by the preview manager; none without one).
        self.previews_of: Callable[[str], list[dict[str, Any]]] = lambda _workspace_id: []
        #: More workspace fields (``conflict_on_branch`` of a sync, ``quick_launch``), by other modules.
        self.workspace_extras: Callable[[str], dict[str, Any]] = lambda _workspace_id: {}
        #: Called with a workspace id after the workspace is gone (disposed or dropped by a scan).
        self.on_workspace_removed: list[Callable[[str], None]] = []
        #: The sessions on remote hosts (set by the worker; ``remote_sessions.RemoteSessions``).
        self.remote: Any = None
        poll_s = max(AGENTS_GIT_STATUS_POLL_FLOOR_S, config.sessions.git_status_poll_interval_ms / 1000)
        self.git = StatusCache(
            poll_s,
            lambda workspace_id: self.workspaces.git_status(workspace_id, side_by_side=False),
            compute_now=lambda workspace_id: self.workspaces.git_status(workspace_id),
        )

    def changed(self, workspace_id: str | None = None) -> None:
        """Something the dashboard shows changed (outside this class): refresh the workspace's git
        status now (when one is named) and publish the state."""
        if workspace_id is not None:
            try:
                self.git.refresh_now(workspace_id)
            except Exception as exc:  # noqa: BLE001 - a failed refresh shows at the next poll
                logger.debug("status refresh of %s failed: %s", workspace_id, exc)
        self._on_change()

    # --- reading ----------------------------------------------------------------------------

    def _sessions_by_name(self) -> dict[str, SessionInfo]:
        return {info.name: info for info in self.tmux.list()} if self.tmux.server_running() else {}

    def state(self) -> list[dict[str, Any]]:
        """``GET /api/sessions``: workspaces with their sessions, git fields from the status cache."""
        live = self._sessions_by_name()
        by_workspace: dict[str, list[dict[str, Any]]] = {}
        for record in self.records.all():
            info = live.get(session_name_for(record.id))
            if info is None:
                continue  # gone from tmux (killed outside); dropped at the next dispose or scan
            entry: dict[str, Any] = {"id": record.id, "target": record.target, "branch": record.branch}
            if record.nickname:
                entry["nickname"] = record.nickname
            entry["created_at"] = _iso(info.created_at)
            if info.last_output_at is not None:
                entry["last_output_at"] = _iso(info.last_output_at)
            entry["running"] = info.running
            entry["attach_cmd"] = info.attach_cmd
            entry.update(record.nudge_fields())
            by_workspace.setdefault(record.workspace_id, []).append(entry)
        answer = []
        for workspace in self.workspaces.list():
            status: GitStatus | None = self.git.get(workspace.id)
            git_fields = (
                status.to_contract()
                if status
                else dict.fromkeys(
                    ("git_ahead", "git_behind", "git_lines_added", "git_lines_removed", "git_files_changed"), 0
                )
            )
            sessions = sorted(by_workspace.get(workspace.id, []), key=lambda s: s["created_at"] or "")
            branch = status.branch if status else workspace.branch
            # The link only for a branch that exists on origin (schmux checks; a local-only branch 404s).
            url = branch_url(workspace.repo, branch) if status and status.remote_branch_exists else None
            for session in sessions:
                session["branch"] = branch
                if url:
                    session["branch_url"] = url
            # Key order and omissions as schmux's WorkspaceResponseItem.
            entry = {"id": workspace.id, "repo": workspace.repo}
            if status and status.default_branch:
                entry["default_branch"] = status.default_branch
            entry["branch"] = branch
            if url:
                entry["branch_url"] = url
            entry.update(path=workspace.path, session_count=len(sessions), sessions=sessions, **git_fields)
            entry.update(self.workspace_extras(workspace.id))
            entry["commits_synced_with_remote"] = bool(status and status.synced_with_remote)
            previews = self.previews_of(workspace.id)
            if previews:
                entry["previews"] = previews
            answer.append(entry)
        if self.remote is not None:
            answer.extend(self.remote.workspaces())
        return answer

    def session_count(self) -> int:
        live = self._sessions_by_name()
        return sum(1 for record in self.records.all() if session_name_for(record.id) in live)

    # --- spawning ---------------------------------------------------------------------------

    def spawn(self, repo: str, branch: str, workspace_id: str, sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create (or reuse) the workspace, then one tmux session per planned session.

        A new workspace whose every session failed is removed again, so a failed spawn leaves
        nothing behind; errors of single sessions are per-result, as the contract says.
        """
        planned = [PlannedSession(**item) for item in sessions]
        created_workspace = False
        with self._lock:
            if workspace_id:
                workspace = self.workspaces.get(workspace_id)
            else:
                try:
                    workspace = self.workspaces.create(repo, branch)
                except WorkspaceError as exc:
                    if exc.code == "branch_conflict":
                        raise MisoError(409, "branch_conflict", f"branch_conflict: {exc.message}") from None
                    raise
                created_workspace = True
            results: list[dict[str, Any]] = []
            for plan in planned:
                session_id = f"{workspace.id}-{secrets.token_hex(4)}"
                try:
                    self.tmux.create(
                        session_id,
                        plan.command,
                        workspace.path,
                        workspace_id=workspace.id,
                        history_limit=self.config.terminal.history_limit,
                        width=self.config.terminal.width,
                        height=self.config.terminal.height,
                    )
                except MisoError as exc:
                    results.append({"target": plan.target, "error": exc.message})
                    continue
                self.records.put(
                    SessionRecord(session_id, workspace.id, plan.target, workspace.branch, plan.nickname, plan.prompt)
                )
                results.append(plan.result(session_id, workspace.id))
            if created_workspace and all("error" in r for r in results):
                self._remove_quietly(workspace.id)
        self.git.invalidate(workspace.id)
        self._on_change()
        return results

    def _remove_quietly(self, workspace_id: str) -> None:
        try:
            self.workspaces.dispose(workspace_id)
        except MisoError as exc:
            logger.warning("could not remove workspace %s after a failed spawn: %s", workspace_id, exc.message)

    # --- changing ---------------------------------------------------------------------------

    def dispose_session(self, session_id: str) -> dict[str, Any]:
        record = self.records.get(session_id)
        if record is None:
            raise MisoError(404, "session_not_found", f"session not found: {session_id}")
        if record.remote_host_id and self.remote is not None:
            return self.remote.dispose_session(record)
        name = session_name_for(session_id)
        if name in self._sessions_by_name():
            self.tmux.kill(name)
        self.records.drop(session_id)
        self._on_change()
        return {"status": "ok"}

    def _sessions_of(self, workspace_id: str) -> list[SessionRecord]:
        live = self._sessions_by_name()
        return [r for r in self.records.all() if r.workspace_id == workspace_id and session_name_for(r.id) in live]

    def dispose_workspace(self, workspace_id: str, with_sessions: bool = False) -> dict[str, Any]:
        """Remove a workspace; refuse one with sessions unless ``with_sessions`` (dispose-all)."""
        if self.remote is not None and self.remote.owns_workspace(workspace_id):
            return self.remote.dispose_workspace(workspace_id, with_sessions)
        self.workspaces.get(workspace_id)  # 404 before anything else
        sessions = self._sessions_of(workspace_id)
        if sessions and not with_sessions:
            raise MisoError(400, "active_sessions", f"workspace {workspace_id} has {len(sessions)} active session(s)")
        if with_sessions:
            self.workspaces.check_clean(workspace_id)  # dirty: refuse before killing anything
        for record in sessions:
            self.tmux.kill(session_name_for(record.id))
            self.records.drop(record.id)
        self.workspaces.dispose(workspace_id)
        self._workspace_removed(workspace_id)
        self._on_change()
        answer: dict[str, Any] = {"status": "ok"}
        if with_sessions:
            answer["sessions_disposed"] = len(sessions)
        return answer

    def _workspace_removed(self, workspace_id: str) -> None:
        self.git.forget(workspace_id)
        self.locks.forget(workspace_id)
        for listener in self.on_workspace_removed:
            try:
                listener(workspace_id)
            except Exception:  # noqa: BLE001 - one module's cleanup must not stop the others'
                logger.exception("cleanup after workspace %s failed", workspace_id)

    def rename(self, session_id: str, nickname: str) -> dict[str, Any]:
        record = self.records.get(session_id)
        if record is None:
            raise MisoError(404, "session_not_found", f"session not found: {session_id}")
        wanted = nickname.strip() or None
        if wanted and any(r.nickname == wanted and r.id != session_id for r in self.records.all()):
            raise MisoError(409, "nickname_taken", "nickname already in use")
        record.nickname = wanted
        self.records.put(record)
        self._on_change()
        return {"status": "ok"}

    def scan(self) -> dict[str, list[dict[str, Any]]]:
        result = self.workspaces.scan()
        live = self._sessions_by_name()
        known = {w.id for w in self.workspaces.list()}
        for record in self.records.all():
            if record.remote_host_id:
                continue  # on a remote host: its own connection says whether it is there
            if record.workspace_id not in known or session_name_for(record.id) not in live:
                self.records.drop(record.id)
        for ws in result.removed:
            self._workspace_removed(ws.id)
        self._on_change()
        return result.to_contract()

    def session_status(self, session_id: str) -> dict[str, Any]:
        """Whether a session is known and whether its command still runs (``/ws/terminal`` asks first)."""
        record = self.records.get(session_id)
        if record is None:
            return {"exists": False, "running": False}
        if record.remote_host_id and self.remote is not None:
            return self.remote.session_status(record)
        info = self._sessions_by_name().get(session_name_for(session_id))
        return {"exists": info is not None, "running": bool(info and info.running)}

    def check_branch_conflict(self, repo: str, branch: str) -> dict[str, Any]:
        return self.workspaces.check_branch_conflict(repo, branch).to_dict()

"""The coding agents as the schmux face sees them (server side).

Everything that touches git or tmux runs in the ``agents`` worker; this service checks a
request against the contract's rules first (a spawn plan is complete before any worker call,
so a bad request creates nothing), calls the worker, and keeps the last state the worker
published for the dashboard.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from typing import Any, Callable, Protocol

from workers.protocol.agents import AgentsConflicts, AgentsState

from .. import constants
from .config import AgentsConfigStore
from .spawn import SpawnRequest, known_targets, plan_spawn
from .tools import detect_tools

logger = logging.getLogger(__name__)

#: Seconds a quick worker call (state, dispose, rename) may take.
CALL_TIMEOUT_S = 30.0


class Rpc(Protocol):
    def call(self, method: str, timeout_s: float, **args: Any) -> Any: ...


class AgentsService:
    def __init__(self, rpc: Rpc, config: AgentsConfigStore, publish: Callable[..., Any]) -> None:
        self._rpc = rpc
        self.config = config
        self._publish = publish
        self._lock = threading.Lock()
        self._state: list[dict[str, Any]] | None = None
        #: Seconds a remote host may take to come up (a spawn on it waits that long).
        self.remote_ready_timeout_s = constants.REMOTE_READY_TIMEOUT_S
        self._conflicts: list[dict[str, Any]] | None = None

    # --- state ------------------------------------------------------------------------------

    def handle_event(self, _name: str, event: Any) -> None:
        if isinstance(event, AgentsState):
            with self._lock:
                self._state = event.workspaces
            self._publish(constants.EVENT_AGENTS_STATE, {"workspaces": event.workspaces})
        elif isinstance(event, AgentsConflicts):
            with self._lock:
                self._conflicts = event.states
            self._publish(constants.EVENT_AGENTS_CONFLICTS, {"states": event.states})

    def last_conflicts(self) -> list[dict[str, Any]]:
        """The resolve-conflict states the worker published last (``/ws/dashboard``), else asked of it."""
        with self._lock:
            conflicts = self._conflicts
        if conflicts is not None:
            return conflicts
        try:
            return self._rpc.call("sync_conflict_states", CALL_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - the dashboard still gets its sessions
            logger.debug("no conflict states from the agents worker: %s", exc)
            return []

    def sessions(self) -> list[dict[str, Any]]:
        """``GET /api/sessions``, asked of the worker (fresh, git fields from its cache)."""
        state = self._rpc.call("state", CALL_TIMEOUT_S)
        with self._lock:
            self._state = state
        return state

    def last_state(self) -> list[dict[str, Any]]:
        """The last state the worker published (the dashboard's first message), else a fresh one."""
        with self._lock:
            state = self._state
        return state if state is not None else self.sessions()

    def counts(self) -> tuple[int, int]:
        """(session count, workspace count) for the config warning."""
        state = self.last_state()
        return sum(w["session_count"] for w in state), len(state)

    # --- actions ----------------------------------------------------------------------------

    def spawn(self, request: SpawnRequest) -> list[dict[str, Any]]:
        config = self.config.get()
        detected = {tool["name"]: tool["command"] for tool in detect_tools(config) if tool["source"] == "detected"}
        plan = plan_spawn(request, known_targets(config, detected))
        remote_workspace = bool(plan.workspace_id) and any(
            w["id"] == plan.workspace_id and w.get("remote_host_id") for w in self.last_state()
        )
        if request.remote_flavor_id or remote_workspace:
            return self._rpc.call(
                "spawn_remote",
                self.remote_ready_timeout_s + CALL_TIMEOUT_S,
                flavor_id=request.remote_flavor_id,
                workspace_id=plan.workspace_id,
                sessions=[asdict(session) for session in plan.sessions],
            )
        timeout_s = config.sessions.git_clone_timeout_ms / 1000 + CALL_TIMEOUT_S
        return self._rpc.call(
            "spawn",
            timeout_s,
            repo=plan.repo,
            branch=plan.branch,
            workspace_id=plan.workspace_id,
            sessions=[asdict(session) for session in plan.sessions],
        )

    def check_branch_conflict(self, repo: str, branch: str) -> dict[str, Any]:
        if self.config.get().source_code_management != constants.SCM_GIT_WORKTREE:
            return {"conflict": False}
        return self._rpc.call("check_branch_conflict", CALL_TIMEOUT_S, repo=repo, branch=branch)

    def scan(self) -> dict[str, list[dict[str, Any]]]:
        return self._rpc.call("scan", CALL_TIMEOUT_S * 4)

    def dispose_session(self, session_id: str) -> dict[str, Any]:
        return self._rpc.call("dispose_session", CALL_TIMEOUT_S, session_id=session_id)

    def dispose_workspace(self, workspace_id: str, with_sessions: bool) -> dict[str, Any]:
        return self._rpc.call(
            "dispose_workspace", CALL_TIMEOUT_S, workspace_id=workspace_id, with_sessions=with_sessions
        )

    def rename(self, session_id: str, nickname: str) -> dict[str, Any]:
        return self._rpc.call("rename", CALL_TIMEOUT_S, session_id=session_id, nickname=nickname)

    def session_status(self, session_id: str) -> dict[str, Any]:
        return self._rpc.call("session_status", CALL_TIMEOUT_S, session_id=session_id)

    def call(self, method: str, timeout_s: float = CALL_TIMEOUT_S, **args: Any) -> Any:
        """Any published method of the agents worker (the git, sync and preview operations)."""
        return self._rpc.call(method, timeout_s, **args)

    def config_saved(self) -> None:
        """Tell the worker to read the config again (a down worker reads it when it starts)."""
        try:
            self._rpc.call("reload_config", CALL_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - saving the config must not fail on this
            logger.warning("the agents worker did not reload its config: %s", exc)

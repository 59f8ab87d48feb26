"""``POST /api/spawn`` before anything runs: the contract's rules, checked in one place.

Why a plan: a spawn touches git (a new worktree) and tmux (one session per target and count),
and a request that breaks a rule must leave nothing behind. So every rule that can be checked
without side effects is checked here, and the result is a list of sessions to start with
their exact command lines; only then does the agents worker create anything.

Rules (schmux contract, ``POST /api/spawn``):

- without ``workspace_id``, ``repo`` and ``branch`` are required (a new workspace);
  with it, the spawn runs in that workspace and does no git operation; with
  ``remote_flavor_id`` (or a remote host's workspace) it runs on that flavor's host;
- ``targets`` maps target names to counts and is required; promptable targets need
  ``prompt``, command targets must not get one and always run once;
- ``resume`` takes no prompt and runs the tool's resume command instead;
- several sessions with one ``nickname`` are named ``"<nickname> (1)"``, ``"<nickname> (2)"``...
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from .. import constants
from ..errors import MisoError
from .config import AgentsConfig


class SpawnError(MisoError):
    """A spawn request that breaks a rule; nothing has been created."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_spawn") -> None:
        super().__init__(status, code, message)


@dataclass(frozen=True)
class Target:
    """Something a session can run: ``promptable`` (an agent CLI taking the prompt) or ``command``."""

    name: str
    kind: str  # promptable | command
    command: str
    resume_command: str | None = None


@dataclass(frozen=True)
class SpawnRequest:
    repo: str = ""
    branch: str = ""
    prompt: str = ""
    nickname: str = ""
    targets: dict[str, int] = field(default_factory=dict)
    workspace_id: str = ""
    resume: bool = False
    remote_flavor_id: str = ""


@dataclass(frozen=True)
class PlannedSession:
    target: str
    command: str
    prompt: str | None
    nickname: str | None

    def result(self, session_id: str, workspace_id: str) -> dict[str, Any]:
        """The contract's per-session success entry."""
        entry: dict[str, Any] = {"session_id": session_id, "workspace_id": workspace_id, "target": self.target}
        if self.prompt:
            entry["prompt"] = self.prompt
        if self.nickname:
            entry["nickname"] = self.nickname
        return entry


@dataclass(frozen=True)
class SpawnPlan:
    """What to create: a new workspace (``repo``/``branch``) or an existing one, and the sessions."""

    repo: str
    branch: str
    workspace_id: str
    sessions: list[PlannedSession]


def known_targets(config: AgentsConfig, detected: dict[str, str]) -> dict[str, Target]:
    """Every target a spawn may name: detected agent CLIs, then the config's run targets (which win).

    ``detected`` maps a tool name to its command (what ``/api/detect-tools`` found on PATH).
    """
    resume = dict(constants.AGENT_RESUME_ARGS)
    targets = {
        name: Target(name, "promptable", command, f"{command} {resume[name]}" if name in resume else None)
        for name, command in detected.items()
    }
    for model in config.models:
        base = detected.get(model.base_tool)
        if base:
            targets.setdefault(model.id, Target(model.id, "promptable", base, targets[model.base_tool].resume_command))
    for run_target in config.run_targets:
        base_resume = resume.get(run_target.command.split()[0]) if run_target.command.split() else None
        targets[run_target.name] = Target(
            run_target.name,
            run_target.type,
            run_target.command,
            f"{run_target.command} {base_resume}" if run_target.type == "promptable" and base_resume else None,
        )
    return targets


def plan_spawn(request: SpawnRequest, targets: dict[str, Target]) -> SpawnPlan:
    """Check ``request`` against the rules and return the sessions to start; SpawnError otherwise."""
    if not request.workspace_id and not request.remote_flavor_id and not (request.repo and request.branch):
        raise SpawnError("repo and branch are required when workspace_id is empty")
    if not request.targets:
        raise SpawnError("targets is required: a map of target name to count")
    if request.resume and request.prompt:
        raise SpawnError("prompt must be empty in resume mode (the agent's resume command is used)")
    unknown = sorted(name for name in request.targets if name not in targets)
    if unknown:
        raise SpawnError(f"unknown target: {', '.join(unknown)} (known: {', '.join(sorted(targets)) or 'none'})")
    sessions: list[tuple[Target, str | None]] = []
    for name, count in request.targets.items():
        target = targets[name]
        if count < 1:
            raise SpawnError(f"target {name}: count must be at least 1, got {count}")
        if count > constants.SPAWN_MAX_PER_TARGET:
            raise SpawnError(f"target {name}: at most {constants.SPAWN_MAX_PER_TARGET} sessions per spawn")
        if target.kind == "command":
            if request.prompt:
                raise SpawnError(f"target {name} is a command target and takes no prompt")
            sessions.append((target, target.command))
            continue
        if request.resume:
            if not target.resume_command:
                raise SpawnError(f"target {name} has no resume command")
            sessions += [(target, target.resume_command)] * count
            continue
        if not request.prompt.strip():
            raise SpawnError(f"target {name} is promptable and needs a prompt")
        sessions += [(target, f"{target.command} {shlex.quote(request.prompt)}")] * count
    numbered = len(sessions) > 1 and bool(request.nickname)
    planned = [
        PlannedSession(
            target=target.name,
            command=command,
            prompt=(request.prompt or None) if target.kind == "promptable" and not request.resume else None,
            nickname=(f"{request.nickname} ({index})" if numbered else request.nickname) or None,
        )
        for index, (target, command) in enumerate(sessions, start=1)
    ]
    return SpawnPlan(request.repo, request.branch, request.workspace_id, planned)

"""The resolve-conflict states of the workspaces, and which workspace's branch hit a sync conflict.

``POST .../linear-sync-resolve-conflict`` answers 202 at once and does its work on a thread; the
only way its progress reaches the dashboard is this state, sent over ``/ws/dashboard`` after every
change. One state per workspace: ``in_progress`` while a run works, then ``done`` or ``failed``
until the user dismisses it (``DELETE .../linear-sync-resolve-conflict-state``) or starts a new run.

Why a file: a finished state must still be there after a runtime restart (the dashboard shows it
until it is dismissed), and a run that was ``in_progress`` when the worker died must not look as
if it were still running: at load it is marked ``failed`` with a message that says so. The file
also keeps each workspace's ``conflict_on_branch`` (set by a sync that met a conflict, cleared by
a resolution that succeeds). It is replaced atomically on every change.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from ..settings_files import write_atomic

logger = logging.getLogger(__name__)

IN_PROGRESS, DONE, FAILED = "in_progress", "done", "failed"
STATE_TYPE = "linear_sync_resolve_conflict"
_FILE_VERSION = 1
#: Message of a run found ``in_progress`` at start: its worker died in the middle of it.
INTERRUPTED_MESSAGE = (
    "The runtime stopped while this conflict resolution was running; it did not finish. "
    "The workspace may be in the middle of a rebase: check `git status` there "
    "(`git rebase --abort`, then `git reset --mixed HEAD~1` if the last commit is a WIP commit)."
)


def now_rfc3339() -> str:
    """The current time as RFC 3339 in UTC with ``Z`` (a browser reads it as UTC)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Step:
    """One step of a run, as the dashboard lists it. Empty optional fields are left out."""

    action: str
    status: str
    message: str
    at: str = ""
    local_commit: str = ""
    local_commit_message: str = ""
    files: list[str] = field(default_factory=list)
    confidence: str = ""
    summary: str = ""
    #: Only on ``wip_commit``: whether a WIP commit was made (present even when false).
    created: bool | None = None

    def to_contract(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.action, "status": self.status, "message": self.message, "at": self.at}
        for key in ("local_commit", "local_commit_message", "files", "confidence", "summary"):
            value = getattr(self, key)
            if value:
                out[key] = value
        if self.created is not None:
            out["created"] = self.created
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Step":
        return cls(
            action=str(raw.get("action", "")),
            status=str(raw.get("status", "")),
            message=str(raw.get("message", "")),
            at=str(raw.get("at", "")),
            local_commit=str(raw.get("local_commit", "")),
            local_commit_message=str(raw.get("local_commit_message", "")),
            files=[str(f) for f in raw.get("files") or []],
            confidence=str(raw.get("confidence", "")),
            summary=str(raw.get("summary", "")),
            created=raw["created"] if isinstance(raw.get("created"), bool) else None,
        )


@dataclass
class Resolution:
    """What the model did for one conflicting local commit (every field always present)."""

    local_commit: str
    local_commit_message: str
    all_resolved: bool = False
    confidence: str = ""
    summary: str = ""
    files: list[str] = field(default_factory=list)

    def to_contract(self) -> dict[str, Any]:
        return {
            "local_commit": self.local_commit,
            "local_commit_message": self.local_commit_message,
            "all_resolved": self.all_resolved,
            "confidence": self.confidence,
            "summary": self.summary,
            "files": list(self.files),
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Resolution":
        return cls(
            local_commit=str(raw.get("local_commit", "")),
            local_commit_message=str(raw.get("local_commit_message", "")),
            all_resolved=bool(raw.get("all_resolved", False)),
            confidence=str(raw.get("confidence", "")),
            summary=str(raw.get("summary", "")),
            files=[str(f) for f in raw.get("files") or []],
        )


@dataclass
class ConflictState:
    """One workspace's resolve-conflict run; :meth:`to_contract` is its ``/ws/dashboard`` frame."""

    workspace_id: str
    status: str
    started_at: str
    hash: str = ""
    finished_at: str = ""
    message: str = ""
    steps: list[Step] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)

    def to_contract(self) -> dict[str, Any]:
        """Keys in schmux's order; ``hash``, ``finished_at``, ``message`` and ``resolutions`` only when set."""
        out: dict[str, Any] = {"type": STATE_TYPE, "workspace_id": self.workspace_id, "status": self.status}
        if self.hash:
            out["hash"] = self.hash
        out["started_at"] = self.started_at
        if self.finished_at:
            out["finished_at"] = self.finished_at
        if self.message:
            out["message"] = self.message
        out["steps"] = [step.to_contract() for step in self.steps]
        if self.resolutions:
            out["resolutions"] = [r.to_contract() for r in self.resolutions]
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ConflictState":
        return cls(
            workspace_id=str(raw["workspace_id"]),
            status=str(raw.get("status", FAILED)),
            started_at=str(raw.get("started_at", "")),
            hash=str(raw.get("hash", "")),
            finished_at=str(raw.get("finished_at", "")),
            message=str(raw.get("message", "")),
            steps=[Step.from_dict(s) for s in raw.get("steps") or [] if isinstance(s, dict)],
            resolutions=[Resolution.from_dict(r) for r in raw.get("resolutions") or [] if isinstance(r, dict)],
        )


class AlreadyRunning(Exception):
    """A run of this workspace is ``in_progress``: a second one must not start."""


class ConflictStates:
    """The states by workspace id and the ``conflict_on_branch`` marks, saved to ``path`` on every change.

    Thread-safe. ``on_change`` is called (outside the lock) with the full list of states in their
    contract shape after each change, so the worker can publish them.
    """

    def __init__(self, path: Path, on_change: Callable[[list[dict[str, Any]]], None] = lambda _states: None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self.on_change = on_change
        self._states: dict[str, ConflictState] = {}
        self._conflict_on_branch: dict[str, str] = {}
        self._load()

    # --- persistence ------------------------------------------------------------------------

    def _load(self) -> None:
        if not self._path.is_file():
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            states = [ConflictState.from_dict(item) for item in raw.get("states", [])]
            marks = {str(k): str(v) for k, v in (raw.get("conflict_on_branch") or {}).items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("ignoring unreadable %s: %s", self._path, exc)
            return
        interrupted = False
        for state in states:
            if state.status == IN_PROGRESS:
                # Its thread died with the worker: say so, and never leave it looking alive.
                state.status = FAILED
                state.message = INTERRUPTED_MESSAGE
                state.finished_at = now_rfc3339()
                for step in state.steps:
                    if step.status == IN_PROGRESS:
                        step.status = FAILED
                interrupted = True
                logger.warning("conflict resolution of %s was cut off by a restart; marked failed", state.workspace_id)
            self._states[state.workspace_id] = state
        self._conflict_on_branch = marks
        if interrupted:
            self._save()

    def _save(self) -> None:
        # Caller holds the lock.
        body = {
            "version": _FILE_VERSION,
            "states": [s.to_contract() for s in self._states.values()],
            "conflict_on_branch": dict(self._conflict_on_branch),
        }
        try:
            write_atomic(self._path, json.dumps(body, indent=2) + "\n")
        except OSError as exc:  # the dashboard still gets the state; only a restart would lose it
            logger.warning("could not save %s: %s", self._path, exc)

    def _changed(self) -> None:
        try:
            self.on_change(self.all())
        except Exception:  # noqa: BLE001 - publishing must never break the run it reports on
            logger.exception("publishing the conflict states failed")

    # --- reading ----------------------------------------------------------------------------

    def all(self) -> list[dict[str, Any]]:
        """Every state in its contract shape, by workspace id."""
        with self._lock:
            return [self._states[k].to_contract() for k in sorted(self._states)]

    def get(self, workspace_id: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._states.get(workspace_id)
            return state.to_contract() if state else None

    def conflict_on_branch(self, workspace_id: str) -> str | None:
        with self._lock:
            return self._conflict_on_branch.get(workspace_id)

    # --- changing ---------------------------------------------------------------------------

    def start(self, workspace_id: str) -> None:
        """Begin a run: a finished state is replaced; :class:`AlreadyRunning` while one is in progress."""
        with self._lock:
            existing = self._states.get(workspace_id)
            if existing is not None and existing.status == IN_PROGRESS:
                raise AlreadyRunning(workspace_id)
            self._states[workspace_id] = ConflictState(workspace_id, IN_PROGRESS, now_rfc3339())
            self._save()
        self._changed()

    def step(self, workspace_id: str, step: Step, hash_: str = "") -> None:
        """Record a step as schmux does: a finished step completes the last ``in_progress`` step with
        the same action (and local commit, when it names one); anything else is appended.
        ``hash_`` (the default branch's commit being rebased) is kept once known."""
        with self._lock:
            state = self._states.get(workspace_id)
            if state is None:
                return
            if hash_ and not state.hash:
                state.hash = hash_
            step.at = now_rfc3339()
            if step.status != IN_PROGRESS:
                for existing in reversed(state.steps):
                    if existing.status != IN_PROGRESS or existing.action != step.action:
                        continue
                    if step.local_commit and existing.local_commit != step.local_commit:
                        continue
                    existing.status, existing.message, existing.at = step.status, step.message, step.at
                    existing.local_commit_message, existing.files = step.local_commit_message, step.files
                    existing.confidence, existing.summary, existing.created = (
                        step.confidence,
                        step.summary,
                        step.created,
                    )
                    break
                else:
                    state.steps.append(step)
            else:
                state.steps.append(step)
            self._save()
        self._changed()

    def finish(
        self,
        workspace_id: str,
        status: str,
        message: str,
        hash_: str | None = None,
        resolutions: list[Resolution] | None = None,
    ) -> None:
        """End a run as ``done`` or ``failed``; ``hash_`` replaces the known hash unless ``None``."""
        with self._lock:
            state = self._states.get(workspace_id)
            if state is None:
                return
            state.status, state.message, state.finished_at = status, message, now_rfc3339()
            if hash_ is not None:
                state.hash = hash_
            state.resolutions = list(resolutions or [])
            self._save()
        self._changed()

    def dismiss(self, workspace_id: str) -> str:
        """Delete a finished state: ``"missing"``, ``"in_progress"`` (kept) or ``"deleted"``."""
        with self._lock:
            state = self._states.get(workspace_id)
            if state is None:
                return "missing"
            if state.status == IN_PROGRESS:
                return IN_PROGRESS
            del self._states[workspace_id]
            self._save()
        self._changed()
        return "deleted"

    def mark_conflict(self, workspace_id: str, branch: str | None) -> None:
        """Set (a branch) or clear (``None``) the workspace's ``conflict_on_branch``."""
        with self._lock:
            if branch is None:
                if self._conflict_on_branch.pop(workspace_id, None) is None:
                    return
            else:
                if self._conflict_on_branch.get(workspace_id) == branch:
                    return
                self._conflict_on_branch[workspace_id] = branch
            self._save()

    def forget(self, workspace_id: str) -> None:
        """Drop everything about a workspace that is gone."""
        with self._lock:
            had = self._states.pop(workspace_id, None) is not None
            marked = self._conflict_on_branch.pop(workspace_id, None) is not None
            if had or marked:
                self._save()
        if had:
            self._changed()

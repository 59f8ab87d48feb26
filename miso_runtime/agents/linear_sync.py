"""schmux's linear sync of a workspace with its origin: push to its branch, sync from and to main,
and the conflict resolution that rebases one commit of main with a model's help.

It runs in the ``agents`` worker. Every operation holds the workspace's lock
(``backend.locks.hold``), so two operations on one worktree never interleave, and calls
``backend.changed`` afterwards so the dashboard shows the new git state.

- *Sync from main* brings origin's default branch into the workspace one commit at a time
  (``git rebase <commit>`` per commit, so a conflict is met at the exact commit that causes it).
  Uncommitted work rides along as a WIP commit that is undone at the end. At the first conflict
  the rebase is aborted and the WIP commit undone, so the worktree is as before that commit
  (earlier commits stay rebased), and ``conflict_on_branch`` is set on the workspace.
- *Sync to main* fast-forwards origin's default branch to the workspace's ``HEAD``; *push to
  branch* pushes ``HEAD`` to the workspace's branch on origin. Both refuse (``success: false``)
  unless the push loses nothing and the worktree is clean.
- *Resolve conflict* answers 202 and rebases the first commit the workspace lacks on a thread of
  the worker. For each local commit that conflicts it asks the configured one-shot target
  (``conflict_resolve.target``) to edit the files, checks what it says it did against the disk,
  stages and continues; anything short of a confident, complete resolution aborts the rebase and
  undoes the WIP commit. Its progress is a :class:`~.conflict_state.ConflictStates` entry.

Answers are ``{"status": <HTTP status>, "body": <JSON body>}``: schmux's bodies differ per route
and per failure (``LinearSyncResult``, ``{"success": false, "message": ...}``), so the face sends
them as they are rather than through the error envelope.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import git as gitpython

from workers.protocol.agents import AgentsConflicts

from .. import constants
from ..errors import MisoError
from .conflict_state import DONE, FAILED, IN_PROGRESS, AlreadyRunning, ConflictStates, Resolution, Step
from .workspaces import Workspace, git_env, redact

logger = logging.getLogger(__name__)

#: ``resolver(prompt, schema) -> answer``: one one-shot model call that edits the conflicted files
#: in the workspace and answers what it did (see :data:`CONFLICT_RESOLVE_SCHEMA`).
Resolver = Callable[[str, dict[str, Any]], dict[str, Any]]

#: JSON Schema of a resolver's answer (schmux's ``conflict-resolve`` schema).
CONFLICT_RESOLVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "all_resolved": {"type": "boolean"},
        "confidence": {"type": "string", "enum": ["high", "medium", "low"]},
        "summary": {"type": "string"},
        "files": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": ["modified", "deleted"]},
                    "description": {"type": "string"},
                },
                "required": ["action", "description"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["all_resolved", "confidence", "summary", "files"],
    "additionalProperties": False,
}


# --- git ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GitResult:
    code: int
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, trimmed: what git said, for a message."""
        return "\n".join(part for part in (self.out.strip(), self.err.strip()) if part)


def run_git_command(args: list[str], cwd: Path, timeout_s: float | None, *, input_text: str | None = None) -> GitResult:
    """Run ``git <args>`` in ``cwd`` and return its exit status and output, whatever they are.

    Unlike :func:`~.workspaces.run_git` this keeps the output of a failure (a rebase's conflict
    report, a hook's complaint) and sets ``GIT_EDITOR=true``, so ``rebase --continue`` keeps the
    replayed commit's message instead of waiting for an editor. Never prompts (no stdin, no
    terminal); killed after ``timeout_s`` seconds (status -1).
    """
    if not cwd.is_dir():
        return GitResult(-1, "", f"{cwd} does not exist")
    env = {**os.environ, **git_env(), "GIT_EDITOR": "true", "GIT_SEQUENCE_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no"}
    command = [gitpython.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
    try:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=timeout_s,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return GitResult(-1, "", f"timed out after {timeout_s:g} s")
    except OSError as exc:
        return GitResult(-1, "", f"could not run git: {exc}")
    return GitResult(proc.returncode, proc.stdout, proc.stderr)


class SyncError(Exception):
    """A git command the operation needed failed (the route's 500)."""


class PreCommitHookError(SyncError):
    """The WIP commit was refused (a pre-commit hook, most often); ``detail`` is git's output."""

    def __init__(self, detail: str) -> None:
        super().__init__("WIP commit failed - pre-commit hook error (fix formatting errors before rebasing)")
        self.detail = detail


def _truncate(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


class Worktree:
    """The git commands of one workspace's checkout, each limited to ``timeout_s`` seconds."""

    def __init__(self, path: Path, timeout_s: float | None) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def run(self, *args: str) -> GitResult:
        return run_git_command(list(args), self.path, self.timeout_s)

    def must(self, *args: str) -> str:
        """stdout of a command that has to work; :class:`SyncError` naming it otherwise."""
        result = self.run(*args)
        if not result.ok:
            raise SyncError(f"git {' '.join(args)} failed: exit status {result.code}: {redact(result.output)}")
        return result.out

    def ok(self, *args: str) -> bool:
        return self.run(*args).ok

    def default_branch(self) -> str:
        """origin's default branch (``main``), from ``refs/remotes/origin/HEAD``."""
        result = self.run("symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD")
        name = result.out.strip().removeprefix("origin/") if result.ok else ""
        if not name:
            raise SyncError("failed to get default branch: origin has no HEAD (is the repository empty?)")
        return name

    def current_branch(self) -> str:
        return self.must("rev-parse", "--abbrev-ref", "HEAD").strip()

    def head(self) -> str:
        return self.must("rev-parse", "HEAD").strip()

    def dirty(self) -> bool:
        """Uncommitted changes or untracked files (what schmux's dirty, lines and files checks add up to)."""
        return bool(self.must("status", "--porcelain").strip())

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.ok("merge-base", "--is-ancestor", older, newer)

    def has_ref(self, ref: str) -> bool:
        return self.ok("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")

    def commits_missing(self, ref: str) -> list[str]:
        """Short hashes of the commits of ``ref`` that ``HEAD`` lacks, oldest first."""
        return self.must("log", "--format=%h", "--reverse", f"HEAD..{ref}").split()

    def ahead_behind(self, ref: str) -> tuple[int, int]:
        counts = self.must("rev-list", "--left-right", "--count", f"HEAD...{ref}").split()
        return int(counts[0]), int(counts[1])

    def rebase_in_progress(self) -> bool:
        for name in ("rebase-merge", "rebase-apply"):
            result = self.run("rev-parse", "--git-path", name)
            if result.ok and (self.path / result.out.strip()).exists():
                return True
        return False

    def unmerged_files(self) -> list[str]:
        result = self.run("diff", "--name-only", "-z", "--diff-filter=U")
        return [name for name in result.out.split("\0") if name] if result.ok else []

    def wip_commit(self) -> bool:
        """Commit everything (untracked files too) as a WIP commit; ``False`` when there was nothing.

        A refused commit (a pre-commit hook) raises :class:`PreCommitHookError`; the index is
        left as ``git add -A`` made it, as schmux does.
        """
        self.must("add", "-A")
        if self.ok("diff", "--cached", "--quiet"):
            return False
        result = self.run("commit", "--quiet", "-m", f"{constants.WIP_COMMIT_PREFIX}{time.time_ns()}")
        if not result.ok:
            detail = f"exit status {result.code}: {_truncate(result.output, constants.PRE_COMMIT_DETAIL_CHARS)}"
            raise PreCommitHookError(detail)
        return True

    def undo_commit(self) -> GitResult:
        """``git reset --mixed HEAD~1``: the WIP commit's work back in the worktree, unstaged."""
        return self.run("reset", "--quiet", "--mixed", "HEAD~1")


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncResult:
    """schmux's ``LinearSyncResult``: ``success_count``, ``conflicting_hash`` and ``branch`` are omitted when empty."""

    success: bool
    success_count: int = 0
    conflicting_hash: str = ""
    branch: str = ""

    def to_contract(self) -> dict[str, Any]:
        out: dict[str, Any] = {"success": self.success}
        if self.success_count:
            out["success_count"] = self.success_count
        if self.conflicting_hash:
            out["conflicting_hash"] = self.conflicting_hash
        if self.branch:
            out["branch"] = self.branch
        return out


def _not_found(workspace_id: str) -> dict[str, Any]:
    """The syncs' 404 (schmux's ``LinearSyncResult`` error form)."""
    return _answer(
        404, {"success": False, "message": f"workspace {workspace_id} not found", "is_pre_commit_hook_error": False}
    )


def _answer(status: int, body: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": status, "body": body}


@dataclass
class _Outcome:
    """How a resolution ended (before it becomes the state's final status)."""

    success: bool
    message: str
    hash: str = ""
    resolutions: list[Resolution] = field(default_factory=list)


class _Aborted(Exception):
    """A resolution stopped after aborting the rebase; its message is the state's message."""


# --- the one-shot resolver ------------------------------------------------------------------


class ResolverError(Exception):
    """A one-shot call that gave no usable answer; ``raw`` is its output when it gave one."""

    def __init__(self, message: str, raw: str = "") -> None:
        super().__init__(message)
        self.raw = raw


def _setting(config: Any, section: str, key: str, default: Any) -> Any:
    """``config.<section>.<key>``, whether the section is a model or a dict (or missing)."""
    value = getattr(config, section, None)
    if isinstance(value, dict):
        value = value.get(key)
    else:
        value = getattr(value, key, None)
    return default if value is None else value


def parse_resolver_answer(raw: str) -> dict[str, Any]:
    """The resolver's JSON answer, from the first ``{`` to the last ``}`` of its output.

    Accepts the answer itself or an agent CLI's envelope around it (``structured_output`` as an
    object, or ``result`` as a JSON string). Fields keep schmux's lenient defaults; a field of
    the wrong type is an invalid answer.
    """
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end < start:
        raise ResolverError("invalid conflict resolve response: no JSON object found in response", raw)
    try:
        payload = json.loads(raw[start : end + 1])
    except ValueError as exc:
        raise ResolverError(f"invalid conflict resolve response: {exc}", raw) from None
    if isinstance(payload, dict) and "confidence" not in payload:
        inner = payload.get("structured_output")
        if isinstance(inner, dict):
            payload = inner
        elif isinstance(payload.get("result"), str):
            return parse_resolver_answer(payload["result"])
    if not isinstance(payload, dict) or not payload.get("confidence"):
        raise ResolverError("invalid conflict resolve response: response JSON does not contain expected fields", raw)
    files = payload.get("files")
    files = {} if files is None else files
    if (
        not isinstance(payload.get("all_resolved", False), bool)
        or not isinstance(payload["confidence"], str)
        or not isinstance(payload.get("summary", ""), str)
        or not isinstance(files, dict)
        or not all(isinstance(v, dict) for v in files.values())
    ):
        raise ResolverError("invalid conflict resolve response: a field has the wrong type", raw)
    return {
        "all_resolved": payload.get("all_resolved", False),
        "confidence": payload["confidence"],
        "summary": payload.get("summary", ""),
        "files": {
            str(path): {"action": str(v.get("action", "")), "description": str(v.get("description", ""))}
            for path, v in files.items()
        },
    }


def run_promptable_command(command: str, prompt: str, cwd: Path, timeout_s: float) -> str:
    """Run a user-defined promptable target once: the prompt on stdin, its stdout is the answer.

    The command runs in ``cwd`` (the workspace, where it edits the files) in a session of its
    own, so a timeout kills it and everything it started. The runtime's admin token is not in
    its environment.
    """
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ResolverError(f"cannot parse the target's command: {exc}") from None
    if not argv:
        raise ResolverError("the target's command is empty")
    env = {k: v for k, v in os.environ.items() if k not in constants.TMUX_ENV_DROP}
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
    except OSError as exc:
        raise ResolverError(f"one-shot execution failed: {exc}") from None
    try:
        out, err = proc.communicate(prompt, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.communicate()
        raise ResolverError(f"one-shot execution timed out after {timeout_s:g} s") from None
    if proc.returncode != 0:
        raise ResolverError(
            f"one-shot execution failed (exit status {proc.returncode}): {_truncate(err or out, 500)}", out
        )
    return out


def configured_resolver(config: Any, workspace_path: Path) -> Resolver:
    """The resolver of ``conflict_resolve.target``: a user-defined promptable run target, run once.

    The model and detected-tool targets of schmux come with the runtime's one-shot model calls;
    until then such a name is "not found". No target: every call fails with "not configured".
    """
    target_name = str(_setting(config, "conflict_resolve", "target", "") or "").strip()
    timeout_s = float(
        _setting(config, "conflict_resolve", "timeout_ms", 0) or constants.AGENTS_CONFLICT_RESOLVE_TIMEOUT_MS
    )
    timeout_s /= 1000

    def resolve(prompt: str, schema: dict[str, Any]) -> dict[str, Any]:
        del schema  # a user-defined target gets no schema (schmux's user targets neither)
        if not target_name:
            raise ResolverError("conflict_resolve target not configured")
        target = next((t for t in getattr(config, "run_targets", []) if t.name == target_name), None)
        if target is None:
            raise ResolverError(f"conflict resolve target not found: {target_name}")
        if target.type != "promptable":
            raise ResolverError(f"conflict resolve target {target_name} is not promptable")
        return parse_resolver_answer(run_promptable_command(target.command, prompt, workspace_path, timeout_s))

    return resolve


def build_prompt(workspace_path: Path, default_commit: str, local_commit: str, message: str, files: list[str]) -> str:
    """What the one-shot target is asked: resolve these files in place, then answer in JSON."""
    listing = "\n".join(f"  - {name}" for name in sorted(files))
    return f"""A git rebase stopped on conflicts, and you are to resolve them.

The workspace at {workspace_path} is being rebased onto commit {default_commit} of the default
branch. Replaying its local commit {local_commit} ({json.dumps(message)}) left conflicts in:
{listing}

What to do:
1. Open each file above; the conflicts are between <<<<<<< and >>>>>>> markers.
2. Resolve every conflict so that what both sides meant to do is kept.
3. Save the resolved file in place, with no conflict markers left, or delete the file when
   removing it is the right resolution.
4. Reply with a single JSON object and nothing else:

{{
  "all_resolved": true,
  "confidence": "high",
  "summary": "What each side changed, how you combined them, and anything a reviewer should check.",
  "files": {{
    "path/of/a/file": {{"action": "modified", "description": "how its conflict was resolved"}},
    "path/of/another": {{"action": "deleted", "description": "why it was removed"}}
  }}
}}

- "all_resolved": true only when every conflict in every file is resolved.
- "confidence": "high", "medium" or "low"; only "high" lets the rebase go on.
- "files": one entry for each file listed above, with "action" "modified" (the file on disk is
  resolved; it will be staged with git add) or "deleted" (you deleted it; it will be staged with
  git rm), and a "description".
- The reply must be valid JSON, with no text before or after it.
"""


# --- the operations -------------------------------------------------------------------------


class LinearSync:
    """The sync routes' work on the backend's workspaces.

    ``resolver_for(workspace_path)`` gives the one-shot resolver of a resolution (default: the
    configured target, read from ``backend.config`` when the resolution starts).
    """

    def __init__(
        self,
        backend: Any,
        states: ConflictStates,
        resolver_for: Callable[[Path], Resolver] | None = None,
    ) -> None:
        self.backend = backend
        self.states = states
        self.resolver_for = resolver_for or (lambda path: configured_resolver(self.backend.config, path))
        self._threads: dict[str, threading.Thread] = {}

    # --- helpers ----------------------------------------------------------------------------

    def _workspace(self, workspace_id: str) -> Workspace | None:
        try:
            return self.backend.workspaces.get(workspace_id)
        except MisoError:
            return None

    def _timeout_s(self) -> float | None:
        return self.backend.config.sessions.git_clone_timeout_ms / 1000 or None

    def _worktree(self, ws: Workspace) -> Worktree:
        path = Path(ws.path)
        if not path.is_dir():
            raise SyncError(f'workspace "{ws.id}" no longer exists at {path}')
        return Worktree(path, self._timeout_s())

    def _fetch(self, ws: Workspace) -> None:
        try:
            self.backend.workspaces.fetch(ws.id)
        except MisoError as exc:
            raise SyncError(f"git fetch origin failed: {exc.message}") from None

    # --- push to branch ---------------------------------------------------------------------

    def push_to_branch(self, workspace_id: str) -> dict[str, Any]:
        """``POST .../push-to-branch``: push ``HEAD`` to the workspace's branch on origin (made if new)."""
        ws = self._workspace(workspace_id)
        if ws is None:
            return _answer(404, {"success": False, "message": f"workspace {workspace_id} not found"})
        try:
            with self.backend.locks.hold(workspace_id):
                result = self._push_to_branch(ws)
        except SyncError as exc:
            logger.warning("push-to-branch of %s failed: %s", workspace_id, exc)
            return _answer(500, {"success": False, "message": f"Failed to push to branch: {exc}"})
        finally:
            self.backend.changed(workspace_id)
        return _answer(200, result.to_contract())

    def _push_to_branch(self, ws: Workspace) -> SyncResult:
        tree = self._worktree(ws)
        self._fetch(ws)
        branch = tree.current_branch()
        if branch == "HEAD":  # detached: the branch the workspace was made for
            branch = ws.branch
        remote = f"refs/remotes/origin/{branch}"
        if tree.has_ref(remote) and not tree.is_ancestor(remote, "HEAD"):
            return SyncResult(False, branch=branch)  # behind or diverged: the push would lose commits
        if tree.dirty():
            return SyncResult(False, branch=branch)
        pushed = tree.run("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        if not pushed.ok:
            raise SyncError(f"git push origin HEAD:{branch} failed: exit status {pushed.code}: {redact(pushed.output)}")
        logger.info("pushed %s to origin/%s", ws.id, branch)
        return SyncResult(True, branch=branch)

    # --- sync from main ---------------------------------------------------------------------

    def sync_from_main(self, workspace_id: str) -> dict[str, Any]:
        """``POST .../linear-sync-from-main``: rebase onto origin's default branch, one commit at a time."""
        ws = self._workspace(workspace_id)
        if ws is None:
            return _not_found(workspace_id)
        try:
            with self.backend.locks.hold(workspace_id):
                result, branch = self._sync_from_main(ws)
                if result.conflicting_hash:
                    self.states.mark_conflict(workspace_id, branch)
        except PreCommitHookError as exc:
            logger.warning("sync-from-main of %s: the WIP commit was refused: %s", workspace_id, exc.detail)
            return _answer(
                500,
                {
                    "success": False,
                    "message": "Failed to sync from main",
                    "is_pre_commit_hook_error": True,
                    "pre_commit_error_detail": exc.detail,
                },
            )
        except SyncError as exc:
            logger.warning("sync-from-main of %s failed: %s", workspace_id, exc)
            return _answer(
                500, {"success": False, "message": "Failed to sync from main", "is_pre_commit_hook_error": False}
            )
        finally:
            self.backend.changed(workspace_id)
        return _answer(200, result.to_contract())

    def _sync_from_main(self, ws: Workspace) -> tuple[SyncResult, str]:
        """The result, and the workspace's branch (the ``conflict_on_branch`` of a conflict)."""
        tree = self._worktree(ws)
        default = tree.default_branch()
        self._fetch(ws)
        base = f"origin/{default}"
        branch = tree.current_branch()
        if tree.is_ancestor(base, "HEAD"):
            return SyncResult(True, branch=default), branch
        commits = tree.commits_missing(base)
        if not commits:
            return SyncResult(True, branch=default), branch
        made_wip = tree.wip_commit()
        done = 0
        for commit in commits:
            rebased = tree.run("rebase", "--quiet", commit)
            if not rebased.ok:
                # The first conflict: back to how it was before this commit, and say where it stopped.
                tree.run("rebase", "--abort")
                if made_wip:
                    tree.undo_commit()
                logger.info("sync-from-main of %s: conflict at %s after %d commit(s)", ws.id, commit, done)
                return SyncResult(False, done, commit, default), branch
            done += 1
        if made_wip:
            undone = tree.undo_commit()
            if not undone.ok:
                logger.warning("sync-from-main of %s: could not undo the WIP commit: %s", ws.id, undone.output)
        logger.info("sync-from-main of %s: rebased %d commit(s) of %s", ws.id, done, default)
        return SyncResult(True, done, branch=default), branch

    # --- sync to main -----------------------------------------------------------------------

    def sync_to_main(self, workspace_id: str) -> dict[str, Any]:
        """``POST .../linear-sync-to-main``: fast-forward origin's default branch to ``HEAD``."""
        ws = self._workspace(workspace_id)
        if ws is None:
            return _not_found(workspace_id)
        try:
            with self.backend.locks.hold(workspace_id):
                result = self._sync_to_main(ws)
        except SyncError as exc:
            logger.warning("sync-to-main of %s failed: %s", workspace_id, exc)
            return _answer(
                500,
                {"success": False, "message": f"Failed to sync to main: {exc}", "is_pre_commit_hook_error": False},
            )
        finally:
            self.backend.changed(workspace_id)
        return _answer(200, result.to_contract())

    def _sync_to_main(self, ws: Workspace) -> SyncResult:
        tree = self._worktree(ws)
        default = tree.default_branch()
        self._fetch(ws)
        base = f"origin/{default}"
        refused = SyncResult(False, branch=default)
        if not tree.is_ancestor(base, "HEAD"):
            return refused  # behind or diverged: not a fast-forward
        ahead, behind = tree.ahead_behind(base)
        if tree.dirty() or behind != 0 or ahead < 1:
            return refused
        branch = tree.current_branch()
        if branch != default:
            tree.must("branch", f"--set-upstream-to={base}")
        pushed = tree.run("push", "--quiet", "origin", f"HEAD:refs/heads/{default}")
        if not pushed.ok:
            raise SyncError(
                f"git push origin HEAD:{default} failed: exit status {pushed.code}: {redact(pushed.output)}"
            )
        if branch != default:
            merged = tree.run("merge", "--ff-only", "--quiet", base)
            if not merged.ok:
                logger.warning("sync-to-main of %s: git merge --ff-only %s failed: %s", ws.id, base, merged.output)
        logger.info("sync-to-main of %s: pushed %d commit(s) to %s", ws.id, ahead, default)
        return SyncResult(True, ahead, branch=default)

    # --- resolve conflict -------------------------------------------------------------------

    def resolve_conflict(self, workspace_id: str) -> dict[str, Any]:
        """``POST .../linear-sync-resolve-conflict``: 202 and the work on a thread; 409 while one runs."""
        ws = self._workspace(workspace_id)
        if ws is None:
            return _answer(404, {"started": False, "message": f"workspace {workspace_id} not found"})
        try:
            self.states.start(workspace_id)
        except AlreadyRunning:
            return _answer(409, {"started": False, "message": "operation already in progress"})
        thread = threading.Thread(
            target=self._run_resolution, args=(ws,), name=f"resolve-conflict-{workspace_id}", daemon=True
        )
        self._threads[workspace_id] = thread
        thread.start()
        logger.info("conflict resolution of %s started", workspace_id)
        return _answer(202, {"started": True, "workspace_id": workspace_id})

    def dismiss_conflict_state(self, workspace_id: str) -> dict[str, Any]:
        """``DELETE .../linear-sync-resolve-conflict-state``: 404 none, 409 running, 200 deleted (empty body).

        schmux's 404 has an empty body; its doc gives this message, and its dashboard reads either.
        """
        outcome = self.states.dismiss(workspace_id)
        if outcome == "missing":
            return _answer(404, {"message": "no conflict resolution state found"})
        if outcome == IN_PROGRESS:
            return _answer(409, {"message": "operation still in progress"})
        return _answer(200, None)

    def conflict_states(self) -> list[dict[str, Any]]:
        """Every state, for a server that has not seen one published yet."""
        return self.states.all()

    def wait_resolution(self, workspace_id: str, timeout_s: float) -> bool:
        """Wait for the resolution thread of a workspace (tests and shutdown); ``False`` on timeout."""
        thread = self._threads.get(workspace_id)
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def _run_resolution(self, ws: Workspace) -> None:
        """The thread: never leaves the state ``in_progress``, whatever happens."""
        workspace_id = ws.id
        try:
            with self.backend.locks.hold(workspace_id):
                outcome = self._resolve(ws)
        except SyncError as exc:
            self.backend.changed(workspace_id)
            self.states.finish(workspace_id, FAILED, f"Failed to resolve conflict: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug must still end the state
            logger.exception("conflict resolution of %s crashed", workspace_id)
            self.backend.changed(workspace_id)
            self.states.finish(workspace_id, FAILED, f"Internal error: {exc}")
        else:
            if outcome.success:
                self.states.mark_conflict(workspace_id, None)
            self.backend.changed(workspace_id)
            self.states.finish(
                workspace_id, DONE if outcome.success else FAILED, outcome.message, outcome.hash, outcome.resolutions
            )
            logger.info("conflict resolution of %s: %s", workspace_id, outcome.message)
        finally:
            self._threads.pop(workspace_id, None)

    def _resolve(self, ws: Workspace) -> _Outcome:
        """Rebase the first commit of the default branch that ``HEAD`` lacks, resolving conflicts.

        Reads the remote-tracking refs as they are (no fetch: the sync that met the conflict
        fetched). Raises :class:`SyncError` for a failure before the rebase starts.
        """
        tree = self._worktree(ws)

        def emit(action: str, status: str, message: str, hash_: str = "", **extra: Any) -> None:
            self.states.step(ws.id, Step(action, status, message, **extra), hash_=hash_)

        default = tree.default_branch()
        missing = tree.commits_missing(f"origin/{default}")
        if not missing:
            message = f"Caught up to {default}"
            emit("check_behind", DONE, message)
            return _Outcome(True, message)
        commit = missing[0]
        emit(
            "check_behind",
            DONE,
            f"{len(missing)} commits behind origin/{default}, rebasing {commit}",
            hash_=commit,
        )
        made_wip = tree.wip_commit()
        emit(
            "wip_commit",
            DONE,
            "Created WIP commit to preserve local changes" if made_wip else "No local changes, skipped WIP commit",
            created=made_wip,
        )
        resolutions: list[Resolution] = []

        def abort(reason: str) -> _Outcome:
            emit("abort", IN_PROGRESS, f"Aborting: {reason}")
            tree.run("rebase", "--abort")
            if made_wip:
                tree.undo_commit()
            emit("abort", FAILED, f"Aborted: {reason}")
            return _Outcome(False, reason, commit, resolutions)

        def unwind() -> None:
            if not made_wip:
                return
            emit("wip_unwind", IN_PROGRESS, "Unwinding WIP commit")
            undone = tree.undo_commit()
            if undone.ok:
                emit("wip_unwind", DONE, "Restored local changes")
            else:
                emit("wip_unwind", FAILED, f"Warning: git reset --mixed failed: {undone.output}")

        emit("rebase_start", IN_PROGRESS, f"git rebase {commit}")
        rebased = tree.run("rebase", commit)
        if rebased.ok:
            emit("rebase_start", DONE, f"Rebased {commit} cleanly")
            unwind()
            return _Outcome(True, f"Rebased {commit} cleanly", commit)
        if not tree.rebase_in_progress():
            message = f"git rebase {commit} failed: {rebased.output or f'exit status {rebased.code}'}"
            emit("rebase_start", FAILED, message)
            return abort(message)
        emit("rebase_start", DONE, f"git rebase {commit} — conflict detected")
        resolver = self.resolver_for(Path(ws.path))
        try:
            for _round in range(constants.CONFLICT_RESOLVE_MAX_ROUNDS):
                if self._resolve_round(tree, commit, resolver, resolutions, emit):
                    break
            else:
                raise _Aborted(f"Rebase of {commit} did not finish in {constants.CONFLICT_RESOLVE_MAX_ROUNDS} rounds")
        except _Aborted as stop:
            return abort(str(stop))
        unwind()
        return _Outcome(True, f"Rebased {commit} with {len(resolutions)} conflict(s) resolved", commit, resolutions)

    def _resolve_round(
        self,
        tree: Worktree,
        commit: str,
        resolver: Resolver,
        resolutions: list[Resolution],
        emit: Callable[..., None],
    ) -> bool:
        """One stop of the rebase: resolve its conflicts and continue. ``True`` once the rebase is
        complete; :class:`_Aborted` (with the reason) when it has to stop."""
        unmerged = tree.unmerged_files()
        if not unmerged:
            if not tree.rebase_in_progress():
                raise _Aborted(f"Rebase failed (no unmerged files, no rebase in progress) on {commit}")
            # git may have resolved the content itself and only wants a continue.
            emit("rebase_continue", IN_PROGRESS, "No unmerged files, attempting git rebase --continue")
            return self._continue(tree, emit, "Rebase complete (auto-resolved)", "Next commit has conflicts")

        local = tree.run("rev-parse", "REBASE_HEAD")
        local_commit = local.out.strip() if local.ok and local.out.strip() else "unknown"
        subject = tree.run("log", "-1", "--format=%s", "REBASE_HEAD")
        local_message = subject.out.strip() if subject.ok else ""
        emit(
            "conflict_detected",
            DONE,
            f"Conflict on {local_commit[:7]} — {len(unmerged)} file(s)",
            local_commit=local_commit,
            local_commit_message=local_message,
            files=list(unmerged),
        )
        emit(
            "llm_call",
            IN_PROGRESS,
            f"Calling LLM to resolve {len(unmerged)} file(s)...",
            local_commit=local_commit,
            files=list(unmerged),
        )
        resolution = Resolution(local_commit, local_message, files=list(unmerged))
        prompt = build_prompt(tree.path, commit, local_commit, local_message, unmerged)
        try:
            answer = resolver(prompt, CONFLICT_RESOLVE_SCHEMA)
        except Exception as exc:  # noqa: BLE001 - any failure of the call is this step's failure
            resolution.summary = f"LLM error: {exc}"
            resolutions.append(resolution)
            message = f"Could not resolve conflict on local commit {local_commit}: {exc}"
            raw = getattr(exc, "raw", "")
            emit(
                "llm_call",
                FAILED,
                message,
                local_commit=local_commit,
                files=list(unmerged),
                summary=_truncate(raw, constants.CONFLICT_RESOLVE_RAW_SUMMARY_CHARS) if raw else "",
            )
            raise _Aborted(message) from None
        resolution.all_resolved = bool(answer.get("all_resolved"))
        resolution.confidence = str(answer.get("confidence", ""))
        resolution.summary = str(answer.get("summary", ""))
        resolutions.append(resolution)
        if not resolution.all_resolved or resolution.confidence != "high":
            reason = f"{resolution.confidence} confidence" if resolution.all_resolved else "not all resolved"
            message = f"Could not resolve conflict on local commit {local_commit}: {reason}"
            emit(
                "llm_call",
                FAILED,
                message,
                local_commit=local_commit,
                files=list(unmerged),
                confidence=resolution.confidence,
                summary=resolution.summary,
            )
            raise _Aborted(message)
        emit(
            "llm_call",
            DONE,
            resolution.summary,
            local_commit=local_commit,
            files=list(unmerged),
            confidence=resolution.confidence,
            summary=resolution.summary,
        )
        self._check_and_stage(tree, unmerged, answer.get("files") or {})
        emit("rebase_continue", IN_PROGRESS, "git rebase --continue")
        return self._continue(tree, emit, "Rebase complete", "Next commit also has conflicts")

    @staticmethod
    def _check_and_stage(tree: Worktree, unmerged: list[str], files: dict[str, Any]) -> None:
        """Check that the disk matches what the resolver says it did, then stage it."""
        for extra in sorted(set(files) - set(unmerged)):
            logger.info("ignoring %s in the resolver's answer: it had no conflict", extra)
        to_add: list[str] = []
        to_remove: list[str] = []
        for name in unmerged:
            entry = files.get(name)
            if entry is None:
                raise _Aborted(f"LLM omitted conflicted file {json.dumps(name)} from response")
            clean = os.path.normpath(name)
            if os.path.isabs(clean) or clean == ".." or clean.startswith(".." + os.sep):
                raise _Aborted(f"Invalid file path from git: {json.dumps(name)}")
            full = tree.path / clean
            action = entry.get("action")
            if action == "deleted":
                if os.path.lexists(full):
                    raise _Aborted(f"LLM reported {json.dumps(name)} as deleted but file still exists on disk")
                to_remove.append(name)
            elif action == "modified":
                try:
                    text = full.read_bytes().decode("utf-8", errors="replace")
                except OSError as exc:
                    raise _Aborted(f"LLM reported {json.dumps(name)} as modified but cannot read file: {exc}") from None
                if "<<<<<<<" in text or ">>>>>>>" in text:
                    raise _Aborted(f"File {json.dumps(name)} still contains conflict markers after LLM resolution")
                to_add.append(name)
            else:
                raise _Aborted(f"LLM returned unknown action {json.dumps(action)} for file {json.dumps(name)}")
        if to_add:
            added = tree.run("add", "--", *to_add)
            if not added.ok:
                raise _Aborted(f"git add failed after resolution: exit status {added.code}: {added.output}")
        if to_remove:
            removed = tree.run("rm", "--quiet", "--ignore-unmatch", "--", *to_remove)
            if not removed.ok:
                raise _Aborted(f"git rm failed after resolution: exit status {removed.code}: {removed.output}")

    @staticmethod
    def _continue(tree: Worktree, emit: Callable[..., None], complete: str, next_conflicts: str) -> bool:
        """``git rebase --continue``: ``True`` when the rebase is complete, ``False`` when it stopped
        again (the next round resolves that stop), :class:`_Aborted` when it failed."""
        continued = tree.run("rebase", "--continue")
        if continued.ok:
            if not tree.rebase_in_progress():
                emit("rebase_continue", DONE, complete)
                return True
            emit("rebase_continue", DONE, "Continuing to next commit")
            return False
        if tree.rebase_in_progress() and tree.unmerged_files():
            emit("rebase_continue", DONE, next_conflicts)
            return False
        message = f"git rebase --continue failed: {continued.output}"
        emit("rebase_continue", FAILED, message)
        raise _Aborted(message)

    # --- the worker's side ------------------------------------------------------------------

    def workspace_extras(self, workspace_id: str) -> dict[str, Any]:
        """``conflict_on_branch`` of the workspace item, when a sync met a conflict."""
        branch = self.states.conflict_on_branch(workspace_id)
        return {"conflict_on_branch": branch} if branch else {}

    def methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "sync_push_to_branch": self.push_to_branch,
            "sync_from_main": self.sync_from_main,
            "sync_to_main": self.sync_to_main,
            "sync_resolve_conflict": self.resolve_conflict,
            "sync_dismiss_conflict_state": self.dismiss_conflict_state,
            "sync_conflict_states": self.conflict_states,
        }


def sync_methods(backend: Any, options: dict[str, Any], send: Callable[[Any], None]) -> dict[str, Callable[..., Any]]:
    """Build the sync and overlay modules on the worker's backend and return their RPC methods.

    Hooks them into the backend: ``conflict_on_branch`` joins the workspace item (composed with
    the extras other modules give), and a removed workspace's states go with it. The states are
    published (``AgentsConflicts``) now and after every change.
    """
    from .overlays import Overlays  # it imports this module's git runner

    sessions_file = Path(options["sessions_file"])
    conflicts_file = Path(options.get("conflicts_file") or sessions_file.parent / constants.AGENT_CONFLICTS_FILE_NAME)
    overlays_dir = Path(options.get("overlays_dir") or sessions_file.parent / constants.OVERLAYS_DIR_NAME)

    def publish(states: list[dict[str, Any]]) -> None:
        send(AgentsConflicts(states))

    states = ConflictStates(conflicts_file, publish)
    sync = LinearSync(backend, states)
    overlays = Overlays(backend, overlays_dir)

    previous_extras = backend.workspace_extras

    def extras(workspace_id: str) -> dict[str, Any]:
        return {**previous_extras(workspace_id), **sync.workspace_extras(workspace_id)}

    backend.workspace_extras = extras
    backend.on_workspace_removed.append(states.forget)
    publish(states.all())
    return {**sync.methods(), **overlays.methods()}

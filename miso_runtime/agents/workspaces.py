"""Workspaces of the schmux contract: one bare clone per repo, one ``git worktree`` per workspace.

A workspace is a checkout named ``<repo>-NNN`` under ``workspace_path`` where one coding agent
works on one branch. In the default ``git-worktree`` mode it is a worktree of the repo's bare
clone (``<clones_dir>/<repo>-<hash>.git``): creating one costs a checkout, not a download, and
git itself guarantees that a branch is checked out in one workspace only. In ``git`` mode it is a
full clone of its own (borrowing the bare clone's objects), so two workspaces may share a branch.

This module is a service: no HTTP, no gevent. Every git command runs through :func:`run_git`,
which never lets git wait for a password and turns failures into :class:`WorkspaceError`.
The known workspaces (id, repo, branch, path, created_at) are kept in a JSON file::

    {"version": 1, "workspaces": [{"id": "repo-001", "repo": "https://...", "branch": "main",
                                   "path": "/abs/repo-001", "created_at": "2025-01-15T10:00:00Z"}]}

written atomically, so a crash leaves the old list or the new one. :meth:`WorkspaceManager.scan`
reconciles that list with the disk after anything changed behind our back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

import git
from git.exc import GitCommandNotFound

from .. import constants
from ..errors import MisoError
from ..settings_files import write_atomic
from .git_status import GitStatus, compute_git_status

logger = logging.getLogger(__name__)

#: HTTP status of each error code (the face renders it in the schmux envelope).
ERROR_STATUS: dict[str, int] = {
    "invalid_repo": 400,
    "invalid_branch": 400,
    "clone_failed": 400,
    "fetch_failed": 502,
    "dirty": 400,
    "not_found": 404,
    "branch_conflict": 409,
    "git_failed": 500,
    "io_failed": 500,
    "state_write_failed": 500,
}

_WORKSPACE_ID = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)-(?P<number>\d{%d,})$" % constants.WORKSPACE_NUMBER_DIGITS)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_STATE_VERSION = 1


class WorkspaceError(MisoError):
    """A workspace operation that failed in a way the user can act on.

    ``code`` is one of :data:`ERROR_STATUS`: ``invalid_repo``, ``invalid_branch``,
    ``clone_failed`` (clone of a new repo), ``fetch_failed`` (update of a known one), ``dirty``,
    ``not_found``, ``branch_conflict``, ``git_failed`` (any other git command), ``io_failed`` (a
    folder could not be made or deleted) and ``state_write_failed`` (the list could not be saved).
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(ERROR_STATUS.get(code, 500), code, message)


@dataclass(frozen=True)
class Workspace:
    """One known workspace, as persisted. ``branch`` is the branch as of the last create or scan."""

    id: str
    repo: str
    branch: str
    path: str
    created_at: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class BranchConflict:
    """Whether ``branch`` is checked out in a worktree of the repo already, and in which one."""

    conflict: bool
    workspace_id: str | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The body of ``POST /api/check-branch-conflict``."""
        return {"conflict": True, "workspace_id": self.workspace_id} if self.conflict else {"conflict": False}


@dataclass
class ScanResult:
    """What :meth:`WorkspaceManager.scan` changed in the known list."""

    added: list[Workspace] = field(default_factory=list)
    removed: list[Workspace] = field(default_factory=list)
    #: ``(before, after)`` of each workspace whose branch changed.
    updated: list[tuple[Workspace, Workspace]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many of each, for the log."""
        return {"added": len(self.added), "removed": len(self.removed), "updated": len(self.updated)}

    def to_contract(self) -> dict[str, list[dict[str, str]]]:
        """The body of ``POST /api/workspaces/scan``: the workspaces themselves, as schmux's dashboard reads them."""

        def item(ws: Workspace) -> dict[str, str]:
            return {"id": ws.id, "repo": ws.repo, "branch": ws.branch, "path": ws.path}

        return {
            "added": [item(ws) for ws in self.added],
            "updated": [{"old": item(old), "new": item(new)} for old, new in self.updated],
            "removed": [item(ws) for ws in self.removed],
        }


# --- git ------------------------------------------------------------------------------------


def redact(text: str) -> str:
    """``text`` with the user/password part of URLs replaced, so tokens never reach a log or a client."""
    return _URL_USERINFO.sub(r"\g<scheme>***@", text)


def git_env() -> dict[str, str]:
    """Environment added to every git command so that git never waits for a person."""
    env = dict(constants.GIT_NO_PROMPT_ENV)
    if not os.environ.get("GIT_SSH_COMMAND") and not os.environ.get("GIT_SSH"):
        env["GIT_SSH_COMMAND"] = constants.GIT_SSH_BATCH_COMMAND
    return env


def run_git(
    args: Sequence[str],
    cwd: Path,
    *,
    timeout_s: float | None = constants.GIT_LOCAL_TIMEOUT_S,
    check: bool = True,
    code: str = "git_failed",
    what: str | None = None,
) -> str | None:
    """Run ``git <args>`` in ``cwd`` and return its stdout (without the last newline).

    The command gets :func:`git_env`, no stdin and a new session (no controlling terminal, so
    neither git nor ssh can open ``/dev/tty`` to ask for anything), and is killed after
    ``timeout_s`` seconds. A non-zero exit returns ``None`` when ``check`` is false, else raises
    :class:`WorkspaceError` with ``code`` and ``what: <git's own message>``.
    """
    if not Path(cwd).is_dir():
        # GitPython would silently run in the process's own directory instead.
        if not check:
            return None
        raise WorkspaceError("not_found", f"{cwd} does not exist")
    command = [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args]
    try:
        status, stdout, stderr = git.Git(str(cwd)).execute(
            command,
            with_extended_output=True,
            with_exceptions=False,
            kill_after_timeout=timeout_s,
            env=git_env(),
            start_new_session=True,
        )
    except GitCommandNotFound:
        raise WorkspaceError("git_failed", "git is not installed or not on PATH") from None
    if status == 0:
        return str(stdout)
    if not check:
        return None
    detail = redact(_one_line(str(stderr)) or f"git exited with status {status}")
    message = f"{what or 'git ' + ' '.join(args[:2])}: {detail}"
    logger.warning("git %s in %s failed (%s): %s", redact(" ".join(args)), cwd, status, redact(str(stderr)))
    raise WorkspaceError(code, message)


def _one_line(stderr: str, limit: int = 600) -> str:
    """Git's message on one line; the end is kept when it is long (``fatal:`` comes last)."""
    text = " ".join(line.strip() for line in stderr.splitlines() if line.strip())
    return text if len(text) <= limit else "..." + text[-limit:]


def validate_branch(branch: str, cwd: Path) -> str:
    """``branch`` if git accepts it as a branch name (``git check-ref-format --branch``), else ``invalid_branch``.

    The output must equal the input: ``--branch`` expands ``@{-1}``-style names, which are not
    names a workspace can be created on.
    """
    if not branch or branch.strip() != branch:
        raise WorkspaceError("invalid_branch", f"{branch!r} is not a valid branch name")
    out = run_git(["check-ref-format", "--branch", branch], cwd, check=False)
    if out is None or out.strip() != branch:
        raise WorkspaceError("invalid_branch", f"{branch!r} is not a valid git branch name")
    return branch


def normalize_repo(repo: str) -> str:
    """The canonical form of a repo: URLs and ``host:path`` as given, local paths made absolute.

    Git decides the same way: ``scheme://`` is a URL, a ``:`` before the first ``/`` is
    scp-like ssh, anything else is a path on this machine.
    """
    repo = repo.strip()
    if not repo or repo.startswith("-"):
        raise WorkspaceError("invalid_repo", f"{repo!r} is not a repository URL or path")
    if _URL_SCHEME.match(repo):
        return repo.rstrip("/")
    colon, slash = repo.find(":"), repo.find("/")
    if colon > 0 and (slash < 0 or colon < slash):
        return repo
    return str(Path(repo).expanduser().resolve())


def repo_name(repo: str) -> str:
    """Short name of a repo for workspace ids: the last path part without ``.git`` (``schmux``)."""
    tail = re.split(r"[/:\\]", repo.rstrip("/"))[-1].removesuffix(".git")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tail).strip(".-") or "repo"


def _make_dirs(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkspaceError("io_failed", f"could not create {path}: {exc}") from None


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the manager ----------------------------------------------------------------------------


class WorkspaceManager:
    """Creates, lists, reconciles and disposes workspaces; computes their git status.

    Thread-safe: one lock guards the list (held only for quick bookkeeping), and one lock per
    repo serialises clone, fetch, worktree add and remove of that repo, so two spawns of the
    same repo never clone twice while spawns of different repos run side by side.

    Parameters
    ----------
    workspace_path : Path
        Folder of the workspaces (created on use).
    clones_dir : Path
        Folder of the bare clones, one per repo (created on use).
    state_file : Path
        JSON file listing the known workspaces.
    source_code_management : str
        ``git-worktree`` (default) or ``git``; may be changed later through the attribute.
    clone_timeout_s, status_timeout_s : float or None
        Seconds a clone/fetch, or one git command of a status, may run (``None``: no limit).
    """

    def __init__(
        self,
        workspace_path: Path,
        clones_dir: Path,
        state_file: Path,
        *,
        source_code_management: str = constants.SCM_GIT_WORKTREE,
        clone_timeout_s: float | None = constants.AGENTS_GIT_CLONE_TIMEOUT_MS / 1000,
        status_timeout_s: float | None = constants.AGENTS_GIT_STATUS_TIMEOUT_MS / 1000,
    ) -> None:
        self.workspace_path = Path(workspace_path).expanduser().resolve()
        self.clones_dir = Path(clones_dir).expanduser().resolve()
        self.state_file = Path(state_file)
        self.source_code_management = source_code_management
        self.clone_timeout_s = clone_timeout_s
        self.status_timeout_s = status_timeout_s
        self._lock = threading.RLock()
        self._repo_locks: dict[str, threading.Lock] = {}
        self._workspaces: dict[str, Workspace] = self._load()

    @property
    def source_code_management(self) -> str:
        return self._scm

    @source_code_management.setter
    def source_code_management(self, value: str) -> None:
        if value not in constants.SCM_MODES:
            raise ValueError(f"source_code_management must be one of {constants.SCM_MODES}, not {value!r}")
        self._scm = value

    # --- queries ----------------------------------------------------------------------------

    def list(self) -> list[Workspace]:
        """Known workspaces, by id (``repo-001`` before ``repo-002``)."""
        with self._lock:
            return sorted(self._workspaces.values(), key=lambda ws: ws.id)

    def get(self, workspace_id: str) -> Workspace:
        """The workspace ``workspace_id``, or ``not_found``."""
        with self._lock:
            ws = self._workspaces.get(workspace_id)
        if ws is None:
            raise WorkspaceError("not_found", f'workspace "{workspace_id}" not found')
        return ws

    def clone_path(self, repo: str) -> Path:
        """Where the bare clone of ``repo`` lives: ``<clones_dir>/<name>-<hash of the URL>.git``.

        The hash keeps ``github.com/a/tools`` and ``github.com/b/tools`` apart.
        """
        repo = normalize_repo(repo)
        digest = hashlib.sha1(repo.encode("utf-8")).hexdigest()[:10]
        return self.clones_dir / f"{repo_name(repo)}-{digest}.git"

    def check_branch_conflict(self, repo: str, branch: str) -> BranchConflict:
        """Whether ``branch`` is checked out in a worktree of ``repo`` already (worktree mode only).

        Asks git (``git worktree list``) rather than our list, since git is what refuses the
        second checkout; worktrees whose folder is gone are ignored (they are pruned on create).
        Never clones or fetches: it answers from what is on disk, so a UI may call it per keystroke.
        """
        if self._scm != constants.SCM_GIT_WORKTREE:
            return BranchConflict(False)
        bare = self.clone_path(repo)
        if not (bare / "HEAD").is_file():
            return BranchConflict(False)
        listing = run_git(["worktree", "list", "--porcelain"], bare, check=False) or ""
        for block in listing.split("\n\n"):
            lines = block.splitlines()
            attrs = {line.partition(" ")[0]: line.partition(" ")[2] for line in lines}
            if attrs.get("branch") == f"refs/heads/{branch}" and "bare" not in attrs and "prunable" not in attrs:
                path = attrs.get("worktree", "")
                return BranchConflict(True, self._id_for_path(path), path)
        return BranchConflict(False)

    # --- create -----------------------------------------------------------------------------

    def ensure_clone(self, repo: str) -> Path:
        """The bare clone of ``repo``: cloned the first time, fetched every later time."""
        repo = normalize_repo(repo)
        with self._repo_lock(repo):
            return self._ensure_clone(repo)

    def create(self, repo: str, branch: str) -> Workspace:
        """Create a workspace of ``repo`` on ``branch`` and return it.

        ``branch`` is checked out as it is on origin when origin has it, else created from
        origin's default branch (a local branch kept from a disposed workspace is resumed).
        Anything created before a failure is removed again: folder, worktree registration and a
        branch this call made.
        """
        repo = normalize_repo(repo)
        _make_dirs(self.clones_dir)
        validate_branch(branch, self.clones_dir)
        with self._repo_lock(repo):
            bare = self._ensure_clone(repo)
            if self._scm == constants.SCM_GIT_WORKTREE:
                run_git(["worktree", "prune"], bare, check=False)
                conflict = self.check_branch_conflict(repo, branch)
                if conflict.conflict:
                    raise WorkspaceError(
                        "branch_conflict", f'branch "{branch}" is already in use by workspace "{conflict.workspace_id}"'
                    )
            with self._lock:
                workspace_id, path = self._reserve(repo_name(repo))
            worktree = self._scm == constants.SCM_GIT_WORKTREE
            # A branch this call makes is deleted again if the workspace cannot be finished.
            created_branch = branch if worktree and not self._has_ref(bare, f"refs/heads/{branch}") else None
            try:
                if worktree:
                    self._add_worktree(repo, bare, path, branch)
                else:
                    self._clone_into(repo, bare, path, branch)
                ws = Workspace(workspace_id, repo, branch, str(path), _now())
                with self._lock:
                    self._workspaces[ws.id] = ws
                    try:
                        self._save()
                    except BaseException:
                        del self._workspaces[ws.id]
                        raise
            except BaseException:
                self._remove_checkout(bare, path, created_branch)
                raise
        logger.info("created workspace %s (%s on %s) at %s", ws.id, redact(repo), branch, path)
        return ws

    # --- scan and dispose -------------------------------------------------------------------

    def scan(self) -> ScanResult:
        """Reconcile the known list with the disk and save it.

        - removed: a known workspace whose folder (or its ``.git``) is gone; its worktree
          registration is pruned so that its branch can be checked out again;
        - added: a ``<repo>-NNN`` folder under ``workspace_path`` that is a git checkout we did not
          know (its repo is its ``origin`` URL, its created_at the time of the scan);
        - updated: a known workspace whose checked-out branch changed (``HEAD`` when detached).
        """
        result = ScanResult()
        with self._lock:
            for ws in list(self._workspaces.values()):
                path = Path(ws.path)
                if not (path / ".git").exists():
                    del self._workspaces[ws.id]
                    result.removed.append(ws)
                    self._prune_for(ws.repo)
                    continue
                branch = self._current_branch(path)
                if branch is not None and branch != ws.branch:
                    self._workspaces[ws.id] = replace(ws, branch=branch)
                    result.updated.append((ws, self._workspaces[ws.id]))
            known_paths = {ws.path for ws in self._workspaces.values()}
            for child in self._candidate_dirs():
                if str(child) in known_paths:
                    continue
                if child.name in self._workspaces:
                    logger.warning("scan: %s has the id of a known workspace elsewhere; skipped", child)
                    continue
                branch = self._current_branch(child)
                if branch is None:
                    logger.warning("scan: %s is not a usable git checkout; skipped", child)
                    continue
                origin = run_git(["config", "--get", "remote.origin.url"], child, check=False) or ""
                ws = Workspace(child.name, origin.strip(), branch, str(child), _now())
                self._workspaces[ws.id] = ws
                result.added.append(ws)
            if result.added or result.removed or result.updated:
                self._save()
        if result.added or result.removed or result.updated:
            logger.info("workspace scan: %s", result.counts())
        return result

    def dispose(self, workspace_id: str) -> Workspace:
        """Remove a workspace from disk and from the list; refuse (``dirty``) if it has uncommitted work.

        A worktree is removed with ``git worktree remove`` (its branch and commits stay in the
        bare clone); a clone folder is deleted. A workspace whose folder is already gone is just
        forgotten.
        """
        ws = self.get(workspace_id)
        path = Path(ws.path)
        with self._repo_lock(ws.repo):
            self.get(workspace_id)  # a concurrent dispose may have finished while we waited
            if (path / ".git").exists():
                self._refuse_dirty(ws, path)
                if (path / ".git").is_file():
                    common = self._common_dir(path)
                    run_git(["worktree", "remove", str(path)], common, what=f'could not remove workspace "{ws.id}"')
                    run_git(["worktree", "prune"], common, check=False)
                else:
                    try:
                        shutil.rmtree(path)
                    except OSError as exc:
                        raise WorkspaceError("io_failed", f'could not delete workspace "{ws.id}": {exc}') from None
            else:
                self._prune_for(ws.repo)
            with self._lock:
                self._workspaces.pop(ws.id, None)
                self._save()
        logger.info("disposed workspace %s at %s", ws.id, path)
        return ws

    # --- git status -------------------------------------------------------------------------

    def fetch(self, workspace_id: str) -> None:
        """Update origin's refs for a workspace (its bare clone, or its own clone in ``git`` mode)."""
        ws = self.get(workspace_id)
        path = self._existing_path(ws)
        with self._repo_lock(ws.repo):
            target = self._common_dir(path) if (path / ".git").is_file() else path
            self._fetch(target, ws.repo)

    def git_status(self, workspace_id: str, *, fetch: bool = False, side_by_side: bool = True) -> GitStatus:
        """Compute the :class:`~miso_runtime.agents.git_status.GitStatus` of a workspace now.

        Slow (several git commands, plus a network round trip with ``fetch``): callers run it off
        the request path, typically through a :class:`~miso_runtime.agents.git_status.StatusCache`.
        ``side_by_side=False`` runs its git commands one at a time (for the background poll).
        """
        if fetch:
            self.fetch(workspace_id)
        path = self._existing_path(self.get(workspace_id))

        def run(args: Sequence[str], cwd: Path, *, check: bool = True) -> str | None:
            return run_git(args, cwd, timeout_s=self.status_timeout_s, check=check, what="git status failed")

        return compute_git_status(path, run, side_by_side=side_by_side)

    # --- internals --------------------------------------------------------------------------

    def _repo_lock(self, repo: str) -> threading.Lock:
        with self._lock:
            return self._repo_locks.setdefault(repo, threading.Lock())

    def _ensure_clone(self, repo: str) -> Path:
        # Caller holds the repo lock.
        bare = self.clone_path(repo)
        if (bare / "HEAD").is_file():
            self._fetch(bare, repo)
            return bare
        _make_dirs(self.clones_dir)
        # Clone next to the final place and rename: a clone that fails or is killed half-way
        # never looks like a usable clone.
        temp = Path(tempfile.mkdtemp(prefix=f".{bare.name}.", dir=self.clones_dir))
        try:
            run_git(
                ["clone", "--bare", "--quiet", "--", repo, str(temp)],
                self.clones_dir,
                timeout_s=self.clone_timeout_s,
                code="clone_failed",
                what=f"could not clone {redact(repo)}",
            )
            # A bare clone has no remote-tracking refs; give it origin/* like a normal clone has,
            # so that workspaces can compare with origin/<default> and track origin's branches.
            run_git(["config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*"], temp)
            self._fetch(temp, repo, code="clone_failed")
            if bare.exists():
                shutil.rmtree(bare)  # a leftover without HEAD: not a clone
            temp.rename(bare)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        logger.info("cloned %s into %s", redact(repo), bare)
        return bare

    def _fetch(self, git_dir: Path, repo: str, *, code: str = "fetch_failed") -> None:
        run_git(
            ["fetch", "--prune", "--quiet", "origin"],
            git_dir,
            timeout_s=self.clone_timeout_s,
            code=code,
            what=f"could not fetch {redact(repo)}",
        )
        if run_git(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], git_dir, check=False) is None:
            default = (run_git(["symbolic-ref", "--quiet", "--short", "HEAD"], git_dir, check=False) or "").strip()
            if default and self._has_ref(git_dir, f"refs/remotes/origin/{default}"):
                run_git(["symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{default}"], git_dir)

    def _default_ref(self, git_dir: Path, repo: str) -> str:
        ref = (run_git(["symbolic-ref", "--quiet", "refs/remotes/origin/HEAD"], git_dir, check=False) or "").strip()
        if not ref or not self._has_ref(git_dir, ref):
            raise WorkspaceError(
                "git_failed", f"{redact(repo)} has no default branch to start a new branch from (is it empty?)"
            )
        return ref

    @staticmethod
    def _has_ref(git_dir: Path, ref: str) -> bool:
        return run_git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], git_dir, check=False) is not None

    def _reserve(self, name: str) -> tuple[str, Path]:
        """The lowest free ``<name>-NNN`` and its (new, empty) folder; the mkdir is the reservation."""
        # Caller holds self._lock.
        _make_dirs(self.workspace_path)
        number = 1
        while True:
            workspace_id = f"{name}-{number:0{constants.WORKSPACE_NUMBER_DIGITS}d}"
            path = self.workspace_path / workspace_id
            if workspace_id not in self._workspaces:
                try:
                    path.mkdir()
                    return workspace_id, path
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise WorkspaceError("io_failed", f"could not create {path}: {exc}") from None
            number += 1

    def _add_worktree(self, repo: str, bare: Path, path: Path, branch: str) -> None:
        """Check ``branch`` out into a new worktree at ``path``: the local branch, origin's, or a new one."""
        local = f"refs/heads/{branch}"
        remote = f"refs/remotes/origin/{branch}"
        what = f'could not create a worktree for branch "{branch}"'
        has_local, has_remote = self._has_ref(bare, local), self._has_ref(bare, remote)
        if has_local:
            if has_remote:
                self._fast_forward(bare, branch)
                if run_git(["config", "--get", f"branch.{branch}.merge"], bare, check=False) is None:
                    run_git(["branch", "--quiet", "--set-upstream-to", f"origin/{branch}", branch], bare, check=False)
            run_git(["worktree", "add", "--quiet", str(path), branch], bare, what=what)
            return
        if has_remote:
            args = ["worktree", "add", "--quiet", "--track", "-b", branch, str(path), remote]
        else:
            start = self._default_ref(bare, repo)
            args = ["worktree", "add", "--quiet", "--no-track", "-b", branch, str(path), start]
        run_git(args, bare, what=what)

    def _fast_forward(self, bare: Path, branch: str) -> None:
        """Move a local branch (left from the first clone) up to origin's when that loses nothing."""
        local, remote = f"refs/heads/{branch}", f"refs/remotes/origin/{branch}"
        old = (run_git(["rev-parse", local], bare) or "").strip()
        new = (run_git(["rev-parse", remote], bare) or "").strip()
        if old == new:
            return
        if run_git(["merge-base", "--is-ancestor", old, new], bare, check=False) is None:
            logger.info("branch %s has local commits not on origin; checking it out as it is", branch)
            return
        run_git(["update-ref", local, new, old], bare)

    def _clone_into(self, repo: str, bare: Path, path: Path, branch: str) -> None:
        """``git`` mode: a full clone of ``repo`` at ``path`` on ``branch``, objects borrowed from ``bare``."""
        args = ["clone", "--quiet", "--reference-if-able", str(bare), "--dissociate"]
        has_remote = self._has_ref(bare, f"refs/remotes/origin/{branch}")
        if has_remote:
            args += ["--branch", branch]
        run_git(
            [*args, "--", repo, str(path)],
            self.workspace_path,
            timeout_s=self.clone_timeout_s,
            code="clone_failed",
            what=f"could not clone {redact(repo)}",
        )
        if not has_remote:
            start = self._default_ref(path, repo)
            what = f'could not create branch "{branch}"'
            run_git(["checkout", "--quiet", "--no-track", "-b", branch, start], path, what=what)

    def _remove_checkout(self, bare: Path, path: Path, created_branch: str | None) -> None:
        """Undo a half-made workspace: its folder, its worktree registration, the branch made for it."""
        try:
            if (path / ".git").is_file():
                run_git(["worktree", "remove", "--force", str(path)], bare, check=False)
            shutil.rmtree(path, ignore_errors=True)
            run_git(["worktree", "prune"], bare, check=False)
            if created_branch:
                run_git(["branch", "--quiet", "-D", created_branch], bare, check=False)
        except Exception:  # noqa: BLE001 - cleanup must not hide the error that caused it
            logger.exception("could not clean up half-created workspace %s", path)

    def check_clean(self, workspace_id: str) -> None:
        """Raise ``dirty`` when the workspace has uncommitted changes or untracked files.

        ``dispose-all`` asks first, so that it refuses before killing any session.
        """
        ws = self.get(workspace_id)
        path = Path(ws.path)
        if path.is_dir():
            self._refuse_dirty(ws, path)

    def _refuse_dirty(self, ws: Workspace, path: Path) -> None:
        out = run_git(["status", "--porcelain=v1", "--untracked-files=normal"], path, what="git status failed") or ""
        entries = [line[3:] for line in out.splitlines() if line.strip()]
        if entries:
            sample = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
            raise WorkspaceError(
                "dirty",
                f'workspace "{ws.id}" has uncommitted changes or untracked files ({sample}); '
                "commit, stash or discard them first",
            )

    def _common_dir(self, path: Path) -> Path:
        out = (run_git(["rev-parse", "--git-common-dir"], path) or "").strip()
        return (path / out).resolve()

    def _prune_for(self, repo: str) -> None:
        """Forget worktrees of ``repo`` whose folders are gone, so their branches are free again."""
        try:
            bare = self.clone_path(repo)
        except WorkspaceError:
            return
        if (bare / "HEAD").is_file():
            run_git(["worktree", "prune"], bare, check=False)

    def _current_branch(self, path: Path) -> str | None:
        out = run_git(["rev-parse", "--abbrev-ref", "HEAD"], path, check=False)
        return out.strip() if out is not None else None

    def _candidate_dirs(self) -> Iterator[Path]:
        if not self.workspace_path.is_dir():
            return
        for child in sorted(self.workspace_path.iterdir()):
            if child.is_dir() and not child.is_symlink() and _WORKSPACE_ID.match(child.name):
                if (child / ".git").exists():
                    yield child

    def _id_for_path(self, path: str) -> str:
        resolved = str(Path(path).resolve())
        with self._lock:
            for ws in self._workspaces.values():
                if ws.path == resolved:
                    return ws.id
        return Path(path).name

    def _existing_path(self, ws: Workspace) -> Path:
        path = Path(ws.path)
        if not (path / ".git").exists():
            raise WorkspaceError("not_found", f'workspace "{ws.id}" no longer exists at {path}; run a scan')
        return path

    # --- persistence ------------------------------------------------------------------------

    def _load(self) -> dict[str, Workspace]:
        if not self.state_file.is_file():
            return {}
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            entries = data["workspaces"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring unreadable %s (a scan finds the workspaces again): %s", self.state_file, exc)
            return {}
        workspaces: dict[str, Workspace] = {}
        for entry in entries:
            try:
                ws = Workspace(**{key: str(entry[key]) for key in ("id", "repo", "branch", "path", "created_at")})
            except (KeyError, TypeError) as exc:
                logger.warning("ignoring a malformed workspace entry in %s: %s", self.state_file, exc)
                continue
            workspaces[ws.id] = ws
        return workspaces

    def _save(self) -> None:
        # Caller holds self._lock.
        data = {"version": _STATE_VERSION, "workspaces": [ws.to_dict() for ws in self.list()]}
        try:
            write_atomic(self.state_file, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            raise WorkspaceError("state_write_failed", f"could not save the workspace list: {exc}") from None

"""The git routes of a workspace, as the agents worker answers them.

:class:`GitOperations` publishes one RPC method per route (:meth:`GitOperations.methods`):
the reads (diff, external diff, VS Code, graph) of :mod:`.git_diff` and :mod:`.git_graph`, and
the changes schmux's git page makes: stage, amend, discard and uncommit. Every change runs
inside the workspace's lock (``backend.locks``), so two of them never interleave on one
worktree, and is followed by ``backend.changed`` (fresh git status, the dashboard told).

Request bodies arrive as the raw text and are read the way schmux's handlers read them
(:mod:`.go_json`). The checks run in schmux's order, so a request with two faults gets the
same error as from schmux; the messages and statuses are its own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .. import constants
from ..errors import MisoError
from .concurrent_calls import concurrently
from .git_diff import Deadline, ExternalDiffRunner, diff_files, find_vscode, launch_detached, vscode_missing_message
from .git_graph import compute_graph, reader, uncommitted_stats
from .git_status import read_head
from .go_json import BodyError, decode_body, go_quote
from .workspaces import Workspace, WorkspaceError, run_git

if TYPE_CHECKING:
    from .backend import AgentsBackend

logger = logging.getLogger(__name__)


def invalid_path(root: Path, files: list[str]) -> str | None:
    """schmux's 400 message for the first path a change must refuse, ``None`` when all are fine.

    schmux refuses ``.``, absolute paths and a leading ``..`` after cleaning; this also refuses
    control characters (git cannot be given them) and a path whose folder leads out of the
    worktree through a symbolic link (``link/../x`` is caught by the first rule; ``link/x`` by
    resolving ``link``).
    """
    base = root.resolve()
    for name in files:
        cleaned = os.path.normpath(name) if name else "."
        message = f"invalid file path: {go_quote(name)}"
        if cleaned == "." or os.path.isabs(cleaned) or cleaned.startswith(".."):
            return message
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in name):
            return message
        try:
            parent = (base / cleaned).parent.resolve()
        except (OSError, RuntimeError):
            return message
        if parent != base and base not in parent.parents:
            return message
    return None


class GitOperations:
    """The git routes' RPC methods over an :class:`~miso_runtime.agents.backend.AgentsBackend`."""

    def __init__(self, backend: "AgentsBackend", difftool: ExternalDiffRunner | None = None) -> None:
        self._backend = backend
        self._difftool = difftool or ExternalDiffRunner()
        try:
            self._difftool.sweep(self._cleanup_after_s())
        except OSError as exc:
            logger.warning("could not sweep old diff-tool folders: %s", exc)

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The published methods, by the names the schmux face calls."""
        return {
            "git_diff": self.diff,
            "git_diff_external": self.diff_external,
            "git_open_vscode": self.open_vscode,
            "git_graph": self.graph,
            "git_commit_stage": self.stage,
            "git_amend": self.amend,
            "git_discard": self.discard,
            "git_uncommit": self.uncommit,
        }

    # --- helpers ----------------------------------------------------------------------------

    def _workspace(self, workspace_id: str, message: str) -> Workspace:
        try:
            return self._backend.workspaces.get(workspace_id)
        except WorkspaceError as exc:
            if exc.code == "not_found":
                raise MisoError(404, "not_found", message) from None
            raise

    def _sessions_config(self) -> Any:
        return self._backend.config.sessions

    def _read_deadline(self) -> Deadline:
        """The reads share the config's git status timeout (0: no limit)."""
        return Deadline(self._sessions_config().git_status_timeout_ms / 1000 or None)

    def _change_timeout_s(self) -> float | None:
        """Each change command may run as long as a clone: a commit runs the repo's hooks."""
        return self._sessions_config().git_clone_timeout_ms / 1000 or None

    def _cleanup_after_s(self) -> float:
        configured = getattr(self._backend.config, "external_diff_cleanup_after_ms", 0) or 0
        ms = configured if configured > 0 else constants.GITOPS_DIFFTOOL_CLEANUP_AFTER_MS
        return ms / 1000

    def _configured_diff_commands(self) -> list[tuple[str, str]]:
        """``(name, command)`` of the config's ``external_diff_commands`` (none when the key is absent)."""
        commands = []
        for entry in getattr(self._backend.config, "external_diff_commands", None) or []:
            if isinstance(entry, dict):
                name, command = entry.get("name"), entry.get("command")
            else:
                name, command = getattr(entry, "name", None), getattr(entry, "command", None)
            if isinstance(name, str) and isinstance(command, str):
                commands.append((name, command))
        return commands

    def _branch_of(self, workspace: Workspace) -> str:
        """The branch as of the last status (an agent may have switched), else as created."""
        status = self._backend.git.get(workspace.id)
        return status.branch if status is not None and status.branch else workspace.branch

    def _cached_ahead(self, workspace_id: str) -> int:
        """``git_ahead`` as the dashboard shows it (computed now when nothing is cached yet)."""
        status = self._backend.git.get(workspace_id)
        if status is None:
            try:
                status = self._backend.git.refresh_now(workspace_id)
            except Exception as exc:  # noqa: BLE001 - no status is "nothing ahead", as in schmux
                logger.warning("no git status for %s: %s", workspace_id, exc)
                return 0
        return status.ahead

    def _git(self, args: list[str], root: Path, what: str) -> str:
        return run_git(args, root, timeout_s=self._change_timeout_s(), what=what) or ""

    # --- reads ------------------------------------------------------------------------------

    def diff(self, workspace_id: str) -> dict[str, Any] | None:
        """``GET /api/diff/{id}``; ``None`` (an empty 200) while an operation holds the workspace."""
        workspace = self._workspace(workspace_id, "workspace not found")
        if self._backend.locks.busy(workspace_id):
            return None
        # schmux refreshes the status before the diff; the diff does not need it, so the status
        # thread does it meanwhile instead of the request waiting for both.
        self._backend.git.invalidate(workspace_id)
        files = diff_files(Path(workspace.path), self._read_deadline())
        return {
            "workspace_id": workspace.id,
            "repo": workspace.repo,
            "branch": self._branch_of(workspace),
            "files": files,
        }

    def diff_external(self, workspace_id: str, body: str | None = None) -> dict[str, Any]:
        """``POST /api/diff-external/{id}``: start the named (or given) diff command per file."""
        try:
            request = decode_body(body, {"command": str}, allow_empty=True)
        except BodyError as exc:
            raise MisoError(400, "invalid_request", f"invalid request: {exc}") from None
        configured = self._configured_diff_commands()
        wanted = request.get("command", "")
        if wanted:
            command = next((cmd for name, cmd in configured if name == wanted), "") or wanted
        elif configured:
            command = configured[0][1]
        else:
            raise MisoError(400, "invalid_request", "No diff command specified")
        workspace = self._workspace(workspace_id, f"workspace {workspace_id} not found")
        root = Path(workspace.path)
        if not root.exists():
            raise MisoError(404, "not_found", "workspace directory does not exist")
        return self._difftool.open(workspace.id, root, command, self._cleanup_after_s(), self._read_deadline())

    def open_vscode(self, workspace_id: str) -> dict[str, Any]:
        """``POST /api/open-vscode/{id}``: ``code -n <path>``, not waited on."""
        workspace = self._workspace(workspace_id, f"workspace {workspace_id} not found")
        code = find_vscode()
        if code is None:
            raise MisoError(404, "not_found", vscode_missing_message())
        root = Path(workspace.path)
        if not root.exists():
            raise MisoError(404, "not_found", "workspace directory does not exist")
        try:
            launch_detached([code, "-n", str(root)], root)
        except OSError as exc:
            raise MisoError(500, "launch_failed", f"failed to launch VS Code: {exc}") from None
        logger.info("opened VS Code (%s) on %s", code, root)
        return {"success": True, "message": "You can now switch to VS Code."}

    def graph(self, workspace_id: str, max_total: int, main_context: int) -> dict[str, Any]:
        """``GET /api/workspaces/{id}/git-graph`` (limits already read from the query)."""
        workspace = self._workspace(workspace_id, f"workspace not found: {workspace_id}")
        root = Path(workspace.path)
        deadline = self._read_deadline()
        if not root.is_dir():
            raise MisoError(500, "git_failed", f"cannot resolve HEAD in workspace {workspace_id}")
        commit, current = read_head(reader(root, deadline), check=False)
        branch = current or self._branch_of(workspace)
        branch_workspaces: dict[str, list[str]] = {}
        for other in self._backend.workspaces.list():
            if other.repo == workspace.repo:
                name = branch if other.id == workspace.id else self._branch_of(other)
                branch_workspaces.setdefault(name, []).append(other.id)
        head = (commit, branch)
        answer, (files, added, removed) = concurrently(
            lambda: compute_graph(
                root, workspace.id, workspace.repo, head, branch_workspaces, max_total, main_context, deadline
            ),
            lambda: uncommitted_stats(root, deadline),
        )
        if files > 0:
            answer["dirty_state"] = {"files_changed": files, "lines_added": added, "lines_removed": removed}
        return answer

    # --- changes ----------------------------------------------------------------------------

    def stage(self, workspace_id: str, body: str | None = None) -> dict[str, Any]:
        """``POST .../git-commit-stage``: ``git add`` the files (all or none: one command)."""
        workspace = self._workspace(workspace_id, "workspace not found")
        files = self._files(body, allow_empty=False)
        root = self._checked(workspace, files)
        with self._backend.locks.hold(workspace_id):
            if files:
                self._git(["add", "--", *files], root, "git add failed")
        self._backend.changed(workspace_id)
        return {"success": True, "message": "Files staged"}

    def amend(self, workspace_id: str, body: str | None = None) -> dict[str, Any]:
        """``POST .../git-amend``: add the files to the last commit, keeping its message."""
        workspace = self._workspace(workspace_id, "workspace not found")
        if self._cached_ahead(workspace_id) <= 0:
            raise MisoError(400, "invalid_request", "No commits to amend")
        files = self._files(body, allow_empty=False)
        if not files:
            raise MisoError(400, "invalid_request", "at least one file is required")
        root = self._checked(workspace, files)
        with self._backend.locks.hold(workspace_id):
            self._git(["add", "--", *files], root, "git add failed")
            self._git(["commit", "--amend", "--no-edit", "--quiet"], root, "git commit --amend failed")
        self._backend.changed(workspace_id)
        return {"success": True, "message": "Commit amended"}

    def discard(self, workspace_id: str, body: str | None = None) -> dict[str, Any]:
        """``POST .../git-discard``: the files named, or every uncommitted change (no body, ``{}``)."""
        workspace = self._workspace(workspace_id, "workspace not found")
        files = self._files(body, allow_empty=True)
        root = self._checked(workspace, files)
        with self._backend.locks.hold(workspace_id):
            if files:
                for name in files:
                    self._discard_one(root, name)
            else:
                self._discard_all(root)
        self._backend.changed(workspace_id)
        return {"success": True, "message": "Changes discarded"}

    def uncommit(self, workspace_id: str, body: str | None = None) -> dict[str, Any]:
        """``POST .../git-uncommit``: undo the last commit (``git reset HEAD~1``) if it is ``hash``."""
        workspace = self._workspace(workspace_id, "workspace not found")
        if self._cached_ahead(workspace_id) <= 0:
            raise MisoError(400, "invalid_request", "No commits to uncommit")
        try:
            request = decode_body(body, {"hash": str}, allow_empty=False)
        except BodyError:
            raise MisoError(400, "invalid_request", "invalid request body") from None
        expected = request.get("hash", "")
        if not expected:
            raise MisoError(400, "invalid_request", "hash is required")
        root = Path(workspace.path)
        with self._backend.locks.hold(workspace_id):
            head = run_git(["rev-parse", "HEAD"], root, timeout_s=self._change_timeout_s(), check=False)
            if head is None:
                raise MisoError(500, "git_failed", "failed to get current HEAD")
            if head.strip() != expected:
                raise MisoError(409, "head_changed", "HEAD has changed, please refresh and try again")
            self._git(["reset", "--quiet", "HEAD~1"], root, "git reset failed")
        self._backend.changed(workspace_id)
        return {"success": True, "message": "Commit undone, changes are now unstaged"}

    # --- change helpers ---------------------------------------------------------------------

    @staticmethod
    def _files(body: str | None, *, allow_empty: bool) -> list[str]:
        try:
            return decode_body(body, {"files": list}, allow_empty=allow_empty).get("files", [])
        except BodyError:
            raise MisoError(400, "invalid_request", "invalid request body") from None

    @staticmethod
    def _checked(workspace: Workspace, files: list[str]) -> Path:
        root = Path(workspace.path)
        message = invalid_path(root, files)
        if message:
            raise MisoError(400, "invalid_path", message)
        return root

    def _discard_one(self, root: Path, name: str) -> None:
        """Restore one file from ``HEAD``; else drop a staged new file; else remove an untracked one.

        As in schmux, a file that none of these can discard is only logged.
        """
        timeout_s = self._change_timeout_s()
        if run_git(["checkout", "HEAD", "--", name], root, timeout_s=timeout_s, check=False) is not None:
            return
        if run_git(["rm", "-f", "--cached", "--quiet", "--", name], root, timeout_s=timeout_s, check=False) is not None:
            try:
                (root / name).unlink()
            except OSError as exc:
                logger.info("discard: %s unstaged, its file stays: %s", name, exc)
            return
        if run_git(["clean", "-f", "--", name], root, timeout_s=timeout_s, check=False) is None:
            logger.info("discard: nothing discarded %s in %s", name, root)

    def _discard_all(self, root: Path) -> None:
        """Every uncommitted change: unstage all, remove untracked files, restore tracked ones.

        schmux runs ``git clean -fd`` and ``git checkout -- .``, which keeps staged changes (the
        checkout restores from the index); the ``reset`` first makes "discard all" mean all.
        """
        self._git(["reset", "--quiet"], root, "git reset failed")
        self._git(["clean", "-fd", "--quiet"], root, "git clean failed")
        self._git(["checkout", "--quiet", "--", "."], root, "git checkout failed")

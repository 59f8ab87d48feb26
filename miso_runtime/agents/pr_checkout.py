"""The git half of a pull-request checkout, in the ``agents`` worker: the PR's code in a workspace.

GitHub publishes every pull request's head, forks' included, in the base repository as
``refs/pull/<n>/head``; a normal fetch does not bring it. So the ref is fetched into the repo's
bare clone as a local branch (``git fetch -f origin refs/pull/<n>/head:refs/heads/<branch>``,
``-f`` because a force-pushed PR moves it anywhere), and the workspace is then made on that
branch like any other (:meth:`WorkspaceManager.create`).

A workspace already on the branch is reused, as schmux's get-or-create does. Its branch is not
moved then: git refuses to move a branch checked out in a worktree, and the agent's work in it
would be lost; the agent can fetch the ref itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from .. import constants
from .workspaces import Workspace, WorkspaceError, normalize_repo, redact, run_git, validate_branch

logger = logging.getLogger(__name__)


class PullRequestCheckouts:
    """``pr_checkout``: fetch a PR's head into the bare clone and get or create its workspace."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The RPC methods this module publishes in the worker."""
        return {"pr_checkout": self.checkout}

    def checkout(self, repo: str, number: int, branch: str) -> dict[str, Any]:
        """``{"workspace_id", "path", "created"}`` of the workspace on ``branch`` with PR ``number``'s head."""
        workspaces = self._backend.workspaces
        if not isinstance(number, int) or number <= 0:
            raise WorkspaceError("invalid_branch", f"{number!r} is not a pull request number")
        repo = normalize_repo(repo)
        bare = workspaces.ensure_clone(repo)
        validate_branch(branch, bare)
        existing = self._workspace_on(repo, branch)
        if existing is not None:
            logger.info("PR #%d: reusing workspace %s on %s", number, existing.id, branch)
            return {"workspace_id": existing.id, "path": existing.path, "created": False}
        refspec = f"refs/pull/{number}/head:refs/heads/{branch}"
        run_git(
            ["fetch", "-f", "--quiet", "origin", refspec],
            bare,
            timeout_s=workspaces.clone_timeout_s,
            code="fetch_failed",
            what=f"failed to fetch PR ref {refspec} from {redact(repo)}",
        )
        workspace = workspaces.create(repo, branch)
        if workspaces.source_code_management != constants.SCM_GIT_WORKTREE:
            self._reset_clone_to_pr(workspace, number)
        self._backend.changed(workspace.id)
        logger.info("PR #%d of %s checked out on %s in %s", number, redact(repo), branch, workspace.id)
        return {"workspace_id": workspace.id, "path": workspace.path, "created": True}

    def _workspace_on(self, repo: str, branch: str) -> Workspace | None:
        """A known workspace of ``repo`` whose branch is ``branch`` (worktree mode: as git says)."""
        conflict = self._backend.workspaces.check_branch_conflict(repo, branch)
        for workspace in self._backend.workspaces.list():
            if conflict.conflict and workspace.id == conflict.workspace_id:
                return workspace
            if workspace.repo == repo and workspace.branch == branch:
                return workspace
        return None

    def _reset_clone_to_pr(self, workspace: Workspace, number: int) -> None:
        """``git`` mode: a workspace is a clone of origin, which has no ``pr/*`` branch; its new
        branch starts at the default branch, so move it (nothing is in it yet) to the PR's head."""
        path = Path(workspace.path)
        what = f"failed to fetch PR #{number} into {workspace.id}"
        run_git(["fetch", "--quiet", "origin", f"refs/pull/{number}/head"], path, code="fetch_failed", what=what)
        run_git(["reset", "--hard", "--quiet", "FETCH_HEAD"], path, what=what)

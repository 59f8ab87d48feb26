"""The branch routes of schmux: recent branches, a suggested branch name, a spawn on a branch.

Two halves, because git runs only in the ``agents`` worker and the models only in the server:

- :class:`BranchQueries` (worker): reads the repos' bare clones, our counterpart of schmux's
  "query clones" (``WorkspaceManager.clone_path``): the branches origin has, newest commit
  first, and a branch's commit messages. Read-only; a repo whose clone is missing or broken is
  skipped (it has none yet: the clone is made by the first spawn of the repo).
- :class:`Branches` (server): the routes' logic over those calls and the one-shot models
  (:mod:`.oneshot`), with schmux's answers and errors.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .. import constants
from ..chat.types import ResponseSchema
from ..errors import MisoError
from .oneshot import InvalidAnswer, OneShot, OneShotError, TargetNotFound, string_field
from .workspaces import WorkspaceError, run_git

logger = logging.getLogger(__name__)

#: What a suggested branch must look like (schmux's ``ValidateBranchName``): lowercase words of
#: letters, digits and ``_`` joined by one ``.``, ``_``, ``/`` or ``-``. Stricter than git's rule.
_SUGGESTED_BRANCH = re.compile(r"^[a-z0-9_]+(?:[._/-][a-z0-9_]+)*$")
_DOUBLED_SEPARATOR = re.compile(r"([-./_])\1")

PROMPT_PLACEHOLDER = "{{USER_PROMPT}}"

#: The branch-suggestion prompt; the user's prompt replaces :data:`PROMPT_PLACEHOLDER`.
SUGGEST_PROMPT = """
Name a git branch, and give a short nickname, for the coding task below.

Give:
1. branch: a git branch name in kebab-case (lowercase words joined by hyphens, no spaces),
   three to six words, with a "feature/", "fix/" or "refactor/" prefix when one fits;
2. nickname: two to four plain words that say at a glance what the work is.

Rules:
- Name what the work is about, not the act of doing it: leave out words such as "add" and "implement".
- When the task names a component or a feature, put it in the branch name.

Examples:
- Task "Add dark mode to the settings panel": branch "feature/dark-mode-settings", nickname "Dark mode".
- Task "Fix the login bug where users can't reset password": branch "fix/password-reset", nickname "Password reset bug".
- Task "Refactor the auth flow to use JWT tokens": branch "refactor/auth-jwt", nickname "JWT auth".

Answer with one JSON object with the keys branch and nickname, and nothing else.

The task:
<<<
{{USER_PROMPT}}
>>>
"""

SUGGEST_SCHEMA = ResponseSchema(
    "branch-suggest",
    {
        "type": "object",
        "properties": {"branch": {"type": "string"}, "nickname": {"type": "string"}},
        "required": ["branch", "nickname"],
        "additionalProperties": False,
    },
)

#: The start of the prepare-branch-spawn prompt (schmux's text: it is part of the route's answer).
RESUME_PROMPT_HEAD = (
    "Review the current state of this branch and prepare to resume work.\n\n"
    "1. Read any markdown or spec files in the repo root and docs/ to understand project context and goals\n"
    "2. Run `git diff --stat main...HEAD` to compare this branch against where it diverged from main\n"
    "3. Identify what's been completed, what's in progress, and what remains\n\n"
)
RESUME_PROMPT_TAIL = "Summarize your findings, then ask what to work on next."
_COMMIT_DELIMITER = "---COMMIT---"


def suggested_branch_ok(branch: str) -> bool:
    """Whether a suggested branch name passes schmux's rule (see :data:`_SUGGESTED_BRANCH`)."""
    branch = branch.strip()
    return bool(branch) and bool(_SUGGESTED_BRANCH.match(branch)) and not _DOUBLED_SEPARATOR.search(branch)


def resume_prompt(messages: list[str]) -> str:
    """The prompt of a session that resumes a branch, with its commit history when it has one."""
    prompt = RESUME_PROMPT_HEAD
    if messages:
        prompt += "Here is the commit history on this branch:\n\n"
        prompt += "\n".join(f"---\n{message}\n" for message in messages)
        prompt += "---\n\n"
    return prompt + RESUME_PROMPT_TAIL


def _setting(config: Any, section: str, key: str, default: Any = None) -> Any:
    """``config.<section>.<key>``, for sections the config may not have (yet), as a model or a dict."""
    value = getattr(config, section, None)
    if isinstance(value, dict):
        return value.get(key, default)
    return getattr(value, key, default)


# --- worker ---------------------------------------------------------------------------------


class BranchQueries:
    """Git queries over the bare clones (runs in the ``agents`` worker)."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend

    def methods(self) -> dict[str, Any]:
        return {"recent_branches": self.recent_branches, "branch_commit_log": self.branch_commit_log}

    def recent_branches(self, limit: int) -> list[dict[str, str]] | None:
        """Origin's branches of every configured repo, newest commit first, at most ``limit``.

        HEAD and each repo's default branch are left out; ``commit_date`` is git's iso8601
        (``2026-01-28 15:30:00 -0800``), sorted as text as schmux does. None when there are none
        (schmux answers ``null``, not ``[]``).
        """
        found: list[dict[str, str]] = []
        for repo in self._backend.config.repos:
            clone = self._clone(repo.url)
            if clone is None:
                continue
            try:
                found += self._recent_of(clone, repo.name, repo.url, limit)
            except WorkspaceError as exc:
                logger.warning("recent branches of %s skipped: %s", repo.name, exc.message)
        found.sort(key=lambda item: item["commit_date"], reverse=True)
        return found[:limit] or None

    def branch_commit_log(
        self, repo_url: str, branch: str, limit: int = constants.BRANCH_SPAWN_MAX_COMMITS
    ) -> list[str]:
        """Whole messages of the commits on ``origin/<branch>`` that are not on origin's default
        branch, newest first; ``[]`` when the clone or the branch is missing."""
        clone = self._clone(repo_url)
        if clone is None:
            return []
        default = self._default_branch(clone)
        if not default:
            return []
        span = f"origin/{default}..origin/{branch}"
        out = run_git(
            ["log", f"--format=%B{_COMMIT_DELIMITER}", f"--max-count={int(limit)}", span, "--"], clone, check=False
        )
        if out is None:
            return []
        return [message.strip() for message in out.split(_COMMIT_DELIMITER) if message.strip()]

    def _clone(self, repo_url: str) -> Any:
        try:
            clone = self._backend.workspaces.clone_path(repo_url)
        except WorkspaceError:
            return None
        return clone if (clone / "HEAD").is_file() else None

    @staticmethod
    def _default_branch(clone: Any) -> str:
        ref = (run_git(["symbolic-ref", "refs/remotes/origin/HEAD"], clone, check=False) or "").strip()
        if ref.startswith("refs/remotes/origin/"):
            return ref.removeprefix("refs/remotes/origin/")
        ref = (run_git(["symbolic-ref", "HEAD"], clone, check=False) or "").strip()
        for prefix in ("refs/heads/", "refs/remotes/origin/"):
            if ref.startswith(prefix):
                return ref.removeprefix(prefix)
        return ""

    def _recent_of(self, clone: Any, name: str, url: str, limit: int) -> list[dict[str, str]]:
        default = self._default_branch(clone)
        if not default:
            raise WorkspaceError("git_failed", "default branch unknown")
        out = run_git(
            [
                "for-each-ref",
                "--sort=-committerdate",
                "--count",
                str(limit + constants.RECENT_BRANCHES_EXTRA),
                "--format=%(refname:short)|%(committerdate:iso8601)|%(subject)",
                "refs/remotes/origin/",
            ],
            clone,
        )
        branches: list[dict[str, str]] = []
        for line in (out or "").splitlines():
            parts = line.split("|", 2)
            if len(parts) < 2:
                continue
            branch = parts[0].removeprefix("origin/")
            if branch in ("HEAD", "origin", default):
                continue
            subject = parts[2] if len(parts) > 2 else ""
            branches.append(
                {"repo_name": name, "repo_url": url, "branch": branch, "commit_date": parts[1], "subject": subject}
            )
            if len(branches) >= limit:
                break
        return branches


# --- server ---------------------------------------------------------------------------------


class Branches:
    """The three routes' logic in the server; errors are MisoErrors with schmux's texts."""

    def __init__(self, agents: Any, config: Any, oneshot: OneShot) -> None:
        self._agents = agents
        self._config = config
        self._oneshot = oneshot

    def target(self) -> str:
        return str(_setting(self._config.get(), "branch_suggest", "target", "") or "").strip()

    def recent(self, limit_text: str | None) -> list[dict[str, str]] | None:
        """``GET /api/recent-branches``: ``limit`` default 10, capped at 50, a bad one ignored."""
        limit = constants.RECENT_BRANCHES_DEFAULT
        if limit_text and limit_text.strip().lstrip("+-").isdigit() and int(limit_text) > 0:
            limit = int(limit_text)
        limit = min(limit, constants.RECENT_BRANCHES_MAX)
        try:
            return self._agents.call("recent_branches", constants.GIT_LOCAL_TIMEOUT_S, limit=limit)
        except MisoError as exc:
            raise MisoError(500, "recent_branches_failed", f"Failed to get recent branches: {exc.message}") from None

    def suggest(self, prompt: str) -> dict[str, str]:
        """``POST /api/suggest-branch``: a branch name and a nickname for a task prompt."""
        if not self.target():
            raise MisoError(503, "not_configured", "Branch suggestion is not configured")
        try:
            return self._ask(prompt)
        except _SuggestError as exc:
            raise MisoError(exc.status, "suggest_failed", f"Failed to generate branch suggestion: {exc}") from None

    def prepare_spawn(self, repo_name: str, branch: str) -> dict[str, str]:
        """``POST /api/prepare-branch-spawn``: the prompt (and a nickname) to resume work on a branch."""
        if not repo_name or not branch:
            raise MisoError(400, "invalid_request", "repo_name and branch are required")
        repo = next((r for r in self._config.get().repos if r.name == repo_name), None)
        if repo is None:
            raise MisoError(404, "repo_not_found", "repo not found")
        try:
            messages = self._agents.call(
                "branch_commit_log", constants.GIT_LOCAL_TIMEOUT_S, repo_url=repo.url, branch=branch
            )
        except MisoError as exc:  # no history: the prompt goes without it
            logger.info("prepare-branch-spawn: no commit log of %s %s: %s", repo_name, branch, exc.message)
            messages = []
        nickname = ""
        if self.target() and messages:
            joined = "\n".join(messages)
            try:
                nickname = self._ask(f"Branch: {branch}\n\nCommit messages:\n{joined}")["nickname"]
            except _SuggestError as exc:
                logger.info("prepare-branch-spawn: no nickname for %s: %s", branch, exc)
        return {"repo": repo_name, "branch": branch, "prompt": resume_prompt(messages), "nickname": nickname}

    def _ask(self, prompt: str) -> dict[str, str]:
        task = prompt.strip()
        if not task:
            raise _SuggestError(400, "empty prompt provided")
        target = self.target()
        if not target:
            raise _SuggestError(503, "branch suggestion is disabled")
        question = SUGGEST_PROMPT.replace(PROMPT_PLACEHOLDER, task)
        try:
            answer = self._oneshot.ask(target, question, SUGGEST_SCHEMA, constants.BRANCH_SUGGEST_TIMEOUT_S)
            branch = string_field(answer, "branch").strip()
            nickname = string_field(answer, "nickname")
        except TargetNotFound:
            raise _SuggestError(404, "branch suggestion target not found") from None
        except InvalidAnswer as exc:
            raise _SuggestError(400, f"invalid branch suggestion response: {exc.message}") from None
        except OneShotError as exc:
            raise _SuggestError(500, f"oneshot execute: {exc.message}") from None
        if not branch:
            raise _SuggestError(400, "invalid branch suggestion response")
        if not suggested_branch_ok(branch):
            raise _SuggestError(400, "invalid branch name")
        return {"branch": branch, "nickname": nickname}


class _SuggestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status

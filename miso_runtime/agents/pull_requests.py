"""Pull requests of the configured GitHub repositories: discovery, the cache, and checkout for review.

schmux's home page lists the open pull requests of the public GitHub repositories among the
configured repos; clicking one checks it out into a workspace and starts a review session on it.
This is the server side of that (the git half is :mod:`.pr_checkout`, in the ``agents`` worker):

- discovery (:meth:`PullRequests.refresh`) asks GitHub (:mod:`.github_client`) which repos are
  public, then for their open pull requests. It runs when asked (``POST /api/prs/refresh``), and
  by itself while ``pr_review.target`` is set: at once when the target appears, then every
  ``pr_poll_interval_s`` (schmux: hourly; :meth:`PullRequests.start_polling`);
- the cache (:class:`PullRequestCache`): what the last successful discovery found, when, and which
  repos were public, in ``agents-pull-requests.json``, replaced atomically, so the list survives a
  restart and ``GET /api/prs`` never waits for GitHub;
- a failed discovery changes nothing: the cached list is answered with the error (a rate limit
  with schmux's text and ``retry_after_sec``; any other failure, e.g. GitHub's 500 or a body that
  is not JSON, with what went wrong). schmux skips a repo that fails otherwise than by rate limit
  and saves what is left; we keep the cache instead, so an outage of GitHub never empties the list;
- checkout (:meth:`PullRequests.checkout`): the worker fetches ``refs/pull/<n>/head`` into the
  repo's bare clone as ``pr/<n>`` (``pr/<owner>/<n>`` from a fork) and makes or reuses the
  workspace on it; then a session of ``pr_review.target`` starts there with the review prompt
  (:mod:`.review_prompt`), through the ordinary spawn path.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .. import constants
from ..errors import MisoError
from ..settings_files import write_atomic
from .config import AgentsConfigStore
from .github_client import GitHubClient, GitHubError, RateLimited, parse_repo_url, pull_request_fields
from .review_prompt import build_review_prompt, pr_branch_name
from .service import AgentsService
from .spawn import SpawnError, SpawnRequest, known_targets
from .tools import detect_tools

logger = logging.getLogger(__name__)

_FILE_VERSION = 1


@dataclass(frozen=True)
class PullRequest:
    """One open pull request, with the contract's fields (``fork_owner`` empty when not a fork)."""

    number: int
    title: str
    body: str
    state: str
    repo_name: str
    repo_url: str
    source_branch: str
    target_branch: str
    author: str
    created_at: str
    html_url: str
    fork_owner: str = ""
    is_fork: bool = False

    def to_contract(self) -> dict[str, Any]:
        """The PR object of the contract, keys in schmux's order, ``fork_owner`` only when set."""
        item = asdict(self)
        if not self.fork_owner:
            del item["fork_owner"]
        return item

    @classmethod
    def from_contract(cls, item: dict[str, Any]) -> PullRequest:
        """Back from :meth:`to_contract` (the cache file); ``TypeError``/``KeyError`` when malformed."""
        names = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in item.items() if key in names})


def _now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class PullRequestCache:
    """What the last successful discovery found, kept in a JSON file replaced atomically.

    The error of the last failed discovery is kept in memory only: it says why the list is old,
    and a restart is a fresh start.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self.pull_requests: list[PullRequest] = []
        self.public_repos: list[str] = []
        self.last_fetched_at: str | None = None
        self.last_error = ""
        self._load()

    def _load(self) -> None:
        if not self._path.is_file():
            return
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            self.pull_requests = [PullRequest.from_contract(item) for item in data.get("pull_requests") or []]
            self.public_repos = [str(url) for url in data.get("public_repos") or []]
            fetched = data.get("last_fetched_at")
            self.last_fetched_at = fetched if isinstance(fetched, str) else None
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("ignoring unreadable %s (the next refresh rebuilds it): %s", self._path, exc)
            self.pull_requests, self.public_repos, self.last_fetched_at = [], [], None

    def snapshot(self) -> tuple[list[PullRequest], str | None, str]:
        """(pull requests, last fetch time, last error), consistent with each other."""
        with self._lock:
            return list(self.pull_requests), self.last_fetched_at, self.last_error

    def failed(self, message: str) -> list[PullRequest]:
        """Remember why a discovery failed; the cached list is unchanged and returned."""
        with self._lock:
            self.last_error = message
            return list(self.pull_requests)

    def replace(self, pull_requests: list[PullRequest], public_repos: list[str]) -> None:
        """A discovery succeeded: its results replace the cache, on disk first."""
        fetched_at = _now_rfc3339()
        body = {
            "version": _FILE_VERSION,
            "pull_requests": [pr.to_contract() for pr in pull_requests],
            "public_repos": public_repos,
            "last_fetched_at": fetched_at,
        }
        with self._lock:
            write_atomic(self._path, json.dumps(body, indent=2) + "\n")
            self.pull_requests = list(pull_requests)
            self.public_repos = list(public_repos)
            self.last_fetched_at = fetched_at
            self.last_error = ""

    def find(self, repo_url: str, number: int) -> PullRequest | None:
        with self._lock:
            return next((pr for pr in self.pull_requests if pr.repo_url == repo_url and pr.number == number), None)


class PullRequests:
    """The three pull-request routes' logic (server side; no Flask, no gevent)."""

    def __init__(
        self,
        agents: AgentsService,
        config: AgentsConfigStore,
        cache: PullRequestCache,
        client: Callable[[], GitHubClient],
    ) -> None:
        self._agents = agents
        self._config = config
        self.cache = cache
        self._client = client
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    # --- automatic discovery while a review target is set -----------------------------------

    def start_polling(self, interval_s: float, target_check_s: float = constants.PR_POLL_TARGET_CHECK_S) -> None:
        """Discover by itself while ``pr_review.target`` is set (once; a greenlet in the server).

        ``interval_s``: seconds between discoveries (0: none by itself); ``target_check_s``: seconds
        between looks at the target (at most ``interval_s``), so that setting it (a config save)
        starts discovery without a restart, and clearing it stops it.
        """
        if self._poller is not None or interval_s <= 0:
            return
        target_check_s = min(target_check_s, interval_s)
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll_loop, args=(interval_s, target_check_s), name="pr-discovery", daemon=True
        )
        self._poller.start()

    def stop_polling(self) -> None:
        self._stop.set()
        self._poller = None

    def _poll_loop(self, interval_s: float, target_check_s: float) -> None:
        last_run: float | None = None  # monotonic seconds of the last discovery since the target was set
        while True:
            if not self._review_target_set():
                last_run = None
            elif last_run is None or time.monotonic() - last_run >= interval_s:
                last_run = time.monotonic()
                try:
                    answer = self.refresh()
                except Exception:  # noqa: BLE001 - one bad round must not end the polling
                    logger.exception("automatic pull request discovery failed")
                else:
                    if answer.get("error"):
                        logger.info("automatic pull request discovery failed: %s", answer["error"])
            if self._stop.wait(target_check_s):
                return

    def _review_target_set(self) -> bool:
        try:
            return bool(self._config.get().pr_review.target)
        except Exception:  # noqa: BLE001 - an unreadable config is answered by the config routes
            return False

    # --- GET /api/prs -----------------------------------------------------------------------

    def listing(self) -> dict[str, Any]:
        """``{"prs", "last_fetched_at", "error"?}`` from the cache."""
        prs, fetched_at, error = self.cache.snapshot()
        answer: dict[str, Any] = {"prs": [pr.to_contract() for pr in prs], "last_fetched_at": fetched_at}
        if error:
            answer["error"] = error
        return answer

    # --- POST /api/prs/refresh --------------------------------------------------------------

    def refresh(self) -> dict[str, Any]:
        """Run discovery over the configured repos; always an answer, with ``error`` when it failed."""
        try:
            prs, public = self._discover()
        except RateLimited as exc:
            return self._failed(str(exc), exc.retry_after_s)
        except GitHubError as exc:
            logger.warning("pull request discovery failed: %s", exc)
            return self._failed(f"GitHub API error: {exc}", None)
        try:
            self.cache.replace(prs, public)
        except OSError as exc:
            logger.warning("could not save the pull requests: %s", exc)
            return self._failed(f"could not save the pull requests: {exc}", None)
        logger.info("discovered %d pull requests across %d public repos", len(prs), len(public))
        return {"prs": [pr.to_contract() for pr in prs], "fetched_count": len(prs), "retry_after_sec": None}

    def _failed(self, message: str, retry_after_s: int | None) -> dict[str, Any]:
        cached = self.cache.failed(message)
        return {
            "prs": [pr.to_contract() for pr in cached],
            "fetched_count": len(cached),
            "error": message,
            "retry_after_sec": retry_after_s,
        }

    def _discover(self) -> tuple[list[PullRequest], list[str]]:
        """(open pull requests, public repo URLs) of the configured repos; GitHub's errors raise."""
        client = self._client()
        host = client.web_host
        public: list[tuple[str, str, Any]] = []
        for repo in self._config.get().repos:
            ref = parse_repo_url(repo.url, host)
            if ref is None:
                continue
            if not client.is_public(ref):
                logger.info("skipping private or missing repo %s", repo.url)
                continue
            public.append((repo.name, repo.url, ref))
        found: list[PullRequest] = []
        for name, url, ref in public:
            for item in client.open_pulls(ref):
                found.append(PullRequest(repo_name=name, repo_url=url, **pull_request_fields(item)))
        return found, [url for _, url, _ in public]

    # --- POST /api/prs/checkout -------------------------------------------------------------

    def checkout(self, repo_url: str, number: int) -> dict[str, Any]:
        """Check ``number`` of ``repo_url`` out and start its review session; MisoError as schmux answers."""
        pr = self.cache.find(repo_url, number)
        if pr is None:
            raise MisoError(404, "pr_not_found", f"PR #{number} not found for {repo_url}")
        config = self._config.get()
        target = config.pr_review.target
        if not target:
            raise MisoError(400, "no_pr_review_target", "No pr_review target configured")
        branch = pr_branch_name(pr)
        try:
            workspace = self._agents.call(
                "pr_checkout", constants.PR_CHECKOUT_TIMEOUT_S, repo=pr.repo_url, number=pr.number, branch=branch
            )
        except MisoError as exc:
            raise MisoError(500, "pr_checkout_failed", f"Failed to checkout PR: {exc.message}") from None
        prompt = build_review_prompt(pr, workspace["path"], branch)
        detected = {tool["name"]: tool["command"] for tool in detect_tools(config) if tool["source"] == "detected"}
        known = known_targets(config, detected).get(target)
        request = SpawnRequest(
            prompt=prompt if known is None or known.kind == "promptable" else "",
            nickname=f"PR #{pr.number}: {pr.title}",
            targets={target: 1},
            workspace_id=workspace["workspace_id"],
        )
        try:
            results = self._agents.spawn(request)
            failure = next((r["error"] for r in results if "error" in r), None) if results else "no session started"
        except (SpawnError, MisoError) as exc:
            failure = exc.message
        if failure is not None:
            raise MisoError(500, "pr_session_failed", f"Workspace created but session launch failed: {failure}")
        return {"workspace_id": workspace["workspace_id"], "session_id": results[0]["session_id"]}

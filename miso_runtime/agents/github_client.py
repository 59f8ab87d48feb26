"""The few GitHub REST calls pull-request discovery needs, unauthenticated, as schmux makes them.

Why so small: schmux only asks two questions of GitHub, both anonymous: is this repository
public (``GET /repos/{owner}/{repo}``), and which pull requests are open in it
(``GET /repos/{owner}/{repo}/pulls?state=open&per_page=5``). Each answer GitHub can give is
turned into one of three outcomes the caller can act on:

- a value (``True``/``False`` for visibility: a 404 or ``"private": true`` is ``False``;
  the list of :class:`~miso_runtime.agents.pull_requests.PullRequest` for pulls);
- :class:`RateLimited` for a 403, with the seconds of ``Retry-After`` (else 60), because an
  anonymous client's 403 is almost always GitHub's hourly limit;
- :class:`GitHubError` for anything else that is not the documented shape: an unreachable host,
  a timeout, another status (a 500), a body that is not the JSON GitHub sends ("garbage").

The base URL and the site's URL are settings so that a GitHub Enterprise server (``https://HOST/api/v3``) or a test's
stand-in answers in GitHub's place. No Flask, no gevent: in the server, gevent's patched sockets
make these calls cooperative.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import httpx

from .. import constants

logger = logging.getLogger(__name__)


class GitHubError(Exception):
    """GitHub could not be asked, or answered something we cannot use; the message says which."""


class RateLimited(GitHubError):
    """GitHub refused with 403: anonymous calls are limited; try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"GitHub API rate limit exceeded, retry after {retry_after_s} seconds")


@dataclass(frozen=True)
class RepoRef:
    """``owner/repo`` of a repository on a GitHub server (the API path segment)."""

    owner: str
    name: str

    @property
    def api_path(self) -> str:
        return f"{self.owner}/{self.name}"


def parse_repo_url(url: str, host: str = "github.com") -> RepoRef | None:
    """``owner/repo`` of a clone URL on ``host`` (``https://host/o/r[.git]`` or ``git@host:o/r[.git]``).

    ``None`` for any other URL: such a repository is not looked for on GitHub.
    """
    escaped = re.escape(host)
    for pattern in (rf"^git@{escaped}:([^/]+)/([^/]+?)(?:\.git)?$", rf"^https://{escaped}/([^/]+)/([^/]+?)(?:\.git)?$"):
        match = re.match(pattern, url.strip(), flags=re.IGNORECASE)
        if match:
            return RepoRef(match.group(1), match.group(2))
    return None


class GitHubClient:
    """Anonymous calls to one GitHub API (``base_url``), with schmux's headers and our timeouts.

    ``web_url`` is the site whose repositories that API serves (the ``github_web_url`` setting):
    ``https://github.com`` for ``https://api.github.com``, ``https://HOST`` for a GitHub Enterprise
    server's ``https://HOST/api/v3``.
    """

    def __init__(
        self,
        base_url: str = constants.GITHUB_API_URL,
        *,
        web_url: str = constants.GITHUB_WEB_URL,
        connect_timeout_s: float = constants.GITHUB_CONNECT_TIMEOUT_S,
        read_timeout_s: float = constants.GITHUB_READ_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: The host of the repository URLs this API answers for (``github.com``, a GitHub
        #: Enterprise server's host): other repos are never looked for.
        self.web_host = (urlsplit(web_url).hostname or "github.com").lower()
        self._timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)
        self._transport = transport

    def is_public(self, repo: RepoRef) -> bool:
        """Whether ``repo`` is public: ``False`` when GitHub says 404 (missing, or private to us) or ``private``."""
        response = self._get(f"/repos/{repo.api_path}", "checking repo visibility", missing_ok=True)
        if response.status_code == 404:
            return False
        data = self._json(response, "repo")
        if not isinstance(data, dict) or not isinstance(data.get("private", False), bool):
            raise GitHubError(f"GitHub answered an unexpected repo object for {repo.api_path}")
        return not data.get("private", False)

    def open_pulls(self, repo: RepoRef) -> list[dict[str, Any]]:
        """The newest open pull requests of ``repo`` (at most ``GITHUB_PRS_PER_REPO``), as GitHub's objects."""
        response = self._get(
            f"/repos/{repo.api_path}/pulls",
            "fetching PRs",
            params={"state": "open", "per_page": str(constants.GITHUB_PRS_PER_REPO)},
        )
        data = self._json(response, "PRs")
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise GitHubError(f"GitHub answered an unexpected pull request list for {repo.api_path}")
        return data

    # --- internals --------------------------------------------------------------------------

    def _get(
        self, path: str, what: str, params: dict[str, str] | None = None, *, missing_ok: bool = False
    ) -> httpx.Response:
        """GET ``path``: a 200 (or a 404 when ``missing_ok``), else :class:`RateLimited`/:class:`GitHubError`."""
        headers = {"Accept": constants.GITHUB_ACCEPT, "User-Agent": constants.GITHUB_USER_AGENT}
        try:
            with httpx.Client(timeout=self._timeout, transport=self._transport, follow_redirects=True) as client:
                response = client.get(self.base_url + path, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise GitHubError(f"failed {what}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 403:
            raise RateLimited(_retry_after(response))
        if response.status_code == 200 or (response.status_code == 404 and missing_ok):
            return response
        body = " ".join(response.text.split())[: constants.GITHUB_ERROR_BODY_CHARS]
        raise GitHubError(f"unexpected status {response.status_code} {what}: {body}")

    @staticmethod
    def _json(response: httpx.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise GitHubError(f"failed to decode {what} response: GitHub did not answer JSON") from None


def _retry_after(response: httpx.Response) -> int:
    """``Retry-After`` in whole seconds when it is a number (as schmux reads it), else 60."""
    value = response.headers.get("Retry-After", "").strip()
    return int(value) if value.isdigit() else constants.GITHUB_RATE_LIMIT_RETRY_S


def pull_request_fields(item: dict[str, Any]) -> dict[str, Any]:
    """The fields of one pull request of GitHub's list that the contract keeps, checked for type.

    ``fork_owner`` and ``is_fork`` come from ``head.repo``, which is ``null`` when the fork
    was deleted (then the PR is not a fork for us, as for schmux).
    """

    def obj(value: Any) -> dict[str, Any]:
        return value if isinstance(value, dict) else {}

    def text(value: Any) -> str:
        return value if isinstance(value, str) else ""

    number = item.get("number")
    if not isinstance(number, int) or isinstance(number, bool) or number <= 0:
        raise GitHubError("GitHub answered a pull request without a number")
    head, base = obj(item.get("head")), obj(item.get("base"))
    head_repo = obj(head.get("repo"))
    fork = head_repo.get("fork") is True
    return {
        "number": number,
        "title": text(item.get("title")),
        "body": text(item.get("body")),
        "state": text(item.get("state")),
        "source_branch": text(head.get("ref")),
        "target_branch": text(base.get("ref")),
        "author": text(obj(item.get("user")).get("login")),
        "created_at": _rfc3339(item.get("created_at")),
        "html_url": text(item.get("html_url")),
        "fork_owner": text(obj(head_repo.get("owner")).get("login")) if fork else "",
        "is_fork": fork,
    }


def _rfc3339(value: Any) -> str:
    """GitHub's ``created_at`` (``2026-01-05T10:00:00Z``) normalised to UTC with ``Z``."""
    if not isinstance(value, str):
        raise GitHubError("GitHub answered a pull request without created_at")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise GitHubError(f"GitHub answered an unreadable created_at: {value[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

"""GitHub REST API stand-in: the two anonymous calls of pull-request discovery, with GitHub's JSON and headers.

What it serves (shapes as api.github.com answers them, API version 2022-11-28):

- ``GET /repos/{owner}/{repo}``: the repository object (``private``, ``visibility``, ``owner``...),
  or 404 ``{"message": "Not Found", "documentation_url", "status": "404"}`` for a repository it
  does not have. GitHub answers a private repository 404 to an anonymous client too; a private
  one served here (``private: true``) stands for a client that can see it;
- ``GET /repos/{owner}/{repo}/pulls?state=open&per_page=N``: the open pull requests, newest
  first, at most ``per_page``; each has ``head``/``base`` with their ``repo`` (``fork`` and
  ``owner`` on the head repo of a fork);
- failures set by a test (:class:`Outage`): 403 with GitHub's rate-limit body and
  ``x-ratelimit-*`` headers (``Retry-After`` only when given, as for GitHub's secondary limits),
  500 ``{"message": "Server Error"}``, or a 200 whose body is an HTML page ("garbage", as a
  captive portal or a proxy answers).

Every answer carries GitHub's ``x-github-*`` and ``x-ratelimit-*`` headers; every request is
recorded (``requests``), so a test can check the client's ``Accept`` and ``User-Agent``.
"""

from __future__ import annotations

import itertools
import json
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from .server import Exchange, Script, StandInServer

_API_VERSION = "2022-11-28"
_RATE_LIMIT_MESSAGE = (
    "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher "
    "rate limit. Check out the documentation for more details.)"
)
_RATE_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
_GARBAGE = b"<!DOCTYPE html><html><head><title>Sign in to the network</title></head><body>portal</body></html>"
_ids = itertools.count(100_000_001)


@dataclass
class PullSpec:
    """One open pull request of a stand-in repository; a fork's head lives in ``fork_owner``'s repo."""

    number: int
    title: str
    author: str
    head_ref: str
    base_ref: str = "main"
    body: str | None = None
    created_at: str = "2026-01-05T10:00:00Z"
    fork_owner: str | None = None


@dataclass
class RepoSpec:
    owner: str
    name: str
    private: bool = False
    pulls: list[PullSpec] = field(default_factory=list)


@dataclass
class Outage:
    """A failure to answer with: ``rate_limit`` (403), ``server_error`` (500) or ``garbage`` (HTML 200).

    ``on``: ``repo`` (the visibility call), ``pulls`` or ``any``.
    """

    kind: str
    on: str = "any"
    retry_after: str | None = None


def _stable(text: str) -> int:
    """A number that stays the same for ``text`` across runs (ids of users and repos)."""
    return zlib.crc32(text.encode())


def _user(login: str) -> dict[str, Any]:
    return {
        "login": login,
        "id": _stable(login) % 10_000_000,
        "node_id": "MDQ6VXNlcjE=",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{_stable(login) % 10_000_000}?v=4",
        "url": f"https://api.github.com/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "User",
        "site_admin": False,
    }


class GitHubApiStandIn(StandInServer):
    """A loopback GitHub API: set ``repos`` and ``outage``; ``base_url`` is the API root."""

    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, RepoSpec] = {}
        self.outage: Outage | None = None

    @property
    def base_url(self) -> str:
        return self.url

    def add_repo(self, repo: RepoSpec) -> RepoSpec:
        self.repos[f"{repo.owner}/{repo.name}".lower()] = repo
        return repo

    def reset(self) -> None:
        super().reset()
        self.repos = {}
        self.outage = None

    # --- answers ----------------------------------------------------------------------------

    def handle(self, exchange: Exchange, script: Script) -> None:
        parts = exchange.request.path.strip("/").split("/")
        if exchange.request.method != "GET" or len(parts) not in (3, 4) or parts[0] != "repos":
            self._send(exchange, 404, self.error_body(404, "Not Found"))
            return
        call = "pulls" if len(parts) == 4 else "repo"
        if len(parts) == 4 and parts[3] != "pulls":
            self._send(exchange, 404, self.error_body(404, "Not Found"))
            return
        outage = self.outage
        if outage is not None and outage.on in ("any", call):
            self._fail(exchange, outage)
            return
        repo = self.repos.get(f"{parts[1]}/{parts[2]}".lower())
        if repo is None:
            self._send(exchange, 404, self.error_body(404, "Not Found"))
            return
        if call == "repo":
            self._send(exchange, 200, self._repo_object(repo.owner, repo.name, repo.private))
            return
        query = parse_qs(exchange.request.query)
        state = (query.get("state") or ["open"])[0]
        per_page = int((query.get("per_page") or ["30"])[0])
        pulls = sorted(repo.pulls, key=lambda p: p.number, reverse=True) if state in ("open", "all") else []
        self._send(exchange, 200, [self._pull_object(repo, pull) for pull in pulls[:per_page]])

    def error_body(self, status: int, model: str) -> object:
        """GitHub's error body (``model`` is the message)."""
        docs = "https://docs.github.com/rest/repos/repos#get-a-repository"
        return {"message": model, "documentation_url": docs, "status": str(status)}

    def _headers(self, remaining: int = 59) -> dict[str, str]:
        reset = int(time.time()) + 3600
        return {
            "x-github-api-version-selected": _API_VERSION,
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": f"C0DE:{next(_ids):X}",
            "x-ratelimit-limit": "60",
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": str(60 - remaining),
            "x-ratelimit-resource": "core",
            "Cache-Control": "public, max-age=60, s-maxage=60",
            "Vary": "Accept, Accept-Encoding, Accept, X-Requested-With",
        }

    def _send(self, exchange: Exchange, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        payload = json.dumps(body, indent=2).encode()
        exchange.send_bytes(status, payload, "application/json; charset=utf-8", {**self._headers(), **(headers or {})})

    def _fail(self, exchange: Exchange, outage: Outage) -> None:
        if outage.kind == "rate_limit":
            headers = self._headers(remaining=0)
            if outage.retry_after is not None:
                headers["Retry-After"] = outage.retry_after
            body = {"message": _RATE_LIMIT_MESSAGE, "documentation_url": _RATE_LIMIT_DOCS}
            exchange.send_bytes(403, json.dumps(body).encode(), "application/json; charset=utf-8", headers)
        elif outage.kind == "server_error":
            self._send(exchange, 500, {"message": "Server Error"})
        elif outage.kind == "garbage":
            exchange.send_bytes(200, _GARBAGE, "text/html; charset=utf-8", self._headers())
        else:
            raise ValueError(f"unknown outage {outage.kind!r}")

    def _repo_object(self, owner: str, name: str, private: bool, fork: bool = False) -> dict[str, Any]:
        full = f"{owner}/{name}"
        api = f"https://api.github.com/repos/{full}"
        return {
            "id": _stable(full) % 900_000_000,
            "node_id": "R_kgDOExample",
            "name": name,
            "full_name": full,
            "private": private,
            "owner": _user(owner),
            "html_url": f"https://github.com/{full}",
            "description": None,
            "fork": fork,
            "url": api,
            "pulls_url": f"{api}/pulls{{/number}}",
            "created_at": "2024-03-01T08:00:00Z",
            "updated_at": "2026-01-06T12:00:00Z",
            "pushed_at": "2026-01-06T12:00:00Z",
            "git_url": f"git://github.com/{full}.git",
            "ssh_url": f"git@github.com:{full}.git",
            "clone_url": f"https://github.com/{full}.git",
            "default_branch": "main",
            "visibility": "private" if private else "public",
            "archived": False,
            "disabled": False,
            "open_issues_count": 0,
        }

    def _pull_object(self, repo: RepoSpec, pull: PullSpec) -> dict[str, Any]:
        full = f"{repo.owner}/{repo.name}"
        head_owner = pull.fork_owner or repo.owner
        head_repo = self._repo_object(head_owner, repo.name, False, fork=pull.fork_owner is not None)
        sha = f"{pull.number:040x}"
        return {
            "url": f"https://api.github.com/repos/{full}/pulls/{pull.number}",
            "id": next(_ids),
            "node_id": "PR_kwDOExample",
            "html_url": f"https://github.com/{full}/pull/{pull.number}",
            "diff_url": f"https://github.com/{full}/pull/{pull.number}.diff",
            "patch_url": f"https://github.com/{full}/pull/{pull.number}.patch",
            "number": pull.number,
            "state": "open",
            "locked": False,
            "title": pull.title,
            "user": _user(pull.author),
            "body": pull.body,
            "created_at": pull.created_at,
            "updated_at": pull.created_at,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "labels": [],
            "draft": False,
            "head": {
                "label": f"{head_owner}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": sha,
                "user": _user(head_owner),
                "repo": head_repo,
            },
            "base": {
                "label": f"{repo.owner}:{pull.base_ref}",
                "ref": pull.base_ref,
                "sha": "0" * 40,
                "user": _user(repo.owner),
                "repo": self._repo_object(repo.owner, repo.name, repo.private),
            },
            "author_association": "CONTRIBUTOR",
            "auto_merge": None,
            "active_lock_reason": None,
        }

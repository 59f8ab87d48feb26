"""schmux's pull requests through a real sidecar: discovery against a GitHub API stand-in, the cache
across a restart, and checkouts over a real git origin that has GitHub's ``refs/pull/N/head``.

The configured repos are GitHub URLs (``https://github.com/octo/hello``), as a user writes them;
git reaches them through ``url.<local>.insteadOf`` in the sidecar's own git config, so the runtime
is unchanged: the API calls go to the stand-in (``MISO_GITHUB_API_URL``), the git calls to a local
origin whose pull refs are made with ``git update-ref``.
"""

from __future__ import annotations

import json
import re
import stat
import time
import uuid
from pathlib import Path

import pytest

from miso_runtime import constants
from miso_runtime.agents.tmux_sessions import TmuxSessions
from tests.eeg import wait_until
from tests.gitrepo import git
from tests.sidecar import Sidecar
from tests.standins import GitHubApiStandIn
from tests.standins.github_api import Outage, PullSpec, RepoSpec
from tests.ws_client import JsonSocket

HELLO = "https://github.com/octo/hello"
SECRET = "https://github.com/octo/secret.git"
GONE = "git@github.com:octo/gone.git"
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
FIX_BODY = "Totals were rounded twice.\n\nThis rounds once, at the end."
RATE_LIMITED = "GitHub API rate limit exceeded, retry after {} seconds"


@pytest.fixture(scope="module")
def origin(tmp_path_factory) -> dict[str, str]:
    """``<root>/octo/hello.git`` with ``main`` and pull refs whose commits are on no branch:
    ``refs/pull/3/head`` (adds fix.txt), ``refs/pull/4/head`` (a fork's, adds fork.txt) and
    ``refs/pull/6/head`` (adds clone.txt). GitHub's PR 5 has no ref here.

    Returns the root, the pull heads' commits and main's.
    """
    root = tmp_path_factory.mktemp("github-origin")
    source = root / "source"
    git("init", "-q", "-b", "main", str(source))
    (source / "README.md").write_text("hello\n")
    git("add", ".", cwd=source)
    git("commit", "-qm", "first", cwd=source)
    main = git("rev-parse", "HEAD", cwd=source).strip()
    heads = {}
    for number, name in ((3, "fix.txt"), (4, "fork.txt"), (6, "clone.txt")):
        git("checkout", "-q", "--detach", "main", cwd=source)
        (source / name).write_text(f"change of PR {number}\n")
        git("add", ".", cwd=source)
        git("commit", "-qm", f"PR {number}", cwd=source)
        heads[number] = git("rev-parse", "HEAD", cwd=source).strip()
    git("checkout", "-q", "main", cwd=source)  # origin's HEAD is main, as on GitHub
    bare = root / "octo" / "hello.git"
    bare.parent.mkdir()
    git("clone", "-q", "--bare", str(source), str(bare))
    for number, sha in heads.items():
        git("update-ref", f"refs/pull/{number}/head", sha, cwd=bare)
    return {"root": str(root), "pr3": heads[3], "pr4": heads[4], "pr6": heads[6], "main": main}


@pytest.fixture(scope="module")
def github() -> GitHubApiStandIn:
    with GitHubApiStandIn() as server:
        yield server


def serve_repos(github: GitHubApiStandIn) -> None:
    """hello (public, four PRs: 4 from a fork; PR 5's ref is missing on origin), secret (private);
    ``octo/gone`` is absent (404)."""
    github.reset()
    github.add_repo(
        RepoSpec(
            "octo",
            "hello",
            pulls=[
                PullSpec(3, "Fix totals", "alice", "fix/totals", body=FIX_BODY, created_at="2026-01-05T10:00:00Z"),
                PullSpec(4, "Fork feature", "bob", "feature", created_at="2026-01-06T11:30:00Z", fork_owner="bob"),
                PullSpec(5, "Vanished", "carol", "gone", created_at="2026-01-07T09:00:00Z"),
                PullSpec(6, "Clone mode", "dave", "clone", created_at="2026-01-07T12:00:00Z"),
            ],
        )
    )
    github.add_repo(RepoSpec("octo", "secret", private=True, pulls=[PullSpec(9, "Hidden", "eve", "x")]))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prompts")


@pytest.fixture(scope="module")
def env(tmp_path_factory, origin, github, prompts) -> dict[str, str]:
    """The sidecar's environment: the stand-in's API, its own tmux socket, and a git config that
    sends ``https://github.com/`` to the local origin."""
    folder = tmp_path_factory.mktemp("prs-env")
    gitconfig = folder / "gitconfig"
    gitconfig.write_text(f'[url "file://{origin["root"]}/"]\n\tinsteadOf = https://github.com/\n')
    reviewer = folder / "reviewer"
    # A promptable agent: writes the prompt it was given where the test reads it, then waits.
    reviewer.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{prompts}/$(basename "$PWD").txt"\nexec sleep 600\n')
    reviewer.chmod(reviewer.stat().st_mode | stat.S_IEXEC)
    socket_name = f"miso-prs-{uuid.uuid4().hex[:8]}"
    yield {
        "MISO_GITHUB_API_URL": github.base_url,
        "MISO_TMUX_SOCKET": socket_name,
        # Discovery only when a test asks: the automatic one has its own test.
        "MISO_PR_POLL_INTERVAL_S": "0",
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "REVIEWER": str(reviewer),
    }
    TmuxSessions(socket_name).kill_server()


def configure(side: Sidecar, reviewer: str, local_repo: str, review_target: str = "reviewer") -> None:
    config = {
        "repos": [
            {"name": "hello", "url": HELLO},
            {"name": "secret", "url": SECRET},
            {"name": "gone", "url": GONE},
            {"name": "local", "url": local_repo},
        ],
        "run_targets": [
            {"name": "reviewer", "type": "promptable", "command": reviewer},
            {"name": "shell", "type": "command", "command": "sleep 600"},
        ],
        "pr_review": {"target": review_target},
    }
    answer = side.post("/api/config", json=config)
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def side(tmp_path_factory, env, origin) -> Sidecar:
    sidecar = Sidecar(tmp_path_factory.mktemp("prs-data"), env=env)
    configure(sidecar, env["REVIEWER"], str(Path(origin["root"]) / "source"))
    yield sidecar
    sidecar.terminate()


@pytest.fixture(autouse=True)
def _fresh_github(github) -> None:
    serve_repos(github)


def pr_object(number: int) -> dict:
    """The contract's PR object for the stand-in's PRs of octo/hello."""
    base = {"state": "open", "repo_name": "hello", "repo_url": HELLO, "target_branch": "main"}
    if number == 3:
        return {
            "number": 3,
            "title": "Fix totals",
            "body": FIX_BODY,
            **base,
            "source_branch": "fix/totals",
            "author": "alice",
            "created_at": "2026-01-05T10:00:00Z",
            "html_url": "https://github.com/octo/hello/pull/3",
            "is_fork": False,
        }
    if number == 4:
        return {
            "number": 4,
            "title": "Fork feature",
            "body": "",
            **base,
            "source_branch": "feature",
            "author": "bob",
            "created_at": "2026-01-06T11:30:00Z",
            "html_url": "https://github.com/octo/hello/pull/4",
            "fork_owner": "bob",
            "is_fork": True,
        }
    if number == 6:
        return {
            "number": 6,
            "title": "Clone mode",
            "body": "",
            **base,
            "source_branch": "clone",
            "author": "dave",
            "created_at": "2026-01-07T12:00:00Z",
            "html_url": "https://github.com/octo/hello/pull/6",
            "is_fork": False,
        }
    return {
        "number": 5,
        "title": "Vanished",
        "body": "",
        **base,
        "source_branch": "gone",
        "author": "carol",
        "created_at": "2026-01-07T09:00:00Z",
        "html_url": "https://github.com/octo/hello/pull/5",
        "is_fork": False,
    }


ALL = [pr_object(6), pr_object(5), pr_object(4), pr_object(3)]


def refreshed(side: Sidecar) -> dict:
    answer = side.post("/api/prs/refresh")
    assert answer.status_code == 200, answer.text
    return answer.json()


def cache_file(side: Sidecar) -> Path:
    return side.data_dir / constants.PULL_REQUESTS_FILE_NAME


def workspaces(side: Sidecar) -> list[dict]:
    return side.get("/api/sessions").json()


# --- discovery ------------------------------------------------------------------------------


def test_refresh_finds_the_public_repos_pull_requests_and_skips_private_and_missing(side, github):
    body = refreshed(side)
    assert body == {"prs": ALL, "fetched_count": 4, "retry_after_sec": None}
    asked = [(r.path, r.query) for r in github.requests]
    assert asked == [
        ("/repos/octo/hello", ""),
        ("/repos/octo/secret", ""),
        ("/repos/octo/gone", ""),
        ("/repos/octo/hello/pulls", "state=open&per_page=5"),
    ]
    for recorded in github.requests:
        assert recorded.headers["accept"] == "application/vnd.github+json"
        assert recorded.headers["user-agent"] == "schmux"
        assert "authorization" not in recorded.headers
    listing = side.get("/api/prs").json()
    assert listing["prs"] == ALL and "error" not in listing
    assert RFC3339_Z.match(listing["last_fetched_at"])
    saved = json.loads(cache_file(side).read_text())
    assert saved["pull_requests"] == ALL and saved["public_repos"] == [HELLO]


def test_rate_limit_answers_the_cached_list_with_retry_after(side, github):
    refreshed(side)
    fetched_at = side.get("/api/prs").json()["last_fetched_at"]
    github.outage = Outage("rate_limit", on="pulls", retry_after="42")
    body = refreshed(side)
    assert body == {"prs": ALL, "fetched_count": 4, "error": RATE_LIMITED.format(42), "retry_after_sec": 42}
    listing = side.get("/api/prs").json()
    assert listing == {"prs": ALL, "last_fetched_at": fetched_at, "error": RATE_LIMITED.format(42)}
    github.outage = Outage("rate_limit", on="repo")  # no Retry-After: 60
    body = refreshed(side)
    assert body["retry_after_sec"] == 60 and body["error"] == RATE_LIMITED.format(60) and body["prs"] == ALL
    github.outage = None
    assert "error" not in refreshed(side) and "error" not in side.get("/api/prs").json()


@pytest.mark.parametrize(
    ("kind", "on", "words"),
    [
        ("server_error", "pulls", "unexpected status 500 fetching PRs"),
        ("server_error", "repo", "unexpected status 500 checking repo visibility"),
        ("garbage", "pulls", "did not answer JSON"),
        ("garbage", "repo", "did not answer JSON"),
    ],
)
def test_github_failures_answer_an_error_and_keep_the_cache(side, github, kind, on, words):
    refreshed(side)
    before = cache_file(side).read_bytes()
    github.outage = Outage(kind, on=on)
    body = refreshed(side)
    assert body["prs"] == ALL and body["fetched_count"] == 4 and body["retry_after_sec"] is None
    assert body["error"].startswith("GitHub API error: ") and words in body["error"], body["error"]
    assert cache_file(side).read_bytes() == before
    assert side.get("/api/prs").json()["error"] == body["error"]


def test_the_cache_survives_a_restart(tmp_path, env, github, origin):
    data_dir = tmp_path / "data"
    first = Sidecar(data_dir, env=env)
    try:
        configure(first, env["REVIEWER"], str(Path(origin["root"]) / "source"))
        assert first.get("/api/prs").json() == {"prs": [], "last_fetched_at": None}
        refreshed(first)
        before = first.get("/api/prs").json()
    finally:
        first.terminate()
    github.reset()  # GitHub knows nothing now: what the next runtime shows comes from its cache
    second = Sidecar(data_dir, env=env)
    try:
        assert second.get("/api/prs").json() == before
        assert before["prs"] == ALL and RFC3339_Z.match(before["last_fetched_at"])
        assert github.requests == []
    finally:
        second.terminate()


def test_discovery_runs_by_itself_while_a_review_target_is_set(tmp_path, env, github, origin):
    """schmux polls hourly once ``pr_review.target`` is set (here every second), at once when the
    target appears, and stops when it is cleared."""
    side = Sidecar(tmp_path / "data", env={**env, "MISO_PR_POLL_INTERVAL_S": "1"})
    local = str(Path(origin["root"]) / "source")
    pulls = lambda: sum(r.path == "/repos/octo/hello/pulls" for r in github.requests)  # noqa: E731
    try:
        configure(side, env["REVIEWER"], local, review_target="")
        time.sleep(2.5)
        assert github.requests == [] and side.get("/api/prs").json()["last_fetched_at"] is None
        configure(side, env["REVIEWER"], local)
        listing = wait_until(lambda: (found := side.get("/api/prs").json())["last_fetched_at"] and found, timeout=20)
        assert listing["prs"] == ALL
        wait_until(lambda: pulls() >= 2, timeout=20)  # and again, an interval later
        configure(side, env["REVIEWER"], local, review_target="")
        time.sleep(1.5)  # a round under way when the target was cleared may still finish
        asked = len(github.requests)
        time.sleep(2.5)
        assert len(github.requests) == asked
    finally:
        side.terminate()


# --- checkout -------------------------------------------------------------------------------


def expected_prompt(pr: dict, path: str, branch: str) -> str:
    """The header facts and the body, in BuildReviewPrompt's order."""
    head = (
        f"Pull Request #{pr['number']}: {pr['title']}\n"
        f"Repository: hello\n"
        f"Author: @{pr['author']}\n"
        f"Branch: {pr['source_branch']} -> main\n"
        f"URL: {pr['html_url']}\n"
        "\n"
        "PR code checkout location:\n"
        f"  Working directory: {path}\n"
        f"  Current branch: {branch} (PR #{pr['number']} already checked out)\n"
    )
    return head


def checkout(side: Sidecar, number: int):
    return side.post("/api/prs/checkout", json={"repo_url": HELLO, "pr_number": number}, timeout=120)


def check_review(side, prompts, origin, answer, number: int, branch: str) -> dict:
    """The workspace on ``branch`` with the PR's commit, and its review session with the prompt."""
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"workspace_id", "session_id"}
    workspace = next(w for w in workspaces(side) if w["id"] == body["workspace_id"])
    assert workspace["repo"] == HELLO and workspace["branch"] == branch
    session = next(s for s in workspace["sessions"] if s["id"] == body["session_id"])
    pr = pr_object(number)
    assert session["target"] == "reviewer" and session["nickname"] == f"PR #{number}: {pr['title']}"
    path = Path(workspace["path"])
    assert git("rev-parse", "HEAD", cwd=path).strip() == origin[f"pr{number}"]
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=path).strip() == branch
    prompt_file = prompts / f"{path.name}.txt"
    prompt = wait_until(lambda: prompt_file.is_file() and prompt_file.read_text())
    assert prompt.startswith(expected_prompt(pr, str(path), branch)), prompt
    if pr["body"]:
        assert f"\n\n{pr['body']}\n\n" in prompt
    assert prompt.rstrip().endswith("understand the substance of the change.")
    return workspace


def test_checkout_makes_branch_pr_n_a_workspace_and_a_review_session(side, prompts, origin):
    refreshed(side)
    socket = JsonSocket(side.port, f"/ws/dashboard?token={side.token}")
    try:
        answer = checkout(side, 3)
        workspace = check_review(side, prompts, origin, answer, 3, "pr/3")
        assert (Path(workspace["path"]) / "fix.txt").read_text() == "change of PR 3\n"
        socket.wait_messages(
            lambda messages: any(
                m.get("type") == "sessions"
                and any(w["id"] == workspace["id"] and w["session_count"] >= 1 for w in m["workspaces"])
                for m in messages
            ),
            timeout=20,
        )
    finally:
        socket.close()
    # Clicking the PR again reuses its workspace, with one more review session.
    again = checkout(side, 3)
    assert again.status_code == 200, again.text
    assert again.json()["workspace_id"] == workspace["id"]
    assert again.json()["session_id"] != answer.json()["session_id"]


def test_checkout_of_a_fork_pr_uses_branch_pr_owner_n(side, prompts, origin):
    refreshed(side)
    workspace = check_review(side, prompts, origin, checkout(side, 4), 4, "pr/bob/4")
    assert (Path(workspace["path"]) / "fork.txt").is_file()
    assert not (Path(workspace["path"]) / "fix.txt").exists()


def test_checkout_in_git_mode_puts_the_pr_head_in_a_clone(side, prompts, origin):
    refreshed(side)
    assert side.post("/api/config", json={"source_code_management": "git"}).status_code == 200
    try:
        workspace = check_review(side, prompts, origin, checkout(side, 6), 6, "pr/6")
    finally:
        assert side.post("/api/config", json={"source_code_management": "git-worktree"}).status_code == 200
    path = Path(workspace["path"])
    assert (path / ".git").is_dir() and (path / "clone.txt").is_file()


def post_raw(side: Sidecar, content: bytes):
    return side.post("/api/prs/checkout", content=content, headers={**side.auth, "content-type": "application/json"})


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b'{"repo_url": 7, "pr_number": 3}',
        b'{"repo_url": "x", "pr_number": "3"}',
        b'{"repo_url": "x", "pr_number": 3.5}',
    ],
)
def test_checkout_refuses_a_body_go_cannot_decode(side, content):
    answer = post_raw(side, content)
    assert answer.status_code == 400 and answer.json() == {"error": "Invalid request body"}


@pytest.mark.parametrize(
    "body",
    [{}, {"repo_url": HELLO}, {"pr_number": 3}, {"repo_url": "", "pr_number": 3}, {"repo_url": HELLO, "pr_number": -1}],
)
def test_checkout_needs_repo_url_and_pr_number(side, body):
    answer = side.post("/api/prs/checkout", json=body)
    assert answer.status_code == 400 and answer.json() == {"error": "repo_url and pr_number are required"}


def test_checkout_error_rows(side, github):
    refreshed(side)
    # Go's decoder: keys match case-insensitively, unknown keys are ignored.
    absent = side.post("/api/prs/checkout", json={"Repo_URL": HELLO, "PR_Number": 77, "extra": True})
    assert absent.status_code == 404 and absent.json() == {"error": f"PR #77 not found for {HELLO}"}
    assert checkout(side, 9).json() == {"error": f"PR #9 not found for {HELLO}"}  # secret's PR: never listed
    before = {w["id"] for w in workspaces(side)}

    assert side.post("/api/config", json={"pr_review": {"target": ""}}).status_code == 200
    try:
        none = checkout(side, 3)
        assert none.status_code == 400 and none.json() == {"error": "No pr_review target configured"}
    finally:
        assert side.post("/api/config", json={"pr_review": {"target": "reviewer"}}).status_code == 200

    # PR 5 is listed by GitHub but origin has no refs/pull/5/head: the fetch fails, nothing is made.
    missing = checkout(side, 5)
    assert missing.status_code == 500
    message = missing.json()["error"]
    assert message.startswith("Failed to checkout PR: failed to fetch PR ref refs/pull/5/head:refs/heads/pr/5")
    assert "refs/pull/5/head" in message
    assert {w["id"] for w in workspaces(side)} == before

    # A target that names nothing runnable: the workspace is made, the session is not.
    assert side.post("/api/config", json={"pr_review": {"target": "ghost"}}).status_code == 200
    try:
        failed = checkout(side, 4)
        assert failed.status_code == 500
        assert failed.json()["error"].startswith("Workspace created but session launch failed: unknown target: ghost")
    finally:
        assert side.post("/api/config", json={"pr_review": {"target": "reviewer"}}).status_code == 200


def test_checkout_answers_from_the_cache_without_asking_github(side, github):
    refreshed(side)
    github.reset()
    github.outage = Outage("server_error")
    answer = checkout(side, 3)
    assert answer.status_code == 200, answer.text
    assert github.requests == []

"""schmux branch routes over a real bare remote: recent branches, suggest-branch, prepare-branch-spawn."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from miso_runtime.agents.tmux_sessions import TmuxSessions
from tests.gitrepo import GIT_ID
from tests.sidecar import Sidecar
from tests.standins import Script

MODEL = "openai:gpt-4o-mini"
#: ``git log``'s iso8601 date, as schmux answers it (not RFC 3339).
GIT_ISO = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}$")
#: Enough branches on one commit to reach the cap of 50.
MANY = 60


def git_at(source: Path, when: str, *args: str) -> None:
    """``git args`` in ``source`` with author and committer dated ``when``."""
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    subprocess.run(["git", *GIT_ID, *args], cwd=source, env=env, check=True, capture_output=True)


def commit(source: Path, message: str, when: str) -> None:
    (source / f"{len(list(source.iterdir()))}.txt").write_text(message)
    git_at(source, when, "add", ".")
    git_at(source, when, "commit", "-qm", message)


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    """``shop.git``: main (2025-01-01), three dated branches (one with two commits) and many plain
    branches on main's commit."""
    root = tmp_path_factory.mktemp("branches-remote")
    source = root / "source"
    git_at(root, "2025-01-01T00:00:00Z", "init", "-q", "-b", "main", str(source))
    commit(source, "first", "2025-01-01T00:00:00Z")
    git_at(source, "2025-01-01T00:00:00Z", "checkout", "-q", "-b", "feature/cart", "main")
    commit(source, "Cart page", "2026-01-10T10:00:00+01:00")
    git_at(source, "2025-01-01T00:00:00Z", "checkout", "-q", "-b", "fix/totals", "main")
    commit(source, "Fix totals\n\nRounding was off by a cent.", "2026-01-20T09:30:00-08:00")
    commit(source, "Totals: tests", "2026-01-21T08:00:00Z")
    git_at(source, "2025-01-01T00:00:00Z", "checkout", "-q", "-b", "old/idea", "main")
    commit(source, "An old idea", "2025-06-01T12:00:00Z")
    git_at(source, "2025-01-01T00:00:00Z", "checkout", "-q", "main")
    for number in range(MANY):
        git_at(source, "2025-01-01T00:00:00Z", "branch", f"plain-{number:02d}", "main")
    bare = root / "shop.git"
    git_at(root, "2025-01-01T00:00:00Z", "clone", "-q", "--bare", str(source), str(bare))
    return bare


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-branches-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()


@pytest.fixture(scope="module")
def side(tmp_path_factory, socket_name, remote, openai_standin):
    env = {
        "MISO_TMUX_SOCKET": socket_name,
        "MISO_OPENAI_API_KEY": "sk-test-openai",
        "MISO_OPENAI_BASE_URL": openai_standin.base_url,
    }
    sidecar = Sidecar(tmp_path_factory.mktemp("branches-data"), env=env)
    config = {
        "repos": [{"name": "shop", "url": str(remote)}, {"name": "never-cloned", "url": "/no/such/repo.git"}],
        "run_targets": [{"name": "shell", "type": "command", "command": "sleep 600"}],
    }
    assert sidecar.post("/api/config", json=config).status_code == 200
    # The first spawn of a repo makes its bare clone, which the branch routes read.
    spawned = sidecar.post("/api/spawn", json={"repo": str(remote), "branch": "work", "targets": {"shell": 1}})
    assert spawned.status_code == 200, spawned.text
    yield sidecar
    sidecar.terminate()


def set_suggest_target(side, target: str) -> None:
    assert side.post("/api/config", json={"branch_suggest": {"target": target}}).status_code == 200


# --- recent branches ------------------------------------------------------------------------


def test_recent_branches_newest_first_without_the_default_branch(side, remote):
    answer = side.get("/api/recent-branches", params={"limit": 3})
    assert answer.status_code == 200, answer.text
    common = {"repo_name": "shop", "repo_url": str(remote)}
    assert answer.json() == [
        {**common, "branch": "fix/totals", "commit_date": "2026-01-21 08:00:00 +0000", "subject": "Totals: tests"},
        {**common, "branch": "feature/cart", "commit_date": "2026-01-10 10:00:00 +0100", "subject": "Cart page"},
        {**common, "branch": "old/idea", "commit_date": "2025-06-01 12:00:00 +0000", "subject": "An old idea"},
    ]
    every = side.get("/api/recent-branches", params={"limit": 50}).json()
    names = [b["branch"] for b in every]
    assert "main" not in names and "HEAD" not in names and "origin" not in names and "work" not in names
    assert len(every) == 50 and all(GIT_ISO.match(b["commit_date"]) for b in every)  # the cap: 63 exist


@pytest.mark.parametrize("limit", ["0", "-3", "many", "", "2.5"])
def test_a_bad_limit_means_ten(side, limit):
    answer = side.get("/api/recent-branches", params={"limit": limit})
    assert answer.status_code == 200 and len(answer.json()) == 10


def test_large_limits_are_capped_at_fifty(side):
    assert len(side.get("/api/recent-branches", params={"limit": 1000}).json()) == 50


def test_no_branches_is_null(tmp_path, remote):
    side = Sidecar(tmp_path / "data", env={"MISO_TMUX_SOCKET": f"miso-none-{uuid.uuid4().hex[:8]}"})
    try:
        answer = side.get("/api/recent-branches")
        assert answer.status_code == 200 and answer.text.strip() == "null"
        # A configured repo without a clone yet has none either.
        assert side.post("/api/config", json={"repos": [{"name": "shop", "url": str(remote)}]}).status_code == 200
        assert side.get("/api/recent-branches").text.strip() == "null"
    finally:
        side.terminate()


# --- suggest-branch -------------------------------------------------------------------------


def test_suggest_branch_through_the_standin(side, openai_standin):
    set_suggest_target(side, MODEL)
    openai_standin.script = Script(tokens=['{"branch": "feature/dark-mode-settings", "nickname": "Dark mode"}'])
    answer = side.post("/api/suggest-branch", json={"prompt": "Add dark mode to the settings panel"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"branch": "feature/dark-mode-settings", "nickname": "Dark mode"}
    request = openai_standin.last_request_json
    assert request["response_format"]["json_schema"]["name"] == "branch-suggest"
    assert request["response_format"]["json_schema"]["schema"]["required"] == ["branch", "nickname"]
    prompt = request["messages"][-1]["content"]
    assert "<<<\nAdd dark mode to the settings panel\n>>>" in prompt and "{{USER_PROMPT}}" not in prompt


@pytest.mark.parametrize(
    "answer, status, error",
    [
        ('{"branch": "Feature/Dark Mode", "nickname": "x"}', 400, "invalid branch name"),
        ('{"branch": "fix//double", "nickname": "x"}', 400, "invalid branch name"),
        ('{"branch": "", "nickname": "x"}', 400, "invalid branch suggestion response"),
        ("no JSON at all", 400, "invalid branch suggestion response: the answer holds no JSON object"),
    ],
)
def test_bad_suggestions_are_400(side, openai_standin, answer, status, error):
    set_suggest_target(side, MODEL)
    openai_standin.script = Script(tokens=[answer])
    response = side.post("/api/suggest-branch", json={"prompt": "Anything"})
    assert response.status_code == status
    assert response.json() == {"error": f"Failed to generate branch suggestion: {error}"}


def test_suggest_branch_errors(side, openai_standin):
    set_suggest_target(side, "")
    response = side.post("/api/suggest-branch", json={"prompt": "x"})
    assert (response.status_code, response.json()) == (503, {"error": "Branch suggestion is not configured"})
    set_suggest_target(side, MODEL)
    response = side.post("/api/suggest-branch", json={"prompt": "   "})
    assert response.status_code == 400
    assert response.json() == {"error": "Failed to generate branch suggestion: empty prompt provided"}
    set_suggest_target(side, "no-such-target")
    response = side.post("/api/suggest-branch", json={"prompt": "x"})
    assert response.status_code == 404
    assert response.json() == {"error": "Failed to generate branch suggestion: branch suggestion target not found"}
    set_suggest_target(side, MODEL)
    openai_standin.script = Script(http_error=500)
    response = side.post("/api/suggest-branch", json={"prompt": "x"})
    assert response.status_code == 500
    assert response.json()["error"].startswith(f"Failed to generate branch suggestion: oneshot execute: {MODEL}: ")
    response = side.post(
        "/api/suggest-branch", content=b"{not json", headers={**side.auth, "content-type": "application/json"}
    )
    assert response.status_code == 400 and "error" in response.json()


# --- prepare-branch-spawn -------------------------------------------------------------------


def test_prepare_branch_spawn_puts_the_history_in_the_prompt(side, openai_standin):
    set_suggest_target(side, "")
    answer = side.post("/api/prepare-branch-spawn", json={"repo_name": "shop", "branch": "fix/totals"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "repo": "shop",
        "branch": "fix/totals",
        "prompt": (
            "Review the current state of this branch and prepare to resume work.\n\n"
            "1. Read any markdown or spec files in the repo root and docs/ to understand project context and goals\n"
            "2. Run `git diff --stat main...HEAD` to compare this branch against where it diverged from main\n"
            "3. Identify what's been completed, what's in progress, and what remains\n\n"
            "Here is the commit history on this branch:\n\n"
            "---\nTotals: tests\n\n---\nFix totals\n\nRounding was off by a cent.\n---\n\n"
            "Summarize your findings, then ask what to work on next."
        ),
        "nickname": "",
    }


def test_prepare_branch_spawn_asks_for_a_nickname_from_the_commits(side, openai_standin):
    set_suggest_target(side, MODEL)
    openai_standin.script = Script(tokens=['{"branch": "fix/totals", "nickname": "Totals rounding"}'])
    answer = side.post("/api/prepare-branch-spawn", json={"repo_name": "shop", "branch": "fix/totals"})
    assert answer.status_code == 200 and answer.json()["nickname"] == "Totals rounding"
    prompt = openai_standin.last_request_json["messages"][-1]["content"]
    assert "Branch: fix/totals\n\nCommit messages:\nTotals: tests\nFix totals\n\nRounding was off by a cent." in prompt
    openai_standin.script = Script(tokens=["not an answer"])  # a failed suggestion leaves the nickname empty
    answer = side.post("/api/prepare-branch-spawn", json={"repo_name": "shop", "branch": "fix/totals"})
    assert answer.status_code == 200 and answer.json()["nickname"] == ""


def test_a_branch_without_commits_of_its_own_gets_the_plain_prompt(side, openai_standin):
    set_suggest_target(side, MODEL)
    openai_standin.reset()
    for branch in ("plain-07", "no-such-branch"):
        answer = side.post("/api/prepare-branch-spawn", json={"repo_name": "shop", "branch": branch})
        assert answer.status_code == 200
        body = answer.json()
        assert "commit history" not in body["prompt"] and body["prompt"].endswith("ask what to work on next.")
        assert body["nickname"] == ""  # no commits: no model is asked
    assert not [r for r in openai_standin.requests if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize(
    "body, status, error",
    [
        ({}, 400, "repo_name and branch are required"),
        ({"repo_name": "shop"}, 400, "repo_name and branch are required"),
        ({"repo_name": "nope", "branch": "x"}, 404, "repo not found"),
    ],
)
def test_prepare_branch_spawn_errors(side, body, status, error):
    answer = side.post("/api/prepare-branch-spawn", json=body)
    assert (answer.status_code, answer.json()) == (status, {"error": error})


def test_never_cloned_repos_are_skipped_quietly(side):
    answer = side.post("/api/prepare-branch-spawn", json={"repo_name": "never-cloned", "branch": "x"})
    assert answer.status_code == 200 and "commit history" not in answer.json()["prompt"]
    assert json.dumps(side.get("/api/recent-branches").json()).count("never-cloned") == 0

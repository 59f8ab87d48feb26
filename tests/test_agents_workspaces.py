"""Workspaces over real git: bare clones, worktrees and clones, scan, dispose, git status, the status cache.

The "remote" is a bare repository in ``tmp_path`` with ``main`` (README.md, 3 lines) and
``feature`` (one more file); ``seed`` is a normal clone of it used to push new commits.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from miso_runtime.agents import workspaces as workspaces_module
from miso_runtime.agents.git_status import StatusCache, parse_numstat, parse_porcelain_z
from miso_runtime.agents.workspaces import WorkspaceError, WorkspaceManager, normalize_repo, repo_name


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git config (hooks, signing, credential helpers), a fixed identity."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.com")


class Remote:
    """A bare 'origin' and a seed clone that pushes to it."""

    def __init__(self, root: Path) -> None:
        self.path = root / "remote.git"
        self.seed = root / "seed"
        git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.path))
        git(root, "init", "--quiet", "--initial-branch=main", str(self.seed))
        (self.seed / "README.md").write_text("one\ntwo\nthree\n")
        git(self.seed, "add", ".")
        git(self.seed, "commit", "--quiet", "-m", "init")
        git(self.seed, "remote", "add", "origin", str(self.path))
        git(self.seed, "push", "--quiet", "origin", "main")
        git(self.seed, "checkout", "--quiet", "-b", "feature")
        (self.seed / "feature.txt").write_text("feature\n")
        git(self.seed, "add", ".")
        git(self.seed, "commit", "--quiet", "-m", "feature")
        git(self.seed, "push", "--quiet", "origin", "feature")
        git(self.seed, "checkout", "--quiet", "main")

    @property
    def url(self) -> str:
        return str(self.path)

    def sha(self, branch: str) -> str:
        return git(self.path, "rev-parse", f"refs/heads/{branch}")

    def push_to_main(self, name: str) -> str:
        """Commit a new file on main and push it; returns the new main."""
        (self.seed / name).write_text("upstream\n")
        git(self.seed, "add", name)
        git(self.seed, "commit", "--quiet", "-m", f"add {name}")
        git(self.seed, "push", "--quiet", "origin", "main")
        return self.sha("main")


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., WorkspaceManager]:
    def factory(scm: str = "git-worktree") -> WorkspaceManager:
        return WorkspaceManager(
            tmp_path / "workspaces",
            tmp_path / "repos",
            tmp_path / "agents-workspaces.json",
            source_code_management=scm,
            clone_timeout_s=20,
            status_timeout_s=20,
        )

    return factory


def worktree_paths(bare: Path) -> list[str]:
    """Non-bare worktrees git has registered for ``bare``."""
    listing = git(bare, "worktree", "list", "--porcelain")
    return [
        block.splitlines()[0].removeprefix("worktree ")
        for block in listing.split("\n\n")
        if block.strip() and "bare" not in block.splitlines()
    ]


def entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


# --- clones and names -----------------------------------------------------------------------


def test_one_bare_clone_per_repo_fetched_not_recloned(make, remote: Remote, tmp_path: Path) -> None:
    manager = make()
    first = manager.create(remote.url, "main")
    bare = manager.clone_path(remote.url)
    assert git(bare, "rev-parse", "--is-bare-repository") == "true"
    (bare / "sentinel").write_text("still the same clone")

    new_main = remote.push_to_main("upstream.txt")
    second = manager.create(remote.url, "topic")

    assert entries(tmp_path / "repos") == [bare.name]
    assert (bare / "sentinel").exists()
    # The existing clone was fetched: the new branch starts from the new main.
    assert git(bare, "rev-parse", "refs/remotes/origin/main") == new_main
    assert git(Path(second.path), "rev-parse", "HEAD") == new_main
    assert (Path(second.path) / "upstream.txt").exists()
    assert first.id == "remote-001" and second.id == "remote-002"


def test_names_count_up_and_reuse_the_lowest_free_number(make, remote: Remote, tmp_path: Path) -> None:
    manager = make()
    a = manager.create(remote.url, "a")
    b = manager.create(remote.url, "b")
    assert [a.id, b.id] == ["remote-001", "remote-002"]
    assert entries(tmp_path / "workspaces") == ["remote-001", "remote-002"]

    manager.dispose(a.id)
    c = manager.create(remote.url, "c")
    assert c.id == "remote-001"
    assert Path(c.path) == tmp_path / "workspaces" / "remote-001"
    assert git(Path(c.path), "rev-parse", "--abbrev-ref", "HEAD") == "c"

    # A folder that is not ours is never taken over.
    (tmp_path / "workspaces" / "remote-003").mkdir()
    assert manager.create(remote.url, "d").id == "remote-004"

    saved = json.loads((tmp_path / "agents-workspaces.json").read_text())
    assert saved["version"] == 1
    assert [(w["id"], w["branch"]) for w in saved["workspaces"]] == [
        ("remote-001", "c"),
        ("remote-002", "b"),
        ("remote-004", "d"),
    ]
    assert set(saved["workspaces"][0]) == {"id", "repo", "branch", "path", "created_at"}
    # A new manager (a restart) knows the same workspaces.
    assert [ws.to_dict() for ws in make().list()] == [ws.to_dict() for ws in manager.list()]


# --- branches -------------------------------------------------------------------------------


def test_existing_branch_of_origin_is_checked_out_tracking_it(make, remote: Remote) -> None:
    ws = make().create(remote.url, "feature")
    path = Path(ws.path)
    assert ws.branch == "feature"
    assert git(path, "rev-parse", "HEAD") == remote.sha("feature")
    assert (path / "feature.txt").read_text() == "feature\n"
    assert git(path, "rev-parse", "--abbrev-ref", "@{upstream}") == "origin/feature"
    assert (path / ".git").is_file()  # a worktree, not a clone


def test_new_branch_starts_from_the_default_branch(make, remote: Remote) -> None:
    ws = make().create(remote.url, "new-work")
    path = Path(ws.path)
    assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "new-work"
    assert git(path, "rev-parse", "HEAD") == remote.sha("main")
    assert not (path / "feature.txt").exists()


def test_disposed_worktree_keeps_its_branch_and_a_new_workspace_resumes_it(make, remote: Remote) -> None:
    manager = make()
    ws = manager.create(remote.url, "resume-me")
    (Path(ws.path) / "work.txt").write_text("work\n")
    git(Path(ws.path), "add", "work.txt")
    git(Path(ws.path), "commit", "--quiet", "-m", "work")
    commit = git(Path(ws.path), "rev-parse", "HEAD")
    manager.dispose(ws.id)

    again = manager.create(remote.url, "resume-me")
    assert git(Path(again.path), "rev-parse", "HEAD") == commit
    assert (Path(again.path) / "work.txt").exists()


def test_git_mode_makes_full_clones_that_may_share_a_branch(make, remote: Remote, tmp_path: Path) -> None:
    manager = make("git")
    url = remote.path.as_uri()  # file:// URL
    one = manager.create(url, "feature")
    two = manager.create(url, "feature")
    fresh = manager.create(url, "from-main")
    for ws in (one, two):
        path = Path(ws.path)
        assert (path / ".git").is_dir()
        assert git(path, "rev-parse", "--abbrev-ref", "HEAD") == "feature"
        assert git(path, "rev-parse", "HEAD") == remote.sha("feature")
        assert git(path, "config", "remote.origin.url") == url
        # Dissociated: the workspace does not depend on the bare clone's objects.
        assert not (path / ".git" / "objects" / "info" / "alternates").exists()
    assert git(Path(fresh.path), "rev-parse", "HEAD") == remote.sha("main")
    assert manager.check_branch_conflict(url, "feature").to_dict() == {"conflict": False}

    manager.dispose(one.id)
    assert not Path(one.path).exists()
    assert [ws.id for ws in manager.list()] == [two.id, fresh.id]


def test_concurrent_creates_of_one_repo_share_one_clone_and_get_distinct_ids(
    make, remote: Remote, tmp_path: Path
) -> None:
    manager = make()
    made: list[str] = []
    errors: list[BaseException] = []

    def spawn(branch: str) -> None:
        try:
            made.append(manager.create(remote.url, branch).id)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=spawn, args=(f"agent-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(made) == ["remote-001", "remote-002", "remote-003"]
    assert len(entries(tmp_path / "repos")) == 1
    assert len(worktree_paths(manager.clone_path(remote.url))) == 3


def test_branch_in_use_by_another_worktree_is_a_conflict(make, remote: Remote, tmp_path: Path) -> None:
    manager = make()
    assert manager.check_branch_conflict(remote.url, "main").to_dict() == {"conflict": False}  # no clone yet
    ws = manager.create(remote.url, "main")

    conflict = manager.check_branch_conflict(remote.url, "main")
    assert conflict.to_dict() == {"conflict": True, "workspace_id": ws.id}
    assert manager.check_branch_conflict(remote.url, "feature").to_dict() == {"conflict": False}

    with pytest.raises(WorkspaceError) as raised:
        manager.create(remote.url, "main")
    assert raised.value.code == "branch_conflict"
    assert raised.value.status == 409
    assert raised.value.message == f'branch "main" is already in use by workspace "{ws.id}"'
    assert entries(tmp_path / "workspaces") == [ws.id]

    manager.dispose(ws.id)
    assert manager.check_branch_conflict(remote.url, "main").conflict is False
    assert manager.create(remote.url, "main").id == ws.id


@pytest.mark.parametrize("branch", ["bad..name", "-x", "has space", "@{-1}", "HEAD", "ends.lock", ""])
def test_invalid_branch_name_is_refused_and_leaves_nothing_behind(
    make, remote: Remote, tmp_path: Path, branch: str
) -> None:
    manager = make()
    with pytest.raises(WorkspaceError) as raised:
        manager.create(remote.url, branch)
    assert raised.value.code == "invalid_branch"
    assert raised.value.status == 400
    assert entries(tmp_path / "workspaces") == []
    assert entries(tmp_path / "repos") == []
    assert manager.list() == []
    assert not (tmp_path / "agents-workspaces.json").exists()


def test_failure_after_the_worktree_exists_removes_it_again(
    make, remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = make()

    def disk_full(path: Path, text: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workspaces_module, "write_atomic", disk_full)
    with pytest.raises(WorkspaceError) as raised:
        manager.create(remote.url, "half-made")
    assert raised.value.code == "state_write_failed"
    assert "No space left on device" in raised.value.message

    bare = manager.clone_path(remote.url)
    assert entries(tmp_path / "workspaces") == []
    assert worktree_paths(bare) == []
    assert git(bare, "branch", "--list", "half-made") == ""
    assert manager.list() == []

    monkeypatch.undo()
    assert manager.create(remote.url, "half-made").id == "remote-001"


# --- clone failures -------------------------------------------------------------------------


class _AskForPassword(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="private"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def private_server() -> Iterator[str]:
    """An HTTP git server that wants a password for everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AskForPassword)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_or_private_repos_fail_fast_with_clone_failed(
    make, tmp_path: Path, private_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An askpass program in the environment (IDE terminals set one) must not be asked either.
    asked = tmp_path / "asked"
    askpass = tmp_path / "askpass.sh"
    askpass.write_text(f"#!/bin/sh\ntouch {asked}\necho secret\n")
    askpass.chmod(0o755)
    monkeypatch.setenv("GIT_ASKPASS", str(askpass))
    monkeypatch.setenv("SSH_ASKPASS", str(askpass))
    manager = make()
    cases = {
        str(tmp_path / "no-such-repo"): "does not exist",
        "https://127.0.0.1:9/x.git": "127.0.0.1 port 9",
        f"http://{private_server}/private.git": "terminal prompts disabled",
        f"http://someone:s3cret@{private_server}/private.git": "Authentication failed",
    }
    for repo, reason in cases.items():
        started = time.monotonic()
        with pytest.raises(WorkspaceError) as raised:
            manager.create(repo, "main")
        assert time.monotonic() - started < 10, repo
        assert raised.value.code == "clone_failed", repo
        assert raised.value.message.startswith("could not clone "), raised.value.message
        assert reason in raised.value.message
        assert "s3cret" not in raised.value.message
    assert not asked.exists()
    assert entries(tmp_path / "repos") == []
    assert entries(tmp_path / "workspaces") == []


def test_a_bad_repo_string_is_refused(make) -> None:
    with pytest.raises(WorkspaceError) as raised:
        make().create("--upload-pack=touch /tmp/pwned", "main")
    assert raised.value.code == "invalid_repo"


# --- scan and dispose -----------------------------------------------------------------------


def test_scan_finds_removed_added_and_switched_workspaces(make, remote: Remote, tmp_path: Path) -> None:
    manager = make()
    gone = manager.create(remote.url, "main")
    kept = manager.create(remote.url, "kept")
    root = tmp_path / "workspaces"
    shutil.rmtree(gone.path)
    bare = manager.clone_path(remote.url)
    git(bare, "worktree", "add", "--quiet", "-b", "by-hand", str(root / "remote-007"), "refs/remotes/origin/main")
    git(Path(kept.path), "checkout", "--quiet", "-b", "switched")
    (root / "notes").mkdir()  # not a workspace name
    (root / "remote-008").mkdir()  # a workspace name, but not a checkout

    result = manager.scan()

    assert result.counts() == {"added": 1, "removed": 1, "updated": 1}
    assert [ws.id for ws in result.removed] == [gone.id]
    assert [(ws.id, ws.branch, ws.repo, ws.path) for ws in result.added] == [
        ("remote-007", "by-hand", remote.url, str(root / "remote-007"))
    ]
    assert [(old.id, old.branch, new.branch) for old, new in result.updated] == [(kept.id, "kept", "switched")]
    body = result.to_contract()
    assert [w["id"] for w in body["added"]] == ["remote-007"] and [w["id"] for w in body["removed"]] == [gone.id]
    assert body["updated"] == [
        {
            "old": {**body["updated"][0]["old"], "branch": "kept"},
            "new": {**body["updated"][0]["old"], "branch": "switched"},
        }
    ]
    assert [ws.id for ws in manager.list()] == [kept.id, "remote-007"]
    saved = json.loads((tmp_path / "agents-workspaces.json").read_text())
    assert [w["id"] for w in saved["workspaces"]] == [kept.id, "remote-007"]

    assert manager.scan().counts() == {"added": 0, "removed": 0, "updated": 0}
    # The branch of the removed worktree is free again, and so is its number.
    assert manager.check_branch_conflict(remote.url, "main").conflict is False
    assert manager.create(remote.url, "main").id == gone.id


def test_dispose_refuses_a_dirty_workspace_then_works_once_clean(make, remote: Remote) -> None:
    manager = make()
    ws = manager.create(remote.url, "tidy")
    path = Path(ws.path)
    bare = manager.clone_path(remote.url)

    (path / "scratch.txt").write_text("untracked\n")
    with pytest.raises(WorkspaceError) as raised:
        manager.dispose(ws.id)
    assert raised.value.code == "dirty"
    assert raised.value.status == 400
    assert "scratch.txt" in raised.value.message

    (path / "scratch.txt").unlink()
    (path / "README.md").write_text("changed\n")
    with pytest.raises(WorkspaceError) as raised:
        manager.dispose(ws.id)
    assert raised.value.code == "dirty"
    assert "README.md" in raised.value.message
    assert path.exists() and [w.id for w in manager.list()] == [ws.id]

    git(path, "checkout", "--", "README.md")
    manager.dispose(ws.id)
    assert not path.exists()
    assert worktree_paths(bare) == []
    assert manager.list() == []

    with pytest.raises(WorkspaceError) as raised:
        manager.dispose(ws.id)
    assert raised.value.code == "not_found"
    assert raised.value.status == 404


# --- git status -----------------------------------------------------------------------------


def test_git_status_counts_commits_edits_and_untracked_files(make, remote: Remote) -> None:
    manager = make()
    ws = manager.create(remote.url, "work")
    path = Path(ws.path)

    clean = manager.git_status(ws.id)
    assert (clean.branch, clean.base, clean.dirty) == ("work", "origin/main", False)
    assert clean.to_contract() == {
        "git_ahead": 0,
        "git_behind": 0,
        "git_lines_added": 0,
        "git_lines_removed": 0,
        "git_files_changed": 0,
    }

    (path / "a.txt").write_text("1\n2\n3\n")
    git(path, "add", "a.txt")
    git(path, "commit", "--quiet", "-m", "a")  # committed: +3, 1 file
    (path / "README.md").write_text("one\nTWO\nthree\n")  # unstaged: +1 -1, 1 file
    (path / "notes.txt").write_text("x\ny")  # untracked, no final newline: +2, 1 file
    (path / "blob.bin").write_bytes(b"\0\1\2\n")  # untracked binary: no lines, 1 file

    status = manager.git_status(ws.id)
    assert status.dirty is True
    assert status.to_contract() == {
        "git_ahead": 1,
        "git_behind": 0,
        "git_lines_added": 6,
        "git_lines_removed": 1,
        "git_files_changed": 4,
    }

    remote.push_to_main("upstream.txt")
    assert manager.git_status(ws.id).behind == 0  # not fetched yet
    fetched = manager.git_status(ws.id, fetch=True)
    assert (fetched.ahead, fetched.behind) == (1, 1)
    # Counted from the merge base: main's new commit is not this workspace's change.
    assert (fetched.lines_added, fetched.lines_removed, fetched.files_changed) == (6, 1, 4)


def test_git_status_in_a_full_clone(make, remote: Remote) -> None:
    manager = make("git")
    ws = manager.create(remote.url, "cloned")
    path = Path(ws.path)
    (path / "README.md").write_text("one\n")
    git(path, "commit", "--quiet", "-am", "shorter")
    remote.push_to_main("upstream.txt")
    status = manager.git_status(ws.id, fetch=True)
    assert (status.branch, status.base, status.dirty) == ("cloned", "origin/main", False)
    assert (status.ahead, status.behind) == (1, 1)
    assert (status.lines_added, status.lines_removed, status.files_changed) == (0, 2, 1)


def test_git_status_of_a_workspace_gone_from_disk_is_not_found(make, remote: Remote) -> None:
    manager = make()
    ws = manager.create(remote.url, "vanishing")
    shutil.rmtree(ws.path)
    with pytest.raises(WorkspaceError) as raised:
        manager.git_status(ws.id)
    assert raised.value.code == "not_found"


def test_parsers() -> None:
    assert parse_numstat("3\t1\ta.txt\n-\t-\tlogo.png\n0\t0\told.txt => new.txt\n") == (3, 1, 3)
    changed, untracked = parse_porcelain_z("R  new.txt\0old.txt\0 M a b.txt\0?? dir/n.txt\0")
    assert (changed, untracked) == (["new.txt", "a b.txt"], ["dir/n.txt"])


# --- status cache ---------------------------------------------------------------------------


def test_status_cache_answers_at_once_and_refreshes_at_most_once_per_interval() -> None:
    calls: list[str] = []
    release = threading.Event()

    def compute(key: str) -> int:
        release.wait(5)
        calls.append(key)
        return len(calls)

    cache: StatusCache[int] = StatusCache(60, compute)
    try:
        started = time.monotonic()
        assert cache.get("ws") is None  # nothing yet; the computation is blocked for up to 5 s
        assert cache.get("ws") is None
        assert time.monotonic() - started < 1
        release.set()
        assert cache.wait_idle(5)
        assert cache.get("ws") == 1
        assert cache.get("ws") == 1
        assert cache.wait_idle(5) and calls == ["ws"]  # within the interval: no second refresh

        cache.poll_interval_s = 0.1
        time.sleep(0.15)
        assert cache.get("ws") == 1  # stale value at once, refresh queued
        assert cache.wait_idle(5)
        cache.poll_interval_s = 60
        assert cache.get("ws") == 2 and calls == ["ws", "ws"]

        cache.invalidate("ws")  # a git operation changed it: refresh now, whatever the age
        assert cache.wait_idle(5)
        assert cache.get("ws") == 3
    finally:
        cache.close()


def test_status_cache_keeps_the_last_value_when_a_refresh_fails() -> None:
    results: list[object] = [1, RuntimeError("git status failed: boom")]

    def compute(key: str) -> int:
        value = results.pop(0)
        if isinstance(value, Exception):
            raise value
        return value  # type: ignore[return-value]

    cache: StatusCache[int] = StatusCache(0, compute)
    try:
        assert cache.refresh_now("ws") == 1
        cache.invalidate("ws")
        assert cache.wait_idle(5)
        assert cache.get("ws") == 1
        assert cache.error("ws") == "git status failed: boom"
    finally:
        cache.close()


def test_status_cache_over_real_workspaces(make, remote: Remote) -> None:
    manager = make()
    ws = manager.create(remote.url, "cached")
    cache = StatusCache(60, manager.git_status)
    try:
        assert cache.get(ws.id) is None
        assert cache.wait_idle(10)
        status = cache.get(ws.id)
        assert status is not None and status.branch == "cached"
    finally:
        cache.close()


# --- repo strings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repo", "name"),
    [
        ("git@github.com:user/schmux.git", "schmux"),
        ("https://github.com/user/schmux", "schmux"),
        ("https://github.com/user/schmux.git/", "schmux"),
        ("file:///srv/git/tools.git", "tools"),
    ],
)
def test_repo_names(repo: str, name: str) -> None:
    assert repo_name(normalize_repo(repo)) == name


def test_local_paths_are_made_absolute_and_clones_kept_apart(make, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert normalize_repo("some/repo") == str(tmp_path / "some" / "repo")
    manager = make()
    assert manager.clone_path("https://a.example/one/tools.git") != manager.clone_path("https://b.example/two/tools")
    assert manager.clone_path("https://a.example/one/tools.git").name.startswith("tools-")

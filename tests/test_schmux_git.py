"""schmux's git routes of a workspace: diff, external diff, VS Code, git graph, stage/amend/discard/uncommit.

Real git repositories, a real sidecar and worker, tmux on a private socket (a spawn makes each
workspace, as the dashboard does); a fake ``code`` and a fake diff tool are shell scripts that
write down how they were started.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import uuid
from pathlib import Path

import pytest

from miso_runtime.agents.git_changes import invalid_path
from miso_runtime.agents.git_diff import Deadline, ExternalDiffRunner, parse_numstat_z
from miso_runtime.agents.git_graph import Commit, GraphInput, build_graph, graph_limits
from miso_runtime.agents.go_json import BodyError, decode_body
from miso_runtime.agents.tmux_sessions import TmuxSessions
from tests.eeg import wait_until
from tests.gitrepo import git
from tests.sidecar import Sidecar

MOVED = "".join(f"line {n}\n" for n in range(1, 11))
VSCODE_MISSING = (
    "VS Code command not found\n\nTo fix this:\n"
    "Open VS Code, press Ctrl+Shift+P, then run: Shell Command: Install 'code' command in PATH"
)
IDENTITY = {
    "GIT_AUTHOR_NAME": "Agent",
    "GIT_AUTHOR_EMAIL": "agent@example.com",
    "GIT_COMMITTER_NAME": "Agent",
    "GIT_COMMITTER_EMAIL": "agent@example.com",
}


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    """origin: one commit on ``main`` with text, binary and ignored-pattern files."""
    root = tmp_path_factory.mktemp("remote")
    source = root / "source"
    git("init", "-q", "-b", "main", str(source))
    (source / "README.md").write_text("hello\n")
    (source / "notes.txt").write_text("one\ntwo\nthree\n")
    (source / "gone.txt").write_text("bye\nbye\n")
    (source / "moved.txt").write_text(MOVED)
    (source / "logo.bin").write_bytes(b"\x89PNG\x00\x00\x01")
    (source / ".gitignore").write_text("*.log\n")
    git("add", ".", cwd=source)
    git("commit", "-qm", "first", cwd=source)
    bare = root / "app.git"
    git("clone", "-q", "--bare", str(source), str(bare))
    return bare


@pytest.fixture(scope="module")
def bin_dir(tmp_path_factory) -> Path:
    """First on the sidecar's PATH: empty, until a test puts a fake ``code`` there."""
    return tmp_path_factory.mktemp("bin")


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-test-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()


@pytest.fixture(scope="module")
def side(tmp_path_factory, socket_name, bin_dir):
    tools = {str(Path(shutil.which(tool) or "/usr/bin/" + tool).parent) for tool in ("git", "tmux", "sh")}
    home = tmp_path_factory.mktemp("home")  # no rc file of the user's teaches a shell about `code`
    env = {
        "MISO_TMUX_SOCKET": socket_name,
        "PATH": os.pathsep.join([str(bin_dir), *sorted(tools)]),
        "HOME": str(home),
        **IDENTITY,
    }
    sidecar = Sidecar(tmp_path_factory.mktemp("schmux-git-data"), env=env)
    config = {
        "run_targets": [{"name": "shell", "type": "command", "command": "sh -c 'sleep 600'"}],
        "sessions": {"git_status_poll_interval_ms": 500},
    }
    assert sidecar.post("/api/config", json=config).status_code == 200
    yield sidecar
    sidecar.terminate()


def new_workspace(side, remote: Path, branch: str) -> tuple[str, Path]:
    answer = side.post("/api/spawn", json={"repo": str(remote), "branch": branch, "targets": {"shell": 1}})
    assert answer.status_code == 200 and "error" not in answer.json()[0], answer.text
    workspace_id = answer.json()[0]["workspace_id"]
    return workspace_id, Path(workspace(side, workspace_id)["path"])


def workspace(side, workspace_id: str) -> dict:
    return next(w for w in side.get("/api/sessions").json() if w["id"] == workspace_id)


def commit_all(path: Path, message: str) -> str:
    git("add", "-A", cwd=path)
    git("commit", "-qm", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path).strip()


def wait_ahead(side, workspace_id: str, ahead: int) -> None:
    """Until the dashboard's status shows the commits (git-amend and git-uncommit read it)."""
    wait_until(lambda: workspace(side, workspace_id)["git_ahead"] == ahead, timeout=30)


def plain(response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == text + "\n"


# --- the diff page --------------------------------------------------------------------------


def test_diff_reports_every_kind_of_change(side, remote):
    workspace_id, path = new_workspace(side, remote, "diff-kinds")
    assert side.get(f"/api/diff/{workspace_id}").json()["files"] == []

    (path / "notes.txt").write_text("one\nTWO\nthree\nfour\n")
    (path / "gone.txt").unlink()
    git("mv", "moved.txt", "renamed.txt", cwd=path)
    (path / "logo.bin").write_bytes(b"\x89PNG\x00\x00\x02\x03")
    (path / "added.txt").write_text("fresh\n")
    git("add", "added.txt", cwd=path)
    (path / "new.txt").write_text("a\nb")
    (path / "blob.dat").write_bytes(b"\x00\xff\x00")
    (path / "debug.log").write_text("ignored\n")
    (path / "big.txt").write_text("x" * (1024 * 1024 + 10))
    os.symlink("/etc/passwd", path / "passwd-link")

    answer = side.get(f"/api/diff/{workspace_id}")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["workspace_id"], body["repo"], body["branch"]) == (workspace_id, str(remote), "diff-kinds")
    files = {item["new_path"]: item for item in body["files"]}
    assert files["notes.txt"] == {
        "new_path": "notes.txt",
        "old_content": "one\ntwo\nthree\n",
        "new_content": "one\nTWO\nthree\nfour\n",
        "status": "modified",
        "lines_added": 2,
        "lines_removed": 1,
        "is_binary": False,
    }
    # schmux's shape for a deleted text file: "modified", with only the old text.
    assert files["gone.txt"] == {
        "new_path": "gone.txt",
        "old_content": "bye\nbye\n",
        "status": "modified",
        "lines_added": 0,
        "lines_removed": 2,
        "is_binary": False,
    }
    assert files["renamed.txt"] == {
        "old_path": "moved.txt",
        "new_path": "renamed.txt",
        "old_content": MOVED,
        "new_content": MOVED,
        "status": "renamed",
        "lines_added": 0,
        "lines_removed": 0,
        "is_binary": False,
    }
    assert files["logo.bin"] == {
        "new_path": "logo.bin",
        "status": "modified",
        "lines_added": 0,
        "lines_removed": 0,
        "is_binary": True,
    }
    assert files["added.txt"] == {
        "new_path": "added.txt",
        "new_content": "fresh\n",
        "status": "added",
        "lines_added": 1,
        "lines_removed": 0,
        "is_binary": False,
    }
    assert files["new.txt"] == {
        "new_path": "new.txt",
        "new_content": "a\nb",
        "status": "untracked",
        "lines_added": 2,
        "lines_removed": 0,
        "is_binary": False,
    }
    assert files["blob.dat"] == {
        "new_path": "blob.dat",
        "status": "untracked",
        "lines_added": 0,
        "lines_removed": 0,
        "is_binary": True,
    }
    assert len(files["big.txt"]["new_content"]) == 1024 * 1024  # capped at 1 MiB
    assert files["passwd-link"]["new_content"] == "/etc/passwd"  # the link, never the file it names
    assert "moved.txt" not in files and "debug.log" not in files
    assert len(body["files"]) == 9


def test_diff_errors_are_plain_text(side):
    plain(side.get("/api/diff/nope-001"), 404, "workspace not found")
    plain(side.get("/api/diff/a/b"), 404, "workspace not found")
    plain(side.get("/api/diff/"), 400, "workspace ID is required")
    plain(side.post("/api/diff/nope-001"), 405, "Method not allowed")


# --- the graph ------------------------------------------------------------------------------


def test_git_graph_of_a_branch_with_main_moved_ahead(side, remote, tmp_path):
    workspace_id, path = new_workspace(side, remote, "graph-branch")
    fork = git("rev-parse", "HEAD", cwd=path).strip()
    (path / "a.txt").write_text("a\n")
    first = commit_all(path, "first on branch")
    (path / "b.txt").write_text("b\n")
    second = commit_all(path, "second | with a bar")
    other = tmp_path / "other"
    git("clone", "-q", str(remote), str(other))
    (other / "main.txt").write_text("main moves\n")
    main_head = commit_all(other, "main moves on")
    git("push", "-q", "origin", "main", cwd=other)
    git("fetch", "-q", "origin", cwd=path)

    answer = side.get(f"/api/workspaces/{workspace_id}/git-graph")
    assert answer.status_code == 200, answer.text
    graph = answer.json()
    assert graph["repo"] == str(remote) and graph["main_ahead_count"] == 1
    assert "dirty_state" not in graph
    nodes = graph["nodes"]
    assert [n["hash"] for n in nodes] == [second, first, fork]  # heads first; main's new commit only counted
    assert nodes[0]["is_head"] == ["graph-branch"] and nodes[0]["workspace_ids"] == [workspace_id]
    assert nodes[0]["message"] == "second | with a bar" and nodes[0]["author"] == "Test"
    assert nodes[0]["short_hash"] == second[:7] and nodes[0]["parents"] == [first]
    assert [n["branches"] for n in nodes] == [["graph-branch"], ["graph-branch"], ["main", "graph-branch"]]
    assert nodes[2]["is_head"] == [] and nodes[2]["parents"] == []
    assert graph["branches"] == {
        "graph-branch": {"head": second, "is_main": False, "workspace_ids": [workspace_id]},
        "main": {"head": main_head, "is_main": True, "workspace_ids": []},
    }

    assert [n["hash"] for n in side.get(f"/api/workspaces/{workspace_id}/git-graph?max_total=2").json()["nodes"]] == [
        second,
        first,
    ]
    assert len(side.get(f"/api/workspaces/{workspace_id}/git-graph?max_total=x&max_commits=-3").json()["nodes"]) == 3

    (path / "a.txt").write_text("a\nmore\nlines\n")
    (path / "c.txt").write_text("new\n")
    dirty = side.get(f"/api/workspaces/{workspace_id}/git-graph").json()
    assert dirty["dirty_state"] == {"files_changed": 2, "lines_added": 3, "lines_removed": 0}

    # A new workspace starts at main: no divergence, both branch names on its head.
    level_id, _level_path = new_workspace(side, remote, "graph-level")
    level = side.get(f"/api/workspaces/{level_id}/git-graph").json()
    assert level["main_ahead_count"] == 0
    assert [n["hash"] for n in level["nodes"]] == [main_head, fork]
    assert level["nodes"][0]["is_head"] == ["main", "graph-level"]
    assert level["branches"]["main"]["head"] == level["branches"]["graph-level"]["head"] == main_head


def test_git_graph_errors(side):
    missing = side.get("/api/workspaces/nope-001/git-graph")
    assert missing.status_code == 404 and missing.json() == {"error": "workspace not found: nope-001"}
    plain(side.post("/api/workspaces/nope-001/git-graph"), 405, "Method not allowed")


def test_graph_order_puts_heads_first_and_follows_one_branch_at_a_time():
    """ISL's order on a merge: each commit before its parents, a branch's commits together."""
    stamp = "2026-01-01T00:00:0{}+00:00"
    commits = [
        Commit("m", "m", "merge", "A", stamp.format(5), ("b2", "c1")),
        Commit("c1", "c1", "side", "A", stamp.format(3), ("root",)),
        Commit("b2", "b2", "b2", "A", stamp.format(4), ("b1",)),
        Commit("b1", "b1", "b1", "A", stamp.format(2), ("root",)),
        Commit("root", "root", "root", "A", stamp.format(1), ()),
    ]
    graph = build_graph(
        GraphInput(
            nodes=commits,
            local_branch="feature",
            default_branch="main",
            local_head="m",
            origin_head="root",
            fork_point="root",
            repo="r",
            max_total=10,
            main_ahead_count=0,
            branch_workspaces={"feature": ["r-001"]},
        )
    )
    assert [n["hash"] for n in graph["nodes"]] == ["m", "c1", "b2", "b1", "root"]
    assert graph["nodes"][0]["workspace_ids"] == ["r-001"]
    assert graph["nodes"][-1]["branches"] == ["main", "feature"] and graph["nodes"][-1]["is_head"] == ["main"]
    assert list(graph["branches"]) == ["feature", "main"]


def test_graph_query_rules():
    assert graph_limits({}) == (200, 5)
    assert graph_limits({"max_total": "8", "main_context": "7"}) == (8, 7)
    assert graph_limits({"max_commits": "30", "context": "2"}) == (30, 2)
    assert graph_limits({"max_total": "9", "max_commits": "30"}) == (9, 5)
    assert graph_limits({"max_total": "0", "main_context": "-1"}) == (200, 5)
    assert graph_limits({"max_total": " 7", "main_context": "1_0"}) == (200, 5)
    assert graph_limits({"max_total": "+12"}) == (12, 5)
    assert graph_limits({"max_total": str(10**30)}) == (200, 5)
    assert graph_limits({"max_total": "99999999"}) == (10_000, 5)


# --- changes --------------------------------------------------------------------------------


def test_stage_amend_and_uncommit(side, remote):
    workspace_id, path = new_workspace(side, remote, "changes")
    base = git("rev-parse", "HEAD", cwd=path).strip()
    (path / "notes.txt").write_text("one\ntwo\nthree\nfour\n")
    (path / "extra.txt").write_text("x\n")
    url = f"/api/workspaces/{workspace_id}"

    staged = side.post(f"{url}/git-commit-stage", json={"files": ["notes.txt", "extra.txt"]})
    assert staged.status_code == 200 and staged.json() == {"success": True, "message": "Files staged"}
    assert sorted(git("diff", "--cached", "--name-only", cwd=path).split()) == ["extra.txt", "notes.txt"]
    assert side.post(f"{url}/git-commit-stage", json={"files": []}).json() == {
        "success": True,
        "message": "Files staged",
    }
    failed = side.post(f"{url}/git-commit-stage", json={"files": ["no-such-file.txt"]})
    assert failed.status_code == 500 and failed.json()["error"].startswith("git add failed: ")
    assert "no-such-file.txt" in failed.json()["error"]

    no_commits = side.post(f"{url}/git-amend", json={"files": ["notes.txt"]})
    assert no_commits.status_code == 400 and no_commits.json() == {"error": "No commits to amend"}
    nothing = side.post(f"{url}/git-uncommit", json={"hash": base})
    assert nothing.status_code == 400 and nothing.json() == {"error": "No commits to uncommit"}

    git("commit", "-qm", "agent work", cwd=path)  # the commit session's commit
    wait_ahead(side, workspace_id, 1)
    (path / "later.txt").write_text("later\n")
    amended = side.post(f"{url}/git-amend", json={"files": ["later.txt"]})
    assert amended.status_code == 200 and amended.json() == {"success": True, "message": "Commit amended"}
    assert git("log", "-1", "--format=%s", cwd=path).strip() == "agent work"
    assert sorted(git("show", "--name-only", "--format=", "HEAD", cwd=path).split()) == [
        "extra.txt",
        "later.txt",
        "notes.txt",
    ]
    assert git("rev-list", "--count", f"{base}..HEAD", cwd=path).strip() == "1"

    head = git("rev-parse", "HEAD", cwd=path).strip()
    for stale in ("0" * 40, head[:7], head.upper()):
        moved = side.post(f"{url}/git-uncommit", json={"hash": stale})
        assert moved.status_code == 409 and moved.json() == {"error": "HEAD has changed, please refresh and try again"}
    assert git("rev-parse", "HEAD", cwd=path).strip() == head
    undone = side.post(f"{url}/git-uncommit", json={"hash": head})
    assert undone.status_code == 200
    assert undone.json() == {"success": True, "message": "Commit undone, changes are now unstaged"}
    assert git("rev-parse", "HEAD", cwd=path).strip() == base
    assert git("diff", "--cached", "--name-only", cwd=path) == ""
    assert (path / "later.txt").read_text() == "later\n"
    assert workspace(side, workspace_id)["git_ahead"] == 0  # refreshed at once, not at the next poll


def test_discard_some_files_then_all(side, remote):
    workspace_id, path = new_workspace(side, remote, "discard")
    url = f"/api/workspaces/{workspace_id}/git-discard"
    (path / "notes.txt").write_text("changed\n")
    (path / "gone.txt").unlink()
    (path / "scratch.txt").write_text("scratch\n")
    (path / "staged.txt").write_text("staged\n")
    git("add", "staged.txt", cwd=path)
    (path / "keep.txt").write_text("keep\n")

    some = side.post(url, json={"files": ["notes.txt", "gone.txt", "scratch.txt", "staged.txt"]})
    assert some.status_code == 200 and some.json() == {"success": True, "message": "Changes discarded"}
    assert (path / "notes.txt").read_text() == "one\ntwo\nthree\n"
    assert (path / "gone.txt").read_text() == "bye\nbye\n"
    assert not (path / "scratch.txt").exists() and not (path / "staged.txt").exists()
    assert git("status", "--porcelain", cwd=path) == "?? keep.txt\n"

    (path / "notes.txt").write_text("changed again\n")
    (path / "README.md").write_text("staged edit\n")
    git("add", "README.md", cwd=path)
    (path / "staged-new.txt").write_text("new\n")
    git("add", "staged-new.txt", cwd=path)
    (path / "sub").mkdir()
    (path / "sub" / "file.txt").write_text("nested\n")
    (path / "debug.log").write_text("ignored files stay\n")
    everything = side.post(url, content=b"", headers=side.auth)  # no body: all (the dashboard sends {})
    assert everything.status_code == 200 and everything.json() == {"success": True, "message": "Changes discarded"}
    assert git("status", "--porcelain", cwd=path) == ""
    assert (path / "README.md").read_text() == "hello\n" and (path / "debug.log").exists()

    (path / "notes.txt").write_text("once more\n")
    assert side.post(url, json={}).status_code == 200
    assert git("status", "--porcelain", cwd=path) == ""


def test_a_busy_workspace_answers_its_diff_with_an_empty_body(side, remote, tmp_path):
    """While a change holds the workspace (here an amend whose commit hook waits), the diff is an
    empty 200, as schmux answers a locked workspace; the change then finishes."""
    workspace_id, path = new_workspace(side, remote, "busy")
    (path / "notes.txt").write_text("committed\n")
    commit_all(path, "ahead")
    wait_ahead(side, workspace_id, 1)
    started, release = tmp_path / "started", tmp_path / "release"
    hooks = Path(git("rev-parse", "--path-format=absolute", "--git-common-dir", cwd=path).strip()) / "hooks"
    hooks.mkdir(exist_ok=True)
    hook = hooks / "pre-commit"
    hook.write_text(
        f'#!/bin/sh\n[ "$(pwd -P)" = "{path.resolve()}" ] || exit 0\n'
        f'touch "{started}"\nwhile [ ! -e "{release}" ]; do sleep 0.05; done\n'
    )
    hook.chmod(0o755)
    (path / "later.txt").write_text("later\n")
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.update(
            answer=side.post(f"/api/workspaces/{workspace_id}/git-amend", json={"files": ["later.txt"]})
        )
    )
    worker.start()
    try:
        wait_until(started.exists, timeout=30)
        busy = side.get(f"/api/diff/{workspace_id}")
        assert busy.status_code == 200 and busy.content == b""
    finally:
        release.touch()
        worker.join(60)
        hook.unlink()
    assert result["answer"].json() == {"success": True, "message": "Commit amended"}
    assert side.get(f"/api/diff/{workspace_id}").json()["files"] == []


def test_paths_outside_the_workspace_are_refused(side, remote, tmp_path):
    workspace_id, path = new_workspace(side, remote, "outside")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside, path / "escape")
    (path / "notes.txt").write_text("edited\n")
    url = f"/api/workspaces/{workspace_id}"
    bad_paths = ["../x", "/etc/passwd", "escape/secret.txt", ".", "", "a/../..", "..hidden", "tab\there"]
    for bad in bad_paths:
        for suffix in ("git-commit-stage", "git-discard"):
            answer = side.post(f"{url}/{suffix}", json={"files": ["notes.txt", bad]})
            assert answer.status_code == 400, (suffix, bad, answer.text)
            assert answer.json() == {"error": f"invalid file path: {json.dumps(bad)}"}
    assert git("diff", "--cached", "--name-only", cwd=path) == ""  # nothing half done
    assert (path / "notes.txt").read_text() == "edited\n" and (outside / "secret.txt").exists()

    commit_all(path, "one ahead")
    wait_ahead(side, workspace_id, 1)
    for bad in bad_paths[:3]:
        refused = side.post(f"{url}/git-amend", json={"files": [bad]})
        assert refused.status_code == 400 and refused.json() == {"error": f"invalid file path: {json.dumps(bad)}"}
    assert git("rev-list", "--count", "origin/main..HEAD", cwd=path).strip() == "1"


def test_bad_bodies_and_unknown_workspaces(side, remote):
    workspace_id, path = new_workspace(side, remote, "bad-bodies")
    (path / "notes.txt").write_text("edited\n")
    commit_all(path, "one ahead")
    wait_ahead(side, workspace_id, 1)
    (path / "notes.txt").write_text("edited again\n")
    url = f"/api/workspaces/{workspace_id}"
    invalid = {"error": "invalid request body"}

    def post(suffix: str, raw: bytes):
        return side.http.post(f"{url}/{suffix}", content=raw, headers={**side.auth, "Content-Type": "application/json"})

    for suffix in ("git-commit-stage", "git-amend", "git-discard", "git-uncommit"):
        for raw in (b"{not json", b"[1, 2]", b'"text"', b"[]"):
            answer = post(suffix, raw)
            assert answer.status_code == 400 and answer.json() == invalid, (suffix, raw, answer.text)
    for suffix in ("git-commit-stage", "git-amend"):
        for raw in (b"", b'{"files": "notes.txt"}', b'{"files": [1]}', b'{"files": [["a"]]}'):
            answer = post(suffix, raw)
            assert answer.status_code == 400 and answer.json() == invalid, (suffix, raw, answer.text)
    for raw in (b"", b'{"hash": 5}'):
        assert post("git-uncommit", raw).json() == invalid
    for raw in (b"{}", b'{"hash": ""}', b"null"):
        answer = post("git-uncommit", raw)
        assert answer.status_code == 400 and answer.json() == {"error": "hash is required"}
    for raw in (b'{"files": []}', b"{}", b'{"files": null}'):
        answer = post("git-amend", raw)
        assert answer.status_code == 400 and answer.json() == {"error": "at least one file is required"}
    assert (path / "notes.txt").read_text() == "edited again\n"  # the bad discards discarded nothing
    # Go's decoder: keys match case-insensitively, the first value counts, unknown keys are ignored.
    assert post("git-commit-stage", b'{"FILES": ["notes.txt"], "other": 1} trailing').status_code == 200
    assert git("diff", "--cached", "--name-only", cwd=path) == "notes.txt\n"

    for suffix in ("git-commit-stage", "git-amend", "git-discard", "git-uncommit"):
        missing = side.post(f"/api/workspaces/nope-001/{suffix}", json={"files": ["a"], "hash": "b"})
        assert missing.status_code == 404 and missing.json() == {"error": "workspace not found"}
        plain(side.get(f"{url}/{suffix}"), 405, "Method not allowed")
    for route in ("diff-external", "open-vscode"):
        missing = side.post(f"/api/{route}/nope-001", json={"command": "true"})
        assert missing.status_code == 404 and missing.json() == {
            "success": False,
            "message": "workspace nope-001 not found",
        }
        plain(side.get(f"/api/{route}/{workspace_id}"), 405, "Method not allowed")
        plain(side.post(f"/api/{route}/"), 400, "workspace ID is required")
    malformed = side.http.post(
        f"/api/diff-external/{workspace_id}",
        content=b"{oops",
        headers={**side.auth, "Content-Type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["success"] is False and malformed.json()["message"].startswith("invalid request: ")


def test_body_decoding_follows_go():
    assert decode_body("", {"files": list}, allow_empty=True) == {}
    with pytest.raises(BodyError):
        decode_body("  \n", {"files": list}, allow_empty=False)
    assert decode_body("null", {"files": list}, allow_empty=False) == {}
    assert decode_body('{"files": ["a", null]}', {"files": list}, allow_empty=False) == {"files": ["a", ""]}
    assert decode_body('{"Files": ["a"], "files": ["b"]}', {"files": list}, allow_empty=False) == {"files": ["b"]}
    assert decode_body('{"hash": "x"}{"hash": "y"}', {"hash": str}, allow_empty=False) == {"hash": "x"}
    assert decode_body("{}", {"files": list}, allow_empty=False) == {}
    for raw in ('{"files": {}}', "[]", "{", '{"files": [true]}', "7"):
        with pytest.raises(BodyError):
            decode_body(raw, {"files": list}, allow_empty=False)
    with pytest.raises(BodyError):
        decode_body('{"hash": "' + "x" * (1 << 20) + '"}', {"hash": str}, allow_empty=False)


def test_path_rules(tmp_path):
    (tmp_path / "dir").mkdir()
    os.symlink("/etc", tmp_path / "etc-link")
    os.symlink(tmp_path / "dir", tmp_path / "inner-link")
    assert invalid_path(tmp_path, ["a.txt", "dir/b.txt", "./c", "dir/../d", "inner-link/x", "etc-link"]) is None
    assert invalid_path(tmp_path, ["etc-link/passwd"]) == 'invalid file path: "etc-link/passwd"'
    assert invalid_path(tmp_path, ['quote"and\\slash/..']) == 'invalid file path: "quote\\"and\\\\slash/.."'
    assert invalid_path(tmp_path, ["..x"]) == 'invalid file path: "..x"'


# --- tools: the external diff and VS Code ---------------------------------------------------


def test_diff_external_runs_the_command_on_head_copies(side, remote, tmp_path):
    workspace_id, path = new_workspace(side, remote, "external")
    url = f"/api/diff-external/{workspace_id}"
    out = tmp_path / "tool-out"
    out.mkdir()
    command = (
        'name=$(basename "$MERGED"); cp "$LOCAL" ' + f'"{out}/$name.local"; '
        'printf "%s\\n%s\\n%s\\n%s\\n" "$LOCAL" "$REMOTE" "$MERGED" "$BASE" > ' + f'"{out}/$name.env"; '
        'echo "{old_file}|{new_file}|{file}" > ' + f'"{out}/$name.tmp" && mv "{out}/$name.tmp" "{out}/$name.done"'
    )
    clean = side.post(url, json={"command": command})
    assert clean.status_code == 200 and clean.json() == {"success": False, "message": "No changes to diff"}
    nothing = side.post(url, json={})
    assert nothing.status_code == 400 and nothing.json() == {"success": False, "message": "No diff command specified"}

    (path / "added.txt").write_text("new\n")
    git("add", "added.txt", cwd=path)
    only_added = side.post(url, json={"command": command})
    assert only_added.json() == {"success": False, "message": "No modified or deleted files to diff"}
    assert side.post(url, json={"command": "   "}).json() == {"success": False, "message": "Invalid command"}

    (path / "notes.txt").write_text("one\n")  # only lines removed
    (path / "gone.txt").unlink()
    opened = side.post(url, json={"command": command})
    assert opened.status_code == 200
    assert opened.json() == {"success": True, "message": "Opened 2 files in external diff tool"}
    wait_until(lambda: (out / "notes.txt.done").exists() and (out / "gone.txt.done").exists())
    local, remote_path, merged, base = (out / "notes.txt.env").read_text().splitlines()
    assert (out / "notes.txt.local").read_text() == "one\ntwo\nthree\n"
    assert Path(local).name == "notes.txt" and f"miso-difftool-{workspace_id}-" in local
    assert remote_path == merged == base == str(path / "notes.txt")
    assert (out / "notes.txt.done").read_text() == f"{local}|{path / 'notes.txt'}|{path / 'notes.txt'}\n"
    gone_local, gone_remote, gone_merged, _ = (out / "gone.txt.env").read_text().split("\n")[:4]
    assert (out / "gone.txt.local").read_text() == "bye\nbye\n"
    assert gone_remote == "" and gone_merged == str(path / "gone.txt")
    assert (out / "gone.txt.done").read_text() == f"{gone_local}||{path / 'gone.txt'}\n"

    # A configured tool by name, and the configured cleanup delay.
    config = {
        "external_diff_commands": [{"name": "recorder", "command": command.replace(str(out), str(out / "named"))}],
        "external_diff_cleanup_after_ms": 1500,
    }
    (out / "named").mkdir()
    assert side.post("/api/config", json=config).status_code == 200, "the config takes external_diff_commands"
    for body in ({"command": "recorder"}, {}):
        shutil.rmtree(out / "named")
        (out / "named").mkdir()
        assert side.post(url, json=body).json()["success"] is True
        wait_until(lambda: all((out / "named" / f"{name}.done").exists() for name in ("notes.txt", "gone.txt")))
    copy = Path((out / "named" / "notes.txt.env").read_text().splitlines()[0])
    wait_until(lambda: not copy.parent.exists(), timeout=20)  # the HEAD copies are removed after the delay


def test_external_diff_runner_sweeps_old_folders(tmp_path):
    old = tmp_path / "miso-difftool-app-001-old"
    young = tmp_path / "miso-difftool-app-001-young"
    for folder in (old, young):
        folder.mkdir()
        (folder / "f.txt").write_text("x")
    os.utime(old, (1, 1))
    ExternalDiffRunner(tmp_path).sweep(cleanup_after_s=3600)
    wait_until(lambda: not old.exists())
    assert young.exists()
    assert ExternalDiffRunner(tmp_path).open("app-001", tmp_path, "true", 1, Deadline(5)) == {
        "success": False,
        "message": "No changes to diff",
    }


def test_open_vscode(side, remote, bin_dir, tmp_path):
    workspace_id, path = new_workspace(side, remote, "vscode")
    url = f"/api/open-vscode/{workspace_id}"
    missing = side.post(url)
    assert missing.status_code == 404 and missing.json() == {"success": False, "message": VSCODE_MISSING}

    record = tmp_path / "code-args"
    code = bin_dir / "code"
    code.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" > "{record}.tmp" && mv "{record}.tmp" "{record}"\n')
    code.chmod(code.stat().st_mode | stat.S_IXUSR)
    try:
        opened = side.post(url)
        assert opened.status_code == 200
        assert opened.json() == {"success": True, "message": "You can now switch to VS Code."}
        assert wait_until(lambda: record.exists() and record.read_text()) == f"-n {path}\n"

        gone_id, gone_path = new_workspace(side, remote, "vscode-gone")
        shutil.rmtree(gone_path)
        for route in ("open-vscode", "diff-external"):
            answer = side.post(f"/api/{route}/{gone_id}", json={"command": "true"})
            assert answer.status_code == 404
            assert answer.json() == {"success": False, "message": "workspace directory does not exist"}
    finally:
        code.unlink()


def test_numstat_parsing():
    text = "1\t2\tplain.txt\0-\t-\timg.png\x000\t0\t\0old name.txt\0new\tname.txt\0"
    entries = parse_numstat_z(text)
    assert [(e.path, e.old_path, e.binary) for e in entries] == [
        ("plain.txt", None, False),
        ("img.png", None, True),
        ("new\tname.txt", "old name.txt", False),
    ]

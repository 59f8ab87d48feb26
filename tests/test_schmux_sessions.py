"""schmux spawn, sessions, workspaces and their dispose rules: real git, real tmux, real worker."""

from __future__ import annotations

import shlex
import subprocess
import uuid
from pathlib import Path

import pytest

from miso_runtime.agents.tmux_sessions import TmuxSessions
from tests.eeg import wait_until
from tests.gitrepo import bare_remote, git
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    """A bare repository with one commit on ``main``: the "origin" of every workspace."""
    return bare_remote(tmp_path_factory.mktemp("remote"), "app")


@pytest.fixture(scope="module")
def agent_script(tmp_path_factory) -> Path:
    """A promptable target: prints its prompt and the session's ids, then waits like an agent."""
    script = tmp_path_factory.mktemp("bin") / "agent.sh"
    script.write_text('#!/bin/sh\necho "PROMPT=$1 SESSION=$MISO_SESSION_ID WORKSPACE=$MISO_WORKSPACE_ID"\nsleep 600\n')
    return script


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-test-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()  # and its socket file, which tmux 3.3 leaves behind


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("schmux-data")


def start(data_dir: Path, socket_name: str) -> Sidecar:
    return Sidecar(data_dir, env={"MISO_TMUX_SOCKET": socket_name})


@pytest.fixture(scope="module")
def side(data_dir, socket_name, agent_script):
    sidecar = start(data_dir, socket_name)
    targets = [
        {"name": "shell", "type": "command", "command": "sh -c 'echo ready; sleep 600'"},
        {"name": "agent", "type": "promptable", "command": f"sh {shlex.quote(str(agent_script))}"},
    ]
    assert sidecar.post("/api/config", json={"run_targets": targets}).status_code == 200
    yield sidecar
    sidecar.terminate()


def pane_text(socket_name: str, session_id: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket_name, "capture-pane", "-p", "-t", f"={session_id}:"], capture_output=True, text=True
    ).stdout


def tmux_sessions(socket_name: str) -> set[str]:
    listed = subprocess.run(
        ["tmux", "-L", socket_name, "list-sessions", "-F", "#{session_name}"], capture_output=True, text=True
    )
    return set(listed.stdout.split())


def workspace(side, workspace_id: str) -> dict:
    return next(w for w in side.get("/api/sessions").json() if w["id"] == workspace_id)


def test_spawn_a_new_workspace_with_prompted_and_command_targets(side, remote, socket_name, data_dir):
    answer = side.post(
        "/api/spawn",
        json={
            "repo": str(remote),
            "branch": "feature-a",
            "targets": {"agent": 2},
            "prompt": "fix the bug",
            "nickname": "fixer",
        },
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()
    assert [r["nickname"] for r in results] == ["fixer (1)", "fixer (2)"]
    assert {r["workspace_id"] for r in results} == {"app-001"} and all(r["prompt"] == "fix the bug" for r in results)
    for result in results:
        text = wait_until(
            lambda r=result: (
                "PROMPT=" in pane_text(socket_name, r["session_id"]) and pane_text(socket_name, r["session_id"])
            )
        )
        assert f"PROMPT=fix the bug SESSION={result['session_id']} WORKSPACE=app-001" in text

    listed = workspace(side, "app-001")
    assert listed["branch"] == "feature-a" and listed["session_count"] == 2
    assert listed["path"] == str(data_dir / "workspaces" / "app-001")
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=Path(listed["path"])).strip() == "feature-a"
    session = listed["sessions"][0]
    assert session["running"] is True and session["target"] == "agent"
    assert session["attach_cmd"] == f"tmux -L {socket_name} attach -t {session['id']}"
    assert set(listed) >= {"git_ahead", "git_behind", "git_lines_added", "git_lines_removed", "git_files_changed"}
    # What schmux's dashboard reads beside the counts (a local remote has no branch page: no branch_url).
    listed = wait_until(lambda: (w := workspace(side, "app-001")).get("default_branch") and w)  # from the git status
    assert listed["default_branch"] == "main" and "branch_url" not in listed and "git_branch_url" not in listed
    assert listed["commits_synced_with_remote"] is False  # feature-a is not on origin
    assert "nickname" not in session or session["nickname"]

    # A command target runs once, whatever the count, in the existing workspace, without git:
    # it works with the remote gone.
    moved = remote.with_name("moved-away.git")
    remote.rename(moved)
    try:
        again = side.post("/api/spawn", json={"workspace_id": "app-001", "targets": {"shell": 3}})
    finally:
        moved.rename(remote)
    assert again.status_code == 200 and len(again.json()) == 1 and "error" not in again.json()[0]
    assert workspace(side, "app-001")["session_count"] == 3


@pytest.mark.parametrize(
    "body, says",
    [
        ({"branch": "b", "targets": {"shell": 1}}, "repo and branch are required"),
        ({"repo": "R", "branch": "b", "targets": {"nope": 1}}, "unknown target: nope"),
        ({"repo": "R", "branch": "b", "targets": {"agent": 1}}, "needs a prompt"),
        ({"repo": "R", "branch": "b", "targets": {"shell": 1}, "prompt": "x"}, "takes no prompt"),
        ({"repo": "R", "branch": "bad..name", "targets": {"shell": 1}}, "bad..name"),
        ({"repo": "/no/such/repo.git", "branch": "b", "targets": {"shell": 1}}, ""),
        ({"workspace_id": "nope-001", "targets": {"shell": 1}}, "nope-001"),
    ],
)
def test_bad_spawns_are_4xx_and_create_nothing(side, remote, socket_name, data_dir, body, says):
    body = {**body, "repo": str(remote)} if body.get("repo") == "R" else body
    before_sessions = tmux_sessions(socket_name)
    before_dirs = sorted(p.name for p in (data_dir / "workspaces").iterdir())
    answer = side.post("/api/spawn", json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert set(answer.json()) == {"error"} and says in answer.json()["error"]
    assert tmux_sessions(socket_name) == before_sessions
    assert sorted(p.name for p in (data_dir / "workspaces").iterdir()) == before_dirs


def test_branch_conflict_in_worktree_mode(side, remote):
    check = side.post("/api/check-branch-conflict", json={"repo": str(remote), "branch": "feature-a"})
    assert check.json() == {"conflict": True, "workspace_id": "app-001"}
    assert side.post("/api/check-branch-conflict", json={"repo": str(remote), "branch": "free"}).json() == {
        "conflict": False
    }
    taken = side.post("/api/spawn", json={"repo": str(remote), "branch": "feature-a", "targets": {"shell": 1}})
    assert taken.status_code == 409
    assert taken.json()["error"] == 'branch_conflict: branch "feature-a" is already in use by workspace "app-001"'


def test_nicknames_rename_and_conflict(side):
    sessions = workspace(side, "app-001")["sessions"]
    first, second = sessions[0]["id"], sessions[1]["id"]
    assert side.http.put(f"/api/sessions-nickname/{first}", json={"nickname": "lead"}, headers=side.auth).json() == {
        "status": "ok"
    }
    taken = side.http.patch(f"/api/sessions-nickname/{second}", json={"nickname": "lead"}, headers=side.auth)
    assert taken.status_code == 409 and taken.json() == {"error": "nickname already in use"}
    assert next(s for s in workspace(side, "app-001")["sessions"] if s["id"] == first)["nickname"] == "lead"
    missing = side.http.put("/api/sessions-nickname/nope", json={"nickname": "x"}, headers=side.auth)
    assert missing.status_code == 404


def test_git_status_fields_follow_work_in_the_workspace(side):
    path = Path(workspace(side, "app-001")["path"])
    (path / "new.txt").write_text("one\ntwo\nthree\n")
    git("add", "new.txt", cwd=path)
    git("commit", "-qm", "three lines", cwd=path)
    status = wait_until(lambda: (w := workspace(side, "app-001"))["git_ahead"] == 1 and w, timeout=30)
    assert status["git_lines_added"] == 3 and status["git_files_changed"] == 1 and status["git_behind"] == 0


def test_dispose_rules(side, remote, socket_name):
    path = Path(workspace(side, "app-001")["path"])
    busy = side.post("/api/workspaces/app-001/dispose")
    assert busy.status_code == 400 and "active session" in busy.json()["error"]

    one = workspace(side, "app-001")["sessions"][0]["id"]
    assert side.post(f"/api/sessions/{one}/dispose").json() == {"status": "ok"}
    assert one not in tmux_sessions(socket_name)
    assert side.post(f"/api/sessions/{one}/dispose").status_code == 404

    (path / "scratch.txt").write_text("unsaved\n")
    dirty = side.post("/api/workspaces/app-001/dispose-all")
    assert dirty.status_code == 400 and "uncommitted" in dirty.json()["error"]
    assert workspace(side, "app-001")["session_count"] == 2  # nothing was ended
    (path / "scratch.txt").unlink()
    done = side.post("/api/workspaces/app-001/dispose-all")
    assert done.status_code == 200 and done.json() == {"status": "ok", "sessions_disposed": 2}
    assert not path.exists() and all(w["id"] != "app-001" for w in side.get("/api/sessions").json())
    assert side.post("/api/workspaces/app-001/dispose").status_code == 404


def test_scan_reconciles_with_the_disk(side, remote, data_dir):
    created = side.post("/api/spawn", json={"repo": str(remote), "branch": "scan-me", "targets": {"shell": 1}}).json()
    workspace_id = created[0]["workspace_id"]
    side.post(f"/api/sessions/{created[0]['session_id']}/dispose")
    subprocess.run(["rm", "-rf", str(data_dir / "workspaces" / workspace_id)], check=True)
    scanned = side.post("/api/workspaces/scan").json()
    # Lists of workspaces, as schmux's dashboard reads them ("no changes" only when all three are empty).
    assert scanned["added"] == [] and scanned["updated"] == []
    assert [(w["id"], w["branch"]) for w in scanned["removed"]] == [(workspace_id, "scan-me")]
    assert all(w["id"] != workspace_id for w in side.get("/api/sessions").json())


def test_sessions_survive_a_restart_and_are_adopted(data_dir, socket_name, side, remote):
    created = side.post(
        "/api/spawn",
        json={"repo": str(remote), "branch": "restart-me", "targets": {"agent": 1}, "prompt": "keep going"},
    ).json()
    side.http.put(
        f"/api/sessions-nickname/{created[0]['session_id']}", json={"nickname": "survivor"}, headers=side.auth
    )
    before = workspace(side, created[0]["workspace_id"])
    side.terminate()  # the last test of the module: the fixture's teardown finds it stopped
    assert {s["id"] for s in before["sessions"]} <= tmux_sessions(socket_name)  # tmux kept them
    again = start(data_dir, socket_name)
    try:
        after = next(w for w in again.get("/api/sessions").json() if w["id"] == before["id"])
        assert [(s["id"], s["nickname"], s["running"]) for s in after["sessions"]] == [
            (s["id"], "survivor", True) for s in before["sessions"]
        ]
        assert after["branch"] == "restart-me"
    finally:
        again.terminate()

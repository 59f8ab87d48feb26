"""schmux's sync routes: push to branch, linear sync from and to main, conflict resolution (its
202, its frames on /ws/dashboard, its state across a restart) and overlays.

Real git (a bare "origin" and a second clone that moves main ahead), real tmux, real worker; the
conflict resolver is a user-defined promptable run target: a shell script that edits the files.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from miso_runtime.agents.tmux_sessions import TmuxSessions
from tests.eeg import wait_until
from tests.gitrepo import bare_remote, git
from tests.sidecar import Sidecar
from tests.ws_client import JsonSocket

#: Commits the worker makes (WIP commits, rebases) need an identity on any machine.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Sync Test",
    "GIT_AUTHOR_EMAIL": "sync@example.com",
    "GIT_COMMITTER_NAME": "Sync Test",
    "GIT_COMMITTER_EMAIL": "sync@example.com",
}
RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
STATE = "linear_sync_resolve_conflict"

RESOLVER = """#!/bin/sh
# A promptable target standing in for a model: keeps the prompt, resolves FILE by keeping both
# sides (drops the marker lines), answers what it did.
cat > "$2"
grep -v -e '^<<<<<<<' -e '^=======' -e '^>>>>>>>' "$1" > "$1.tmp" && mv "$1.tmp" "$1"
printf 'thinking...\\n{"all_resolved": true, "confidence": "high", "summary": "kept both lines",'
printf ' "files": {"%s": {"action": "modified", "description": "both sides kept"}}}\\n' "$1"
"""
SLOW_RESOLVER = "#!/bin/sh\ncat > /dev/null\nsleep 30\necho '{}'\n"


class Upstream:
    """Another clone of the remote: moves its branches ahead as a colleague would."""

    def __init__(self, remote: Path, path: Path) -> None:
        git("clone", "-q", str(remote), str(path))
        self.path = path

    def commit(self, files: dict[str, str], message: str, branch: str = "main") -> str:
        """Commit ``files`` on top of origin's ``branch`` (made when new) and push; the full hash."""
        git("fetch", "-q", "origin", cwd=self.path)
        exists = git("ls-remote", "--heads", "origin", branch, cwd=self.path).strip()
        git("checkout", "-q", "-B", branch, f"origin/{branch}" if exists else "origin/main", cwd=self.path)
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        git("add", "-A", cwd=self.path)
        git("commit", "-qm", message, cwd=self.path)
        git("push", "-q", "origin", f"HEAD:{branch}", cwd=self.path)
        return git("rev-parse", "HEAD", cwd=self.path).strip()


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("remote")
    bare = bare_remote(root, "app")
    Upstream(bare, root / "seed").commit({".gitignore": ".env\n*.local\nsecrets/\n"}, "ignore local files")
    return bare


@pytest.fixture(scope="module")
def upstream(remote, tmp_path_factory) -> Upstream:
    return Upstream(remote, tmp_path_factory.mktemp("upstream") / "clone")


@pytest.fixture(scope="module")
def scripts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bin")
    (folder / "resolve.sh").write_text(RESOLVER)
    (folder / "slow.sh").write_text(SLOW_RESOLVER)
    return folder


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-sync-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()


def start(data_dir: Path, socket_name: str) -> Sidecar:
    return Sidecar(data_dir, env={"MISO_TMUX_SOCKET": socket_name, **GIT_IDENTITY})


def targets(scripts: Path, prompt_file: Path) -> list[dict]:
    resolve = f"sh {shlex.quote(str(scripts / 'resolve.sh'))} {{file}} {shlex.quote(str(prompt_file))}"
    return [
        {"name": "shell", "type": "command", "command": "sh -c 'sleep 600'"},
        {"name": "resolver", "type": "promptable", "command": resolve},
        {"name": "slow", "type": "promptable", "command": f"sh {shlex.quote(str(scripts / 'slow.sh'))}"},
    ]


def configure(side: Sidecar, scripts: Path, prompt_file: Path, conflict_file: str, target: str) -> None:
    """Run targets, and the conflict resolver set to ``target`` (``""``: none) resolving ``conflict_file``."""
    run_targets = targets(scripts, prompt_file)
    run_targets[1]["command"] = run_targets[1]["command"].replace("{file}", shlex.quote(conflict_file))
    answer = side.post("/api/config", json={"run_targets": run_targets, "conflict_resolve": {"target": target}})
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sync-data")


@pytest.fixture(scope="module")
def side(data_dir, socket_name, scripts, tmp_path_factory):
    sidecar = start(data_dir, socket_name)
    configure(sidecar, scripts, tmp_path_factory.mktemp("prompts") / "unused.txt", "none.txt", "")
    yield sidecar
    sidecar.terminate()


def workspace(side: Sidecar, workspace_id: str) -> dict:
    return next(w for w in side.get("/api/sessions").json() if w["id"] == workspace_id)


def new_workspace(side: Sidecar, remote: Path, branch: str) -> tuple[str, Path]:
    answer = side.post("/api/spawn", json={"repo": str(remote), "branch": branch, "targets": {"shell": 1}})
    assert answer.status_code == 200 and "error" not in answer.json()[0], answer.text
    workspace_id = answer.json()[0]["workspace_id"]
    return workspace_id, Path(workspace(side, workspace_id)["path"])


def commit(path: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (path / name).write_text(text)
    git("add", "-A", cwd=path)
    git("commit", "-qm", message, cwd=path)
    return git("rev-parse", "HEAD", cwd=path).strip()


def head(path: Path) -> str:
    return git("rev-parse", "HEAD", cwd=path).strip()


def status(path: Path) -> str:
    return git("status", "--porcelain", cwd=path)


def short(path: Path, commit_hash: str) -> str:
    return git("rev-parse", "--short", commit_hash, cwd=path).strip()


def is_ancestor(path: Path, older: str, newer: str = "HEAD") -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", older, newer], cwd=path).returncode == 0


def subjects(path: Path, count: int = 10) -> list[str]:
    return git("log", f"-{count}", "--format=%s", cwd=path).split("\n")[:-1]


def rebasing(path: Path) -> bool:
    return any(
        (path / git("rev-parse", "--git-path", name, cwd=path).strip()).exists()
        for name in ("rebase-merge", "rebase-apply")
    )


def dashboard(side: Sidecar) -> JsonSocket:
    return JsonSocket(side.port, f"/ws/dashboard?token={side.token}")


def final_state(socket: JsonSocket, workspace_id: str, timeout: float = 60.0) -> dict:
    def finished(messages):
        for message in reversed(messages):
            if message.get("type") == STATE and message["workspace_id"] == workspace_id:
                return message if message["status"] != "in_progress" else None
        return None

    return socket.wait_messages(finished, timeout=timeout)


def make_conflict(side, remote, upstream, branch: str, name: str) -> tuple[str, Path, str]:
    """A workspace whose commit and main's newest commit both change ``name``; synced into the conflict.

    Returns the workspace id, its path and main's conflicting commit (full hash).
    """
    upstream.commit({name: "base\n"}, f"add {name}")
    workspace_id, path = new_workspace(side, remote, branch)
    commit(path, {name: "base\nmine\n"}, f"local edit of {name}")
    theirs = upstream.commit({name: "base\ntheirs\n"}, f"upstream edit of {name}")
    (path / f"{branch}-notes.txt").write_text("not committed\n")
    answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main")
    assert answer.status_code == 200
    assert answer.json() == {"success": False, "conflicting_hash": short(path, theirs), "branch": "main"}
    return workspace_id, path, theirs


# --- sync from main -------------------------------------------------------------------------


def test_sync_from_main_when_behind(side, remote, upstream):
    workspace_id, path = new_workspace(side, remote, "from-main-clean")
    mine = commit(path, {"clean-local.txt": "mine\n"}, "local work")
    first = upstream.commit({"clean-1.txt": "one\n"}, "main one")
    second = upstream.commit({"clean-2.txt": "two\n"}, "main two")

    answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {"success": True, "success_count": 2, "branch": "main"}
    assert is_ancestor(path, first) and is_ancestor(path, second)
    assert subjects(path, 3) == ["local work", "main two", "main one"] and head(path) != mine
    assert status(path) == "" and not rebasing(path)
    # Nothing left to bring in: success, no count.
    again = side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main")
    assert again.json() == {"success": True, "branch": "main"}
    wait_until(lambda: workspace(side, workspace_id)["git_behind"] == 0, timeout=30)


def test_sync_from_main_keeps_uncommitted_work(side, remote, upstream):
    workspace_id, path = new_workspace(side, remote, "from-main-dirty")
    commit(path, {"dirty-local.txt": "one\n"}, "local work")
    (path / "dirty-local.txt").write_text("one\ntwo\n")  # unstaged edit
    (path / "dirty-new.txt").write_text("untracked\n")
    upstream.commit({"dirty-main.txt": "main\n"}, "main moves")

    answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main")
    assert answer.json() == {"success": True, "success_count": 1, "branch": "main"}
    assert subjects(path, 2) == ["local work", "main moves"]  # the WIP commit is gone again
    assert sorted(status(path).splitlines()) == [" M dirty-local.txt", "?? dirty-new.txt"]
    assert (path / "dirty-local.txt").read_text() == "one\ntwo\n" and (path / "dirty-main.txt").exists()


def test_sync_from_main_stops_at_a_conflict_and_changes_nothing(side, remote, upstream):
    upstream.commit({"conflict-a.txt": "base\n"}, "add conflict-a")
    workspace_id, path = new_workspace(side, remote, "from-main-conflict")
    commit(path, {"conflict-a.txt": "base\nmine\n"}, "local edit")
    theirs = upstream.commit({"conflict-a.txt": "base\ntheirs\n"}, "upstream edit")
    (path / "conflict-a.txt").write_text("base\nmine\nmore, not committed\n")
    (path / "scratch.txt").write_text("untracked\n")
    before_head, before_status = head(path), status(path)

    answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main")
    assert answer.status_code == 200
    assert answer.json() == {"success": False, "conflicting_hash": short(path, theirs), "branch": "main"}
    assert head(path) == before_head and status(path) == before_status and not rebasing(path)
    assert (path / "conflict-a.txt").read_text() == "base\nmine\nmore, not committed\n"
    listed = workspace(side, workspace_id)
    assert listed["conflict_on_branch"] == "from-main-conflict" == listed["branch"]
    keys = list(listed)
    assert keys.index("git_files_changed") < keys.index("conflict_on_branch") < keys.index("commits_synced_with_remote")


def test_a_refused_wip_commit_is_a_pre_commit_error(side, remote, upstream, data_dir):
    workspace_id, path = new_workspace(side, remote, "from-main-hook")
    (path / "hooked.txt").write_text("uncommitted\n")
    upstream.commit({"hook-main.txt": "x\n"}, "main moves for the hook test")
    hook = next((data_dir / "repos").glob("app-*.git")) / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\necho 'would reformat hooked.txt' >&2\nexit 1\n")
    hook.chmod(0o755)
    try:
        answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main")
    finally:
        hook.unlink()
    assert answer.status_code == 500
    body = answer.json()
    assert {k: body[k] for k in ("success", "message", "is_pre_commit_hook_error")} == {
        "success": False,
        "message": "Failed to sync from main",
        "is_pre_commit_hook_error": True,
    }
    assert "would reformat hooked.txt" in body["pre_commit_error_detail"]
    assert not rebasing(path) and (path / "hooked.txt").read_text() == "uncommitted\n"


def test_two_syncs_at_once_do_not_interleave(side, remote, upstream):
    workspace_id, path = new_workspace(side, remote, "from-main-twice")
    commit(path, {"twice-local.txt": "mine\n"}, "local work")
    (path / "twice-notes.txt").write_text("kept\n")
    for n in range(3):
        upstream.commit({f"twice-{n}.txt": f"{n}\n"}, f"main {n}")

    answers: list[dict] = []

    def sync() -> None:
        answers.append(side.post(f"/api/workspaces/{workspace_id}/linear-sync-from-main").json())

    threads = [threading.Thread(target=sync) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # One did the work, the other found nothing left to do: neither saw the other half-way.
    assert sorted(answers, key=lambda a: a.get("success_count", 0)) == [
        {"success": True, "branch": "main"},
        {"success": True, "success_count": 3, "branch": "main"},
    ]
    assert subjects(path, 4) == ["local work", "main 2", "main 1", "main 0"]
    assert status(path) == "?? twice-notes.txt\n" and not rebasing(path)


# --- sync to main and push to branch --------------------------------------------------------


def test_sync_to_main_when_ahead_then_behind(side, remote, upstream):
    workspace_id, path = new_workspace(side, remote, "to-main")
    mine = commit(path, {"to-main.txt": "shipped\n"}, "ship it")
    answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-to-main")
    assert answer.status_code == 200 and answer.json() == {"success": True, "success_count": 1, "branch": "main"}
    assert git("rev-parse", "main", cwd=remote).strip() == mine == head(path)

    upstream.commit({"to-main-later.txt": "later\n"}, "someone else pushed")
    behind = side.post(f"/api/workspaces/{workspace_id}/linear-sync-to-main")
    assert behind.status_code == 200 and behind.json() == {"success": False, "branch": "main"}
    assert git("rev-parse", "main", cwd=remote).strip() != mine


def test_sync_to_main_refuses_a_dirty_workspace(side, remote):
    workspace_id, path = new_workspace(side, remote, "to-main-dirty")
    mine = commit(path, {"to-main-dirty.txt": "x\n"}, "not yet")
    (path / "to-main-dirty.txt").write_text("edited\n")
    answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-to-main")
    assert answer.json() == {"success": False, "branch": "main"}
    assert git("rev-parse", "main", cwd=remote).strip() != mine


def test_push_to_branch(side, remote, upstream):
    workspace_id, path = new_workspace(side, remote, "push-me")
    mine = commit(path, {"push.txt": "one\n"}, "to push")
    answer = side.post(f"/api/workspaces/{workspace_id}/push-to-branch")
    assert answer.status_code == 200 and answer.json() == {"success": True, "branch": "push-me"}
    assert git("rev-parse", "refs/heads/push-me", cwd=remote).strip() == mine

    (path / "push.txt").write_text("dirty\n")
    assert side.post(f"/api/workspaces/{workspace_id}/push-to-branch").json() == {"success": False, "branch": "push-me"}
    git("checkout", "-q", "--", "push.txt", cwd=path)

    upstream.commit({"push-theirs.txt": "theirs\n"}, "someone pushed to push-me", branch="push-me")
    behind = side.post(f"/api/workspaces/{workspace_id}/push-to-branch")
    assert behind.json() == {"success": False, "branch": "push-me"}
    assert git("rev-parse", "refs/heads/push-me", cwd=remote).strip() != mine


# --- conflict resolution ----------------------------------------------------------------------


def test_resolve_conflict_with_a_resolver_target(side, remote, upstream, scripts, tmp_path):
    prompt_file = tmp_path / "prompt.txt"
    configure(side, scripts, prompt_file, "resolve-me.txt", "resolver")
    workspace_id, path, theirs = make_conflict(side, remote, upstream, "resolve-conflict", "resolve-me.txt")
    assert workspace(side, workspace_id)["conflict_on_branch"] == "resolve-conflict"
    socket = dashboard(side)
    try:
        socket.wait_messages(lambda m: any(x["type"] == "sessions" for x in m), timeout=30)
        answer = side.post(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict")
        assert answer.status_code == 202 and answer.json() == {"started": True, "workspace_id": workspace_id}
        state = final_state(socket, workspace_id)
        frames = socket.messages
    finally:
        socket.close()

    assert state["status"] == "done", state
    assert (
        state["hash"] == short(path, theirs)
        and state["message"] == f"Rebased {state['hash']} with 1 conflict(s) resolved"
    )
    assert RFC3339_Z.match(state["started_at"]) and RFC3339_Z.match(state["finished_at"])
    steps = [(s["action"], s["status"]) for s in state["steps"]]
    assert steps == [
        ("check_behind", "done"),
        ("wip_commit", "done"),
        ("rebase_start", "done"),
        ("conflict_detected", "done"),
        ("llm_call", "done"),
        ("rebase_continue", "done"),
        ("wip_unwind", "done"),
    ]
    assert state["steps"][1]["created"] is True and all(RFC3339_Z.match(s["at"]) for s in state["steps"])
    detected = state["steps"][3]
    assert (
        detected["files"] == ["resolve-me.txt"] and detected["local_commit_message"] == "local edit of resolve-me.txt"
    )
    assert state["resolutions"] == [
        {
            "local_commit": detected["local_commit"],
            "local_commit_message": "local edit of resolve-me.txt",
            "all_resolved": True,
            "confidence": "high",
            "summary": "kept both lines",
            "files": ["resolve-me.txt"],
        }
    ]
    # The frames: each conflict frame comes after a sessions frame (schmux's pair), in_progress first.
    kinds = [m["type"] for m in frames]
    assert kinds[0] == "sessions"
    ours = [m for m in frames if m["type"] == STATE and m["workspace_id"] == workspace_id]
    assert ours[0]["status"] == "in_progress" and ours[-1] == state
    for index, kind in enumerate(kinds):
        if kind == STATE:
            assert kinds[index - 1] in ("sessions", STATE)

    # The worktree: main's commit under the local one, both sides kept, the notes still uncommitted.
    assert (path / "resolve-me.txt").read_text() == "base\ntheirs\nmine\n"  # a rebase replays mine on theirs
    assert git("rev-parse", "HEAD~1", cwd=path).strip() == theirs
    assert subjects(path, 1) == ["local edit of resolve-me.txt"] and not rebasing(path)
    assert status(path) == "?? resolve-conflict-notes.txt\n"
    assert "resolve-me.txt" in prompt_file.read_text()
    assert "conflict_on_branch" not in workspace(side, workspace_id)

    # A second run finds nothing left to rebase; then the state is dismissed.
    again = side.post(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict")
    assert again.status_code == 202
    socket = dashboard(side)
    try:
        caught_up = final_state(socket, workspace_id)
    finally:
        socket.close()
    assert caught_up["status"] == "done" and caught_up["message"] == "Caught up to main" and "hash" not in caught_up
    dismissed = side.delete(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict-state")
    assert dismissed.status_code == 200 and dismissed.content == b""
    gone = side.delete(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict-state")
    assert gone.status_code == 404 and gone.json() == {"message": "no conflict resolution state found"}


def test_resolve_conflict_without_a_target_fails_and_restores(side, remote, upstream, scripts, tmp_path):
    configure(side, scripts, tmp_path / "prompt.txt", "unresolved.txt", "")
    workspace_id, path, theirs = make_conflict(side, remote, upstream, "no-resolver", "unresolved.txt")
    before_head, before_status = head(path), status(path)
    socket = dashboard(side)
    try:
        assert side.post(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict").status_code == 202
        state = final_state(socket, workspace_id)
    finally:
        socket.close()
    assert state["status"] == "failed"
    assert "conflict_resolve target not configured" in state["message"]
    llm = next(s for s in state["steps"] if s["action"] == "llm_call")
    assert llm["status"] == "failed" and "conflict_resolve target not configured" in llm["message"]
    assert state["steps"][-1]["action"] == "abort" and state["steps"][-1]["status"] == "failed"
    assert state["resolutions"][0]["summary"].startswith("LLM error: conflict_resolve target not configured")
    assert head(path) == before_head and status(path) == before_status and not rebasing(path)
    assert (path / "unresolved.txt").read_text() == "base\nmine\n"
    assert workspace(side, workspace_id)["conflict_on_branch"] == "no-resolver"


def test_resolve_conflict_on_an_up_to_date_workspace_and_unknown_ids(side, remote):
    workspace_id, _path = new_workspace(side, remote, "up-to-date")
    socket = dashboard(side)
    try:
        assert side.post(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict").status_code == 202
        state = final_state(socket, workspace_id)
    finally:
        socket.close()
    assert state["status"] == "done" and state["steps"] == [
        {"action": "check_behind", "status": "done", "message": "Caught up to main", "at": state["steps"][0]["at"]}
    ]
    missing = side.post("/api/workspaces/nope-001/linear-sync-resolve-conflict")
    assert missing.status_code == 404 and missing.json() == {
        "started": False,
        "message": "workspace nope-001 not found",
    }


# --- overlays -------------------------------------------------------------------------------


def test_overlays_list_and_refresh(side, remote, data_dir):
    assert side.post("/api/config", json={"repos": [{"name": "app", "url": str(remote)}]}).status_code == 200
    folder = data_dir / "overlays" / "app"
    listed = side.get("/api/overlays")
    assert listed.status_code == 200
    assert listed.json() == {"overlays": [{"repo_name": "app", "path": str(folder), "exists": False, "file_count": 0}]}

    (folder / "secrets").mkdir(parents=True)
    (folder / ".env").write_text("TOKEN=overlay\n")
    (folder / "secrets" / "key.local").write_text("key\n")
    (folder / "README.md").write_text("overlay must not replace a tracked file\n")
    (folder / "link.local").symlink_to(".env")
    assert side.get("/api/overlays").json()["overlays"][0] == {
        "repo_name": "app",
        "path": str(folder),
        "exists": True,
        "file_count": 4,
    }

    workspace_id, path = new_workspace(side, remote, "overlaid")
    for _ in range(2):  # a second refresh replaces what the first copied (the symlink too)
        answer = side.post(f"/api/workspaces/{workspace_id}/refresh-overlay")
        assert answer.status_code == 200 and answer.json() == {"status": "ok"}
    assert (path / ".env").read_text() == "TOKEN=overlay\n"
    assert (path / "secrets" / "key.local").read_text() == "key\n"
    assert (path / "link.local").is_symlink() and str((path / "link.local").readlink()) == ".env"
    assert (path / "README.md").read_text() == "hello\n"
    assert status(path) == ""  # everything copied is ignored by git

    missing = side.post("/api/workspaces/nope-001/refresh-overlay")
    assert missing.status_code == 400 and missing.json() == {"error": "workspace not found: nope-001"}
    assert side.post("/api/config", json={"repos": []}).status_code == 200
    unknown = side.post(f"/api/workspaces/{workspace_id}/refresh-overlay")
    repo = workspace(side, workspace_id)["repo"]
    assert unknown.status_code == 400 and unknown.json() == {"error": f"repo URL not found in config: {repo}"}


# --- unknown ids and wrong methods ----------------------------------------------------------


def test_unknown_workspaces_and_wrong_methods(side):
    not_found = {"success": False, "message": "workspace nope-001 not found", "is_pre_commit_hook_error": False}
    for suffix in ("linear-sync-from-main", "linear-sync-to-main"):
        answer = side.post(f"/api/workspaces/nope-001/{suffix}")
        assert answer.status_code == 404 and answer.json() == not_found
    push = side.post("/api/workspaces/nope-001/push-to-branch")
    assert push.status_code == 404 and push.json() == {"success": False, "message": "workspace nope-001 not found"}
    assert side.delete("/api/workspaces/nope-001/linear-sync-resolve-conflict-state").status_code == 404

    for method, suffix in (("GET", "linear-sync-from-main"), ("PUT", "push-to-branch"), ("GET", "refresh-overlay")):
        wrong = side.http.request(method, f"/api/workspaces/nope-001/{suffix}", headers=side.auth)
        assert wrong.status_code == 405 and wrong.text == "Method not allowed\n"
        assert wrong.headers["content-type"].startswith("text/plain")
    for method, suffix in (("DELETE", "linear-sync-to-main"), ("POST", "linear-sync-resolve-conflict-state")):
        wrong = side.http.request(method, f"/api/workspaces/nope-001/{suffix}", headers=side.auth)
        assert wrong.status_code == 404 and wrong.text == "404 page not found\n"
    assert side.post("/api/overlays").status_code == 405


# --- the resolver's answer ------------------------------------------------------------------


def test_resolver_answers_are_read_from_the_json_in_their_output():
    from miso_runtime.agents.linear_sync import ResolverError, parse_resolver_answer

    answer = {"all_resolved": True, "confidence": "high", "summary": "ok", "files": {"a": {"action": "modified"}}}
    plain = f"Sure!\n{json.dumps(answer)}\nbye"
    assert parse_resolver_answer(plain) == {
        "all_resolved": True,
        "confidence": "high",
        "summary": "ok",
        "files": {"a": {"action": "modified", "description": ""}},
    }
    inner = {"all_resolved": False, "confidence": "low", "summary": "unsure", "files": {}}
    assert parse_resolver_answer(json.dumps({"type": "result", "structured_output": inner}))["confidence"] == "low"
    assert parse_resolver_answer(json.dumps({"type": "result", "result": json.dumps(inner)}))["summary"] == "unsure"
    for bad in ("no json here", '{"summary": "no confidence"}', '{"confidence": "high", "files": []}', "{oops}"):
        with pytest.raises(ResolverError) as raised:
            parse_resolver_answer(bad)
        assert str(raised.value).startswith("invalid conflict resolve response") and raised.value.raw == bad


# --- the state across a restart ---------------------------------------------------------------


def test_conflict_states_survive_a_restart(side, data_dir, socket_name, remote, upstream, scripts, tmp_path):
    """The last test of the module: it stops the module's sidecar (its teardown finds it stopped)."""
    try:
        configure(side, scripts, tmp_path / "prompt.txt", "slow.txt", "slow")
        done_id, _ = new_workspace(side, remote, "restart-done")
        assert side.post(f"/api/workspaces/{done_id}/linear-sync-resolve-conflict").status_code == 202
        slow_id, _path, _theirs = make_conflict(side, remote, upstream, "restart-slow", "slow.txt")
        socket = dashboard(side)
        try:
            final_state(socket, done_id)
            assert side.post(f"/api/workspaces/{slow_id}/linear-sync-resolve-conflict").status_code == 202
            socket.wait_messages(
                lambda m: any(
                    x.get("workspace_id") == slow_id and any(s["action"] == "llm_call" for s in x.get("steps", []))
                    for x in m
                    if x["type"] == STATE
                ),
                timeout=30,
            )
        finally:
            socket.close()
        busy = side.post(f"/api/workspaces/{slow_id}/linear-sync-resolve-conflict")
        assert busy.status_code == 409 and busy.json() == {"started": False, "message": "operation already in progress"}
        running = side.delete(f"/api/workspaces/{slow_id}/linear-sync-resolve-conflict-state")
        assert running.status_code == 409 and running.json() == {"message": "operation still in progress"}
        side.terminate()  # the resolution dies with the worker, mid-way

        side = start(data_dir, socket_name)
        socket = dashboard(side)
        try:
            frames = socket.wait_messages(lambda m: len([x for x in m if x["type"] == STATE]) >= 2 and m, timeout=30)
        finally:
            socket.close()
        assert frames[0]["type"] == "sessions"
        states = {m["workspace_id"]: m for m in frames if m["type"] == STATE}
        assert states[done_id]["status"] == "done" and states[done_id]["message"] == "Caught up to main"
        cut = states[slow_id]
        assert cut["status"] == "failed" and "runtime stopped" in cut["message"] and RFC3339_Z.match(cut["finished_at"])
        assert all(s["status"] != "in_progress" for s in cut["steps"])
        assert workspace(side, slow_id)["conflict_on_branch"] == "restart-slow"

        for workspace_id in (slow_id, done_id):
            deleted = side.delete(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict-state")
            assert deleted.status_code == 200 and deleted.content == b""
            assert side.delete(f"/api/workspaces/{workspace_id}/linear-sync-resolve-conflict-state").status_code == 404
    finally:
        side.terminate()

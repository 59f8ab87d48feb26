"""Caco's applets without a server: the store in git, the applet state, the applet tools.

Real files, a real git repository, real SQLite, real commands; the tools are called as the agent
loop calls them (``run_tool_call`` with the model's JSON text).
"""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path

import pytest

from miso_runtime.agent.messages import ToolCall
from miso_runtime.agent.tools.base import ToolContext
from miso_runtime.agent.tools.caco.applets import caco_applet_tools
from miso_runtime.agent.tools.caco.env import RESULT_RELOAD, RESULT_STATE_UPDATE, CacoToolEnv
from miso_runtime.agent.tools.registry import run_tool_call
from miso_runtime.errors import MisoError
from miso_runtime.store import open_database
from miso_runtime.workbench.applet_state import AppletState
from miso_runtime.workbench.applets import AppletStore
from miso_runtime.workbench.outputs import OutputStore


@pytest.fixture
def env(tmp_path: Path) -> CacoToolEnv:
    database = tmp_path / "miso.db"
    open_database(database)  # migrated, as the server leaves it for the task processes
    return CacoToolEnv(
        session_id="s-1",
        applets=AppletStore(tmp_path / "applets"),
        state=AppletState(database),
        outputs=OutputStore(tmp_path / "outputs"),
    )


@pytest.fixture
def cwd(tmp_path: Path) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    return folder.resolve()


def _tool(env: CacoToolEnv, cwd: Path, tool_name: str, **arguments):
    tools = caco_applet_tools(env)
    outcome = run_tool_call(tools, ToolCall("call_1", tool_name, json.dumps(arguments)), ToolContext(cwd=cwd))
    assert outcome is not None
    return outcome


# --- applets --------------------------------------------------------------------------------


def _git_log(root: Path) -> list[str]:
    result = subprocess.run(["git", "-C", str(root), "log", "--format=%s"], capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def test_each_save_is_a_commit_and_keeps_the_applets_history(env):
    store = env.applets
    first, sha1 = store.save("counter", name="Counter", html="<b>0</b>", js="let n = 0;", description="counts")
    second, sha2 = store.save("counter", name="Counter", html="<b>1</b>", css="b { color: red }")
    assert sha1 != sha2 and _git_log(store.root)[:2] == [
        "Update applet counter: Counter",
        "Create applet counter: Counter",
    ]
    loaded = store.load("counter")
    assert (loaded.html, loaded.js, loaded.css) == ("<b>1</b>", None, "b { color: red }")  # js removed by the save
    assert loaded.meta["createdAt"] == first.meta["createdAt"] and loaded.meta["updatedAt"] >= first.meta["updatedAt"]
    assert [c["sha"] for c in store.history("counter")] == [sha2, sha1]
    old = subprocess.run(
        ["git", "-C", str(store.root), "show", f"{sha1}:counter/content.html"], capture_output=True, text=True
    )
    assert old.stdout == "<b>0</b>"
    listed = store.list()
    assert listed[0]["slug"] == "counter" and listed[0]["name"] == "Counter"
    assert listed[0]["paths"]["html"] == str(store.root / "counter" / "content.html")


def test_commits_are_by_the_runtime_and_no_hook_stops_a_save(env):
    store = env.applets
    store.save("notes", name="Notes", html="<p>1</p>")
    hook = store.root / ".git" / "hooks" / "pre-commit"
    hook.write_text("#!/bin/sh\nexit 1\n")  # as a user's init.templateDir might bring
    hook.chmod(0o755)
    _, sha = store.save("notes", name="Notes", html="<p>2</p>")
    authors = subprocess.run(
        ["git", "-C", str(store.root), "log", "--format=%an <%ae>|%cn <%ce>", "-1", sha],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert authors == "Miso runtime <miso-runtime@localhost>|Miso runtime <miso-runtime@localhost>"
    assert store.load("notes").html == "<p>2</p>"


def test_applets_already_in_the_folder_join_the_first_commit(env):
    root = env.applets.root
    old = root / "old-one"
    old.mkdir(parents=True)
    (old / "meta.json").write_text(json.dumps({"slug": "old-one", "name": "Old", "updatedAt": "2026-01-01T00:00:00Z"}))
    (old / "content.html").write_text("<p>old</p>")
    assert env.applets.history("old-one") == [] and not (root / ".git").exists()  # reading makes no repository
    env.applets.save("new-one", name="New", html="<p>new</p>")
    tracked = subprocess.run(["git", "-C", str(root), "ls-files"], capture_output=True, text=True, check=True)
    assert {"old-one/meta.json", "old-one/content.html", "new-one/content.html"} <= set(tracked.stdout.split())
    assert [c["message"] for c in env.applets.history("old-one")] == ["Applet repository"]


def test_a_broken_applet_is_listed_with_its_error_and_refused_when_loaded(env):
    env.applets.save("fine", name="Fine", html="<p>ok</p>")
    broken = env.applets.root / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    (env.applets.root / "listish").mkdir()
    (env.applets.root / "listish" / "meta.json").write_text("[1, 2]")
    (env.applets.root / "_draft").mkdir()
    (env.applets.root / "no-meta").mkdir()
    listed = {entry["slug"]: entry for entry in env.applets.list()}
    assert set(listed) == {"fine", "broken", "listish", "no-meta"}
    assert listed["no-meta"]["error"] == "meta.json is missing" and listed["no-meta"]["updatedAt"] is None
    assert "not valid JSON" in listed["broken"]["error"] and "not a JSON object" in listed["listish"]["error"]
    assert "error" not in listed["fine"]
    with pytest.raises(MisoError) as refused:
        env.applets.load("broken")
    assert refused.value.status == 422


@pytest.mark.parametrize("slug", ["../etc", "a/b", "a.b", "..", "Upper", "-lead", "trail-", "a\x00b", "x" * 65, ""])
def test_a_bad_slug_is_refused_before_anything_is_written(env, slug):
    for attempt in (
        lambda: env.applets.save(slug, name="n", html="<p/>"),
        lambda: env.applets.load(slug),
        lambda: env.applets.history(slug),
    ):
        with pytest.raises(MisoError) as refused:
            attempt()
        assert refused.value.status == 400 and "Invalid applet slug" in refused.value.message
    assert not env.applets.root.exists() or not any(env.applets.root.iterdir())


def _save_many(root: str, worker: int) -> None:
    store = AppletStore(Path(root))
    for n in range(5):
        store.save(f"w{worker}", name=f"Worker {worker}", html=f"<p>{n}</p>")


def test_saves_from_two_processes_keep_the_repository_whole(env):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_save_many, args=(str(env.applets.root), n)) for n in (1, 2)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    assert len([line for line in _git_log(env.applets.root) if line.startswith("Update applet w")]) == 8
    status = subprocess.run(
        ["git", "-C", str(env.applets.root), "status", "--porcelain"], capture_output=True, text=True
    )
    assert status.stdout == ""
    assert {entry["slug"] for entry in env.applets.list()} == {"w1", "w2"}


def test_the_applet_tools_save_read_and_push_state(env, cwd):
    howto = _tool(env, cwd, "applet_howto")
    assert "save_applet" in howto.text and "setAppletState" in howto.text and "appletContainer" in howto.text
    assert "sendAgentMessage" in howto.text and "/?applet=" in howto.text
    saved = _tool(env, cwd, "save_applet", slug="picker", name="Picker", html="<select></select>")
    assert saved.ok and "/?applet=picker" in saved.text and env.applets.load("picker").title == "Picker"
    assert not _tool(env, cwd, "save_applet", slug="../x", name="x", html="<p/>").ok
    env.state.merge({"choice": "b"})
    env.state.set_navigation({"stack": [{"slug": "picker", "label": "Picker"}], "urlParams": {"q": "1"}})
    read = _tool(env, cwd, "get_applet_state", key="choice")
    assert read.text.startswith('Applet state["choice"]: "b"') and '"urlParams": {"q": "1"}' in read.text
    missing = _tool(env, cwd, "get_applet_state", key="nope")
    assert "Available keys: choice" in missing.text
    pushed = _tool(env, cwd, "set_applet_state", data={"progress": 50})
    assert pushed.result[RESULT_STATE_UPDATE] == {"progress": 50}
    assert env.state.get() == {"choice": "b", "progress": 50}
    assert _tool(env, cwd, "reload_page").result[RESULT_RELOAD] is True
    restart = _tool(env, cwd, "restart_server", delay=3)
    assert restart.ok and restart.text.startswith("Not restarted")


def test_the_applet_state_is_one_object_for_every_connection(tmp_path):
    database = tmp_path / "miso.db"
    open_database(database)
    server, agent = AppletState(database), AppletState(database)
    server.merge({"a": 1})
    agent.merge({"b": 2})
    assert server.get() == agent.get() == {"a": 1, "b": 2}
    server.clear()
    assert agent.get() == {} and agent.navigation() == {"stack": [], "urlParams": {}}
    with pytest.raises(MisoError):
        server.merge(["not", "an", "object"])  # type: ignore[arg-type]


# --- the routes, on a real sidecar ----------------------------------------------------------


@pytest.fixture(scope="module")
def caco(tmp_path_factory):
    from tests.sidecar import Sidecar

    side = Sidecar(tmp_path_factory.mktemp("caco-applets"))
    yield side
    side.terminate()


def test_the_applet_routes_answer_as_caco_and_list_a_broken_applet_with_its_error(caco):
    store = AppletStore(caco.data_dir / "caco" / "applets")
    store.save("clock", name="Clock", html="<p id=t></p>", js="tick()", description="shows the time")
    broken = store.root / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{")
    api = "/caco/api"
    listed = {a["slug"]: a for a in caco.get(f"{api}/applets", headers=caco.auth).json()["applets"]}
    assert listed["clock"]["description"] == "shows the time" and "error" in listed["broken"]
    assert listed["clock"]["paths"]["root"] == str(store.root / "clock")
    one = caco.get(f"{api}/applets/clock", headers=caco.auth).json()
    assert (one["title"], one["js"], one["css"], one["meta"]["name"]) == ("Clock", "tick()", None, "Clock")
    caco.post(f"{api}/applet/state", json={"left": 1}, headers=caco.auth)
    for refused_load in ("a.b", "nope"):  # a load that fails leaves the state as it was
        assert caco.post(f"{api}/applets/{refused_load}/load", headers=caco.auth).status_code in (400, 404)
    assert caco.get(f"{api}/applet/state", headers=caco.auth).json() == {"state": {"left": 1}}
    loaded = caco.post(f"{api}/applets/clock/load", headers=caco.auth)
    assert loaded.json()["ok"] is True
    assert caco.get(f"{api}/applet/state", headers=caco.auth).json() == {"state": {}}  # loading clears it
    answers = {
        "/applets/nope": (404, 'Applet "nope" not found'),
        "/applets/a.b": (400, None),
        "/applets/broken": (422, None),
        "/applets/UPPER/history": (400, None),
    }
    for path, (status, message) in answers.items():
        response = caco.get(f"{api}{path}", headers=caco.auth)
        assert response.status_code == status and isinstance(response.json()["error"], str), path
        assert message is None or response.json()["error"] == message
    assert caco.post(f"{api}/applets/..%2Fetc/load", headers=caco.auth).status_code in (400, 404)
    for body in ([1, 2], "text", 3):
        refused = caco.post(f"{api}/applet/state", json=body, headers=caco.auth)
        assert refused.status_code == 400 and isinstance(refused.json()["error"], str)
    assert caco.get(f"{api}/applet/state", headers=caco.auth).json() == {"state": {}}
    assert [c["message"] for c in caco.get(f"{api}/applets/clock/history", headers=caco.auth).json()["commits"]] == [
        "Create applet clock: Clock"
    ]

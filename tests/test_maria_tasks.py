"""Maria agent tasks end to end: real sidecar, real task processes, real commands in temporary dirs.

The UI's model name (``anthropic/claude-sonnet-4.5``) maps to the Anthropic stand-in, which
scripts tool calls in Anthropic's wire format; every assertion is on what the UI would see:
HTTP answers, the per-task stream and the task-list stream.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from miso_runtime.constants import AGENT_LOCAL_MAX_TOKENS
from tests.conftest import cloud_env
from tests.maria_client import (
    EventReader,
    create_task,
    descs,
    is_msg,
    msgs,
    post_json,
    send_message,
)
from tests.sidecar import Sidecar
from tests.standins.server import Script, ScriptedToolCall, Turn

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def maria(tmp_path_factory, openai_standin, anthropic_standin, ollama_standin):
    data_dir: Path = tmp_path_factory.mktemp("maria-data")
    env = cloud_env(openai_standin, anthropic_standin, ollama_standin)
    side = Sidecar(data_dir, env={**env, "MISO_PROVIDER": "openai", "MISO_MODEL": "gpt-test"})
    yield side
    side.terminate()


def _script(standin, *turns: Turn, **options) -> None:
    standin.script = Script(turns=list(turns), **options)


def _call(name: str, **arguments) -> ScriptedToolCall:
    return ScriptedToolCall(name, arguments)


def _events(
    side: Sidecar, task_id: str, until: str = "PostConversation", count: int = 1, timeout: float = 20.0
) -> list:
    with EventReader(side, f"/v1/task/{task_id}/events") as reader:
        return reader.wait_for(is_msg(until), count=count, timeout=timeout)


def test_a_first_message_runs_tool_calls_in_maria_order(maria, anthropic_standin, tmp_path):
    (tmp_path / "notes.txt").write_text("alpha\nbeta\n")
    _script(anthropic_standin, Turn("Let me look.", [_call("list_files", path=".")]), Turn("There is one file."))
    with EventReader(maria, "/v1/events") as task_list:
        created = create_task(maria, "what is here?", cwd=str(tmp_path))
        task = created["task"]
        assert created["message"]["queued"] is False
        assert task["cwd"] == str(tmp_path.resolve()) and task["model"] == "anthropic/claude-sonnet-4.5"
        assert task["name"] == "what is here?" and isinstance(task["created"], int)
        events = _events(maria, task["id"])
        changes = task_list.wait_for(  # created (idle), run started (generating), run ended (idle)
            lambda e: (
                e.name == "daemon.task.changed"
                and e.data["task"]["id"] == task["id"]
                and e.data["task"]["status"] == "idle"
            ),
            count=2,
        )
    order = msgs(events)
    tools = order.count("ToolAdded")
    assert order[: 2 + tools] == ["ModelLoaded", "SystemPromptSet"] + ["ToolAdded"] * tools
    assert tools == 6
    assert order[2 + tools :] == [
        "MessageQueued",
        "PreConversation",
        "MessageUnqueued",
        "UserMessage",
        "AssistantMessage",
        "PreToolCall",
        "PostToolCall",
        "AssistantMessage",
        "PostConversation",
    ]
    loaded = descs(events, "ModelLoaded")[0]
    assert loaded["name"] == "anthropic:claude-sonnet-4-5"
    post = descs(events, "PostToolCall")[0]
    assert post["name"] == "list_files" and post["tool_call"]["type"] == "function"
    assert [entry["name"] for entry in post["result"]["entries"]] == ["notes.txt"]
    assert post["result"]["file_count"] == 1
    assistant = descs(events, "AssistantMessage")
    assert assistant[0]["tool_calls"][0]["function"]["name"] == "list_files"
    assert assistant[1]["content"] == "There is one file." and assistant[1]["tool_calls"] == []
    queued = [e for e in events if e.name == "maria.queued_messages.synchronized"]
    assert queued and all(isinstance(e.data, list) for e in queued)
    # every event has an id line, increasing
    ids = [int(e.id) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # the task-list stream: a snapshot first, then generating and idle for this task
    assert changes[0].name == "daemon.tasks.synchronized"
    statuses = [
        e.data["task"]["status"]
        for e in changes
        if e.name == "daemon.task.changed" and e.data["task"]["id"] == task["id"]
    ]
    assert "generating" in statuses and statuses[-1] == "idle"
    # the model got the tool's text back as an Anthropic tool_result
    last = anthropic_standin.last_request_json
    results = [
        b
        for m in last["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert results and "notes.txt" in json.dumps(results[0]["content"])


def test_a_message_sent_while_busy_is_queued_then_unqueued(maria, anthropic_standin, tmp_path):
    _script(
        anthropic_standin,
        Turn("", [_call("execute_command", command="sleep 1.5; echo slept")]),
        Turn("first done"),
        Turn("second done"),
    )
    created = create_task(maria, "sleep please", cwd=str(tmp_path))
    task_id = created["task"]["id"]
    with EventReader(maria, f"/v1/task/{task_id}/events") as reader:
        reader.wait_for(is_msg("PreToolCall"))
        answer = send_message(maria, task_id, "and then this")
        assert answer["queued"] is True
        status = maria.get(f"/v1/task/{task_id}/queued-messages").json()
        assert [q["id"] for q in status] == [answer["id"]]
        events = reader.wait_for(is_msg("PostConversation"))
    unqueued = [d["message"]["id"] for d in descs(events, "MessageUnqueued")]
    assert answer["id"] in unqueued
    users = [d["content"] for d in descs(events, "UserMessage")]
    assert users == ["sleep please", "and then this"]
    assert msgs(events).count("PreConversation") == 1  # one run took both messages
    post = descs(events, "PostToolCall")[0]
    assert post["result"][0] == "Completed" and post["result"][1]["stdout"].strip() == "slept"
    assert post["result"][1]["status"] == 0
    # the task's process is up: prompt and tool switches go to its agent (and the prompt into the log)
    assert post_json(maria, f"/v1/task/{task_id}/system-prompt", "Be terse.").json() == {"success": True}
    assert maria.get(f"/v1/task/{task_id}/system-prompt").json() == "Be terse."
    assert post_json(maria, f"/v1/task/{task_id}/enabled-tools", ["list_files"]).json() == {"success": True}
    assert maria.get(f"/v1/task/{task_id}/tools").json()["list_files"] == {"enabled": True}
    assert maria.get(f"/v1/task/{task_id}/tools").json()["read_file"] == {"enabled": False}


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie does not: it waits only to be reaped, which init may never do here)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_cancel_mid_command_kills_its_process_group_and_returns_the_queue(maria, anthropic_standin, tmp_path):
    command = "sleep 60 & echo $! > child.tmp && mv child.tmp child.pid; sleep 60"
    _script(anthropic_standin, Turn("", [_call("execute_command", command=command)]), Turn("never"))
    created = create_task(maria, "run forever", cwd=str(tmp_path))
    task_id = created["task"]["id"]
    with EventReader(maria, f"/v1/task/{task_id}/events") as reader:
        reader.wait_for(is_msg("PreToolCall"))
        deadline = time.monotonic() + 10
        while not (tmp_path / "child.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int((tmp_path / "child.pid").read_text())
        queued = send_message(maria, task_id, "waiting")
        assert queued["queued"] is True
        response = maria.post(f"/v1/task/{task_id}/cancel")
        assert response.status_code == 200
        pending = response.json()["pending_messages"]
        assert [p["id"] for p in pending] == [queued["id"]]
        assert pending[0]["message"] == {"role": "user", "content": "waiting"} and pending[0]["web_search"] is False
        events = reader.wait_for(is_msg("Cancelled"))
    deadline = time.monotonic() + 1.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the command's child outlived the cancel"
    order = msgs(events)
    assert order.index("MessageUnqueued", order.index("PreToolCall")) < order.index("Cancelled")
    assert "PostConversation" not in order[order.index("PreConversation") :]
    assert maria.get(f"/v1/task/{task_id}").json()["task"]["status"] == "idle"
    again = maria.post(f"/v1/task/{task_id}/cancel")
    assert again.status_code == 404
    assert again.json() == {"error": {"code": -1, "message": "No running task to cancel."}}
    # the task is still usable
    _script(anthropic_standin, Turn("back"))
    send_message(maria, task_id, "hello again")
    events = _events(maria, task_id, count=1)
    assert descs(events, "AssistantMessage")[-1]["content"] == "back"


def test_paths_that_leave_the_cwd_are_tool_errors(maria, anthropic_standin, tmp_path):
    inside = tmp_path / "task"
    inside.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    (inside / "link").symlink_to(secret)
    _script(
        anthropic_standin,
        Turn(
            "",
            [
                _call("read_file", path="../secret.txt"),
                _call("read_file", path=str(secret)),
                _call("read_file", path="link"),
                _call("write_to_file", path="../written.txt", content="x"),
            ],
        ),
        Turn("ok"),
    )
    created = create_task(maria, "escape", cwd=str(inside))
    events = _events(maria, created["task"]["id"])
    posts = descs(events, "PostToolCall")
    assert len(posts) == 4
    for post in posts:
        assert "error" in post and "result" not in post
        assert "do not read" not in post["text"]
    assert not (tmp_path / "written.txt").exists()


def test_a_busy_cwd_is_refused_with_409(maria, anthropic_standin, tmp_path):
    first = create_task(maria, None, cwd=str(tmp_path))
    response = post_json(maria, "/v1/task", {"cwd": str(tmp_path), "model": "anthropic/claude-sonnet-4.5"})
    assert response.status_code == 409
    body = response.json()
    assert body["error"]["code"] == -1
    assert body["error"]["message"] == f"A running task already exists for the specified 'cwd': {tmp_path.resolve()}"
    assert body["error"]["metadata"] == {"cwd": str(tmp_path.resolve())}
    assert body["task"]["id"] == first["task"]["id"]


def test_without_cwd_a_task_gets_a_fresh_temporary_directory(maria):
    one = create_task(maria)["task"]
    two = create_task(maria)["task"]
    try:
        assert one["cwd"] != two["cwd"]
        assert Path(one["cwd"]).is_dir() and Path(one["cwd"]).name.startswith("maria-server-task-")
    finally:
        for task in (one, two):
            shutil.rmtree(task["cwd"], ignore_errors=True)


def test_killing_a_task_process_fails_that_task_only(maria, anthropic_standin, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _script(
        anthropic_standin,
        Turn(
            "",
            [
                _call(
                    "execute_command",
                    command="sleep 30 & echo $! > ../victim.tmp && mv ../victim.tmp ../victim.pid; wait",
                )
            ],
        ),
    )
    victim = create_task(maria, "victim", cwd=str(tmp_path / "a"))["task"]["id"]
    with EventReader(maria, f"/v1/task/{victim}/events") as reader:
        reader.wait_for(is_msg("PreToolCall"))
        _script(anthropic_standin, Turn("", [_call("execute_command", command="sleep 1; echo fine")]), Turn("b done"))
        other = create_task(maria, "bystander", cwd=str(tmp_path / "b"))["task"]["id"]
        pid = _worker_pid(tmp_path / "a")
        deadline = time.monotonic() + 10
        while not (tmp_path / "victim.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        events = reader.wait_for(is_msg("Failed"))
    child = int((tmp_path / "victim.pid").read_text())
    deadline = time.monotonic() + 2.0
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(child), "the dead task's command kept running"
    failed = descs(events, "Failed")[-1]
    assert failed["error"]["code"] == "task_process_exited"
    assert maria.get(f"/v1/task/{victim}").json()["task"]["status"] == "idle"
    bystander = _events(maria, other)
    assert descs(bystander, "AssistantMessage")[-1]["content"] == "b done"
    assert descs(bystander, "PostToolCall")[0]["result"][1]["stdout"].strip() == "fine"
    # the failed task resumes in a new process on its next message
    _script(anthropic_standin, Turn("", [_call("execute_command", command="pwd")]), Turn("alive"))
    send_message(maria, victim, "are you there?")
    events = _events(maria, victim, count=1)
    assert descs(events, "AssistantMessage")[-1]["content"] == "alive"
    assert descs(events, "PostToolCall")[-1]["result"][1]["stdout"].strip() == str((tmp_path / "a").resolve())


def _worker_pid(cwd: Path) -> int:
    """The task process: the parent of the ``sh`` whose cwd is the task's (found through /proc)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if Path(entry, "cwd").resolve() == cwd.resolve() and Path(entry, "comm").read_text().strip() == "sh":
                    stat = Path(entry, "stat").read_text()
                    return int(stat.rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
        time.sleep(0.05)
    raise AssertionError("no command of the task found")


def test_replay_with_and_without_last_event_id(maria, anthropic_standin, tmp_path):
    _script(anthropic_standin, Turn("one"))
    task_id = create_task(maria, "first", cwd=str(tmp_path))["task"]["id"]
    first = _events(maria, task_id)
    again = _events(maria, task_id)
    assert [e.id for e in again[: len(first)]] == [e.id for e in first]  # the whole log, every time
    mark = first[-1].id
    _script(anthropic_standin, Turn("two"))
    send_message(maria, task_id, "second")
    with EventReader(maria, f"/v1/task/{task_id}/events", last_event_id=mark) as reader:
        missed = reader.wait_for(is_msg("PostConversation"))
    assert all(int(e.id) > int(mark) for e in missed)
    assert [d["content"] for d in descs(missed, "UserMessage")] == ["second"]
    assert "ModelLoaded" not in msgs(missed)


def test_a_foreign_origin_cannot_drive_a_task(maria, anthropic_standin, tmp_path):
    task_id = create_task(maria, None, cwd=str(tmp_path))["task"]["id"]
    before = anthropic_standin.requests
    response = post_json(
        maria,
        f"/v1/task/{task_id}/message",
        {"message": {"role": "user", "content": "rm -rf ~"}},
        Origin="http://evil.example",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == -1
    created = post_json(maria, "/v1/task", {"message": {"role": "user", "content": "x"}}, Origin="http://evil.example")
    assert created.status_code == 403
    assert len(anthropic_standin.requests) == len(before)
    assert maria.get(f"/v1/task/{task_id}").json()["task"]["status"] == "idle"


def test_bad_model_arguments_and_unknown_tools_keep_the_task_going(maria, anthropic_standin, tmp_path):
    _script(
        anthropic_standin,
        Turn(
            "",
            [
                ScriptedToolCall("read_file", '{"path": '),
                _call("read_file", start_line="x"),
                _call("no_such_tool", x=1),
                _call("execute_command", command="echo head-marker; yes"),
            ],
        ),
        Turn("recovered"),
    )
    created = create_task(maria, "mess", cwd=str(tmp_path))
    events = _events(maria, created["task"]["id"])
    posts = descs(events, "PostToolCall")
    assert [p["name"] for p in posts] == ["read_file", "read_file", "execute_command"]
    assert posts[0]["error"] and posts[0]["text"].startswith("Error parsing tool arguments")
    assert posts[1]["error"]
    output = posts[2]["result"][1]["stdout"]
    assert len(output) < 70_000 and output.startswith("head-marker")  # `yes` was stopped, its output bounded
    pres = descs(events, "PreToolCall")
    assert pres[0]["args"] == '{"path": ' and "error" in pres[0]
    assert descs(events, "AssistantMessage")[-1]["content"] == "recovered"
    sent = json.dumps(anthropic_standin.last_request_json)
    assert "Unknown tool: no_such_tool" in sent


def test_a_provider_failing_mid_turn_fails_the_run_and_the_task_goes_on(maria, anthropic_standin, tmp_path):
    _script(anthropic_standin, Turn("this breaks off half way through"), error_after_tokens=2)
    created = create_task(maria, "fail", cwd=str(tmp_path))
    task_id = created["task"]["id"]
    events = _events(maria, task_id, until="Failed")
    assert descs(events, "Failed")[0]["error"]["code"] in ("provider_error", "provider_unavailable", "stream_failed")
    assert maria.get(f"/v1/task/{task_id}").json()["task"]["status"] == "idle"
    _script(anthropic_standin, Turn("fine now"))
    send_message(maria, task_id, "again")
    events = _events(maria, task_id)
    assert descs(events, "AssistantMessage")[-1]["content"] == "fine now"


def test_bad_requests_get_maria_errors(maria, tmp_path):
    assert maria.get("/v1/task/not-a-uuid").json() == {"error": {"code": -1, "message": "Invalid UUID: not-a-uuid"}}
    unknown = "0b0f3f55-1f5e-4a44-9a0d-6a2bd3f0e0aa"
    response = maria.get(f"/v1/task/{unknown}")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": -1, "message": f"Task not found: {unknown}"}}
    response = maria.post("/v1/task", content="{not json", headers={**maria.auth, "content-type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 400 and response.json()["error"]["message"] == "Invalid request body"
    missing = tmp_path / "gone"
    response = post_json(maria, "/v1/task", {"cwd": str(missing)})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == f"Specified 'cwd' path does not exist: {missing}"
    response = post_json(maria, "/v1/task", {"model": "someone/else"})
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "Model not found: someone/else"
    task_id = create_task(maria, None, cwd=str(tmp_path))["task"]["id"]
    response = post_json(maria, f"/v1/task/{task_id}/message", {"message": {"role": "user"}})
    assert response.status_code == 400


def test_unprefixed_paths_and_models(maria, tmp_path):
    task_id = create_task(maria, None, cwd=str(tmp_path))["task"]["id"]
    assert maria.get(f"/task/{task_id}").json()["task"]["id"] == task_id
    assert any(t["id"] == task_id for t in maria.get("/tasks").json()["tasks"])
    assert {"name": "anthropic/claude-sonnet-4.5"} in maria.get("/models").json()["models"]
    assert maria.get("/v1/models").json()["object"] == "list"  # OpenAI's list stays there
    tools = maria.get(f"/v1/task/{task_id}/tools").json()
    assert set(tools) == {"execute_command", "list_files", "read_file", "todo", "search_files", "write_to_file"}
    assert post_json(maria, f"/v1/task/{task_id}/enabled-tools", ["read_file"]).status_code == 200
    assert maria.get(f"/v1/task/{task_id}/tools").json()["execute_command"] == {"enabled": False}
    assert post_json(maria, f"/v1/task/{task_id}/system-prompt", "Be brief.").status_code == 200
    assert maria.get(f"/v1/task/{task_id}/system-prompt").json() == "Be brief."
    assert maria.get(f"/v1/task/{task_id}/status").json() == {"status": "idle", "web_search": False}


@pytest.mark.parametrize(
    ("model", "standin_name", "loaded"),
    [
        ("openai/gpt-test", "openai_standin", "openai:gpt-test"),
        ("ollama/llama3.2", "ollama_standin", "ollama:llama3.2"),
    ],
)
def test_every_cloud_provider_runs_tool_calls(maria, request, tmp_path, model, standin_name, loaded):
    standin = request.getfixturevalue(standin_name)
    (tmp_path / "f.txt").write_text("hello\n")
    _script(standin, Turn("", [_call("read_file", path="f.txt")]), Turn("read it"))
    created = create_task(maria, "read", cwd=str(tmp_path), model=model)
    events = _events(maria, created["task"]["id"])
    assert descs(events, "ModelLoaded")[0]["name"] == loaded
    post = descs(events, "PostToolCall")[0]
    assert post["result"]["content"].startswith("hello") and post["result"]["path"]
    assert descs(events, "AssistantMessage")[-1]["content"] == "read it"
    body = standin.last_request_json
    tool_messages = [m for m in body["messages"] if m.get("role") == "tool"]
    assert tool_messages and "hello" in tool_messages[0]["content"]


def test_after_a_restart_tasks_are_stopped_with_their_logs_and_resume(
    tmp_path_factory, openai_standin, anthropic_standin, ollama_standin, tmp_path
):
    data_dir = tmp_path_factory.mktemp("maria-restart")
    env = {**cloud_env(openai_standin, anthropic_standin, ollama_standin), "MISO_PROVIDER": "openai"}
    first = Sidecar(data_dir, env=env)
    try:
        _script(anthropic_standin, Turn("", [_call("write_to_file", path="kept.txt", content="one")]), Turn("written"))
        task_id = create_task(first, "write", cwd=str(tmp_path))["task"]["id"]
        before = _events(first, task_id)
    finally:
        first.terminate()
    second = Sidecar(data_dir, env=env)
    try:
        task = second.get(f"/v1/task/{task_id}").json()["task"]
        assert task["status"] == "stopped" and "queued_messages" not in task and task["cwd"] == str(tmp_path.resolve())
        replay = _events(second, task_id)
        assert [e.data for e in replay[: len(before)]] == [e.data for e in before]
        # Opening its stream made it idle again: Maria's web UI sends nothing to a stopped task.
        assert second.get(f"/v1/task/{task_id}").json()["task"]["status"] == "idle"
        _script(anthropic_standin, Turn("", [_call("read_file", path="kept.txt")]), Turn("still here"))
        with EventReader(second, f"/v1/task/{task_id}/events") as reader:
            answer = send_message(second, task_id, "read it back")
            assert answer["queued"] is False
            events = reader.wait_for(is_msg("PostConversation"), count=2)
        assert descs(events, "PostToolCall")[-1]["result"]["content"].startswith("one")
        sent = anthropic_standin.last_request_json["messages"]
        assert (
            sent[0]["content"] == "write" or sent[0]["content"][0]["text"] == "write"
        )  # the old conversation went along
        assert second.get(f"/v1/task/{task_id}").json()["task"]["status"] == "idle"
    finally:
        second.terminate()
    third = Sidecar(data_dir, env=env)
    try:
        tmp_path.rename(tmp_path.with_name(tmp_path.name + "-moved"))
        response = post_json(third, f"/v1/task/{task_id}/message", {"message": {"role": "user", "content": "hi"}})
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Cannot resume conversation: working directory has been removed"
    finally:
        third.terminate()


def test_an_idle_task_gives_its_process_back_and_resumes(maria, anthropic_standin, tmp_path):
    assert post_json(maria, "/v1/settings/agent-tasks", {"idle_stop_secs": 5}).status_code == 200
    try:
        _script(anthropic_standin, Turn("first"))
        task_id = create_task(maria, "hello", cwd=str(tmp_path))["task"]["id"]
        _events(maria, task_id)
        with EventReader(maria, "/v1/events") as task_list:
            deadline = time.monotonic() + 30
            while maria.get(f"/v1/task/{task_id}").json()["task"]["status"] != "stopped":
                assert time.monotonic() < deadline, "the idle task kept its process"
                time.sleep(0.5)
            assert task_list.comments >= 3  # keep-alive comments while nothing happens
        _script(anthropic_standin, Turn("second"))
        assert send_message(maria, task_id, "back")["queued"] is False
        events = _events(maria, task_id, count=2)
        assert [d["content"] for d in descs(events, "AssistantMessage")][-2:] == ["first", "second"]
    finally:
        post_json(maria, "/v1/settings/agent-tasks", {"idle_stop_secs": 600})


def test_a_task_runs_on_the_local_model_when_no_cloud_key_is_set(tmp_path_factory, tmp_path):
    """A fresh install with only a local model: the UI's model name falls back to it.

    The tiny model's weights are random, so what it says is noise; what is asserted is the
    path: the task's process calls this runtime's own OpenAI-compatible API with Maria's tools,
    the reply (text, or a call the grammar made well-formed) comes back as Maria's events, and
    ``ModelLoaded`` names the model that really ran.
    """
    from tests.llm_fixtures import write_tiny_llama_gguf
    from tests.test_llm_tools import HERMES_TEMPLATE

    data_dir = tmp_path_factory.mktemp("maria-local")
    (data_dir / "models").mkdir()
    write_tiny_llama_gguf(data_dir / "models" / "tiny-agent.gguf", chat_template=HERMES_TEMPLATE, context_length=16384)
    side = Sidecar(data_dir)
    try:
        assert side.post("/v1/settings/llm-config", json={"n_ctx": 16384}).status_code == 200
        assert side.post("/v1/llm/server/start", json={"model": "tiny-agent"}).status_code == 200
        created = create_task(side, "say something", cwd=str(tmp_path))
        # Random weights rarely stop by themselves: the turn ends at the runtime's output bound,
        # some seconds of CPU on a shared machine, hence the long wait.
        events = _events(side, created["task"]["id"], until="PostConversation", timeout=90.0)
        assert descs(events, "ModelLoaded")[0]["name"] == "local:tiny-agent"
        assert "Failed" not in msgs(events)
        first = descs(events, "AssistantMessage")[0]
        assert first["content"] or first["tool_calls"]
        assert first["usage"]["prompt_tokens"] > 1000  # Maria's system prompt and tools went to the model
        assert first["usage"]["completion_tokens"] <= AGENT_LOCAL_MAX_TOKENS
        for call in first["tool_calls"]:
            assert call["function"]["name"] in {
                "execute_command",
                "list_files",
                "read_file",
                "todo",
                "search_files",
                "write_to_file",
            }
            json.loads(call["function"]["arguments"])
    finally:
        side.terminate()


def test_external_events_reach_the_running_agent(maria, anthropic_standin, tmp_path):
    _script(
        anthropic_standin,
        Turn("", [_call("execute_command", command="sleep 1", timeout=60000)]),
        Turn("", [_call("execute_command", command="sleep 30", timeout=300)]),
        Turn("should not come"),
    )
    task_id = create_task(maria, "work", cwd=str(tmp_path))["task"]["id"]
    with EventReader(maria, f"/v1/task/{task_id}/events") as reader:
        reader.wait_for(is_msg("PreToolCall"))
        answer = post_json(maria, f"/v1/task/{task_id}/external-event/user-message", {"message": "also check x"})
        assert answer.json() == {"success": True}
        reader.wait_for(is_msg("PreToolCall"), count=2)  # the second command runs (and times out)
        stop = post_json(maria, f"/v1/task/{task_id}/external-event", {"type": "Cancelled"})
        assert stop.json() == {"success": True}
        events = reader.wait_for(is_msg("PostConversation"))
    users = [d["content"] for d in descs(events, "UserMessage")]
    assert users == ["work", "also check x"]
    sent = json.dumps(anthropic_standin.requests[-1].json)
    assert "[Immediate User Message]" in sent and "also check x" in sent
    timed_out = descs(events, "PostToolCall")[1]["result"]
    assert timed_out[0] == "TimedOut" and timed_out[1]["timeout"] == 300
    assert msgs(events)[-2:] == ["Cancelled", "PostConversation"]
    assert "should not come" not in [d["content"] for d in descs(events, "AssistantMessage")]

"""schmux NudgeNik over real tmux sessions: the route, its errors, the checker, agent signals.

The models are the runtime's own: the OpenAI-compatible and Ollama stand-ins, the local
llama.cpp model (a tiny GGUF whose answers are noise, held to the schema by a grammar), fake
``claude`` and ``codex`` CLIs on PATH, and a user's promptable run target.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import uuid
from pathlib import Path

import pytest

from miso_runtime.agents.nudgenik import STATES
from miso_runtime.agents.tmux_sessions import TmuxSessions, session_name_for
from tests.conftest import cloud_env
from tests.eeg import wait_until
from tests.gitrepo import bare_remote
from tests.llm_fixtures import write_tiny_llama_gguf
from tests.sidecar import Sidecar
from tests.standins import Script, Turn
from tests.standins.server import ScriptedToolCall
from tests.ws_client import JsonSocket

#: What the fake agent shows: a reply, then its prompt line.
REPLY = "Implemented the retry loop; all 14 tests pass."
ANSWER = {"state": "Completed", "confidence": "high", "evidence": ["all 14 tests pass"], "summary": "Retry loop done"}
MODEL = "openai:gpt-4o-mini"


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture(scope="module")
def tools(tmp_path_factory) -> Path:
    """Scripts: a fake agent that shows a reply, fake ``claude``/``codex`` CLIs, a user's answerer."""
    folder = tmp_path_factory.mktemp("nudgenik-bin")
    _script(folder, "fake-agent.sh", f"printf '%s\\n\\n' '{REPLY}'\nprintf '\\342\\235\\257 \\n'\nexec sleep 600\n")
    _script(folder, "signaller.sh", "printf '%s%s\\n' '--<[schmux:' \"$1]>--\"\nexec sleep 600\n")
    # The fake CLIs record their arguments and stdin, then answer in their tool's own format.
    _script(
        folder,
        "claude",
        'printf "%s\\n" "$@" > "$0.args"\ncat > "$0.stdin"\n'
        'echo \'{"type":"result","is_error":false,"result":"",'
        '"structured_output":{"state":"Needs Authorization","confidence":"medium","evidence":[],'
        '"summary":"A menu waits"}}\'\n',
    )
    _script(
        folder,
        "codex",
        'printf "%s\\n" "$@" > "$0.args"\ncat > "$0.stdin"\n'
        'echo \'{"type":"thread.started"}\'\n'
        'echo \'{"type":"item.completed","item":{"type":"agent_message","text":"draft"}}\'\n'
        'echo \'{"type":"item.completed","item":{"type":"agent_message",'
        '"text":"{\\"state\\":\\"Needs User Testing\\",\\"confidence\\":\\"low\\",\\"evidence\\":[\\"try it\\"],'
        '\\"summary\\":\\"Ready to try\\"}"}}\'\n',
    )
    _script(
        folder,
        "answerer.sh",
        'cat > "$0.stdin"\necho \'Here you go: {"state": "Needs Feature Clarification", "summary": "Which API?"}\'\n',
    )
    _script(folder, "failer.sh", "cat >/dev/null\necho 'quota exceeded' >&2\nexit 3\n")
    return folder


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    return bare_remote(tmp_path_factory.mktemp("nudgenik-remote"), "nudged")


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-nudge-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()


@pytest.fixture(scope="module")
def side(tmp_path_factory, socket_name, tools, openai_standin, anthropic_standin, ollama_standin):
    data_dir = tmp_path_factory.mktemp("nudgenik-data")
    (data_dir / "models").mkdir()
    write_tiny_llama_gguf(data_dir / "models" / "tiny-nudge.gguf", context_length=8192)
    env = cloud_env(openai_standin, anthropic_standin, ollama_standin)
    env.update(MISO_TMUX_SOCKET=socket_name, PATH=f"{tools}{os.pathsep}{os.environ['PATH']}")
    sidecar = Sidecar(data_dir, env=env)
    targets = [
        {"name": "shell", "type": "command", "command": "sh"},
        {"name": "fake-agent", "type": "command", "command": f"sh {tools / 'fake-agent.sh'}"},
        {"name": "quiet", "type": "command", "command": "sleep 600"},
        {"name": "answerer", "type": "promptable", "command": f"sh {tools / 'answerer.sh'}"},
        {"name": "failer", "type": "promptable", "command": f"sh {tools / 'failer.sh'}"},
    ]
    assert sidecar.post("/api/config", json={"run_targets": targets}).status_code == 200
    yield sidecar
    sidecar.terminate()


@pytest.fixture(scope="module")
def workspace_id(side, remote) -> str:
    spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "nudge", "targets": {"quiet": 1}})
    assert spawned.status_code == 200, spawned.text
    return spawned.json()[0]["workspace_id"]


def spawn(side, workspace_id: str, target: str) -> str:
    answer = side.post("/api/spawn", json={"workspace_id": workspace_id, "targets": {target: 1}})
    assert answer.status_code == 200 and "error" not in answer.json()[0], answer.text
    return answer.json()[0]["session_id"]


def set_target(side, target: str) -> None:
    assert side.post("/api/config", json={"nudgenik": {"target": target}}).status_code == 200


def session(side, session_id: str) -> dict:
    return next(s for w in side.get("/api/sessions").json() for s in w["sessions"] if s["id"] == session_id)


def pane(socket_name: str, session_id: str) -> str:
    return TmuxSessions(socket_name).capture(session_name_for(session_id), escapes=False)


@pytest.fixture()
def agent(side, workspace_id, socket_name):
    """A fresh session of the fake agent, its reply on screen; disposed after the test, so that
    the background checker never asks about it while another test runs."""
    session_id = spawn(side, workspace_id, "fake-agent")
    wait_until(lambda: "❯" in pane(socket_name, session_id))
    yield session_id
    side.post(f"/api/sessions/{session_id}/dispose")


def ask(side, session_id: str):
    return side.get(f"/api/askNudgenik/{session_id}")


# --- availability and the route -------------------------------------------------------------


def test_has_nudgenik_says_whether_a_target_is_set(side):
    set_target(side, "")
    assert side.get("/api/hasNudgenik").json() == {"available": False}
    set_target(side, "no-such-thing")  # not checked: only whether one is set
    assert side.get("/api/hasNudgenik").json() == {"available": True}


def test_ask_through_the_openai_standin(side, agent, openai_standin):
    set_target(side, MODEL)
    openai_standin.script = Script(tokens=["```json\n", json.dumps(ANSWER), "\n```"])  # a fence is taken off
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == ANSWER
    request = next(r.json for r in openai_standin.requests if r.json and REPLY in json.dumps(r.json))
    assert request["model"] == "gpt-4o-mini"
    assert request["response_format"]["type"] == "json_schema"
    schema = request["response_format"]["json_schema"]
    assert schema["name"] == "nudgenik" and schema["schema"]["properties"]["state"]["enum"] == list(STATES)
    prompt = request["messages"][-1]["content"]
    assert f"<<<\n{REPLY}\n>>>" in prompt and "{{AGENT_LAST_RESPONSE}}" not in prompt
    assert "nudge_state" not in session(side, agent)  # the route stores nothing


def test_optional_fields_are_left_out_and_curly_quotes_are_forgiven(side, agent, openai_standin):
    set_target(side, MODEL)
    openai_standin.script = Script(
        tokens=["{\u201cstate\u201d: \u201cNeeds Authorization\u201d,\t\u201csummary\u201d: \u201cA menu waits\u201d}"]
    )
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"state": "Needs Authorization", "summary": "A menu waits"}


def test_ask_through_ollama_holds_the_answer_to_the_schema(side, agent, ollama_standin):
    set_target(side, "ollama:llama3.2")
    ollama_standin.script = Script(tokens=[json.dumps(ANSWER)])
    answer = ask(side, agent)
    assert answer.status_code == 200 and answer.json() == ANSWER
    request = ollama_standin.last_request_json
    assert request["format"]["properties"]["state"]["enum"] == list(STATES)


def test_ask_through_anthropic_answers_with_a_forced_tool(side, agent, anthropic_standin):
    set_target(side, "anthropic:claude-sonnet-4-5")
    # A responder, not a turn: every request gets this answer (the checker may ask meanwhile).
    anthropic_standin.script = Script(responder=lambda _body: Turn("", [ScriptedToolCall("nudgenik", ANSWER)]))
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == ANSWER
    request = anthropic_standin.last_request_json
    assert request["tool_choice"] == {"type": "tool", "name": "nudgenik"}
    assert request["tools"][0]["input_schema"]["required"] == ["state", "confidence", "evidence", "summary"]


def test_the_local_model_always_answers_a_valid_state(side, agent):
    assert side.post("/v1/settings/llm-config", json={"n_ctx": 8192}).status_code == 200
    assert side.post("/v1/llm/server/start", json={"model": "tiny-nudge"}).status_code == 200
    set_target(side, "local:tiny-nudge")
    for _ in range(3):
        answer = ask(side, agent)
        assert answer.status_code == 200, answer.text
        result = answer.json()
        assert result["state"] in STATES and isinstance(result["summary"], str)
        assert result.get("confidence", "high") in ("high", "medium", "low")
        assert all(isinstance(item, str) for item in result.get("evidence", []))


def test_a_user_defined_promptable_target_gets_the_prompt_on_stdin(side, agent, tools):
    set_target(side, "answerer")
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"state": "Needs Feature Clarification", "summary": "Which API?"}
    assert REPLY in (tools / "answerer.sh.stdin").read_text()


def test_detected_claude_answers_with_its_structured_output(side, agent, tools):
    set_target(side, "claude")
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"state": "Needs Authorization", "confidence": "medium", "summary": "A menu waits"}
    args = (tools / "claude.args").read_text().splitlines()
    assert args[:4] == ["-p", "--dangerously-skip-permissions", "--output-format", "json"]
    assert args[4] == "--json-schema" and json.loads(args[5])["required"] == [
        "state",
        "confidence",
        "evidence",
        "summary",
    ]
    assert REPLY in (tools / "claude.stdin").read_text()


def test_a_builtin_model_runs_its_base_tool_with_its_flag(side, agent, tools):
    set_target(side, "sonnet")
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert (tools / "claude.args").read_text().splitlines()[:3] == ["--model", "sonnet", "-p"]


def test_detected_codex_answers_with_its_last_agent_message(side, agent, tools):
    set_target(side, "codex")
    answer = ask(side, agent)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "state": "Needs User Testing",
        "confidence": "low",
        "evidence": ["try it"],
        "summary": "Ready to try",
    }
    args = (tools / "codex.args").read_text().splitlines()
    assert args[:2] == ["exec", "--json"] and args[2] == "--output-schema" and args[-1] == "-"


# --- errors, in schmux's plain text ---------------------------------------------------------


def plain(response) -> tuple[int, str]:
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return response.status_code, response.text


def test_bad_model_output_is_a_500_in_plain_text_and_nothing_is_stored(side, agent, openai_standin):
    set_target(side, MODEL)
    openai_standin.script = Script(tokens=["I think the work is done."])
    status, text = plain(ask(side, agent))
    assert (
        status == 500 and text.startswith("Failed to ask nudgenik: invalid nudgenik response") and text.endswith("\n")
    )
    openai_standin.script = Script(tokens=['{"state": 7, "summary": "x"}'])  # valid JSON, a wrong type
    status, text = plain(ask(side, agent))
    assert status == 500 and "invalid nudgenik response: state must be a string" in text
    assert "nudge_state" not in session(side, agent)


@pytest.mark.parametrize(
    "target, status, text",
    [
        ("", 503, "Nudgenik is disabled. Configure a target in settings.\n"),
        ("no-such-target", 503, "Nudgenik target not found\n"),
        ("kimi-thinking", 503, "Nudgenik target missing required secrets\n"),  # no ANTHROPIC_AUTH_TOKEN saved
        ("shell", 500, "Failed to ask nudgenik: oneshot execute: target shell must be promptable\n"),
    ],
)
def test_target_errors(side, agent, target, status, text):
    set_target(side, target)
    assert plain(ask(side, agent)) == (status, text)


def test_a_failing_command_is_a_500_that_quotes_it(side, agent):
    set_target(side, "failer")
    status, text = plain(ask(side, agent))
    assert status == 500 and text.startswith(
        "Failed to ask nudgenik: oneshot execute: command: one-shot execution failed"
    )
    assert "exit status 3" in text and "quota exceeded" in text


def test_the_provider_errors_are_a_500(side, agent, openai_standin):
    set_target(side, MODEL)
    openai_standin.script = Script(http_error=503)
    status, text = plain(ask(side, agent))
    assert status == 500 and text.startswith(f"Failed to ask nudgenik: oneshot execute: {MODEL}: ")


def test_session_errors(side, workspace_id, socket_name):
    set_target(side, MODEL)
    assert plain(side.get("/api/askNudgenik/")) == (400, "session ID is required\n")
    assert plain(side.get("/api/askNudgenik/no-such-session")) == (404, "session not found\n")
    silent = spawn(side, workspace_id, "quiet")  # prints nothing: there is no reply to read
    assert plain(ask(side, silent)) == (400, "No response found in session output\n")
    set_target(side, "")  # the reply is looked for before the target, as in schmux
    assert plain(ask(side, silent))[0] == 400
    TmuxSessions(socket_name).kill(session_name_for(silent))  # in the records, gone from tmux
    status, text = plain(ask(side, silent))
    assert status == 500 and text.startswith(f"Failed to ask nudgenik: capture tmux session {silent}: ")
    side.post("/api/workspaces/scan")  # drops the record


# --- agent signals and clearing -------------------------------------------------------------


def emit(state_and_message: str) -> str:
    """A shell command that prints a signal; its two halves keep the echoed command line from being one."""
    return f"printf '%s%s\\n' '--<[schmux:' {shlex.quote(state_and_message + ']>--')}"


def test_signals_in_a_watched_terminal_set_the_nudge_and_input_clears_it(side, workspace_id, tmp_path):
    set_target(side, "")
    session_id = spawn(side, workspace_id, "shell")
    client = JsonSocket(side.port, f"/ws/terminal/{session_id}?token={side.token}")
    go_on = [tmp_path / "first", tmp_path / "second"]

    def waits_for(path: Path) -> str:
        return f"while [ ! -e {shlex.quote(str(path))} ]; do sleep 0.1; done"

    def shows(**expected):
        def check():
            item = session(side, session_id)
            return all(item.get(key) == value for key, value in expected.items()) and item

        return wait_until(check)

    def cleared():
        return wait_until(lambda: "nudge_state" not in (item := session(side, session_id)) and item)

    try:
        client.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
        # One command line (its Enter clears nothing yet): a signal twice (a redraw counts once),
        # a state that is no signal, then "working" and "completed" as the agent goes on.
        steps = [
            emit("needs_input:Approve the plan?"),
            emit("needs_input:Approve the plan?"),
            emit("bogus_state:ignored"),
            waits_for(go_on[0]),
            emit("working:on it"),
            waits_for(go_on[1]),
            emit("completed:Plan carried out"),
        ]
        client.send({"type": "input", "data": "; ".join(steps) + "\r"})
        shows(nudge_state="Needs Authorization", nudge_summary="Approve the plan?", nudge_seq=1)
        go_on[0].touch()
        assert cleared()["nudge_seq"] == 1  # working clears, and rises nothing
        go_on[1].touch()
        shows(nudge_state="Completed", nudge_summary="Plan carried out", nudge_seq=2)

        client.send({"type": "input", "data": "echo typed"})  # no Enter: the nudge stays
        client.wait_messages(lambda ms: "echo typed" in client.text())
        assert session(side, session_id)["nudge_state"] == "Completed"
        client.send({"type": "input", "data": "\r"})  # Enter answers: cleared
        assert cleared()["nudge_seq"] == 2

        client.send({"type": "input", "data": emit("needs_testing:Try the new page") + "\r"})
        shows(nudge_state="Needs User Testing", nudge_seq=3)
        client.send({"type": "input", "data": "\t"})  # Tab answers too
        cleared()
        client.send({"type": "input", "data": "\x15" + emit("error:Build failed") + "\r"})  # ^U: a fresh line
        shows(nudge_state="Error", nudge_summary="Build failed", nudge_seq=4)
        client.send({"type": "input", "data": "\x1b[Z"})  # and Shift-Tab
        assert cleared()["nudge_seq"] == 4
    finally:
        client.close()
        side.post(f"/api/sessions/{session_id}/dispose")


def test_a_signal_nobody_watched_is_noticed_when_nudgenik_reads_the_pane(
    side, workspace_id, tools, socket_name, openai_standin
):
    targets = side.get("/api/config").json()["run_targets"]
    command = f"sh {tools / 'signaller.sh'} completed:Shipped"
    targets.append({"name": "signals", "type": "command", "command": command})
    assert side.post("/api/config", json={"run_targets": targets}).status_code == 200
    session_id = spawn(side, workspace_id, "signals")
    set_target(side, MODEL)
    openai_standin.script = Script(tokens=[json.dumps(ANSWER)])
    wait_until(lambda: "schmux:completed" in pane(socket_name, session_id))
    assert ask(side, session_id).status_code == 200
    item = session(side, session_id)
    assert item["nudge_state"] == "Completed" and item["nudge_summary"] == "Shipped" and item["nudge_seq"] == 1
    assert ask(side, session_id).status_code == 200  # the same signal, read again: not counted again
    assert session(side, session_id)["nudge_seq"] == 1
    side.post(f"/api/sessions/{session_id}/dispose")


# --- the background checker -----------------------------------------------------------------


def test_the_checker_stores_an_answer_for_a_quiet_session(tmp_path, tools, remote, openai_standin):
    """Its own sidecar: the checker asks about every quiet session, which would touch the other tests'."""
    socket_name = f"miso-check-{uuid.uuid4().hex[:8]}"
    env = {
        "MISO_OPENAI_API_KEY": "sk-test-openai",
        "MISO_OPENAI_BASE_URL": openai_standin.base_url,
        "MISO_TMUX_SOCKET": socket_name,
    }
    side = Sidecar(tmp_path / "data", env=env)
    try:
        targets = [{"name": "fake-agent", "type": "command", "command": f"sh {tools / 'fake-agent.sh'}"}]
        assert side.post("/api/config", json={"run_targets": targets, "nudgenik": {"target": MODEL}}).status_code == 200
        openai_standin.script = Script(tokens=[json.dumps(ANSWER)])
        spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "checked", "targets": {"fake-agent": 1}})
        session_id = spawned.json()[0]["session_id"]
        # Quiet for 15 s, and the checker looks every 15 s after its first 10 s.
        item = wait_until(lambda: (s := session(side, session_id)).get("nudge_state") and s, timeout=75, interval=1)
        assert item["nudge_state"] == "Completed" and item["nudge_summary"] == "Retry loop done"
        assert "nudge_seq" not in item  # NudgeNik's answers do not ring: only agent signals do
        asked = [r for r in openai_standin.requests if r.json and REPLY in json.dumps(r.json)]
        assert asked and asked[0].json["response_format"]["json_schema"]["name"] == "nudgenik"
        # No provider key for anthropic in this sidecar.
        assert side.post("/api/config", json={"nudgenik": {"target": "anthropic:claude-x"}}).status_code == 200
        missing = side.get(f"/api/askNudgenik/{session_id}")
        assert (missing.status_code, missing.text) == (503, "Nudgenik target missing required secrets\n")
    finally:
        side.terminate()
        TmuxSessions(socket_name).kill_server()

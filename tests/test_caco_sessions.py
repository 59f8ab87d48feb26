"""Caco's sessions end to end: real sidecar, real task processes, the page's WebSocket.

The sessions run on ``openai:gpt-test``, which the OpenAI stand-in answers with scripted turns
(text streamed a word at a time, tool calls in OpenAI's wire format). Assertions are on what
Caco's page reads: HTTP answers and the frames of ``/caco/ws``.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest

from tests.caco_client import (
    API,
    complete,
    create_session,
    history_complete,
    messages_of,
    page_socket,
    send,
    shown,
)
from tests.conftest import cloud_env
from tests.sidecar import Sidecar
from tests.standins.server import Script, ScriptedToolCall, Turn

pytestmark = pytest.mark.timeout(120)
MODEL = "openai:gpt-test"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("caco-workspace")


@pytest.fixture(scope="module")
def caco(tmp_path_factory, workspace, openai_standin, anthropic_standin, ollama_standin):
    data_dir: Path = tmp_path_factory.mktemp("caco-data")
    env = cloud_env(openai_standin, anthropic_standin, ollama_standin)
    env.update({"MISO_PROVIDER": "openai", "MISO_MODEL": "gpt-test", "MISO_CACO_ROOT": str(workspace)})
    side = Sidecar(data_dir, env=env)
    yield side
    side.terminate()


def _script(standin, *turns: Turn, **options) -> None:
    standin.script = Script(turns=list(turns), **options)


def _call(tool: str, **arguments) -> ScriptedToolCall:
    return ScriptedToolCall(tool, arguments)


def _dir(tmp_path: Path, name: str) -> str:
    path = tmp_path / name
    path.mkdir()
    return str(path)


def test_a_whole_turn_streams_over_the_socket_and_replays_as_history(caco, openai_standin, tmp_path):
    cwd = _dir(tmp_path, "project")
    Path(cwd, "notes.txt").write_text("alpha\nbeta\ngamma\n")
    _script(
        openai_standin,
        Turn("", [_call("render_file_contents", path="notes.txt", startLine=2, endLine=3)]),
        Turn("The file has three lines and I showed two of them."),
    )
    session = create_session(caco, cwd, model=MODEL)
    assert session["cwd"] == str(Path(cwd).resolve()) and session["model"] == MODEL
    page = page_socket(caco)
    try:
        answer = send(caco, session["sessionId"], "show me the notes")
        assert answer == {"ok": True, "sessionId": session["sessionId"]}
        frames = page.wait_messages(lambda f: complete(session["sessionId"])(f) and list(f), timeout=60)
    finally:
        page.close()
    sid = session["sessionId"]
    ours = [f for f in frames if f.get("sessionId") == sid]
    kinds = [f["type"] if f["type"] != "activity" else f"activity:{f['item']['type']}" for f in ours]
    user = ours[0]
    assert user["type"] == "message" and user["message"]["role"] == "user"
    assert user["message"]["content"] == "show me the notes" and user["message"]["source"] == "user"
    assert user["message"]["hasImage"] is False and user["message"]["timestamp"].endswith("Z")
    # The reply's bubble opens as soon as the agent has the message, then the turns follow.
    assert ours[1]["message"] == {
        "id": f"msg_{user['message']['id']}",
        "role": "assistant",
        "content": "",
        "status": "streaming",
    }
    tool = next(f["item"] for f in ours if f["type"] == "activity" and f["item"]["type"] == "tool")
    assert tool["text"] == "▶ render_file_contents"
    assert json.loads(tool["details"].removeprefix("Arguments: ")) == {
        "path": "notes.txt",
        "startLine": 2,
        "endLine": 3,
    }
    output = next(f for f in ours if f["type"] == "output")
    result = next(f["item"] for f in ours if f["type"] == "activity" and f["item"]["type"] == "tool-result")
    assert result == {
        "type": "tool-result",
        "text": "✓ render_file_contents",
        "details": f"[Output: {output['outputId']}]",
    }
    assert kinds.index("output") < kinds.index("activity:tool-result")
    assert kinds.count("activity:turn") == 2
    deltas = [f["message"]["deltaContent"] for f in ours if f["type"] == "message" and "deltaContent" in f["message"]]
    # Streamed before the end (a page that keeps up gets the words one by one; what waited for
    # the socket comes joined, on a loaded machine all of it).
    assert deltas and "".join(deltas) == "The file has three lines and I showed two of them."
    assert kinds.index("message", kinds.index("activity:tool-result")) < len(kinds) - 1
    end = ours[-1]["message"]
    assert end == {
        "id": f"msg_{user['message']['id']}",
        "role": "assistant",
        "content": "The file has three lines and I showed two of them.",
        "status": "complete",
    }
    # The output the page fetches: the lines shown, raw and as JSON.
    raw = caco.get(f"{API}/outputs/{output['outputId']}", headers=caco.auth)
    assert raw.status_code == 200 and raw.text == "beta\ngamma" or raw.text == "beta\ngamma\n"
    described = caco.get(f"{API}/outputs/{output['outputId']}?format=json", headers=caco.auth).json()
    assert described["metadata"]["type"] == "file" and described["metadata"]["startLine"] == 2

    # A page that reconnects asks for the history and sees what it saw live, with the same ids.
    again = page_socket(caco)
    try:
        again.send({"type": "requestHistory", "sessionId": sid})
        replay = again.wait_messages(lambda f: history_complete(sid)(f) and list(f))
    finally:
        again.close()
    replayed = messages_of(replay, sid)
    assert shown(replayed) == shown(messages_of(frames, sid))
    assert replayed[0]["content"] == "show me the notes" and replayed[0]["source"] == "user"
    assert replayed[1]["outputs"] == [output["outputId"]]
    assert replay[-1] == {"type": "historyComplete", "sessionId": sid}

    info = caco.get(f"{API}/session", params={"sessionId": sid}, headers=caco.auth).json()
    assert info == {"sessionId": sid, "cwd": session["cwd"], "isActive": True, "hasMessages": True}
    state = caco.get(f"{API}/sessions/{sid}/state", headers=caco.auth).json()
    assert state == {"sessionId": sid, "status": "idle", "cwd": session["cwd"], "isActive": True}


def test_the_seeds_older_socket_forms_still_work(caco, openai_standin, tmp_path):
    """``/ws?sessionId=`` streams that history on connect; ``subscribe`` narrows a socket to its sessions."""
    first = create_session(caco, _dir(tmp_path, "one"), model=MODEL)["sessionId"]
    second = create_session(caco, _dir(tmp_path, "two"), model=MODEL)["sessionId"]
    _script(openai_standin, Turn("one answered"))
    watcher = page_socket(caco)
    try:
        send(caco, first, "hello one")
        watcher.wait_messages(complete(first))
    finally:
        watcher.close()
    on_connect = page_socket(caco, f"sessionId={first}")
    narrowed = page_socket(caco)
    try:
        history = on_connect.wait_messages(lambda f: history_complete(first)(f) and list(f))
        assert [m["role"] for m in messages_of(history, first)] == ["user", "assistant"]
        narrowed.send({"type": "subscribe", "sessionId": second})
        narrowed.send({"type": "ping", "id": 7})
        narrowed.wait_messages(lambda f: {"type": "pong", "id": 7} in f)
        _script(openai_standin, Turn("an answer"), Turn("an answer"))  # both sessions ask at about the same time
        send(caco, second, "hello two")
        send(caco, first, "hello again")
        narrowed.wait_messages(complete(second))
        on_connect.wait_messages(complete(first))  # its history came whole, without status: this one is live
        on_connect.wait_messages(complete(second))  # no subscribe: every session, as Caco's 8a7e1d9 page
        time.sleep(0.3)
        assert all(f.get("sessionId") in (second, None) for f in narrowed.messages if f["type"] != "pong")
    finally:
        on_connect.close()
        narrowed.close()


def test_each_client_has_its_own_active_session(caco, tmp_path):
    a = create_session(caco, _dir(tmp_path, "a"), client="page-a", model=MODEL)["sessionId"]
    b = create_session(caco, _dir(tmp_path, "b"), client="page-b", model=MODEL)["sessionId"]
    default = create_session(caco, _dir(tmp_path, "c"), model=MODEL)["sessionId"]
    listing = caco.get(f"{API}/sessions", headers=caco.auth).json()
    assert listing["activeSessionId"] == default  # the default client's pointer, as Caco
    # The preferred model is among the models the page lists, so the page can highlight it.
    preferred = caco.get(f"{API}/preferences", headers=caco.auth).json()["lastModel"]
    assert preferred in [m["id"] for m in listing["models"]]
    assert caco.get(f"{API}/session", headers=caco.auth).json()["sessionId"] == default
    # Resuming for one client moves only that client's pointer.
    resumed = caco.post(f"{API}/sessions/{a}/resume", headers={**caco.auth, "X-Client-ID": "page-b"})
    assert resumed.status_code == 200 and resumed.json()["success"] is True and resumed.json()["sessionId"] == a
    assert caco.get(f"{API}/sessions", headers=caco.auth).json()["activeSessionId"] == default
    # A new session for page-b clears only page-b's pointer; deleting b reports it was active.
    gone = caco.delete(f"{API}/sessions/{b}", headers={**caco.auth, "X-Client-ID": "page-b"})
    assert gone.status_code == 200 and gone.json() == {"success": True, "wasActive": True}
    assert b not in json.dumps(caco.get(f"{API}/sessions", headers=caco.auth).json()["grouped"])
    groups = caco.get(f"{API}/sessions", headers=caco.auth).json()["grouped"]
    assert [s["sessionId"] for s in groups[str(Path(tmp_path, "a").resolve())]] == [a]


def test_one_active_session_per_cwd(caco, tmp_path):
    cwd = _dir(tmp_path, "shared")
    holder = create_session(caco, cwd, model=MODEL)["sessionId"]
    second = caco.post(f"{API}/sessions", json={"cwd": cwd}, headers=caco.auth)
    resolved = str(Path(cwd).resolve())
    assert second.status_code == 409
    assert second.json() == {
        "error": f"Directory {resolved} is locked by session {holder}",
        "code": "CWD_LOCKED",
        "sessionId": holder,
    }


def test_every_turn_ends_with_complete_even_without_text_or_when_the_model_fails(caco, openai_standin, tmp_path):
    sid = create_session(caco, _dir(tmp_path, "ends"), model=MODEL)["sessionId"]
    page = page_socket(caco)
    try:
        _script(openai_standin, Turn(""))
        send(caco, sid, "say nothing")
        first = page.wait_messages(complete(sid))[0]["message"]
        assert first["content"] == "" and first["status"] == "complete"
        _script(openai_standin, http_error=500)
        send(caco, sid, "fail please")
        ended = page.wait_messages(complete(sid, 2))[1]["message"]
        errors = [f["item"]["text"] for f in page.messages if f["type"] == "activity" and f["item"]["type"] == "error"]
    finally:
        page.close()
    assert errors and errors[0].startswith("Error: ")
    assert ended["content"].startswith("Error: ") and ended["status"] == "complete"
    history = caco.get(f"{API}/debug/messages", headers=caco.auth)
    assert history.status_code == 200


def test_bad_input_gets_cacos_answers_and_changes_nothing(caco, tmp_path, workspace):
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    cases = [
        (
            "post",
            f"{API}/sessions",
            {"cwd": str(tmp_path / "missing")},
            400,
            f"Path does not exist: {tmp_path / 'missing'}",
        ),
        ("post", f"{API}/sessions", {"cwd": str(a_file)}, 400, f"Path is not a directory: {a_file}"),
        ("post", f"{API}/sessions/nope/messages", {"prompt": "hi"}, 404, "Session not found: nope"),
        ("post", f"{API}/sessions/nope/resume", None, 400, "Session nope not found"),
        ("delete", f"{API}/sessions/nope", None, 400, "Session nope not found"),
        ("get", f"{API}/sessions/nope/state", None, 404, "Session not found: nope"),
    ]
    for method, path, body, status, message in cases:
        response = caco.http.request(method.upper(), path, json=body, headers=caco.auth)
        assert (response.status_code, response.json()) == (status, {"error": message}), path
    sid = create_session(caco, _dir(tmp_path, "bad"), model=MODEL)["sessionId"]
    before = caco.get(f"{API}/applet/state", headers=caco.auth).json()
    tiny_png = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nrest").decode()
    refusals = [
        ({}, 400, "prompt is required"),
        ({"prompt": ""}, 400, "prompt is required"),
        ({"prompt": "x", "imageData": "https://example.com/cat.png", "appletState": {"changed": 1}}, 400, None),
        ({"prompt": "x", "imageData": "data:image/png;base64,@@@"}, 400, None),
        ({"prompt": "x", "source": "robot"}, 400, None),
        ({"prompt": "x", "source": "agent", "fromSession": sid}, 400, "Cannot post to own session"),
    ]
    for body, status, message in refusals:
        response = caco.post(f"{API}/sessions/{sid}/messages", json=body, headers=caco.auth)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert isinstance(error, str) and (message is None or error == message)
    big = "data:image/png;base64," + "A" * (12 * 1024 * 1024)
    too_big = caco.post(f"{API}/sessions/{sid}/messages", json={"prompt": "x", "imageData": big}, headers=caco.auth)
    assert too_big.status_code == 413 and isinstance(too_big.json()["error"], str)
    assert caco.get(f"{API}/applet/state", headers=caco.auth).json() == before
    assert caco.get(f"{API}/session", params={"sessionId": sid}, headers=caco.auth).json()["hasMessages"] is False
    assert tiny_png  # a well-formed image is accepted (see the image test)
    # Frames that are not JSON, or of an unknown type, get an error frame; the socket stays.
    page = page_socket(caco)
    try:
        page.send_text("not json")
        page.send({"type": "teleport"})
        page.send({"type": "requestHistory"})
        page.send({"type": "sendMessage", "id": 3})
        page.send({"type": "ping", "id": 9})
        page.wait_messages(lambda f: {"type": "pong", "id": 9} in f)
        errors = [f for f in page.messages if f["type"] == "error"]
    finally:
        page.close()
    assert errors == [
        {"type": "error", "error": "Invalid JSON message"},
        {"type": "error", "error": "Unknown message type: teleport"},
        {"type": "error", "error": "sessionId is required for requestHistory"},
        {"type": "error", "id": 3, "error": "Use POST /caco/api/sessions/:id/messages instead"},
    ]


def test_a_message_from_the_page_without_an_image_is_taken(caco, openai_standin, tmp_path):
    """Caco's page sends ``imageData: ""`` and an empty navigation with every message."""
    sid = create_session(caco, _dir(tmp_path, "page-form"), model=MODEL)["sessionId"]
    _script(openai_standin, Turn("fine"))
    page = page_socket(caco)
    try:
        body = {"imageData": "", "appletNavigation": {"stack": [], "urlParams": {}}}
        send(caco, sid, "plain text", **body)
        user = messages_of(page.wait_messages(lambda f: complete(sid)(f) and list(f)), sid)[0]
    finally:
        page.close()
    assert user["hasImage"] is False and user["content"] == "plain text"


def test_a_pasted_image_reaches_the_agent(caco, openai_standin, tmp_path):
    sid = create_session(caco, _dir(tmp_path, "image"), model=MODEL)["sessionId"]
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    _script(openai_standin, Turn("a fine picture"))
    page = page_socket(caco)
    try:
        send(caco, sid, "what is this?", imageData="data:image/png;base64," + base64.b64encode(png).decode())
        frames = page.wait_messages(lambda f: complete(sid)(f) and list(f))
    finally:
        page.close()
    user = messages_of(frames, sid)[0]
    assert user["hasImage"] is True and user["content"] == "what is this?"
    asked = openai_standin.requests[-1].json["messages"][-1]
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    assert asked["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    again = page_socket(caco)
    try:
        again.send({"type": "requestHistory", "sessionId": sid})
        replayed = messages_of(again.wait_messages(lambda f: history_complete(sid)(f) and list(f)), sid)
    finally:
        again.close()
    assert replayed[0]["hasImage"] is True and "data:image" not in json.dumps(replayed)


def test_routes_need_a_token_and_writes_need_an_allowed_origin(caco, tmp_path):
    assert caco.http.get(f"{API}/sessions").status_code == 401
    response = caco.post(
        f"{API}/sessions", json={"cwd": str(tmp_path)}, headers={**caco.auth, "Origin": "https://evil.example"}
    )
    assert response.status_code == 403 and isinstance(response.json()["error"], str)


def test_an_applet_saved_by_the_agent_is_listed_loaded_and_its_state_reaches_the_agent(caco, openai_standin, tmp_path):
    sid = create_session(caco, _dir(tmp_path, "applet"), model=MODEL)["sessionId"]
    html = '<button onclick="setAppletState({picked: 2})">2</button>'
    _script(
        openai_standin,
        Turn("", [_call("save_applet", slug="number-picker", name="Number picker", html=html, js="// none")]),
        Turn("Open it: [Number picker](/?applet=number-picker)"),
    )
    page, other = page_socket(caco), page_socket(caco)
    try:
        send(caco, sid, "make me a number picker")
        page.wait_messages(complete(sid))
        listed = caco.get(f"{API}/applets", headers=caco.auth).json()["applets"]
        assert [(a["slug"], a["name"]) for a in listed] == [("number-picker", "Number picker")]
        loaded = caco.post(f"{API}/applets/number-picker/load", headers=caco.auth).json()
        assert loaded == {
            "ok": True,
            "slug": "number-picker",
            "title": "Number picker",
            "html": html,
            "js": "// none",
            "css": None,
        }
        history = caco.get(f"{API}/applets/number-picker/history", headers=caco.auth).json()["commits"]
        assert history[0]["message"] == "Create applet number-picker: Number picker"
        # The page pushes state; the other page hears of it, the agent reads it.
        page.send({"type": "setState", "data": {"picked": 2}})
        assert other.wait_messages(lambda f: [x for x in f if x["type"] == "stateUpdate"])[0]["data"] == {"picked": 2}
        page.send({"type": "getState", "id": "g1"})
        assert page.wait_messages(lambda f: [x for x in f if x["type"] == "state"])[0] == {
            "type": "state",
            "id": "g1",
            "data": {"picked": 2},
        }
        _script(
            openai_standin,
            Turn("", [_call("get_applet_state", key="picked"), _call("set_applet_state", data={"shown": True})]),
            Turn("You picked 2."),
        )
        send(caco, sid, "what did I pick?")
        page.wait_messages(complete(sid, 2))
        pushed = page.wait_messages(
            lambda f: [x for x in f if x["type"] == "stateUpdate" and x["data"] == {"shown": True}]
        )
    finally:
        page.close()
        other.close()
    tool_results = [m for m in openai_standin.requests[-1].json["messages"] if m["role"] == "tool"]
    assert tool_results[-2]["content"].startswith('Applet state["picked"]: 2')
    assert pushed[0] == {"type": "stateUpdate", "data": {"shown": True}}
    assert caco.get(f"{API}/applet/state", headers=caco.auth).json() == {"state": {"picked": 2, "shown": True}}


def test_a_session_runs_on_the_local_model_through_llama_cpp(tmp_path_factory, tmp_path):
    """Only a local model: the session's agent calls this runtime's own OpenAI-compatible API.

    The tiny model's weights are random, so its words are noise; what is asserted is the path:
    Caco's tools and prompt went to llama.cpp, its reply streamed back as deltas, and the turn
    ended with ``complete`` holding what was streamed.
    """
    from tests.llm_fixtures import write_tiny_llama_gguf
    from tests.test_llm_tools import HERMES_TEMPLATE

    data_dir = tmp_path_factory.mktemp("caco-local")
    (data_dir / "models").mkdir()
    write_tiny_llama_gguf(data_dir / "models" / "tiny-agent.gguf", chat_template=HERMES_TEMPLATE, context_length=16384)
    side = Sidecar(data_dir, env={"MISO_CACO_ROOT": str(tmp_path)})
    try:
        assert side.post("/v1/settings/llm-config", json={"n_ctx": 16384}).status_code == 200
        assert side.post("/v1/llm/server/start", json={"model": "tiny-agent"}).status_code == 200
        models = [m["id"] for m in side.get(f"{API}/sessions", headers=side.auth).json()["models"]]
        assert "local:tiny-agent" in models
        sid = create_session(side, _dir(tmp_path, "local"), model="local:tiny-agent")["sessionId"]
        page = page_socket(side)
        try:
            send(side, sid, "say something")
            frames = page.wait_messages(lambda f: complete(sid)(f) and list(f), timeout=90)
        finally:
            page.close()
        end = [m for m in messages_of(frames, sid) if m.get("status") == "complete"][-1]
        assert not end["content"].startswith("Error:"), end
        debug = side.get(f"{API}/debug/messages", headers=side.auth).json()
        assert debug["messages"][0] == {"type": "user.message", "content": "say something", "hasToolRequests": False}
        replies = [m for m in debug["messages"] if m["type"] == "assistant.message"]
        assert replies and (replies[0]["content"] or replies[0]["hasToolRequests"])
        deltas = "".join(m.get("deltaContent", "") for m in messages_of(frames, sid))
        if replies[-1]["content"]:  # text the model wrote streamed to the page before the turn ended
            assert deltas and replies[-1]["content"] in end["content"]
    finally:
        side.terminate()


def test_a_session_whose_process_dies_ends_its_turn_with_an_error(caco, openai_standin, tmp_path):
    """A crash of the session's process: the page gets an error and its ``complete``, never a hang;
    the next message starts a new process and the session goes on."""
    import os
    import signal

    from tests.test_maria_tasks import _worker_pid

    cwd = Path(_dir(tmp_path, "crash"))
    sid = create_session(caco, str(cwd), model=MODEL)["sessionId"]
    _script(openai_standin, Turn("", [_call("run_and_display", command="sleep 30")]))
    page = page_socket(caco)
    try:
        send(caco, sid, "wait a while")
        os.kill(_worker_pid(cwd), signal.SIGKILL)
        end = page.wait_messages(complete(sid), timeout=30)[0]["message"]
        errors = [f["item"]["text"] for f in page.messages if f["type"] == "activity" and f["item"]["type"] == "error"]
        assert end["content"].startswith("Error: the task's process exited") and errors
        _script(openai_standin, Turn("back again"))
        send(caco, sid, "are you there?")
        assert page.wait_messages(complete(sid, 2), timeout=30)[1]["message"]["content"] == "back again"
    finally:
        page.close()


def test_one_agent_sends_another_work_through_the_session_api(caco, openai_standin, tmp_path):
    asker = create_session(caco, _dir(tmp_path, "asker"), model=MODEL)["sessionId"]
    helper = create_session(caco, _dir(tmp_path, "helper"), model=MODEL)["sessionId"]

    def respond(request: dict) -> Turn:
        last = request["messages"][-1]
        text = json.dumps(request["messages"])
        if last["role"] == "user" and last["content"].startswith("[agent:"):
            return Turn("helper here, on it")
        if last["role"] == "tool":
            return Turn("asked the helper" if "get_session_state" not in text else "the helper is there")
        return Turn(
            "",
            [
                _call("get_session_state", sessionId=helper),
                _call("send_agent_message", sessionId=helper, message="please count the files"),
                _call("send_agent_message", sessionId=asker, message="talking to myself"),
            ],
        )

    openai_standin.script = Script(responder=respond)
    page = page_socket(caco)
    try:
        send(caco, asker, "ask the helper to count the files")
        page.wait_messages(complete(asker))
        page.wait_messages(complete(helper))
    finally:
        page.close()
    arrived = messages_of(page.messages, helper)[0]
    assert arrived["role"] == "user" and arrived["content"] == "please count the files"
    assert arrived["source"] == "agent" and arrived["fromSession"] == asker
    results = [f["item"] for f in page.messages if f["type"] == "activity" and f["item"]["type"] == "tool-result"]
    assert [r["text"] for r in results] == [
        "✓ get_session_state",
        "✓ send_agent_message",
        "✗ send_agent_message",
    ]
    assert "cannot send a message to itself" in results[2]["details"]
    state = json.loads(json.loads(results[0]["details"])["content"])
    assert state["sessionId"] == helper and state["status"] == "idle"


def test_the_socket_refuses_a_foreign_page_and_a_missing_token(caco):
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
    }
    foreign = caco.http.get(f"/caco/ws?token={caco.token}", headers={**upgrade, "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and isinstance(foreign.json()["error"], str)
    assert caco.http.get("/caco/ws", headers=upgrade).status_code == 401
    same_origin = caco.http.get(f"/caco/ws?token={caco.token}", headers={**upgrade, "Origin": caco.base_url})
    assert same_origin.status_code == 101

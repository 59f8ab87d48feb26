"""/ws/terminal and /ws/dashboard over real tmux sessions in real git worktrees."""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from miso_runtime.agents.tmux_sessions import TmuxSessions, session_name_for
from tests.eeg import wait_until
from tests.gitrepo import bare_remote
from tests.sidecar import Sidecar
from tests.ws_client import JsonSocket

HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    return bare_remote(tmp_path_factory.mktemp("remote"), "term")


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-term-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()  # and its socket file, which tmux 3.3 leaves behind


@pytest.fixture(scope="module")
def side(tmp_path_factory, socket_name):
    sidecar = Sidecar(tmp_path_factory.mktemp("term-data"), env={"MISO_TMUX_SOCKET": socket_name})
    targets = [
        {"name": "shell", "type": "command", "command": "sh"},
        {"name": "quick", "type": "command", "command": "echo finished"},
    ]
    assert sidecar.post("/api/config", json={"run_targets": targets}).status_code == 200
    yield sidecar
    sidecar.terminate()


@pytest.fixture(scope="module")
def shell_session(side, remote) -> str:
    spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "term", "targets": {"shell": 1}}).json()
    return spawned[0]["session_id"]


def terminal(side, session_id: str, query: str = "") -> JsonSocket:
    return JsonSocket(side.port, f"/ws/terminal/{session_id}?token={side.token}{query}")


def types(messages):
    return [m["type"] for m in messages]


def test_full_then_typed_commands_echo_back_with_utf8_and_colour_intact(side, shell_session):
    client = terminal(side, shell_session)
    try:
        first = client.wait_messages(lambda ms: ms and ms[0])
        assert first["type"] == "full" and isinstance(first["seq"], int) and first["epoch"]
        client.send({"type": "input", "data": "echo hel''lo-$((6*7))\r"})
        client.wait_messages(lambda ms: "hello-42" in client.text())
        client.send({"type": "input", "data": "printf '\\033[31mred\\033[0m h\\303\\251llo \\342\\234\\223\\n'\r"})
        client.wait_messages(lambda ms: "\x1b[31mred\x1b[0m héllo ✓" in client.text())
        appends = [m for m in client.messages if m["type"] == "append"]
        assert [m["seq"] for m in appends] == sorted(m["seq"] for m in appends)
        assert all("\ufffd" not in m["content"] for m in appends)  # no UTF-8 character was split
    finally:
        client.close()


def test_resize_changes_the_pane(side, shell_session, socket_name):
    client = terminal(side, shell_session)
    try:
        client.wait_messages(lambda ms: ms)
        client.send({"type": "resize", "data": '{"cols": 100, "rows": 30}'})

        def width() -> str:
            shown = [
                "tmux",
                "-L",
                socket_name,
                "display",
                "-p",
                "-t",
                f"={shell_session}:",
                "#{window_width}x#{window_height}",
            ]
            return subprocess.run(shown, capture_output=True, text=True).stdout.strip()

        wait_until(lambda: width() == "100x30", timeout=5)
    finally:
        client.close()


def test_a_second_viewer_displaces_the_first(side, shell_session):
    first = terminal(side, shell_session)
    first.wait_messages(lambda ms: ms)
    second = terminal(side, shell_session)
    try:
        second.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
        first.wait_messages(lambda ms: "displaced" in types(ms))
        wait_until(lambda: first.close_code is not None, timeout=5)
        second.send({"type": "input", "data": "echo still-here\r"})
        second.wait_messages(lambda ms: "still-here" in second.text())
    finally:
        first.close()
        second.close()


def test_pause_buffers_and_resume_loses_nothing(side, shell_session):
    client = terminal(side, shell_session)
    try:
        client.wait_messages(lambda ms: ms)
        client.send({"type": "pause"})
        time.sleep(0.2)
        before = len(client.messages)
        client.send({"type": "input", "data": "seq 1 3000 | tr '\\n' ' '; echo END-OF-SEQ\r"})
        time.sleep(1.0)
        assert len(client.messages) == before  # nothing while paused
        client.send({"type": "resume"})
        client.wait_messages(lambda ms: "END-OF-SEQ\r\n" in client.text() or "END-OF-SEQ\n" in client.text())
        output = client.text()
        assert " ".join(str(i) for i in range(1, 3001)) in output.replace("\r\n", "")
    finally:
        client.close()


def type_directly(socket_name: str, session_id: str, text: str) -> None:
    """Keys typed into the session by tmux itself, as if by someone at the attach command."""
    target = f"={session_name_for(session_id)}:"
    subprocess.run(["tmux", "-L", socket_name, "send-keys", "-t", target, "-l", text], check=True)
    subprocess.run(["tmux", "-L", socket_name, "send-keys", "-t", target, "Enter"], check=True)


def test_reconnect_with_last_seq_gets_only_what_was_missed(side, shell_session, socket_name):
    client = terminal(side, shell_session)
    client.wait_messages(lambda ms: ms)
    client.send({"type": "input", "data": "echo before-gap\r"})
    client.wait_messages(lambda ms: "before-gap" in client.text())
    time.sleep(0.3)
    last = client.messages[-1]
    epoch = next(m["epoch"] for m in client.messages if m["type"] == "full")
    client.close()  # the page reloads: output goes on while it is away
    type_directly(socket_name, shell_session, "echo during-$((6*7))-gap")
    time.sleep(0.5)
    back = terminal(side, shell_session, f"&last_seq={last['seq']}&epoch={epoch}")
    try:
        back.wait_messages(lambda ms: "during-42-gap\r\n" in back.text())
        assert back.messages[0]["type"] == "append"  # no full screen: only what it missed
        assert "before-gap" not in back.text()
        assert back.messages[0]["seq"] > last["seq"]
    finally:
        back.close()
    other = terminal(side, shell_session)  # another viewer's snapshot starts a new numbering...
    other.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
    other.close()
    again = terminal(side, shell_session, f"&last_seq={back.messages[-1]['seq']}&epoch={epoch}")
    try:  # ...so a client of the old one is redrawn whole
        again.wait_messages(lambda ms: ms)
        assert again.messages[0]["type"] == "full" and "during-42-gap" in again.messages[0]["content"]
    finally:
        again.close()


def test_a_slow_reader_gets_every_frame_whole(side, shell_session):
    """A client that reads nothing for a while, through a small buffer, while the terminal
    prints megabytes: the server's writes wait for it, and every frame arrives complete."""
    client = JsonSocket(
        side.port, f"/ws/terminal/{shell_session}?token={side.token}", receive_buffer_bytes=4096, read_delay_s=0.0
    )
    try:
        client.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
        slow = JsonSocket(
            side.port, f"/ws/terminal/{shell_session}?token={side.token}", receive_buffer_bytes=4096, read_delay_s=2.0
        )
    finally:
        client.close()
    try:
        time.sleep(0.5)  # its full went out; now output it does not read yet
        slow.send({"type": "input", "data": "seq 1 400000 | tr '\\n' ' '; echo SLOW-$((2*3))-END\r"})
        slow.wait_messages(lambda ms: "SLOW-6-END" in slow.text(), timeout=60)
        printed = slow.text().split("SLOW-$((2*3))-END", 1)[-1].split("SLOW-6-END")[0]
        numbers = [int(n) for n in re.findall(r"\d+", printed)]
        assert numbers == list(range(1, 400001))
        assert slow.reader_error is None
    finally:
        slow.close()


def test_malformed_messages_get_an_error_and_the_socket_stays(side, shell_session):
    client = terminal(side, shell_session)
    try:
        client.wait_messages(lambda ms: ms)
        client.send_text("not json")
        client.send({"type": "teleport"})
        client.send({"type": "resize", "data": '{"cols": -1, "rows": 2}'})
        client.send({"type": "input", "data": 5})
        errors = client.wait_messages(lambda ms: len([m for m in ms if m["type"] == "error"]) >= 4 and ms)
        contents = " ".join(m["content"] for m in errors if m["type"] == "error")
        assert "malformed message" in contents and "teleport" in contents and "cols" in contents
        client.send({"type": "input", "data": "echo alive\r"})
        client.wait_messages(lambda ms: "alive" in client.text())
    finally:
        client.close()


def test_unknown_and_finished_sessions_are_refused_before_the_upgrade(side, remote):
    headers = {**HANDSHAKE, "x-miso-auth": side.token}
    unknown = side.http.get("/ws/terminal/no-such-session", headers=headers)
    assert unknown.status_code == 404 and set(unknown.json()) == {"error"}
    spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "quick", "targets": {"quick": 1}}).json()
    finished = spawned[0]["session_id"]
    wait_until(
        lambda: (
            not next(s for w in side.get("/api/sessions").json() for s in w["sessions"] if s["id"] == finished)[
                "running"
            ]
        )
    )
    gone = side.http.get(f"/ws/terminal/{finished}", headers=headers)
    assert gone.status_code == 410 and gone.json() == {"error": "session not running"}
    assert httpx.get(f"{side.base_url}/ws/terminal/{finished}", headers=HANDSHAKE).status_code == 401


def test_dashboard_sends_the_state_then_each_change(side, remote):
    board = JsonSocket(side.port, f"/ws/dashboard?token={side.token}")
    try:
        first = board.wait_messages(lambda ms: ms and ms[0])
        assert first["type"] == "sessions" and isinstance(first["workspaces"], list)
        spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "dash", "targets": {"shell": 1}}).json()
        session_id = spawned[0]["session_id"]

        def shows(ms, predicate):
            return any(
                predicate(s) for m in ms[1:] if m["type"] == "sessions" for w in m["workspaces"] for s in w["sessions"]
            )

        board.wait_messages(lambda ms: shows(ms, lambda s: s["id"] == session_id), timeout=5)
        side.http.put(f"/api/sessions-nickname/{session_id}", json={"nickname": "dashed"}, headers=side.auth)
        board.wait_messages(
            lambda ms: shows(ms, lambda s: s["id"] == session_id and s.get("nickname") == "dashed"), timeout=5
        )
    finally:
        board.close()


def test_a_disposed_session_ends_its_terminal_with_an_append_the_dashboard_shows(side, remote):
    spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "ending", "targets": {"shell": 1}}).json()
    session_id = spawned[0]["session_id"]
    client = terminal(side, session_id)
    try:
        client.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
        assert side.post(f"/api/sessions/{session_id}/dispose").status_code == 200
        client.wait_messages(lambda ms: "[Session ended]" in client.text())
        last = client.messages[-1]
        # schmux's dashboard knows full/append/reconnect/displaced only: the end is written into the terminal.
        assert last["type"] == "append" and last["content"] == "\n[Session ended]"
        assert all(m["type"] in ("full", "append") for m in client.messages)
    finally:
        client.close()


def test_times_leave_as_rfc3339_with_their_offset(side, shell_session):
    session = next(s for w in side.get("/api/sessions").json() for s in w["sessions"] if s["id"] == shell_session)
    created = datetime.fromisoformat(session["created_at"].replace("Z", "+00:00"))
    assert session["created_at"].endswith("Z") and created.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - created).total_seconds()) < 600  # seconds ago, wherever the browser is

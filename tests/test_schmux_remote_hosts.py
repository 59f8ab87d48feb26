"""Remote hosts end to end, with no second machine.

The "remote host" is a shell script the flavor's connect command runs: it prints what a cloud
CLI prints (a reservation line, the machine's name, a session id; a password prompt for one
flavor), then execs the ``tmux -CC new-session -A -s schmux`` the runtime appends, under a
private tmux socket directory. To the runtime that is a real remote: a pseudo-terminal, a
control-mode tmux on the far end of a command, a hostname read with the flavor's regex. Killing
the script's process (the tmux client it became) is a real connection loss; the far tmux server
goes on, like a remote machine's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.eeg import wait_until
from tests.sidecar import Sidecar
from tests.ws_client import BinarySocket, JsonSocket

HOSTNAME_REGEX = r"Machine ready: (\S+)"
FAKE_REMOTE = """#!/bin/sh
# fake-remote <flavor | reconnect-HOST> tmux -CC new-session -A -s schmux
what=$1; shift
state={state}
case "$what" in
  reconnect-*) name=${{what#reconnect-}}; echo "Reattaching $name" ;;
  *) name="$what-box.test"; echo "Reserving a machine for $what..." ;;
esac
case "$what" in
  *ask*) printf 'Password: '; read -r pw; [ "$pw" = "open-sesame" ] || {{ echo "Permission denied"; exit 5; }} ;;
esac
case "$what" in
  *silent*) sleep 600.5 ;;  # a wait no other test runs (tests run in parallel)
esac
echo "Machine ready: $name"
echo "session-id: sid-$name"
echo $$ > "$state/${{name%%-box.test}}.pid"
export TMUX_TMPDIR="$state/tmux"
exec "$@"
"""


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    state = tmp_path_factory.mktemp("remote-state")
    (state / "tmux").mkdir()
    script = state / "fake-remote"
    script.write_text(FAKE_REMOTE.format(state=state))
    script.chmod(0o755)
    yield state
    subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": str(state / "tmux")}, check=False)


@pytest.fixture(scope="module")
def side(tmp_path_factory, state_dir):
    sidecar = Sidecar(
        tmp_path_factory.mktemp("remote-data"),
        env={"MISO_TMUX_SOCKET": f"miso-remote-{os.getpid()}", "MISO_REMOTE_READY_TIMEOUT_S": "4"},
    )
    targets = [{"name": "shell", "type": "command", "command": "sh"}]
    assert sidecar.post("/api/config", json={"run_targets": targets}).status_code == 200
    yield sidecar
    sidecar.terminate()


def add_flavor(side, state_dir: Path, flavor: str, **extra: str) -> str:
    body = {
        "flavor": flavor,
        "display_name": f"Lab {flavor}",
        "workspace_path": str(state_dir),
        "connect_command": f"{state_dir / 'fake-remote'} {{{{.Flavor}}}}",
        "reconnect_command": f"{state_dir / 'fake-remote'} reconnect-{{{{.Hostname}}}}",
        "hostname_regex": HOSTNAME_REGEX,
        **extra,
    }
    created = side.post("/api/config/remote-flavors", json=body)
    assert created.status_code == 200, created.text
    return created.json()["id"]


_sources = iter(range(2, 250))


def connect(side, flavor_id: str) -> httpx.Response:
    """``POST /api/remote/hosts/connect`` from a loopback address of its own: the 3-a-minute
    limit is per address, and each test is another client."""
    source = f"127.0.0.{next(_sources)}"
    with httpx.Client(base_url=side.base_url, transport=httpx.HTTPTransport(local_address=source)) as client:
        return client.post("/api/remote/hosts/connect", json={"flavor_id": flavor_id}, headers=side.auth)


def host_of(side, flavor_id: str) -> dict:
    return next(h for h in side.get("/api/remote/hosts").json() if h["flavor_id"] == flavor_id)


def wait_status(side, flavor_id: str, *statuses: str, timeout: float = 15.0) -> dict:
    return wait_until(lambda: (h := host_of(side, flavor_id))["status"] in statuses and h, timeout=timeout)


def processes_running(command_line: str) -> list[int]:
    """Pids whose command line is ``command_line`` (read from /proc, as pgrep -f does)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip() == command_line.encode()
            ):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_connect_provisions_then_connects_with_the_hostname_from_the_regex(side, state_dir):
    marker = state_dir / "alpha-provisioned"
    flavor_id = add_flavor(side, state_dir, "alpha", provision_command=f"touch {{{{.WorkspacePath}}}}/{marker.name}")
    accepted = connect(side, flavor_id)
    assert accepted.status_code == 202
    body = accepted.json()
    assert set(body) == {"flavor_id", "display_name", "status", "vcs", "provisioning_session_id"}
    assert (body["flavor_id"], body["display_name"], body["status"], body["vcs"]) == (
        flavor_id,
        "Lab alpha",
        "provisioning",
        "git",
    )
    host = wait_status(side, flavor_id, "connected")
    assert body["provisioning_session_id"] == f"provision-{host['id']}"
    assert host["id"].startswith("remote-") and host["hostname"] == "alpha-box.test"
    assert host["uuid"] == "sid-alpha-box.test"
    # The provision command runs once, on the host, after the first connect.
    wait_until(lambda: host_of(side, flavor_id)["provisioned"])
    assert marker.exists()
    assert host["connected_at"].endswith("Z") and host["expires_at"] > host["connected_at"]
    statuses = side.get("/api/remote/flavor-statuses").json()
    alpha = next(s for s in statuses if s["flavor"]["id"] == flavor_id)
    assert alpha["connected"] is True and alpha["status"] == "connected"
    assert (alpha["hostname"], alpha["host_id"]) == ("alpha-box.test", host["id"])
    assert "hostname_regex" not in alpha["flavor"]
    again = connect(side, flavor_id)  # connected already: the host itself, 200
    assert again.status_code == 200 and again.json()["id"] == host["id"]


def test_provisioning_terminal_shows_the_prompt_and_types_the_answer(side, state_dir):
    flavor_id = add_flavor(side, state_dir, "ask-good")
    body = connect(side, flavor_id).json()
    terminal = BinarySocket(side.port, f"/ws/provision/{body['provisioning_session_id']}?token={side.token}")
    try:
        terminal.wait_for(lambda data: b"Password: " in data)
        assert b"Reserving a machine for ask-good..." in terminal.data
        assert host_of(side, flavor_id)["status"] == "provisioning"
        terminal.send_json({"type": "resize", "data": json.dumps({"cols": 120, "rows": 40})})
        terminal.send_bytes(b"open-sesame\r")
        host = wait_status(side, flavor_id, "connected")
        assert host["hostname"] == "ask-good-box.test"
        terminal.wait_closed()  # control mode started: the provisioning terminal is done
        assert b"%begin" not in terminal.data  # the protocol is not shown as terminal output
    finally:
        terminal.close()


def test_a_wrong_password_ends_disconnected_and_leaves_no_process(side, state_dir):
    flavor_id = add_flavor(side, state_dir, "ask-bad")
    body = connect(side, flavor_id).json()
    terminal = BinarySocket(side.port, f"/ws/provision/{body['provisioning_session_id']}?token={side.token}")
    try:
        terminal.wait_for(lambda data: b"Password: " in data)
        terminal.send_json({"type": "input", "data": "guess\r"})
        terminal.wait_for(lambda data: b"Permission denied" in data)
        host = wait_status(side, flavor_id, "disconnected")
        assert host["hostname"] == ""
    finally:
        terminal.close()


def test_a_command_that_exits_at_once_or_never_reaches_tmux_is_disconnected(side, state_dir):
    gone = add_flavor(side, state_dir, "gone", connect_command="/bin/false {{.Flavor}}")
    assert connect(side, gone).status_code == 202
    wait_status(side, gone, "disconnected")
    silent = add_flavor(side, state_dir, "silent")  # prints, then waits forever
    started = time.monotonic()
    assert connect(side, silent).status_code == 202
    wait_status(side, silent, "disconnected", timeout=20)
    assert time.monotonic() - started < 15  # the 4 s ready timeout of this sidecar, not forever
    assert not [pid for pid in processes_running("sleep 600.5") if pid_alive(pid)]


def test_connect_stream_reports_progress_then_connected(side, state_dir):
    flavor_id = add_flavor(side, state_dir, "streamed")
    lines = []
    with side.http.stream(
        "GET", "/api/remote/hosts/connect/stream", params={"flavor_id": flavor_id}, headers=side.auth
    ) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("data: "):
                lines.append(line[len("data: ") :])
                if lines[-1] == "connected" or lines[-1].startswith("error"):
                    break
    assert "Reserving a machine for streamed..." in lines and "Machine ready: streamed-box.test" in lines
    assert lines[-1] == "connected"
    missing = side.get("/api/remote/hosts/connect/stream")
    assert missing.status_code == 400 and missing.text == "flavor_id required\n"
    with side.http.stream(
        "GET", "/api/remote/hosts/connect/stream", params={"flavor_id": "nope"}, headers=side.auth
    ) as stream:
        assert [line for line in stream.iter_lines() if line.startswith("data:")] == [
            "data: error: Flavor not found: nope"
        ]


def spawn_on(side, flavor_id: str) -> str:
    spawned = side.post("/api/spawn", json={"remote_flavor_id": flavor_id, "targets": {"shell": 1}})
    assert spawned.status_code == 200, spawned.text
    (result,) = spawned.json()
    assert "error" not in result, result
    return result["session_id"]


def remote_workspace(side, host_id: str) -> dict | None:
    return next((w for w in side.get("/api/sessions").json() if w["id"] == f"remote-{host_id}"), None)


def test_a_session_on_the_host_is_an_ordinary_session_and_survives_a_reconnect(side, state_dir):
    flavor_id = add_flavor(side, state_dir, "beta")
    session_id = spawn_on(side, flavor_id)  # connects the host first
    host = host_of(side, flavor_id)
    assert host["status"] == "connected" and session_id.startswith(f"remote-{flavor_id}-")
    workspace = remote_workspace(side, host["id"])
    assert workspace["repo"] == "Lab beta" and workspace["branch"] == "beta-box.test"
    assert workspace["path"] == str(state_dir) and workspace["remote_host_status"] == "connected"
    assert (workspace["remote_flavor_name"], workspace["remote_flavor"], workspace["vcs"]) == (
        "Lab beta",
        "beta",
        "git",
    )
    (session,) = workspace["sessions"]
    assert session["id"] == session_id and session["running"] is True and session["status"] == "running"
    assert session["remote_host_id"] == host["id"] and session["remote_pane_id"].startswith("%")
    assert session["attach_cmd"].endswith("reconnect-beta-box.test tmux -CC new-session -A -s schmux")

    client = JsonSocket(side.port, f"/ws/terminal/{session_id}?token={side.token}")
    try:
        assert client.wait_messages(lambda ms: ms and ms[0])["type"] == "full"
        client.send({"type": "input", "data": "echo far-$((6*7))\r"})
        client.wait_messages(lambda ms: "far-42" in client.text())
        client.send({"type": "resize", "data": json.dumps({"cols": 100, "rows": 30})})

        def resized() -> bool:  # tmux resizes the pane's PTY a moment after the window
            client.send({"type": "input", "data": "stty size\r"})
            time.sleep(0.3)
            return "30 100" in client.text()

        wait_until(resized, timeout=10)

        # The connection drops (the connect command dies): the host is disconnected, the
        # terminal ends, the session is no longer running.
        os.kill(int((state_dir / "beta.pid").read_text()), signal.SIGKILL)
        wait_status(side, flavor_id, "disconnected")
        client.wait_messages(lambda ms: "[Session ended]" in client.text() or client.close_code)
        assert remote_workspace(side, host["id"])["sessions"][0]["running"] is False
    finally:
        client.close()

    reconnecting = side.post(f"/api/remote/hosts/{host['id']}/reconnect")
    assert reconnecting.status_code == 202
    assert reconnecting.json() == {
        "id": host["id"],
        "flavor_id": flavor_id,
        "display_name": "Lab beta",
        "hostname": "beta-box.test",
        "status": "reconnecting",
        "vcs": "git",
        "provisioning_session_id": f"provision-{host['id']}",
    }
    wait_status(side, flavor_id, "connected")
    (session,) = remote_workspace(side, host["id"])["sessions"]
    assert session["running"] is True and session["status"] == "running"  # the window was found again
    client = JsonSocket(side.port, f"/ws/terminal/{session_id}?token={side.token}")
    try:
        client.wait_messages(lambda ms: "far-42" in client.text())  # the screen as it was
        client.send({"type": "input", "data": "echo back-again\r"})
        client.wait_messages(lambda ms: "back-again" in client.text().split("far-42")[-1])
    finally:
        client.close()

    assert side.post(f"/api/sessions/{session_id}/dispose").status_code == 200
    assert remote_workspace(side, host["id"])["sessions"] == []
    assert side.delete(f"/api/remote/hosts/{host['id']}").status_code == 204
    assert host_of(side, flavor_id)["status"] == "disconnected"


def test_a_failed_reconnect_removes_the_hosts_sessions_and_workspace(side, state_dir):
    flavor_id = add_flavor(side, state_dir, "gamma", reconnect_command="/bin/false {{.Hostname}}")
    spawn_on(side, flavor_id)
    host = host_of(side, flavor_id)
    os.kill(int((state_dir / "gamma.pid").read_text()), signal.SIGKILL)
    wait_status(side, flavor_id, "disconnected")
    assert remote_workspace(side, host["id"]) is not None
    assert side.post(f"/api/remote/hosts/{host['id']}/reconnect").status_code == 202
    wait_until(lambda: all(h["id"] != host["id"] for h in side.get("/api/remote/hosts").json()))
    assert remote_workspace(side, host["id"]) is None


def test_hosts_survive_a_restart_as_disconnected(tmp_path, state_dir):
    data = tmp_path / "data"
    first = Sidecar(data, env={"MISO_TMUX_SOCKET": f"miso-remote-r-{os.getpid()}"})
    try:
        flavor_id = add_flavor(first, state_dir, "delta")
        assert connect(first, flavor_id).status_code == 202
        host = wait_status(first, flavor_id, "connected")
    finally:
        first.terminate()
    second = Sidecar(data, env={"MISO_TMUX_SOCKET": f"miso-remote-r-{os.getpid()}"})
    try:
        again = host_of(second, flavor_id)
        assert (again["id"], again["status"], again["hostname"]) == (host["id"], "disconnected", "delta-box.test")
        assert "provisioning_session_id" not in again
        assert second.post(f"/api/remote/hosts/{host['id']}/reconnect").status_code == 202
        wait_status(second, flavor_id, "connected")
    finally:
        second.terminate()

"""Agent sessions on a private tmux socket, with real tmux: what a person attaching would see."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from miso_runtime.agents.tmux_sessions import (
    SessionExistsError,
    SessionNotFoundError,
    TmuxNotFoundError,
    TmuxSessions,
    TmuxTimeoutError,
)
from miso_runtime.errors import MisoError

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def wait_until(check: Callable[[], object], timeout: float = 5.0, interval: float = 0.02) -> object:
    """Poll ``check`` until it returns something truthy; fail with its last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"condition not met in {timeout} s (last value {value!r})"
            return value
        time.sleep(interval)


@pytest.fixture
def tmux() -> Iterator[TmuxSessions]:
    """A manager on a socket of this test's own; its server is killed (and checked gone) after."""
    manager = TmuxSessions(f"miso-test-{os.getpid()}-{uuid.uuid4().hex[:8]}", config_file="/dev/null")
    yield manager
    manager.kill_server()
    assert not manager.server_running()
    probe = subprocess.run(["tmux", "-L", manager.socket_name, "list-sessions"], capture_output=True, timeout=5)
    assert b"no server running" in probe.stderr or b"error connecting" in probe.stderr
    assert not manager.socket_path.exists()  # no socket file left either


def screen(tmux: TmuxSessions, name: str, lines: int = 0) -> str:
    return tmux.capture(name, scrollback_lines=lines, escapes=False)


def test_session_runs_in_its_directory_with_our_environment(tmux, tmp_path, monkeypatch):
    assert not tmux.server_running()  # a socket of its own: nothing there before the first session
    monkeypatch.setenv("MISO_AUTH_TOKEN", "miso_admin_secret")  # the runtime's token: agents must not see it
    workdir = tmp_path / "work #1; main"  # '#' is a tmux format character, a final ';' a separator
    workdir.mkdir()
    info = tmux.create(
        "sess-1",
        "bash --norc",
        workdir,
        workspace_id="ws-7",
        env={"AGENT_FLAVOUR": "mint;"},
        width=100,
        height=20,
    )
    assert info.name == "sess-1" and info.running and info.exit_status is None
    assert (info.session_id, info.workspace_id) == ("sess-1", "ws-7")
    assert (info.width, info.height) == (100, 20)
    now = datetime.now(timezone.utc)
    assert info.created_at is not None and abs(info.created_at - now) < timedelta(seconds=30)
    assert info.last_output_at is not None and abs(info.last_output_at - now) < timedelta(seconds=30)
    os.kill(info.pane_pid, 0)  # the pane's process exists

    tmux.send_keys(info.name, 'echo "[$MISO_SESSION_ID|$MISO_WORKSPACE_ID|$AGENT_FLAVOUR|$PWD]"', enter=True)
    expected = f"[sess-1|ws-7|mint;|{workdir}]"
    wait_until(lambda: expected in screen(tmux, info.name).splitlines())
    tmux.send_keys(info.name, 'echo "token:${MISO_AUTH_TOKEN-unset}"', enter=True)
    wait_until(lambda: "token:unset" in screen(tmux, info.name).splitlines())


def test_attach_cmd_attaches_a_real_client(tmux, tmp_path):
    info = tmux.create("attach-me", "bash --norc", tmp_path)
    assert info.attach_cmd == f"tmux -L {tmux.socket_name} attach -t attach-me"
    tmux.create("attach-me-not", "bash --norc", tmp_path)  # a longer name sharing the prefix

    # Run the command as a person would, in a terminal (a pty), and see tmux count the client.
    controller, terminal = os.openpty()
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")} | {"TERM": "xterm"}
    person = subprocess.Popen(shlex.split(info.attach_cmd), stdin=terminal, stdout=terminal, stderr=terminal, env=env)
    os.close(terminal)
    try:
        attached = lambda: tmux.run("list-clients", "-F", "#{client_session}").split()  # noqa: E731
        assert wait_until(attached) == ["attach-me"]
        tmux.run("detach-client", "-s", "=attach-me")
        assert person.wait(timeout=5) == 0
    finally:
        if person.poll() is None:
            person.kill()
            person.wait()
        os.close(controller)
    assert tmux.exists("attach-me")  # detaching leaves the agent running


def test_history_limit_is_fixed_per_session(tmux, tmp_path):
    small = tmux.create("small", "bash --norc", tmp_path, history_limit=100, height=10)
    large = tmux.create("large", "bash --norc", tmp_path, history_limit=3000, height=10)
    assert (small.history_limit, large.history_limit) == (100, 3000)
    for name in ("small", "large"):
        tmux.send_keys(name, "seq 1 1000; echo done-seq", enter=True)
    for name in ("small", "large"):
        wait_until(lambda name=name: "done-seq" in screen(tmux, name).splitlines())

    def history_size(name: str) -> int:
        return int(tmux.run("display-message", "-p", "-t", tmux.target(name), "#{history_size}"))

    assert 90 <= history_size("small") <= 100  # the oldest lines are gone (tmux trims 10 % at a time)
    assert history_size("large") > 900
    assert "1" in screen(tmux, "large", lines=3000).splitlines()
    assert "1" not in screen(tmux, "small", lines=3000).splitlines()


def test_resize_changes_the_real_window(tmux, tmp_path):
    info = tmux.create("resize-me", "bash --norc", tmp_path, width=80, height=24)
    tmux.resize(info.name, 77, 21)
    assert tmux.run("display-message", "-p", "-t", "=resize-me:", "#{window_width} #{window_height}").strip() == "77 21"
    tmux.send_keys(info.name, "echo cols=$(tput cols) rows=$(tput lines)", enter=True)
    wait_until(lambda: "cols=77 rows=21" in screen(tmux, info.name).splitlines())  # the program sees it too
    assert (tmux.get(info.name).width, tmux.get(info.name).height) == (77, 21)
    with pytest.raises(MisoError) as bad:
        tmux.resize(info.name, 0, 10)
    assert bad.value.status == 400


def test_adopt_recovers_sessions_after_a_restart(tmux, tmp_path):
    tmux.create("agent-a", "bash --norc", tmp_path, workspace_id="ws-a")
    tmux.create("agent-b", ["sleep", "30"], tmp_path, workspace_id="ws-b")
    # A session made by hand (an older runtime): ids only in its environment, no @miso options.
    tmux.run("new-session", "-d", "-s", "by-hand", "-e", "MISO_SESSION_ID=legacy-1", "-e", "MISO_WORKSPACE_ID=ws-l")

    restarted = TmuxSessions(tmux.socket_name, config_file="/dev/null")
    adopted = {info.name: info for info in restarted.adopt()}
    assert set(adopted) == {"agent-a", "agent-b", "by-hand"}
    assert (adopted["agent-a"].session_id, adopted["agent-a"].workspace_id) == ("agent-a", "ws-a")
    assert (adopted["agent-b"].session_id, adopted["agent-b"].workspace_id) == ("agent-b", "ws-b")
    assert (adopted["by-hand"].session_id, adopted["by-hand"].workspace_id) == ("legacy-1", "ws-l")
    assert all(info.running for info in adopted.values())
    assert adopted["agent-a"].attach_cmd == f"tmux -L {tmux.socket_name} attach -t agent-a"


def test_finished_command_is_not_running_and_its_output_stays(tmux, tmp_path):
    # (tmux 3.3 may lose the output of a command that exits within microseconds of starting)
    info = tmux.create("short", ["sh", "-c", "echo last words; sleep 0.2; exit 3"], tmp_path)
    done = wait_until(lambda: (lambda i: i if not i.running else None)(tmux.get(info.name)))
    try:  # the status follows the pane's death (tmux 3.3 now and then never records it)
        done = wait_until(lambda: (lambda i: i if i.exit_status is not None else None)(tmux.get(info.name)), 1.0)
    except AssertionError:
        pass
    assert not done.running and done.exit_status in (3, None)
    # remain-on-exit keeps the pane (tmux's "Pane is dead" line may scroll it into the history)
    assert "last words" in screen(tmux, info.name, lines=100).splitlines()
    tmux.kill(info.name)
    assert not tmux.exists(info.name)


def test_raw_input_delivers_control_keys(tmux, tmp_path):
    info = tmux.create("keys", "bash --norc", tmp_path)
    tmux.send_input(info.name, "sleep 30\r")
    wait_until(lambda: tmux.run("display-message", "-p", "-t", "=keys:", "#{pane_current_command}").strip() == "sleep")
    tmux.send_input(info.name, b"\x03")  # Ctrl-C interrupts the sleep
    wait_until(lambda: tmux.run("display-message", "-p", "-t", "=keys:", "#{pane_current_command}").strip() == "bash")
    tmux.send_input(info.name, "echo ünïcode-ok\r")
    wait_until(lambda: "ünïcode-ok" in screen(tmux, info.name).splitlines())
    tmux.send_input(info.name, b"\x1b[A\r")  # arrow up recalls the last command
    wait_until(lambda: screen(tmux, info.name).splitlines().count("ünïcode-ok") == 2)


def test_errors_are_ours_and_say_what_is_wrong(tmux, tmp_path):
    with pytest.raises(SessionNotFoundError) as missing:
        tmux.get("nobody")
    assert missing.value.status == 404
    with pytest.raises(SessionNotFoundError):
        tmux.kill("nobody")
    tmux.create("dup", "bash --norc", tmp_path)
    with pytest.raises(SessionExistsError) as dup:
        tmux.create("dup", "bash --norc", tmp_path)
    assert dup.value.status == 409
    with pytest.raises(MisoError) as bad_dir:
        tmux.create("nowhere", "bash --norc", tmp_path / "missing")
    assert bad_dir.value.status == 400 and "missing" in bad_dir.value.message
    with pytest.raises(MisoError) as bad_id:
        tmux.create("bad\nid", "bash --norc", tmp_path)
    assert bad_id.value.status == 400
    assert [info.name for info in tmux.list()] == ["dup"]


def test_missing_tmux_is_a_clear_error(tmp_path):
    manager = TmuxSessions("miso-test-no-tmux", tmux_bin=str(tmp_path / "no-such-tmux"))
    with pytest.raises(TmuxNotFoundError) as err:
        manager.list()
    assert err.value.status == 503 and err.value.code == "tmux_missing"


# --- deadlines: every tmux call, libtmux's included, ends when tmux does not answer ----------

HANG_S = 600  # what the fake tmux would sleep; a call that waited for it would take this long


@pytest.fixture
def hanging_tmux(tmp_path) -> Iterator[tuple[TmuxSessions, Path]]:
    """A manager whose ``tmux`` answers ``-V`` at once and hangs on every server command (a
    wedged server, as a person would meet it), writing its process id to a file first."""
    pids = tmp_path / "pids"
    fake = tmp_path / "tmux"
    fake.write_text(
        f'#!/bin/sh\ncase "$1" in -V) echo "tmux 3.3a"; exit 0 ;; esac\necho $$ >> "{pids}"\nexec sleep {HANG_S}\n'
    )
    fake.chmod(0o755)
    yield TmuxSessions("miso-test-hang", tmux_bin=str(fake), timeout_s=0.5), pids
    for pid in pids.read_text().split() if pids.exists() else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


HANGING_CALLS: dict[str, Callable[[TmuxSessions, Path], object]] = {
    "list": lambda t, _: t.list(),
    "get": lambda t, _: t.get("agent"),
    "exists": lambda t, _: t.exists("agent"),
    "adopt": lambda t, _: t.adopt(),
    "create": lambda t, cwd: t.create("agent", "bash --norc", cwd),
    "kill": lambda t, _: t.kill("agent"),
    "kill_server": lambda t, _: t.kill_server(),
    "capture": lambda t, _: t.capture("agent"),
    "send_keys": lambda t, _: t.send_keys("agent", "hi", enter=True),
    "send_input": lambda t, _: t.send_input("agent", b"\x03"),
    "resize": lambda t, _: t.resize("agent", 80, 24),
    "run": lambda t, _: t.run("display-message", "-p", "hi"),
    "libtmux sessions": lambda t, _: t.server.sessions,
    "libtmux has_session": lambda t, _: t.server.has_session("agent"),
    "libtmux show_option": lambda t, _: t.server.show_option("history-limit", global_=True),
}


@pytest.mark.parametrize("call", sorted(HANGING_CALLS))
def test_a_hanging_tmux_ends_in_our_timeout_error(hanging_tmux, tmp_path, call):
    manager, pids = hanging_tmux
    started = time.monotonic()
    with pytest.raises(TmuxTimeoutError) as err:
        HANGING_CALLS[call](manager, tmp_path)
    elapsed = time.monotonic() - started
    assert isinstance(err.value, MisoError)
    assert (err.value.status, err.value.code) == (503, "tmux_timeout")
    assert "did not answer in 0.5 s" in err.value.message
    assert elapsed < HANG_S / 10  # it gave up on tmux, it did not wait for it
    started_pids = [int(pid) for pid in pids.read_text().split()]
    assert len(started_pids) == 1  # one hung command, and the call stopped there
    with pytest.raises(ProcessLookupError):
        os.kill(started_pids[0], 0)  # and that tmux was killed, not left behind


def test_a_hanging_tmux_does_not_read_as_a_dead_server(hanging_tmux):
    manager, _ = hanging_tmux
    assert manager.server_running()  # something holds the socket: not "no server", so not "no sessions"


# --- libtmux's object model on the same socket and runner -----------------------------------


def test_libtmux_objects_work_through_our_runner(tmux, tmp_path):
    tmux.create("lib-a", "bash --norc", tmp_path, workspace_id="ws-a", env={"AGENT_FLAVOUR": "mint"})
    sessions = tmux.server.sessions  # libtmux's Session objects, all its fields
    assert [s.session_name for s in sessions] == ["lib-a"]
    session = sessions[0]
    assert session.show_environment()["AGENT_FLAVOUR"] == "mint"
    assert session.show_option("@miso_workspace_id") == "ws-a"
    session.set_option("@note", "set through libtmux")
    assert tmux.run("show-options", "-v", "-t", "=lib-a:", "@note").strip() == "set through libtmux"
    assert [p.pane_id for p in tmux.server.panes] == [tmux.get("lib-a").pane_id]
    session.kill()
    assert tmux.list() == []

"""The supervisor with real worker processes: events, crash and restart, parent death, stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from workers.protocol.base import LogLine, WorkerSpec, WorkerStarted
from workers.protocol.llm import Abort
from workers.supervisor import Supervisor, WorkerState, WorkerUnavailable

ECHO = WorkerSpec("echo", "tests.echo_worker:run")


class Recorder:
    def __init__(self) -> None:
        self.events: list[object] = []
        self.exits: list[int | None] = []
        self.changed = threading.Condition()

    def on_event(self, _name: str, event: object) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def on_exit(self, _name: str, code: int | None) -> None:
        with self.changed:
            self.exits.append(code)
            self.changed.notify_all()

    def wait(self, predicate, timeout: float = 10.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def started_supervisor(spec: WorkerSpec = ECHO) -> tuple[Supervisor, Recorder]:
    supervisor = Supervisor()
    recorder = Recorder()
    supervisor.add(spec)
    supervisor.on_event(spec.name, recorder.on_event)
    supervisor.on_exit(spec.name, recorder.on_exit)
    supervisor.start_all()
    assert recorder.wait(lambda: any(isinstance(e, WorkerStarted) for e in recorder.events))
    return supervisor, recorder


def test_commands_in_events_out():
    supervisor, recorder = started_supervisor()
    try:
        worker = supervisor.get("echo")
        assert worker.status.state == WorkerState.RUNNING
        worker.send(Abort("hello"))
        assert recorder.wait(lambda: any(isinstance(e, LogLine) and "echo hello" in e.message for e in recorder.events))
    finally:
        supervisor.stop_all()


def test_a_killed_worker_is_reported_at_once_and_restarted():
    supervisor, recorder = started_supervisor()
    try:
        worker = supervisor.get("echo")
        first_pid = worker.status.pid
        os.kill(first_pid, signal.SIGKILL)
        assert recorder.wait(lambda: recorder.exits == [-signal.SIGKILL], timeout=3)
        status = worker.status
        assert status.state in (WorkerState.RESTARTING, WorkerState.STARTING, WorkerState.RUNNING)
        assert recorder.wait(lambda: sum(isinstance(e, WorkerStarted) for e in recorder.events) == 2)
        status = worker.status
        assert status.restarts == 1 and status.pid != first_pid and status.last_exit_code == -signal.SIGKILL
        assert supervisor.status()[0]["restarts"] == 1
    finally:
        supervisor.stop_all()


def test_restarts_back_off():
    supervisor, recorder = started_supervisor()
    try:
        worker = supervisor.get("echo")
        starts = []
        for attempt in range(3):
            os.kill(worker.status.pid, signal.SIGKILL)
            assert recorder.wait(lambda n=attempt: sum(isinstance(e, WorkerStarted) for e in recorder.events) == n + 2)
            starts.append(time.monotonic())
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert gaps[1] > gaps[0]  # 0.5 s, 1 s, 2 s: each wait longer than the last
    finally:
        supervisor.stop_all()


def test_stop_all_ends_workers_even_when_they_ignore_shutdown():
    supervisor, _ = started_supervisor(WorkerSpec("stubborn", "tests.echo_worker:run", {"ignore_shutdown": True}))
    pid = supervisor.get("stubborn").status.pid
    began = time.monotonic()
    supervisor.stop_all(timeout=1.0)
    assert time.monotonic() - began < 5
    assert not alive(pid)
    assert supervisor.get("stubborn").status.state == WorkerState.STOPPED
    try:
        supervisor.get("stubborn").send(Abort())
    except WorkerUnavailable:
        pass
    else:
        raise AssertionError("a stopped worker accepted a command")


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from workers.protocol.base import WorkerSpec
            from workers.supervisor import Supervisor

            if __name__ == "__main__":
                supervisor = Supervisor()
                supervisor.add(WorkerSpec("echo", "tests.echo_worker:run"))
                supervisor.start_all()
                while supervisor.get("echo").status.state != "running":
                    time.sleep(0.05)
                print(supervisor.get("echo").status.pid, flush=True)
                time.sleep(60)
            """
        )
    )
    root = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, cwd=root, env={**os.environ, "PYTHONPATH": str(root)}
    )
    worker_pid = int(parent.stdout.readline())
    assert alive(worker_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 2.0
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker_pid)


def test_a_killed_worker_keeps_its_exit_code_where_gevent_reaps_it(tmp_path: Path):
    """In the server, gevent's loop reaps every child once gevent's subprocess has run a command."""
    script = tmp_path / "patched_parent.py"
    script.write_text(
        textwrap.dedent(
            """
            from gevent import monkey

            monkey.patch_all()

            import os
            import signal
            import subprocess
            import time

            from workers.protocol.base import WorkerSpec
            from workers.supervisor import Supervisor

            if __name__ == "__main__":
                subprocess.run(["true"], check=True)  # installs libev's SIGCHLD handler
                supervisor = Supervisor()
                worker = supervisor.add(WorkerSpec("echo", "tests.echo_worker:run"))
                supervisor.start_all()
                while worker.status.state != "running":
                    time.sleep(0.05)
                os.kill(worker.status.pid, signal.SIGKILL)
                while worker.status.state == "running":
                    time.sleep(0.05)
                print(worker.status.last_exit_code, flush=True)
                supervisor.stop_all()
            """
        )
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=60,
    )
    assert result.stdout.split() == [str(-signal.SIGKILL)], result.stderr

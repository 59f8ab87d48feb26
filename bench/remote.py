"""Benchmark: a terminal on a remote host against the same terminal on a local session, in one run.

Run ``.venv/bin/python bench/remote.py [--keys N] [--megabytes M] [--repeats R]``.

What is measured
----------------
One sidecar on a private tmux socket. The "remote host" is the stand-in of the tests: a flavor
whose connect command is a script that prints a hostname and execs the ``tmux -CC`` the runtime
appends, under a tmux socket directory of its own. So the remote path is all there: a PTY, a
control-mode tmux at the far end of a command, ``%output`` lines read from that PTY, input
typed with ``send-keys`` through it. Only the network is missing (loopback has none to speak
of), so the figure is what the runtime's remote path costs, on top of any link.

Both sessions are spawned through ``/api/spawn`` (the local one in a git worktree, the remote
one with ``remote_flavor_id``) and read through ``/ws/terminal`` by the same client.

(1) Keystroke to echo: a session running ``cat``; one character sent as an ``input`` message,
    timed until an ``append`` carrying it arrives (one key at a time). p50/p99/max.
(2) Output throughput: a shell prints ``--megabytes`` MB of base64 text and a marker; from
    sending the command to the marker arriving, every byte as ``append`` messages. Medians of
    ``--repeats`` runs per side, alternating, a fresh session each.

Goals (issue 18): remote echo p99 within 2x of local and under 50 ms.
"""

from __future__ import annotations

import argparse
import base64
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from miso_runtime.agents.tmux_sessions import TmuxSessions  # noqa: E402
from tests.gitrepo import bare_remote  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402
from tests.ws_client import JsonSocket  # noqa: E402

ECHO_GOAL_RATIO = 2.0
ECHO_GOAL_P99_MS = 50.0
KEYS = "abcdefghijklmnopqrstuvwxyz"
FAKE_REMOTE = """#!/bin/sh
echo "Establish ControlMaster connection to bench-box.test"
export TMUX_TMPDIR={tmux_dir}
shift
exec "$@"
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


class Bench:
    def __init__(self, folder: Path, socket_name: str) -> None:
        self.folder = folder
        self.socket = socket_name
        self.tmux_dir = folder / "far-tmux"
        self.tmux_dir.mkdir()
        script = folder / "fake-remote"
        script.write_text(FAKE_REMOTE.format(tmux_dir=shlex.quote(str(self.tmux_dir))))
        script.chmod(0o755)
        self.side = Sidecar(folder / "data", env={"MISO_TMUX_SOCKET": socket_name})
        self.repo = bare_remote(folder / "origin", "bench")
        targets = [
            {"name": "cat", "type": "command", "command": "cat"},
            {"name": "sh", "type": "command", "command": "sh"},
        ]
        assert self.side.post("/api/config", json={"run_targets": targets}).status_code == 200
        flavor = {
            "flavor": "bench",
            "display_name": "Bench host",
            "workspace_path": str(folder),
            "connect_command": f"{script} {{{{.Flavor}}}}",
        }
        created = self.side.post("/api/config/remote-flavors", json=flavor)
        assert created.status_code == 200, created.text
        self.flavor_id = created.json()["id"]
        self._branches = 0

    def spawn(self, target: str, remote: bool) -> str:
        if remote:
            body = {"remote_flavor_id": self.flavor_id, "targets": {target: 1}}
        else:
            self._branches += 1
            body = {"repo": str(self.repo), "branch": f"bench-{self._branches}", "targets": {target: 1}}
        answer = self.side.post("/api/spawn", json=body, timeout=60).json()
        assert "error" not in answer[0], answer
        return answer[0]["session_id"]

    def terminal(self, session_id: str) -> JsonSocket:
        client = JsonSocket(self.side.port, f"/ws/terminal/{session_id}?token={self.side.token}")
        client.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
        return client

    def echo(self, keys: int, remote: bool) -> list[float]:
        client = self.terminal(self.spawn("cat", remote))
        times = []
        try:
            for i in range(keys + 5):
                key = KEYS[i % len(KEYS)]
                seen = len(client.messages)
                started = time.perf_counter()
                client.send({"type": "input", "data": key})
                client.wait_messages(
                    lambda ms, n=seen, k=key: any(k in m.get("content", "") for m in ms[n:]), timeout=5
                )
                if i >= 5:  # the first few warm the path up
                    times.append((time.perf_counter() - started) * 1000)
                if i % 60 == 59:
                    client.send({"type": "input", "data": "\r"})
                    time.sleep(0.05)
        finally:
            client.close()
        return times

    def make_text(self, megabytes: float) -> Path:
        raw = os.urandom(int(megabytes * 1_000_000 * 3 / 4))
        path = self.folder / "payload.b64"
        path.write_bytes(base64.encodebytes(raw))
        return path

    def throughput(self, payload: Path, remote: bool) -> tuple[float, int]:
        session_id = self.spawn("sh", remote)
        client = self.terminal(session_id)
        marker = f"END{uuid.uuid4().hex[:8]}"
        try:
            started = time.perf_counter()
            client.send(
                {"type": "input", "data": f"cat {shlex.quote(str(payload))}; echo {marker[:3]}''{marker[3:]}\r"}
            )
            client.wait_messages(lambda ms: any(marker in m.get("content", "") for m in ms[-3:]), timeout=300)
            seconds = time.perf_counter() - started
            received = sum(len(m["content"]) for m in client.messages if m["type"] == "append")
        finally:
            client.close()
        self.side.post(f"/api/sessions/{session_id}/dispose")
        return seconds, received

    def close(self) -> None:
        self.side.terminate()
        TmuxSessions(self.socket).kill_server()
        subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": str(self.tmux_dir)}, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=200, help="keystrokes per side (default 200)")
    parser.add_argument("--megabytes", type=float, default=10.0, help="MB of base64 output (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per side (default 3)")
    args = parser.parse_args()
    bench = Bench(Path(tempfile.mkdtemp(prefix="miso-bench-remote-")), f"miso-bench-{uuid.uuid4().hex[:6]}")
    try:
        tmux_version = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
        print(f"remote terminal bench: {tmux_version}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        local = bench.echo(args.keys, remote=False)
        remote = bench.echo(args.keys, remote=True)
        print(f"\n== (1) keystroke to echo, {args.keys} keys each (a session running cat) ==")
        print(f"{'':12}{'local':>12}{'remote':>12}{'remote/local':>14}")
        for name, q in (("p50 ms", 50), ("p99 ms", 99)):
            a, o = percentile(local, q), percentile(remote, q)
            print(f"{name:12}{a:12.2f}{o:12.2f}{o / a:14.2f}")
        print(f"{'max ms':12}{max(local):12.2f}{max(remote):12.2f}{max(remote) / max(local):14.2f}")
        print(f"{'mean ms':12}{statistics.mean(local):12.2f}{statistics.mean(remote):12.2f}")
        p99_local, p99_remote = percentile(local, 99), percentile(remote, 99)
        ok = p99_remote <= ECHO_GOAL_RATIO * p99_local and p99_remote < ECHO_GOAL_P99_MS
        print(
            f"goal: remote p99 <= {ECHO_GOAL_RATIO:g}x local and < {ECHO_GOAL_P99_MS:g} ms: "
            f"{p99_remote:.2f} ms, {p99_remote / p99_local:.2f}x  {verdict(ok)}"
        )

        payload = bench.make_text(args.megabytes)
        runs: dict[bool, list[tuple[float, int]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for side in (False, True):
                runs[side].append(bench.throughput(payload, side))
        size_mb = payload.stat().st_size / 1e6
        print(f"\n== (2) output throughput, {size_mb:.1f} MB of base64, median of {args.repeats} ==")
        rates = {}
        for side, name in ((False, "local"), (True, "remote")):
            seconds = statistics.median(s for s, _n in runs[side])
            received = min(n for _s, n in runs[side])
            rates[side] = size_mb / seconds
            print(f"{name:12}{seconds:10.2f} s{rates[side]:10.1f} MB/s   (received {received / 1e6:.1f} MB)")
        print(f"{'remote/local':12}{rates[True] / rates[False]:12.2f}")
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: live terminals through ``/ws/terminal`` against tmux driven directly, in one run.

Run ``.venv/bin/python bench/terminal.py [--keys N] [--megabytes M]``.

What is measured
----------------
A real sidecar on a private tmux socket; sessions are spawned through ``/api/spawn`` in a git
worktree of a local repository, like any agent session.

(1) Keystroke to echo. A session runs ``cat`` on its terminal, so each typed character comes
    back through the pty's echo. **Ours**: one character sent as a ``/ws/terminal`` ``input``
    message, timed until an ``append`` carrying it reaches our WebSocket client (one key at a
    time, after the previous echo). **Anchor**: ``tmux send-keys -l`` on the same kind of
    session, then ``tmux capture-pane -p`` polled until the character shows (what a program
    that drives tmux without control mode does). p50, p99 and max of ``--keys`` keys each.
(2) Output throughput. A shell prints ``--megabytes`` MB of base64 text (made beforehand, so
    the time is the terminal's, not base64's) and then a marker. **Ours**: from sending the
    command to the marker arriving at our WebSocket client, the whole output having arrived as
    ``append`` messages in order. **Anchor**: ``tmux pipe-pane`` copying the same session's
    output into a file, timed from the same command to the marker in the file. Each side runs
    ``--repeats`` times, alternating, on a fresh session each time; the medians are compared
    (one run on a shared two-core machine varies by a third).

Goals: echo p99 under 30 ms; throughput at least half of the pipe-pane figure.
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

ECHO_GOAL_P99_MS = 30.0
THROUGHPUT_GOAL_RATIO = 0.5
KEYS = "abcdefghijklmnopqrstuvwxyz"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


class Bench:
    def __init__(self, data_dir: Path, socket_name: str) -> None:
        self.socket = socket_name
        self.side = Sidecar(data_dir / "data", env={"MISO_TMUX_SOCKET": socket_name})
        self.remote = bare_remote(data_dir / "remote", "bench")
        targets = [
            {"name": "cat", "type": "command", "command": "cat"},
            {"name": "sh", "type": "command", "command": "sh"},
        ]
        assert self.side.post("/api/config", json={"run_targets": targets}).status_code == 200
        self._branches = 0

    def spawn(self, target: str) -> str:
        self._branches += 1
        body = {"repo": str(self.remote), "branch": f"bench-{self._branches}", "targets": {target: 1}}
        answer = self.side.post("/api/spawn", json=body).json()
        return answer[0]["session_id"]

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def terminal(self, session_id: str) -> JsonSocket:
        client = JsonSocket(self.side.port, f"/ws/terminal/{session_id}?token={self.side.token}")
        client.wait_messages(lambda ms: ms and ms[0]["type"] == "full")
        return client

    # --- (1) echo ---------------------------------------------------------------------------

    def echo_ours(self, keys: int) -> list[float]:
        client = self.terminal(self.spawn("cat"))
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

    def echo_anchor(self, keys: int) -> list[float]:
        session = self.spawn("cat")
        target = f"={session}:"
        times = []
        line = ""
        for i in range(keys + 5):
            key = KEYS[i % len(KEYS)]
            line += key
            started = time.perf_counter()
            self.tmux("send-keys", "-t", target, "-l", key)
            while not self.tmux("capture-pane", "-p", "-t", target).rstrip("\n").endswith(line):
                pass
            if i >= 5:
                times.append((time.perf_counter() - started) * 1000)
            if i % 60 == 59:
                self.tmux("send-keys", "-t", target, "Enter")
                line = ""
                time.sleep(0.05)
        return times

    # --- (2) throughput ---------------------------------------------------------------------

    def make_text(self, folder: Path, megabytes: float) -> Path:
        raw = os.urandom(int(megabytes * 1_000_000 * 3 / 4))
        path = folder / "payload.b64"
        path.write_bytes(base64.encodebytes(raw))
        return path

    def throughput_ours(self, payload: Path) -> tuple[float, int]:
        client = self.terminal(self.spawn("sh"))
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
        return seconds, received

    def throughput_anchor(self, payload: Path, folder: Path) -> tuple[float, int]:
        session = self.spawn("sh")
        target = f"={session}:"
        sink = folder / "pipe-pane.out"
        self.tmux("pipe-pane", "-t", target, f"cat > {shlex.quote(str(sink))}")
        marker = f"END{uuid.uuid4().hex[:8]}"
        time.sleep(0.2)
        started = time.perf_counter()
        self.tmux("send-keys", "-t", target, "-l", f"cat {shlex.quote(str(payload))}; echo {marker[:3]}''{marker[3:]}")
        self.tmux("send-keys", "-t", target, "Enter")
        while True:
            with open(sink, "rb") as handle:
                handle.seek(max(0, os.path.getsize(sink) - 200))
                if marker.encode() in handle.read():
                    break
            time.sleep(0.002)
        seconds = time.perf_counter() - started
        self.tmux("pipe-pane", "-t", target)
        return seconds, sink.stat().st_size

    def close(self) -> None:
        self.side.terminate()
        TmuxSessions(self.socket).kill_server()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keys", type=int, default=200, help="keystrokes per side (default 200)")
    parser.add_argument("--megabytes", type=float, default=20.0, help="MB of base64 output (default 20)")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per side (default 3)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="miso-bench-terminal-"))
    bench = Bench(folder, f"miso-bench-{uuid.uuid4().hex[:6]}")
    try:
        tmux_version = subprocess.run(["tmux", "-V"], capture_output=True, text=True).stdout.strip()
        print(f"terminal bench: {tmux_version}, python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        ours = bench.echo_ours(args.keys)
        anchor = bench.echo_anchor(args.keys)
        print(f"\n== (1) keystroke to echo, {args.keys} keys each (a session running cat) ==")
        print(f"{'':24}{'anchor':>12}{'ours':>12}{'ours/anchor':>14}")
        for name, q in (("p50 ms", 50), ("p99 ms", 99)):
            a, o = percentile(anchor, q), percentile(ours, q)
            print(f"{name:24}{a:12.2f}{o:12.2f}{o / a:14.2f}")
        print(f"{'max ms':24}{max(anchor):12.2f}{max(ours):12.2f}{max(ours) / max(anchor):14.2f}")
        print(f"{'mean ms':24}{statistics.mean(anchor):12.2f}{statistics.mean(ours):12.2f}")
        print("  anchor: tmux send-keys -l, then capture-pane polled until the key shows")
        print("  ours:   /ws/terminal input message -> append message with the echo")
        p99 = percentile(ours, 99)
        print(f"goal: echo p99 < {ECHO_GOAL_P99_MS:g} ms")
        print(f"  ours   {p99:.2f} ms  -> {verdict(p99 < ECHO_GOAL_P99_MS)}")

        payload = bench.make_text(folder, args.megabytes)
        size = payload.stat().st_size
        anchor_runs, ours_runs = [], []
        for _ in range(max(1, args.repeats)):
            anchor_runs.append(bench.throughput_anchor(payload, folder))
            ours_runs.append(bench.throughput_ours(payload))
        anchor_s = statistics.median(t for t, _ in anchor_runs)
        ours_s = statistics.median(t for t, _ in ours_runs)
        anchor_bytes, ours_bytes = min(b for _, b in anchor_runs), min(b for _, b in ours_runs)
        print(f"\n== (2) output throughput: {size / 1e6:.1f} MB of base64 text printed by cat in a session ==")
        print(f"   median of {len(ours_runs)} runs each; all runs, seconds:")
        for label, runs in (("pipe-pane", anchor_runs), ("ours", ours_runs)):
            print(f"   {label:10}" + " ".join(f"{t:.2f}" for t, _ in runs))
        print(f"{'':24}{'pipe-pane':>12}{'ours':>12}{'ours/anchor':>14}")
        print(f"{'seconds':24}{anchor_s:12.2f}{ours_s:12.2f}{ours_s / anchor_s:14.2f}")
        print(f"{'MB/s':24}{size / 1e6 / anchor_s:12.2f}{size / 1e6 / ours_s:12.2f}{anchor_s / ours_s:14.2f}")
        print(f"{'bytes received (least)':24}{anchor_bytes:12d}{ours_bytes:12d}")
        print("  anchor: tmux pipe-pane into a file; ours: every byte as /ws/terminal append messages to our client")
        ratio = anchor_s / ours_s
        print(f"goal: throughput >= {THROUGHPUT_GOAL_RATIO:g} x pipe-pane")
        print(f"  ours   {ratio:.2f} x  -> {verdict(ratio >= THROUGHPUT_GOAL_RATIO)}")
    finally:
        bench.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

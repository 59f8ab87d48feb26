"""Benchmark: our tmux calls (libtmux's objects on a runner with a deadline) against raw tmux calls.

Run ``.venv/bin/python bench/tmux_calls.py [--sessions 1,10,30] [--repeats N]``.

What is measured
----------------
A private tmux socket (``-f /dev/null``), sessions running ``sleep``.

(1) Listing. **Ours**: ``TmuxSessions.list()`` — one ``list-sessions`` through libtmux's
    ``Server.cmd`` on our runner (a deadline, ``-u``, a filtered environment), rows read into
    libtmux ``Session`` objects, then our ``SessionInfo``. **Anchor**: the same
    ``list-sessions -F`` (same fields) as a bare ``subprocess.run`` with a timeout, its
    rows read straight into ``SessionInfo`` (what the runtime did before). For reference,
    not judged: libtmux's stock ``Server.sessions`` (all of its ~120 fields per row, no
    deadline), and the same full listing through our runner (``DeadlineServer.sessions``).
(2) Creating. **Ours**: ``TmuxSessions.create()`` (``has-session``, then the server options
    and ``new-session -P`` on one tmux call, read back as a libtmux ``Session``). **Anchor**:
    what the runtime did before with bare subprocesses: ``has-session``, the same command list
    without ``-P``, then a ``list-sessions`` to read the new session. Each made session is
    killed untimed. For reference: libtmux's stock ``Server.new_session`` (no deadline; it
    cannot set the history limit on the same call).

Every figure is the median of ``--repeats`` calls (ms), after a few warm-up calls; the sides
are called in turn (anchor, ours, ...), so that load on a shared machine falls on all alike.
Goals: listing within 1.5 x the bare subprocess (what libtmux's objects and the deadline
cost); creating no slower than the bare subprocesses (1.0 x).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import libtmux  # noqa: E402

from miso_runtime.agents import tmux_sessions  # noqa: E402
from miso_runtime.agents.tmux_sessions import SessionInfo, TmuxSessions, tmux_environment, tmux_version  # noqa: E402

LIST_GOAL_RATIO = 1.5
CREATE_GOAL_RATIO = 1.0
WARMUP = 5
LIST_FORMAT = "\t".join("#{%s}" % field for field in tmux_sessions._FIELDS)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def medians_ms(
    calls: list[Callable[[], object]], repeats: int, between: Callable[[], object] | None = None
) -> list[float]:
    """Median ms of each call, the calls taken in turn (a b c a b c ...) so that a busy moment
    of a shared machine falls on all of them alike."""
    times: list[list[float]] = [[] for _ in calls]
    for i in range(WARMUP + repeats):
        for call, spent in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            elapsed = (time.perf_counter() - started) * 1000
            if i >= WARMUP:
                spent.append(elapsed)
            if between is not None:
                between()
    return [statistics.median(spent) for spent in times]


class Bench:
    def __init__(self, workdir: Path) -> None:
        self.socket = f"miso-bench-tmux-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.tmux = TmuxSessions(self.socket, config_file="/dev/null")
        self.stock = libtmux.Server(socket_name=self.socket, config_file="/dev/null")
        self.workdir = workdir
        self.base = self.tmux.base_argv()
        self._made = 0

    def raw(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.base + list(args), stdin=subprocess.DEVNULL, capture_output=True, timeout=5, env=tmux_environment()
        )

    # --- (1) listing ------------------------------------------------------------------------

    def fill(self, count: int) -> None:
        have = len(self.tmux.list())
        for i in range(have, count):
            self.tmux.create(f"fill-{i}", ["sleep", "3600"], self.workdir, workspace_id="ws-bench")

    def list_anchor(self) -> list[SessionInfo]:
        """The listing as the runtime did it before: a bare subprocess, its rows read straight
        into ``SessionInfo`` (no libtmux objects in between)."""
        out = self.raw("list-sessions", "-F", LIST_FORMAT).stdout.decode("utf-8", "replace")
        fields = tmux_sessions._FIELDS
        infos = []
        for line in out.splitlines():
            row = dict(zip(fields, line.split("\t", len(fields) - 1), strict=False))
            dead, pid = row.get("pane_dead") == "1", int(row.get("pane_pid") or 0)
            infos.append(
                SessionInfo(
                    name=row["session_name"],
                    session_id=row.get("@miso_session_id") or None,
                    workspace_id=row.get("@miso_workspace_id") or None,
                    running=not dead and pid > 0,
                    exit_status=int(row["pane_dead_status"]) if dead and row.get("pane_dead_status") else None,
                    pane_id=row.get("pane_id", ""),
                    window_id=row.get("window_id", ""),
                    pane_pid=pid or None,
                    width=int(row.get("window_width") or 0),
                    height=int(row.get("window_height") or 0),
                    history_limit=int(row.get("history_limit") or 0),
                    created_at=datetime.fromtimestamp(int(row["session_created"]), tz=timezone.utc),
                    last_output_at=datetime.fromtimestamp(int(row["window_activity"]), tz=timezone.utc),
                    attach_cmd=self.tmux.attach_cmd(row["session_name"]),
                )
            )
        return infos

    # --- (2) creating -----------------------------------------------------------------------

    def next_name(self) -> str:
        self._made += 1
        return f"made-{self._made}"

    def create_ours(self) -> None:
        self.tmux.create(self.next_name(), ["sleep", "3600"], self.workdir, workspace_id="ws-bench")

    def create_anchor(self) -> None:
        name = self.next_name()
        self.raw("has-session", "-t", f"={name}")
        target = f"={name}:"
        args = ["set-option", "-g", "history-limit", "10000", ";", "set-option", "-gw", "remain-on-exit", "on", ";"]
        args += ["new-session", "-d", "-s", name, "-x", "120", "-y", "40", "-c", str(self.workdir)]
        args += ["-e", f"MISO_SESSION_ID={name}", "-e", "MISO_WORKSPACE_ID=ws-bench", "--", "sleep", "3600", ";"]
        args += ["set-option", "-t", target, "--", "@miso_session_id", name, ";"]
        args += ["set-option", "-t", target, "--", "@miso_workspace_id", "ws-bench"]
        self.raw(*args).check_returncode()
        self.list_anchor()

    def create_stock(self) -> None:
        name = self.next_name()
        self.stock.new_session(
            session_name=name,
            start_directory=str(self.workdir),
            window_command="sleep 3600",
            x=120,
            y=40,
            environment={"MISO_SESSION_ID": name, "MISO_WORKSPACE_ID": "ws-bench"},
        )

    def kill_made(self) -> None:
        self.tmux.kill(f"made-{self._made}")

    def close(self) -> None:
        self.tmux.kill_server()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", default="1,10,30", help="session counts to list (default 1,10,30)")
    parser.add_argument("--repeats", type=int, default=100, help="calls per figure (default 100)")
    args = parser.parse_args()
    counts = [int(c) for c in args.sessions.split(",") if c.strip()]
    print(
        f"tmux calls bench: tmux {tmux_version()}, libtmux {libtmux.__version__}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="miso-bench-tmux-") as tmp:
        bench = Bench(Path(tmp))
        try:
            worst_list = 0.0
            print(f"\n== (1) listing the sessions, median of {args.repeats} calls, ms ==")
            print(
                f"{'sessions':10}{'anchor':>10}{'ours':>10}{'ours/anchor':>13}{'stock libtmux':>15}{'full, ours':>12}"
            )
            for count in counts:
                bench.fill(count)
                anchor, ours, stock, full = medians_ms(
                    [
                        bench.list_anchor,
                        bench.tmux.list,
                        lambda: bench.stock.sessions,
                        lambda: bench.tmux.server.sessions,
                    ],
                    args.repeats,
                )
                worst_list = max(worst_list, ours / anchor)
                print(f"{count:<10d}{anchor:10.2f}{ours:10.2f}{ours / anchor:13.2f}{stock:15.2f}{full:12.2f}")
            print("  anchor: bare subprocess list-sessions -F (our 14 fields), rows read into SessionInfo (as before)")
            print(
                "  ours:   TmuxSessions.list(): the same call via libtmux Server.cmd on our runner -> Session objects"
            )
            print(
                "  stock libtmux: Server.sessions (~120 fields a row, no deadline); full, ours: the same on our runner"
            )
            print(f"goal: listing <= {LIST_GOAL_RATIO:g} x anchor")
            print(f"  ours   {worst_list:.2f} x (worst count)  -> {verdict(worst_list <= LIST_GOAL_RATIO)}")

            bench.fill(1)
            print(f"\n== (2) creating a session, median of {args.repeats} calls, ms ==")
            anchor, ours, stock = medians_ms(
                [bench.create_anchor, bench.create_ours, bench.create_stock], args.repeats, bench.kill_made
            )
            print(f"{'':10}{'anchor':>10}{'ours':>10}{'ours/anchor':>13}{'stock libtmux':>15}")
            print(f"{'create':10}{anchor:10.2f}{ours:10.2f}{ours / anchor:13.2f}{stock:15.2f}")
            print("  anchor: bare subprocesses: has-session, options + new-session on one call, list-sessions")
            print("  ours:   TmuxSessions.create(): has-session, options + new-session -P on one call")
            print("  stock libtmux: Server.new_session (has-session, new-session -P; no history limit, no deadline)")
            print(f"goal: creating <= {CREATE_GOAL_RATIO:g} x anchor")
            print(f"  ours   {ours / anchor:.2f} x  -> {verdict(ours / anchor <= CREATE_GOAL_RATIO)}")
        finally:
            bench.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

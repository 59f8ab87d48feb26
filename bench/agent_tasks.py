"""Benchmark: what an agent task costs, each figure next to an anchor measured in the same run.

Run ``.venv/bin/python bench/agent_tasks.py [--steps N] [--tasks N] [--clock-steps N]``.

What is measured
----------------
An OpenAI stand-in (``tests/standins``, in a process of its own) answers every request at once:
while the conversation holds fewer tool results (since the last user message) than that message
asks for, it calls a tool again; then it answers ``done``. So every millisecond is software,
not model time.

1. **Loop overhead.** One task whose process is up (it has answered a message that called no
   tool) gets a message asking for ``--steps`` tool calls of ``read_file``; time from the
   ``POST`` to ``PostConversation`` on the task's stream. The anchor is a plain script doing the
   same conversation with the official ``openai`` client (``chat.completions.create``, streamed,
   the same tools) and the very same tool code (``miso_runtime.agent.tools``). Ratio
   runtime/script (goal: at most 1.2), the latency the runtime adds per step, and the cold
   path (``POST /v1/task`` with the message, the process start included) for reference.
   Our adapter sends the request with the official client's ``post`` and reads the stream's
   lines itself, which skips the SDK's per-request walk of the whole conversation: that walk
   is most of the anchor's CPU after a few dozen steps, so the runtime can come out ahead.
2. **Many tasks.** ``--tasks`` tasks, each warmed as above, then all sent a message of
   ``--steps // 5`` tool calls at the same moment: all must complete; events per second
   against one task alone; memory (RSS and PSS from ``/proc``) of the server and of the task
   processes while they run and once they are idle.
3. **Output to stream.** One task runs ``date +%s%N`` ``--clock-steps`` times; for each
   ``PostToolCall`` the time from the instant the command printed to the event's arrival on
   the SSE stream, p50/p99. The anchor is the plain script's time from the same print to the
   tool code's return (in one process, with no hop).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miso_runtime.agent.messages import CancelToken, ToolCall  # noqa: E402
from miso_runtime.agent.tools.base import ToolContext  # noqa: E402
from miso_runtime.agent.tools.registry import maria_tools, run_tool_call  # noqa: E402
from tests.maria_client import EventReader, msg, post_json  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402
from tests.standins import OpenAIStandIn  # noqa: E402
from tests.standins.server import Script, ScriptedToolCall, Turn  # noqa: E402

MODEL = "openai/gpt-bench"
#: Seconds a warm task rests after its first answer before the measured message.
WARM_UP_S = 1.0
KEY = "sk-bench"


def _plan(messages: list[dict[str, Any]]) -> tuple[int, str, int]:
    """``bench <steps> <kind>`` from the last user message, and the tool results since it."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user":
            text = message["content"] if isinstance(message["content"], str) else message["content"][0]["text"]
            _, steps, kind = text.split()
            done = sum(1 for later in messages[index:] if later.get("role") == "tool")
            return int(steps), kind, done
    return 0, "read_file", 0


def responder(body: dict[str, Any]) -> Turn:
    steps, kind, done = _plan(body.get("messages", []))
    if done >= steps:
        return Turn("done")
    if kind == "clock":
        return Turn("", [ScriptedToolCall("execute_command", {"command": "date +%s%N"})])
    return Turn("", [ScriptedToolCall("read_file", {"path": "data.txt"})])


def _standin_main(conn: Connection) -> None:
    with OpenAIStandIn(Script(responder=responder)) as standin:
        conn.send(standin.base_url)
        conn.recv()


class StandInProcess:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_standin_main, args=(child,), daemon=True)
        self._process.start()
        self.base_url: str = self._conn.recv()

    def stop(self) -> None:
        self._conn.send("stop")
        self._process.join(5)


def _workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="agent-bench-"))
    (path / "data.txt").write_text("".join(f"line {i}: the quick brown fox\n" for i in range(40)))
    return path


# --- the anchor: a plain script ---------------------------------------------------------------


def _raw_chunks(client: Any, request: dict[str, Any]) -> Any:
    """The stream as our adapter reads it: ``client.post`` and ``json.loads`` per SSE line."""
    import httpx2

    response = client.post("/chat/completions", body=request, cast_to=httpx2.Response, stream=True)
    try:
        for line in response.iter_lines():
            if line == "data: [DONE]":
                break  # as the adapter does: the response's last chunk is not waited for
            if line.startswith("data: "):
                yield json.loads(line[6:])
    finally:
        response.close()


def plain_conversation(base_url: str, steps: int, kind: str, cwd: Path, raw: bool = False) -> tuple[float, list[float]]:
    """The same conversation with the official client and the same tools; seconds, print-to-return delays.

    ``raw``: the request goes out and the stream is read the way our adapter does it, so the
    difference to the runtime is the loop, the process hop, the store and the stream alone.
    """
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=base_url, max_retries=0)
    tools = maria_tools(MODEL)
    specs = [
        {
            "type": "function",
            "function": {"name": t.spec.name, "description": t.spec.description, "parameters": t.spec.schema},
        }
        for t in tools
    ]
    context = ToolContext(cwd=cwd, cancel=CancelToken())
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"bench {steps} {kind}"}]
    delays: list[float] = []
    started = time.perf_counter()
    while True:
        request = {"model": "gpt-bench", "messages": messages, "tools": specs, "stream": True}
        text, calls = "", {}
        if raw:
            for chunk in _raw_chunks(client, request):
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    text += delta.get("content") or ""
                    for piece in delta.get("tool_calls") or ():
                        call = calls.setdefault(piece["index"], {"id": "", "name": "", "arguments": ""})
                        call["id"] = piece.get("id") or call["id"]
                        function = piece.get("function") or {}
                        call["name"] += function.get("name") or ""
                        call["arguments"] += function.get("arguments") or ""
        else:
            for chunk in client.chat.completions.create(**request):
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                text += delta.content or ""
                for piece in delta.tool_calls or ():
                    call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                    call["id"] = piece.id or call["id"]
                    if piece.function:
                        call["name"] += piece.function.name or ""
                        call["arguments"] += piece.function.arguments or ""
        if not calls:
            return time.perf_counter() - started, delays
        messages.append(
            {
                "role": "assistant",
                "content": text or None,
                "tool_calls": [
                    {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for c in calls.values()
                ],
            }
        )
        for call in calls.values():
            outcome = run_tool_call(tools, ToolCall(call["id"], call["name"], call["arguments"]), context)
            if kind == "clock":
                delays.append(time.time_ns() / 1e9 - int(outcome.result[1]["stdout"].strip()) / 1e9)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": outcome.text})


# --- the runtime --------------------------------------------------------------------------------


def run_task(
    side: Sidecar, steps: int, kind: str, cwd: Path, warm: bool = False, barrier: threading.Barrier | None = None
) -> tuple[float, list, list[float]]:
    """One task through the runtime: seconds to ``PostConversation``, its events, output-to-event delays.

    ``warm``: the task first answers a message that calls no tool, so its process is up and
    has made one model request; the clock starts at the measured message. Otherwise it starts
    at ``POST /v1/task`` with the message, which starts the task's process (the cold path).
    ``barrier``: warm tasks wait for each other there, so that their measured runs start together.
    """
    message = {"role": "user", "content": f"bench {steps} {kind}"}
    ends = 1
    if warm:
        first = {"role": "user", "content": f"bench 0 {kind}"}
        response = post_json(side, "/v1/task", {"model": MODEL, "cwd": str(cwd), "message": first})
        assert response.status_code == 201, response.text
        task_id = response.json()["task"]["id"]
        with EventReader(side, f"/v1/task/{task_id}/events") as reader:
            reader.wait_for(lambda event: msg(event) == "PostConversation", timeout=60)
        ends = 2
        time.sleep(WARM_UP_S)
        if barrier is not None:
            barrier.wait()
        started = time.perf_counter()
        answer = post_json(side, f"/v1/task/{task_id}/message", {"message": message})
        assert answer.status_code == 200, answer.text
    else:
        started = time.perf_counter()
        response = post_json(side, "/v1/task", {"model": MODEL, "cwd": str(cwd), "message": message})
        assert response.status_code == 201, response.text
        task_id = response.json()["task"]["id"]
    delays: list[float] = []
    with EventReader(side, f"/v1/task/{task_id}/events") as reader:
        seen = 0
        while True:
            events = reader.wait_more(seen, timeout=300)
            for event in events[seen:]:
                if msg(event) == "PostToolCall" and kind == "clock":
                    delays.append(time.time_ns() / 1e9 - int(event.data["desc"]["result"][1]["stdout"].strip()) / 1e9)
                if msg(event) == "PostConversation":
                    ends -= 1
                if msg(event) == "Failed" or (msg(event) == "PostConversation" and ends == 0):
                    elapsed = time.perf_counter() - started
                    if msg(event) == "Failed":
                        raise RuntimeError(f"the task failed: {event.data}")
                    if warm:  # only the measured run's events
                        first_end = next(i for i, e in enumerate(events) if msg(e) == "PostConversation")
                        events = events[first_end + 1 :]
                    return elapsed, events, delays
            seen = len(events)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def _memory_mb(pid: int) -> tuple[float, float]:
    """RSS and PSS of one process, MB (0, 0 when it is gone)."""
    try:
        rollup = (Path("/proc") / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return 0.0, 0.0
    values = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.split()[1].isdigit()}
    return values.get("Rss", 0) / 1024, values.get("Pss", 0) / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--clock-steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    standin = StandInProcess()
    data_dir = Path(tempfile.mkdtemp(prefix="agent-bench-data-"))
    env = {"MISO_OPENAI_API_KEY": KEY, "MISO_OPENAI_BASE_URL": standin.base_url, "MISO_PROVIDER": "openai"}
    side = Sidecar(data_dir, env=env)
    try:
        baseline_children = _children(side.proc.pid)
        # warm both paths (imports, first connections, first task process)
        plain_conversation(standin.base_url, 2, "read_file", _workdir())
        run_task(side, 2, "read_file", _workdir())

        print(f"1. loop overhead: {args.steps} tool calls (read_file), median of {args.repeats}")
        plain, lean, ours, cold = [], [], [], []
        for _ in range(args.repeats):
            plain.append(plain_conversation(standin.base_url, args.steps, "read_file", _workdir())[0])
            lean.append(plain_conversation(standin.base_url, args.steps, "read_file", _workdir(), raw=True)[0])
            ours.append(run_task(side, args.steps, "read_file", _workdir(), warm=True)[0])
            cold.append(run_task(side, args.steps, "read_file", _workdir())[0])
        p, o, c = statistics.median(plain), statistics.median(ours), statistics.median(cold)
        q = statistics.median(lean)
        print(f"   plain script (official client + same tools):          {p * 1000:8.1f} ms")
        print(f"   runtime, task process up (message to PostConversation): {o * 1000:8.1f} ms")
        print(
            f"   ratio runtime/script: {o / p:.2f} (goal <= 1.2); added per step: {(o - p) / args.steps * 1000:.2f} ms"
        )
        print(f"   plain script, requests sent and read as our adapter does:  {q * 1000:8.1f} ms")
        print(f"   ratio runtime/that script: {o / q:.2f}; added per step: {(o - q) / args.steps * 1000:.2f} ms")
        print(f"   runtime, new task (POST /v1/task to PostConversation):  {c * 1000:8.1f} ms (process start included)")

        per_task = max(1, args.steps // 5)
        print(f"2. {args.tasks} tasks at once, {per_task} tool calls each")
        single_s, single_events, _ = run_task(side, per_task, "read_file", _workdir(), warm=True)
        single_rate = len(single_events) / single_s
        results: list[tuple[float, list] | Exception] = []
        lock = threading.Lock()
        before = _children(side.proc.pid)
        running_peak: dict[int, tuple[float, float]] = {}
        server_peak = (0.0, 0.0)
        done_flag = threading.Event()

        barrier = threading.Barrier(args.tasks + 1)

        def one() -> None:
            try:
                elapsed, events, _ = run_task(side, per_task, "read_file", _workdir(), warm=True, barrier=barrier)
                with lock:
                    results.append((elapsed, events))
            except Exception as exc:  # noqa: BLE001 - counted as not completed
                with lock:
                    results.append(exc)

        def sample() -> None:
            nonlocal server_peak
            while not done_flag.is_set():
                for pid in _children(side.proc.pid) - before:
                    rss, pss = _memory_mb(pid)
                    old = running_peak.get(pid, (0.0, 0.0))
                    running_peak[pid] = (max(old[0], rss), max(old[1], pss))
                server = _memory_mb(side.proc.pid)
                server_peak = (max(server_peak[0], server[0]), max(server_peak[1], server[1]))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        threads = [threading.Thread(target=one) for _ in range(args.tasks)]
        for thread in threads:
            thread.start()
        barrier.wait()  # every task's process is up and has answered once
        started = time.perf_counter()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        done_flag.set()
        sampler.join()
        completed = [r for r in results if not isinstance(r, Exception)]
        events = sum(len(r[1]) for r in completed)
        print(f"   completed: {len(completed)}/{args.tasks} in {wall:.2f} s")
        rate = events / wall
        print(f"   events/s: {rate:.0f} all tasks; one task alone: {single_rate:.0f} ({rate / single_rate:.1f}x)")
        task_pids = _children(side.proc.pid) - baseline_children
        idle = [_memory_mb(pid) for pid in task_pids]
        running = [value for pid, value in running_peak.items()]
        if running:
            print(
                f"   task process while running: RSS {statistics.median(v[0] for v in running):.0f} MB,"
                f" PSS {statistics.median(v[1] for v in running):.0f} MB (median of {len(running)})"
            )
        if idle:
            print(
                f"   task process once idle:     RSS {statistics.median(v[0] for v in idle):.0f} MB,"
                f" PSS {statistics.median(v[1] for v in idle):.0f} MB (median of {len(idle)} processes)"
            )
        print(f"   server peak: RSS {server_peak[0]:.0f} MB, PSS {server_peak[1]:.0f} MB")

        print(f"3. command output to PostToolCall on the stream, {args.clock_steps} commands")
        _, plain_delays = plain_conversation(standin.base_url, args.clock_steps, "clock", _workdir())
        _, _, delays = run_task(side, args.clock_steps, "clock", _workdir())
        ms = [d * 1000 for d in delays]
        anchor = [d * 1000 for d in plain_delays]
        print(f"   runtime: p50 {_pct(ms, 0.5):.2f} ms, p99 {_pct(ms, 0.99):.2f} ms")
        a50, a99 = _pct(anchor, 0.5), _pct(anchor, 0.99)
        print(f"   anchor (plain script, print to tool return): p50 {a50:.2f} ms, p99 {a99:.2f} ms")
        print(f"   ratio of p50s: {_pct(ms, 0.5) / max(_pct(anchor, 0.5), 1e-6):.1f}")
    finally:
        side.terminate()
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

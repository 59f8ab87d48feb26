"""Benchmark: what the sidecar adds to a streamed chat reply, against an anchor measured in the same run.

Run ``.venv/bin/python bench/chat_stream.py [--tokens N] [--concurrency N] [--repeats N]``.

What is measured
----------------
One OpenAI stand-in (a loopback server speaking the exact Chat Completions wire format, see
``tests/standins``) streams a scripted reply of ``--tokens`` short tokens (" word0", " word1",
...) with no pacing, so every millisecond measured is software overhead, not model time.

1. Single stream, ``--repeats`` times, alternating the two paths:

   - **direct (the anchor)**: the official ``openai`` client reads the stream from the stand-in
     itself. Time to first token (TTFT) is taken at the first chunk with non-empty content,
     total time when the stream is exhausted.
   - **sidecar**: the same reply read through ``POST /chat/stream`` of a real sidecar process
     (``python -m miso_runtime``) pointed at the same stand-in, with a persistent httpx client
     and a minimal SSE parser. TTFT is taken at the first ``token`` event, total time at
     ``done``.

   Medians are reported, with the TTFT the sidecar adds, and throughput (tokens/s over the
   total time) with the ratio sidecar/direct.

2. ``--concurrency`` streams at once (with a shorter script, ``CONCURRENT_TOKENS`` tokens),
   each thread with its own client, through the sidecar and then directly as the anchor;
   completed count and p50/p99 of TTFT and total time.

Why the anchor is fair
----------------------
Both paths ask the same stand-in for the same reply with the same request (model, message,
``stream_options.include_usage``), and both clients are created once and warmed up with a
throwaway request first, so no first-use cost is counted on either side. (The ``openai``
client, on both paths alike, opens a new upstream connection for every stream: it closes the
connection after ``[DONE]``. Our client's connection to the sidecar is kept alive.) The sidecar
itself uses the official ``openai`` client upstream, so the direct path is exactly the work the
sidecar must do anyway; the difference is what the sidecar adds: the HTTP hop, routing, auth,
storing the conversation, re-framing every chunk as an SSE event, and the client's parsing of
those events (kept as light as the ``openai`` client's own SSE parsing: one ``json.loads`` per
event). The concurrent phase runs one unmeasured round before the measured one, for both paths
alike, so the clients' connections and every first-use cost are warm.

For the sidecar path the report also splits its time to first token: time to the response
headers, to the ``meta`` event (the first event), and the sidecar's own ``done.usage.ttft_ms``
(from the start of its handler to the first token it got from upstream); what is left is the
time the first token spent inside the sidecar on its way out.

The stand-in runs in its own process so that neither path's client shares an interpreter lock
with the server. On a small machine the sidecar path still has three busy processes (client,
sidecar, stand-in) where the direct path has two; a real provider's CPU is not on this
machine, so this setup is, if anything, harsh on the sidecar.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402 - after the sys.path set-up, like the imports below
import openai  # noqa: E402

from tests.sidecar import Sidecar  # noqa: E402
from tests.standins import OpenAIStandIn, Script  # noqa: E402

MODEL = "gpt-4o-mini"
API_KEY = "sk-bench"
ADMIN_TOKEN = "bench-admin-token"
PROMPT = "Tell me a long story."
CONCURRENT_TOKENS = 200
HTTP_TIMEOUT_S = 60.0
SIDECAR_STOP_S = 10.0
STANDIN_STOP_S = 5.0

GOAL_ADDED_TTFT_MS = 3.0
GOAL_THROUGHPUT_RATIO = 0.9


# -- the stand-in, in its own process -------------------------------------------------------


def bench_script(tokens: int) -> Script:
    """A reply of ``tokens`` short, realistic tokens, streamed as fast as the server can."""
    return Script(tokens=[f" word{i}" for i in range(tokens)], token_delay_s=0.0, first_token_delay_s=0.0)


def _standin_main(conn: Connection, tokens: int) -> None:
    """Child process: serve an OpenAI stand-in; each message sets a new token count, None stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, also on Ctrl-C
    with OpenAIStandIn(bench_script(tokens)) as standin:
        conn.send(standin.base_url)
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return  # the parent is gone
            if message is None:
                return
            standin.script = bench_script(int(message))
            conn.send("ok")


class StandInProcess:
    """An OpenAI stand-in served from a child process, so it shares no GIL with the clients."""

    def __init__(self, tokens: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(target=_standin_main, args=(child_conn, tokens), daemon=True)
        self._process.start()
        child_conn.close()
        if not self._conn.poll(30.0):
            self.stop()
            raise RuntimeError("the stand-in process did not start")
        self.base_url: str = self._conn.recv()

    def set_tokens(self, tokens: int) -> None:
        """Make every following request stream ``tokens`` tokens."""
        self._conn.send(tokens)
        self._conn.recv()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(STANDIN_STOP_S)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(STANDIN_STOP_S)
        self._conn.close()


# -- one stream, either path ----------------------------------------------------------------


@dataclass(frozen=True)
class StreamTiming:
    """One stream: seconds to the first token and to the end, and how many tokens arrived."""

    ttft_s: float
    total_s: float
    tokens: int


@dataclass(frozen=True)
class SidecarTiming(StreamTiming):
    """A stream through the sidecar, with where its time to first token went."""

    headers_s: float
    """Request start to the response headers."""
    meta_s: float
    """Request start to the ``meta`` event, the first event of every stream."""
    reported_ttft_ms: float
    """The sidecar's ``done.usage.ttft_ms``: its handler's start to the first upstream token."""


class StreamFailed(RuntimeError):
    """A stream ended without its final event, or without any token."""


def direct_stream(client: openai.OpenAI) -> StreamTiming:
    """Read one reply from the stand-in with the official client."""
    started = time.perf_counter()
    first: float | None = None
    tokens = 0
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    with stream:
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    if first is None:
                        first = time.perf_counter()
                    tokens += 1
    finished = time.perf_counter()
    if first is None:
        raise StreamFailed("the direct stream had no token")
    return StreamTiming(first - started, finished - started, tokens)


def sidecar_stream(client: httpx.Client) -> SidecarTiming:
    """Read one reply through ``POST /chat/stream`` with a minimal SSE parser.

    Comments (``:`` lines) and ``id`` lines are skipped and the ``meta`` data is not decoded;
    each ``data`` line of a ``token`` or ``done`` event is decoded with one ``json.loads``, as
    the openai client decodes each of its chunks.
    """
    started = time.perf_counter()
    meta: float | None = None
    first: float | None = None
    tokens = 0
    event = ""
    with client.stream("POST", "/chat/stream", json={"message": PROMPT}) as response:
        headers = time.perf_counter()
        if response.status_code != 200:
            raise StreamFailed(f"POST /chat/stream answered {response.status_code}: {response.read()!r}")
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
                if meta is None and event == "meta":
                    meta = time.perf_counter()
            elif not line.startswith("data:"):
                continue
            elif event == "token":
                if json.loads(line[5:])["delta"]:
                    if first is None:
                        first = time.perf_counter()
                    tokens += 1
            elif event == "done":
                usage = json.loads(line[5:])["usage"]
                finished = time.perf_counter()
                if first is None or meta is None:
                    raise StreamFailed("the sidecar stream had no meta event or no token")
                return SidecarTiming(
                    ttft_s=first - started,
                    total_s=finished - started,
                    tokens=tokens,
                    headers_s=headers - started,
                    meta_s=meta - started,
                    reported_ttft_ms=float(usage.get("ttft_ms") or math.nan),
                )
            elif event == "error":
                raise StreamFailed(f"the sidecar sent an error event: {line[5:].strip()}")
    raise StreamFailed("the sidecar stream ended without a done event")


def direct_client(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=API_KEY, max_retries=0, timeout=HTTP_TIMEOUT_S)


def sidecar_client(sidecar: Sidecar) -> httpx.Client:
    return httpx.Client(base_url=sidecar.base_url, headers=sidecar.auth, timeout=HTTP_TIMEOUT_S)


# -- statistics -----------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100): p99 of 100 samples is the 99th smallest."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ms(seconds: float) -> float:
    return seconds * 1000.0


# -- phase 1: one stream at a time ----------------------------------------------------------


@dataclass(frozen=True)
class SequentialResult:
    direct: list[StreamTiming]
    sidecar: list[SidecarTiming]


def median_ttft_ms(timings: list[StreamTiming] | list[SidecarTiming]) -> float:
    return ms(statistics.median(t.ttft_s for t in timings))


def median_total_ms(timings: list[StreamTiming] | list[SidecarTiming]) -> float:
    return ms(statistics.median(t.total_s for t in timings))


def median_tokens_per_s(timings: list[StreamTiming] | list[SidecarTiming]) -> float:
    return statistics.median(t.tokens / t.total_s for t in timings)


def run_sequential(standin: StandInProcess, sidecar: Sidecar, tokens: int, repeats: int) -> SequentialResult:
    """Alternate direct and sidecar streams ``repeats`` times, after one warm-up of each."""
    standin.set_tokens(tokens)
    direct: list[StreamTiming] = []
    through: list[SidecarTiming] = []
    with direct_client(standin.base_url) as openai_client, sidecar_client(sidecar) as http_client:
        direct_stream(openai_client)
        sidecar_stream(http_client)
        for _ in range(repeats):
            direct.append(direct_stream(openai_client))
            through.append(sidecar_stream(http_client))
    for timing in (*direct, *through):
        if timing.tokens != tokens:
            raise StreamFailed(f"expected {tokens} tokens, a stream had {timing.tokens}")
    return SequentialResult(direct, through)


# -- phase 2: many streams at once ----------------------------------------------------------


@dataclass(frozen=True)
class ConcurrentResult:
    streams: int
    timings: list[StreamTiming]
    errors: list[str]
    wall_s: float

    @property
    def completed(self) -> int:
        return len(self.timings)

    def ttft_ms(self, q: float) -> float:
        return ms(percentile([t.ttft_s for t in self.timings], q)) if self.timings else math.nan

    def total_ms(self, q: float) -> float:
        return ms(percentile([t.total_s for t in self.timings], q)) if self.timings else math.nan


def run_concurrent(
    streams: int,
    new_client: Callable[[], httpx.Client | openai.OpenAI],
    read: Callable[..., StreamTiming],
    expected_tokens: int,
) -> ConcurrentResult:
    """Start ``streams`` threads, each with its own client; all run one unmeasured round, then
    one measured round, each round released at once by a barrier."""
    barrier = threading.Barrier(streams + 1)
    timings: list[StreamTiming] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            with new_client() as client:
                for measured in (False, True):
                    barrier.wait()
                    try:
                        timing = read(client)
                        if timing.tokens != expected_tokens:
                            raise StreamFailed(f"{timing.tokens} of {expected_tokens} tokens")
                    except Exception as exc:  # noqa: BLE001 - a failed stream is counted, not fatal
                        if measured:
                            with lock:
                                errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    if measured:
                        with lock:
                            timings.append(timing)
        except threading.BrokenBarrierError:
            with lock:
                errors.append("the start barrier broke")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(streams)]
    for thread in threads:
        thread.start()
    barrier.wait()  # the warm-up round
    barrier.wait()  # the measured round
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return ConcurrentResult(streams, timings, errors, time.perf_counter() - started)


# -- the report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_sequential(result: SequentialResult, tokens: int, repeats: int) -> tuple[bool, bool]:
    """Print phase 1; return whether each goal was met."""
    d_ttft, s_ttft = median_ttft_ms(result.direct), median_ttft_ms(result.sidecar)
    d_total, s_total = median_total_ms(result.direct), median_total_ms(result.sidecar)
    d_rate, s_rate = median_tokens_per_s(result.direct), median_tokens_per_s(result.sidecar)
    added = s_ttft - d_ttft
    ratio = s_rate / d_rate
    print(f"\n== one stream at a time: {tokens} tokens, median of {repeats} (alternating) ==")
    print(f"{'':24}{'direct':>12}{'sidecar':>12}{'sidecar-direct':>16}{'ratio s/d':>11}")
    print(f"{'TTFT ms':24}{d_ttft:12.2f}{s_ttft:12.2f}{added:+16.2f}{s_ttft / d_ttft:11.2f}")
    print(f"{'total ms':24}{d_total:12.1f}{s_total:12.1f}{s_total - d_total:+16.1f}{s_total / d_total:11.2f}")
    print(f"{'throughput tokens/s':24}{d_rate:12.0f}{s_rate:12.0f}{s_rate - d_rate:+16.0f}{ratio:11.2f}")
    print("  each run (ms, TTFT/total):")
    for label, timings in (("direct", result.direct), ("sidecar", result.sidecar)):
        runs = "  ".join(f"{ms(t.ttft_s):.1f}/{ms(t.total_s):.0f}" for t in timings)
        print(f"    {label:8}{runs}")
    print_ttft_breakdown(result.sidecar)
    ttft_ok = added < GOAL_ADDED_TTFT_MS
    rate_ok = ratio >= GOAL_THROUGHPUT_RATIO
    print(f"goal: sidecar adds < {GOAL_ADDED_TTFT_MS:g} ms TTFT at p50; throughput ratio >= {GOAL_THROUGHPUT_RATIO:g}")
    print(f"  added TTFT (p50)   {added:+.2f} ms  -> {verdict(ttft_ok)}")
    print(f"  throughput ratio   {ratio:.2f}      -> {verdict(rate_ok)}")
    return ttft_ok, rate_ok


def print_ttft_breakdown(timings: list[SidecarTiming]) -> None:
    """Where the sidecar's time to first token went (medians over the runs)."""
    headers = ms(statistics.median(t.headers_s for t in timings))
    meta = ms(statistics.median(t.meta_s for t in timings))
    upstream = statistics.median(t.reported_ttft_ms for t in timings)
    first = ms(statistics.median(t.ttft_s for t in timings))
    print(
        f"  sidecar TTFT split (medians, ms): response headers {headers:.2f}, meta event {meta:.2f}, "
        f"its own ttft_ms (handler start -> first upstream token) {upstream:.2f}, first token event {first:.2f}"
    )


def print_concurrent(sidecar: ConcurrentResult, direct: ConcurrentResult, tokens: int) -> None:
    print(
        f"\n== {sidecar.streams} concurrent streams: {tokens} tokens each (shorter than phase 1), "
        "one client per thread, measured after one warm-up round =="
    )
    print(f"{'':20}{'direct':>12}{'sidecar':>12}{'sidecar-direct':>16}{'ratio s/d':>11}")
    print(f"{'completed':20}{f'{direct.completed}/{direct.streams}':>12}{f'{sidecar.completed}/{sidecar.streams}':>12}")
    rows = (
        ("TTFT p50 ms", direct.ttft_ms(50), sidecar.ttft_ms(50)),
        ("TTFT p99 ms", direct.ttft_ms(99), sidecar.ttft_ms(99)),
        ("total p50 ms", direct.total_ms(50), sidecar.total_ms(50)),
        ("total p99 ms", direct.total_ms(99), sidecar.total_ms(99)),
        ("wall ms", ms(direct.wall_s), ms(sidecar.wall_s)),
    )
    for label, d, s in rows:
        print(f"{label:20}{d:12.1f}{s:12.1f}{s - d:+16.1f}{s / d:11.2f}")
    total_tokens = tokens * sidecar.streams
    print(
        f"{'aggregate tokens/s':20}{total_tokens / direct.wall_s:12.0f}{total_tokens / sidecar.wall_s:12.0f}"
        f"{'':16}{direct.wall_s / sidecar.wall_s:11.2f}"
    )
    for label, result in (("direct", direct), ("sidecar", sidecar)):
        for error in sorted(set(result.errors)):
            print(f"  {label} error x{result.errors.count(error)}: {error}")
    print(
        f"  (informational: under load the sidecar adds {sidecar.ttft_ms(50) - direct.ttft_ms(50):+.1f} ms TTFT at p50)"
    )


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=2000, help="tokens per stream in the one-at-a-time phase")
    parser.add_argument("--concurrency", type=int, default=100, help="streams at once in the concurrent phase")
    parser.add_argument("--repeats", type=int, default=5, help="streams per path in the one-at-a-time phase")
    args = parser.parse_args(argv)
    for name in ("tokens", "concurrency", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return args


@contextlib.contextmanager
def started_sidecar(base_url: str) -> Iterator[Sidecar]:
    """A sidecar on a temporary data dir, pointed at the stand-in; SIGTERMed and cleaned up after.

    On an error its last stderr lines are shown.
    """
    with tempfile.TemporaryDirectory(prefix="miso-bench-") as data_dir:
        sidecar = Sidecar(
            Path(data_dir),
            token=ADMIN_TOKEN,
            env={
                "MISO_PROVIDER": "openai",
                "MISO_MODEL": MODEL,
                "MISO_OPENAI_API_KEY": API_KEY,
                "MISO_OPENAI_BASE_URL": base_url,
            },
        )
        try:
            yield sidecar
        except Exception:
            tail = sidecar.stderr_text().splitlines()[-20:]
            print("sidecar stderr (last lines):", *tail, sep="\n  ", file=sys.stderr)
            raise
        finally:
            try:
                sidecar.terminate(SIDECAR_STOP_S)
            except Exception:  # noqa: BLE001 - it must go, however it failed to stop
                sidecar.kill()


@contextlib.contextmanager
def started_standin(tokens: int) -> Iterator[StandInProcess]:
    standin = StandInProcess(tokens)
    try:
        yield standin
    finally:
        standin.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with started_standin(args.tokens) as standin, started_sidecar(standin.base_url) as sidecar:
        print(
            f"miso-runtime {sidecar.ready['version']} (pid {sidecar.ready['pid']}) -> OpenAI stand-in "
            f"{standin.base_url}; openai {openai.__version__}, httpx {httpx.__version__}, "
            f"python {sys.version.split()[0]}, {multiprocessing.cpu_count()} CPUs"
        )
        sequential = run_sequential(standin, sidecar, args.tokens, args.repeats)
        print_sequential(sequential, args.tokens, args.repeats)

        standin.set_tokens(CONCURRENT_TOKENS)
        through = run_concurrent(args.concurrency, lambda: sidecar_client(sidecar), sidecar_stream, CONCURRENT_TOKENS)
        direct = run_concurrent(
            args.concurrency, lambda: direct_client(standin.base_url), direct_stream, CONCURRENT_TOKENS
        )
        print_concurrent(through, direct, CONCURRENT_TOKENS)
    print(f"\nbenchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        raise SystemExit(130) from None

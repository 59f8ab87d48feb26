"""Benchmark: what a Caco session adds to a streamed reply, against the same stream read directly.

Run ``.venv/bin/python bench/caco_ws.py [--tokens N] [--repeats N] [--watchers N]``.

What is measured
----------------
One OpenAI stand-in, in its own process, streams a scripted reply of ``--tokens`` short tokens
with no pacing, so every millisecond is software.

1. One page, ``--repeats`` turns, alternating the two paths:

   - **direct (the anchor)**: the official ``openai`` client reads the reply from the stand-in.
     Time to first delta is taken at the first chunk with content, the total at the stream's end.
   - **caco**: a page's socket on ``/caco/ws`` of a real sidecar, and ``POST
     /caco/api/sessions/<id>/messages``. The clock starts when the POST is sent; time to first
     delta is the arrival of the first ``deltaContent`` frame, the total the ``complete`` frame.
     The reply goes stand-in -> the session's task process (the agent loop, which first counts
     the request's tokens against the model's context) -> the server (translation to Caco's
     frames) -> the socket.

   Medians are reported: the time to first delta Caco adds, and throughput (tokens/s over the
   total) with the ratio caco/direct. Goals as for ``/chat/stream``: under 3 ms added at p50,
   and at least 0.9 of direct.

2. ``--watchers`` pages on one session (Caco sends every frame to every socket): one turn, and
   for each page the time to its ``complete`` frame and whether it got every delta; reported as
   p50/p99 against the single page of phase 1.

Why the anchor is fair
----------------------
Both ask the same stand-in for the same reply. The session's request is larger (Caco's system
prompt, its tools and the conversation so far), which the stand-in must read; that cost is the
session's. Both paths are warmed up first (the session's process started, its tokenizer
loaded, the clients connected), so no first-use cost is counted on either side.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402 - after the sys.path set-up, like the imports below

from bench.chat_stream import (  # noqa: E402
    ADMIN_TOKEN,
    API_KEY,
    GOAL_ADDED_TTFT_MS,
    GOAL_THROUGHPUT_RATIO,
    StandInProcess,
    StreamTiming,
    direct_client,
    direct_stream,
    ms,
    percentile,
)
from tests.sidecar import Sidecar  # noqa: E402
from tests.ws_client import JsonSocket  # noqa: E402

MODEL = "openai:gpt-4o-mini"
PROMPT = "Tell me a long story."
TURN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class PageTiming(StreamTiming):
    """One page's view of a turn (times from the POST); ``tokens`` counts the reply's tokens when
    the page's deltas joined make the whole reply, else 0. ``frames`` is how many delta frames
    carried them (a page that lags gets runs of deltas joined)."""

    frames: int = 0


def _turn(http: httpx.Client, session_id: str, pages: list[JsonSocket]) -> list[PageTiming]:
    """Send one message and wait for every page's ``complete``; each page's timing."""
    marks = [len(page.received) for page in pages]
    started = time.time()
    answer = http.post(f"/caco/api/sessions/{session_id}/messages", json={"prompt": PROMPT})
    answer.raise_for_status()

    def done(frames: list[dict]) -> bool:
        last = frames[-1] if frames else None
        return bool(
            last
            and last.get("type") == "message"
            and last.get("sessionId") == session_id
            and last["message"].get("status") == "complete"
        )

    timings = []
    for page, mark in zip(pages, marks, strict=True):
        page.wait_messages(lambda frames, mark=mark: len(frames) > mark and done(frames), timeout=TURN_TIMEOUT_S)
        frames = page.received[mark:]
        deltas = [
            (at, frame["message"]["deltaContent"])
            for at, frame in frames
            if "deltaContent" in (frame.get("message") or {})
        ]
        if not deltas:
            raise RuntimeError("a page got no delta")
        whole = "".join(text for _at, text in deltas) == frames[-1][1]["message"]["content"]
        tokens = frames[-1][1]["message"]["content"].count(" word") if whole else 0
        timings.append(PageTiming(deltas[0][0] - started, frames[-1][0] - started, tokens, frames=len(deltas)))
    return timings


def _session(sidecar: Sidecar, http: httpx.Client, workspace: Path, name: str) -> str:
    folder = workspace / name
    folder.mkdir()
    created = http.post("/caco/api/sessions", json={"cwd": str(folder), "model": MODEL})
    created.raise_for_status()
    return created.json()["sessionId"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--watchers", type=int, default=50)
    args = parser.parse_args()

    standin = StandInProcess(args.tokens)
    with tempfile.TemporaryDirectory(prefix="bench-caco-") as tmp:
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        env = {
            "MISO_OPENAI_BASE_URL": standin.base_url,
            "MISO_OPENAI_API_KEY": API_KEY,
            "MISO_PROVIDER": "openai",
            "MISO_MODEL": "gpt-4o-mini",
            "MISO_CACO_ROOT": str(workspace),
            "MISO_LOG_LEVEL": "WARNING",
        }
        sidecar = Sidecar(Path(tmp) / "data", token=ADMIN_TOKEN, env=env)
        try:
            http = httpx.Client(base_url=sidecar.base_url, headers=sidecar.auth, timeout=TURN_TIMEOUT_S)
            openai_client = direct_client(standin.base_url)
            page = JsonSocket(sidecar.port, f"/caco/ws?token={ADMIN_TOKEN}")
            session = _session(sidecar, http, workspace, "one")
            direct_stream(openai_client)
            _turn(http, session, [page])  # starts the session's process and warms every path
            direct: list[StreamTiming] = []
            caco: list[PageTiming] = []
            for _ in range(args.repeats):
                direct.append(direct_stream(openai_client))
                caco.append(_turn(http, session, [page])[0])
            page.close()
            for timing in (*direct, *caco):
                if timing.tokens != args.tokens:
                    raise RuntimeError(f"expected {args.tokens} deltas, a turn had {timing.tokens}")

            watched = _session(sidecar, http, workspace, "watched")
            pages = [JsonSocket(sidecar.port, f"/caco/ws?token={ADMIN_TOKEN}") for _ in range(args.watchers)]
            _turn(http, watched, pages)  # warm-up of the second session
            crowd = _turn(http, watched, pages)
            for watcher in pages:
                watcher.close()
        finally:
            sidecar.terminate()
            standin.stop()

    direct_ttft = ms(statistics.median(t.ttft_s for t in direct))
    caco_ttft = ms(statistics.median(t.ttft_s for t in caco))
    direct_rate = statistics.median(t.tokens / t.total_s for t in direct)
    caco_rate = statistics.median(t.tokens / t.total_s for t in caco)
    added = caco_ttft - direct_ttft
    ratio = caco_rate / direct_rate
    print(f"# /caco/ws: one scripted turn of {args.tokens} streamed tokens, median of {args.repeats}")
    print(f"time to first delta   direct {direct_ttft:8.2f} ms   caco {caco_ttft:8.2f} ms   added {added:+.2f} ms")
    print(f"throughput            direct {direct_rate:8.0f} tok/s caco {caco_rate:8.0f} tok/s ratio {ratio:.2f}")
    print(
        f"total                 direct {ms(statistics.median(t.total_s for t in direct)):8.1f} ms   "
        f"caco {ms(statistics.median(t.total_s for t in caco)):8.1f} ms"
    )
    print(
        f"goals: added TTFT < {GOAL_ADDED_TTFT_MS} ms: {'met' if added < GOAL_ADDED_TTFT_MS else 'NOT met'}; "
        f"throughput >= {GOAL_THROUGHPUT_RATIO} of direct: {'met' if ratio >= GOAL_THROUGHPUT_RATIO else 'NOT met'}"
    )
    complete_ms = [ms(t.total_s) for t in crowd]
    full = sum(t.tokens == args.tokens for t in crowd)
    one_page = ms(statistics.median(t.total_s for t in caco))
    print(f"# {args.watchers} pages watching one session, one turn of {args.tokens} tokens")
    frames = statistics.median(t.frames for t in crowd)
    print(
        f"whole reply: {full}/{args.watchers} pages (median {frames:.0f} delta frames); "
        f"complete p50 {percentile(complete_ms, 50):.1f} ms, "
        f"p99 {percentile(complete_ms, 99):.1f} ms (one page: {one_page:.1f} ms, "
        f"ratio p50 {percentile(complete_ms, 50) / one_page:.2f}); "
        f"first delta p50 {ms(percentile([t.ttft_s for t in crowd], 50)):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark of sleep staging: one 8-hour night through the runtime against YASA called directly.

1. An 8-hour, two-channel, 256 Hz synthetic night (``tests/sleep_signal.py``) is written as a
   finished Muse S session (``tests/sleep_sessions.py``: the recording file and its session
   row, as a capture leaves them; rows TP9/AF8 hold channel 0, AF7/TP10 channel 1). Staged
   through the runtime: ``POST /v1/analysis/sleep`` over the night, from the files on disk (the
   recording's binary copy; once more from the text alone, as for a recording without one) to
   the stored hypnogram and the answer; the worker's own time comes from its ``sleep-staging`` event.
   Anchor: ``yasa.SleepStaging`` on the same channel's samples already in memory, in a process of
   its own. Goal: ratio at most 1.2. Both are timed cold (a fresh process: importing YASA and
   MNE, and YASA's first call, which imports antropy and so compiles its numba code) and warm
   (the same night staged again, the median of three: by the runtime under other channel settings,
   each a new staging).
2. Peak memory (VmHWM) of the staging worker, next to the direct call's process.
3. ``POST /v1/analysis/sleep`` over the staged night answered from the store: p50 and p95 of 200
   requests (goal p50 under 50 ms); anchor: ``GET /v1/settings/sleep-config`` on the same sidecar.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from miso_runtime.neuro.sample_file import samples_path  # noqa: E402
from tests.eeg import EventsClient, wait_until  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402
from tests.sleep_sessions import seed_session  # noqa: E402
from tests.sleep_signal import night_start_utc_s, synthetic_night  # noqa: E402

HOURS = 8.0
RATE_HZ = 256.0
REQUESTS = 200
#: Seconds to wait after every worker is up, before the cold run.
SETTLE_S = 10.0

DIRECT = r"""
import json, resource, sys, time, warnings
import numpy as np
signal = np.load(sys.argv[1])
began = time.perf_counter()
import mne, yasa  # a fresh process pays these, as the worker does: part of the cold figure
imported = time.perf_counter() - began
warnings.simplefilter("ignore")
def once():
    raw = mne.io.RawArray(signal[None, :] * 1e-6, mne.create_info(["TP10"], float(sys.argv[2]), "eeg"), verbose=False)
    began = time.perf_counter()
    yasa.SleepStaging(raw, eeg_name="TP10").predict()
    return time.perf_counter() - began
cold = imported + once()
warm = sorted(once() for _ in range(3))[1]
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"cold_s": cold, "warm_s": warm, "peak_mb": peak_mb}))
"""


def direct_run(signal_file: Path) -> dict[str, float]:
    """YASA called directly in a fresh process: cold and warm seconds, peak MB."""
    finished = subprocess.run(
        [sys.executable, "-c", DIRECT, str(signal_file), str(RATE_HZ)], check=True, capture_output=True, text=True
    )
    return json.loads(finished.stdout)


def worker_peak_mb(side: Sidecar) -> float:
    [worker] = [w for w in side.get("/v1/settings/daemon-watchdog").json()["workers"] if w["name"] == "staging"]
    for line in Path(f"/proc/{worker['pid']}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def staged_through_runtime(
    side: Sidecar, events: EventsClient, start: float, session_id: str
) -> tuple[float, float, dict[str, float]]:
    """(seconds of the request, seconds the worker reported, its ms per phase) for staging the night."""
    seen = len(events.of_type("sleep-staging"))
    began = time.perf_counter()
    body = {"startUtc": int(start), "endUtc": int(start + HOURS * 3600), "waitSecs": 600}
    answer = side.post("/v1/analysis/sleep", json=body)
    took = time.perf_counter() - began
    assert answer.status_code == 200 and answer.json()["summary"]["total_epochs"] == int(HOURS * 120), answer.text
    done = [
        e["payload"]
        for e in events.of_type("sleep-staging")[seen:]
        if e["payload"]["session_id"] == session_id and e["payload"]["phase"] == "done"
    ]
    return took, done[-1]["elapsed_ms"] / 1000, done[-1]["timings_ms"]


def main() -> None:
    began = time.perf_counter()
    night = synthetic_night(HOURS, RATE_HZ, 2, seed=0)
    print(f"night: {HOURS:g} h, 2 channels, {RATE_HZ:g} Hz, made in {time.perf_counter() - began:.1f} s")
    start = night_start_utc_s()
    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        session_id, path = seed_session(data_dir, night.signal_uv, start)
        print(f"recording: {path.stat().st_size / 1e6:.0f} MB (BrainFlow text, Muse S layout)")
        # The anchor stages the same array the recording was written from (TP10 holds channel 1).
        np.save(data_dir / "tp10.npy", night.signal_uv[1])
        first_direct = direct_run(data_dir / "tp10.npy")
        side = Sidecar(data_dir)
        events = EventsClient(side.port, side.token)
        try:
            # Let the other workers finish starting (imports on 2 cores) so both cold runs meet a quiet machine.
            wait_until(
                lambda: all(
                    w["state"] == "running" for w in side.get("/v1/settings/daemon-watchdog").json()["workers"]
                ),
                timeout=60,
            )
            time.sleep(SETTLE_S)
            cold_request, cold_worker, cold_phases = staged_through_runtime(side, events, start, session_id)
            warm_runs = []
            for channel in ("TP9", "AF7", "AF8"):  # each setting is a new staging of the same night
                side.post("/v1/settings/sleep-config", json={"channel": channel})
                warm_runs.append(staged_through_runtime(side, events, start, session_id))
            warm_request, warm_worker, warm_phases = sorted(warm_runs, key=lambda run: run[0])[1]
            samples_path(path).rename(path.with_name("copy.kept"))  # an older recording: text only
            side.post("/v1/settings/sleep-config", json={"channel": "TP10"})
            text_request, text_worker, text_phases = staged_through_runtime(side, events, start, session_id)
            path.with_name("copy.kept").rename(samples_path(path))
            side.post("/v1/settings/sleep-config", json={"channel": "auto"})
            peak = worker_peak_mb(side)
            # Once more with the sidecar idle, so a slow moment of this shared machine weighs on both sides.
            second_direct = direct_run(data_dir / "tp10.npy")
            direct = {name: (first_direct[name] + second_direct[name]) / 2 for name in ("cold_s", "warm_s", "peak_mb")}

            print("1. staging an 8-hour night: file on disk -> stored hypnogram")
            print(f"   {'':28}{'runtime (request)':>20}{'runtime (worker)':>18}{'YASA direct':>14}{'ratio':>8}")
            for name, request, worker, anchor in (
                ("first after start (cold)", cold_request, cold_worker, direct["cold_s"]),
                ("warm (median of 3)", warm_request, warm_worker, direct["warm_s"]),
                ("warm, text only (no copy)", text_request, text_worker, direct["warm_s"]),
            ):
                print(
                    f"   {name:28}{request:>18.2f} s{worker:>16.2f} s{anchor:>12.2f} s{request / anchor:>8.2f}"
                    f"   (goal 1.2)"
                )
            for name, phases in (("cold", cold_phases), ("warm", warm_phases), ("text only", text_phases)):
                parts = ", ".join(f"{phase} {ms / 1000:.2f} s" for phase, ms in phases.items())
                print(f"   worker phases, {name}: {parts}")
            print("   (load: importing YASA and antropy, whose numba functions compile at import; a worker loads")
            print("    them ahead once a recording passes auto_stage_min_minutes, so a night that ends finds them)")
            print(
                f"   YASA direct, the two runs: cold {first_direct['cold_s']:.2f} s and"
                f" {second_direct['cold_s']:.2f} s, warm {first_direct['warm_s']:.2f} s and"
                f" {second_direct['warm_s']:.2f} s (their means above)"
            )
            print("2. peak memory")
            print(f"   staging worker {peak:.0f} MB, YASA direct process {direct['peak_mb']:.0f} MB")

            body = {"startUtc": int(start), "endUtc": int(start + HOURS * 3600)}
            timings, anchors = [], []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                answer = side.post("/v1/analysis/sleep", json=body)
                timings.append(time.perf_counter() - t0)
                assert answer.status_code == 200
                t0 = time.perf_counter()
                side.get("/v1/settings/sleep-config")
                anchors.append(time.perf_counter() - t0)
            size_kb = len(answer.content) / 1024
            p50, p95 = statistics.median(timings) * 1000, np.percentile(timings, 95) * 1000
            a50 = statistics.median(anchors) * 1000
            print(f"3. POST /v1/analysis/sleep from the store ({REQUESTS} requests, {size_kb:.0f} KB each)")
            print(f"   p50 {p50:.1f} ms, p95 {p95:.1f} ms  (goal p50 < 50 ms); GET sleep-config p50 {a50:.1f} ms")
            print(f"   ratio p50 / GET sleep-config p50: {p50 / a50:.1f}")
        finally:
            events.close()
            side.terminate()
    print(json.dumps({"done": True}))


if __name__ == "__main__":
    main()

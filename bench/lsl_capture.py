"""Benchmark part 3 of ``bench/skill_extras.py``: the capture worker's CPU on an LSL stream against
BrainFlow's synthetic board, at the same rate and channel count, in one run.

Run ``.venv/bin/python bench/lsl_capture.py [--seconds N]``.

One real sidecar; its ``capture`` worker's CPU time (user + system, every thread, from
``/proc/<pid>/stat``) is read over ``--seconds`` (default 30) of a running session after a 5 s
warm-up, twice:

- **anchor**: a session of BrainFlow's synthetic board (16 EEG channels at 250 Hz; the board
  makes its samples on a thread of the worker, which counts here too);
- **ours**: a session of a paired LSL stream of 16 channels at 250 Hz, published by an outlet in
  this process (a sine with noise, pushed every 20 ms; the outlet's CPU is not the worker's).

Both sessions record, compute band powers, cut epochs and send them to the embed worker, as any
device does. Printed: CPU seconds per second of EEG and percent of one core, and the ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.eeg import wait_until  # noqa: E402
from tests.lsl_streams import SineOutlet, lsl_env, unique_source_id  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402

CHANNELS = 16
RATE_HZ = 250.0
WARM_UP_S = 5.0
SYNTHETIC = -1


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def capture_pid(side: Sidecar) -> int:
    found = re.findall(r"worker capture started \(pid (\d+)\)", side.stderr_text())
    if not found:
        raise RuntimeError("the sidecar did not log its capture worker's pid")
    return int(found[-1])


def measure(side: Sidecar, body: dict, seconds: float) -> float:
    """CPU seconds per second of a session started with ``body`` (measured after the warm-up)."""
    answer = side.post("/v1/control/start-session", json=body, timeout=60)
    answer.raise_for_status()
    pid = capture_pid(side)
    time.sleep(WARM_UP_S)
    before, started = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - started
    side.post("/v1/control/cancel-session")
    wait_until(lambda: side.get("/v1/status").json()["state"] == "disconnected", timeout=30)
    return used / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        side = Sidecar(Path(tmp) / "data", env=lsl_env())
        try:
            synthetic = measure(side, {"board_id": SYNTHETIC}, args.seconds)
            source_id = unique_source_id("miso-bench")
            with SineOutlet(source_id, name="BenchCap", n_channels=CHANNELS, rate_hz=RATE_HZ):
                found = wait_until(
                    lambda: next(
                        (s for s in side.get("/v1/lsl/discover", timeout=30).json() if s["source_id"] == source_id),
                        None,
                    ),
                    timeout=30,
                )
                pair = {
                    "sourceId": source_id,
                    "name": found["name"],
                    "streamType": found["stream_type"],
                    "channels": found["channels"],
                    "sampleRate": found["sample_rate"],
                }
                side.post("/v1/lsl/pair", json=pair).raise_for_status()
                lsl = measure(side, {"device_id": f"lsl:{source_id}"}, args.seconds)
        finally:
            side.terminate()
    print(f"capture worker CPU over {args.seconds:g} s of a session, {CHANNELS} channels at {RATE_HZ:g} Hz:")
    print(f"anchor, BrainFlow's synthetic board: {synthetic:.4f} CPU s per s ({synthetic * 100:.2f} % of a core)")
    print(f"ours, a paired LSL stream:           {lsl:.4f} CPU s per s ({lsl * 100:.2f} % of a core)")
    print(f"ratio ours / anchor: {lsl / synthetic:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

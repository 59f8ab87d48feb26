"""Benchmark: EEG pipeline speed offline and the cost of live capture, against BrainFlow measured in the same run.

Run ``.venv/bin/python bench/neuro_pipeline.py [--minutes M] [--chunk-s S] [--seed N] [--live-s S]
[--skip-offline]``.

What is measured
----------------
(1) Offline pipeline (:func:`offline_pipeline_section`). ``--minutes`` (default 60) of synthetic
EEG-like data, 16 channels at 256 Hz, generated once from a seeded numpy generator before any
timing: pink (1/f power) background noise of 10 µV RMS, a 10 Hz alpha rhythm of up to ~15 µV
waxing and waning over 10 s (stronger at the back of the head), 8 µV of 50 Hz mains, and a DC
offset of up to ±3000 µV per channel, as BrainFlow boards deliver.

- **ours**: the capture worker's ``SignalPipeline`` on board rows (EEG plus the timestamp row),
  i.e. ``StreamingFilter`` (notch 50 Hz + Butterworth band-pass 1-45 Hz, order 4, the live
  defaults) -> ``SlidingBandPowers`` (2 s windows every 0.25 s, Welch, plus the warm-up frames
  of the first window) -> ``Epocher`` (5 s epochs with mean band powers and derived scores, 16
  named 10-20 channels so the frontal asymmetry is computed too) and the per-second signal
  quality check; only building the JSON of the live frames is left out. Fed as fast as it
  goes in chunks of ``--chunk-s`` seconds (default 1 s, 256 samples, roughly what a board read
  returns live), with the chunk's timestamp. Timed from the first chunk to the last.
- **anchor, BrainFlow API**: ``DataFilter.get_custom_band_powers(window, bands, channels, 256,
  False)`` of BrainFlow itself, on every 2 s window every 0.25 s (the same windows ours
  produces), with our five bands. Its input is the same data already filtered by our
  ``StreamingFilter`` (filtered once, untimed), so ``apply_filter=False``. Timed per window:
  cutting the (row-major) window out and the call.
- **anchor, BrainFlow C**: the same C routine through BrainFlow's own ctypes binding
  (``DataHandlerDLL.get_custom_band_powers``) with the window already flattened, i.e. without
  the Python wrapper, which copies every sample into a new array in a Python loop and would
  otherwise dominate the anchor's time. If the binding is not found, this row is skipped.

Both sides get one untimed warm-up call (BrainFlow loads its library on first use; ours builds
its cached Welch plan).

(2) Live board (:func:`live_board_section`). A real sidecar (``python -m miso_runtime``, see
``tests/sidecar.py``) with this process connected to ``/v1/events`` over a WebSocket;
``POST /v1/control/start-session`` with ``{}`` opens BrainFlow's synthetic board (250 Hz, 16
channels) in the ``capture`` worker process. Measured over ``--live-s`` seconds (default 60),
starting once the session and the anchor have both streamed for ``LIVE_SETTLE_S`` seconds:

- **ours, CPU**: the capture worker's utime + stime from ``/proc/<pid>/stat`` (all its
  threads, BrainFlow's board thread included) at the start and the end of the interval, as %
  of one core. The worker reads the board every 20 ms, appends the samples to the recording
  file, runs the ``SignalPipeline`` (as in part 1), builds the ``EegBands`` JSON, sends it to
  the server and stores each 5 s epoch in SQLite.
- **ours, latency**: for every ``EegBands`` frame that reaches this process in the interval,
  its arrival time at the WebSocket client minus ``window_end_ts_unix_ms`` (the board
  timestamp of the window's last sample): board buffer -> worker poll -> pipeline -> server ->
  event bus -> WebSocket -> client. p50, p99, max and count, and the frame rate (a 0.25 s hop
  gives 4 frames/s).
- **anchor**: a bare loop in a child process of this bench (multiprocessing spawn) that only
  reads the same synthetic board with BrainFlow (``BoardShim(-1)``, ``get_board_data()``
  every 20 ms, the capture worker's poll interval) and does nothing with the data: the floor
  of reading the board at all. It runs concurrently with the live session, over the same
  interval, and its CPU is measured the same way. Its latency is BrainFlow's own delivery
  delay: for each non-empty read, the time of the read minus the timestamp of the chunk's
  last sample (the synthetic board stamps samples with the same UNIX clock as
  ``time.time()``).

Why the anchor is fair, and where it is not
-------------------------------------------
(1) The anchor does strictly less than ours: band powers only (no filtering, no epochs, no derived
scores), and it returns only the channel average and spread of the relative band powers where
ours keeps absolute and relative powers of every channel. BrainFlow parallelises over channels
with OpenMP (it may use every CPU listed in the header); ours runs on one thread apart from
numpy's internals. Its estimate differs a little (one 512-point Hann FFT per 2 s window, with
its own band integration), so the mean band shares of both are printed as a check that the two
compute comparable spectra, not equal ones. Timings are wall clock on a machine that may be
busy; rerun for a steadier figure.

(2) Both sides read the same board, in the same way, at the same interval, over the same wall
clock interval, so the anchor's CPU is the part of ours that any reader of this board pays
(BrainFlow's board thread, the ctypes calls, the sleep/wake-ups); the rest is what the capture
worker adds. Its latency is a different span: the anchor's ends at the read, ours goes on
through the pipeline and three processes to the client, and a window's last sample is not
always the chunk's last (a frame falls every 0.25 s, a read comes every 20 ms), so the ratio
says how much the path adds to the board's own delivery, not a like-for-like cost. The two
run side by side on the same CPUs (with the sidecar's server and this process's WebSocket
reader); on a busy machine both latencies grow.

Goals: (1) ours at least 500x real time (an hour of 16-channel data in under 7.2 s); (2) the
capture worker under 10 % of one core while streaming the synthetic board.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# recording patches BrainFlow's library loader; brainflow 5.23.0 cannot load on Python 3.11
# without it, so it must be imported before brainflow (here and in the spawned anchor of part 2).
import miso_runtime.neuro.recording  # noqa: E402, F401, I001 - must precede brainflow
import numpy as np  # noqa: E402
import scipy  # noqa: E402
from brainflow.board_shim import BoardShim, BrainFlowInputParams  # noqa: E402
from brainflow.data_filter import DataFilter  # noqa: E402

from miso_runtime.constants import BAND_NAMES, BANDS, CAPTURE_POLL_S, EVENT_EEG_BANDS  # noqa: E402
from miso_runtime.neuro.filters import StreamingFilter  # noqa: E402
from miso_runtime.neuro.pipeline import BoardLayout, PipelineConfig, SignalPipeline  # noqa: E402
from tests.eeg import EventsClient  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402

log = logging.getLogger("bench.neuro_pipeline")

RATE_HZ = 256
N_CHANNELS = 16
CHANNEL_NAMES = ("Fp1", "Fp2", "F3", "F4", "F7", "F8", "C3", "C4", "T7", "T8", "P3", "P4", "O1", "O2", "Fz", "Cz")
NOTCH_HZ = 50.0
BANDPASS_HZ = (1.0, 45.0)
WINDOW_S = 2.0
HOP_S = 0.25
EPOCH_S = 5.0
START_TIMESTAMP_S = 1_700_000_000.0
WARMUP_S = 10.0

PINK_RMS_UV = 10.0
ALPHA_PEAK_UV = 15.0
ALPHA_HZ = 10.0
ALPHA_ENVELOPE_S = 10.0
MAINS_UV = 8.0
DC_OFFSET_MAX_UV = 3000.0

GOAL_REAL_TIME_MULTIPLE = 500.0

SYNTHETIC_BOARD_ID = -1
#: Seconds the live session and the anchor stream before the measured interval starts.
LIVE_SETTLE_S = 2.0
#: Seconds to wait for the anchor child to import, prepare the board and stream.
ANCHOR_START_TIMEOUT_S = 60.0
GOAL_CAPTURE_CPU_PCT = 10.0


# -- the data -------------------------------------------------------------------------------


def synthetic_eeg(seconds: float, seed: int) -> np.ndarray:
    """``(N_CHANNELS, seconds * RATE_HZ)`` µV: pink noise + waxing/waning alpha + mains + DC.

    Seeded, so every run (and both sides of one run) sees the same data.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * RATE_HZ))
    t = np.arange(n) / RATE_HZ
    freqs = np.fft.rfftfreq(n, 1.0 / RATE_HZ)
    pink_gain = 1.0 / np.sqrt(np.maximum(freqs, 0.5))  # amplitude ~ 1/sqrt(f): power ~ 1/f
    # Alpha strongest over the occipital/parietal channels, weakest frontally.
    alpha_gain = np.array([0.3 if name[0] in "F" else 1.0 if name[0] in "OP" else 0.6 for name in CHANNEL_NAMES])
    data = np.empty((N_CHANNELS, n), dtype=np.float64)
    for ch in range(N_CHANNELS):
        pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * pink_gain, n=n)
        pink *= PINK_RMS_UV / pink.std()
        envelope = 0.5 * (1.0 + np.sin(2 * np.pi * t / ALPHA_ENVELOPE_S + rng.uniform(0, 2 * np.pi)))
        alpha = ALPHA_PEAK_UV * alpha_gain[ch] * envelope * np.sin(2 * np.pi * ALPHA_HZ * t + rng.uniform(0, 2 * np.pi))
        mains = MAINS_UV * np.sin(2 * np.pi * 50.0 * t + rng.uniform(0, 2 * np.pi))
        data[ch] = pink + alpha + mains + rng.uniform(-DC_OFFSET_MAX_UV, DC_OFFSET_MAX_UV)
    return data


# -- the two sides --------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One timed pass over the data."""

    seconds: float
    windows: int
    epochs: int | None
    band_share: np.ndarray  # mean over windows of each band's share of the channel-mean power


#: The bench's board: 16 EEG rows, then the timestamp row (what ``get_board_data`` returns, cut down).
BENCH_LAYOUT = BoardLayout(
    board_id=-1,
    board_name="bench",
    sample_rate_hz=float(RATE_HZ),
    eeg_rows=tuple(range(N_CHANNELS)),
    channel_names=CHANNEL_NAMES,
    timestamp_row=N_CHANNELS,
    battery_row=None,
    num_rows=N_CHANNELS + 1,
)


def board_rows(data: np.ndarray) -> np.ndarray:
    """``data`` with a timestamp row under it, as the capture worker reads it from a board."""
    timestamps = START_TIMESTAMP_S + np.arange(data.shape[1]) / RATE_HZ
    return np.vstack([data, timestamps[np.newaxis, :]])


def run_ours(rows: np.ndarray, chunk_samples: int) -> Run:
    """The capture worker's :class:`SignalPipeline` over board rows fed in chunks, timed.

    Everything the live pipeline does per chunk is in the timing (filters, warm-up and full
    windows, the signal-quality check every second, epochs with their scores); only building
    the ``EegBands`` JSON for the frames, which offline analysis does not need, is not.
    """
    config = PipelineConfig(NOTCH_HZ, BANDPASS_HZ[0], BANDPASS_HZ[1], window_s=WINDOW_S, hop_s=HOP_S, epoch_s=EPOCH_S)
    pipeline = SignalPipeline(BENCH_LAYOUT, config)
    windows = []
    epochs = 0
    n = rows.shape[1]
    started = time.perf_counter()
    for i in range(0, n, chunk_samples):
        frames, done = pipeline.process(rows[:, i : i + chunk_samples])
        windows.extend(frame.powers for frame in frames if frame.window_s == WINDOW_S)
        epochs += len(done)
    seconds = time.perf_counter() - started
    channel_mean = np.stack([bp.absolute.mean(axis=0) for bp in windows])
    share = (channel_mean / channel_mean.sum(axis=1, keepdims=True)).mean(axis=0)
    return Run(seconds, len(windows), epochs, share)


def window_starts(n_samples: int) -> range:
    """First sample of every 2 s window every 0.25 s, as SlidingBandPowers places them."""
    window, hop = int(round(WINDOW_S * RATE_HZ)), int(round(HOP_S * RATE_HZ))
    return range(0, n_samples - window + 1, hop)


def run_brainflow_api(filtered: np.ndarray) -> Run:
    """BrainFlow's public ``DataFilter.get_custom_band_powers`` on every window, timed."""
    window = int(round(WINDOW_S * RATE_HZ))
    bands = [(lo, hi) for _, lo, hi in BANDS]
    channels = list(range(N_CHANNELS))
    starts = window_starts(filtered.shape[1])
    shares = np.empty((len(starts), len(bands)))
    started = time.perf_counter()
    for k, s in enumerate(starts):
        shares[k], _ = DataFilter.get_custom_band_powers(
            np.ascontiguousarray(filtered[:, s : s + window]), bands, channels, RATE_HZ, False
        )
    seconds = time.perf_counter() - started
    return Run(seconds, len(starts), None, shares.mean(axis=0))


def brainflow_c_routine():
    """BrainFlow's ctypes binding of the C ``get_custom_band_powers``, or None if absent."""
    try:
        from brainflow.data_filter import DataHandlerDLL

        return DataHandlerDLL.get_instance().get_custom_band_powers
    except (ImportError, AttributeError) as exc:
        log.warning("BrainFlow's C binding is not reachable (%s); skipping that anchor", exc)
        return None


def run_brainflow_c(filtered: np.ndarray, routine) -> Run:
    """The same C routine called directly, the window flattened by numpy, timed."""
    window = int(round(WINDOW_S * RATE_HZ))
    start_freqs = np.array([lo for _, lo, _ in BANDS], dtype=np.float64)
    stop_freqs = np.array([hi for _, _, hi in BANDS], dtype=np.float64)
    starts = window_starts(filtered.shape[1])
    shares = np.empty((len(starts), len(BANDS)))
    stddev = np.zeros(len(BANDS))
    avg = np.zeros(len(BANDS))
    started = time.perf_counter()
    for k, s in enumerate(starts):
        flat = np.ascontiguousarray(filtered[:, s : s + window]).ravel()
        res = routine(flat, N_CHANNELS, window, start_freqs, stop_freqs, len(BANDS), RATE_HZ, 0, avg, stddev)
        if res != 0:
            raise RuntimeError(f"BrainFlow get_custom_band_powers failed with exit code {res}")
        shares[k] = avg
    seconds = time.perf_counter() - started
    return Run(seconds, len(starts), None, shares.mean(axis=0))


def warm_up(data: np.ndarray, routine) -> None:
    """One untimed pass of each side over a few seconds (library loading, cached plans)."""
    part = data[:, : int(WARMUP_S * RATE_HZ)]
    run_ours(board_rows(part), RATE_HZ)
    run_brainflow_api(part)
    if routine is not None:
        run_brainflow_c(part, routine)


# -- part (2): the live board ----------------------------------------------------------------


def cpu_ticks(pid: int) -> int:
    """utime + stime of process ``pid`` (all its threads), in clock ticks, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # the name in parentheses may hold spaces
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5); the list starts at field 3


def read_board_bare(stop, ready, results, poll_s: float) -> None:
    """The anchor, in its own process: read the synthetic board every ``poll_s`` and do nothing else.

    Sends back ``(read_at_unix_s, delay_s, n_samples)`` for every non-empty read, where
    ``delay_s`` is the time of the read minus the timestamp of the chunk's last sample. A spawned
    child imports this file first, so ``miso_runtime.neuro.recording`` (at the top) patches
    BrainFlow's library loader before ``brainflow`` is imported, as in the capture worker.
    """
    BoardShim.disable_board_logger()  # the capture worker logs to a file; here it would clutter the report
    board = BoardShim(SYNTHETIC_BOARD_ID, BrainFlowInputParams())
    ts_row = BoardShim.get_timestamp_channel(SYNTHETIC_BOARD_ID)
    board.prepare_session()
    board.start_stream()
    reads: list[tuple[float, float, int]] = []
    try:
        ready.set()
        while not stop.is_set():
            data = board.get_board_data()
            now = time.time()
            if data.shape[1]:
                reads.append((now, now - float(data[ts_row, -1]), data.shape[1]))
            time.sleep(poll_s)
    finally:
        board.stop_stream()
        board.release_session()
    results.send(np.array(reads, dtype=np.float64).reshape(-1, 3))
    results.close()


@dataclass(frozen=True)
class Live:
    """One side of part (2) over the measured interval."""

    cpu_pct: float  # % of one core
    latency_ms: np.ndarray
    rate_per_s: float  # EegBands frames/s (ours) or non-empty reads/s (anchor)
    samples_per_s: float | None = None


def capture_worker_pid(side: Sidecar) -> int:
    workers = side.get("/v1/status").json()["workers"]
    capture = next((w for w in workers if w["name"] == "capture"), None)
    if capture is None or not capture.get("pid"):
        raise RuntimeError(f"no running capture worker in /v1/status: {workers}")
    return int(capture["pid"])


def measure_live(side: Sidecar, events: EventsClient, live_s: float) -> tuple[Live, Live, dict]:
    """Start the session and the anchor, settle, measure both over ``live_s`` seconds."""
    started = side.post("/v1/control/start-session", json={})
    if started.status_code != 200:
        raise RuntimeError(f"start-session answered {started.status_code}: {started.text}")
    session = started.json()
    events.wait_for(EVENT_EEG_BANDS, timeout=10)
    pid = capture_worker_pid(side)

    ctx = multiprocessing.get_context("spawn")
    stop, ready = ctx.Event(), ctx.Event()
    reader, writer = ctx.Pipe(duplex=False)
    anchor = ctx.Process(target=read_board_bare, args=(stop, ready, writer, CAPTURE_POLL_S), daemon=True)
    anchor.start()
    writer.close()
    try:
        if not ready.wait(ANCHOR_START_TIMEOUT_S):
            raise RuntimeError("the anchor process did not start streaming")
        time.sleep(LIVE_SETTLE_S)
        tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
        t0 = time.time()
        ours0, anchor0 = cpu_ticks(pid), cpu_ticks(anchor.pid)
        time.sleep(live_s)
        ours1, anchor1 = cpu_ticks(pid), cpu_ticks(anchor.pid)
        t1 = time.time()
        stop.set()
        if not reader.poll(ANCHOR_START_TIMEOUT_S):
            raise RuntimeError("the anchor process did not report")
        reads = reader.recv()
    finally:
        stop.set()
        anchor.join(10)
        if anchor.is_alive():
            anchor.kill()
        reader.close()
    elapsed = t1 - t0
    if capture_worker_pid(side) != pid:
        log.warning("the capture worker was restarted during the run; its CPU figure is wrong")

    frames = [(at, e["payload"]) for at, e in list(events.events) if e["type"] == EVENT_EEG_BANDS and t0 <= at <= t1]
    ours = Live(
        cpu_pct=100.0 * (ours1 - ours0) * tick_s / elapsed,
        latency_ms=np.array([at * 1000.0 - p["window_end_ts_unix_ms"] for at, p in frames]),
        rate_per_s=len(frames) / elapsed,
    )
    inside = reads[(reads[:, 0] >= t0) & (reads[:, 0] <= t1)]
    bare = Live(
        cpu_pct=100.0 * (anchor1 - anchor0) * tick_s / elapsed,
        latency_ms=1000.0 * inside[:, 1],
        rate_per_s=len(inside) / elapsed,
        samples_per_s=float(inside[:, 2].sum()) / elapsed,
    )
    info = {
        "elapsed_s": elapsed,
        "device": session.get("device") or {},
        "full_windows": sum(1 for _, p in frames if abs(p["window_s"] - WINDOW_S) < 1e-9),
    }
    return ours, bare, info


# -- the report -----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_offline(ours: Run, api: Run, c_only: Run | None, seconds_of_data: float, chunk_samples: int) -> bool:
    """Print part (1); return whether the goal was met."""
    x_ours = seconds_of_data / ours.seconds
    anchors = [("BrainFlow API", api)] + ([("BrainFlow C", c_only)] if c_only is not None else [])
    print(
        f"\n== (1) offline pipeline: {seconds_of_data / 60:g} min of synthetic EEG, {N_CHANNELS} channels "
        f"at {RATE_HZ} Hz; ours fed in {chunk_samples / RATE_HZ:g} s chunks ({chunk_samples} samples) =="
    )
    print(
        f"  ours: the capture worker's SignalPipeline on board rows: StreamingFilter (notch {NOTCH_HZ:g} Hz, "
        f"band-pass {BANDPASS_HZ[0]:g}-{BANDPASS_HZ[1]:g} Hz) -> SlidingBandPowers ({WINDOW_S:g} s every "
        f"{HOP_S:g} s) -> Epocher ({EPOCH_S:g} s, with scores), + signal quality each second"
    )
    print(
        "  anchors: DataFilter.get_custom_band_powers per window (band powers only); "
        "'C' = its C routine without the Python wrapper"
    )
    header = f"{'':16}" + "".join(f"{name:>15}" for name, _ in anchors) + f"{'ours':>12}"
    header += "".join(f"{'ours/' + name.split()[-1]:>11}" for name, _ in anchors)
    print(header)
    row = f"{'seconds':16}" + "".join(f"{run.seconds:15.2f}" for _, run in anchors) + f"{ours.seconds:12.2f}"
    print(row + "".join(f"{ours.seconds / run.seconds:11.3f}" for _, run in anchors))
    row = f"{'x real time':16}" + "".join(f"{seconds_of_data / run.seconds:15.0f}" for _, run in anchors)
    print(row + f"{x_ours:12.0f}" + "".join(f"{run.seconds / ours.seconds:11.2f}" for _, run in anchors))
    print(f"{'windows':16}" + "".join(f"{run.windows:15d}" for _, run in anchors) + f"{ours.windows:12d}")
    print(f"{'epochs':16}" + "".join(f"{'-':>15}" for _ in anchors) + f"{ours.epochs:12d}")
    print("  mean share of band power (channel mean, averaged over windows), % - a sanity check, not equal estimators:")
    print(f"    {'':14}" + "".join(f"{name:>8}" for name in BAND_NAMES))
    for name, run in [("ours", ours)] + anchors:
        print(f"    {name:14}" + "".join(f"{100 * v:8.1f}" for v in run.band_share))
    ok = x_ours >= GOAL_REAL_TIME_MULTIPLE
    print(f"goal: ours >= {GOAL_REAL_TIME_MULTIPLE:g}x real time")
    print(f"  ours   {x_ours:.0f}x real time  -> {verdict(ok)}")
    return ok


def print_live(ours: Live, bare: Live, info: dict, clients: list[dict]) -> bool:
    """Print part (2); return whether the goal was met."""
    device = info["device"]
    print(
        f"\n== (2) live board: BrainFlow synthetic board ({device.get('sample_rate_hz')} Hz, "
        f"{device.get('n_channels')} channels) through a real sidecar, measured over "
        f"{info['elapsed_s']:.1f} s after {LIVE_SETTLE_S:g} s of streaming =="
    )
    print(
        "  ours: the capture worker (board read every "
        f"{CAPTURE_POLL_S * 1000:g} ms -> recording file -> SignalPipeline -> EegBands JSON -> server, epochs "
        "-> SQLite); latency = arrival at our /v1/events client - window_end_ts_unix_ms"
    )
    print(
        f"  anchor: a bare child process reading the same board with BrainFlow every {CAPTURE_POLL_S * 1000:g} ms, "
        "no processing, run concurrently over the same interval; latency = read time - last sample's timestamp"
    )

    def pct(values: np.ndarray, q: float) -> float:
        return float(np.percentile(values, q)) if values.size else float("nan")

    print(f"{'':22}{'anchor':>12}{'ours':>12}{'ours/anchor':>13}")
    rows = [
        ("CPU, % of one core", bare.cpu_pct, ours.cpu_pct, "{:12.2f}"),
        ("latency p50, ms", pct(bare.latency_ms, 50), pct(ours.latency_ms, 50), "{:12.1f}"),
        ("latency p99, ms", pct(bare.latency_ms, 99), pct(ours.latency_ms, 99), "{:12.1f}"),
        ("latency max, ms", pct(bare.latency_ms, 100), pct(ours.latency_ms, 100), "{:12.1f}"),
    ]
    for name, anchor, mine, fmt in rows:
        ratio = f"{mine / anchor:13.2f}" if anchor > 0 else f"{'-':>13}"
        print(f"{name:22}" + fmt.format(anchor) + fmt.format(mine) + ratio)
    print(f"{'count':22}{bare.latency_ms.size:12d}{ours.latency_ms.size:12d}")
    print(f"{'rate, /s':22}{bare.rate_per_s:12.2f}{ours.rate_per_s:12.2f}   (anchor: non-empty reads; ours: EegBands)")
    print(
        f"  anchor read {bare.samples_per_s:.1f} samples/s; {info['full_windows']} of our frames were full "
        f"{WINDOW_S:g} s windows; our client's queue dropped {sum(c.get('dropped', 0) for c in clients)} events"
    )
    ok = ours.cpu_pct < GOAL_CAPTURE_CPU_PCT
    print(f"goal: capture worker < {GOAL_CAPTURE_CPU_PCT:g} % of one core")
    print(f"  ours   {ours.cpu_pct:.2f} % of one core  -> {verdict(ok)}")
    return ok


# -- sections -------------------------------------------------------------------------------


def offline_pipeline_section(args: argparse.Namespace) -> bool:
    """Part (1): our pipeline and BrainFlow's band powers over the same synthetic data."""
    seconds_of_data = args.minutes * 60.0
    chunk_samples = max(1, int(round(args.chunk_s * RATE_HZ)))
    generated = time.perf_counter()
    data = synthetic_eeg(seconds_of_data, args.seed)
    filtered = StreamingFilter(RATE_HZ, NOTCH_HZ, BANDPASS_HZ).process(data)  # the anchors' input, untimed
    log.info("generated and pre-filtered the data in %.1f s", time.perf_counter() - generated)
    routine = brainflow_c_routine()
    warm_up(data, routine)
    rows = board_rows(data)
    ours = run_ours(rows, chunk_samples)
    api = run_brainflow_api(filtered)
    c_only = run_brainflow_c(filtered, routine) if routine is not None else None
    return print_offline(ours, api, c_only, seconds_of_data, chunk_samples)


def live_board_section(args: argparse.Namespace) -> bool:
    """Part (2): the capture worker of a real sidecar on the synthetic board, and a bare BrainFlow reader."""
    data_dir = Path(tempfile.mkdtemp(prefix="miso-bench-neuro-"))
    side = Sidecar(data_dir)
    events = None
    try:
        events = EventsClient(side.port, side.token)
        events.wait_for("status", timeout=10)
        ours, bare, info = measure_live(side, events, args.live_s)
        clients = side.get("/v1/ws-clients").json()["clients"]
        ended = side.post("/v1/control/cancel-session")
        if ended.status_code != 200:
            log.warning("cancel-session answered %s: %s", ended.status_code, ended.text)
        return print_live(ours, bare, info, clients)
    finally:
        if events is not None:
            events.close()
        side.terminate()
        shutil.rmtree(data_dir, ignore_errors=True)


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="minutes of synthetic EEG (default 60)")
    parser.add_argument("--chunk-s", type=float, default=1.0, help="seconds per chunk fed to our pipeline")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--live-s", type=float, default=60.0, help="seconds of the live board measurement (default 60)")
    parser.add_argument("--skip-offline", action="store_true", help="run only part (2), the live board")
    args = parser.parse_args(argv)
    if not args.live_s > 0:
        parser.error("--live-s must be positive")
    if not args.minutes * 60.0 >= WARMUP_S:
        parser.error(f"--minutes must cover at least {WARMUP_S:g} s")
    if not args.chunk_s * RATE_HZ >= 1:
        parser.error("--chunk-s must be at least one sample")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    started = time.perf_counter()
    print(
        f"EEG pipeline bench: numpy {np.__version__}, scipy {scipy.__version__}, "
        f"brainflow {version('brainflow')}, python {sys.version.split()[0]}, "
        f"{multiprocessing.cpu_count()} CPUs"
    )
    if not args.skip_offline:
        offline_pipeline_section(args)
    live_board_section(args)
    print(f"\nbenchmark took {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None

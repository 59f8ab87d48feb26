"""Benchmark part 1: speed of the built-in EEG epoch encoder, against scipy's Welch measured in the same run.

Run ``.venv/bin/python bench/neuro_encoder.py [--epochs N] [--singles N] [--repeats N] [--seed N]``.

What is measured
----------------
Input: ``--epochs`` (default 2000) consecutive 5 s epochs of 16-channel synthetic EEG at
256 Hz (:func:`bench.eeg_corpus.synthetic_eeg`: 1/f background, state-dependent theta/alpha/
beta, artefacts, DC offsets), float64 µV, made once before any timing.

- **ours, batch**: ``SpectralEncoder().encode(batch, 256.0)``: the whole batch in one call
  (Welch PSD of every channel, 16 features, pooling over channels, standardisation): 2000 x 32
  float32 vectors.
- **ours, single**: ``encode(epoch, 256.0)`` on each of the first ``--singles`` (default 200)
  epochs, one call per epoch, as the live pipeline encodes each epoch as it completes.
- **anchor**: :func:`scipy.signal.welch` alone on the same data with the encoder's Welch
  parameters (2 s Hann segments, 50 % overlap, constant detrend, density): the floor of any
  encoder built on a Welch spectrum, without any feature. Measured three ways on the batch,
  since scipy is much faster when fed pieces that fit in cache: the whole batch in one call,
  and in the encoder's own internal batches of 128 epochs, on float64 and on float32 input
  (the encoder computes its FFTs in float32); the fastest of the three is the anchor of the
  ratio. Single: one ``welch`` call per epoch.

Each side gets one untimed warm-up call (plans, caches); the batch times are the best of
``--repeats`` (default 3) runs; everything runs in this process on one core (scipy.fft's
default of one worker, no threads).

Printed: seconds, epochs per second, multiple of real time (``epochs * 5 s / seconds``) and
the ratio of our time to the anchor's (below 1: the whole encoder costs less than scipy's Welch
alone). Goal: at least 1000x real time, i.e. a 5 s epoch in under 5 ms.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Callable

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402
import scipy  # noqa: E402
from scipy import signal  # noqa: E402

from bench.eeg_corpus import synthetic_eeg  # noqa: E402
from miso_runtime.constants import SPECTRAL_BATCH_VALUES, SPECTRAL_SEGMENT_S  # noqa: E402
from miso_runtime.neuro.embedding.spectral_encoder import SpectralEncoder, _plan  # noqa: E402

FS = 256.0
N_CHANNELS = 16
EPOCH_S = 5.0
GOAL_REAL_TIME_MULTIPLE = 1000.0


def best_of(repeats: int, fn: Callable[[], object]) -> float:
    """Fastest wall time of ``repeats`` runs of ``fn``, seconds."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2000, help="epochs in the batch")
    parser.add_argument("--singles", type=int, default=200, help="epochs encoded one call each")
    parser.add_argument("--repeats", type=int, default=3, help="batch runs; the best counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    encoder = SpectralEncoder()
    plan = _plan(int(EPOCH_S * FS), FS)
    nperseg = int(round(SPECTRAL_SEGMENT_S * FS))
    assert plan.nperseg == nperseg
    chunk = max(1, SPECTRAL_BATCH_VALUES // (N_CHANNELS * plan.n_segments * plan.nperseg))

    print(
        f"EEG epoch encoder: {encoder.name} (dim {encoder.dim}); numpy {np.__version__}, scipy {scipy.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()}"
    )
    print(
        f"data: {args.epochs} synthetic epochs x {N_CHANNELS} channels x {EPOCH_S:g} s at {FS:g} Hz (float64 µV); "
        f"Welch nperseg {nperseg}, {plan.n_segments} segments; best of {args.repeats}"
    )
    batch = synthetic_eeg(args.epochs, N_CHANNELS, FS, EPOCH_S, seed=args.seed)
    batch32 = batch.astype(np.float32)
    singles = batch[: args.singles]

    def welch(x: np.ndarray) -> np.ndarray:
        return signal.welch(x, fs=FS, window="hann", nperseg=nperseg, detrend="constant", axis=-1)[1]

    def welch_chunks(x: np.ndarray) -> None:
        for start in range(0, x.shape[0], chunk):
            welch(x[start : start + chunk])

    # Warm-up (plans, FFT caches), untimed.
    encoder.encode(batch[:chunk], FS)
    welch(batch[:chunk])
    welch(batch32[:chunk])

    rows: list[tuple[str, int, float]] = []
    ours_batch = best_of(args.repeats, lambda: encoder.encode(batch, FS))
    rows.append(("ours, batch (one call)", args.epochs, ours_batch))
    anchors = {
        "scipy welch, one call": best_of(args.repeats, lambda: welch(batch)),
        f"scipy welch, {chunk}-epoch calls": best_of(args.repeats, lambda: welch_chunks(batch)),
        f"scipy welch, {chunk}-epoch f32": best_of(args.repeats, lambda: welch_chunks(batch32)),
    }
    rows += [(f"anchor: {name}", args.epochs, seconds) for name, seconds in anchors.items()]

    started = time.perf_counter()
    for epoch in singles:
        encoder.encode(epoch, FS)
    ours_single = time.perf_counter() - started
    started = time.perf_counter()
    for epoch in singles:
        welch(epoch)
    anchor_single = time.perf_counter() - started
    rows.append(("ours, single epochs", len(singles), ours_single))
    rows.append(("anchor: scipy welch, single", len(singles), anchor_single))

    anchor_name, anchor_batch = min(anchors.items(), key=lambda kv: kv[1])
    print()
    print(f"{'':38}{'epochs':>8}{'seconds':>10}{'ms/epoch':>10}{'epochs/s':>11}{'x real time':>13}")
    for name, n, seconds in rows:
        print(
            f"{name:38}{n:8d}{seconds:10.3f}{1e3 * seconds / n:10.3f}{n / seconds:11.0f}{n * EPOCH_S / seconds:13.0f}"
        )
    print()
    ratio_batch = ours_batch / anchor_batch
    ratio_single = ours_single / anchor_single
    print(f"ratio ours/anchor, batch : {ratio_batch:.2f}  (anchor: {anchor_name}, the fastest scipy welch)")
    print(f"ratio ours/anchor, single: {ratio_single:.2f}")
    x_batch = args.epochs * EPOCH_S / ours_batch
    x_single = len(singles) * EPOCH_S / ours_single
    for label, x in (("batch", x_batch), ("single", x_single)):
        verdict = "met" if x >= GOAL_REAL_TIME_MULTIPLE else "NOT met"
        print(f"goal >= {GOAL_REAL_TIME_MULTIPLE:g}x real time, {label}: {x:.0f}x -> {verdict}")


if __name__ == "__main__":
    main()

"""Brain Nebula timing: umap-learn called directly against the runtime's :func:`project`, same settings.

Run ``.venv/bin/python bench/umap_direct.py [--n 10000] [--dim 48] [--seed 42] [--repeats 2] [--cache-dir DIR]``.

What is measured
----------------
Input: ``--n`` (default 10,000) synthetic float32 embeddings of ``--dim`` (default 48)
dimensions (:func:`synthetic_vectors`): points around 8 "brain state" centres with a slow drift
through time, noise, and range A (first half) and range B (second half) visiting the states in
different proportions, so the two ranges overlap in part, as two recordings do. Not uniform
noise, which would give UMAP no structure to find.

- **direct**: :func:`direct_umap_seconds`: ``umap.UMAP(**umap_options(...)).fit_transform``
  on all vectors: exactly the ``UMAP`` parameters :func:`project` uses (3-D, cosine, the
  clamped settings, ``init="spectral"``, the seed), with umap-learn finding neighbours itself
  (NN-descent from 4096 points on) as a direct caller would.
- **runtime**: :func:`runtime_seconds`: :func:`project` on the two halves: exact neighbours of
  its own, the same ``UMAP`` on them, the separation analysis and the answer's points.

Cold rows run each side in fresh child processes, so "cold" is real: a first call in a new
process. ``cold, empty cache``: the first call with an empty ``NUMBA_CACHE_DIR`` (a new
install); ``cold, disk cache``: the first call of a second process on the cache the first one
filled (a worker's first projection after a restart). ``warm``: one more child that compiles
both sides, then alternates direct and runtime ``--repeats`` times and keeps each side's best
(other load on the machine only ever adds time, and alternating spreads it over both sides). The
``import umap`` time is inside each first call, as a worker pays it. Each side gets its own
cache folder (a temporary one unless ``--cache-dir`` is given), so neither warms the other.
``--warm-only`` skips the cold rows (about a third of the run time).

Printed: seconds per row and side, the ratio runtime/direct (goal: at most 1.1 warm), and the
separation score of both pictures (their quality should agree).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from miso_runtime.analysis.umap_projection import (  # noqa: E402
    UmapSettings,
    project,
    separation_analysis,
    umap_options,
)


def synthetic_vectors(n: int = 10_000, dim: int = 48, seed: int = 0) -> np.ndarray:
    """``n`` clustered float32 embeddings in time order: states, drift and noise (see the module docstring)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(8, dim)) * 2.5
    half = n // 2
    # A visits states 0-5 mostly, B states 2-7: a partial overlap.
    weights_a = np.array([3, 3, 2, 2, 1, 1, 0.2, 0.2])
    weights_b = weights_a[::-1]
    states = np.concatenate(
        [
            rng.choice(8, size=half, p=weights_a / weights_a.sum()),
            rng.choice(8, size=n - half, p=weights_b / weights_b.sum()),
        ]
    )
    drift = np.cumsum(rng.normal(scale=0.02, size=(n, dim)), axis=0)
    return (centres[states] + drift + rng.normal(size=(n, dim))).astype(np.float32)


def direct_umap(vectors: np.ndarray, settings: UmapSettings, seed: int | None) -> tuple[float, np.ndarray]:
    """umap-learn on ``vectors`` with :func:`project`'s ``UMAP`` parameters: (seconds, 3-D coordinates)."""
    began = time.perf_counter()
    import umap

    coords = umap.UMAP(**umap_options(settings, len(vectors), seed)).fit_transform(vectors)
    return time.perf_counter() - began, np.asarray(coords)


def direct_umap_seconds(vectors: np.ndarray, settings: UmapSettings, seed: int | None) -> float:
    """Seconds of umap-learn called directly with the parameters :func:`project` uses (import included once)."""
    return direct_umap(vectors, settings, seed)[0]


def runtime_seconds(vectors: np.ndarray, settings: UmapSettings, seed: int | None) -> tuple[float, dict]:
    """Seconds of :func:`project` on the first and second half of ``vectors`` as ranges A and B, and its answer."""
    half = len(vectors) // 2
    times = np.arange(len(vectors), dtype=np.int64)
    labels = [None] * len(vectors)
    began = time.perf_counter()
    answer = project(
        vectors[:half], vectors[half:], times[:half], times[half:], labels[:half], labels[half:], settings, seed=seed
    )
    return time.perf_counter() - began, answer


def _one(side: str, vectors: np.ndarray, settings: UmapSettings, seed: int) -> tuple[float, float]:
    """One call of ``side``: (seconds, separation score of its picture)."""
    if side == "direct":
        seconds, coords = direct_umap(vectors, settings, seed)
        return seconds, separation_analysis(coords, len(vectors) // 2, np.arange(len(vectors)))["separation_score"]
    seconds, answer = runtime_seconds(vectors, settings, seed)
    return seconds, answer["analysis"]["separation_score"]


def _child(side: str, n: int, dim: int, seed: int, repeats: int) -> dict:
    """A child process's measurements.

    ``direct`` or ``runtime``: one first call (``cold``). ``warm``: one untimed call of each
    side, then ``repeats`` rounds of direct, runtime alternately, the best of each side: on a
    machine with other load, alternating spreads that load over both sides, and the best is the
    least disturbed. (In this process umap-learn's kernels are the runtime's disk-cached copies
    of the same functions for both sides, once the runtime has run: the same machine code.)
    """
    vectors = synthetic_vectors(n, dim)
    settings = UmapSettings.from_config({})
    if side != "warm":
        seconds, score = _one(side, vectors, settings, seed)
        return {"cold": seconds, "separation_score": score}
    out: dict = {}
    for name in ("direct", "runtime"):
        _one(name, vectors, settings, seed)
    for _ in range(repeats):
        for name in ("direct", "runtime"):
            seconds, score = _one(name, vectors, settings, seed)
            out[name] = min(seconds, out.get(name, seconds))
            out[f"{name}_score"] = score
    return out


def _run_child(side: str, args: argparse.Namespace, cache_dir: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, __file__, "--child", side, "--n", str(args.n), "--dim", str(args.dim)]
    command += ["--seed", str(args.seed), "--repeats", str(args.repeats)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} child failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=2, help="warm rounds (direct, runtime); the best counts")
    parser.add_argument("--warm-only", action="store_true", help="skip the four cold processes")
    parser.add_argument("--cache-dir", type=Path, help="parent of the numba caches (default: a temp dir)")
    parser.add_argument("--child", choices=("direct", "runtime", "warm"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.n, args.dim, args.seed, max(1, args.repeats))))
        return

    print(
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    print(f"{args.n} vectors x {args.dim} dims, seed {args.seed}, settings {UmapSettings.from_config({})}")
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="umap-bench-") as scratch:
        parent = args.cache_dir or Path(scratch)
        if not args.warm_only:
            cold: dict[str, list[float]] = {}
            for side in ("direct", "runtime"):
                cache_dir = parent / f"numba-{side}"
                cold[side] = [_run_child(side, args, cache_dir)["cold"] for _ in range(2)]
                print(f"  cold {side}: done", flush=True)
            rows.append(("cold, empty cache", cold["direct"][0], cold["runtime"][0]))
            rows.append(("cold, disk cache", cold["direct"][1], cold["runtime"][1]))
        warm = _run_child("warm", args, parent / "numba-warm")
        rows.append((f"warm (best of {max(1, args.repeats)})", warm["direct"], warm["runtime"]))
    print(f"{'':22} {'direct s':>10} {'runtime s':>10} {'ratio':>7}")
    for title, direct, runtime in rows:
        print(f"{title:22} {direct:10.2f} {runtime:10.2f} {runtime / direct:7.2f}")
    print(f"separation score: direct {warm['direct_score']}, runtime {warm['runtime_score']}")


if __name__ == "__main__":
    main()

"""Benchmark (EEG search, part 2): our Annoy index against exact numpy search and hnswlib.

Run ``.venv/bin/python bench/vector_search.py [--sizes 1000000[,100000]] [--queries 1000]
[--seed N] [--corpus auto|eeg|manifold] [--cache-dir DIR] [--skip-hnsw] [--skip-exact]``.

What is measured
----------------
For each size N: N vectors of the corpus are indexed and ``--queries`` (default 1000) other
vectors of the same corpus, held out of the index, are searched for their k = 10 nearest by
cosine distance, one query at a time (a single-query call, timed with ``perf_counter_ns``
around it, garbage collection off). Another 200 held-out vectors are the *tuning* set: they
warm every method up (page cache, branch predictors) before the timed queries, and pick
hnswlib's ``ef``.

- **ours (Annoy)**: :func:`miso_runtime.search.vector_index.build_index` (``ANNOY_N_TREES``
  trees, ``ANNOY_BUILD_JOBS`` threads, files fsynced and hashed as in production), then
  :func:`~miso_runtime.search.vector_index.load_index` (SHA-256 verified) and
  ``LoadedIndex.query`` with the default ``search_k``: exactly what the server does. A second
  table sweeps ``search_k`` on the same index, to show the trade-off behind the default.
- **exact**: :func:`miso_runtime.search.exact.exact_search` over the vectors held in memory as
  they are (not pre-normalised, like the exact tail of the server); its answer over all queries
  is also the ground truth of recall@10 (computed once, batched, before any timing). numpy's
  BLAS (OpenBLAS) uses the threads it wants: on a busy 2-core machine its threads wait for each
  other, which shows in exact's p99 (and in p50 for small N).
- **hnswlib** (the kind of index the original daemon uses): ``hnswlib.Index("cosine")``, M = 16,
  ef_construction = 200, built with 2 threads; ``ef`` is the smallest of 10, 16, 24, ... 512
  whose recall@10 on the tuning set is >= 0.95, stepped up further should the timed queries
  fall short of 0.95; queries with ``num_threads=1``.

Every build and every serving run is a child process of its own (``--child``), so that its RSS
growth is its own: *build RSS+* is the peak (``VmHWM``) over the RSS after the input vectors
were read into memory (what the build adds to a worker that has them); *serve RSS+* is the RSS
after loading the index and running every query, over the RSS before loading (for Annoy that is
mostly page cache mapped from the index file, shared and evictable; for hnswlib and exact it is
private memory). *disk MB* is the index files (ours: ``index.ann`` + ``ids.npy``; hnswlib: its
saved index; exact: the float32 vectors and int64 ids it needs in memory).

The corpus
----------
``--corpus auto`` (default) uses :func:`bench.eeg_corpus.embedding_corpus` when that module can
be imported (synthetic EEG through the built-in spectral encoder, dimension 32), else
:func:`manifold_corpus`, a fallback of this file: sessions of epochs whose latent state walks
(an AR(1) process pulled towards one of 24 state centres that changes every 60 epochs) on a
16-dimensional manifold, mapped into 32 dimensions by a random ``tanh`` layer, plus isotropic
noise, unit-normalised. Not uniform noise (which no index can search well and no encoder
produces); it turned out harder for Annoy than the encoder corpus. The output says which was used.
Vectors are held out at random positions, so a query's own session is in the index.

Fairness
--------
All three answer the same queries on the same machine in the same run; builds both use 2
threads; queries are single-threaded in Annoy and hnswlib. Timings include each library's
Python call overhead (ours: converting the row to a list, mapping item numbers to row ids,
converting distances), as the server pays it. The machine may be busy (2 cores shared): p99
is sensitive to that; rerun for steadier figures.

Goal: ours recall@10 >= 0.95 with p50 under 1 ms at 1 M vectors.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import numpy as np  # noqa: E402

from miso_runtime import constants  # noqa: E402
from miso_runtime.search.exact import exact_search  # noqa: E402
from miso_runtime.search.vector_index import build_index, default_search_k, load_index  # noqa: E402

log = logging.getLogger("bench.vector_search")

K = 10
N_TUNE = 200
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_CANDIDATES = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
HNSW_BUILD_THREADS = 2
RECALL_GOAL = 0.95
P50_GOAL_MS = 1.0
SWEEP_SEARCH_K = (1000, 2000, 3000, 5000, 8000)
MANIFOLD_DIM = 32


# --- Corpus ------------------------------------------------------------------------------------


def manifold_corpus(n: int, seed: int, dim: int = MANIFOLD_DIM) -> np.ndarray:
    """Fallback corpus: drifting sessions on a curved 16-D manifold in ``dim`` dimensions (see the docstring)."""
    from scipy.signal import lfilter

    latent, n_states, session, noise = 16, 24, 720, 0.35
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_states, latent)) * 1.5
    w1 = rng.normal(size=(latent, 48)) / np.sqrt(latent)
    b1 = rng.normal(size=48) * 0.5
    w2 = rng.normal(size=(48, dim)) / np.sqrt(48)
    out = np.empty((n, dim), dtype=np.float32)
    for pos in range(0, n, session):
        m = min(session, n - pos)
        states = np.repeat(rng.integers(0, n_states, max(1, m // 60)), 60)[:m]
        states = np.pad(states, (0, m - states.shape[0]), mode="edge")
        target = centres[states] + rng.normal(size=latent) * 0.3
        z = lfilter([1.0], [1.0, -0.85], 0.15 * target + rng.normal(size=(m, latent)) * 0.25, axis=0)
        h = np.tanh(z @ w1 + b1) @ w2
        h /= np.linalg.norm(h, axis=1, keepdims=True)
        h += rng.normal(size=h.shape) * (noise / np.sqrt(dim))
        out[pos : pos + m] = h
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def load_corpus(kind: str, n: int, seed: int, cache_dir: Path | None) -> tuple[np.ndarray, str]:
    """``n`` vectors and a line saying where they came from."""
    source = kind
    if kind == "auto":
        try:
            import bench.eeg_corpus  # noqa: F401

            source = "eeg"
        except ImportError as exc:
            log.warning("bench.eeg_corpus not importable (%s): using the manifold fallback", exc)
            source = "manifold"
    described = {
        "eeg": "bench.eeg_corpus.embedding_corpus (synthetic EEG -> spectral encoder)",
        "manifold": "bench/vector_search.py manifold_corpus (fallback: drifting sessions on a 16-D manifold)",
    }[source]
    cached = cache_dir / f"corpus-{source}-{n}-{seed}.npy" if cache_dir else None
    if cached is not None and cached.exists():
        return np.load(cached), described + f", cached in {cached}"
    started = time.perf_counter()
    if source == "eeg":
        from bench.eeg_corpus import embedding_corpus

        vectors = embedding_corpus(n, seed)
    else:
        vectors = manifold_corpus(n, seed)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    log.info("corpus %s: %d x %d in %.0f s", source, *vectors.shape, time.perf_counter() - started)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        np.save(cached, vectors)
    return vectors, described


# --- Child processes ---------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _mb(kb: int) -> float:
    return kb / 1024.0


def _reset_hwm() -> None:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs), so a peak is this phase's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _time_queries(call, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Single-query timings (ms) and the found ids, one call per query row."""
    found = np.empty((queries.shape[0], K), dtype=np.int64)
    times = np.empty(queries.shape[0])
    gc.disable()
    try:
        for i in range(queries.shape[0]):
            row = queries[i : i + 1]
            t0 = time.perf_counter_ns()
            ids = call(row)
            times[i] = (time.perf_counter_ns() - t0) / 1e6
            found[i] = ids[0]
    finally:
        gc.enable()
    return times, found


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    hits = 0
    for f, t in zip(found, truth, strict=True):
        hits += np.intersect1d(f[f >= 0], t).shape[0]
    return hits / truth.size


def _timing(times: np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99))}


def child_annoy_build(work: Path) -> dict[str, Any]:
    vectors = np.load(work / "base.npy")
    ids = np.load(work / "ids.npy")
    _reset_hwm()
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    meta = build_index(work / "annoy", ids, vectors, encoder="bench", watermark=int(ids.max()))
    build_s = time.perf_counter() - t0
    files = list((work / "annoy" / meta.build_id).iterdir())
    return {
        "build_s": build_s,
        "disk_mb": sum(p.stat().st_size for p in files) / 2**20,
        "build_rss_mb": _mb(_status_kb("VmHWM") - before),
        "n_trees": meta.n_trees,
    }


def child_annoy_serve(work: Path) -> dict[str, Any]:
    queries, tune = np.load(work / "queries.npy"), np.load(work / "tune.npy")
    truth = np.load(work / "truth.npy")
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    index = load_index(work / "annoy")
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.query(tune[:1], K)
    first_ms = (time.perf_counter() - t0) * 1e3
    for i in range(tune.shape[0]):
        index.query(tune[i : i + 1], K)
    times, found = _time_queries(lambda row: index.query(row, K)[0], queries)
    out = {
        **_timing(times),
        "recall": recall_at_k(found, truth),
        "serve_rss_mb": _mb(_status_kb("VmRSS") - before),
        "serve_anon_mb": _mb(_status_kb("RssAnon")),
        "load_s": load_s,
        "first_query_ms": first_ms,
        "search_k": default_search_k(K),
        "sweep": [],
    }
    for sk in SWEEP_SEARCH_K:
        t, f = _time_queries(lambda row, sk=sk: index.query(row, K, search_k=sk)[0], queries)
        out["sweep"].append({"search_k": sk, "recall": recall_at_k(f, truth), **_timing(t)})
    index.close()
    return out


def child_hnsw_build(work: Path) -> dict[str, Any]:
    import hnswlib

    vectors = np.load(work / "base.npy")
    ids = np.load(work / "ids.npy")
    _reset_hwm()
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=vectors.shape[0], ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M, random_seed=1)
    index.add_items(vectors, ids, num_threads=HNSW_BUILD_THREADS)
    build_s = time.perf_counter() - t0
    path = work / "hnsw.bin"
    index.save_index(str(path))
    return {
        "build_s": build_s,
        "disk_mb": path.stat().st_size / 2**20,
        "build_rss_mb": _mb(_status_kb("VmHWM") - before),
    }


def child_hnsw_serve(work: Path) -> dict[str, Any]:
    import hnswlib

    queries, tune = np.load(work / "queries.npy"), np.load(work / "tune.npy")
    truth, tune_truth = np.load(work / "truth.npy"), np.load(work / "tune_truth.npy")
    n = int(np.load(work / "ids.npy", mmap_mode="r").shape[0])
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    index = hnswlib.Index(space="cosine", dim=queries.shape[1])
    index.load_index(str(work / "hnsw.bin"), max_elements=n)
    index.set_num_threads(1)
    load_s = time.perf_counter() - t0
    chosen = HNSW_EF_CANDIDATES[-1]
    for ef in HNSW_EF_CANDIDATES:
        index.set_ef(ef)
        labels, _ = index.knn_query(tune, k=K, num_threads=1)
        if recall_at_k(labels.astype(np.int64), tune_truth) >= RECALL_GOAL:
            chosen = ef
            break
    # The tuning set is small: should the timed queries fall short of the goal, step ef up
    # (so hnswlib is never shown cheaper than it is at the recall asked for).
    while True:
        index.set_ef(chosen)
        for i in range(tune.shape[0]):
            index.knn_query(tune[i : i + 1], k=K, num_threads=1)
        times, found = _time_queries(lambda row: index.knn_query(row, k=K, num_threads=1)[0], queries)
        got = recall_at_k(found.astype(np.int64), truth)
        bigger = [ef for ef in HNSW_EF_CANDIDATES if ef > chosen]
        if got >= RECALL_GOAL or not bigger:
            break
        chosen = bigger[0]
    return {
        **_timing(times),
        "recall": got,
        "serve_rss_mb": _mb(_status_kb("VmRSS") - before),
        "load_s": load_s,
        "ef": chosen,
    }


def child_exact_serve(work: Path) -> dict[str, Any]:
    queries, tune = np.load(work / "queries.npy"), np.load(work / "tune.npy")
    truth = np.load(work / "truth.npy")
    before = _status_kb("VmRSS")
    vectors = np.load(work / "base.npy")
    ids = np.load(work / "ids.npy")
    for i in range(20):
        exact_search(tune[i : i + 1], vectors, ids, K)
    times, found = _time_queries(lambda row: exact_search(row, vectors, ids, K)[0], queries)
    return {
        **_timing(times),
        "recall": recall_at_k(found, truth),
        "serve_rss_mb": _mb(_status_kb("VmRSS") - before),
        "disk_mb": (vectors.nbytes + ids.nbytes) / 2**20,
    }


CHILDREN = {
    "annoy-build": child_annoy_build,
    "annoy-serve": child_annoy_serve,
    "hnsw-build": child_hnsw_build,
    "hnsw-serve": child_hnsw_serve,
    "exact-serve": child_exact_serve,
}


def run_child(name: str, work: Path, timeout_s: float = 3600.0) -> dict[str, Any]:
    """One measurement in a fresh interpreter; its result is the JSON on its last stdout line."""
    log.info("running %s", name)
    proc = subprocess.run(
        [sys.executable, "-m", "bench.vector_search", "--child", name, "--workdir", str(work)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- One size ----------------------------------------------------------------------------------


def bench_size(corpus: np.ndarray, n: int, n_queries: int, seed: int, work: Path, args: argparse.Namespace) -> dict:
    """Index ``n`` vectors of ``corpus`` (the others are queries), run every method, gather the results."""
    rng = np.random.default_rng(seed + n)
    picked = rng.permutation(corpus.shape[0])[: n + n_queries + N_TUNE]
    queries = corpus[picked[:n_queries]]
    tune = corpus[picked[n_queries : n_queries + N_TUNE]]
    base = np.ascontiguousarray(corpus[np.sort(picked[n_queries + N_TUNE :])])
    ids = np.arange(1, n + 1, dtype=np.int64)  # SQLite row ids start at 1
    work.mkdir(parents=True, exist_ok=True)
    for name, array in (("base", base), ("ids", ids), ("queries", queries), ("tune", tune)):
        np.save(work / f"{name}.npy", array)
    t0 = time.perf_counter()
    truth, _ = exact_search(queries, base, ids, K)
    tune_truth, _ = exact_search(tune, base, ids, K)
    log.info("ground truth for n=%d in %.1f s", n, time.perf_counter() - t0)
    np.save(work / "truth.npy", truth)
    np.save(work / "tune_truth.npy", tune_truth)
    del base

    result: dict[str, Any] = {"n": n, "dim": corpus.shape[1], "queries": n_queries}
    result["ours"] = {**run_child("annoy-build", work), **run_child("annoy-serve", work)}
    shutil.rmtree(work / "annoy", ignore_errors=True)
    if not args.skip_hnsw:
        result["hnsw"] = {**run_child("hnsw-build", work), **run_child("hnsw-serve", work)}
        (work / "hnsw.bin").unlink(missing_ok=True)
    if not args.skip_exact:
        result["exact"] = run_child("exact-serve", work)
    return result


# --- Output ------------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def format_size(r: dict[str, Any]) -> str:
    """The table of one size, the ours/anchor ratios and the search_k sweep."""
    lines = [
        f"N = {r['n']:,} vectors x {r['dim']} dims, {r['queries']} held-out queries, k = {K}, cosine distance",
        "",
        f"{'method':<14} {'params':<32} {'recall@10':>9} {'p50 ms':>8} {'p99 ms':>8} {'build s':>8} "
        f"{'disk MB':>8} {'build RSS+ MB':>13} {'serve RSS+ MB':>13}",
    ]
    rows = []
    ours = r["ours"]
    rows.append(("ours (Annoy)", f"{ours['n_trees']} trees, search_k {ours['search_k']}", ours))
    if "hnsw" in r:
        h = r["hnsw"]
        rows.append(("hnswlib", f"M {HNSW_M}, efC {HNSW_EF_CONSTRUCTION}, ef {h['ef']}", h))
    if "exact" in r:
        rows.append(("exact numpy", "brute force, blocks", r["exact"]))
    for name, params, m in rows:
        lines.append(
            f"{name:<14} {params:<32} {m['recall']:>9.3f} {m['p50_ms']:>8.3f} {m['p99_ms']:>8.3f} "
            f"{_fmt(m.get('build_s'), 1):>8} {_fmt(m.get('disk_mb'), 0):>8} {_fmt(m.get('build_rss_mb'), 0):>13} "
            f"{_fmt(m.get('serve_rss_mb'), 0):>13}"
        )
    lines.append("")
    for anchor_key, anchor_name in (("hnsw", "hnswlib"), ("exact", "exact")):
        if anchor_key not in r:
            continue
        a = r[anchor_key]
        parts = [
            f"p50 {_ratio(ours['p50_ms'], a['p50_ms'])}",
            f"p99 {_ratio(ours['p99_ms'], a['p99_ms'])}",
            f"recall {ours['recall'] - a['recall']:+.3f}",
        ]
        if a.get("build_s"):
            parts.append(f"build {_ratio(ours['build_s'], a['build_s'])}")
        parts.append(f"disk {_ratio(ours['disk_mb'], a.get('disk_mb'))}")
        parts.append(f"serve RSS+ {_ratio(ours['serve_rss_mb'], a['serve_rss_mb'])}")
        lines.append(f"ours / {anchor_name:<8}: " + ", ".join(parts))
    lines.append(
        f"ours: load_index (SHA-256 verified) {ours['load_s']:.2f} s, first query {ours['first_query_ms']:.1f} ms; "
        f"serve RSS+ is {ours['serve_anon_mb']:.0f} MB anonymous in all, the rest page cache of the index file"
    )
    if "hnsw" in r:
        lines.append(f"hnswlib: load_index {r['hnsw']['load_s']:.2f} s")
    lines.append("")
    lines.append("ours at other search_k (same index, same queries):")
    lines.append(f"  {'search_k':>8} {'recall@10':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for s in ours["sweep"]:
        lines.append(f"  {s['search_k']:>8} {s['recall']:>9.3f} {s['p50_ms']:>8.3f} {s['p99_ms']:>8.3f}")
    return "\n".join(lines)


def verdict(r: dict[str, Any]) -> tuple[bool, str]:
    ours = r["ours"]
    ok = ours["recall"] >= RECALL_GOAL and ours["p50_ms"] < P50_GOAL_MS
    return ok, (
        f"goal at N = {r['n']:,} (recall@10 >= {RECALL_GOAL}, p50 < {P50_GOAL_MS} ms): "
        f"{'MET' if ok else 'MISSED'} (recall {ours['recall']:.3f}, p50 {ours['p50_ms']:.3f} ms)"
    )


# --- Main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="1000000", help="comma-separated index sizes (default 1000000)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", choices=("auto", "eeg", "manifold"), default="auto")
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep the generated corpus here for reruns")
    parser.add_argument("--workdir", type=Path, default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--skip-hnsw", action="store_true")
    parser.add_argument("--skip-exact", action="store_true")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.workdir)), flush=True)
        return 0
    sizes = sorted((int(s) for s in args.sizes.split(",")), reverse=True)
    corpus, described = load_corpus(args.corpus, sizes[0] + args.queries + N_TUNE, args.seed, args.cache_dir)
    scratch = args.workdir or Path(tempfile.mkdtemp(prefix="vector-search-bench-"))
    results = []
    try:
        for n in sizes:
            results.append(bench_size(corpus, n, args.queries, args.seed, scratch / f"n{n}", args))
    finally:
        if args.workdir is None:
            shutil.rmtree(scratch, ignore_errors=True)
    print("EEG search, part 2: vector index (ours: Annoy files) vs hnswlib vs exact numpy search")
    print(f"corpus: {described}, seed {args.seed}")
    print(
        f"machine: {os.cpu_count()} CPUs; annoy {version('annoy')}, hnswlib {version('hnswlib')}, "
        f"numpy {np.__version__}; ANNOY_N_TREES {constants.ANNOY_N_TREES}, "
        f"search_k max({constants.ANNOY_SEARCH_K_MIN}, {constants.ANNOY_SEARCH_K_PER_RESULT} k)"
    )
    all_ok = True
    for r in results:
        print()
        print(format_size(r))
        ok, line = verdict(r)
        all_ok &= ok or r["n"] != 1_000_000
        print(line)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

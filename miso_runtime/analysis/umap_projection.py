"""The Brain Nebula: one joint 3-D UMAP of two ranges' EEG epoch embeddings, and how apart they lie.

This is the computation behind ``POST /v1/analysis/umap`` (the NeuroSkill daemon's answer shapes,
see :func:`project`): the vectors of range A and range B are projected *together* into 3-D, so
the two clouds share one space, and :func:`separation_analysis` measures their centroids,
spreads and outliers in it.

Parameters follow the daemon (:meth:`UmapSettings.from_config` clamps the user's
``UmapUserConfig``): 3 components, ``n_neighbors`` clamped to 2-50 and then capped at ``n - 1``
and ``n / 2`` (floor 2), ``n_epochs`` 50-2000, ``repulsion_strength`` 0.1-10,
``negative_sample_rate`` 1-30, timeout 10-600 s; the metric is cosine, as embeddings are compared
by cosine everywhere else.

Where this does better than the daemon
--------------------------------------
- **Exact neighbours, computed here.** umap-learn finds neighbours of 4096 points or more with
  NN-descent (pynndescent): approximate (about 99 % recall on clustered data), and much of its
  code is compiled by numba in *every* new process (cached nowhere: about a minute on a small
  2-core machine). We compute the exact cosine k-nearest neighbours instead (one float32 matrix
  product per block of rows, then a top-k kernel of our own that numba caches on disk) and
  hand them to umap-learn as ``precomputed_knn``: a proper UMAP, on a graph at least as good,
  the same code path for every size, and no NN-descent compile at all.
- **Large ranges are subsampled evenly, and the answer says so.** A range with more epochs than
  ``UMAP_MAX_EPOCHS_PER_RANGE`` keeps that many, evenly spaced in time, first and last included
  (:func:`evenly_subsample`); ``"subsampled": {"a": {"total": N, "used": M}, "b": ...}`` then
  tells the client it sees a thinned picture.
- **Deterministic.** A fixed seed (``UMAP_DEFAULT_SEED``) gives the same picture for the same
  vectors and settings on the same machine and library versions, so a cached answer and a
  recomputed one agree and a user re-running a comparison sees the same nebula. The price:
  umap-learn runs its layout on one thread when seeded (its parallel layout is "hogwild", with
  races). ``seed=None`` trades that for the parallel layout (much faster on many cores); the
  service caches projections anyway, so reproducibility is worth more than that speed.
- **Few epochs are fine.** ``n_neighbors`` is capped as above; fewer than
  ``UMAP_MIN_EMBEDDINGS`` vectors give the daemon's empty answer (:func:`empty_answer`).
- **Honest progress, cancellable and time-bounded mid-layout.** umap-learn has no callback, but
  its layout loop calls one compiled function per epoch, which it looks up as a module global
  (``umap.layouts._nb_optimize_layout_euclidean_single_epoch``) at each fit. We put a thin
  Python wrapper there (:func:`_with_epoch_hook`): it calls the same compiled function with the
  same arguments, then tells the projection running on that thread that an epoch is done. That
  gives per-epoch progress and, once the projection is cancelled or past its timeout, stops the
  loop by raising between two epochs: the work itself stops, not merely the wait for it.
  (Stopping from the ``tqdm`` bar that ``tqdm_kwds`` can redirect was tried and rejected: an
  exception in its ``write`` leaves tqdm's global lock held, and the next bar deadlocks.)
  Another caller of umap-learn in the process is unaffected (no projection on its thread).
- ``precision`` and ``backend`` are accepted for the contract (and ``precision`` is part of the
  cache key, as in the daemon) but the computation is always float32 on the CPU; the answer
  reports what was used (``"backend": "cpu"``, ``"precision": "f32"``). ``cooldown_ms`` (the
  daemon's pause for its GPU) is clamped and kept for the cache key, and has no effect here.

Threads, timeout, cancel
------------------------
:func:`project` runs the computation in a helper thread and stays in the caller's thread
itself: every ``UMAP_POLL_S`` it forwards progress (so ``progress`` and ``should_stop`` are only
ever called from the caller's thread), asks ``should_stop`` and looks at the deadline. On cancel
or timeout it raises at once (:class:`ProjectionCancelled`, :class:`ProjectionTimedOut`) and
tells the helper to stop; the helper stops at its next checkpoint: a block of neighbours or an
epoch of layout, or at worst the end of the fuzzy graph or the spectral initialisation (about a
second at 20,000 points). A lock keeps a stopping helper and the next projection from running
at the same time. A side benefit: umap-learn sets numba's thread count for its own thread
(``numba.set_num_threads`` is thread-local) and does not restore it when interrupted; that
thread dies with the helper. Must not run in a gevent-patched process (numba holds the GIL).

Compiling (numba), and what the worker must set up
--------------------------------------------------
umap-learn compiles its numba code on first use. Measured in a fresh process on a loaded 2-core
machine: ``import umap`` 27 s with an empty numba cache, 4-5 s with a filled one (pynndescent's
functions, compiled eagerly at import, are ``cache=True``); the fuzzy graph functions
(``smooth_knn_dist``, ``compute_membership_strengths``: about 12 s) and the layout epoch
(about 4 s) are *not* ``cache=True`` in umap-learn 0.5, so they would compile in every process.
:func:`_use_disk_cached_kernels` therefore swaps those three module globals of umap-learn for
copies of the very same Python functions with the same numba options plus ``cache=True``
(nothing else changes: the same code, compiled the same way, just kept on disk; measured: the
same coordinates to the bit). ``UMAP_DISK_CACHE_KERNELS = False`` leaves them as they are.

The worker must:

1. set ``NUMBA_CACHE_DIR`` (e.g. ``<data dir>/numba_cache``) **before numba is first imported in
   the process** (numba reads it once, at import; ``workers.analysis_worker`` does this before
   it imports this module). Without it numba writes next to the installed packages if that is
   writable, else into the user's cache folder, and compiles every time if neither is;
2. call :func:`warm_up` once after start (compiled code serves every thread; first thing on the
   projecting thread is simplest, so a request just queues behind it). It runs the real path
   on 64 points: 3.4 s from a filled cache, 26 s from an empty one (most of it ``import
   umap``), measured as above. Otherwise the first projection pays that inside its timeout,
   which may be as short as 10 s.

The cache files are keyed by the library's source files (numba checks their timestamps), so an
upgrade of umap-learn recompiles by itself.

Measured at 10,000 points (``bench/umap_direct.py``, 48 dims, default settings, same 2-core
machine): warm 25.0 s against 24.5 s for umap-learn called directly (ratio 1.02; nearly all of
it is the single-threaded layout: 500 epochs at 15 negative samples); first call in a new
process with a filled cache 27 s against 56 s; first call on a fresh install 59 s against 74 s.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import warnings
from dataclasses import dataclass, fields
from typing import Any, Callable, Mapping, Sequence

import numba
import numpy as np

from .. import constants

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]
ShouldStop = Callable[[], bool]

#: The daemon's clamping ranges of ``UmapUserConfig`` (part of the contract, not tunables).
_NEIGHBORS_RANGE = (2, 50)
_EPOCHS_RANGE = (50, 2000)
_REPULSION_RANGE = (0.1, 10.0)
_NEG_SAMPLE_RANGE = (1, 30)
_TIMEOUT_RANGE_S = (10, 600)
_COOLDOWN_RANGE_MS = (0, 10_000)

#: Progress fractions at which each stage begins (the layout gets most: it is most of the time).
_AT_NEIGHBOURS = 0.02
_AT_LAYOUT = 0.10
_AT_ANALYSIS = 0.96

#: What the answer reports as used (see the module docstring on ``backend`` and ``precision``).
_BACKEND = "cpu"
_PRECISION = "f32"


class ProjectionFailed(RuntimeError):
    """The projection could not be made; the message says why (the caller prefixes ``UMAP projection failed:``)."""


class ProjectionTimedOut(ProjectionFailed):
    """The projection ran past its ``timeout_secs``: a failure, told apart for callers that report it as a timeout."""


class ProjectionCancelled(Exception):
    """``should_stop`` asked to stop: not a failure, so it is not a :class:`ProjectionFailed`."""


# --- settings -------------------------------------------------------------------------------


def _clamp(value: Any, bounds: tuple[float, float], default: float, kind: type) -> Any:
    """``value`` as ``kind`` within ``bounds``; ``default`` when it is missing or not a number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float(default)
    if math.isnan(number):
        number = float(default)
    number = min(max(number, bounds[0]), bounds[1])
    return kind(round(number)) if kind is int else kind(number)


@dataclass(frozen=True)
class UmapSettings:
    """The daemon's ``UmapUserConfig``, clamped (build it with :meth:`from_config`)."""

    repulsion_strength: float = 3.0
    neg_sample_rate: int = 15
    timeout_secs: int = 120
    n_epochs: int = 500
    n_neighbors: int = 15
    cooldown_ms: int = 0
    backend: str = "auto"
    precision: str = "f32"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | Any | None = None) -> UmapSettings:
        """Clamp a stored config (a dict, a pydantic model or ``None``) to the daemon's ranges.

        Missing or non-numeric values take the defaults, so an old or hand-edited settings file
        still projects.
        """
        if config is None:
            values: Mapping[str, Any] = {}
        elif isinstance(config, Mapping):
            values = config
        elif hasattr(config, "model_dump"):
            values = config.model_dump()
        else:
            values = {f.name: getattr(config, f.name) for f in fields(cls) if hasattr(config, f.name)}
        d = cls()
        precision = values.get("precision", d.precision)
        return cls(
            repulsion_strength=_clamp(values.get("repulsion_strength"), _REPULSION_RANGE, d.repulsion_strength, float),
            neg_sample_rate=_clamp(values.get("neg_sample_rate"), _NEG_SAMPLE_RANGE, d.neg_sample_rate, int),
            timeout_secs=_clamp(values.get("timeout_secs"), _TIMEOUT_RANGE_S, d.timeout_secs, int),
            n_epochs=_clamp(values.get("n_epochs"), _EPOCHS_RANGE, d.n_epochs, int),
            n_neighbors=_clamp(values.get("n_neighbors"), _NEIGHBORS_RANGE, d.n_neighbors, int),
            cooldown_ms=_clamp(values.get("cooldown_ms"), _COOLDOWN_RANGE_MS, d.cooldown_ms, int),
            backend=str(values.get("backend") or d.backend),
            precision=precision if precision in ("f32", "f16") else d.precision,
        )

    def cache_key_fields(self) -> dict[str, Any]:
        """The fields that change the answer (the daemon keeps its cache when only ``backend`` changes)."""
        return {
            "precision": self.precision,
            "repulsion_strength": self.repulsion_strength,
            "neg_sample_rate": self.neg_sample_rate,
            "n_epochs": self.n_epochs,
            "n_neighbors": self.n_neighbors,
            "cooldown_ms": self.cooldown_ms,
            "timeout_secs": self.timeout_secs,
        }

    def neighbours_for(self, n: int) -> int:
        """The daemon's ``n_neighbors`` for ``n`` points: at most ``n - 1`` and ``n / 2``, at least 2."""
        return max(_NEIGHBORS_RANGE[0], min(self.n_neighbors, n - 1, n // 2))


def umap_options(settings: UmapSettings, n: int, seed: int | None) -> dict[str, Any]:
    """Keyword arguments of ``umap.UMAP`` for ``n`` points: shared by :func:`project` and the benchmark.

    ``init="spectral"`` (umap-learn's default) costs under a second at 10,000 points (measured:
    0.8 s of about 45 s) and keeps the global arrangement of clusters, which the centroid
    distances of :func:`separation_analysis` depend on; ``"random"`` saves nothing worth that.
    ``low_memory`` only concerns NN-descent, which :func:`project` does not use. ``n_jobs`` is
    given explicitly (1 when seeded, as umap-learn would force anyway) to avoid its warning.
    """
    return {
        "n_components": 3,
        "n_neighbors": settings.neighbours_for(n),
        "n_epochs": settings.n_epochs,
        "negative_sample_rate": settings.neg_sample_rate,
        "repulsion_strength": settings.repulsion_strength,
        "metric": "cosine",
        "init": "spectral",
        "random_state": seed,
        "n_jobs": 1 if seed is not None else -1,
        "low_memory": True,
        "verbose": False,
    }


# --- answers --------------------------------------------------------------------------------


def empty_answer(reason: str, n_a: int, n_b: int, total_a: int, total_b: int) -> dict[str, Any]:
    """The daemon's answer when there is nothing to project (``no_epochs``, ``no_embeddings: ...``, ...)."""
    return {
        "points": [],
        "n_a": int(n_a),
        "n_b": int(n_b),
        "dim": 0,
        "total_a": int(total_a),
        "total_b": int(total_b),
        "reason": reason,
    }


def evenly_subsample(n: int, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` of ``n`` items, evenly spaced, the first and the last included.

    Even spacing in index is even spacing in time for epochs sorted by time, so a thinned range
    still covers its whole span; rounding keeps the indices distinct because the step exceeds 1.
    """
    if n < 0 or limit < 1:
        raise ValueError(f"evenly_subsample needs n >= 0 and limit >= 1 (got n={n}, limit={limit})")
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    if limit == 1:
        return np.zeros(1, dtype=np.int64)
    return np.round(np.linspace(0, n - 1, limit)).astype(np.int64)


def separation_analysis(coords: np.ndarray, n_a: int, utc: np.ndarray) -> dict[str, Any]:
    """Centroids, spreads, separation and outliers of the first ``n_a`` points (A) against the rest (B).

    - intra spread: mean distance of a range's points to its centroid;
    - ``separation_score``: distance of the centroids over the mean of the two spreads (0 when
      both spreads are 0, which JSON could not carry as infinity);
    - outlier: a point farther from its own centroid than that range's spread plus
      ``UMAP_OUTLIER_STD_FACTOR`` standard deviations of those distances. All are counted; the
      ``UMAP_MAX_OUTLIERS_LISTED`` farthest of both ranges are listed, farthest first.

    A range without points has a ``null`` centroid, spread 0 and no outliers, and the distance
    and score are then 0. Numbers are rounded to 2 decimals, as the daemon's are.
    """
    coords = np.asarray(coords, dtype=np.float64)
    utc = np.asarray(utc)
    if coords.ndim != 2 or coords.shape[1] != 3 or not 0 <= n_a <= len(coords) or len(utc) != len(coords):
        raise ValueError(
            f"separation_analysis needs (n, 3) coordinates, 0 <= n_a <= n and n times (got {coords.shape})"
        )
    parts = (("A", coords[:n_a], 0), ("B", coords[n_a:], n_a))
    centroids: list[np.ndarray | None] = []
    spreads: list[float] = []
    counts: list[int] = []
    found: list[tuple[float, int, str]] = []
    for session, points, offset in parts:
        if len(points) == 0:
            centroids.append(None)
            spreads.append(0.0)
            counts.append(0)
            continue
        centroid = points.mean(axis=0)
        distances = np.linalg.norm(points - centroid, axis=1)
        spread = float(distances.mean())
        limit = spread + constants.UMAP_OUTLIER_STD_FACTOR * float(distances.std())
        far = np.flatnonzero(distances > limit)
        centroids.append(centroid)
        spreads.append(spread)
        counts.append(len(far))
        found.extend((float(distances[i]), offset + int(i), session) for i in far)
    if centroids[0] is not None and centroids[1] is not None:
        inter = float(np.linalg.norm(centroids[0] - centroids[1]))
    else:
        inter = 0.0
    mean_spread = (spreads[0] + spreads[1]) / 2.0
    score = inter / mean_spread if mean_spread > 0.0 else 0.0
    found.sort(key=lambda item: (-item[0], item[1]))
    outliers = [
        {
            "x": round(float(coords[i, 0]), 2),
            "y": round(float(coords[i, 1]), 2),
            "z": round(float(coords[i, 2]), 2),
            "session": session,
            "utc": int(utc[i]),
            "distance_to_centroid": round(distance, 2),
        }
        for distance, i, session in found[: constants.UMAP_MAX_OUTLIERS_LISTED]
    ]
    return {
        "centroid_a": _rounded(centroids[0]),
        "centroid_b": _rounded(centroids[1]),
        "inter_cluster_distance": round(inter, 2),
        "intra_spread_a": round(spreads[0], 2),
        "intra_spread_b": round(spreads[1], 2),
        "separation_score": round(score, 2),
        "n_outliers_a": counts[0],
        "n_outliers_b": counts[1],
        "outliers": outliers,
    }


def _rounded(centroid: np.ndarray | None) -> list[float] | None:
    return None if centroid is None else [round(float(v), 2) for v in centroid]


# --- the projection -------------------------------------------------------------------------


def project(
    vectors_a: np.ndarray,
    vectors_b: np.ndarray,
    utc_a: np.ndarray,
    utc_b: np.ndarray,
    labels_a: Sequence[str | None],
    labels_b: Sequence[str | None],
    settings: UmapSettings,
    *,
    progress: Progress = lambda stage, fraction: None,
    should_stop: ShouldStop = lambda: False,
    seed: int | None = constants.UMAP_DEFAULT_SEED,
    max_per_range: int | None = None,
    totals: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Project A and B together in 3-D and analyse them: the ``/v1/analysis/umap`` answer.

    Parameters
    ----------
    vectors_a, vectors_b
        ``(n, dim)`` embeddings of each range in time order (any float dtype; used as float32).
    utc_a, utc_b
        Each epoch's UNIX seconds.
    labels_a, labels_b
        Each epoch's label or ``None`` (then the point has no ``label`` key).
    settings
        Clamped settings (:meth:`UmapSettings.from_config`).
    progress
        ``progress(stage, fraction)`` with stages ``preparing``, ``neighbours``, ``layout``
        (per epoch), ``analysis`` and ``done``; fraction rises from 0 to 1 in steps of at least
        ``UMAP_PROGRESS_STEP``. Called in the caller's thread only.
    should_stop
        Asked every ``UMAP_POLL_S``; true raises :class:`ProjectionCancelled`.
    seed
        Seed of the whole projection (deterministic); ``None``: parallel, not reproducible.
    max_per_range
        Epochs per range kept at most (evenly, :func:`evenly_subsample`); default
        ``UMAP_MAX_EPOCHS_PER_RANGE``.
    totals
        Vectors each range had before the caller thinned them itself, if it did: the answer's
        ``subsampled`` then reports those totals.

    Returns
    -------
    dict
        ``points`` (all of A, then all of B; ``session`` 0 or 1), ``n_a``, ``n_b`` (points used),
        ``dim``, ``elapsed_ms``, ``analysis`` (:func:`separation_analysis`), ``backend``,
        ``precision``, and ``subsampled`` when a range was thinned; or :func:`empty_answer` with
        a ``too_few_embeddings`` reason under ``UMAP_MIN_EMBEDDINGS`` vectors.

    Raises
    ------
    ProjectionFailed
        Bad vectors (not finite, mismatched dimensions) or a failure inside umap-learn;
        :class:`ProjectionTimedOut` past ``settings.timeout_secs``.
    ProjectionCancelled
        ``should_stop`` returned true.
    """
    began = time.monotonic()
    deadline = began + settings.timeout_secs
    progress("preparing", 0.0)
    a = _as_matrix(vectors_a, "A")
    b = _as_matrix(vectors_b, "B")
    for name, vectors, times, labels in (("A", a, utc_a, labels_a), ("B", b, utc_b, labels_b)):
        if len(times) != len(vectors) or len(labels) != len(vectors):
            raise ValueError(f"range {name}: {len(vectors)} vectors, {len(times)} times and {len(labels)} labels")
    if a.shape[0] and b.shape[0] and a.shape[1] != b.shape[1]:
        raise ProjectionFailed(f"the ranges' embeddings differ in dimension ({a.shape[1]} and {b.shape[1]})")
    limit = constants.UMAP_MAX_EPOCHS_PER_RANGE if max_per_range is None else max_per_range
    given = (len(a), len(b))
    total_a, total_b = totals if totals is not None else given
    keep_a, keep_b = evenly_subsample(len(a), limit), evenly_subsample(len(b), limit)
    a, b = a[keep_a], b[keep_b]
    times_a, times_b = np.asarray(utc_a)[keep_a], np.asarray(utc_b)[keep_b]
    kept_labels = [labels_a[int(i)] for i in keep_a] + [labels_b[int(i)] for i in keep_b]
    n_a, n_b = len(a), len(b)
    n = n_a + n_b
    if n < constants.UMAP_MIN_EMBEDDINGS:
        reason = f"too_few_embeddings: only {n} embeddings available (need at least {constants.UMAP_MIN_EMBEDDINGS})"
        return empty_answer(reason, n_a, n_b, total_a, total_b)
    vectors = np.concatenate([a, b]) if n_a and n_b else (a if n_a else b)
    if not np.isfinite(vectors).all():
        bad = int((~np.isfinite(vectors).all(axis=1)).sum())
        raise ProjectionFailed(f"{bad} of the {n} embeddings contain NaN or infinite values")

    job = _Job(vectors, settings, seed)
    _run_in_helper(job, progress, should_stop, deadline, settings.timeout_secs)
    coords = job.coords
    if coords is None or coords.shape != (n, 3) or not np.isfinite(coords).all():
        raise ProjectionFailed("umap-learn returned no usable coordinates")

    progress("analysis", _AT_ANALYSIS)
    utc = np.concatenate([times_a, times_b]).astype(np.int64)
    points: list[dict[str, Any]] = []
    for i in range(n):
        point: dict[str, Any] = {
            "x": float(coords[i, 0]),
            "y": float(coords[i, 1]),
            "z": float(coords[i, 2]),
            "session": 0 if i < n_a else 1,
            "utc": int(utc[i]),
        }
        if kept_labels[i] is not None:
            point["label"] = kept_labels[i]
        points.append(point)
    answer: dict[str, Any] = {
        "points": points,
        "n_a": n_a,
        "n_b": n_b,
        "dim": int(vectors.shape[1]),
        "elapsed_ms": 0,
        "analysis": separation_analysis(coords, n_a, utc),
        "backend": _BACKEND,
        "precision": _PRECISION,
    }
    if n_a < total_a or n_b < total_b:
        answer["subsampled"] = {"a": {"total": int(total_a), "used": n_a}, "b": {"total": int(total_b), "used": n_b}}
    answer["elapsed_ms"] = round((time.monotonic() - began) * 1000.0)
    progress("done", 1.0)
    logger.info(
        "projected %d + %d vectors (dim %d, k=%d, %d epochs) in %d ms",
        n_a,
        n_b,
        answer["dim"],
        settings.neighbours_for(n),
        settings.n_epochs,
        answer["elapsed_ms"],
    )
    return answer


def _as_matrix(vectors: np.ndarray, name: str) -> np.ndarray:
    """A range's vectors as a C-contiguous float32 ``(n, dim)`` array (an empty range may be any empty array)."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.size == 0:
        return matrix.reshape(0, matrix.shape[1] if matrix.ndim == 2 else 0)
    if matrix.ndim != 2:
        raise ProjectionFailed(f"range {name}: embeddings must be a 2-D array, got shape {matrix.shape}")
    return np.ascontiguousarray(matrix)


def warm_up() -> float:
    """Compile everything :func:`project` runs, on 64 synthetic points; the seconds it took.

    Run it once on the worker's projecting thread after start (see the module docstring), so
    the first real projection spends its timeout on the projection. The compiled code does not
    depend on the number of points, the dimension or the number of epochs (same dtypes).
    """
    began = time.monotonic()
    rng = np.random.default_rng(0)
    half = constants.UMAP_WARM_UP_POINTS // 2
    centres = rng.normal(size=(2, 8)) * 4.0
    a = (centres[0] + rng.normal(size=(half, 8))).astype(np.float32)
    b = (centres[1] + rng.normal(size=(half, 8))).astype(np.float32)
    times = np.arange(half, dtype=np.int64)
    project(a, b, times, times, [None] * half, [None] * half, UmapSettings(n_epochs=_EPOCHS_RANGE[0], timeout_secs=600))
    seconds = time.monotonic() - began
    logger.info("UMAP warm-up (compiling or loading numba code) took %.1f s", seconds)
    return seconds


# --- the helper thread ----------------------------------------------------------------------

#: One computation at a time, including one still stopping after its caller gave up on it.
_COMPUTE_LOCK = threading.Lock()


class _Stop(Exception):
    """Raised inside the helper (from a checkpoint) once its caller no longer waits for it."""


class _Job:
    """One computation in the helper thread: neighbours, then umap-learn; ``coords`` or ``error``."""

    def __init__(self, vectors: np.ndarray, settings: UmapSettings, seed: int | None) -> None:
        self.vectors = vectors
        self.settings = settings
        self.seed = seed
        self.events: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()
        self.finished = threading.Event()
        self.stop_reason: str | None = None
        self.coords: np.ndarray | None = None
        self.error: BaseException | None = None
        self._last: tuple[str, float] | None = None

    def report(self, stage: str, fraction: float) -> None:
        """Queue progress for the caller, skipping steps under ``UMAP_PROGRESS_STEP`` within a stage."""
        last = self._last
        if last is not None and last[0] == stage and fraction - last[1] < constants.UMAP_PROGRESS_STEP:
            return
        self._last = (stage, fraction)
        self.events.put((stage, fraction))

    def checkpoint(self) -> None:
        if self.stop_reason is not None:
            raise _Stop(self.stop_reason)

    def run(self) -> None:
        try:
            while not _COMPUTE_LOCK.acquire(timeout=constants.UMAP_POLL_S):
                self.checkpoint()
            try:
                self.checkpoint()
                self.coords = self._compute()
            finally:
                _COMPUTE_LOCK.release()
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread, which raises it
            self.error = exc
        finally:
            self.finished.set()

    def _compute(self) -> np.ndarray:
        umap = _umap()
        n = len(self.vectors)
        k = self.settings.neighbours_for(n)
        self.report("neighbours", _AT_NEIGHBOURS)
        indices, distances = exact_cosine_knn(
            self.vectors,
            k,
            on_block=lambda done: (
                self.checkpoint(),
                self.report("neighbours", _AT_NEIGHBOURS + (_AT_LAYOUT - _AT_NEIGHBOURS) * done),
            ),
        )
        self.checkpoint()
        self.report("layout", _AT_LAYOUT)
        reducer = umap.UMAP(**umap_options(self.settings, n, self.seed), precomputed_knn=(indices, distances))
        epochs = self.settings.n_epochs
        done = 0

        def on_epoch() -> None:
            nonlocal done
            done += 1
            self.report("layout", _AT_LAYOUT + (_AT_ANALYSIS - _AT_LAYOUT) * min(done / epochs, 1.0))
            self.checkpoint()

        thread = threading.get_ident()
        _epoch_listeners[thread] = on_epoch
        try:
            coords = reducer.fit_transform(self.vectors)
        except _Stop:
            raise
        except Exception as exc:
            raise ProjectionFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            _epoch_listeners.pop(thread, None)
        return np.asarray(coords, dtype=np.float64)


def _run_in_helper(job: _Job, progress: Progress, should_stop: ShouldStop, deadline: float, timeout_s: int) -> None:
    """Run ``job`` in a helper thread; forward its progress; stop it on cancel or timeout; raise its error."""
    helper = threading.Thread(target=job.run, name="umap-projection", daemon=True)
    helper.start()
    try:
        while True:
            try:
                stage, fraction = job.events.get(timeout=constants.UMAP_POLL_S)
            except queue.Empty:
                pass
            else:
                progress(stage, fraction)
            if job.finished.is_set() and job.events.empty():
                break
            if should_stop():
                job.stop_reason = "cancelled"
                raise ProjectionCancelled("the projection was cancelled")
            if time.monotonic() > deadline:
                job.stop_reason = "timeout"
                raise ProjectionTimedOut(f"the projection took longer than its timeout of {timeout_s} s")
    except BaseException:
        job.stop_reason = job.stop_reason or "abandoned"
        raise
    if job.error is not None:
        if isinstance(job.error, ProjectionFailed):
            raise job.error
        raise ProjectionFailed(f"{type(job.error).__name__}: {job.error}") from job.error


# --- exact neighbours -----------------------------------------------------------------------


def exact_cosine_knn(
    vectors: np.ndarray, k: int, on_block: Callable[[float], Any] = lambda done: None
) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest neighbours of every row by cosine distance, itself first (distance 0).

    The layout umap-learn expects from ``precomputed_knn`` (the same as pynndescent's): int32
    indices and float32 distances ``1 - cos``, nearest first, each point its own first neighbour.
    Similarities come from one float32 matrix product per block of rows (``UMAP_KNN_BLOCK_BYTES``
    of them at a time, so memory stays bounded), the top ``k`` of each row from a numba kernel
    (:func:`_top_k_rows`): ``np.argpartition`` took 80 % of the time. A zero vector is
    nobody's close neighbour (similarity 0 to everything). ``on_block(fraction_done)`` runs
    after each block (checkpoints, progress).
    """
    n = len(vectors)
    if not 1 <= k <= n:
        raise ValueError(f"k must be within 1..{n} (got {k})")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True).astype(np.float32)
    unit = np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    indices = np.empty((n, k), dtype=np.int32)
    similarities = np.empty((n, k), dtype=np.float32)
    rows = max(1, min(n, constants.UMAP_KNN_BLOCK_BYTES // (4 * n)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = unit[start:stop] @ unit.T
        _top_k_rows(block, start, indices[start:stop], similarities[start:stop])
        on_block(stop / n)
    distances = np.clip(1.0 - similarities, 0.0, 2.0).astype(np.float32)
    return indices, distances


@numba.njit(parallel=True, nogil=True, cache=True)
def _top_k_rows(block, row_offset, out_indices, out_similarities):  # pragma: no cover - compiled by numba
    """Per row of ``block``: the ``k`` largest similarities, descending, the row's own point first.

    Insertion into a sorted array of ``k``: most values fail the first comparison (smaller than
    the current k-th, kept in a local), so a row costs about one comparison per column. The
    row's own similarity is overwritten in ``block`` (a scratch block of the caller's). Ties keep the lower
    column, so the result does not depend on threads. Compiled on first use (lazily: no
    signature), then loaded from numba's disk cache; ``nogil`` lets the caller's thread run.
    """
    k = out_indices.shape[1]
    for r in numba.prange(block.shape[0]):
        row = block[r]
        row[r + row_offset] = np.float32(3.0)  # itself first, whatever rounding did to cos(x, x)
        best_s = out_similarities[r]
        best_i = out_indices[r]
        for p in range(k):
            best_s[p] = -np.inf
            best_i[p] = -1
        worst = best_s[k - 1]
        for j in range(row.shape[0]):
            s = row[j]
            if s > worst:
                p = k - 1
                while p > 0 and best_s[p - 1] < s:
                    best_s[p] = best_s[p - 1]
                    best_i[p] = best_i[p - 1]
                    p -= 1
                best_s[p] = s
                best_i[p] = j
                worst = best_s[k - 1]
        best_s[0] = np.float32(1.0)


# --- umap-learn, with its hot kernels cached on disk -----------------------------------------

_kernels: dict[str, Any] = {}
_kernels_lock = threading.Lock()

#: umap-learn's numba functions on :func:`project`'s path that it does not cache on disk itself
#: (module, name): the fuzzy graph and the single-threaded (seeded) layout epoch.
_UNCACHED_KERNELS = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)
#: umap-learn's per-epoch layout functions (module globals it looks up at each fit): seeded, unseeded.
_EPOCH_KERNELS = ("_nb_optimize_layout_euclidean_single_epoch", "_nb_optimize_layout_euclidean_single_epoch_parallel")
#: Thread id -> what to call after each layout epoch, for the projection running on that thread.
_epoch_listeners: dict[int, Callable[[], None]] = {}


def _umap() -> Any:
    """``import umap`` (slow: seconds), once, with :func:`_use_disk_cached_kernels` and the epoch hook applied."""
    with _kernels_lock:
        module = _kernels.get("umap")
        if module is None:
            began = time.monotonic()
            import umap

            logger.info("imported umap-learn %s in %.1f s", getattr(umap, "__version__", "?"), time.monotonic() - began)
            # umap-learn warns on every fit that precomputed neighbours come without a search
            # index (only ``transform`` of new points needs one, which we never call). A filter
            # added once, rather than ``catch_warnings`` per fit, which is not thread-safe.
            warnings.filterwarnings("ignore", message=r"precomputed_knn\[2\]", category=UserWarning)
            if constants.UMAP_DISK_CACHE_KERNELS:
                _use_disk_cached_kernels()
            _hook_layout_epochs()
            _kernels["umap"] = module = umap
        return module


def _use_disk_cached_kernels() -> None:
    """Swap umap-learn's uncached numba kernels for the same functions compiled with ``cache=True``.

    The copy compiles the very same Python function with the same numba options (parallel,
    fastmath, locals), so results do not change; numba then keeps the machine code in its cache
    folder instead of recompiling it in every process (about 16 s of the first projection on a
    small machine). Only one copy per Python function: numba's cache names entries after the
    function, not its options, so two differently-compiled copies of one function must not
    both be cached (which is why the parallel layout, used only unseeded, stays as it is). A
    name that is missing or already cached is left alone, so another umap-learn version at
    worst loses the speed-up.
    """
    import importlib

    from numba.core.caching import NullCache
    from numba.core.registry import CPUDispatcher

    for module_name, name in _UNCACHED_KERNELS:
        try:
            module = importlib.import_module(module_name)
            dispatcher = getattr(module, name, None)
            if not isinstance(dispatcher, CPUDispatcher) or not isinstance(dispatcher._cache, NullCache):
                continue
            options = {key: value for key, value in dispatcher.targetoptions.items() if key != "nopython"}
            cached = numba.njit(cache=True, locals=dict(dispatcher.locals), **options)(dispatcher.py_func)
            setattr(module, name, cached)
        except Exception:  # noqa: BLE001 - an optimisation only; umap-learn works without it
            logger.warning("could not cache umap-learn's %s.%s on disk", module_name, name, exc_info=True)


def _with_epoch_hook(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``kernel`` (one layout epoch), then the listener of the calling thread, if a projection runs there.

    The arguments pass through untouched, so the layout is exactly umap-learn's; a listener may
    raise (:class:`_Stop`) to end the layout loop between two epochs, outside any lock.
    """

    def epoch(*args: Any, **kwargs: Any) -> Any:
        result = kernel(*args, **kwargs)
        listener = _epoch_listeners.get(threading.get_ident())
        if listener is not None:
            listener()
        return result

    epoch.epoch_kernel = kernel  # type: ignore[attr-defined]  # (numba dispatchers have ``__wrapped__`` already)
    return epoch


def _hook_layout_epochs() -> None:
    """Wrap umap-learn's per-epoch layout functions with :func:`_with_epoch_hook` (once).

    Without them (another umap-learn version) projections still work, only without per-epoch
    progress, and a cancel or timeout then stops the work at the end of the layout instead.
    """
    import umap.layouts

    for name in _EPOCH_KERNELS:
        kernel = getattr(umap.layouts, name, None)
        if kernel is None:
            logger.warning("umap-learn has no umap.layouts.%s: no per-epoch progress or stop", name)
        elif not hasattr(kernel, "epoch_kernel"):
            setattr(umap.layouts, name, _with_epoch_hook(kernel))

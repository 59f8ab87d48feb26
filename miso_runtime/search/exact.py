"""Exact cosine nearest neighbours with numpy, and merging neighbour lists from several sources.

Exact search answers for the vectors embedded since the last index build (the *tail*), which no
index covers yet, and it is the ground truth the Annoy index is measured against. A search
asks several sources (the global index, per-day indices, the tail) and :func:`merge_neighbours`
makes one answer of theirs.

Every function here returns neighbours as two arrays of the same shape ``(n_queries, k)``: row
ids (``int64``) and cosine distances (``float32``, ``1 - cos``: 0 for the same direction, 1 for
orthogonal or zero vectors, up to 2), ascending per row; a row with fewer than ``k`` neighbours
is padded with id ``-1`` and distance ``inf``.

The heavy work is numpy's (BLAS for the products, C loops for norms and partial sorts), which
releases the GIL, so a search in a threadpool thread of the gevent server leaves the hub free
(measured: a Python thread kept running inside a 138 ms ``argpartition``). numpy's OpenBLAS
may split one product over several threads; on a busy 2-core machine those threads wait for a
core, and a single 20 000-row query then took anything from 0.04 to 15 ms (``OPENBLAS_NUM_THREADS=1``
keeps it at 0.14 ms).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .. import constants

#: Neighbours of a batch of queries: ``(ids int64 (q, k), cosine distances float32 (q, k))``.
Neighbours = tuple[np.ndarray, np.ndarray]
#: Chunk width of the top-k selection of :func:`_smallest`.
_SELECT_CHUNK = 256


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Unit-length float32 copy of ``vectors``, row by row (the last axis); zero rows stay zero.

    Cosine distance is a dot product of unit vectors; a zero vector (an epoch the encoder could
    not describe) has no direction, so it is kept at zero rather than divided into NaN, and is
    then at distance 1 from everything.

    Parameters
    ----------
    vectors : array_like, shape (..., d)
        Any real dtype.

    Returns
    -------
    ndarray, float32, same shape
    """
    out = np.array(vectors, dtype=np.float32, copy=True)
    if out.ndim == 0:
        raise ValueError("normalise needs at least one axis")
    norms = np.linalg.norm(out, axis=-1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _padding(n_queries: int, k: int) -> Neighbours:
    return np.full((n_queries, k), -1, dtype=np.int64), np.full((n_queries, k), np.inf, dtype=np.float32)


def _as_queries(queries: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Queries as a float32 ``(q, d)`` array (one 1-D vector is one query); non-finite values refused."""
    q = np.asarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    if q.ndim != 2:
        raise ValueError(f"queries must be (q, d), got shape {q.shape}")
    if dim is not None and q.shape[1] != dim:
        raise ValueError(f"queries have dimension {q.shape[1]}, the vectors {dim}")
    if not np.isfinite(q).all():
        raise ValueError("queries contain NaN or infinity")
    return q


def _sort_rows(ids: np.ndarray, dist: np.ndarray) -> Neighbours:
    """Each row ascending by distance, ties by id (so answers do not depend on block order)."""
    order = np.lexsort((ids, dist), axis=-1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(dist, order, axis=1)


def _smallest(dist: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions and values of the ``kk`` smallest of each row of ``dist`` ``(q, B)``, in no order.

    ``argpartition`` of a whole row costs more than the product that made it. Instead: the
    ``kk``-th smallest of the minima of :data:`_SELECT_CHUNK`-wide chunks is an upper bound of
    the row's ``kk``-th smallest (``kk`` disjoint chunks each hold an element at most that
    small), so only the elements up to it, typically a few dozen, are ranked: one min-reduction
    and one comparison over the row. Exact, ties included; falls back to ``argpartition`` for
    short rows, or when ties leave too many candidates.
    """
    rows, width = dist.shape
    n_chunks = width // _SELECT_CHUNK
    if n_chunks >= 4 * kk:
        minima = np.minimum.reduceat(dist, np.arange(0, n_chunks * _SELECT_CHUNK, _SELECT_CHUNK), axis=1)
        bound = np.partition(minima, kk - 1, axis=1)[:, kk - 1 : kk]
        r, c = np.divmod(np.flatnonzero(dist <= bound), width)
        if r.shape[0] <= rows * (8 * kk + 256):
            d = dist[r, c]
            order = np.lexsort((d, r))
            r, c, d = r[order], c[order], d[order]
            rank = np.arange(r.shape[0]) - np.searchsorted(r, np.arange(rows))[r]
            keep = rank < kk
            return c[keep].reshape(rows, kk), d[keep].reshape(rows, kk)
    pos = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
    return pos, np.take_along_axis(dist, pos, axis=1)


def exact_search(
    queries: np.ndarray,
    vectors: np.ndarray,
    ids: np.ndarray,
    k: int,
    *,
    normalised: bool = False,
) -> Neighbours:
    """The ``k`` nearest ``vectors`` by cosine distance of each query, by brute force.

    The vectors are visited in blocks and only the best ``k`` of each query are kept between
    blocks, so memory stays at about :data:`~miso_runtime.constants.EXACT_SEARCH_BLOCK_ELEMENTS`
    similarities (plus a float32 copy of one block when ``vectors`` is not float32) whatever
    their number: a million vectors are searched without a million-row temporary.

    Parameters
    ----------
    queries : array_like, shape (q, d) or (d,)
        Query vectors, any length (they are normalised here; zero queries are at distance 1).
    vectors : array_like, shape (n, d)
        Vectors searched; not copied (a memory map works).
    ids : array_like, shape (n,)
        Row id of each vector, returned in place of its position.
    k : int
        Neighbours per query.
    normalised : bool
        The caller promises ``vectors`` are unit rows (or zero): their norms are not computed,
        which saves one pass over them.

    Returns
    -------
    ids : ndarray, int64, shape (q, k)
    distances : ndarray, float32, shape (q, k)
        Ascending per row (ties by id), padded with ``-1`` / ``inf`` when ``n < k``. A vector
        with NaN in it is never returned.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    vecs = np.asarray(vectors)
    row_ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    n = row_ids.shape[0]
    if vecs.ndim != 2 and not (vecs.size == 0 and n == 0):
        raise ValueError(f"vectors must be (n, d), got shape {vecs.shape}")
    if vecs.shape[0] != n:
        raise ValueError(f"{vecs.shape[0]} vectors but {n} ids")
    q = _as_queries(queries, vecs.shape[1] if vecs.ndim == 2 else None)
    n_queries = q.shape[0]
    out_ids, out_dist = _padding(n_queries, k)
    if k == 0 or n == 0 or n_queries == 0:
        return out_ids, out_dist

    qn = normalise(q)
    dim = q.shape[1]
    kk = min(k, n)
    budget = constants.EXACT_SEARCH_BLOCK_ELEMENTS
    # Queries in chunks (the running best k of each is kept between blocks), vectors in blocks:
    # one block's similarities and its float32 copy both stay within the budget.
    q_chunk = max(1, min(n_queries, 1024, budget // (4 * kk)))
    block = max(kk, min(budget // q_chunk, budget // max(dim, 1)))

    for q0 in range(0, n_queries, q_chunk):
        qc = qn[q0 : q0 + q_chunk]
        best_ids = np.empty((qc.shape[0], 0), dtype=np.int64)
        best_dist = np.empty((qc.shape[0], 0), dtype=np.float32)
        for s in range(0, n, block):
            vb = vecs[s : s + block]
            if vb.dtype != np.float32:
                vb = vb.astype(np.float32)
            dist = qc @ vb.T
            if not normalised:
                norms = np.sqrt(np.einsum("ij,ij->i", vb, vb))
                inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
                dist *= inv
            np.subtract(np.float32(1.0), dist, out=dist)
            np.nan_to_num(dist, copy=False, nan=np.inf)
            if dist.shape[1] > kk:
                pos, dist = _smallest(dist, kk)
            else:
                pos = np.broadcast_to(np.arange(dist.shape[1]), dist.shape)
            cand_ids = row_ids[s + pos]
            best_ids = np.concatenate([best_ids, cand_ids], axis=1)
            best_dist = np.concatenate([best_dist, dist], axis=1)
            if best_dist.shape[1] > kk:
                keep = np.argpartition(best_dist, kk - 1, axis=1)[:, :kk]
                best_ids = np.take_along_axis(best_ids, keep, axis=1)
                best_dist = np.take_along_axis(best_dist, keep, axis=1)
        best_ids, best_dist = _sort_rows(best_ids, best_dist)
        missing = ~np.isfinite(best_dist)
        best_ids[missing] = -1
        out_ids[q0 : q0 + qc.shape[0], :kk] = best_ids
        out_dist[q0 : q0 + qc.shape[0], :kk] = np.clip(best_dist, 0.0, 2.0)
    return out_ids, out_dist


def merge_neighbours(
    parts: Sequence[Neighbours],
    k: int,
    exclude: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Neighbours:
    """One neighbour list per query from several sources: union, one entry per id, ``k`` nearest.

    The same row id can come from two sources (a vector in both a per-day index and the tail
    while an index is being swapped, say); it is kept once, at its smallest distance, so it
    cannot crowd out a real neighbour.

    Parameters
    ----------
    parts : sequence of (ids, distances)
        Each ``(q, k_i)`` as returned by :func:`exact_search` or ``LoadedIndex.query``, all for the
        same ``q`` queries (``-1`` / ``inf`` padding allowed anywhere).
    k : int
        Neighbours kept per query.
    exclude : callable, optional
        Called once with the distinct ids found (1-D ``int64``); returns a boolean mask of the
        same shape, True for ids to leave out (the query's own epochs, say).

    Returns
    -------
    ids : ndarray, int64, shape (q, k)
    distances : ndarray, float32, shape (q, k)
        Ascending per row (ties by id), padded with ``-1`` / ``inf``. With no parts at all the
        number of queries is unknown and the shape is ``(0, k)``.
    """
    if k < 0:
        raise ValueError("k must be >= 0")
    if not parts:
        return _padding(0, k)
    all_ids, all_dist = [], []
    n_queries = np.asarray(parts[0][0]).shape[0]
    for part_ids, part_dist in parts:
        pi = np.asarray(part_ids, dtype=np.int64)
        pd = np.asarray(part_dist, dtype=np.float32)
        if pi.ndim != 2 or pi.shape != pd.shape or pi.shape[0] != n_queries:
            raise ValueError(f"every part must be two (q, k_i) arrays for the same q, got {pi.shape} and {pd.shape}")
        all_ids.append(pi)
        all_dist.append(pd)
    ids = np.concatenate(all_ids, axis=1)
    dist = np.concatenate(all_dist, axis=1)
    out_ids, out_dist = _padding(n_queries, k)
    if k == 0 or ids.size == 0:
        return out_ids, out_dist

    empty = (ids < 0) | ~np.isfinite(dist)
    if exclude is not None and not empty.all():
        distinct = np.unique(ids[~empty])
        drop = np.asarray(exclude(distinct), dtype=bool)
        if drop.shape != distinct.shape:
            raise ValueError(f"exclude returned shape {drop.shape} for {distinct.shape} ids")
        if drop.any():
            empty |= np.isin(ids, distinct[drop])
    ids = np.where(empty, -1, ids)
    dist = np.where(empty, np.float32(np.inf), dist)

    # Duplicates become neighbours once sorted by (id, distance): keep the first of each run.
    order = np.lexsort((dist, ids), axis=-1)
    ids = np.take_along_axis(ids, order, axis=1)
    dist = np.take_along_axis(dist, order, axis=1)
    dup = np.zeros(ids.shape, dtype=bool)
    dup[:, 1:] = (ids[:, 1:] == ids[:, :-1]) & (ids[:, 1:] >= 0)
    ids[dup] = -1
    dist[dup] = np.inf

    ids, dist = _sort_rows(ids, dist)
    width = min(k, ids.shape[1])
    out_ids[:, :width] = ids[:, :width]
    out_dist[:, :width] = dist[:, :width]
    return out_ids, out_dist

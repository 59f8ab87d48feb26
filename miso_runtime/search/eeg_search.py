"""EEG similarity search: which other moments look like the epochs of a range.

Where the vectors are searched: the global Annoy index (built by the ``analysis`` worker)
covers every vector up to its watermark; whatever was embedded since (the last five seconds
included) is the *tail*, kept in memory and searched exactly with numpy; the two answers are
merged. So a search always sees every embedded epoch, and a build that is running, was killed
or found corrupt never makes one disappear. While no global index exists (the first build, a
corrupt file being rebuilt) the per-day indices serve in its place, again with the exact tail.

Differences from the daemon, on purpose: the query range's own epochs are never neighbours
(the daemon returns each epoch as its own best match, and its range neighbours next), both the
plain and the streaming search honour ``deviceName``, and a streaming search stops within one
chunk of query epochs once its client has gone.

Runs in threadpool threads of the server (``run_blocking``): each thread reads SQLite over its
own connection, and the loaded indices are shared (Annoy queries are read-only). No lock is
taken: gevent's patched locks cannot be shared between the hub and native threads, so shared
state is only ever replaced by one assignment (two threads may load the same index twice,
which costs a little memory and nothing else).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import constants
from ..store.database import ConnectionPerThread
from ..store.embeddings import DAY_MS, EmbeddingRepository, VectorRows, day_start_ms, utc_day
from ..store.labels import LabelRepository
from .exact import exact_search, merge_neighbours
from .index_builder import encoder_dir, scope_dir
from .vector_index import IndexCorrupt, LoadedIndex, default_search_k, load_index

logger = logging.getLogger(__name__)

RequestBuild = Callable[[str, str], None]


@dataclass
class _Loaded:
    """One index folder as loaded: the index (None when empty or missing) and the CURRENT it came from."""

    index: LoadedIndex | None
    stamp: tuple[float, int] | None


@dataclass
class _EncoderIndices:
    global_index: _Loaded = field(default_factory=lambda: _Loaded(None, None))
    days: dict[str, _Loaded] = field(default_factory=dict)
    #: The exact-search tail and the id it starts after, replaced together (one assignment).
    tail: tuple[VectorRows, int] | None = None
    corrupt: set[str] = field(default_factory=set)


def _stamp(directory: Path) -> tuple[float, int] | None:
    try:
        stat = (directory / "CURRENT").stat()
    except OSError:
        return None
    return (stat.st_mtime, stat.st_size)


class EegSearch:
    """Range searches over one data dir's embeddings.

    Parameters
    ----------
    database_path : Path
        The shared SQLite file (each thread opens its own connection).
    data_dir : Path
        Where the index folders are.
    request_build : callable
        ``request_build(scope, encoder)`` asks the analysis worker for a build.
    """

    def __init__(self, database_path: Path, data_dir: Path, request_build: RequestBuild) -> None:
        self._database_path = database_path
        self._data_dir = data_dir
        self._request_build = request_build
        self._store = ConnectionPerThread(database_path)
        self._encoders: dict[str, _EncoderIndices] = {}
        self.building: set[tuple[str, str]] = set()
        self._dirty: set[str] = set()
        self._days_wanted: set[str] = set()
        self._scheduler: threading.Thread | None = None
        #: Chunks of query epochs searched since start (shows that a stream stops when its client leaves).
        self.chunks_searched = 0

    # --- store access -----------------------------------------------------------------------

    def _db(self) -> Any:
        return self._store.db()

    def embeddings(self) -> EmbeddingRepository:
        return EmbeddingRepository(self._db())

    def labels(self) -> LabelRepository:
        return LabelRepository(self._db())

    # --- indices ----------------------------------------------------------------------------

    def _state(self, encoder: str) -> _EncoderIndices:
        return self._encoders.setdefault(encoder, _EncoderIndices())

    def _load(self, encoder: str, scope: str, held: _Loaded) -> _Loaded:
        directory = scope_dir(self._data_dir, encoder, scope)
        stamp = _stamp(directory)
        if stamp == held.stamp:
            return held
        if stamp is None:
            return _Loaded(None, None)
        try:
            index = load_index(directory)
        except IndexCorrupt as exc:
            # Only marked here (this may be a threadpool thread, which must not touch the
            # worker's pipe lock); the scheduler asks for the rebuild within seconds.
            state = self._state(encoder)
            if scope not in state.corrupt:
                state.corrupt.add(scope)
                logger.warning("the %s index of %s is corrupt (%s); rebuilding it", scope, encoder, exc)
                self._dirty.add(encoder)
            return _Loaded(None, stamp)
        self._state(encoder).corrupt.discard(scope)
        return _Loaded(index, stamp)

    def request_build(self, scope: str, encoder: str) -> None:
        if (scope, encoder) in self.building:
            return
        self.building.add((scope, encoder))
        try:
            self._request_build(scope, encoder)
        except Exception as exc:  # noqa: BLE001 - the worker is down; the next check asks again
            logger.warning("index build of %s not requested: %s", scope, exc)
            self.building.discard((scope, encoder))

    def _segments(self, encoder: str) -> tuple[list[LoadedIndex], Callable[[VectorRows], np.ndarray], int]:
        """The indices to query, a mask of tail rows they do not cover, and the smallest watermark."""
        state = self._state(encoder)
        state.global_index = self._load(encoder, "global", state.global_index)
        index = state.global_index.index
        if index is not None or state.global_index.stamp is not None and "global" not in state.corrupt:
            watermark = index.meta.watermark if index is not None else 0
            return ([index] if index is not None else []), (lambda rows: rows.ids > watermark), watermark
        days_dir = encoder_dir(self._data_dir, encoder) / "days"
        names = sorted(p.name for p in days_dir.iterdir()) if days_dir.is_dir() else []
        for day in names:
            state.days[day] = self._load(encoder, f"day:{day}", state.days.get(day, _Loaded(None, None)))
        loaded = {day: held.index for day, held in list(state.days.items()) if held.index is not None}
        # Watermark per day number (``start_ms // DAY_MS``), so rows are mapped without a string per row.
        marks = {day_start_ms(day) // DAY_MS: idx.meta.watermark for day, idx in loaded.items()}
        numbers = np.array(sorted(marks), dtype=np.int64)
        limits = np.array([marks[n] for n in numbers], dtype=np.int64)

        def uncovered(rows: VectorRows) -> np.ndarray:
            day = rows.start_ms // DAY_MS
            at = np.clip(np.searchsorted(numbers, day), 0, max(0, len(numbers) - 1))
            indexed = (numbers[at] == day) if len(numbers) else np.zeros(len(day), dtype=bool)
            return ~indexed | (rows.ids > np.where(indexed, limits[at] if len(limits) else 0, 0))

        # Days without an index have rows below any other day's watermark: read the tail from the start.
        return list(loaded.values()), uncovered, 0

    def _tail(self, encoder: str, after: int) -> VectorRows:
        """Vectors with ids above ``after``, read incrementally (only rows new since the last call)."""
        state = self._state(encoder)
        held = state.tail
        if held is None or after < held[1]:
            tail = self.embeddings().after(encoder, after)
        else:
            tail = held[0]
            known_max = int(tail.ids.max()) if len(tail) else held[1]
            fresh = self.embeddings().after(encoder, max(known_max, after))
            keep = tail.ids > after
            if not keep.all():
                tail = _take(tail, np.nonzero(keep)[0])
            if len(fresh):
                tail = _concat(tail, fresh)
        state.tail = (tail, after)
        return tail

    def tail_size(self, encoder: str) -> int:
        """Vectors the indices do not cover yet (searched exactly)."""
        _segments, uncovered, low = self._segments(encoder)
        tail = self._tail(encoder, low)
        return int(uncovered(tail).sum()) if len(tail) else 0

    def start(self) -> None:
        """Start the scheduler thread (a greenlet in the server: it may send to the worker)."""
        if self._scheduler is None:
            self._scheduler = threading.Thread(target=self._schedule_loop, name="search-index", daemon=True)
            self._scheduler.start()

    def maybe_schedule_soon(self, encoder: str) -> None:
        """Note that vectors of ``encoder`` arrived; the scheduler looks within a few seconds."""
        self._dirty.add(encoder)

    def _schedule_loop(self) -> None:
        while True:
            time.sleep(constants.SEARCH_SCHEDULE_INTERVAL_S)
            dirty, self._dirty = self._dirty, set()
            for encoder in dirty:
                try:
                    self.maybe_schedule(encoder)
                    if encoder in self._days_wanted:
                        self._days_wanted.discard(encoder)
                        self.schedule_days(encoder)
                except Exception:  # noqa: BLE001 - the next batch of vectors tries again
                    logger.exception("checking the search index of %s failed", encoder)

    def maybe_schedule(self, encoder: str) -> None:
        """Ask for a global build once enough vectors wait in the tail, or when there is none yet.

        Without a usable global index it only asks whether any vector exists (reading them all
        for the tail would hold the hub for seconds on a large store).
        """
        state = self._state(encoder)
        for scope in sorted(state.corrupt - {"global"}):
            self.request_build(scope, encoder)
        if any(key[1] == encoder for key in self.building):
            return
        usable = _stamp(scope_dir(self._data_dir, encoder, "global")) is not None and "global" not in state.corrupt
        if not usable:
            if self.embeddings().max_id(encoder) > 0:
                self.request_build("global", encoder)
            return
        if self.tail_size(encoder) >= constants.SEARCH_TAIL_REBUILD_ROWS:
            self.request_build("global", encoder)

    def worker_started(self, encoder: str) -> None:
        """The analysis worker (re)started: builds it had queued are gone; the scheduler asks again."""
        self.building.clear()
        self._days_wanted.add(encoder)
        self._dirty.add(encoder)

    def schedule_days(self, encoder: str) -> None:
        """Ask for the day index of every finished UTC day that has none (after a global build)."""
        today = utc_day(int(time.time() * 1000))
        days_dir = encoder_dir(self._data_dir, encoder) / "days"
        for day in self.embeddings().days(encoder):
            if day < today and not (days_dir / day / "CURRENT").is_file():
                self.request_build(f"day:{day}", encoder)

    def build_finished(self, scope: str, encoder: str) -> None:
        self.building.discard((scope, encoder))
        if scope == "global":
            self.schedule_days(encoder)

    # --- searching --------------------------------------------------------------------------

    def search_range(
        self,
        encoder: str,
        start_utc: int,
        end_utc: int,
        k: int,
        ef: int,
        device_name: str | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Iterator[dict[str, Any]]:
        """Yield ``started``, then one ``result`` per query epoch in time order, then ``done``.

        Each ``result`` carries the daemon's ``QueryEntry`` (``timestamp``, ``timestamp_unix``,
        ``neighbors``); ``started`` has ``query_count`` and ``searched_days``.
        """
        start_ms, end_ms = start_utc * 1000, end_utc * 1000 + 999
        embeddings = self.embeddings()
        session_ids = self._sessions_of_device(device_name) if device_name else None
        queries = embeddings.in_range(encoder, start_ms, end_ms, session_ids)
        if len(queries) > constants.SEARCH_MAX_QUERY_EPOCHS:
            queries = _take(queries, np.arange(constants.SEARCH_MAX_QUERY_EPOCHS))
        segments, uncovered, low = self._segments(encoder)
        tail = self._tail(encoder, low)
        if len(tail):
            tail = _take(tail, np.nonzero(uncovered(tail))[0])
        days = self._days(segments, tail, embeddings, encoder)
        yield {"kind": "started", "query_count": len(queries), "searched_days": days}
        excluded = np.unique(queries.ids)
        ef = max(ef, k)
        done = 0
        for offset in range(0, len(queries), constants.SEARCH_STREAM_CHUNK):
            if should_stop():
                return
            chunk = _take(queries, np.arange(offset, min(len(queries), offset + constants.SEARCH_STREAM_CHUNK)))
            ids, dist = self._neighbours(chunk.vectors, segments, tail, k, ef, excluded)
            self.chunks_searched += 1
            for entry in self._entries(chunk, ids, dist):
                done += 1
                yield {"kind": "result", "entry": entry, "done_count": done}
        yield {"kind": "done", "total": len(queries)}

    @staticmethod
    def _days(
        segments: list[LoadedIndex], tail: VectorRows, embeddings: EmbeddingRepository, encoder: str
    ) -> list[str]:
        """UTC days searched: those the indices recorded at build time, and the tail's."""
        days: set[str] = set()
        for segment in segments:
            recorded = segment.meta.extra.get("days")
            if not isinstance(recorded, list):  # an index built before days were recorded
                return embeddings.days(encoder)
            days.update(str(day) for day in recorded)
        days.update(utc_day(int(day) * DAY_MS) for day in np.unique(tail.start_ms // DAY_MS))
        return sorted(days)

    def _neighbours(
        self,
        vectors: np.ndarray,
        segments: list[LoadedIndex],
        tail: VectorRows,
        k: int,
        ef: int,
        excluded: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest per query row over the indices and the exact tail, query-range epochs left out."""

        def drop(ids: np.ndarray) -> np.ndarray:
            return np.isin(ids, excluded, assume_unique=False)

        fetch = k + min(len(excluded), max(k, 16))
        while True:
            # About the breadth of a k search: the extra results mostly stand in for excluded ones.
            parts = [
                seg.query(vectors, fetch, search_k=default_search_k(max(k, fetch // 3)))
                for seg in segments
                if seg.meta.n_items
            ]
            if len(tail):
                parts.append(exact_search(vectors, tail.vectors, tail.ids, fetch))
            ids, dist = merge_neighbours(parts, k, exclude=drop)
            short = (ids < 0).any(axis=1) if ids.size else np.zeros(len(vectors), dtype=bool)
            available = sum(seg.meta.n_items for seg in segments) + len(tail)
            if not short.any() or fetch >= k + len(excluded) or fetch >= available:
                return ids, dist
            fetch = min(k + len(excluded), fetch * 4)

    def _entries(self, queries: VectorRows, ids: np.ndarray, dist: np.ndarray) -> list[dict[str, Any]]:
        embeddings, labels = self.embeddings(), self.labels()
        found = embeddings.describe(ids.ravel().tolist())
        times = sorted({info["start_utc_ms"] // 1000 for info in found.values()})
        covering = labels.covering(times)
        entries = []
        for row, start_ms in enumerate(queries.start_ms):
            neighbors = []
            for nid, d in zip(ids[row], dist[row], strict=True):
                info = found.get(int(nid))
                if info is None:
                    continue
                neighbors.append(_neighbor(int(nid), float(d), info, covering.get(info["start_utc_ms"] // 1000, [])))
            entries.append(
                {"timestamp": int(start_ms), "timestamp_unix": int(start_ms) // 1000, "neighbors": neighbors}
            )
        return entries

    def _sessions_of_device(self, device_name: str) -> list[str]:
        rows = (
            self._db()
            .execute("SELECT id FROM eeg_sessions WHERE board_name = ? OR device_id = ?", [device_name, device_name])
            .fetchall()
        )
        return [row[0] for row in rows]

    def search(self, encoder: str, start_utc: int, end_utc: int, k: int, ef: int, device_name: str | None) -> dict:
        """The daemon's ``SearchResult`` for one range (every event of :meth:`search_range` gathered)."""
        results: list[dict[str, Any]] = []
        started: dict[str, Any] = {"query_count": 0, "searched_days": []}
        for event in self.search_range(encoder, start_utc, end_utc, k, ef, device_name):
            if event["kind"] == "started":
                started = event
            elif event["kind"] == "result":
                results.append(event["entry"])
        return {
            "start_utc": start_utc,
            "end_utc": end_utc,
            "k": k,
            "ef": ef,
            "query_count": started["query_count"],
            "searched_days": started["searched_days"],
            "results": results,
            "encoder": encoder,
        }

    # --- stats ------------------------------------------------------------------------------

    def global_stats(self, encoder: str) -> dict[str, Any]:
        """``/v1/search/global-index/stats``: the daemon's fields, and what our index really holds."""
        directory = scope_dir(self._data_dir, encoder, "global")
        state = self._state(encoder)
        state.global_index = self._load(encoder, "global", state.global_index)
        index = state.global_index.index
        size = _folder_bytes(directory)
        meta = index.meta if index is not None else None
        return {
            "total_embeddings": meta.n_items if meta else 0,
            "file_size_bytes": size,
            "path": str(directory),
            "ready": meta is not None,
            "encoder": encoder,
            "dim": meta.dim if meta else None,
            "watermark": meta.watermark if meta else 0,
            "built_at_ms": meta.built_at_ms if meta else None,
            "n_trees": meta.n_trees if meta else None,
            "unindexed": self.tail_size(encoder),
            "building": ("global", encoder) in self.building,
            "corrupt": "global" in state.corrupt,
            "stored_embeddings": self.embeddings().count(encoder),
            "days_indexed": sorted(
                p.name for p in (encoder_dir(self._data_dir, encoder) / "days").glob("*") if (p / "CURRENT").is_file()
            ),
            "chunks_searched": self.chunks_searched,
        }


def _folder_bytes(directory: Path) -> int:
    """Bytes of the files under ``directory``; files a running build renames or removes meanwhile are skipped."""
    total = 0
    for folder, _dirs, files in os.walk(directory):  # os.walk skips folders that vanish under it
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except OSError:
                continue
    return total


def _take(rows: VectorRows, index: np.ndarray) -> VectorRows:
    return VectorRows(rows.ids[index], rows.epoch_ids[index], rows.start_ms[index], rows.vectors[index])


def _concat(a: VectorRows, b: VectorRows) -> VectorRows:
    if not len(a):
        return b
    return VectorRows(
        np.concatenate([a.ids, b.ids]),
        np.concatenate([a.epoch_ids, b.epoch_ids]),
        np.concatenate([a.start_ms, b.start_ms]),
        np.concatenate([a.vectors, b.vectors]),
    )


_METRIC_KEYS = ("relaxation", "engagement", "faa", "rel_alpha", "rel_beta", "rel_theta", "rel_delta", "rel_gamma")


def _neighbor(embedding_id: int, distance: float, info: dict[str, Any], labels: list[Any]) -> dict[str, Any]:
    start_ms = int(info["start_utc_ms"])
    metrics = {key: round(float(info[key]), 6) for key in _METRIC_KEYS if info.get(key) is not None}
    out: dict[str, Any] = {
        "hnsw_id": embedding_id,
        "timestamp": start_ms,
        "timestamp_unix": start_ms // 1000,
        "distance": round(max(0.0, distance), 6),
        "date": utc_day(start_ms),
        "device_id": info["device_id"],
        "device_name": info["device_name"],
        "session_id": info["session_id"],
        "labels": [
            {
                "id": label.id,
                "eeg_start": label.eeg_start,
                "eeg_end": label.eeg_end,
                "label_start": label.label_start,
                "label_end": label.label_end,
                "text": label.text,
            }
            for label in labels
        ],
    }
    if metrics:
        out["metrics"] = metrics
    return out

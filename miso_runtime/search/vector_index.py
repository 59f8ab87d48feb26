"""Annoy index files of EEG similarity search: built in a worker process, read by the server.

One index lives in one folder of its own::

    directory/
        CURRENT               JSON naming the build in use, with the size and SHA-256 of its files
        .lock                 flock held by the (one) build running
        <build_id>/index.ann  Annoy's file, metric "angular"; item i is the i-th vector of the build
        <build_id>/ids.npy    int64 row id of each item
        .tmp-<build_id>/      a build being written, or left behind by one that was killed

Why it is laid out so
---------------------
A build writes everything into a fresh ``.tmp-`` folder, fsyncs it, renames it to its build id
and only then replaces ``CURRENT`` (temp file, fsync, ``os.replace``, fsync of the folder). A
build killed at any point (``kill -9`` included) therefore leaves ``CURRENT`` naming the previous,
complete build, and a reader never sees half a file; the next build deletes what the killed one
left. Old builds are deleted right after the swap: a reader that still has one open keeps
answering, since an unlinked file stays readable through its memory map (POSIX).

``CURRENT`` records the size and SHA-256 of every file, and :func:`load_index` checks them
before Annoy maps the file. Annoy itself only checks that a file's size is a multiple of its node
size; a file with overwritten bytes would be mapped as is and could send a query outside the
mapping (a segfault, or garbage neighbours). The check costs one read of the file at load (about
0.3 s for the 340 MB index of 1 M vectors of dimension 32) and turns every such file into
:class:`IndexCorrupt`, so the caller rebuilds it.

Threads and the GIL
-------------------
Annoy's ``get_nns_by_vector`` releases the GIL for the search itself (``Py_BEGIN_ALLOW_THREADS``
around it) and holds it only to read the query (a list of ``d`` floats) and to build the result
lists: a few microseconds of a query of about half a millisecond. Measured on a busy 2-core
machine: a pure-Python thread kept ticking (gaps of at most 8 ms) through 60-70 ms Annoy calls.
Releasing the GIL does not yield to gevent, though. Under ``monkey.patch_all()``, 20 long queries
run by ``hub.threadpool.apply`` took 574 ms while a greenlet sleeping 1 ms at a time kept
running (243 wake-ups, longest gap 8.8 ms); the same queries called on the hub blocked it for
all of their 539 ms. So the server must query from its threadpool (real OS threads); then the
hub keeps serving, and several threads can query one :class:`LoadedIndex` at once (the mapping
is read-only and Annoy keeps a search's state on the stack). A batch of queries loops over
Annoy in Python, giving the GIL back between rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from annoy import AnnoyIndex

from .. import constants
from ..native_lock import native_lock
from .exact import Neighbours, _as_queries, _padding, normalise

logger = logging.getLogger(__name__)

#: File names inside an index folder and a build folder (see the module docstring).
CURRENT_NAME = "CURRENT"
LOCK_NAME = ".lock"
INDEX_FILE = "index.ann"
IDS_FILE = "ids.npy"
#: Version of the CURRENT document; a different one is read as corrupt (and rebuilt).
FORMAT_VERSION = 1
#: Annoy metric: ``sqrt(2 - 2 cos)`` between the vectors, i.e. ``sqrt(2 * cosine distance)``.
METRIC = "angular"

_TMP_PREFIX = ".tmp-"
_CURRENT_TMP_PREFIX = "CURRENT.tmp-"
_BUILD_ID_RE = re.compile(r"\d{13}-[0-9a-f]{8}")
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
#: Rows normalised and handed to Annoy per step of a build (``should_stop`` is asked between
#: steps; one step's Python lists of floats stay a few MB).
_ADD_BLOCK_ROWS = 8192
#: Seed of Annoy's random hyperplanes (a single-threaded build is then reproducible).
_ANNOY_SEED = 20_240_601
#: How often :func:`load_index` reads CURRENT again when builds keep replacing the one it read.
_LOAD_ATTEMPTS = 5
#: A CURRENT longer than this is not ours.
_MAX_CURRENT_BYTES = 1 << 20
#: Annoy takes ``search_k`` and item counts as C ints.
_INT32_MAX = 2**31 - 1


class IndexCorrupt(Exception):
    """An index folder whose files cannot be trusted: delete nothing, just build it again."""


class BuildCancelled(Exception):
    """``should_stop`` asked a build to stop; the previous build still serves."""


class IndexClosed(RuntimeError):
    """A query on a :class:`LoadedIndex` after :meth:`LoadedIndex.close`."""


class _Vanished(Exception):
    """A file named by CURRENT is gone: a newer build may have replaced it while it was read."""


@dataclass(frozen=True)
class IndexMeta:
    """What one build holds, as recorded in CURRENT.

    Attributes
    ----------
    build_id : str
        Folder name of the build: ``<built_at_ms, 13 digits>-<8 hex digits>``.
    encoder : str
        Encoder whose embeddings are indexed.
    dim : int
        Vector dimension.
    n_items : int
        Vectors in the index (0 for an empty one, which has no Annoy file).
    watermark : int
        Largest row id the build covers; rows above it are for the exact tail.
    built_at_ms : int
        UNIX time of the build, milliseconds.
    n_trees : int
        Annoy trees it was built with.
    extra : dict
        The caller's JSON-able notes (scope, day, ...), as read back from JSON.
    """

    build_id: str
    encoder: str
    dim: int
    n_items: int
    watermark: int
    built_at_ms: int
    n_trees: int
    extra: dict = field(default_factory=dict)


def default_search_k(k: int) -> int:
    """Annoy ``search_k`` of a query that gives none: ``max(ANNOY_SEARCH_K_MIN, ANNOY_SEARCH_K_PER_RESULT * k)``."""
    return min(_INT32_MAX, max(constants.ANNOY_SEARCH_K_MIN, constants.ANNOY_SEARCH_K_PER_RESULT * k))


class LoadedIndex:
    """One build mapped read-only (Annoy's mmap, no prefault), shared by any number of threads.

    Queries may run concurrently. :meth:`close` may be called while queries run: the mapping is
    released when the last of them returns, and later queries raise :class:`IndexClosed`.
    """

    def __init__(self, meta: IndexMeta, build_dir: Path, annoy_index: AnnoyIndex | None, ids: np.ndarray) -> None:
        self.meta = meta
        #: Folder of the build (it may already be deleted: the mapping outlives the files).
        self.build_dir = build_dir
        self._annoy = annoy_index
        self._ids = ids
        self._lock = native_lock()
        self._active = 0
        self._closed = False

    def __repr__(self) -> str:
        m = self.meta
        return f"<LoadedIndex {m.encoder} {m.build_id} n={m.n_items} dim={m.dim}{' closed' if self._closed else ''}>"

    def __enter__(self) -> LoadedIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def query(self, vectors: np.ndarray, k: int, *, search_k: int | None = None) -> Neighbours:
        """The ``k`` approximate nearest items of each query row, by cosine distance.

        Parameters
        ----------
        vectors : array_like, shape (q, d) or (d,)
            Queries, any length (Annoy's angular metric ignores it; a zero query is at distance 1
            from everything). NaN or infinity is refused: Annoy's priority queue would be
            undefined with NaN margins.
        k : int
            Neighbours per query.
        search_k : int, optional
            Candidates Annoy gathers before ranking them exactly: more is slower and better;
            default :func:`default_search_k`; ``-1`` is Annoy's own default (``n_trees * k``).

        Returns
        -------
        ids : ndarray, int64, shape (q, k)
            Row ids, nearest first; ``-1`` pads a row when the index has fewer than ``k`` items.
        distances : ndarray, float32, shape (q, k)
            Cosine distances ``1 - cos`` (Annoy's ``d`` converted: ``d**2 / 2``), ascending;
            ``inf`` padding.
        """
        q = _as_queries(vectors, self.meta.dim)
        if k < 0:
            raise ValueError("k must be >= 0")
        if search_k is None:
            sk = default_search_k(k)
        else:
            sk = int(search_k)
            if sk != -1 and sk < 1:
                raise ValueError("search_k must be positive (or -1 for Annoy's default)")
            sk = min(sk, _INT32_MAX)
        out_ids, out_dist = _padding(q.shape[0], k)
        with self._lock:
            if self._closed:
                raise IndexClosed(f"{self!r} is closed")
            self._active += 1
        try:
            annoy = self._annoy
            if annoy is None or k == 0 or q.shape[0] == 0:
                return out_ids, out_dist
            kk = min(k, self.meta.n_items)
            get = annoy.get_nns_by_vector
            # Lists, not numpy rows: Annoy reads the vector item by item through the sequence
            # protocol, which is several times slower on numpy scalars.
            for r, row in enumerate(q.tolist()):
                items, dists = get(row, kk, sk, True)
                m = len(items)
                if m:
                    out_ids[r, :m] = items
                    out_dist[r, :m] = dists
        finally:
            self._leave()
        found = out_ids >= 0
        out_ids[found] = self._ids[out_ids[found]]
        d = out_dist[found]
        out_dist[found] = np.minimum(d * d * np.float32(0.5), np.float32(2.0))
        return out_ids, out_dist

    def _leave(self) -> None:
        with self._lock:
            self._active -= 1
            annoy = None
            if self._closed and self._active == 0:
                annoy, self._annoy = self._annoy, None
        if annoy is not None:
            annoy.unload()

    def close(self) -> None:
        """Release the mapping (now, or when the queries running return); idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            annoy = None
            if self._active == 0:
                annoy, self._annoy = self._annoy, None
        if annoy is not None:
            annoy.unload()


# --- Reading ---------------------------------------------------------------------------------


def _read_current_bytes(directory: Path) -> bytes | None:
    try:
        with open(directory / CURRENT_NAME, "rb") as f:
            data = f.read(_MAX_CURRENT_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise IndexCorrupt(f"{directory / CURRENT_NAME} is a directory") from None
    if len(data) > _MAX_CURRENT_BYTES:
        raise IndexCorrupt(f"{directory / CURRENT_NAME} is larger than {_MAX_CURRENT_BYTES} bytes")
    return data


def _int_field(doc: dict, name: str, minimum: int | None = None) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or (minimum is not None and value < minimum):
        raise IndexCorrupt(f"CURRENT: bad {name!r}: {value!r}")
    return value


def _parse_current(raw: bytes, where: Path) -> tuple[IndexMeta, dict[str, tuple[int, str]]]:
    """CURRENT's bytes -> its meta and ``{file name: (size, sha256)}``; anything unexpected is corrupt."""
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IndexCorrupt(f"{where}: CURRENT is not JSON ({exc})") from None
    try:
        if not isinstance(doc, dict):
            raise IndexCorrupt("CURRENT is not a JSON object")
        if doc.get("format") != FORMAT_VERSION or doc.get("metric") != METRIC:
            raise IndexCorrupt(f"CURRENT: format {doc.get('format')!r} / metric {doc.get('metric')!r} not ours")
        build_id, encoder, extra = doc.get("build_id"), doc.get("encoder"), doc.get("extra")
        if not isinstance(build_id, str) or not _BUILD_ID_RE.fullmatch(build_id):
            raise IndexCorrupt(f"CURRENT: bad build_id {build_id!r}")
        if not isinstance(encoder, str) or not isinstance(extra, dict):
            raise IndexCorrupt("CURRENT: bad encoder or extra")
        meta = IndexMeta(
            build_id=build_id,
            encoder=encoder,
            dim=_int_field(doc, "dim", 1),
            n_items=_int_field(doc, "n_items", 0),
            watermark=_int_field(doc, "watermark"),
            built_at_ms=_int_field(doc, "built_at_ms", 0),
            n_trees=_int_field(doc, "n_trees", 1),
            extra=extra,
        )
        listed = doc.get("files")
        expected = {IDS_FILE, INDEX_FILE} if meta.n_items else {IDS_FILE}
        if not isinstance(listed, dict) or set(listed) != expected:
            raise IndexCorrupt(f"CURRENT: files {listed!r}, expected {sorted(expected)}")
        files: dict[str, tuple[int, str]] = {}
        for name, info in listed.items():
            if not isinstance(info, dict):
                raise IndexCorrupt(f"CURRENT: bad entry for {name}")
            digest = info.get("sha256")
            if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
                raise IndexCorrupt(f"CURRENT: bad sha256 for {name}")
            files[name] = (_int_field(info, "size", 0), digest)
    except IndexCorrupt as exc:
        raise IndexCorrupt(f"{where}: {exc}") from None
    return meta, files


def read_current(directory: Path) -> IndexMeta | None:
    """The meta of the build CURRENT names, without opening it (cheap: one small JSON file).

    Lets a reader see whether a newer build exists before paying for :func:`load_index`.

    Raises
    ------
    IndexCorrupt
        CURRENT exists but is not a valid document.
    """
    directory = Path(directory)
    raw = _read_current_bytes(directory)
    return None if raw is None else _parse_current(raw, directory)[0]


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _open_build(directory: Path, meta: IndexMeta, files: dict[str, tuple[int, str]], verify: bool) -> LoadedIndex:
    build_dir = directory / meta.build_id
    for name, (size, digest) in files.items():
        path = build_dir / name
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                raise IndexCorrupt(f"{path} is not a regular file")
            if st.st_size != size:
                raise IndexCorrupt(f"{path} has {st.st_size} bytes, CURRENT says {size}")
            if verify and _sha256(path) != digest:
                raise IndexCorrupt(f"{path}: SHA-256 differs from CURRENT's")
        except FileNotFoundError:
            raise _Vanished(str(path)) from None

    ids_path = build_dir / IDS_FILE
    try:
        ids = np.load(ids_path, allow_pickle=False)
    except FileNotFoundError:
        raise _Vanished(str(ids_path)) from None
    except (ValueError, OSError, EOFError) as exc:
        raise IndexCorrupt(f"{ids_path}: not a numpy array ({exc})") from None
    if ids.dtype != np.int64 or ids.shape != (meta.n_items,):
        raise IndexCorrupt(f"{ids_path}: {ids.dtype} {ids.shape}, expected int64 ({meta.n_items},)")

    annoy_index = None
    if meta.n_items:
        path = build_dir / INDEX_FILE
        annoy_index = AnnoyIndex(meta.dim, METRIC)
        try:
            annoy_index.load(str(path), prefault=False)
        except OSError as exc:
            # Annoy keeps its file descriptor when it refuses a file; unload closes it.
            annoy_index.unload()
            if not path.exists():
                raise _Vanished(str(path)) from None
            raise IndexCorrupt(f"{path}: Annoy refuses it ({exc})") from None
        if annoy_index.get_n_items() != meta.n_items:
            found = annoy_index.get_n_items()
            annoy_index.unload()
            raise IndexCorrupt(f"{path}: Annoy finds {found} items, CURRENT says {meta.n_items}")
    return LoadedIndex(meta, build_dir, annoy_index, ids)


def load_index(directory: Path, *, verify: bool = True) -> LoadedIndex | None:
    """Open the build CURRENT names, read-only (memory-mapped; nothing is read in advance).

    Parameters
    ----------
    directory : Path
        The index folder (as given to :func:`build_index`).
    verify : bool
        Check the SHA-256 of every file against CURRENT (one read of the files). Without it
        only the sizes are checked, and a file corrupted in place may crash a later query.

    Returns
    -------
    LoadedIndex or None
        None when there is no CURRENT (nothing built yet).

    Raises
    ------
    IndexCorrupt
        CURRENT is not valid, a file it names is missing or differs from it, or Annoy refuses
        the file: rebuild. A build swapped in while this one was being opened is not an error
        (CURRENT is read again).
    """
    directory = Path(directory)
    for _ in range(_LOAD_ATTEMPTS):
        raw = _read_current_bytes(directory)
        if raw is None:
            return None
        meta, files = _parse_current(raw, directory)
        try:
            return _open_build(directory, meta, files, verify)
        except _Vanished as exc:
            if _read_current_bytes(directory) == raw:
                raise IndexCorrupt(f"{directory}: {exc} (named by CURRENT) is missing") from None
            logger.debug(
                "index %s: build %s replaced while being opened; reading CURRENT again", directory, meta.build_id
            )
    raise IndexCorrupt(f"{directory}: CURRENT changed {_LOAD_ATTEMPTS} times while its build was being opened")


# --- Building --------------------------------------------------------------------------------


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (where the platform supports it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _seal(path: Path) -> dict[str, Any]:
    """fsync a written file, then its size and SHA-256 as CURRENT records them."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        size = os.fstat(f.fileno()).st_size
    return {"size": size, "sha256": digest}


@contextlib.contextmanager
def _build_lock(directory: Path) -> Iterator[None]:
    """One build per folder at a time (a second waits); the kernel drops the lock of a killed one."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_stale(directory: Path, keep: str | None) -> None:
    """Delete what killed builds left (``.tmp-`` folders, CURRENT temp files) and, given ``keep``,
    every other build folder. Only names this module makes are touched."""
    for entry in os.scandir(directory):
        name = entry.name
        stale = name.startswith(_TMP_PREFIX) or name.startswith(_CURRENT_TMP_PREFIX)
        old = keep is not None and name != keep and _BUILD_ID_RE.fullmatch(name) is not None
        if not (stale or old):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            logger.debug("index %s: removed %s %s", directory, "stale" if stale else "old", name)
        except OSError as exc:
            logger.warning("index %s: cannot remove %s: %s", directory, name, exc)


def _current_names(directory: Path, build_id: str) -> bool:
    """Whether CURRENT names ``build_id`` (False when missing or unreadable)."""
    try:
        meta = read_current(directory)
    except (IndexCorrupt, OSError):
        return False
    return meta is not None and meta.build_id == build_id


def _check_stop(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise BuildCancelled("index build stopped on request")


def _build_input(ids: np.ndarray, vectors: np.ndarray, watermark: int) -> tuple[np.ndarray, np.ndarray]:
    """Validated ``(ids int64 (n,), vectors (n, d))``: refused here rather than as a broken index."""
    row_ids = np.asarray(ids)
    if row_ids.ndim != 1:
        raise ValueError(f"ids must be 1-D, got shape {row_ids.shape}")
    if row_ids.size and not np.issubdtype(row_ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {row_ids.dtype}")
    row_ids = row_ids.astype(np.int64, copy=False)
    vecs = np.asarray(vectors)
    if vecs.ndim != 2 or vecs.shape[1] < 1:
        raise ValueError(f"vectors must be (n, d) with d >= 1, got shape {vecs.shape}")
    if not np.issubdtype(vecs.dtype, np.floating) and not np.issubdtype(vecs.dtype, np.integer):
        raise ValueError(f"vectors must be real numbers, got {vecs.dtype}")
    n = vecs.shape[0]
    if row_ids.shape[0] != n:
        raise ValueError(f"{n} vectors but {row_ids.shape[0]} ids")
    if n > _INT32_MAX:
        raise ValueError(f"Annoy indexes at most {_INT32_MAX} items")
    if n:
        if not np.isfinite(vecs).all():
            raise ValueError("vectors contain NaN or infinity")
        if row_ids.min() < 0:
            raise ValueError("row ids must be >= 0 (-1 marks padding)")
        if np.unique(row_ids).shape[0] != n:
            raise ValueError("row ids must be distinct")
        if int(row_ids.max()) > watermark:
            raise ValueError(f"watermark {watermark} is below the largest row id {int(row_ids.max())}")
    return row_ids, vecs


def _write_build(
    build_dir: Path, ids: np.ndarray, vectors: np.ndarray, n_trees: int, should_stop: Callable[[], bool] | None
) -> dict[str, dict[str, Any]]:
    """Write (and fsync) the files of one build into ``build_dir``; returns CURRENT's file entries."""
    n, dim = vectors.shape
    files: dict[str, dict[str, Any]] = {}
    if n:
        index = AnnoyIndex(dim, METRIC)
        index.set_seed(_ANNOY_SEED)
        for start in range(0, n, _ADD_BLOCK_ROWS):
            _check_stop(should_stop)
            block = normalise(vectors[start : start + _ADD_BLOCK_ROWS])
            for i, row in enumerate(block.tolist(), start):
                index.add_item(i, row)
        _check_stop(should_stop)
        jobs = max(1, min(constants.ANNOY_BUILD_JOBS, os.cpu_count() or 1))
        index.build(n_trees, n_jobs=jobs)  # releases the GIL; cannot be interrupted
        _check_stop(should_stop)
        path = build_dir / INDEX_FILE
        index.save(str(path))
        index.unload()
        files[INDEX_FILE] = _seal(path)
    ids_path = build_dir / IDS_FILE
    with open(ids_path, "wb") as f:
        np.save(f, ids, allow_pickle=False)
    files[IDS_FILE] = _seal(ids_path)
    return files


def _write_current(directory: Path, meta: IndexMeta, files: dict[str, dict[str, Any]]) -> None:
    """Replace CURRENT atomically and durably: temp file, fsync, ``os.replace``, fsync the folder."""
    doc = {
        "format": FORMAT_VERSION,
        "metric": METRIC,
        "build_id": meta.build_id,
        "encoder": meta.encoder,
        "dim": meta.dim,
        "n_items": meta.n_items,
        "watermark": meta.watermark,
        "built_at_ms": meta.built_at_ms,
        "n_trees": meta.n_trees,
        "extra": meta.extra,
        "files": files,
    }
    tmp = directory / f"{_CURRENT_TMP_PREFIX}{meta.build_id}"
    with open(tmp, "wb") as f:
        f.write(json.dumps(doc, indent=1, sort_keys=True).encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, directory / CURRENT_NAME)
    _fsync_dir(directory)


def build_index(
    directory: Path,
    ids: np.ndarray,
    vectors: np.ndarray,
    *,
    encoder: str,
    watermark: int,
    n_trees: int | None = None,
    extra: dict | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> IndexMeta:
    """Build a new index of ``vectors`` in ``directory`` and swap it in atomically.

    Readers keep using the previous build until they load this one; a build that fails, is
    stopped or is killed leaves the previous one in place (see the module docstring).

    Parameters
    ----------
    directory : Path
        The index folder (created if missing); one index per folder.
    ids : array_like of int, shape (n,)
        Row id of each vector: distinct, ``>= 0``.
    vectors : array_like, shape (n, d)
        The vectors, any length (normalised here; zero rows stay zero). ``n = 0`` makes a valid
        empty index (``d`` still gives its dimension).
    encoder : str
        Encoder the vectors come from (recorded).
    watermark : int
        Largest row id covered (recorded); must be ``>= max(ids)``.
    n_trees : int, optional
        Annoy trees; default :data:`~miso_runtime.constants.ANNOY_N_TREES`.
    extra : dict, optional
        JSON-able notes recorded in CURRENT and returned in :attr:`IndexMeta.extra`.
    should_stop : callable, optional
        Asked between steps (adding every few thousand vectors, before and after Annoy's tree
        build, which itself cannot be interrupted, and before the swap); True stops the build
        with :class:`BuildCancelled`.

    Returns
    -------
    IndexMeta
        What was built, equal to what :func:`load_index` will read back.

    Raises
    ------
    ValueError
        Bad input (shapes, non-finite values, duplicate or negative ids, a watermark below them,
        ``extra`` not JSON-able).
    BuildCancelled
        ``should_stop`` returned True.
    """
    directory = Path(directory)
    row_ids, vecs = _build_input(ids, vectors, int(watermark))
    trees = constants.ANNOY_N_TREES if n_trees is None else int(n_trees)
    if trees < 1:
        raise ValueError("n_trees must be >= 1")
    try:
        extra_doc = json.loads(json.dumps(extra or {}, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"extra must be JSON-able: {exc}") from None
    if not isinstance(extra_doc, dict):
        raise ValueError("extra must be a dict")
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    with _build_lock(directory):
        _remove_stale(directory, keep=None)
        built_at_ms = int(time.time() * 1000)
        build_id = f"{built_at_ms:013d}-{secrets.token_hex(4)}"
        tmp_dir = directory / f"{_TMP_PREFIX}{build_id}"
        final_dir = directory / build_id
        tmp_dir.mkdir()
        try:
            files = _write_build(tmp_dir, row_ids, vecs, trees, should_stop)
            _check_stop(should_stop)
            _fsync_dir(tmp_dir)
            os.rename(tmp_dir, final_dir)
            _fsync_dir(directory)
            meta = IndexMeta(
                build_id=build_id,
                encoder=str(encoder),
                dim=int(vecs.shape[1]),
                n_items=int(vecs.shape[0]),
                watermark=int(watermark),
                built_at_ms=built_at_ms,
                n_trees=trees,
                extra=extra_doc,
            )
            _write_current(directory, meta, files)
        except BaseException:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            if not _current_names(directory, build_id):
                shutil.rmtree(final_dir, ignore_errors=True)
            raise
        _remove_stale(directory, keep=build_id)
    logger.info(
        "index %s: built %s (%s, %d x %d, %d trees) in %.1f s",
        directory,
        build_id,
        encoder,
        meta.n_items,
        meta.dim,
        trees,
        time.perf_counter() - started,
    )
    return meta

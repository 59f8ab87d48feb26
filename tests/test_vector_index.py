"""Annoy index files and exact search of EEG similarity search: real Annoy, real files, real kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from miso_runtime import constants
from miso_runtime.search import vector_index
from miso_runtime.search.exact import exact_search, merge_neighbours, normalise
from miso_runtime.search.vector_index import (
    CURRENT_NAME,
    IDS_FILE,
    INDEX_FILE,
    BuildCancelled,
    IndexClosed,
    IndexCorrupt,
    build_index,
    load_index,
    read_current,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DIM = 32


def clustered(n: int, dim: int = DIM, seed: int = 0, n_clusters: int = 40) -> np.ndarray:
    """Clustered vectors with sessions that drift (consecutive rows are near), not uniform noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    labels = np.repeat(rng.integers(0, n_clusters, size=n // 50 + 1), 50)[:n]
    drift = np.cumsum(rng.normal(scale=0.05, size=(n, dim)), axis=0)
    drift -= np.repeat(drift[::50], 50, axis=0)[:n]
    x = centres[labels] + drift + rng.normal(scale=0.35, size=(n, dim))
    return x.astype(np.float32)


def build_dirs(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_dir())


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = sum(len(set(f.tolist()) & set(t.tolist()) - {-1}) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    x = clustered(3000, seed=1)
    ids = np.arange(x.shape[0], dtype=np.int64) * 3 + 100
    return ids, x


# --- Round trip and quality ------------------------------------------------------------------


def test_round_trip_equals_exact_search(tmp_path: Path, small) -> None:
    ids, x = small
    meta = build_index(tmp_path, ids, x, encoder="spectral-v1", watermark=int(ids.max()) + 5, extra={"scope": "global"})
    assert (meta.encoder, meta.dim, meta.n_items, meta.watermark) == ("spectral-v1", DIM, 3000, int(ids.max()) + 5)
    assert meta.n_trees == constants.ANNOY_N_TREES and meta.extra == {"scope": "global"}
    assert read_current(tmp_path) == meta
    with load_index(tmp_path) as index:
        assert index.meta == meta
        queries = x[::100]
        got_ids, got_dist = index.query(queries, 10, search_k=10**7)  # every item: the exact answer
        want_ids, want_dist = exact_search(queries, x, ids, 10)
    assert got_ids.dtype == np.int64 and got_dist.dtype == np.float32 and got_ids.shape == (30, 10)
    np.testing.assert_allclose(got_dist, want_dist, atol=2e-5)
    # Ids agree wherever the distances are not (nearly) tied.
    gap = np.diff(want_dist, axis=1)
    clear = np.ones_like(got_ids, dtype=bool)
    clear[:, 1:] &= gap > 1e-4
    clear[:, :-1] &= gap > 1e-4
    assert np.array_equal(got_ids[clear], want_ids[clear])
    assert np.all(got_ids[:, 0] == ids[::100])  # each query finds itself first, at distance 0
    assert np.all(np.diff(got_dist, axis=1) >= 0)


def test_distances_are_cosine_distances(tmp_path: Path, small) -> None:
    ids, x = small
    build_index(tmp_path, ids, x * 7.5, encoder="e", watermark=int(ids.max()))  # length does not matter
    index = load_index(tmp_path)
    queries = clustered(20, seed=9)
    got_ids, got_dist = index.query(queries, 5)
    by_id = dict(zip(ids.tolist(), normalise(x), strict=True))
    qn = normalise(queries)
    for r in range(len(queries)):
        cos = np.array([by_id[i] @ qn[r] for i in got_ids[r]])
        np.testing.assert_allclose(got_dist[r], 1.0 - cos, atol=2e-5)
    index.close()


def test_recall_at_10_on_clustered_vectors(tmp_path: Path) -> None:
    x = clustered(20_200, seed=3)
    queries, base = x[:200], x[200:]
    ids = np.arange(10_000, 10_000 + base.shape[0], dtype=np.int64)
    build_index(tmp_path, ids, base, encoder="e", watermark=int(ids.max()))
    index = load_index(tmp_path)
    got, _ = index.query(queries, 10)  # the default search_k
    truth, _ = exact_search(queries, base, ids, 10)
    assert recall(got, truth) >= 0.95


def test_empty_index_and_fewer_items_than_k(tmp_path: Path) -> None:
    meta = build_index(tmp_path / "e", np.zeros(0, dtype=np.int64), np.zeros((0, 8)), encoder="e", watermark=0)
    assert meta.n_items == 0 and meta.dim == 8
    assert sorted(os.listdir(tmp_path / "e" / meta.build_id)) == [IDS_FILE]
    empty = load_index(tmp_path / "e")
    ids, dist = empty.query(np.ones((3, 8)), 4)
    assert ids.shape == (3, 4) and np.all(ids == -1) and np.all(np.isinf(dist))

    x = clustered(3, dim=8)
    build_index(tmp_path / "f", np.array([5, 6, 7]), x, encoder="e", watermark=7)
    ids, dist = load_index(tmp_path / "f").query(x[:2], 5)
    assert ids.shape == (2, 5)
    assert np.all(ids[:, 3:] == -1) and np.all(np.isinf(dist[:, 3:]))
    assert sorted(ids[0, :3].tolist()) == [5, 6, 7] and ids[0, 0] == 5 and dist[0, 0] < 1e-6


def test_query_input_checks(tmp_path: Path, small) -> None:
    ids, x = small
    build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))
    index = load_index(tmp_path)
    one_ids, one_dist = index.query(x[0], 3)  # one 1-D vector is one query
    assert one_ids.shape == (1, 3) and one_ids[0, 0] == ids[0]
    assert index.query(x[:2], 0)[0].shape == (2, 0)
    np.testing.assert_allclose(index.query(np.zeros((2, DIM)), 3)[1], 1.0, atol=1e-6)  # zero query: distance 1
    with pytest.raises(ValueError):
        index.query(np.ones((1, DIM + 1)), 3)
    with pytest.raises(ValueError):
        index.query(np.full((1, DIM), np.nan), 3)
    with pytest.raises(ValueError):
        index.query(x[:1], 3, search_k=0)


def test_build_input_checks(tmp_path: Path) -> None:
    x = clustered(10)
    bad = [
        (np.arange(9), x, 9),  # lengths differ
        (np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 9]), x, 9),  # duplicate id
        (np.arange(10) - 1, x, 9),  # negative id
        (np.arange(10), x, 5),  # watermark below the ids
        (np.arange(10), np.where(np.arange(DIM) == 3, np.nan, x), 9),  # NaN
        (np.arange(10), x[:, 0], 9),  # 1-D vectors
    ]
    for ids, vectors, watermark in bad:
        with pytest.raises(ValueError):
            build_index(tmp_path, ids, vectors, encoder="e", watermark=watermark)
    with pytest.raises(ValueError):
        build_index(tmp_path, np.arange(10), x, encoder="e", watermark=9, extra={"x": object()})
    assert load_index(tmp_path) is None


# --- Atomic swap, kill -9, cancel --------------------------------------------------------------


def test_reader_keeps_answering_after_a_new_build_replaces_its_index(tmp_path: Path, small) -> None:
    ids, x = small
    first = build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))
    old = load_index(tmp_path)
    before = old.query(x[:20], 5)

    new_ids = ids + 1_000_000
    second = build_index(tmp_path, new_ids, x[::-1], encoder="e", watermark=int(new_ids.max()))
    assert build_dirs(tmp_path) == [second.build_id]  # the old build's files are gone...
    after = old.query(x[:20], 5)  # ...and its reader still answers from its mapping
    assert old.meta == first
    np.testing.assert_array_equal(before[0], after[0])

    new = load_index(tmp_path)
    assert new.meta == second
    assert new.query(x[:1], 1)[0][0, 0] == new_ids[-1]  # x[0] is the last vector of the new build
    old.close()
    new.close()


KILLED_BUILDER = """
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
from miso_runtime.search.vector_index import build_index
rng = np.random.default_rng(0)
vectors = rng.normal(size=({n}, 32)).astype(np.float32)
ids = np.arange({n}, dtype=np.int64)
print("building", flush=True)
build_index({directory!r}, ids, vectors, encoder="e", watermark={n}, n_trees=50)
print("finished", flush=True)
"""


def test_kill_9_during_a_build_leaves_the_old_index_serving(tmp_path: Path, small) -> None:
    ids, x = small
    first = build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))
    script = KILLED_BUILDER.format(root=str(REPO_ROOT), n=300_000, directory=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        deadline = time.monotonic() + 60
        while not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir()):
            assert time.monotonic() < deadline and proc.poll() is None, "the builder never started writing"
            time.sleep(0.01)
        time.sleep(1.0)  # well into adding items / building trees (the build takes many seconds)
        assert proc.poll() is None, "the build finished before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    stale = [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    assert len(stale) == 1
    index = load_index(tmp_path)
    assert index.meta == first
    assert index.query(x[:1], 1)[0][0, 0] == ids[0]

    # A complete build that a kill kept from being named by CURRENT is stale too.
    (tmp_path / "0000000000001-deadbeef").mkdir()
    # The next build is not blocked by the killed one's lock, and cleans up after it.
    third = build_index(tmp_path, ids[:100], x[:100], encoder="e", watermark=int(ids.max()))
    assert sorted(os.listdir(tmp_path)) == sorted([".lock", CURRENT_NAME, third.build_id])
    assert index.query(x[:1], 1)[0][0, 0] == ids[0]  # the reader of the first build still answers
    index.close()


def test_should_stop_cancels_and_keeps_the_previous_build(tmp_path: Path, small) -> None:
    ids, x = small
    first = build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))
    calls = []

    def stop_on_third() -> bool:
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(BuildCancelled):
        build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()), should_stop=stop_on_third)
    assert read_current(tmp_path) == first
    assert sorted(os.listdir(tmp_path)) == sorted([".lock", CURRENT_NAME, first.build_id])


def test_a_failing_build_leaves_no_files(tmp_path: Path, small, monkeypatch) -> None:
    ids, x = small
    first = build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vector_index, "_write_current", disk_full)
    with pytest.raises(OSError):
        build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))
    assert read_current(tmp_path) == first
    assert build_dirs(tmp_path) == [first.build_id]


# --- Corruption --------------------------------------------------------------------------------


@pytest.fixture()
def built(tmp_path: Path, small) -> Path:
    ids, x = small
    build_index(tmp_path, ids, x, encoder="e", watermark=int(ids.max()))
    return tmp_path


def index_file(directory: Path) -> Path:
    return directory / read_current(directory).build_id / INDEX_FILE


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_overwritten_bytes_are_detected(built: Path, where: str) -> None:
    path = index_file(built)
    size = path.stat().st_size
    offset = {"start": 0, "middle": size // 2, "end": size - 600}[where]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
    with pytest.raises(IndexCorrupt, match="SHA-256"):
        load_index(built)


def test_truncated_index_file_is_detected(built: Path) -> None:
    path = index_file(built)
    size = path.stat().st_size
    node = 12 + 4 * DIM  # Annoy's angular node: a multiple of it passes Annoy's own check
    os.truncate(path, size - 7 * node)
    with pytest.raises(IndexCorrupt, match="bytes"):
        load_index(built)
    with pytest.raises(IndexCorrupt):
        load_index(built, verify=False)  # sizes are always checked
    os.truncate(path, 0)
    with pytest.raises(IndexCorrupt):
        load_index(built)


def test_annoy_refusing_a_file_is_index_corrupt(built: Path) -> None:
    """A file that matches CURRENT but Annoy refuses (an index of another dimension) is corrupt too."""
    current = built / CURRENT_NAME
    doc = json.loads(current.read_text())
    size = index_file(built).stat().st_size
    doc["dim"] = next(d for d in range(DIM + 1, 4 * DIM) if size % (12 + 4 * d))  # nodes no longer fit the file
    current.write_text(json.dumps(doc))
    with pytest.raises(IndexCorrupt, match="Annoy refuses"):
        load_index(built)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"\xff\xfe garbage \x00",
        b"[1, 2, 3]",
        b'{"format": 1}',
        None,  # a valid CURRENT with its build id pointing outside the folder
        None,  # a valid CURRENT naming a build that does not exist
        None,  # a valid CURRENT with a wrong sha256
    ],
    ids=["empty", "binary", "list", "fields-missing", "escaping-build-id", "missing-build", "wrong-sha"],
)
def test_garbage_current_is_detected(built: Path, content: bytes | None, request) -> None:
    current = built / CURRENT_NAME
    if content is None:
        doc = json.loads(current.read_text())
        case = request.node.callspec.id
        if case == "escaping-build-id":
            doc["build_id"] = "../" + doc["build_id"]
        elif case == "missing-build":
            doc["build_id"] = "0000000000002-00000000"
        else:
            doc["files"][INDEX_FILE]["sha256"] = "0" * 64
        content = json.dumps(doc).encode()
    current.write_bytes(content)
    with pytest.raises(IndexCorrupt):
        load_index(built)
    if request.node.callspec.id not in ("wrong-sha", "missing-build"):  # CURRENT alone looks valid
        with pytest.raises(IndexCorrupt):
            read_current(built)


def test_corrupt_ids_file_is_detected(built: Path) -> None:
    path = built / read_current(built).build_id / IDS_FILE
    data = bytearray(path.read_bytes())
    data[:6] = b"NOTNPY"
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorrupt):
        load_index(built)
    with pytest.raises(IndexCorrupt):
        load_index(built, verify=False)


def test_missing_current_is_none(tmp_path: Path) -> None:
    assert load_index(tmp_path) is None
    assert load_index(tmp_path / "never-made") is None
    assert read_current(tmp_path) is None


def test_a_rebuild_after_corruption_serves_again(built: Path, small) -> None:
    ids, x = small
    os.truncate(index_file(built), 100)
    with pytest.raises(IndexCorrupt):
        load_index(built)
    build_index(built, ids, x, encoder="e", watermark=int(ids.max()))
    assert load_index(built).query(x[:1], 1)[0][0, 0] == ids[0]


# --- Threads -----------------------------------------------------------------------------------


def test_concurrent_queries_and_close(built: Path, small) -> None:
    ids, x = small
    index = load_index(built)
    queries = x[:200]
    want = index.query(queries, 10)
    results: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def worker(i: int) -> None:
        results[i] = index.query(queries, 10)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results.values():
        np.testing.assert_array_equal(got[0], want[0])

    # close while a (long) query runs: it finishes on the mapping, which is released after it.
    many = np.repeat(queries, 2, axis=0)
    serial = index.query(many, 10, search_k=10**7)
    running = threading.Thread(target=lambda: results.__setitem__(99, index.query(many, 10, search_k=10**7)))
    running.start()
    time.sleep(0.05)
    assert running.is_alive(), "the query finished before close"
    index.close()
    running.join()
    np.testing.assert_array_equal(results[99][0], serial[0])
    assert index._annoy is None  # unloaded by the query that was running
    index.close()  # idempotent
    assert index.closed
    with pytest.raises(IndexClosed):
        index.query(queries[:1], 1)


def test_annoy_query_releases_the_gil(tmp_path: Path) -> None:
    """Another Python thread runs while a query is inside Annoy (the server's hub needs that)."""
    x = np.random.default_rng(0).normal(size=(100_000, 64)).astype(np.float32)
    build_index(tmp_path, np.arange(100_000), x, encoder="e", watermark=100_000, n_trees=2)
    index = load_index(tmp_path, verify=False)
    ticks: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())

    windows = []
    thread = threading.Thread(target=ticker)
    thread.start()
    try:
        time.sleep(0.02)
        for row in x[:8]:
            start = time.perf_counter()
            index.query(row, 10, search_k=10**8)  # every candidate: a long call (~15 ms)
            windows.append((start, time.perf_counter()))
    finally:
        stop.set()
        thread.join()
    t = np.array(ticks)
    inside = sum(int(np.count_nonzero((t > a + 0.002) & (t < b - 0.002))) for a, b in windows)
    total_ms = sum(b - a for a, b in windows) * 1e3
    assert total_ms > 40, "queries too short to tell"
    # With the GIL held the ticker could not run at all inside a call.
    assert inside > total_ms * 10, f"{inside} ticks during {total_ms:.0f} ms of queries"


# --- Exact search and merging ---------------------------------------------------------------------


def test_normalise() -> None:
    v = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]])
    n = normalise(v)
    assert n.dtype == np.float32
    np.testing.assert_allclose(n, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], atol=1e-7)
    assert v[0, 0] == 3.0  # a copy


def test_exact_search_in_blocks_equals_one_block(monkeypatch) -> None:
    x = clustered(5000, seed=4).astype(np.float64)
    x[17] = 0.0  # a zero vector: distance 1 from everything
    ids = np.arange(5000, dtype=np.int64) * 2
    queries = clustered(37, seed=5)
    whole = exact_search(queries, x, ids, 12)
    monkeypatch.setattr(constants, "EXACT_SEARCH_BLOCK_ELEMENTS", 4096)
    blocked = exact_search(queries, x, ids, 12)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_allclose(whole[1], blocked[1], atol=1e-6)
    # Against a direct computation.
    sims = normalise(queries) @ normalise(x).T
    order = np.argsort(1 - sims, axis=1, kind="stable")[:, :12]
    np.testing.assert_allclose(whole[1], np.take_along_axis(1 - sims, order, axis=1), atol=1e-5)
    unit = normalise(x)
    np.testing.assert_array_equal(exact_search(queries, unit, ids, 12, normalised=True)[0], whole[0])
    # Fewer vectors than k, and none.
    few = exact_search(queries[:2], x[:3], ids[:3], 5)
    assert few[0].shape == (2, 5) and np.all(few[0][:, 3:] == -1) and np.all(np.isinf(few[1][:, 3:]))
    none = exact_search(queries[:2], np.zeros((0, DIM)), np.zeros(0), 5)
    assert np.all(none[0] == -1)
    zero_query = exact_search(np.zeros(DIM), x[:4], ids[:4], 2)
    np.testing.assert_allclose(zero_query[1], [[1.0, 1.0]])


def test_exact_search_top_k_is_exact_on_long_rows() -> None:
    """Long blocks take the chunk-minimum shortcut of the top-k selection; ties take the fallback."""
    x = clustered(60_000, seed=6)
    x[1000:1400] = x[0]  # 401 identical vectors: a tie far wider than k
    ids = np.arange(60_000, dtype=np.int64) + 1
    queries = np.concatenate([x[:1], clustered(30, seed=7)])
    got_ids, got_dist = exact_search(queries, x, ids, 10)
    dist = 1.0 - normalise(queries) @ normalise(x).T
    np.testing.assert_allclose(got_dist, np.sort(dist, axis=1)[:, :10], atol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(dist, got_ids - 1, axis=1), got_dist, atol=1e-6)
    assert all(len(set(row.tolist())) == 10 for row in got_ids)
    single = exact_search(queries[5], x, ids, 10)
    np.testing.assert_allclose(single[1][0], got_dist[5], atol=1e-6)


def test_merge_dedupes_keeps_the_smallest_distance() -> None:
    a = (np.array([[1, 2, 3]]), np.array([[0.1, 0.2, 0.3]], dtype=np.float32))
    b = (np.array([[2, 4, -1]]), np.array([[0.05, 0.25, np.inf]], dtype=np.float32))
    ids, dist = merge_neighbours([a, b], 4)
    assert ids.tolist() == [[2, 1, 4, 3]]
    np.testing.assert_allclose(dist, [[0.05, 0.1, 0.25, 0.3]])


def test_merge_excludes_and_pads() -> None:
    a = (np.array([[10, 11, 12], [12, 13, -1]]), np.array([[0.1, 0.2, 0.3], [0.1, 0.4, np.inf]], dtype=np.float32))
    b = (np.array([[20], [10]]), np.array([[0.15], [0.2]], dtype=np.float32))
    seen = []

    def exclude(found: np.ndarray) -> np.ndarray:
        seen.append(found.tolist())
        return np.isin(found, [11, 12])

    ids, dist = merge_neighbours([a, b], 5, exclude=exclude)
    assert seen == [[10, 11, 12, 13, 20]]  # once, the distinct ids
    assert ids.tolist() == [[10, 20, -1, -1, -1], [10, 13, -1, -1, -1]]
    assert np.isinf(dist[:, 2:]).all()
    np.testing.assert_allclose(dist[:, :2], [[0.1, 0.15], [0.2, 0.4]])


def test_merge_edge_cases() -> None:
    assert merge_neighbours([], 3)[0].shape == (0, 3)
    a = (np.array([[1, 2]]), np.array([[0.2, 0.1]], dtype=np.float32))
    ids, dist = merge_neighbours([a], 1)
    assert ids.tolist() == [[2]]
    assert merge_neighbours([a], 0)[0].shape == (1, 0)
    everything_dropped = merge_neighbours([a], 2, exclude=lambda found: np.ones(found.shape, dtype=bool))
    assert everything_dropped[0].tolist() == [[-1, -1]]
    with pytest.raises(ValueError):
        merge_neighbours([a, (np.array([[1], [2]]), np.array([[0.1], [0.2]]))], 2)

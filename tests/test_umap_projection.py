"""The Brain Nebula's projection: settings clamping, answer shapes, separation, subsampling, stop and timeout.

Runtime: the first projection of a test session compiles umap-learn's numba code (the
``compiled`` fixture, through :func:`warm_up`): about 3 s with numba's disk cache filled, 25 s
or more on a fresh install (``import umap`` alone is most of it). Every projection after that
is a few hundred points and takes well under a second.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("umap")
# umap-learn warns that precomputed neighbours have no search index; the module filters that
# warning once per process, but pytest restores the filters after every test.
pytestmark = pytest.mark.filterwarnings("ignore:precomputed_knn:UserWarning")

from miso_runtime import constants  # noqa: E402
from miso_runtime.analysis import umap_projection as up  # noqa: E402
from miso_runtime.analysis.umap_projection import (  # noqa: E402
    ProjectionCancelled,
    ProjectionFailed,
    ProjectionTimedOut,
    UmapSettings,
    empty_answer,
    evenly_subsample,
    exact_cosine_knn,
    project,
    separation_analysis,
)


@pytest.fixture(scope="module")
def compiled() -> float:
    """Compile (or load) the numba code once for this module; the seconds it took."""
    return up.warm_up()


def _clusters(n_a: int, n_b: int, dim: int = 16, apart: float = 6.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centre = rng.normal(size=dim)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    a = centre * 3 + apart * direction + rng.normal(size=(n_a, dim))
    b = centre * 3 - apart * direction + rng.normal(size=(n_b, dim))
    return a.astype(np.float32), b.astype(np.float32)


def _project(a: np.ndarray, b: np.ndarray, settings: UmapSettings | None = None, **kwargs) -> dict:
    times_a = 1_776_000_000 + np.arange(len(a)) * 5
    times_b = 1_777_000_000 + np.arange(len(b)) * 5
    labels_a = ["focus" if i % 3 == 0 else None for i in range(len(a))]
    labels_b = [None] * len(b)
    return project(a, b, times_a, times_b, labels_a, labels_b, settings or UmapSettings(), **kwargs)


def _is_rounded(value: float) -> bool:
    return value == round(value, 2)


# --- settings ---------------------------------------------------------------------------------


def test_from_config_clamps_to_the_daemons_ranges() -> None:
    low = UmapSettings.from_config(
        {"repulsion_strength": 0, "neg_sample_rate": 0, "timeout_secs": 1, "n_epochs": 3, "n_neighbors": 0}
    )
    assert (low.repulsion_strength, low.neg_sample_rate, low.timeout_secs, low.n_epochs, low.n_neighbors) == (
        0.1,
        1,
        10,
        50,
        2,
    )
    high = UmapSettings.from_config(
        {
            "repulsion_strength": 99,
            "neg_sample_rate": 99,
            "timeout_secs": 9999,
            "n_epochs": 99_999,
            "n_neighbors": 500,
            "cooldown_ms": 10**6,
        }
    )
    assert (high.repulsion_strength, high.neg_sample_rate, high.timeout_secs, high.n_epochs, high.n_neighbors) == (
        10.0,
        30,
        600,
        2000,
        50,
    )
    assert high.cooldown_ms == 10_000
    assert UmapSettings.from_config(None) == UmapSettings()
    assert UmapSettings.from_config({"n_epochs": "lots", "precision": "f64"}) == UmapSettings()


def test_from_config_takes_the_stored_pydantic_model() -> None:
    settings_module = pytest.importorskip("miso_runtime.analysis.settings")
    config = settings_module.UmapUserConfig(n_neighbors=30, n_epochs=10, backend="gpu", precision="f16")
    settings = UmapSettings.from_config(config)
    assert (settings.n_neighbors, settings.n_epochs, settings.backend, settings.precision) == (30, 50, "gpu", "f16")
    assert UmapSettings.from_config(config.model_dump()) == settings


def test_cache_key_fields_leave_out_the_backend() -> None:
    keys = UmapSettings().cache_key_fields()
    assert set(keys) == {
        "precision",
        "repulsion_strength",
        "neg_sample_rate",
        "n_epochs",
        "n_neighbors",
        "cooldown_ms",
        "timeout_secs",
    }
    assert UmapSettings(backend="gpu").cache_key_fields() == keys


@pytest.mark.parametrize(
    ("configured", "n", "expected"),
    [(15, 5, 2), (15, 7, 3), (15, 20, 10), (15, 29, 14), (15, 31, 15), (15, 10_000, 15), (50, 60, 30), (2, 1000, 2)],
)
def test_neighbours_are_capped_by_n_minus_1_and_half_n_with_floor_2(configured: int, n: int, expected: int) -> None:
    assert UmapSettings(n_neighbors=configured).neighbours_for(n) == expected
    assert up.umap_options(UmapSettings(n_neighbors=configured), n, 42)["n_neighbors"] == expected


# --- subsampling and the empty answer -------------------------------------------------------


def test_evenly_subsample_keeps_the_ends_and_spaces_evenly() -> None:
    assert evenly_subsample(7, 10).tolist() == list(range(7))
    assert evenly_subsample(0, 10).tolist() == []
    picked = evenly_subsample(25_001, 10_000)
    assert len(picked) == 10_000 and picked[0] == 0 and picked[-1] == 25_000
    steps = np.diff(picked)
    assert steps.min() >= 2 and steps.max() <= 3
    assert evenly_subsample(11, 3).tolist() == [0, 5, 10]
    assert evenly_subsample(5, 1).tolist() == [0]
    with pytest.raises(ValueError):
        evenly_subsample(5, 0)


def test_empty_answer_shape() -> None:
    assert empty_answer("no_epochs", 0, 0, 3, 0) == {
        "points": [],
        "n_a": 0,
        "n_b": 0,
        "dim": 0,
        "total_a": 3,
        "total_b": 0,
        "reason": "no_epochs",
    }


def test_fewer_than_five_embeddings_give_the_empty_answer() -> None:
    a, b = _clusters(3, 1)
    answer = _project(a, b, totals=(7, 1))
    assert answer == {
        "points": [],
        "n_a": 3,
        "n_b": 1,
        "dim": 0,
        "total_a": 7,
        "total_b": 1,
        "reason": "too_few_embeddings: only 4 embeddings available (need at least 5)",
    }


# --- separation analysis on known coordinates -------------------------------------------------


def test_separation_analysis_numbers_outliers_and_rounding() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(scale=0.5, size=(60, 3))
    b = rng.normal(scale=0.5, size=(40, 3)) + [10.0, 0.0, 0.0]
    a[7] = [6.0, 6.0, 6.0]  # far from A's centroid
    b[5] = [10.0, -4.0, 0.0]  # far from B's centroid
    coords = np.concatenate([a, b])
    utc = np.arange(100) + 1000
    result = separation_analysis(coords, 60, utc)

    centroid_a, centroid_b = coords[:60].mean(axis=0), coords[60:].mean(axis=0)
    spread_a = np.linalg.norm(coords[:60] - centroid_a, axis=1).mean()
    spread_b = np.linalg.norm(coords[60:] - centroid_b, axis=1).mean()
    inter = np.linalg.norm(centroid_a - centroid_b)
    assert result["centroid_a"] == [round(float(v), 2) for v in centroid_a]
    assert result["inter_cluster_distance"] == round(float(inter), 2)
    assert result["intra_spread_a"] == round(float(spread_a), 2)
    assert result["separation_score"] == round(float(inter / ((spread_a + spread_b) / 2)), 2)
    assert result["n_outliers_a"] >= 1 and result["n_outliers_b"] >= 1
    listed = result["outliers"]
    assert listed[0]["utc"] == 1007 and listed[0]["session"] == "A"
    assert any(o["utc"] == 1065 and o["session"] == "B" for o in listed)
    distances = [o["distance_to_centroid"] for o in listed]
    assert distances == sorted(distances, reverse=True)
    for outlier in listed:
        assert set(outlier) == {"x", "y", "z", "session", "utc", "distance_to_centroid"}
        assert all(_is_rounded(outlier[key]) for key in ("x", "y", "z", "distance_to_centroid"))
    for key in ("inter_cluster_distance", "intra_spread_a", "intra_spread_b", "separation_score"):
        assert _is_rounded(result[key])


def test_separation_analysis_lists_at_most_20_outliers_farthest_first() -> None:
    rng = np.random.default_rng(4)
    core = rng.normal(scale=0.1, size=(400, 3))
    far = rng.normal(scale=0.1, size=(30, 3)) + np.linspace(5, 8, 30)[:, None]
    coords = np.concatenate([core, far, core + 50, far + 50])
    result = separation_analysis(coords, 430, np.arange(len(coords)))
    assert result["n_outliers_a"] == 30 and result["n_outliers_b"] == 30
    assert len(result["outliers"]) == constants.UMAP_MAX_OUTLIERS_LISTED == 20
    distances = [o["distance_to_centroid"] for o in result["outliers"]]
    assert distances == sorted(distances, reverse=True)


def test_separation_analysis_guards_zero_spread_and_an_empty_range() -> None:
    same = np.zeros((6, 3))
    assert separation_analysis(same, 3, np.arange(6))["separation_score"] == 0.0
    only_b = separation_analysis(np.random.default_rng(0).normal(size=(8, 3)), 0, np.arange(8))
    assert only_b["centroid_a"] is None and only_b["intra_spread_a"] == 0.0 and only_b["n_outliers_a"] == 0
    assert only_b["separation_score"] == 0.0 and len(only_b["centroid_b"]) == 3


# --- exact neighbours ---------------------------------------------------------------------------


def test_exact_cosine_knn_matches_brute_force_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(203, 12)).astype(np.float32)
    vectors[17] = 0.0  # a zero vector is nobody's near neighbour
    monkeypatch.setattr(constants, "UMAP_KNN_BLOCK_BYTES", 4 * 203 * 10)  # 10 rows a block
    blocks: list[float] = []
    indices, distances = exact_cosine_knn(vectors, 6, on_block=blocks.append)
    assert len(blocks) == 21 and blocks[-1] == 1.0
    assert indices.dtype == np.int32 and distances.dtype == np.float32
    assert (indices[:, 0] == np.arange(203)).all() and (distances[:, 0] == 0).all()
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1)
    cosine = 1 - unit @ unit.T
    np.fill_diagonal(cosine, -1)
    expected = np.argsort(cosine, axis=1, kind="stable")[:, :6]
    assert (indices == expected).all()
    assert np.allclose(distances[:, 1:], np.take_along_axis(cosine, expected, 1)[:, 1:], atol=1e-5)
    assert 17 not in indices[np.arange(203) != 17, 1:3]


# --- projections ------------------------------------------------------------------------------


def test_answer_shape(compiled: float) -> None:
    a, b = _clusters(90, 70, dim=24)
    answer = _project(a, b)
    assert set(answer) == {"points", "n_a", "n_b", "dim", "elapsed_ms", "analysis", "backend", "precision"}
    assert (answer["n_a"], answer["n_b"], answer["dim"]) == (90, 70, 24)
    assert answer["backend"] == "cpu" and answer["precision"] == "f32"
    assert isinstance(answer["elapsed_ms"], int) and answer["elapsed_ms"] > 0
    points = answer["points"]
    assert len(points) == 160
    assert [p["session"] for p in points] == [0] * 90 + [1] * 70
    assert points[0]["utc"] == 1_776_000_000 and points[90]["utc"] == 1_777_000_000
    assert points[0]["label"] == "focus" and "label" not in points[1] and "label" not in points[90]
    for point in points:
        assert set(point) - {"label"} == {"x", "y", "z", "session", "utc"}
        assert all(type(point[key]) is float for key in ("x", "y", "z"))
        assert type(point["utc"]) is int
    analysis = answer["analysis"]
    assert set(analysis) == {
        "centroid_a",
        "centroid_b",
        "inter_cluster_distance",
        "intra_spread_a",
        "intra_spread_b",
        "separation_score",
        "n_outliers_a",
        "n_outliers_b",
        "outliers",
    }
    assert len(analysis["centroid_a"]) == 3 and all(_is_rounded(v) for v in analysis["centroid_b"])
    assert len(analysis["outliers"]) <= 20
    assert all(o["session"] in ("A", "B") for o in analysis["outliers"])


def test_separated_ranges_score_clearly_higher_than_one_distribution(compiled: float) -> None:
    a, b = _clusters(150, 150)
    apart = _project(a, b)["analysis"]["separation_score"]
    rng = np.random.default_rng(9)
    same = rng.normal(size=(300, 16)).astype(np.float32) + 2.0
    together = _project(same[:150], same[150:])["analysis"]["separation_score"]
    assert apart > 3.0
    assert together < 1.0
    assert apart > 5 * together


def test_same_seed_same_picture(compiled: float) -> None:
    a, b = _clusters(80, 60, apart=2.0)
    first, second = _project(a, b, seed=7), _project(a, b, seed=7)
    assert [(p["x"], p["y"], p["z"]) for p in first["points"]] == [(p["x"], p["y"], p["z"]) for p in second["points"]]
    assert first["analysis"] == second["analysis"]


def test_subsampling_is_reported_and_keeps_the_ends(compiled: float) -> None:
    a, b = _clusters(150, 40)
    answer = _project(a, b, max_per_range=100)
    assert answer["subsampled"] == {"a": {"total": 150, "used": 100}, "b": {"total": 40, "used": 40}}
    assert (answer["n_a"], answer["n_b"]) == (100, 40)
    utc_a = [p["utc"] for p in answer["points"] if p["session"] == 0]
    assert utc_a[0] == 1_776_000_000 and utc_a[-1] == 1_776_000_000 + 149 * 5 and len(utc_a) == 100
    # a caller that thinned the ranges itself passes the totals it had
    thinned = _project(a[:50], b, totals=(150, 40))
    assert thinned["subsampled"] == {"a": {"total": 150, "used": 50}, "b": {"total": 40, "used": 40}}
    assert "subsampled" not in _project(a[:50], b)


def test_few_points_and_one_empty_range_still_project(compiled: float) -> None:
    a, b = _clusters(3, 3)
    answer = _project(a, b)
    assert len(answer["points"]) == 6
    only_b = _project(np.empty((0, 16), np.float32), b[:3].repeat(2, axis=0) + 0.01 * np.arange(6)[:, None])
    assert (only_b["n_a"], only_b["n_b"]) == (0, 6) and only_b["analysis"]["centroid_a"] is None


def test_progress_stages_in_order(compiled: float) -> None:
    a, b = _clusters(100, 100)
    events: list[tuple[str, float]] = []
    _project(a, b, progress=lambda stage, fraction: events.append((stage, fraction)))
    stages = [stage for stage, _ in events]
    assert stages[0] == "preparing" and stages[-1] == "done" and events[-1][1] == 1.0
    order = ["preparing", "neighbours", "layout", "analysis", "done"]
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == order
    fractions = [fraction for _, fraction in events]
    assert fractions == sorted(fractions)
    assert sum(stage == "layout" for stage in stages) > 20  # per-epoch progress, not one step


def test_cancel_stops_the_layout(compiled: float) -> None:
    a, b = _clusters(150, 150)
    seen: list[float] = []
    began = time.monotonic()
    with pytest.raises(ProjectionCancelled):
        _project(
            a,
            b,
            UmapSettings(n_epochs=2000),
            progress=lambda stage, fraction: seen.append(fraction) if stage == "layout" else None,
            should_stop=lambda: bool(seen) and seen[-1] > 0.2,
        )
    assert time.monotonic() - began < 10
    # the helper thread stops at its next epoch: the next projection is not held up by it
    assert len(_project(a[:20], b[:20])["points"]) == 40


def test_timeout_fails_the_projection(compiled: float) -> None:
    a, b = _clusters(150, 150)
    began = time.monotonic()
    with pytest.raises(ProjectionTimedOut, match="timeout of 1 s") as caught:
        _project(a, b, UmapSettings(n_epochs=20_000, timeout_secs=1))
    assert isinstance(caught.value, ProjectionFailed)
    assert time.monotonic() - began < 3


def test_bad_vectors_fail_clearly() -> None:
    a, b = _clusters(10, 10)
    a[3, 2] = np.nan
    with pytest.raises(ProjectionFailed, match="NaN or infinite"):
        _project(a, b)
    with pytest.raises(ProjectionFailed, match="dimension"):
        _project(a[:, :8], b)

"""Labels, encoder switches with an ONNX encoder downloaded from loopback, and the Brain Nebula.

A real sidecar with real workers: a replay of the real recording and a synthetic-board session
give two very different kinds of EEG; the ONNX encoder is a tiny model written here and served
by a loopback file server that stalls, cuts its connection, or serves the wrong bytes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import numpy as np
import pytest

from miso_runtime.neuro.embedding.spectral_encoder import SPECTRAL_ENCODER_NAME
from tests.eeg import GANGLION, PLAYBACK, SYNTHETIC, listening_sidecar, wait_until, write_recording
from tests.exg_fixtures import FileServer, real_eeg_uv, tiny_onnx_encoder
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    with listening_sidecar(tmp_path_factory.mktemp("eeg-labels")) as sidecar:
        yield sidecar


def epochs_of(side: Sidecar, session_id: str) -> list[tuple[int, int]]:
    with sqlite3.connect(side.data_dir / "miso.db") as db:
        return db.execute(
            "SELECT id, start_utc_ms FROM eeg_epochs WHERE session_id = ? ORDER BY start_utc_ms", [session_id]
        ).fetchall()


def embedded(side: Sidecar, session_id: str) -> int:
    return len([e for e in side.events.of_type("EegEmbedding") if e["payload"]["session_id"] == session_id])


@pytest.fixture(scope="module")
def sessions(side, tmp_path_factory):
    """25 s of the synthetic board, then a replay of the real recording, both embedded.

    In this order: a fast replay's timeline runs ahead of the clock (6 minutes of data in 9 s),
    so a live session after it would share its moments.
    """
    synthetic = side.post("/v1/control/start-session", json={"board_id": SYNTHETIC}).json()["session"]["id"]
    wait_until(lambda: len(epochs_of(side, synthetic)) >= 5, timeout=60)
    side.post("/v1/control/cancel-session")
    path = write_recording(tmp_path_factory.mktemp("rec") / "resting.csv", GANGLION, real_eeg_uv())
    body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": GANGLION}, "playback_speed": 40}
    resting = side.post("/v1/control/start-session", json=body).json()["session"]["id"]
    side.events.wait_for("DeviceDisconnected", lambda p: p["session_id"] == resting, timeout=60)
    for session in (resting, synthetic):
        wait_until(lambda s=session: embedded(side, s) == len(epochs_of(side, s)), timeout=30)
    return resting, synthetic


def span(side: Sidecar, session_id: str) -> tuple[int, int]:
    """First and last epoch start, UNIX seconds (ranges are inclusive: the next session may
    start within 5 s of this one's last epoch)."""
    epochs = epochs_of(side, session_id)
    return epochs[0][1] // 1000, epochs[-1][1] // 1000


def test_labels_are_created_listed_changed_and_deleted(side):
    created = side.post(
        "/v1/labels", json={"text": "walking the dog", "context": "evening", "labelStartUtc": 1_700_000_000.5}
    )
    assert created.status_code == 200, created.text
    label = created.json()
    assert label["text"] == "walking the dog" and label["context"] == "evening"
    assert label["eeg_start"] == label["eeg_end"] == 1_700_000_000 and label["created_at"] == 1_700_000_000.5
    assert isinstance(label["embedding_model"], str)
    listed = side.get("/v1/labels").json()
    assert isinstance(listed, list) and listed[0]["id"] == label["id"]
    assert side.put(f"/v1/labels/{label['id']}", json={"text": "walking the cat"}).json() == {"ok": True}
    assert [x["text"] for x in side.get("/v1/labels").json() if x["id"] == label["id"]] == ["walking the cat"]
    assert side.delete(f"/v1/labels/{label['id']}").json() == {"ok": True}
    assert all(x["id"] != label["id"] for x in side.get("/v1/labels").json())
    for response in (
        side.put(f"/v1/labels/{label['id']}", json={"text": "x"}),
        side.delete(f"/v1/labels/{label['id']}"),
    ):
        assert response.status_code == 404 and response.json()["code"] == "label_not_found"
    assert side.post("/v1/labels", json={"context": "no text"}).status_code == 422
    assert side.put("/v1/labels/abc", json={"text": "x"}).status_code == 400


def test_search_by_meaning_finds_a_paraphrase_before_unrelated_labels(side):
    texts = [
        "deep focus while writing code",
        "meditating quietly with eyes closed",
        "headache after a long meeting",
        "running intervals at the track",
        "listening to loud rock music",
    ]
    ids = {
        t: side.post("/v1/labels", json={"text": t, "labelStartUtc": 1_700_001_000 + i}).json()["id"]
        for i, t in enumerate(texts)
    }
    queries = {
        "concentrating hard on programming": "deep focus while writing code",
        "calm meditation, eyes shut": "meditating quietly with eyes closed",
        "my head hurts after the meeting": "headache after a long meeting",
        "sprinting on a running track": "running intervals at the track",
    }
    for query, expected in queries.items():
        results = side.post("/v1/labels/search", json={"query": query, "k": 5}).json()["results"]
        assert results[0]["label_id"] == ids[expected], (query, [r["text"] for r in results])
        distances = [r["distance"] for r in results]
        assert distances == sorted(distances)
    status = side.get("/v1/labels/embedding-status").json()
    assert (
        status["total"] >= 5 and status["stale"] == 0 and status["models"] == {status["current_model"]: status["total"]}
    )
    assert side.get("/v1/labels/index/stats").json()["text_nodes"] >= 5


def test_search_by_eeg_finds_the_label_over_similar_eeg(side, sessions):
    resting, synthetic = sessions
    r0, r1 = span(side, resting)
    s0, s1 = span(side, synthetic)
    rest_label = side.post("/v1/labels", json={"text": "resting, eyes open", "eegStart": r0, "eegEnd": r0 + 90}).json()
    synth_label = side.post("/v1/labels", json={"text": "test signal", "eegStart": s0, "eegEnd": s1}).json()
    # Another part of the same resting recording looks like the resting label, not the synthetic one.
    found = side.post("/v1/labels/search-by-eeg", json={"startUtc": r0 + 200, "endUtc": r0 + 260, "k": 5}).json()
    ranked = [r["label_id"] for r in found["results"]]
    assert ranked.index(rest_label["id"]) < ranked.index(synth_label["id"])
    assert found["results"][0]["label_id"] == rest_label["id"] and "eeg_metrics" in found["results"][0]
    synth = side.post("/v1/labels/search-by-eeg", json={"startUtc": s0, "endUtc": s1, "k": 5}).json()
    assert synth["results"][0]["label_id"] == synth_label["id"]
    none = side.post("/v1/labels/search-by-eeg", json={"startUtc": 1000, "endUtc": 1100}).json()
    assert none == {"results": [], "error": "no EEG data in window"}
    rebuilt = side.post("/v1/labels/index/rebuild").json()
    assert rebuilt["ok"] and rebuilt["eeg_nodes"] >= 2
    # Search results carry the labels that cover a neighbour's time.
    result = side.post("/v1/search/eeg", json={"startUtc": r0 + 200, "endUtc": r0 + 230, "k": 10}).json()
    labelled = [n for e in result["results"] for n in e["neighbors"] if n["labels"]]
    assert labelled and all(
        label["text"] in ("resting, eyes open", "test signal") for n in labelled for label in n["labels"]
    )


def test_the_brain_nebula_projects_two_ranges_and_caches_them(side, sessions):
    resting, synthetic = sessions
    r0, r1 = span(side, resting)
    s0, s1 = span(side, synthetic)
    body = {"aStartUtc": r0, "aEndUtc": r1, "bStartUtc": s0, "bEndUtc": s1}
    since = side.events.received[-1][0] if side.events.received else 0
    response = side.post("/v1/analysis/umap", json=body, timeout=300)
    assert response.status_code == 200, response.text
    result = response.json()
    n_a, n_b = len(epochs_of(side, resting)), len(epochs_of(side, synthetic))
    assert (result["n_a"], result["n_b"]) == (n_a, n_b) and result["dim"] == 32
    points = result["points"]
    assert len(points) == n_a + n_b and [p["session"] for p in points] == [0] * n_a + [1] * n_b
    assert all(np.isfinite([p["x"], p["y"], p["z"]]).all() for p in points)
    assert any(p.get("label") == "resting, eyes open" for p in points[:n_a])
    analysis = result["analysis"]
    assert analysis["separation_score"] > 1.5  # resting EEG and a test signal are far apart
    assert side.events.of_type("umap-progress", since=since)
    again = side.post("/v1/analysis/umap", json=body).json()
    assert again.get("cached") is True and again["points"] == points
    few = side.post(
        "/v1/analysis/umap", json={"aStartUtc": s0, "aEndUtc": s0 + 6, "bStartUtc": 1000, "bEndUtc": 1001}
    ).json()
    assert few["points"] == [] and few["reason"].startswith("too_few_embeddings")
    # Fewer epochs than the configured 15 neighbours: the neighbours are capped, not refused.
    small = side.post("/v1/analysis/umap", json={"aStartUtc": s0, "aEndUtc": s1, "bStartUtc": 1000, "bEndUtc": 1001})
    assert small.status_code == 200 and len(small.json()["points"]) == n_b and small.json()["n_b"] == 0
    none = side.post("/v1/analysis/umap", json={"aStartUtc": 10, "aEndUtc": 20, "bStartUtc": 30, "bEndUtc": 40}).json()
    assert none["reason"] == "no_epochs"
    assert side.post("/v1/analysis/umap", json={**body, "aEndUtc": r0 - 10}).status_code == 422


def test_umap_config_is_stored_raw_or_wrapped(side):
    assert side.post("/v1/settings/umap-config", json={"config": {"n_neighbors": 10}}).json() == {"ok": True}
    config = side.get("/v1/settings/umap-config").json()
    assert config["n_neighbors"] == 10 and config["n_epochs"] == 500
    assert side.post("/v1/settings/umap-config", json={"n_epochs": 300}).json() == {"ok": True}
    config = side.get("/v1/settings/umap-config").json()
    assert config["n_epochs"] == 300 and config["n_neighbors"] == 15  # a POST replaces the whole struct
    assert side.post("/v1/settings/umap-config", json={"precision": "f64"}).status_code == 422


@pytest.fixture()
def files():
    server = FileServer(tiny_onnx_encoder())
    yield server
    server.close()


def write_catalog(side: Sidecar, families: dict) -> None:
    (side.data_dir / "exg_catalog.json").write_text(json.dumps({"families": families}))


def test_an_onnx_encoder_downloads_through_a_stall_and_a_cut_and_reembeds_everything(side, sessions, files):
    resting, synthetic = sessions
    digest = hashlib.sha256(files.payload).hexdigest()
    write_catalog(side, {"tiny-onnx": {"name": "Tiny ONNX", "url": files.url(), "sha256": digest}})
    catalog = side.get("/v1/models/exg-catalog").json()
    assert catalog["families"]["tiny-onnx"]["weights_cached"] is False
    assert (
        catalog["families"]["miso-spectral"]["weights_cached"] is True and catalog["active_model"] == "Miso spectral v1"
    )
    # The daemon's frontend wraps the config; an unknown family is refused.
    assert side.post("/v1/models/config", json={"config": {"model_backend": "zuna"}}).status_code == 422
    assert side.post("/v1/models/config", json={"config": {"model_backend": "tiny-onnx"}}).json() == {"ok": True}
    assert side.get("/v1/models/config").json()["model_backend"] == "tiny-onnx"
    status = side.get("/v1/models/status").json()
    assert status["weights_found"] is False and status["encoder_loaded"] is False

    files.chunk, files.chunk_sleep_s = 2048, 0.01
    files.stall_at, files.stall_s = 8192, 1.0
    files.cut_at = 24_000
    since = side.events.received[-1][0]
    assert side.post("/v1/models/trigger-weights-download").json() == {
        "ok": True,
        "message": "weights download started",
    }
    assert side.post("/v1/models/trigger-weights-download").json()["ok"] is False  # one at a time
    done = side.events.wait_for("ExgDownloadCompleted", since=since, timeout=60)["payload"]
    assert done["backend"] == "tiny-onnx" and done["progress"] == 1.0 and done["weights_found"] is True
    progress = [e["payload"]["progress"] for e in side.events.of_type("ExgDownloadProgress", since=since)]
    assert len(progress) >= 3 and progress == sorted(progress)
    assert any(r and r.startswith("bytes=") for r in files.ranges)  # resumed after the cut
    assert (side.data_dir / "exg_models" / "tiny-onnx.onnx").read_bytes() == files.payload
    # Before the weights were there the worker said metrics_only; now the encoder is loaded.
    ready = side.events.wait_for(
        "EmbedWorkerStatus", lambda p: p["backend"] == "tiny-onnx" and p["status"] == "ready", since=since, timeout=20
    )
    assert ready["payload"]["dim"] == 8 and ready["payload"]["encoder"].startswith("onnx:tiny-onnx:")
    assert side.get("/v1/models/status").json()["encoder_loaded"] is True

    r0, r1 = span(side, resting)
    estimate = side.get("/v1/models/estimate-reembed").json()
    assert estimate["missing"] == estimate["total_epochs"] > 0 and estimate["embedded"] == 0
    assert sum(d["missing"] for d in estimate["per_day"]) == estimate["missing"]
    since = side.events.received[-1][0]
    assert side.post("/v1/models/trigger-reembed").json() == {"ok": True, "message": "reembed started"}
    finished = side.events.wait_for("reembed-progress", lambda p: p["status"] == "done", since=since, timeout=60)
    assert finished["payload"]["done"] == estimate["missing"] and finished["payload"]["failed"] == 0
    statuses = [e["payload"]["status"] for e in side.events.of_type("reembed-progress", since=since)]
    assert statuses[0] == "scanning" and "started" in statuses and "running" in statuses
    assert side.get("/v1/models/estimate-reembed").json()["missing"] == 0
    count = side.post("/v1/analysis/embedding-count", json={"startUtc": r0, "endUtc": r1}).json()
    assert count["embedded"] == count["count"] and count["encoder"].startswith("onnx:tiny-onnx:")
    # Searches now use only the ONNX vectors: 8 dims, never mixed with the spectral ones.
    result = side.post("/v1/search/eeg", json={"startUtc": r0, "endUtc": r0 + 30, "k": 5}).json()
    assert result["encoder"] == count["encoder"] and all(len(e["neighbors"]) == 5 for e in result["results"])
    with sqlite3.connect(side.data_dir / "miso.db") as db:
        dims = dict(db.execute("SELECT encoder, MAX(dim) FROM eeg_embeddings GROUP BY encoder").fetchall())
    assert dims == {SPECTRAL_ENCODER_NAME: 32, count["encoder"]: 8}
    # Back to the built-in encoder: its vectors stayed, nothing to re-embed.
    assert side.post("/v1/models/config", json={"model_backend": "miso-spectral"}).json() == {"ok": True}
    assert side.get("/v1/models/estimate-reembed").json()["missing"] == 0


def test_a_download_with_the_wrong_sha256_or_an_unreachable_url_fails_and_keeps_nothing(side, files):
    write_catalog(
        side,
        {
            "wrong-hash": {"url": files.url("other.onnx"), "sha256": "0" * 64},
            "nowhere": {"url": "http://127.0.0.1:9/encoder.onnx", "sha256": "1" * 64},
        },
    )
    for family, message in (("wrong-hash", "SHA-256 mismatch"), ("nowhere", "")):
        assert side.post("/v1/models/config", json={"model_backend": family}).json() == {"ok": True}
        since = side.events.received[-1][0]
        assert side.post("/v1/models/trigger-weights-download").json()["ok"] is True
        failed = side.events.wait_for(
            "ExgDownloadFailed", lambda p, f=family: p["backend"] == f, since=since, timeout=60
        )
        assert message in failed["payload"]["status_msg"] and failed["payload"]["weights_found"] is False
        assert not (side.data_dir / "exg_models" / f"{family}.onnx").exists()
        status = side.get("/v1/models/status").json()
        assert status["downloading_weights"] is False and status["weights_found"] is False
    # Cancelling a slow download.
    write_catalog(side, {"slow": {"url": files.url("slow.onnx"), "sha256": hashlib.sha256(files.payload).hexdigest()}})
    files.chunk, files.chunk_sleep_s = 512, 0.05
    assert side.post("/v1/models/config", json={"model_backend": "slow"}).json() == {"ok": True}
    since = side.events.received[-1][0]
    side.post("/v1/models/trigger-weights-download")
    side.events.wait_for("ExgDownloadProgress", since=since, timeout=20)
    assert side.post("/v1/models/cancel-weights-download").json()["ok"] is True
    failed = side.events.wait_for("ExgDownloadFailed", lambda p: p["backend"] == "slow", since=since, timeout=20)
    assert failed["payload"]["status_msg"] == "Download cancelled."
    assert side.post("/v1/models/config", json={"model_backend": "miso-spectral"}).json() == {"ok": True}


def test_reembed_and_device_settings(side):
    assert side.post("/v1/settings/reembed-config", json={"batch_size": 25}).json() == {"ok": True}
    config = side.get("/v1/settings/reembed-config").json()
    assert config["batch_size"] == 25 and config["idle_reembed_delay_secs"] == 1800
    assert side.post("/v1/settings/reembed-config", json={"batch_size": 0}).status_code == 422
    device = side.get("/v1/settings/exg-inference-device").json()
    assert device["value"] == "auto" and "CPUExecutionProvider" in device["available"]
    assert side.post("/v1/settings/exg-inference-device", json={"value": "tpu"}).json() == {"ok": True, "value": "auto"}
    assert side.post("/v1/settings/exg-inference-device", json={"value": "cpu"}).json() == {"ok": True, "value": "cpu"}
    assert side.post("/v1/settings/exg-inference-device", json={}).status_code == 422


def test_a_connecting_device_pauses_reembedding_and_the_idle_run_finishes_it(side, sessions, files):
    digest = hashlib.sha256(files.payload).hexdigest()
    write_catalog(side, {"tiny-onnx": {"name": "Tiny ONNX", "url": files.url(), "sha256": digest}})
    slow = {"batch_size": 1, "batch_delay_ms": 1000, "idle_reembed_enabled": False}
    assert side.post("/v1/settings/reembed-config", json=slow).json() == {"ok": True}
    # Epochs of the built-in encoder only, then the ONNX encoder (its weights are on disk) lacks them.
    fresh = side.post("/v1/control/start-session", json={"board_id": SYNTHETIC}).json()["session"]["id"]
    wait_until(lambda: embedded(side, fresh) >= 4, timeout=60)
    side.post("/v1/control/cancel-session")
    assert side.post("/v1/models/config", json={"model_backend": "tiny-onnx"}).json() == {"ok": True}
    side.events.wait_for("EmbedWorkerStatus", lambda p: p["backend"] == "tiny-onnx" and p["status"] == "ready")
    missing = side.get("/v1/models/estimate-reembed").json()["missing"]
    assert missing >= 4

    since = side.events.received[-1][0]
    assert side.post("/v1/models/trigger-reembed").json()["ok"] is True
    side.events.wait_for("reembed-progress", lambda p: p["status"] == "running", since=since, timeout=20)
    live = side.post("/v1/control/start-session", json={"board_id": SYNTHETIC}).json()["session"]["id"]
    paused = side.events.wait_for("reembed-progress", lambda p: p["status"] == "paused", since=since, timeout=20)
    assert paused["payload"]["reason"] == "device_connected" and paused["payload"]["done"] < missing
    wait_until(lambda: embedded(side, live) >= 1, timeout=20)  # live epochs go on meanwhile
    side.post("/v1/control/cancel-session")
    assert side.get("/v1/models/estimate-reembed").json()["missing"] > 0

    # Idle again: with no delay the idle run starts by itself and embeds the rest.
    since = side.events.received[-1][0]
    idle = {"batch_size": 5, "batch_delay_ms": 0, "idle_reembed_enabled": True, "idle_reembed_delay_secs": 0}
    assert side.post("/v1/settings/reembed-config", json=idle).json() == {"ok": True}
    side.events.wait_for("reembed-progress", lambda p: p["status"] == "idle_done", since=since, timeout=30)
    assert side.get("/v1/models/estimate-reembed").json()["missing"] == 0
    side.post("/v1/settings/reembed-config", json={})
    assert side.post("/v1/models/config", json={"model_backend": "miso-spectral"}).json() == {"ok": True}

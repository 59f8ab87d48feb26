"""Live EEG from BrainFlow's synthetic board through the capture worker to `/v1/events`."""

from __future__ import annotations

import math
import time

import pytest

from tests.eeg import EventsClient, full_windows, wait_until
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("eeg-live"))
    yield sidecar
    sidecar.terminate()


def test_synthetic_session_streams_bands_at_4_hz_and_stores_its_epochs(side):
    events = EventsClient(side.port, side.token)
    try:
        assert events.wait_for("status", timeout=5)["payload"]["state"] == "disconnected"
        started = side.post("/v1/control/start-session", json={})
        answered = time.time()
        assert started.status_code == 200, started.text
        status = started.json()
        assert status["state"] == "connected"
        assert status["device"]["board_id"] == -1 and status["device"]["n_channels"] == 16
        assert status["device"]["sample_rate_hz"] == 250.0
        session_id = status["session"]["id"]

        first = events.wait_for("EegBands", timeout=5)
        assert events.arrivals("EegBands")[0] - answered < 1.0
        connected = events.wait_for("DeviceConnected")["payload"]
        assert connected["session_id"] == session_id and connected["reconnected"] is False

        payload = first["payload"]
        assert payload["session_id"] == session_id and first["correlation_id"] == session_id
        assert payload["channels"][:3] == ["Fz", "C3", "Cz"]
        for kind in ("absolute", "relative"):
            assert set(payload[kind]) == {"delta", "theta", "alpha", "beta", "gamma"}
            assert all(len(values) == 16 for values in payload[kind].values())
        for channel in range(16):
            assert math.isclose(sum(payload["relative"][b][channel] for b in payload["relative"]), 1.0, rel_tol=1e-9)
        assert set(payload["scores"]) >= {"relaxation", "engagement", "alpha_theta", "theta_beta"}
        assert payload["scores"]["frontal_alpha_asymmetry"] is not None  # F3/F4 and F7/F8 are in the montage

        time.sleep(6.5)
        # Count over whole seconds of the stream, after the first frame.
        arrivals = events.arrivals("EegBands")
        window = [at for at in arrivals if arrivals[0] + 1.0 <= at < arrivals[0] + 6.0]
        assert 17 <= len(window) <= 23, f"{len(window)} EegBands in 5 s"
        status = side.get("/v1/status").json()
        assert status["state"] == "connected"
        assert 0 < status["device"]["battery"] <= 100
        assert status["session"]["id"] == session_id

        ended = side.post("/v1/control/cancel-session")
        assert ended.status_code == 200, ended.text
        session = ended.json()["session"]
        gone = events.wait_for("DeviceDisconnected")["payload"]
        assert gone["reason"] == "user_cancel" and gone["will_retry"] is False
        assert session["status"] == "complete" and session["end_reason"] == "user_cancel"
        # 5 s epochs without overlap: floor(seconds / 5) of them, counted on the samples recorded.
        expected_epochs = int(session["n_samples"] // (5 * 250))
        assert expected_epochs >= 1
        listed = side.get("/v1/history/sessions").json()["sessions"]
        stored = next(s for s in listed if s["id"] == session_id)
        assert stored["n_epochs"] == expected_epochs
        assert stored["duration_s"] == pytest.approx(session["n_samples"] / 250, abs=0.5)

        found = side.post("/v1/history/find-session", json={"ts_utc": stored["start_utc"] + 1}).json()
        assert found["found"] and found["session"]["id"] == session_id
        metrics = side.post(
            "/v1/analysis/metrics", json={"startUtc": stored["start_utc"] - 1, "endUtc": stored["end_utc"] + 1}
        ).json()
        assert metrics["n_epochs"] == expected_epochs
        assert math.isclose(sum(metrics["relative"].values()), 1.0, rel_tol=1e-6)
        assert len(full_windows([e["payload"] for e in events.of_type("EegBands")])) > 0
    finally:
        events.close()


def test_a_second_start_is_409_and_cancel_without_session_is_409(side):
    assert side.post("/v1/control/start-session", json={}).status_code == 200
    try:
        again = side.post("/v1/control/start-session", json={"board_id": -1})
        assert again.status_code == 409 and again.json()["code"] == "session_running"
        retry = side.post("/v1/control/retry-connect")
        assert retry.status_code == 409 and retry.json()["code"] == "not_reconnecting"
    finally:
        assert side.post("/v1/control/cancel-session").status_code == 200
    none = side.post("/v1/control/cancel-session")
    assert none.status_code == 409 and none.json()["code"] == "no_session"


def test_devices_are_remembered_preferred_and_forgotten(side):
    devices = side.get("/v1/devices").json()["devices"]
    synthetic = next(d for d in devices if d["board_id"] == -1)
    assert synthetic["id"] == "synthetic_board" and synthetic["connected"] is False
    preferred = side.post("/v1/devices/set-preferred", json={"id": synthetic["id"]})
    assert preferred.status_code == 200
    assert side.get("/v1/status").json()["preferred_device"] == synthetic["id"]
    started = side.post("/v1/control/start-session", json={})  # no board named: the preferred device
    assert started.status_code == 200 and started.json()["device"]["id"] == synthetic["id"]
    assert next(d for d in side.get("/v1/devices").json()["devices"] if d["id"] == synthetic["id"])["connected"]
    side.post("/v1/control/cancel-session")
    assert side.post("/v1/devices/forget", json={"id": synthetic["id"]}).status_code == 200
    assert all(d["id"] != synthetic["id"] for d in side.get("/v1/devices").json()["devices"])
    missing = side.post("/v1/devices/forget", json={"id": synthetic["id"]})
    assert missing.status_code == 404 and missing.json()["code"] == "device_not_found"


def test_history_stats_daily_minutes_and_delete(side):
    started = side.post("/v1/control/start-session", json={"location": {"lat": 48.1, "lon": 11.6, "label": "lab"}})
    assert started.status_code == 200
    session_id = started.json()["session"]["id"]
    deleting = side.post("/v1/history/sessions/delete", json={"id": session_id})
    assert deleting.status_code == 409  # still recording
    time.sleep(1.5)
    side.post("/v1/control/cancel-session")
    session = next(s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id)

    stats = side.get("/v1/history/stats").json()
    assert stats["n_sessions"] >= 1 and stats["total_recording_secs"] > 0
    daily = side.post("/v1/history/daily-recording-mins", json={"days": 7}).json()
    assert len(daily["days"]) == 7 and daily["days"][-1]["minutes"] > 0
    assert daily["total_minutes"] == pytest.approx(stats["total_recording_mins"], abs=0.01)

    where = side.post("/v1/analysis/location", json={"startUtc": session["start_utc"], "endUtc": session["end_utc"]})
    located = where.json()["locations"]
    assert [(loc["session_id"], loc["latitude"], loc["label"]) for loc in located] == [(session_id, 48.1, "lab")]

    recording = side.data_dir / session["recording_path"]
    assert recording.is_file()
    deleted = side.post("/v1/history/sessions/delete", json={"id": session_id})
    assert deleted.status_code == 200 and deleted.json()["deleted_file"] is True
    assert not recording.exists()
    assert all(s["id"] != session_id for s in side.get("/v1/history/sessions").json()["sessions"])
    again = side.post("/v1/history/sessions/delete", json={"id": session_id})
    assert again.status_code == 404 and again.json()["code"] == "session_not_found"


def test_status_version_and_ws_endpoints(side):
    version = side.get("/v1/version").json()
    assert version["daemon_version"] and version["protocol_version"] == "1"
    port = side.get("/v1/ws-port").json()
    assert port["port"] == side.port and port["url"].endswith("/v1/events")
    events = EventsClient(side.port, side.token)
    try:
        clients = wait_until(lambda: side.get("/v1/ws-clients").json()["clients"])
        assert clients[0]["queued"] >= 0 and clients[0]["dropped"] == 0
        status = side.get("/v1/status").json()
        assert {w["name"] for w in status["workers"]} >= {"capture", "llm"}
        assert status["ws_clients"] == 1
    finally:
        events.close()


def test_openapi_documents_the_eeg_routes_from_their_models(side):
    document = side.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/v1/control/start-session", "/v1/history/sessions", "/v1/analysis/metrics", "/v1/settings/ws-config"):
        assert path in paths, path
    body = paths["/v1/control/start-session"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]
    assert {"board_id", "params", "location", "playback_speed"} <= set(schema["properties"])

"""Lab Streaming Layer (skill-daemon section 4.13): a real pylsl outlet in this process, found,
paired and recorded from by a real sidecar that scans this machine only (see tests/lsl_streams.py)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tests.eeg import EventsClient, wait_until
from tests.lsl_streams import SineOutlet, lsl_env, unique_source_id
from tests.sidecar import Sidecar

BANDS = ("delta", "theta", "alpha", "beta", "gamma")


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("lsl"), env=lsl_env())
    sidecar.events = EventsClient(sidecar.port, sidecar.token)  # type: ignore[attr-defined]
    yield sidecar
    sidecar.events.close()
    sidecar.terminate()


def _pair_body(found: dict) -> dict:
    return {
        "sourceId": found["source_id"],
        "name": found["name"],
        "streamType": found["stream_type"],
        "channels": found["channels"],
        "sampleRate": found["sample_rate"],
    }


def test_discover_lists_an_outlet_of_this_machine_with_its_info(side):
    source_id = unique_source_id()
    with SineOutlet(source_id, name="DiscoverMe", n_channels=6, rate_hz=250.0):
        answer = side.get("/v1/lsl/discover", timeout=30)
        assert answer.status_code == 200, answer.text
        streams = answer.json()
        assert isinstance(streams, list)
        ours = [s for s in streams if s["source_id"] == source_id]
        assert len(ours) == 1, streams
        assert set(ours[0]) == {"name", "stream_type", "channels", "sample_rate", "source_id", "hostname"}
        assert ours[0]["name"] == "DiscoverMe" and ours[0]["stream_type"] == "EEG"
        assert ours[0]["channels"] == 6 and ours[0]["sample_rate"] == 250.0
        assert ours[0]["hostname"]
    gone = side.get("/v1/lsl/discover", timeout=30).json()
    assert all(s["source_id"] != source_id for s in gone)


def test_discover_needs_the_admin_token(side):
    answer = side.http.get("/v1/lsl/discover")
    assert answer.status_code == 401
    assert set(answer.json()) >= {"code", "message"}


def test_pair_upsert_unpair_and_auto_connect_are_saved(side):
    config = side.get("/v1/lsl/config").json()
    assert config == {"auto_connect": False, "paired_streams": []}

    stream = {"sourceId": "dev-1", "name": "Cap", "streamType": "EEG", "channels": 8, "sampleRate": 500.0}
    assert side.post("/v1/lsl/pair", json=stream).json() == {"ok": True}
    assert side.post("/v1/lsl/pair", json={**stream, "sourceId": "dev-2", "name": "Other"}).json() == {"ok": True}
    # Pairing the same source again updates it in place.
    assert side.post("/v1/lsl/pair", json={**stream, "name": "Cap v2", "channels": 16}).json() == {"ok": True}
    paired = side.get("/v1/lsl/config").json()["paired_streams"]
    assert paired == [
        {"source_id": "dev-1", "name": "Cap v2", "stream_type": "EEG", "channels": 16, "sample_rate": 500.0},
        {"source_id": "dev-2", "name": "Other", "stream_type": "EEG", "channels": 8, "sample_rate": 500.0},
    ]

    assert side.post("/v1/lsl/auto-connect", json={"enabled": True}).json() == {"ok": True, "auto_connect": True}
    assert side.get("/v1/lsl/config").json()["auto_connect"] is True
    assert side.post("/v1/lsl/auto-connect", json={"enabled": False}).json() == {"ok": True, "auto_connect": False}

    assert side.post("/v1/lsl/unpair", json={"sourceId": "dev-2"}).json() == {"ok": True}
    assert [s["source_id"] for s in side.get("/v1/lsl/config").json()["paired_streams"]] == ["dev-1"]
    saved = json.loads((side.data_dir / "lsl-config.json").read_text())
    assert [s["source_id"] for s in saved["paired_streams"]] == ["dev-1"]
    assert side.post("/v1/lsl/unpair", json={"sourceId": "dev-1"}).json() == {"ok": True}


def test_idle_timeout_defaults_to_15_s_and_takes_null(side):
    assert side.get("/v1/lsl/idle-timeout").json() == {"secs": 15}
    assert side.post("/v1/lsl/idle-timeout", json={"secs": 40}).json() == {"ok": True, "secs": 40}
    assert side.get("/v1/lsl/idle-timeout").json() == {"secs": 40}
    assert side.post("/v1/lsl/idle-timeout", json={"secs": None}).json() == {"ok": True, "secs": None}
    assert side.get("/v1/lsl/idle-timeout").json() == {"secs": None}
    assert side.post("/v1/lsl/idle-timeout", json={"secs": 15}).json() == {"ok": True, "secs": 15}


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/lsl/pair", {"sourceId": "x", "name": "n", "streamType": "EEG", "channels": 4}, 422, "sampleRate"),
        ("/v1/lsl/pair", {"name": "n", "streamType": "EEG", "channels": 4, "sampleRate": 250}, 422, "sourceId"),
        (
            "/v1/lsl/pair",
            {"sourceId": "x", "name": "n", "streamType": "EEG", "channels": "four", "sampleRate": 250},
            422,
            "channels",
        ),
        (
            "/v1/lsl/pair",
            {"sourceId": "x", "name": "n", "streamType": "EEG", "channels": 0, "sampleRate": 250},
            422,
            "channels",
        ),
        (
            "/v1/lsl/pair",
            {"sourceId": "", "name": "n", "streamType": "EEG", "channels": 4, "sampleRate": 250},
            422,
            "sourceId",
        ),
        ("/v1/lsl/unpair", {}, 422, "sourceId"),
        ("/v1/lsl/unpair", {"sourceId": "never-paired"}, 404, "never-paired"),
        ("/v1/lsl/auto-connect", {"enabled": "yes please"}, 422, "enabled"),
        ("/v1/lsl/auto-connect", {}, 422, "enabled"),
        ("/v1/lsl/idle-timeout", {}, 422, "secs"),
        ("/v1/lsl/idle-timeout", {"secs": -1}, 422, "secs"),
        ("/v1/lsl/idle-timeout", {"secs": "soon"}, 422, "secs"),
    ],
)
def test_bad_input_is_a_clear_4xx_in_the_skill_envelope(side, path, body, status, needle):
    answer = side.post(path, json=body)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert set(error) >= {"code", "message"} and needle in error["message"], error
    assert side.get("/v1/lsl/config").json()["paired_streams"] == []  # nothing half-saved


def test_a_discovered_stream_pairs_as_listed(side):
    source_id = unique_source_id()
    with SineOutlet(source_id, n_channels=4):
        found = next(s for s in side.get("/v1/lsl/discover", timeout=30).json() if s["source_id"] == source_id)
        assert side.post("/v1/lsl/pair", json=_pair_body(found)).json() == {"ok": True}
        paired = side.get("/v1/lsl/config").json()["paired_streams"]
        assert {k: found[k] for k in ("source_id", "name", "stream_type", "channels", "sample_rate")} in paired
    assert side.post("/v1/lsl/unpair", json={"sourceId": source_id}).json() == {"ok": True}


# --- recording from a paired stream (stage 2) -------------------------------------------------


def _pair(side: Sidecar, source_id: str) -> dict:
    found = wait_until(
        lambda: next((s for s in side.get("/v1/lsl/discover", timeout=30).json() if s["source_id"] == source_id), None),
        timeout=30,
    )
    assert side.post("/v1/lsl/pair", json=_pair_body(found)).json() == {"ok": True}
    return found


def _epochs_of(side: Sidecar, session_id: str) -> int:
    with sqlite3.connect(side.data_dir / "miso.db") as db:
        return db.execute("SELECT COUNT(*) FROM eeg_epochs WHERE session_id = ?", [session_id]).fetchone()[0]


def _of_session(session_id: str):
    return lambda payload: payload.get("session_id") == session_id


def test_a_paired_stream_records_bands_epochs_and_embeddings_and_reconnects_when_it_vanishes(side):
    events = side.events
    source_id = unique_source_id()
    outlet = SineOutlet(source_id, name="AlphaCap", n_channels=4, rate_hz=250.0, freq_hz=10.0)
    try:
        _pair(side, source_id)
        started = side.post("/v1/control/start-session", json={"device_id": f"lsl:{source_id}"})
        assert started.status_code == 200, started.text
        status = started.json()
        session_id = status["session"]["id"]
        assert status["state"] == "connected"
        device = status["device"]
        assert device["id"] == f"lsl:{source_id}" and device["board_name"] == "AlphaCap"
        assert device["n_channels"] == 4 and device["sample_rate_hz"] == 250.0
        assert device["channels"] == ["E1", "E2", "E3", "E4"]  # the labels the outlet declares

        frame = events.wait_for(
            "EegBands", lambda p: p["session_id"] == session_id and p["window_s"] == 2.0, timeout=30
        )["payload"]
        assert frame["channels"] == ["E1", "E2", "E3", "E4"]
        for channel in range(4):  # a 10 Hz sine: alpha holds most of the power
            relative = {band: frame["relative"][band][channel] for band in BANDS}
            assert max(relative, key=relative.get) == "alpha", relative

        embedding = events.wait_for("EegEmbedding", _of_session(session_id), timeout=60)["payload"]
        assert embedding["session_id"] == session_id
        wait_until(lambda: _epochs_of(side, session_id) >= 1, timeout=30)

        # The outlet goes away: the session waits for it, and takes it back under the same source id.
        since = events.events[-1][0] if events.events else 0.0
        outlet.close()
        lost = events.wait_for("DeviceDisconnected", _of_session(session_id), timeout=30, since=since)["payload"]
        assert lost["will_retry"] is True
        assert side.get("/v1/status").json()["state"] == "reconnecting"
        outlet = SineOutlet(source_id, name="AlphaCap", n_channels=4, rate_hz=250.0, freq_hz=10.0)
        back = events.wait_for(
            "DeviceConnected", lambda p: p["session_id"] == session_id and p["reconnected"], timeout=60, since=since
        )["payload"]
        assert back["n_channels"] == 4
        before = _epochs_of(side, session_id)
        events.wait_for("EegBands", _of_session(session_id), timeout=30, since=since)
        wait_until(lambda: _epochs_of(side, session_id) > before, timeout=30)

        ended = side.post("/v1/control/cancel-session")
        assert ended.status_code == 200, ended.text
        session = ended.json()["session"]
        assert session["status"] == "complete" and session["end_reason"] == "user_cancel"
        assert session["n_samples"] > 0
        listed = side.get("/v1/history/sessions").json()["sessions"]
        stored = next(s for s in listed if s["id"] == session_id)
        assert stored["n_epochs"] == _epochs_of(side, session_id) >= 2
        assert stored["channel_names"] == ["E1", "E2", "E3", "E4"]
        recording = side.data_dir / session["recording_path"]
        fields = recording.read_text().splitlines()[0].split("\t")
        assert len(fields) == 5  # four channels (µV), then the UNIX timestamp
        # The recording reads back through the same pipeline offline: alpha again.
        offline = side.post("/v1/analysis/csv-metrics", json={"path": session["recording_path"]})
        assert offline.status_code == 200, offline.text
        summary = offline.json()
        assert summary["n_samples"] == session["n_samples"] and summary["n_epochs"] >= 2
        assert max(BANDS, key=lambda band: summary["relative"][band]) == "alpha", summary["relative"]
    finally:
        outlet.close()
        side.post("/v1/lsl/unpair", json={"sourceId": source_id})


def test_a_silent_stream_ends_its_session_after_the_idle_timeout(side):
    events = side.events
    source_id = unique_source_id()
    with SineOutlet(source_id, n_channels=4) as outlet:
        _pair(side, source_id)
        assert side.post("/v1/lsl/idle-timeout", json={"secs": 2}).json() == {"ok": True, "secs": 2}
        try:
            started = side.post("/v1/control/start-session", json={"device_id": f"lsl:{source_id}"})
            assert started.status_code == 200, started.text
            session_id = started.json()["session"]["id"]
            events.wait_for("EegBands", _of_session(session_id), timeout=30)
            outlet.pause()  # still announced, sending nothing
            gone = events.wait_for("DeviceDisconnected", _of_session(session_id), timeout=30)["payload"]
            assert gone["reason"] == "idle_timeout" and gone["will_retry"] is False
            session = wait_until(
                lambda: next(
                    (s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id), None
                )
            )
            assert session["end_reason"] == "idle_timeout"
            assert side.get("/v1/status").json()["state"] == "disconnected"
        finally:
            side.post("/v1/lsl/idle-timeout", json={"secs": 15})
            side.post("/v1/lsl/unpair", json={"sourceId": source_id})


def test_start_session_on_an_unpaired_stream_is_404(side):
    answer = side.post("/v1/control/start-session", json={"device_id": "lsl:nobody-paired-this"})
    assert answer.status_code == 404, answer.text
    assert "pair" in answer.json()["message"]


def test_auto_connect_starts_a_session_when_a_paired_stream_appears(side):
    events = side.events
    source_id = unique_source_id()
    assert side.post(
        "/v1/lsl/pair",
        json={"sourceId": source_id, "name": "LateCap", "streamType": "EEG", "channels": 4, "sampleRate": 250.0},
    ).json() == {"ok": True}
    assert side.post("/v1/lsl/auto-connect", json={"enabled": True}).json()["auto_connect"] is True
    try:
        with SineOutlet(source_id, name="LateCap", n_channels=4):
            connected = events.wait_for("DeviceConnected", lambda p: p["device_id"] == f"lsl:{source_id}", timeout=60)[
                "payload"
            ]
            session_id = connected["session_id"]
            events.wait_for("EegBands", _of_session(session_id), timeout=30)
            ended = side.post("/v1/control/cancel-session")
            assert ended.status_code == 200, ended.text
            assert ended.json()["session"]["id"] == session_id
    finally:
        side.post("/v1/lsl/auto-connect", json={"enabled": False})
        side.post("/v1/lsl/unpair", json={"sourceId": source_id})


def test_auto_connect_leaves_a_cancelled_stream_alone_until_it_disappears(tmp_path):
    """The capture worker's scanner, run here on a real outlet: it reports a stream appearing, not one still there."""
    from miso_runtime.lsl.autoconnect import AutoConnect
    from miso_runtime.lsl.config import LslConfig, PairedStream
    from workers.protocol.capture import LslStreamFound

    source_id = unique_source_id()
    config = tmp_path / "lsl-config.json"
    paired = PairedStream(source_id=source_id, name="Cap", stream_type="EEG", channels=4, sample_rate=250.0)
    config.write_text(LslConfig(auto_connect=False, paired_streams=[paired]).model_dump_json())
    sent: list = []
    scanner = AutoConnect(config, sent.append, poll_s=0.0, wait_s=1.0)
    with SineOutlet(source_id, n_channels=4):
        scanner.tick()
        assert sent == []  # auto-connect is off
        config.write_text(LslConfig(auto_connect=True, paired_streams=[paired]).model_dump_json())
        scanner.tick()
        assert sent == [LslStreamFound(source_id)]
        scanner.session_ended(source_id, "user_cancel")
        scanner.tick()
        assert sent == [LslStreamFound(source_id)]  # still announced: left alone
    scanner.tick()  # gone: the hold-off ends
    with SineOutlet(source_id, n_channels=4):
        scanner.tick()
        assert sent == [LslStreamFound(source_id), LslStreamFound(source_id)]

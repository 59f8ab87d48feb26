"""Recordings replayed through BrainFlow's playback board and the same live pipeline."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.eeg import PLAYBACK, SYNTHETIC, EventsClient, full_windows, sine_eeg, write_recording
from tests.sidecar import Sidecar

RATE = 250.0


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("eeg-playback"))
    yield sidecar
    sidecar.terminate()


@pytest.fixture
def events(side):
    client = EventsClient(side.port, side.token)
    client.wait_for("status", timeout=5)
    yield client
    client.close()


def replay(side, events, path, speed=10.0, **extra) -> tuple[str, list[dict]]:
    """Replay ``path`` to its end; returns the session id and its full-window EegBands payloads."""
    since = time.time()
    body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": SYNTHETIC}, "playback_speed": speed}
    started = side.post("/v1/control/start-session", json={**body, **extra})
    assert started.status_code == 200, started.text
    session_id = started.json()["session"]["id"]
    try:
        ended = events.wait_for("DeviceDisconnected", lambda p: p["session_id"] == session_id, timeout=60, since=since)
    except AssertionError as exc:  # say where the session got to, server side
        status = side.get("/v1/status").text
        log = "\n".join(side.stderr_text().splitlines()[-40:])
        raise AssertionError(f"{exc}\n/v1/status: {status}\nsidecar log:\n{log}") from None
    ended = ended["payload"]
    assert ended["reason"] == "end_of_file", ended
    frames = [e["payload"] for e in events.of_type("EegBands", since) if e["payload"]["session_id"] == session_id]
    return session_id, full_windows(frames)


def set_filters(side, **changes):
    answer = side.post("/v1/settings/filter-config", json=changes)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_10_hz_sine_is_alpha_on_every_channel(side, events, tmp_path):
    set_filters(side, notch_hz=50, bandpass_enabled=True)
    path = write_recording(tmp_path / "alpha.csv", SYNTHETIC, sine_eeg(10.0, 12, RATE, 16))
    session_id, frames = replay(side, events, path)
    assert len(frames) >= 30
    for frame in frames:
        assert min(frame["relative"]["alpha"]) > 0.6, frame["relative"]
    session = next(s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id)
    assert session["status"] == "complete" and session["end_reason"] == "end_of_file"
    assert session["n_samples"] == 12 * 250
    assert session["n_epochs"] == 2


def test_2_hz_sine_is_delta(side, events, tmp_path):
    set_filters(side, notch_hz=50, bandpass_enabled=True)
    path = write_recording(tmp_path / "delta.csv", SYNTHETIC, sine_eeg(2.0, 10, RATE, 16))
    _session, frames = replay(side, events, path)
    assert frames
    for frame in frames:
        assert min(frame["relative"]["delta"]) > 0.6, frame["relative"]


def test_mains_noise_is_removed_by_the_notch(side, events, tmp_path):
    """10 Hz EEG under 50 Hz mains five times stronger: gamma (30-50 Hz) holds the mains power
    unless the notch takes it out. The band-pass is off so only the notch can do it."""
    t = np.arange(int(10 * RATE)) / RATE
    signal = sine_eeg(10.0, 10, RATE, 16, amplitude_uv=10.0) + 50.0 * np.sin(2 * np.pi * 50.0 * t)
    path = write_recording(tmp_path / "mains.csv", SYNTHETIC, signal)
    try:
        set_filters(side, notch_hz=None, bandpass_enabled=False)
        _session, without = replay(side, events, path)
        set_filters(side, notch_hz=50, bandpass_enabled=False)
        _session, with_notch = replay(side, events, path)
    finally:
        set_filters(side, notch_hz=50, bandpass_enabled=True)
    assert without and with_notch
    assert min(min(f["relative"]["gamma"]) for f in without) > 0.5
    for frame in with_notch:
        assert max(frame["relative"]["gamma"]) < 0.05, frame["relative"]["gamma"]
        assert min(frame["relative"]["alpha"]) > 0.9


def test_a_recorded_session_replays_to_the_same_band_powers(side, events):
    """Round trip: the raw file of a live synthetic session, replayed, gives the frames seen live."""
    set_filters(side, notch_hz=50, bandpass_enabled=True)
    since = time.time()
    started = side.post("/v1/control/start-session", json={"board_id": SYNTHETIC})
    assert started.status_code == 200
    live_id = started.json()["session"]["id"]
    time.sleep(4.0)
    session = side.post("/v1/control/cancel-session").json()["session"]
    live = {
        f["window_end_sample"]: f
        for f in full_windows([e["payload"] for e in events.of_type("EegBands", since)])
        if f["session_id"] == live_id
    }
    _replayed_id, frames = replay(side, events, side.data_dir / session["recording_path"])
    replayed = {f["window_end_sample"]: f for f in frames}
    common = sorted(set(live) & set(replayed))
    assert len(common) >= 6, (sorted(live), sorted(replayed))
    for end in common:
        for band in ("delta", "theta", "alpha", "beta", "gamma"):
            # The file keeps 6 decimals of each µV value; band powers agree far better than 0.1 %.
            np.testing.assert_allclose(replayed[end]["absolute"][band], live[end]["absolute"][band], rtol=1e-3)


def test_csv_metrics_of_a_recording_inside_the_data_dir(side, events, tmp_path):
    path = write_recording(side.data_dir / "imports" / "alpha.csv", SYNTHETIC, sine_eeg(10.0, 11, RATE, 16))
    answer = side.post("/v1/analysis/csv-metrics", json={"path": "imports/alpha.csv", "board_id": SYNTHETIC})
    assert answer.status_code == 200, answer.text
    metrics = answer.json()
    assert metrics["n_samples"] == 11 * 250 and metrics["n_epochs"] == 2
    assert metrics["relative"]["alpha"] > 0.9
    absolute = side.post("/v1/analysis/csv-metrics", json={"path": str(path), "board_id": SYNTHETIC})
    assert absolute.json()["n_epochs"] == 2
    unnamed = side.post("/v1/analysis/csv-metrics", json={"path": "imports/alpha.csv"})
    assert unnamed.status_code == 400 and unnamed.json()["code"] == "board_id_required"


def test_timeseries_buckets_past_800_epochs_and_day_metrics_per_session(side, events, tmp_path):
    """7 minutes replayed with 4.5 s of overlap make 831 epochs (one every 0.5 s)."""
    path = write_recording(tmp_path / "long.csv", SYNTHETIC, sine_eeg(10.0, 420, RATE, 16))
    assert side.post("/v1/settings/embedding-overlap", json={"overlap_secs": 4.5}).status_code == 200
    try:
        session_id, _frames = replay(side, events, path, speed=100.0)
    finally:
        side.post("/v1/settings/embedding-overlap", json={"overlap_secs": 0})
    session = next(s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id)
    assert session["n_epochs"] == (420 - 5) * 2 + 1
    window = {"startUtc": session["start_utc"] - 1, "endUtc": session["end_utc"] + 1}

    series = side.post("/v1/analysis/timeseries", json=window).json()
    assert series["n_epochs"] == 831 and series["downsampled"] is True
    assert 400 <= series["n_rows"] <= 800
    assert sum(row["n_epochs"] for row in series["rows"]) == 831
    times = [row["t_utc"] for row in series["rows"]]
    assert times == sorted(times)
    assert all(row["relative"]["alpha"] > 0.6 for row in series["rows"])

    short = {"startUtc": session["start_utc"], "endUtc": session["start_utc"] + 20}
    per_epoch = side.post("/v1/analysis/timeseries", json=short).json()
    assert per_epoch["downsampled"] is False and per_epoch["n_rows"] == per_epoch["n_epochs"] > 0

    by_id = side.post("/v1/analysis/day-metrics", json={"session_ids": [session_id]}).json()
    assert by_id["n_sessions"] == 1
    assert by_id["sessions"][0]["session"]["id"] == session_id
    assert by_id["sessions"][0]["metrics"]["n_epochs"] == 831
    by_range = side.post("/v1/analysis/day-metrics", json=window).json()
    assert session_id in [entry["session"]["id"] for entry in by_range["sessions"]]

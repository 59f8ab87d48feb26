"""Bad input on the EEG routes: a clear 4xx in the skill envelope, and capture stays healthy."""

from __future__ import annotations

import time

import pytest

from tests.eeg import PLAYBACK, SYNTHETIC, sine_eeg, write_recording
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("eeg-bad-input"))
    yield sidecar
    sidecar.terminate()


def error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"code", "message"} and body["code"] == code, body
    assert "Traceback" not in body["message"]
    return body["message"]


def capture_healthy(side) -> None:
    """A synthetic session still starts and stops after the bad request."""
    started = side.post("/v1/control/start-session", json={"board_id": SYNTHETIC})
    assert started.status_code == 200, started.text
    assert side.post("/v1/control/cancel-session").status_code == 200


@pytest.mark.parametrize(
    "body, status, code, says",
    [
        ({"board_id": 777}, 400, "invalid_board", "unknown board id 777"),
        (
            {"board_id": 0, "params": {"serial_port": "/dev/no-such-port"}},
            400,
            "board_unavailable",
            "UNABLE_TO_OPEN_PORT",
        ),
        ({"board_id": PLAYBACK, "params": {"master_board": SYNTHETIC}}, 400, "invalid_board", "params.file"),
        (
            {"board_id": PLAYBACK, "params": {"file": "/no/such.csv", "master_board": SYNTHETIC}},
            400,
            "invalid_board",
            "/no/such.csv",
        ),
        ({"board_id": PLAYBACK, "params": {"file": "/etc/hostname"}}, 400, "invalid_board", "master_board"),
        ({"device_id": "never-seen"}, 404, "device_not_found", "never-seen"),
        ({"board_id": "abc"}, 422, "invalid_request", "board_id"),
        ({"params": {"serial_port": 5}}, 422, "invalid_request", "params.serial_port"),
        ({"params": {"usb": "x"}}, 422, "invalid_request", "params.usb"),
        ({"location": {"lat": 123, "lon": 0}}, 422, "invalid_request", "location"),
        ({"board_id": PLAYBACK, "playback_speed": 0}, 422, "invalid_request", "playback_speed"),
    ],
)
def test_bad_start_session_requests(side, body, status, code, says):
    message = error(side.post("/v1/control/start-session", json=body), status, code)
    assert says in message
    assert side.get("/v1/status").json()["state"] == "disconnected"
    capture_healthy(side)


def test_a_playback_file_that_is_not_a_recording_fails_cleanly(side, tmp_path):
    junk = tmp_path / "junk.csv"
    junk.write_text("this is not\ta recording\n")
    response = side.post(
        "/v1/control/start-session",
        json={"board_id": PLAYBACK, "params": {"file": str(junk), "master_board": SYNTHETIC}, "playback_speed": 5},
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_board"
    assert not list((side.data_dir / "recordings").rglob("*.replay.csv"))
    assert side.get("/v1/history/sessions").json()["total"] == 0 or all(
        s["status"] != "recording" for s in side.get("/v1/history/sessions").json()["sessions"]
    )
    capture_healthy(side)


@pytest.mark.parametrize(
    "path",
    ["/v1/analysis/metrics", "/v1/analysis/timeseries", "/v1/analysis/location", "/v1/analysis/day-metrics"],
)
def test_start_after_end_is_400_and_an_empty_range_is_zero_epochs(side, path):
    message = error(side.post(path, json={"startUtc": 200, "endUtc": 100}), 400, "invalid_range")
    assert "startUtc" in message
    empty = side.post(path, json={"startUtc": 100, "endUtc": 200})
    assert empty.status_code == 200
    body = empty.json()
    assert body.get("n_epochs", 0) == 0 and body.get("n_sessions", 0) == 0
    error(side.post(path, json={"startUtc": "yesterday", "endUtc": 1}), 422, "invalid_request")


def test_empty_metrics_answer_defaults(side):
    body = side.post("/v1/analysis/metrics", json={"startUtc": 100, "endUtc": 200}).json()
    assert body["n_epochs"] == 0
    assert body["relative"] == {"delta": None, "theta": None, "alpha": None, "beta": None, "gamma": None}


@pytest.mark.parametrize(
    "path, status, code",
    [
        ("../outside.csv", 400, "invalid_path"),
        ("recordings/../../outside.csv", 400, "invalid_path"),
        ("/etc/passwd", 403, "path_outside_data_dir"),
        ("recordings/none.csv", 404, "file_not_found"),
    ],
)
def test_csv_paths_must_stay_inside_the_data_dir(side, path, status, code):
    error(side.post("/v1/analysis/csv-metrics", json={"path": path, "board_id": SYNTHETIC}), status, code)


def test_csv_symlink_out_of_the_data_dir_is_refused(side, tmp_path):
    outside = write_recording(tmp_path / "outside.csv", SYNTHETIC, sine_eeg(10.0, 6, 250, 16))
    link = side.data_dir / "link.csv"
    link.symlink_to(outside)
    error(
        side.post("/v1/analysis/csv-metrics", json={"path": "link.csv", "board_id": SYNTHETIC}),
        403,
        "path_outside_data_dir",
    )


def test_csv_that_is_not_a_recording_of_that_board(side):
    (side.data_dir / "text.csv").write_text("hello\n")
    error(
        side.post("/v1/analysis/csv-metrics", json={"path": "text.csv", "board_id": SYNTHETIC}),
        422,
        "unreadable_recording",
    )
    error(side.post("/v1/analysis/csv-metrics", json={"path": "text.csv", "board_id": 999}), 400, "invalid_board")


def test_history_bad_input(side):
    error(side.post("/v1/history/sessions/delete", json={"id": "no-such-session"}), 404, "session_not_found")
    error(side.post("/v1/history/sessions/delete", json={}), 422, "invalid_request")
    error(side.post("/v1/history/daily-recording-mins", json={"days": 0}), 422, "invalid_request")
    error(side.post("/v1/history/find-session", json={"ts_utc": "noon"}), 422, "invalid_request")
    assert side.post("/v1/history/find-session", json={"ts_utc": 5}).json() == {"found": False, "session": None}
    error(side.get("/v1/history/sessions?limit=0"), 422, "invalid_request")
    error(side.post("/v1/analysis/day-metrics", json={"session_ids": ["nope"]}), 404, "session_not_found")
    error(side.post("/v1/analysis/day-metrics", json={}), 400, "invalid_request")


def test_settings_bad_input_changes_nothing(side):
    before = side.get("/v1/settings/filter-config").json()
    error(side.post("/v1/settings/filter-config", json={"notch_hz": 55}), 422, "invalid_request")
    message = error(
        side.post("/v1/settings/filter-config", json={"bandpass_low_hz": 30, "bandpass_high_hz": 20}),
        422,
        "invalid_request",
    )
    assert "bandpass_low_hz" in message
    error(side.post("/v1/settings/filter-config", json={"band_window_secs": 60}), 422, "invalid_request")
    assert side.get("/v1/settings/filter-config").json() == before
    error(side.post("/v1/settings/embedding-overlap", json={"overlap_secs": 4.6}), 422, "invalid_request")
    error(side.post("/v1/settings/embedding-overlap", json={"overlap_secs": -1}), 422, "invalid_request")
    assert side.get("/v1/settings/embedding-overlap").json()["overlap_secs"] == 0.0
    error(side.post("/v1/settings/daemon-watchdog", json={"backoff_factor": 0.5}), 422, "invalid_request")


def test_overlap_setting_changes_the_epochs_of_a_replay(side, tmp_path):
    path = write_recording(tmp_path / "twenty.csv", SYNTHETIC, sine_eeg(10.0, 20, 250, 16))
    counts = {}
    try:
        for overlap in (0.0, 2.5):
            assert side.post("/v1/settings/embedding-overlap", json={"overlap": overlap}).status_code == 200
            body = {
                "board_id": PLAYBACK,
                "params": {"file": str(path), "master_board": SYNTHETIC},
                "playback_speed": 20,
            }
            session_id = side.post("/v1/control/start-session", json=body).json()["session"]["id"]
            for _ in range(100):
                session = next(s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id)
                if session["status"] != "recording":
                    break
                time.sleep(0.1)
            counts[overlap] = session["n_epochs"]
            assert session["overlap_s"] == overlap
    finally:
        side.post("/v1/settings/embedding-overlap", json={"overlap_secs": 0})
    # 20 s of data: 4 epochs without overlap; with 2.5 s overlap, one every 2.5 s: floor((20 - 5) / 2.5) + 1 = 7.
    assert counts == {0.0: 4, 2.5: 7}

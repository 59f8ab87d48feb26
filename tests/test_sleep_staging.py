"""Sleep staging through a real sidecar: the ``staging`` worker, YASA, the store and the routes.

The reference for every YASA answer is ``yasa.SleepStaging`` called here on the same samples
(the recording file as BrainFlow's own reader reads it) and the same channel.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import warnings
from pathlib import Path

import mne
import numpy as np
import pytest
import yasa
from brainflow.board_shim import BoardShim
from brainflow.data_filter import DataFilter

from miso_runtime.neuro.sample_file import read_channel, samples_path
from miso_runtime.store.database import open_database
from miso_runtime.store.eeg import EpochRepository, NewSession, SessionRepository, SessionStatus
from tests.eeg import GANGLION, PLAYBACK, listening_sidecar, wait_until, write_recording
from tests.exg_fixtures import real_eeg_uv
from tests.sidecar import Sidecar
from tests.sleep_sessions import MUSE_S, seed_session
from tests.sleep_signal import night_start_utc_s, synthetic_night

CODES = {"WAKE": 0, "N1": 1, "N2": 2, "N3": 3, "REM": 5}
LABELS = ("wake", "n1", "n2", "n3", "rem")
DAY = 86_400


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    with listening_sidecar(tmp_path_factory.mktemp("sleep")) as sidecar:
        yield sidecar


@pytest.fixture(scope="module")
def night():
    return synthetic_night(2.0, 256.0, 2, seed=0)


def staging_events(side: Sidecar, session_id: str) -> list[dict]:
    return [e["payload"] for e in side.events.of_type("sleep-staging") if e["payload"]["session_id"] == session_id]


def file_channel(path: Path, board_id: int, index: int) -> np.ndarray:
    """EEG channel ``index`` of a recording, as BrainFlow's own reader reads the file (µV)."""
    data = DataFilter.read_file(str(path))
    return data[BoardShim.get_eeg_channels(board_id)[index]]


def yasa_direct(signal_uv: np.ndarray, rate_hz: float, name: str) -> tuple[list[int], np.ndarray]:
    raw = mne.io.RawArray(signal_uv[None, :] * 1e-6, mne.create_info([name], rate_hz, "eeg"), verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hypnogram = yasa.SleepStaging(raw, eeg_name=name).predict()
    stages = [CODES[str(label)] for label in hypnogram.hypno.values]
    return stages, hypnogram.proba[["WAKE", "N1", "N2", "N3", "REM"]].to_numpy()


def staged(side: Sidecar, start: float, end: float, **extra) -> dict:
    """The answer once every staging it starts is done (the tests wait longer than the default 8 s)."""
    body = {"startUtc": int(start), "endUtc": int(end), "waitSecs": 300, **extra}
    answer = side.post("/v1/analysis/sleep", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def probabilities(body: dict) -> np.ndarray:
    return np.array([[epoch["probabilities"][name] for name in LABELS] for epoch in body["epochs"]])


def test_a_synthetic_night_is_staged_exactly_as_yasa_stages_it(side, night):
    start = night_start_utc_s()
    session_id, path = seed_session(side.data_dir, night.signal_uv, start)
    body = staged(side, start - 60, start + 3 * 3600)

    # Muse S rows TP9, AF7, AF8, TP10 hold channels 0, 1, 0, 1; auto picks TP10 (row 4).
    [entry] = body["sessions"]
    assert entry["status"] == "staged" and entry["channel"] == "TP10" and not entry["truncated"]
    expected_stages, expected_proba = yasa_direct(night.signal_uv[1], 256.0, "TP10")
    assert [e["stage"] for e in body["epochs"]] == expected_stages
    assert np.array_equal(probabilities(body), expected_proba)
    assert [e["confidence"] for e in body["epochs"]] == expected_proba.max(axis=1).tolist()
    assert set(expected_stages) == {0, 1, 2, 3, 5}  # the night exercises every stage
    assert [e["utc"] for e in body["epochs"]] == [int(start) + 30 * i for i in range(len(expected_stages))]

    summary = body["summary"]
    assert summary["epoch_secs"] == 30.0 and summary["total_epochs"] == len(expected_stages) == 240
    for code, name in zip((0, 1, 2, 3, 5), LABELS, strict=True):
        assert summary[f"{name}_epochs"] == expected_stages.count(code)
    stats = body["statistics"]
    assert stats["time_in_bed_min"] == 120.0
    assert stats["total_sleep_time_min"] == (240 - expected_stages.count(0)) / 2
    assert body["method"] == "yasa" and body["version"] == f"yasa-{yasa.__version__}"

    phases = [p["phase"] for p in staging_events(side, session_id)]
    assert phases[0] == "queued" and phases[-1] == "done"
    assert {"reading", "staging", "storing"} <= set(phases)
    fractions = [p["fraction"] for p in staging_events(side, session_id) if p["phase"] == "reading"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_the_stored_staging_answers_a_second_request_without_a_new_job(side, night):
    start = night_start_utc_s()
    first = staged(side, start - 60, start + 3 * 3600)
    jobs_before = len(side.events.of_type("sleep-staging"))
    again = staged(side, start - 60, start + 3 * 3600)
    part = staged(side, start + 3600, start + 5400)
    assert again == first
    assert part["epochs"] == [e for e in first["epochs"] if start + 3600 <= e["utc"] <= start + 5400]
    assert len(side.events.of_type("sleep-staging")) == jobs_before


def test_real_eeg_equals_yasa_on_either_channel(side):
    start = night_start_utc_s() + 2 * DAY
    session_id, path = seed_session(side.data_dir, real_eeg_uv(), start, board_id=GANGLION)
    # Ganglion rows 1-4 hold F4-A1, CZ-A2, F4-A1, CZ-A2; BrainFlow names them ch1..ch4.
    auto = staged(side, start, start + 400)
    assert auto["sessions"][0]["channel"] == "ch1"
    stages, proba = yasa_direct(real_eeg_uv()[0], 200.0, "ch1")
    assert [e["stage"] for e in auto["epochs"]] == stages and np.array_equal(probabilities(auto), proba)

    central = staged(side, start, start + 400, channel="ch2")
    assert central["sessions"][0]["channel"] == "ch2" and central["sessions"][0]["channel_reason"] == "configured"
    stages, proba = yasa_direct(real_eeg_uv()[1], 200.0, "ch2")
    assert [e["stage"] for e in central["epochs"]] == stages and np.array_equal(probabilities(central), proba)
    assert len(stages) == 12  # 6 minutes

    # Without its binary copy the recording is parsed from its text (6 decimals): YASA's answer on those values.
    text_id, text_path = seed_session(side.data_dir, real_eeg_uv(), start + 3600, board_id=GANGLION)
    samples_path(text_path).unlink()
    from_text = staged(side, start + 3600, start + 4000, channel="ch2")
    assert from_text["sessions"][0]["session_id"] == text_id and from_text["sessions"][0]["status"] == "staged"
    stages, proba = yasa_direct(file_channel(text_path, GANGLION, 1), 200.0, "ch2")
    assert [e["stage"] for e in from_text["epochs"]] == stages and np.array_equal(probabilities(from_text), proba)


def test_changing_the_channel_or_the_method_in_the_settings_stages_again(side, night):
    start = night_start_utc_s()
    by_tp10 = staged(side, start - 60, start + 3 * 3600)
    try:
        changed = side.post("/v1/settings/sleep-config", json={"config": {"channel": "TP9"}})
        assert changed.status_code == 200 and changed.json() == {"ok": True}
        assert side.get("/v1/settings/sleep-config").json()["channel"] == "TP9"
        by_tp9 = staged(side, start - 60, start + 3 * 3600)
        assert by_tp9["sessions"][0]["channel"] == "TP9"
        stages, proba = yasa_direct(night.signal_uv[0], 256.0, "TP9")
        assert [e["stage"] for e in by_tp9["epochs"]] == stages and np.array_equal(probabilities(by_tp9), proba)
        assert not np.array_equal(probabilities(by_tp9), probabilities(by_tp10))

        side.post("/v1/settings/sleep-config", json={"method": "thresholds"})
        assert staged(side, start - 60, start + 3 * 3600)["method"] == "thresholds"
    finally:
        side.post("/v1/settings/sleep-config", json={"method": "yasa", "channel": "auto"})
    jobs_before = len(side.events.of_type("sleep-staging"))
    assert staged(side, start - 60, start + 3 * 3600) == by_tp10  # still stored under the auto key
    assert len(side.events.of_type("sleep-staging")) == jobs_before


def test_sleep_config_keeps_the_daemon_schedule_raw_or_wrapped(side):
    config = side.get("/v1/settings/sleep-config").json()
    assert {k: config[k] for k in ("bedtime", "wake_time", "preset")} == {
        "bedtime": "23:00",
        "wake_time": "07:00",
        "preset": "default",
    }
    try:
        wrapped = {"config": {"bedtime": "22:15", "wake_time": "06:45", "preset": "early_bird"}}
        assert side.post("/v1/settings/sleep-config", json=wrapped).status_code == 200
        assert side.get("/v1/settings/sleep-config").json()["bedtime"] == "22:15"
        raw = {"bedtime": "00:30", "wake_time": "08:30", "preset": "night_owl"}
        assert side.post("/v1/settings/sleep-config", json=raw).status_code == 200
        after = side.get("/v1/settings/sleep-config").json()
        assert after["preset"] == "night_owl" and after["method"] == "yasa"  # the schedule leaves the method
        for bad in ({"bedtime": "25:00"}, {"preset": "owl"}, {"method": "guess"}, {"config": {"wake_time": "7"}}):
            refused = side.post("/v1/settings/sleep-config", json=bad)
            assert refused.status_code == 422 and refused.json()["code"] == "invalid_request", bad
        assert side.get("/v1/settings/sleep-config").json()["preset"] == "night_owl"
    finally:
        side.post("/v1/settings/sleep-config", json={"bedtime": "23:00", "wake_time": "07:00", "preset": "default"})


# --- the thresholds method --------------------------------------------------------------------

#: (rel_delta, rel_theta, rel_alpha, rel_beta) -> the daemon's stage, boundaries included.
THRESHOLD_CASES = [
    ((0.20, 0.20, 0.31, 0.10), 0),  # alpha above 0.30: wake
    ((0.20, 0.20, 0.30, 0.30), 2),  # alpha and beta exactly 0.30 are not above it; nothing else holds: N2
    ((0.20, 0.20, 0.10, 0.3001), 0),  # beta above 0.30: wake
    ((0.44, 0.31, 0.14, 0.05), 5),  # REM: theta > 0.30, alpha < 0.15, delta < 0.45
    ((0.45, 0.31, 0.14, 0.05), 1),  # delta exactly 0.45 is not REM; theta > 0.25, delta < 0.50: N1
    ((0.40, 0.30, 0.10, 0.05), 1),  # theta exactly 0.30 is not REM; N1
    ((0.40, 0.31, 0.15, 0.05), 1),  # alpha exactly 0.15 is not REM; N1
    ((0.51, 0.31, 0.10, 0.05), 3),  # delta above 0.50: N3 (REM fails on delta)
    ((0.50, 0.26, 0.10, 0.05), 2),  # delta exactly 0.50: neither N3 nor N1 (delta < 0.50 fails): N2
    ((0.30, 0.25, 0.10, 0.05), 2),  # theta exactly 0.25 is not N1: N2
    ((0.30, 0.26, 0.10, 0.05), 1),  # N1
    ((None, 0.26, None, None), 1),  # missing values count as 0: N1
]


def seed_epochs(side: Sidecar, session_id: str, start_ms: int, rows: list[tuple], step_ms: list[int]) -> None:
    db = open_database(side.data_dir / "miso.db")
    try:
        SessionRepository(db).insert(
            NewSession(session_id, None, MUSE_S, MUSE_S, "MUSE_S_BOARD", start_ms, f"recordings/{session_id}.csv")
        )
        at = start_ms
        epochs = EpochRepository(db)
        for (rd, rt, ra, rb), step in zip(rows, step_ms, strict=True):
            means = {"rel_delta": rd, "rel_theta": rt, "rel_alpha": ra, "rel_beta": rb}
            epochs.insert(session_id, at, at + 5000, 20, means, {})
            at += step
        SessionRepository(db).end(session_id, at, 0, SessionStatus.COMPLETE, "user_cancel", started_utc_ms=None)
    finally:
        db.conn.close()


def test_thresholds_answer_the_daemon_rule_on_stored_epochs(side):
    start = int(night_start_utc_s()) + 4 * DAY
    rows = [case for case, _ in THRESHOLD_CASES] + [(0.0, 0.0, 0.5, 0.5)]  # both delta and theta 0: skipped
    gaps = [2000, 3000, 2000, 3000, 2000, 3000, 2000, 3000, 2000, 3000, 2000, 3000, 2000]
    seed_epochs(side, "thresholds", start * 1000, rows, gaps)
    body = staged(side, start, start + 60, method="thresholds")
    assert body["method"] == "thresholds"
    assert [e["stage"] for e in body["epochs"]] == [stage for _, stage in THRESHOLD_CASES]
    assert [e["rel_delta"] for e in body["epochs"]] == [case[0] or 0.0 for case, _ in THRESHOLD_CASES]
    # 12 epochs 2 and 3 s apart: whole-second gaps 2, 3, 2, 3 ...; 11 gaps, six 2s and five 3s -> median 2.
    assert body["summary"]["epoch_secs"] == 2.0
    assert body["summary"]["total_epochs"] == 12 and body["summary"]["n1_epochs"] == 5
    assert all(e["confidence"] is None for e in body["epochs"])


def test_an_empty_range_answers_the_contract_empty_shape(side):
    for method in ("yasa", "thresholds"):
        body = staged(side, 1_000_000_000, 1_000_003_600, method=method)
        assert body["epochs"] == [] and body["sessions"] == []
        assert body["summary"] == {
            "total_epochs": 0,
            "wake_epochs": 0,
            "n1_epochs": 0,
            "n2_epochs": 0,
            "n3_epochs": 0,
            "rem_epochs": 0,
            "epoch_secs": 2.5,
        }


# --- bad input --------------------------------------------------------------------------------


def staging_worker_pid(side: Sidecar) -> int | None:
    workers = side.get("/v1/settings/daemon-watchdog").json()["workers"]
    [worker] = [w for w in workers if w["name"] == "staging"]
    return worker["pid"] if worker["state"] == "running" else None


def test_bad_ranges_and_recordings_get_clear_answers_and_the_worker_stays_up(side):
    pid = wait_until(lambda: staging_worker_pid(side), timeout=60)
    reversed_range = side.post("/v1/analysis/sleep", json={"startUtc": 2_000_000_000, "endUtc": 1_000_000_000})
    assert reversed_range.status_code == 422 and "before startUtc" in reversed_range.json()["message"]
    missing = side.post("/v1/analysis/sleep", json={"startUtc": 1})
    assert missing.status_code == 422 and missing.json()["code"] == "invalid_request"

    start = night_start_utc_s() + 6 * DAY
    eeg = real_eeg_uv()
    gone_id, gone = seed_session(side.data_dir, eeg, start, board_id=GANGLION)
    gone.unlink()
    cut_id, cut = seed_session(side.data_dir, eeg, start + 3600, board_id=GANGLION)
    with cut.open("r+b") as handle:  # keep the first 3 minutes and a torn line, of the text and of its copy
        lines = handle.read().split(b"\n")
        handle.seek(0)
        handle.write(b"\n".join(lines[: 200 * 180]) + b"\n" + lines[200 * 180][:7])
        handle.truncate()
    os.truncate(samples_path(cut), 16 + 200 * 180 * 8 * 5 + 13)
    short_id, _ = seed_session(side.data_dir, eeg[:, : 200 * 20], start + 7200, board_id=GANGLION)

    body = staged(side, start - 10, start + 3 * 3600)
    by_id = {entry["session_id"]: entry for entry in body["sessions"]}
    assert by_id[gone_id]["status"] == "failed" and by_id[gone_id]["code"] == "recording_missing"
    assert by_id[cut_id]["status"] == "staged" and by_id[cut_id]["truncated"] is True
    assert by_id[cut_id]["n_epochs"] == 6 and by_id[cut_id]["code"] == "recording_truncated"
    assert by_id[short_id]["status"] == "failed" and by_id[short_id]["code"] == "too_short"
    assert "30 s" in by_id[short_id]["message"]
    assert {e["session_id"] for e in body["epochs"]} == {cut_id}
    queued = len(staging_events(side, gone_id))
    again = {entry["session_id"]: entry for entry in staged(side, start - 10, start + 3 * 3600)["sessions"]}
    assert again[gone_id]["code"] == "recording_missing" and len(staging_events(side, gone_id)) == queued  # no new job

    unknown = side.post("/v1/analysis/sleep", json={"startUtc": int(start), "endUtc": int(start) + 10, "channel": "Cz"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "channel_not_found"
    assert "ch1, ch2, ch3, ch4" in unknown.json()["message"]
    for bad in ({"startUtc": 1, "endUtc": 2, "method": "guess"}, {"startUtc": -1, "endUtc": 2}):
        assert side.post("/v1/analysis/sleep", json=bad).status_code == 422
    assert staging_worker_pid(side) == pid  # none of it took the worker down


# --- the worker and the background ------------------------------------------------------------


def test_a_request_that_stops_waiting_leaves_the_job_running_and_a_later_one_gets_it(side, night):
    start = night_start_utc_s() + 12 * DAY
    session_id, _ = seed_session(side.data_dir, night.signal_uv[:, : 256 * 3600], start)
    hurried = side.post("/v1/analysis/sleep", json={"startUtc": int(start), "endUtc": int(start) + 3600, "waitSecs": 0})
    assert hurried.status_code == 200
    assert hurried.json()["epochs"] == [] and hurried.json()["sessions"][0]["status"] == "staging"
    side.events.wait_for("sleep-staging", lambda p: p["session_id"] == session_id and p["phase"] == "done", 120)
    later = side.post("/v1/analysis/sleep", json={"startUtc": int(start), "endUtc": int(start) + 3600, "waitSecs": 0})
    assert later.json()["sessions"][0]["status"] == "staged" and len(later.json()["epochs"]) == 120
    assert [p["phase"] for p in staging_events(side, session_id)].count("queued") == 1


def test_a_worker_killed_mid_job_comes_back_and_the_request_still_answers(side, night):
    start = night_start_utc_s() + 8 * DAY
    session_id, path = seed_session(side.data_dir, night.signal_uv, start)
    pid = wait_until(lambda: staging_worker_pid(side), timeout=60)
    answers: list = []
    request = threading.Thread(target=lambda: answers.append(staged(side, start, start + 3 * 3600)))
    request.start()
    side.events.wait_for("sleep-staging", lambda p: p["session_id"] == session_id and p["phase"] == "reading", 60)
    os.kill(pid, signal.SIGKILL)
    request.join(180)
    assert answers, "the request did not answer"
    [body] = answers
    assert body["sessions"][0]["status"] == "staged" and len(body["epochs"]) == 240
    stages, _ = yasa_direct(night.signal_uv[1], 256.0, "TP10")
    assert [e["stage"] for e in body["epochs"]] == stages
    assert wait_until(lambda: staging_worker_pid(side) not in (None, pid))
    phases = [p["phase"] for p in staging_events(side, session_id)]
    assert phases.count("queued") == 1 and phases[-1] == "done"


def test_a_session_that_ends_is_staged_in_the_background(side, tmp_path):
    side.post("/v1/settings/sleep-config", json={"auto_stage_min_minutes": 3})
    try:
        eeg = real_eeg_uv()
        long_file = write_recording(tmp_path / "long.csv", GANGLION, eeg, start_s=night_start_utc_s() + 10 * DAY)
        short_file = write_recording(tmp_path / "short.csv", GANGLION, eeg[:, : 200 * 120], start_s=night_start_utc_s())
        ended = {}
        for name, path in (("long", long_file), ("short", short_file)):
            body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": GANGLION}, "playback_speed": 40}
            started = side.post("/v1/control/start-session", json=body)
            assert started.status_code == 200, started.text
            session_id = started.json()["session"]["id"]
            side.events.wait_for("DeviceDisconnected", lambda p, s=session_id: p["session_id"] == s, timeout=60)
            ended[name] = session_id
        done = side.events.wait_for(
            "sleep-staging", lambda p: p["session_id"] == ended["long"] and p["phase"] == "done", timeout=120
        )
        assert done["payload"]["n_epochs"] == 12
        with sqlite3.connect(side.data_dir / "miso.db") as db:
            long_row = db.execute(
                "SELECT started_utc_ms, ended_utc_ms, recording_path, n_samples FROM eeg_sessions WHERE id = ?",
                [ended["long"]],
            ).fetchone()
        # The capture's recording has its binary copy, holding every sample (what staging read).
        copy = read_channel(side.data_dir / long_row[2], 4, 1, long_row[3])
        assert copy is not None and np.allclose(copy[1], eeg[1], atol=5e-7)
        jobs_before = len(side.events.of_type("sleep-staging"))
        body = staged(side, long_row[0] // 1000, long_row[1] // 1000 - 1)  # the short replay starts at its end
        assert [s["status"] for s in body["sessions"]] == ["staged"] and len(body["epochs"]) == 12
        assert len(side.events.of_type("sleep-staging")) == jobs_before  # answered from the store
        assert staging_events(side, ended["short"]) == []  # 2 minutes: below the setting, not staged
    finally:
        side.post("/v1/settings/sleep-config", json={"auto_stage_min_minutes": 30})


# --- the hypnogram ----------------------------------------------------------------------------


def test_the_hypnogram_renders_for_a_staged_night_and_an_empty_range(side, night):
    start = int(night_start_utc_s())
    for fmt, mimetype, magic in (("svg", "image/svg+xml", b"<?xml"), ("png", "image/png", b"\x89PNG\r\n\x1a\n")):
        for lo, hi in ((start - 60, start + 3 * 3600), (1_000_000_000, 1_000_003_600)):
            picture = side.get(
                "/v1/analysis/sleep/hypnogram",
                params={"startUtc": lo, "endUtc": hi, "format": fmt, "tzOffsetMinutes": 60},
            )
            assert picture.status_code == 200 and picture.headers["content-type"].startswith(mimetype)
            assert picture.content.startswith(magic)
    params = {"startUtc": start - 60, "endUtc": start + 3 * 3600, "tzOffsetMinutes": 60}
    svg = side.get("/v1/analysis/sleep/hypnogram", params=params).text
    assert "REM" in svg and "N3" in svg and "00:00" in svg  # 23:00 UTC drawn at UTC+01:00 would say 00:00
    empty = side.get("/v1/analysis/sleep/hypnogram", params={"startUtc": 1_000_000_000, "endUtc": 1_000_003_600})
    assert "No sleep stages in this range" in empty.text
    for bad in ({"startUtc": 5, "endUtc": 1}, {"startUtc": 1, "endUtc": 5, "format": "gif"}, {"endUtc": 5}):
        refused = side.get("/v1/analysis/sleep/hypnogram", params=bad)
        assert refused.status_code == 422 and refused.json()["code"] in ("invalid_request", "invalid_range")


# --- loading YASA ahead of a long session -----------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.sent: list = []

    def send(self, command) -> None:
        self.sent.append(command)


def test_the_worker_loads_yasa_once_a_recording_reaches_the_auto_stage_length(tmp_path):
    from miso_runtime.settings_files import SettingsFile
    from miso_runtime.sleep.service import SleepService
    from miso_runtime.sleep.settings import SleepConfig
    from miso_runtime.store.database import ConnectionPerThread
    from workers.protocol.base import WorkerStarted
    from workers.protocol.capture import EpochStored
    from workers.protocol.staging import PrepareStaging

    open_database(tmp_path / "miso.db").conn.close()
    sink = _Sink()
    config = SettingsFile(tmp_path / "sleep.json", SleepConfig)
    config.update({"auto_stage_min_minutes": 1})
    service = SleepService(
        sink, ConnectionPerThread(tmp_path / "miso.db"), config, tmp_path, lambda *_: None, lambda: "s"
    )

    def epoch(session_id: str, start_s: float) -> EpochStored:
        return EpochStored(session_id, 1, int(start_s * 1000), int((start_s + 5) * 1000))

    for second in range(0, 55, 5):  # epochs ending at 5..55 s: under a minute
        service.handle_capture_event("capture", epoch("s", 1000 + second))
    assert sink.sent == []
    service.handle_capture_event("capture", epoch("s", 1055))  # ends at 60 s
    service.handle_capture_event("capture", epoch("s", 1060))
    assert sink.sent == [PrepareStaging()]
    service.handle_event("staging", WorkerStarted(pid=1))  # a new worker has nothing loaded
    service.handle_capture_event("capture", epoch("s", 1065))
    assert sink.sent == [PrepareStaging(), PrepareStaging()]


def _service_with_a_session(tmp_path):
    from miso_runtime.settings_files import SettingsFile
    from miso_runtime.sleep.service import SleepService
    from miso_runtime.sleep.settings import SleepConfig
    from miso_runtime.store.database import ConnectionPerThread

    db = open_database(tmp_path / "miso.db")
    SessionRepository(db).insert(NewSession("n1", None, MUSE_S, MUSE_S, "MUSE_S_BOARD", 1_000_000, "r/n1.csv"))
    SessionRepository(db).end("n1", 2_000_000, 256_000, SessionStatus.COMPLETE, "user_cancel", started_utc_ms=None)
    db.conn.close()
    sink = _Sink()
    config = SettingsFile(tmp_path / "sleep.json", SleepConfig)
    service = SleepService(
        sink, ConnectionPerThread(tmp_path / "miso.db"), config, tmp_path, lambda *_: None, lambda: None
    )
    return service, sink


def _resolve_in_thread(service) -> tuple[threading.Thread, list]:
    answers: list = []
    thread = threading.Thread(target=lambda: answers.append(service.resolve(1_000, 2_000, wait_s=30)))
    thread.start()
    return thread, answers


def test_a_job_the_worker_dies_on_twice_ends_the_wait_with_worker_exited(tmp_path):
    from workers.protocol.base import WorkerStarted
    from workers.protocol.staging import StageSession

    service, sink = _service_with_a_session(tmp_path)
    thread, answers = _resolve_in_thread(service)
    wait_until(lambda: len(sink.sent) == 1)
    service.handle_exit("staging", -9)  # first death: the job waits for the next worker
    assert not answers and service.pending_jobs() == 1
    service.handle_event("staging", WorkerStarted(pid=2))
    assert len(sink.sent) == 2 and isinstance(sink.sent[1], StageSession) and sink.sent[1] == sink.sent[0]
    service.handle_exit("staging", -9)  # second death: given up
    thread.join(10)
    [answer] = answers
    [entry] = answer.sessions
    assert entry["status"] == "failed" and entry["code"] == "worker_exited" and "2 times" in entry["message"]
    assert service.pending_jobs() == 0


def test_an_unexpected_staging_error_is_reported_and_not_stored(tmp_path):
    from workers.protocol.staging import SessionStaged

    service, sink = _service_with_a_session(tmp_path)
    thread, answers = _resolve_in_thread(service)
    wait_until(lambda: len(sink.sent) == 1)
    job_id = sink.sent[0].job_id
    service.handle_event("staging", SessionStaged(job_id, "n1", 0, "failed", "staging_failed", "boom", 0, 1.0))
    thread.join(10)
    [entry] = answers[0].sessions
    assert (entry["status"], entry["code"], entry["message"]) == ("failed", "staging_failed", "boom")
    service.resolve(1_000, 2_000, wait_s=0)
    assert len(sink.sent) == 2  # nothing was stored, so the next request tries again

"""When things go wrong: a board that goes silent, a runtime killed mid-recording, a crashed worker."""

from __future__ import annotations

import os
import signal
import time

import pytest

from miso_runtime.neuro.recording import recording_end
from tests.eeg import PLAYBACK, SYNTHETIC, EventsClient, sine_eeg, wait_until, write_recording
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("eeg-resilience"))
    yield sidecar
    sidecar.terminate()


def capture_worker(side) -> dict:
    return next(w for w in side.get("/v1/status").json()["workers"] if w["name"] == "capture")


def test_a_silent_board_is_reconnected_with_backoff_and_retry_can_be_forced_or_cancelled(side, tmp_path):
    """A replay that does not stop at its end is a device that goes quiet after 3 s: the worker
    reports it lost, waits, and opens it again; with the file gone, every attempt fails."""
    path = write_recording(tmp_path / "short.csv", SYNTHETIC, sine_eeg(10.0, 3, 250, 16))
    events = EventsClient(side.port, side.token)
    try:
        body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": SYNTHETIC}, "stop_at_end": False}
        started = side.post("/v1/control/start-session", json=body)
        assert started.status_code == 200, started.text
        session_id = started.json()["session"]["id"]

        lost = events.wait_for("DeviceDisconnected", timeout=15)["payload"]
        assert (lost["reason"], lost["will_retry"], lost["session_id"]) == ("idle_timeout", True, session_id)
        waiting = events.wait_for("reconnect-state", lambda p: p["state"] == "waiting")["payload"]
        assert waiting["attempt"] == 0 and waiting["next_try_in_s"] == 1.0 and waiting["max_attempts"] == 10
        assert side.get("/v1/status").json()["state"] in ("reconnecting", "connected")
        back = events.wait_for("DeviceConnected", lambda p: p["reconnected"], timeout=10)["payload"]
        assert back["session_id"] == session_id
        events.wait_for("reconnect-state", lambda p: p["state"] == "connected" and p["attempt"] == 1)

        path.unlink()  # the replay runs from its open file; the next reconnect cannot open it
        failing = events.wait_for(
            "reconnect-state", lambda p: p["state"] == "waiting" and p["attempt"] == 2, timeout=20
        )["payload"]
        assert "could not open board" in failing["message"] and failing["next_try_in_s"] == 4.0
        assert side.get("/v1/status").json()["state"] == "reconnecting"

        forced_at = time.time()
        assert side.post("/v1/control/retry-connect").status_code == 200
        forced = events.wait_for("reconnect-state", lambda p: p["state"] == "waiting" and p["attempt"] == 3)
        assert forced["ts_unix_ms"] / 1000 - forced_at < 2.0  # not after the 4 s step

        cancelled = side.post("/v1/control/cancel-retry")
        assert cancelled.status_code == 200, cancelled.text
        session = cancelled.json()["session"]
        assert session["id"] == session_id and session["end_reason"] == "user_cancel"
        events.wait_for("reconnect-state", lambda p: p["state"] == "cancelled")
        gone = events.wait_for("DeviceDisconnected", lambda p: not p["will_retry"])["payload"]
        assert gone["reason"] == "user_cancel"
        assert side.get("/v1/status").json()["state"] == "disconnected"
        assert side.post("/v1/control/cancel-retry").status_code == 409
    finally:
        events.close()


def test_kill_9_mid_recording_loses_under_a_second_and_the_next_start_closes_the_session(tmp_path):
    first = Sidecar(tmp_path)
    try:
        started = first.post("/v1/control/start-session", json={"board_id": SYNTHETIC})
        assert started.status_code == 200
        session = started.json()["session"]
        time.sleep(6.0)  # one whole 5 s epoch, stored by the worker before the kill
        killed_at = time.time()
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
    finally:
        first.kill()
    recording = tmp_path / session["recording_path"]
    # The worker notices within a quarter second that its parent is gone and exits.
    time.sleep(1.0)
    span = recording_end(recording, SYNTHETIC)
    assert span is not None
    assert span.end_ms / 1000 > killed_at - 1.0, f"lost {killed_at - span.end_ms / 1000:.2f} s"

    second = Sidecar(tmp_path)
    try:
        stored = next(s for s in second.get("/v1/history/sessions").json()["sessions"] if s["id"] == session["id"])
        assert stored["status"] == "recovered" and stored["end_reason"] == "interrupted"
        assert stored["ended_utc_ms"] == round(span.end_ms)
        assert stored["n_samples"] == span.n_samples
        assert stored["n_epochs"] == 1
        assert second.get("/v1/status").json()["state"] == "disconnected"
        again = second.post("/v1/control/start-session", json={})
        assert again.status_code == 200
        second.post("/v1/control/cancel-session")
    finally:
        second.terminate()


def test_a_crashed_capture_worker_ends_the_session_and_comes_back(side):
    events = EventsClient(side.port, side.token)
    try:
        started = side.post("/v1/control/start-session", json={})
        assert started.status_code == 200
        session_id = started.json()["session"]["id"]
        events.wait_for("EegBands")
        worker = capture_worker(side)
        os.kill(worker["pid"], signal.SIGKILL)
        gone = events.wait_for("DeviceDisconnected", timeout=10)["payload"]
        assert gone["reason"] == "error" and "capture worker exited" in gone["message"]
        stored = next(s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id)
        assert stored["status"] == "recovered" and stored["n_samples"] > 0
        wait_until(lambda: capture_worker(side)["state"] == "running", timeout=20)
        assert capture_worker(side)["restarts"] >= worker["restarts"] + 1
        assert side.post("/v1/control/start-session", json={}).status_code == 200
        assert side.post("/v1/control/cancel-session").status_code == 200
    finally:
        events.close()


def test_watchdog_off_leaves_a_crashed_worker_down_until_turned_on(side):
    refused = side.post("/v1/settings/daemon-watchdog", json={"initial_backoff_secs": 20, "max_backoff_secs": 5})
    assert refused.status_code == 422 and "initial_backoff_secs" in refused.json()["message"]
    off = side.post("/v1/settings/daemon-watchdog", json={"enabled": False})
    assert off.status_code == 200 and off.json()["enabled"] is False
    try:
        worker = wait_until(lambda: (w := capture_worker(side))["state"] == "running" and w)
        os.kill(worker["pid"], signal.SIGKILL)
        wait_until(lambda: capture_worker(side)["state"] == "crashed")
        time.sleep(1.5)  # longer than the restart delay would have been
        assert capture_worker(side)["state"] == "crashed"
        unavailable = side.post("/v1/control/start-session", json={})
        assert unavailable.status_code == 503 and unavailable.json()["code"] == "worker_unavailable"
    finally:
        on = side.post("/v1/settings/daemon-watchdog", json={"enabled": True})
        assert on.status_code == 200
    wait_until(lambda: capture_worker(side)["state"] == "running", timeout=20)
    assert side.get("/v1/settings/daemon-watchdog").json()["enabled"] is True
    assert side.post("/v1/control/start-session", json={}).status_code == 200
    assert side.post("/v1/control/cancel-session").status_code == 200

"""`/v1/events` with clients that do not keep up, and the client limit."""

from __future__ import annotations

import pytest

from tests.eeg import PLAYBACK, SYNTHETIC, EventsClient, sine_eeg, wait_until, write_recording
from tests.sidecar import Sidecar
from tests.ws_client import open_websocket

HOP_SAMPLES = 62  # 0.25 s at 250 Hz, rounded


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("eeg-ws"))
    yield sidecar
    sidecar.terminate()


def test_a_client_that_never_reads_loses_old_frames_and_slows_nobody(side, tmp_path):
    assert side.post("/v1/settings/ws-config", json={"client_queue_size": 8}).status_code == 200
    # 40 s of EEG replayed 20 times faster: about 80 EegBands a second, 3 kB each.
    path = write_recording(tmp_path / "fast.csv", SYNTHETIC, sine_eeg(10.0, 40, 250, 16))
    stalled_sock, _connection = open_websocket(side.port, f"/v1/events?token={side.token}", receive_buffer_bytes=4096)
    reader = EventsClient(side.port, side.token)
    try:
        wait_until(lambda: side.get("/v1/ws-clients").json()["count"] == 2)
        body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": SYNTHETIC}, "playback_speed": 20}
        started = side.post("/v1/control/start-session", json=body)
        assert started.status_code == 200, started.text
        session_id = started.json()["session"]["id"]
        # Capture keeps pace: the replay (2 s of it at 20x) ends by itself, not held by the stalled client.
        reader.wait_for("DeviceDisconnected", lambda p: p["reason"] == "end_of_file", timeout=30)

        clients = {c["id"]: c for c in side.get("/v1/ws-clients").json()["clients"]}
        stalled, fast = sorted(clients.values(), key=lambda c: c["id"])
        assert stalled["dropped"] > 0 and stalled["queued"] <= 8
        assert fast["dropped"] == 0

        # The reading client got every frame: full windows one hop apart from the first to the last.
        ends = [
            e["payload"]["window_end_sample"]
            for e in reader.of_type("EegBands")
            if e["payload"]["session_id"] == session_id and e["payload"]["window_s"] == 2.0
        ]
        assert ends == list(range(500, 40 * 250 + 1, HOP_SAMPLES))
        session = next(s for s in side.get("/v1/history/sessions").json()["sessions"] if s["id"] == session_id)
        assert session["n_samples"] == 40 * 250
    finally:
        stalled_sock.close()
        reader.close()
        side.post("/v1/settings/ws-config", json={"client_queue_size": 256})


def test_a_client_that_falls_behind_then_reads_gets_whole_frames(side, tmp_path):
    """A client that stops reading for a while (a busy renderer, a paused debugger) through a
    small buffer: frames back up in the server's small send buffer, and when it reads again,
    every frame is whole and the session's end arrives."""
    path = write_recording(tmp_path / "burst.csv", SYNTHETIC, sine_eeg(10.0, 120, 250, 16))
    slow = EventsClient(side.port, side.token, receive_buffer_bytes=4096, read_delay_s=3.0)
    try:
        wait_until(lambda: side.get("/v1/ws-clients").json()["count"] == 1)
        body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": SYNTHETIC}, "playback_speed": 100}
        started = side.post("/v1/control/start-session", json=body)
        assert started.status_code == 200, started.text
        session_id = started.json()["session"]["id"]
        ended = slow.wait_for("DeviceDisconnected", lambda p: p["session_id"] == session_id, timeout=30)
        assert ended["payload"]["reason"] == "end_of_file"
        assert slow.reader_error is None
        assert len(slow.of_type("EegBands")) > 0
    finally:
        slow.close()


def test_clients_past_the_limit_are_closed_with_try_again_later(side):
    wait_until(lambda: side.get("/v1/ws-clients").json()["count"] == 0)  # the clients of the test before
    assert side.post("/v1/settings/ws-config", json={"max_clients": 1}).status_code == 200
    first = EventsClient(side.port, side.token)
    try:
        first.wait_for("status", timeout=5)
        second = EventsClient(side.port, side.token)
        wait_until(lambda: second.close_code is not None, timeout=5)
        assert second.close_code == 1013 and not second.events
        second.close()
    finally:
        first.close()
        assert side.post("/v1/settings/ws-config", json={"max_clients": 64}).status_code == 200
    refused = side.post("/v1/settings/ws-config", json={"client_queue_size": 1})
    assert refused.status_code == 422 and "client_queue_size" in refused.json()["message"]


def test_stream_scope_is_enough_for_events(side):
    issued = side.post("/v1/auth/tokens", json={"name": "viewer", "acl": "stream", "expiry": "hour"}).json()
    viewer = EventsClient(side.port, issued["token"])
    try:
        assert viewer.wait_for("status", timeout=5)["payload"]["state"] == "disconnected"
    finally:
        viewer.close()
    assert side.get("/v1/status", headers={"Authorization": f"Bearer {issued['token']}"}).status_code == 200
    denied = side.post("/v1/control/start-session", json={}, headers={"Authorization": f"Bearer {issued['token']}"})
    assert denied.status_code == 403

"""Focus-driven Do Not Disturb (skill-daemon 4.9, ``/v1/settings/dnd/*``) through a real sidecar.

The focus score comes from replayed recordings on BrainFlow's playback board: a 25 Hz beta sine
is all engagement (focus near 100), a 10 Hz alpha sine none (focus near 17). The desktop is a
stand-in ``gsettings`` first on ``PATH`` (with ``XDG_CURRENT_DESKTOP=GNOME``) that keeps the
``show-banners`` key in a file and records every call, and a ``notify-send`` that records the
notifications; the windows are a few seconds of EEG, so each replay lasts seconds.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.eeg import GANGLION, PLAYBACK, EventsClient, sine_eeg, write_recording
from tests.sidecar import Sidecar

RATE_HZ = 200  # the Ganglion's
SCHEMA, KEY = "org.gnome.desktop.notifications", "show-banners"
#: Seconds of EEG: 2 s to turn on, 2 s below to turn off, 1 s of lookback.
FAST = {"enabled": True, "focus_threshold": 60.0, "duration_secs": 2, "exit_duration_secs": 2, "focus_lookback_secs": 1}
DEFAULTS = {
    "enabled": False,
    "focus_threshold": 60.0,
    "duration_secs": 60,
    "exit_duration_secs": 300,
    "focus_lookback_secs": 60,
    "focus_mode_identifier": "com.apple.donotdisturb.mode.default",
    "exit_notification": True,
    "snr_exit_db": 0.0,
    "grayscale": False,
}
STATUS_KEYS = {
    "enabled",
    "avg_score",
    "threshold",
    "sample_count",
    "window_size",
    "duration_secs",
    "dnd_active",
    "os_active",
    "last_error",
    "exit_duration_secs",
    "below_ticks",
    "exit_window_size",
    "exit_secs_remaining",
    "focus_lookback_secs",
    "exit_held_by_lookback",
    "focus_db_available",
}

GSETTINGS = """#!{python}
import json, sys
from pathlib import Path
state, log = Path({state!r}), Path({log!r})
with log.open("a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if args[:3] == ["get", {schema!r}, {key!r}]:
    print(state.read_text().strip() if state.exists() else "true")
elif args[:3] == ["set", {schema!r}, {key!r}] and len(args) == 4 and args[3] in ("true", "false"):
    state.write_text(args[3])
else:
    sys.stderr.write("No such schema or key\\n")
    sys.exit(1)
"""

NOTIFY_SEND = """#!{python}
import json, sys
with open({log!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


class StandInDesktop:
    """The stand-in commands in a folder of their own, their state and their logs."""

    def __init__(self, folder: Path) -> None:
        self.bin = folder / "bin"
        self.bin.mkdir(parents=True)
        self.state = folder / "show-banners"
        self.log = folder / "gsettings.log"
        self.notify_log = folder / "notify.log"
        self._script(
            "gsettings",
            GSETTINGS.format(python=sys.executable, state=str(self.state), log=str(self.log), schema=SCHEMA, key=KEY),
        )
        self._script("notify-send", NOTIFY_SEND.format(python=sys.executable, log=str(self.notify_log)))

    def _script(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    @property
    def env(self) -> dict[str, str]:
        return {"PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}", "XDG_CURRENT_DESKTOP": "GNOME"}

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []

    def sets(self) -> list[str]:
        """The values ``show-banners`` was set to, in order (``false`` is DND on)."""
        return [call[3] for call in self.calls() if call[:1] == ["set"]]

    def banners(self) -> str:
        return self.state.read_text() if self.state.exists() else "true"

    def notifications(self) -> list[list[str]]:
        lines = self.notify_log.read_text().splitlines() if self.notify_log.exists() else []
        return [json.loads(line) for line in lines]


@pytest.fixture
def desktop(tmp_path) -> StandInDesktop:
    return StandInDesktop(tmp_path / "desktop")


@pytest.fixture
def gnome(tmp_path, desktop):
    sidecar = Sidecar(tmp_path / "data", env=desktop.env)
    sidecar.events = EventsClient(sidecar.port, sidecar.token)  # type: ignore[attr-defined]
    yield sidecar
    sidecar.events.close()
    sidecar.terminate()


def replay(side: Sidecar, folder: Path, eeg_uv: np.ndarray, speed: float) -> str:
    """Start replaying ``eeg_uv`` (µV, channels x samples at the Ganglion's rate); returns the session id."""
    path = write_recording(folder / "recording.csv", GANGLION, eeg_uv)
    body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": GANGLION}, "playback_speed": speed}
    answer = side.post("/v1/control/start-session", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()["session"]["id"]


def dnd_changes(side: Sidecar) -> list[dict]:
    return [event["payload"] for event in side.events.of_type("dnd-state-changed")]


def test_focus_turns_dnd_on_and_its_loss_turns_it_off(gnome, desktop, tmp_path):
    assert gnome.get("/v1/settings/dnd/config").json() == DEFAULTS
    assert gnome.post("/v1/settings/dnd/config", json=FAST).json() == {"ok": True}
    assert gnome.get("/v1/settings/dnd/config").json() == {**DEFAULTS, **FAST}
    status = gnome.get("/v1/settings/dnd/status").json()
    assert set(status) >= STATUS_KEYS
    assert status["window_size"] == 8 and status["exit_window_size"] == 8  # 4 frames a second of EEG
    assert status["dnd_active"] is False and status["os_active"] is False and status["last_error"] is None

    focused = sine_eeg(25.0, 16, RATE_HZ, 4)
    resting = sine_eeg(10.0, 24, RATE_HZ, 4)
    session = replay(gnome, tmp_path, np.concatenate([focused, resting], axis=1), speed=2)
    on = gnome.events.wait_for("dnd-state-changed", lambda p: p["value"] is True, timeout=60)
    assert on["payload"]["reason"] == "focused"
    off = gnome.events.wait_for("dnd-state-changed", lambda p: p["value"] is False, timeout=60)
    assert off["payload"]["reason"] == "unfocused"
    gnome.events.wait_for("DeviceDisconnected", lambda p: p["session_id"] == session, timeout=60)

    # Once on, once off, as GNOME's own setting; the exit said so in a notification.
    assert desktop.sets() == ["false", "true"]
    assert desktop.banners() == "true"
    assert [c["value"] for c in dnd_changes(gnome)] == [True, False]
    notices = desktop.notifications()
    assert len(notices) == 1 and "Do Not Disturb off" in notices[0]
    # While it was on, each frame's state was published: the window full and the score high.
    held = [e["payload"] for e in gnome.events.of_type("dnd-eligibility") if e["payload"]["dnd_active"]]
    assert held and max(p["avg_score"] for p in held) >= 60.0
    assert any(p["exit_secs_remaining"] > 0 for p in held)  # the countdown ran before the exit

    status = gnome.get("/v1/settings/dnd/status").json()
    assert status["dnd_active"] is False and status["os_active"] is False
    assert status["sample_count"] == 8 and status["avg_score"] < 60.0
    assert status["last_error"] is None and status["focus_db_available"] is True
    assert gnome.get("/v1/settings/dnd/active").json() == {"value": False}


def test_dnd_the_runtime_turned_on_is_turned_off_when_it_stops(tmp_path, desktop):
    side = Sidecar(tmp_path / "data", env=desktop.env)
    side.events = EventsClient(side.port, side.token)  # type: ignore[attr-defined]
    try:
        assert side.post("/v1/settings/dnd/config", json={"config": FAST}).json() == {"ok": True}  # the FE's form
        replay(side, tmp_path, sine_eeg(25.0, 120, RATE_HZ, 4), speed=1)
        side.events.wait_for("dnd-state-changed", lambda p: p["value"] is True, timeout=60)
        assert side.get("/v1/settings/dnd/active").json() == {"value": True}
        status = side.get("/v1/settings/dnd/status").json()
        assert status["dnd_active"] is True and status["os_active"] is True and status["avg_score"] >= 60.0
        assert desktop.banners() == "false"
    finally:
        side.events.close()
        assert side.terminate() == 0
    assert desktop.sets() == ["false", "true"]
    assert desktop.banners() == "true"


def test_the_test_button_switching_off_and_the_focus_modes(gnome, desktop):
    assert gnome.post("/v1/settings/dnd/test", json={"enabled": True}).json() == {"ok": True, "value": True}
    assert desktop.banners() == "false"
    assert gnome.get("/v1/settings/dnd/active").json() == {"value": True}
    assert gnome.get("/v1/settings/dnd/status").json()["os_active"] is True
    assert gnome.post("/v1/settings/dnd/test", json={"enabled": False}).json() == {"ok": True, "value": False}
    assert desktop.banners() == "true"
    assert gnome.get("/v1/settings/dnd/active").json() == {"value": False}
    assert gnome.get("/v1/settings/dnd/focus-modes").json() == [
        {"identifier": "linux.dnd.default", "name": "Do Not Disturb"}
    ]

    # Held on by the test, then the automation switched off: the runtime gives DND back at once.
    gnome.post("/v1/settings/dnd/test", json={"enabled": True})
    assert gnome.post("/v1/settings/dnd/config", json={**FAST, "enabled": False}).json() == {"ok": True}
    assert desktop.banners() == "true"
    assert desktop.sets() == ["false", "true", "false", "true"]
    # A user's own DND (set outside the runtime) is left alone when the runtime stops.
    desktop.state.write_text("false")
    gnome.events.close()
    assert gnome.terminate() == 0
    assert desktop.banners() == "false"


def test_without_a_desktop_dnd_says_so_and_capture_goes_on(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    # Nothing on PATH (GitPython, imported at start, is told where git is instead).
    env = {"PATH": str(empty), "XDG_CURRENT_DESKTOP": "", "GIT_PYTHON_GIT_EXECUTABLE": shutil.which("git") or "git"}
    side = Sidecar(tmp_path / "data", env=env)
    side.events = EventsClient(side.port, side.token)  # type: ignore[attr-defined]
    try:
        assert side.post("/v1/settings/dnd/config", json=FAST).json() == {"ok": True}
        status = side.get("/v1/settings/dnd/status").json()
        assert status["os_active"] is False and status["dnd_active"] is False
        assert status["focus_db_available"] is False
        assert "XDG_CURRENT_DESKTOP is not set" in status["last_error"]
        tried = side.post("/v1/settings/dnd/test", json={"enabled": True}).json()
        assert tried["ok"] is False and "XDG_CURRENT_DESKTOP" in tried["error"]

        session = replay(side, tmp_path, sine_eeg(25.0, 12, RATE_HZ, 4), speed=4)
        side.events.wait_for("dnd-error", timeout=60)
        side.events.wait_for("DeviceDisconnected", lambda p: p["session_id"] == session, timeout=60)
        frames = [e for e in side.events.of_type("EegBands") if e["payload"]["session_id"] == session]
        assert len(frames) > 20  # capture went on: 4 frames a second of EEG
        status = side.get("/v1/settings/dnd/status").json()
        assert status["dnd_active"] is False and status["os_active"] is False
        assert status["sample_count"] == 8 and status["avg_score"] >= 60.0  # focused, but nothing to turn on
        assert status["last_error"].startswith("could not turn Do Not Disturb on")
        assert dnd_changes(side) == []
        assert side.get("/v1/status").status_code == 200
    finally:
        side.events.close()
        assert side.terminate() == 0


BAD_BODIES = [
    {"focus_threshold": 150},
    {"focus_threshold": "high"},
    {"duration_secs": 0},
    {"exit_duration_secs": -5},
    {"focus_lookback_secs": 10**9},
    {"enabled": "maybe"},
    {"config": {"duration_secs": "soon"}},
    {"focus_mode_identifier": "x" * 500},
]


def test_bad_config_bodies_are_422_and_change_nothing(gnome, desktop):
    custom = {**FAST, "focus_threshold": 72.5, "exit_notification": False}
    assert gnome.post("/v1/settings/dnd/config", json=custom).json() == {"ok": True}
    saved = gnome.get("/v1/settings/dnd/config").json()
    for body in BAD_BODIES:
        answer = gnome.post("/v1/settings/dnd/config", json=body)
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()
        assert set(error) == {"code", "message"} and error["message"], body
    for raw in (b"[1, 2]", b"{not json"):
        answer = gnome.post(
            "/v1/settings/dnd/config", content=raw, headers={**gnome.auth, "content-type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
    for body in ({}, {"enabled": "sometimes"}):
        assert gnome.post("/v1/settings/dnd/test", json=body).status_code == 422
    assert gnome.get("/v1/settings/dnd/config").json() == saved
    assert desktop.sets() == []
    # A good POST replaces the whole struct, as the daemon's: fields left out are the defaults again.
    assert gnome.post("/v1/settings/dnd/config", json={"duration_secs": 30}).json() == {"ok": True}
    assert gnome.get("/v1/settings/dnd/config").json() == {**DEFAULTS, "duration_secs": 30}


KWRITECONFIG = """#!{python}
import json, sys
from pathlib import Path
state, log = Path({state!r}), Path({log!r})
with log.open("a") as f:
    f.write(json.dumps([Path(sys.argv[0]).name, *sys.argv[1:]]) + "\\n")
args = sys.argv[1:]
where = ["--file", "plasmanotifyrc", "--group", "DoNotDisturb", "--key", "Until"]
if args[:6] != where:
    sys.exit(1)
if Path(sys.argv[0]).name == "kreadconfig6":
    print(state.read_text() if state.exists() else "")
elif args[6:] == ["--notify", "--delete"]:
    state.unlink(missing_ok=True)
elif len(args) == 8 and args[6] == "--notify":
    state.write_text(args[7])
else:
    sys.exit(1)
"""


def test_kde_plasma_is_driven_through_kwriteconfig(tmp_path):
    folder = tmp_path / "kde"
    folder.mkdir()
    state, log = folder / "until", folder / "calls.log"
    for name in ("kwriteconfig6", "kreadconfig6"):
        path = folder / name
        path.write_text(KWRITECONFIG.format(python=sys.executable, state=str(state), log=str(log)))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}", "XDG_CURRENT_DESKTOP": "KDE"}
    side = Sidecar(tmp_path / "data", env=env)
    try:
        status = side.get("/v1/settings/dnd/status").json()
        assert status["desktop"] == "kde" and status["os_active"] is False and status["last_error"] is None
        assert side.post("/v1/settings/dnd/test", json={"enabled": True}).json()["ok"] is True
        assert state.read_text().count(",") == 5  # KConfig's year,month,day,hour,minute,second
        assert side.get("/v1/settings/dnd/status").json()["os_active"] is True
        assert side.post("/v1/settings/dnd/test", json={"enabled": False}).json()["ok"] is True
        assert not state.exists()
        assert side.get("/v1/settings/dnd/status").json()["os_active"] is False
    finally:
        assert side.terminate() == 0
    writes = [json.loads(line) for line in log.read_text().splitlines() if line.startswith('["kwriteconfig6"')]
    assert [w[7:] for w in writes] == [["--notify", "2099,12,31,23,59,59"], ["--notify", "--delete"]]


# --- the state machine alone, frame by frame (what the replays above cannot pin down) -----------


def test_the_tracker_holds_on_through_a_dip_within_the_lookback():
    from miso_runtime.dnd.config import DoNotDisturbConfig
    from miso_runtime.dnd.focus import FocusTracker

    config = DoNotDisturbConfig(enabled=True, duration_secs=1, exit_duration_secs=1, focus_lookback_secs=2)
    tracker = FocusTracker()
    decisions = [tracker.tick(config, 90.0) for _ in range(8)]  # the entry window: at least 8 frames
    assert decisions[:7] == [None] * 7 and decisions[7] == (True, "focused")
    tracker.applied(True)
    # Low frames: the window's mean (8 frames) is under 60 from the 4th; until the 8th, a focused
    # frame is still within the lookback (8 frames) and holds the countdown at 0.
    for _ in range(7):
        assert tracker.tick(config, 10.0) is None
        assert tracker.below_ticks == 0
    assert tracker.exit_held is True
    exits = [tracker.tick(config, 10.0) for _ in range(4)]  # then 4 frames below (the exit's floor)
    assert exits == [None, None, None, (False, "unfocused")]
    tracker.applied(False)
    assert tracker.tick(config.model_copy(update={"enabled": False}), 90.0) is None
    tracker.applied(True)
    assert tracker.tick(config.model_copy(update={"enabled": False}), 90.0) == (False, "disabled")


def test_the_focus_score_is_the_daemons_sigmoid():
    from miso_runtime.dnd.focus import focus_score, frame_focus

    assert focus_score(0.8) == pytest.approx(50.0)
    assert focus_score(0.0) == pytest.approx(100 / (1 + np.exp(1.6)))
    assert focus_score(-1e6) == 0.0 and focus_score(1e6) == pytest.approx(100.0)
    assert frame_focus({"scores": {"engagement": 1.3}}) == pytest.approx(100 / (1 + np.exp(-1.0)))
    assert frame_focus({"scores": {"engagement": None}}) is None and frame_focus({}) is None

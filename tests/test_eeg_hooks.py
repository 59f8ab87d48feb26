"""Hooks (skill-daemon 4.11) through a real sidecar: labels made on replayed recordings, rules
whose keywords name them, and a replay that fires them (the ``hook`` event, the log, the command).

Two kinds of steady EEG replayed one after the other: a 10 Hz alpha rhythm labelled "eyes closed
resting" and a 25 Hz beta rhythm labelled "typing code at my desk", each label on the middle of
its replay, so that its EEG (the epochs within 30 s of it) is of one kind. A second alpha replay,
quieter and with other noise, must fire the rules about resting and not the one about coding.
(The real resting recording is no use here: its 5 s epochs differ from each other as much as
from a sine, so no moment of it is near the mean of a window.)
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tests.eeg import GANGLION, PLAYBACK, listening_sidecar, sine_eeg, wait_until, write_recording
from tests.sidecar import Sidecar

RATE_HZ = 200  # the Ganglion's
REPLAY_S = 90


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    with listening_sidecar(tmp_path_factory.mktemp("eeg-hooks"), env={"MISO_HOOK_COMMAND_TIMEOUT_S": "2"}) as sidecar:
        yield sidecar


def epochs_of(side: Sidecar, session_id: str) -> list[tuple[int, int]]:
    with sqlite3.connect(side.data_dir / "miso.db") as db:
        return db.execute(
            "SELECT id, start_utc_ms FROM eeg_epochs WHERE session_id = ? ORDER BY start_utc_ms", [session_id]
        ).fetchall()


def replay(side: Sidecar, folder: Path, name: str, eeg_uv) -> str:
    """Replay ``eeg_uv`` at 40x; returns the session once every epoch is embedded."""
    path = write_recording(folder / f"{name}.csv", GANGLION, eeg_uv)
    body = {"board_id": PLAYBACK, "params": {"file": str(path), "master_board": GANGLION}, "playback_speed": 40}
    answer = side.post("/v1/control/start-session", json=body)
    assert answer.status_code == 200, answer.text
    session = answer.json()["session"]["id"]
    side.events.wait_for("DeviceDisconnected", lambda p: p["session_id"] == session, timeout=60)

    def all_embedded() -> bool:
        done = [e for e in side.events.of_type("EegEmbedding") if e["payload"]["session_id"] == session]
        return len(done) == len(epochs_of(side, session)) > 0

    wait_until(all_embedded, timeout=60)
    return session


def label(side: Sidecar, session_id: str, text: str) -> dict:
    """A label on the middle epoch of a session (its EEG: the epochs within 30 s, all of it)."""
    epochs = epochs_of(side, session_id)
    middle = epochs[len(epochs) // 2][1] // 1000
    body = {"text": text, "eegStart": middle, "eegEnd": middle}
    answer = side.post("/v1/labels", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


@pytest.fixture(scope="module")
def labelled(side, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("recordings")
    resting = replay(side, folder, "resting", sine_eeg(10.0, REPLAY_S, RATE_HZ, 4))
    coding = replay(side, folder, "coding", sine_eeg(25.0, REPLAY_S, RATE_HZ, 4))
    again = sine_eeg(10.0, 30, RATE_HZ, 4, amplitude_uv=15.0)[:, ::-1].copy()  # other noise, other phases
    return {
        "again_uv": again,
        "resting_session": resting,
        "folder": folder,
        "resting": label(side, resting, "eyes closed resting"),
        "coding": label(side, coding, "typing code at my desk"),
    }


def rules(side_effect: Path) -> list[dict]:
    script = side_effect.parent / "hook.py"
    script.write_text(
        "import os, sys\n"
        "fired = os.environ['MISO_HOOK_NAME'] + ':' + os.environ['MISO_HOOK_LABEL_TEXT']\n"
        "open(sys.argv[1], 'a').write(fired + '\\n')\n"
        "print('hello from the hook')\n"
    )
    return [
        {
            "name": "rest",
            "keywords": ["resting"],
            "command": f"{sys.executable} {script} {side_effect}",
            "text": "take a break",
            "distance_threshold": 0.3,
        },
        {"name": "code", "keywords": ["coding", "programming"], "command": "true", "distance_threshold": 0.3},
        {"name": "missing", "keywords": ["eyes closed"], "command": "/nonexistent/hook-command --flag"},
        {"name": "slow", "keywords": ["resting"], "command": "sleep 30", "distance_threshold": 0.3},
        {"name": "off", "enabled": False, "keywords": ["resting"], "command": "true", "distance_threshold": 0.3},
    ]


def log_rows(side: Sidecar) -> list[dict]:
    answer = side.post("/v1/hooks/log", json={"limit": 500})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_replay_near_a_labelled_moment_fires_its_hooks(side, labelled, tmp_path):
    side_effect = tmp_path / "fired.txt"
    saved = side.put("/v1/hooks", json=rules(side_effect))
    assert saved.status_code == 200 and saved.json() == {"ok": True}, saved.text
    assert [rule["name"] for rule in side.get("/v1/hooks").json()] == ["rest", "code", "missing", "slow", "off"]
    before = time.time()
    replay(side, labelled["folder"], "again", labelled["again_uv"])

    fired = lambda: {e["payload"]["hook"] for e in side.events.of_type("hook", since=before)}  # noqa: E731
    wait_until(lambda: {"rest", "missing", "slow"} <= fired(), timeout=30)
    event = side.events.wait_for("hook", lambda p: p["hook"] == "rest", since=before)["payload"]
    assert event["label_id"] == labelled["resting"]["id"] and event["label_text"] == "eyes closed resting"
    assert event["context"] == "labels" and event["text"] == "take a break" and event["scenario"] == "any"
    assert 0.0 <= event["distance"] <= 0.3 and len(str(event["triggered_at_utc"])) == 14
    assert "code" not in fired() and "off" not in fired()

    # The command ran without a shell, with what fired it in its environment; the log says how it went.
    wait_until(lambda: side_effect.is_file() and side_effect.read_text(), timeout=15)
    assert side_effect.read_text().splitlines()[0] == "rest:eyes closed resting"

    def results() -> dict[str, dict]:
        found = {}
        for row in log_rows(side):
            payload = json.loads(row["payload_json"])
            if "result" in payload:
                found.setdefault(json.loads(row["hook_json"])["name"], payload["result"])
        return found

    outcomes = wait_until(lambda: (r := results()) and {"rest", "missing", "slow"} <= set(r) and r, timeout=20)
    assert outcomes["rest"]["status"] == "ok" and outcomes["rest"]["exit_code"] == 0
    assert outcomes["rest"]["output"] == "hello from the hook\n"
    assert outcomes["missing"]["status"] == "not_found" and "/nonexistent/hook-command" in outcomes["missing"]["error"]
    assert outcomes["slow"]["status"] == "timeout" and outcomes["slow"]["duration_ms"] < 10_000

    rows = log_rows(side)
    assert side.get("/v1/hooks/log-count").json() == {"count": len(rows)}
    newest = rows[0]
    assert set(newest) == {"id", "triggered_at_utc", "hook_json", "trigger_json", "payload_json"}
    assert [row["id"] for row in rows] == sorted((row["id"] for row in rows), reverse=True)
    trigger = json.loads(newest["trigger_json"])
    assert {"distance", "label_id", "label_text", "triggered_at_utc"} <= set(trigger)

    statuses = {s["hook"]["name"]: s for s in side.get("/v1/hooks/statuses").json()}
    assert statuses["rest"]["last_trigger"]["label_id"] == labelled["resting"]["id"]
    assert statuses["code"]["last_trigger"] is None and statuses["off"]["last_trigger"] is None


def test_the_editor_suggests_keywords_and_a_threshold(side, labelled):
    found = side.post("/v1/hooks/suggest-keywords", json={"draft": "REST"}).json()
    assert found == [{"keyword": "eyes closed resting", "source": "fuzzy", "score": 0.92}]
    assert side.post("/v1/hooks/suggest-keywords", json={"draft": "r"}).json() == []
    assert side.post("/v1/hooks/suggest-keywords", json={"draft": "zzz-nothing"}).json() == []

    suggestion = side.post("/v1/hooks/suggest-distances", json={"keywords": ["resting"]}).json()
    assert suggestion["label_n"] == 1 and suggestion["ref_n"] == 1 and suggestion["sample_n"] > 10
    assert suggestion["eeg_min"] <= suggestion["eeg_p25"] <= suggestion["eeg_p50"] <= suggestion["eeg_max"]
    assert 0.05 <= suggestion["suggested"] <= 0.95
    unknown = side.post("/v1/hooks/suggest-distances", json={"keywords": ["astronomy"]}).json()
    assert unknown["label_n"] == 0 and unknown["ref_n"] == 0 and isinstance(unknown["note"], str)


def test_the_frontends_post_of_wrapped_rules_saves_and_names_rules_that_cannot_fire(side):
    new_hook = {"name": "", "enabled": True, "keywords": [], "scenario": "any", "command": "", "text": ""}
    answer = side.post(
        "/v1/hooks", json={"hooks": [new_hook, {"name": "body", "keywords": ["x"], "scenario": "Physical"}]}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ok"] is True and len(body["warnings"]) == 2 and "no keywords" in body["warnings"][0]
    saved = side.get("/v1/hooks").json()
    assert (
        saved[0]["distance_threshold"] == 0.1 and saved[0]["recent_limit"] == 12 and saved[1]["scenario"] == "physical"
    )
    statuses = side.get("/v1/hooks/statuses").json()
    assert "no keywords" in statuses[0]["problem"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([{"name": "x", "scenario": "sideways"}], "scenario"),
        ([{"name": "x", "distance_threshold": 2}], "distance_threshold"),
        ([{"name": "x", "keywords": "resting"}], "keywords"),
        ({"rules": []}, "list"),
        ("not rules", "list"),
    ],
)
def test_rules_that_can_never_be_right_are_refused_and_change_nothing(side, body, words):
    before = side.get("/v1/hooks").json()
    answer = side.put("/v1/hooks", json=body)
    assert answer.status_code == 422, answer.text
    assert words in answer.text
    assert side.get("/v1/hooks").json() == before


def test_log_paging_is_clamped_as_the_daemons(side):
    assert side.post("/v1/hooks/log", json={"limit": 0, "offset": -5}).status_code == 200
    assert len(side.post("/v1/hooks/log", json={"limit": 0}).json()) <= 1
    refused = side.post("/v1/hooks/log", json={"limit": "many"})
    assert refused.status_code == 422


def test_a_label_made_while_the_rules_run_arms_the_rule_that_names_it(side, labelled):
    garden = {"name": "garden", "keywords": ["gardening"], "command": "", "distance_threshold": 0.3}
    assert side.put("/v1/hooks", json=[garden]).status_code == 200
    first = time.time()
    replay(side, labelled["folder"], "before-label", labelled["again_uv"])  # the rule has no label yet
    assert not [e for e in side.events.of_type("hook", since=first) if e["payload"]["hook"] == "garden"]
    made = label(side, labelled["resting_session"], "gardening in the backyard")
    second = time.time()
    replay(side, labelled["folder"], "after-label", labelled["again_uv"])
    event = side.events.wait_for("hook", lambda p: p["hook"] == "garden", since=second, timeout=30)["payload"]
    assert event["label_id"] == made["id"] and event["command"] == ""

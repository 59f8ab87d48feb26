"""schmux's config, health, tool detection and quick-launch routes, through a real sidecar."""

from __future__ import annotations

import os
import stat

import pytest

from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory):
    """A PATH folder holding a fake ``claude`` executable, so detection has something to find."""
    folder = tmp_path_factory.mktemp("bin")
    tool = folder / "claude"
    tool.write_text("#!/bin/sh\necho claude\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.fixture(scope="module")
def side(tmp_path_factory, tools_dir):
    env = {"PATH": f"{tools_dir}{os.pathsep}{os.environ['PATH']}"}
    sidecar = Sidecar(tmp_path_factory.mktemp("schmux"), env=env)
    yield sidecar
    sidecar.terminate()


def test_healthz_in_schmux_shape(side):
    answer = side.http.get("/api/healthz")
    assert answer.status_code == 200 and answer.json() == {"status": "ok", "version": side.ready["version"]}


def test_config_round_trip_with_partial_updates(side):
    config = side.get("/api/config").json()
    assert config["source_code_management"] == "git-worktree"
    assert config["workspace_path"] == str(side.data_dir / "workspaces")
    assert config["needs_restart"] is False

    saved = side.post(
        "/api/config",
        json={"terminal": {"width": 160}, "run_targets": [{"name": "sh", "type": "command", "command": "sh"}]},
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "ok"
    again = side.http.put(
        "/api/config", json={"repos": [{"name": "app", "url": "file:///srv/app.git"}]}, headers=side.auth
    )
    assert again.status_code == 200
    config = side.get("/api/config").json()
    assert config["terminal"] == {**config["terminal"], "width": 160, "height": 40}
    assert [t["name"] for t in config["run_targets"] if t["source"] == "user"] == ["sh"]
    assert config["repos"][0]["name"] == "app"

    # A client that PUTs back what it got (needs_restart included) changes nothing.
    assert side.http.put("/api/config", json=config, headers=side.auth).status_code == 200
    assert side.get("/api/config").json() == config


def test_config_validation_errors_are_plain_text_400(side):
    before = side.get("/api/config").json()
    for body, says in (
        ({"source_code_management": "svn"}, "source_code_management"),
        ({"quick_launch": [{"name": "q", "target": "nowhere"}]}, "unknown target"),
        ({"terminal": {"width": "wide"}}, "terminal.width"),
        ({"unknown_field": 1}, "unknown_field"),
    ):
        answer = side.post("/api/config", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        assert says in answer.text
    broken = side.http.post("/api/config", content=b"{nope", headers={**side.auth, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.headers["content-type"].startswith("text/plain")
    assert side.get("/api/config").json() == before


def test_moving_the_workspace_path_sets_needs_restart(side, tmp_path):
    answer = side.post("/api/config", json={"workspace_path": str(tmp_path / "elsewhere")})
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"  # no workspace exists yet: no warning
    assert side.get("/api/config").json()["needs_restart"] is True


def test_detect_tools_finds_path_tools_and_configured_targets(side, tools_dir):
    side.post("/api/config", json={"run_targets": [{"name": "lint", "type": "command", "command": "ruff check ."}]})
    tools = side.get("/api/detect-tools").json()["tools"]
    detected = [t for t in tools if t["source"] == "detected"]
    assert {"name": "claude", "command": "claude", "source": "detected", "path": str(tools_dir / "claude")} in detected
    assert {"name": "lint", "command": "ruff check .", "source": "config", "type": "command"} in tools


def test_builtin_quick_launch_presets(side):
    presets = side.get("/api/builtin-quick-launch").json()
    assert presets and all(set(p) == {"name", "target", "prompt"} for p in presets)


def test_schmux_errors_use_its_envelope(side):
    missing = side.get("/api/no-such-route")
    assert missing.status_code == 404 and set(missing.json()) == {"error"}
    unauthorized = side.http.get("/api/config")
    assert unauthorized.status_code == 401 and unauthorized.headers["content-type"].startswith("text/plain")
    assert side.http.get("/api/detect-tools").json().keys() == {"error"}

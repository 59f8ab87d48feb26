"""schmux's settings through a real sidecar: the dashboard's config payload, models and their secrets,
the auth secrets, update, dev mode, and the remote and pull-request routes of a runtime without them."""

from __future__ import annotations

import os
import re
import stat
import uuid
from pathlib import Path

import httpx
import pytest

from miso_runtime import constants
from miso_runtime.agents.builtin_models import BUILTIN_MODELS
from miso_runtime.agents.tmux_sessions import TmuxSessions
from tests.eeg import wait_until
from tests.gitrepo import bare_remote
from tests.sidecar import Sidecar

#: Made-up secret values: each must appear in no answer, no log line and no config file.
MOONSHOT_KEY = "sk-moonshot-" + uuid.uuid4().hex
GITHUB_SECRET = "gh-secret-" + uuid.uuid4().hex
HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory) -> Path:
    """Fake ``claude`` and ``codex`` CLIs on PATH: the base tools of every built-in model."""
    folder = tmp_path_factory.mktemp("bin")
    for name in ("claude", "codex"):
        tool = folder / name
        tool.write_text('#!/bin/sh\necho "agent $*"\nsleep 600\n')
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-test-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()


@pytest.fixture(scope="module")
def side(tmp_path_factory, tools_dir, socket_name):
    env = {"PATH": f"{tools_dir}{os.pathsep}{os.environ['PATH']}", "MISO_TMUX_SOCKET": socket_name}
    sidecar = Sidecar(tmp_path_factory.mktemp("schmux-settings"), env=env)
    yield sidecar
    sidecar.terminate()


def plain(response: httpx.Response) -> str:
    """The body of a plain-text error (schmux's ``http.Error``), checking that it is one."""
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return response.text.strip()


def dashboard_payload(config: dict, remote: Path) -> dict:
    """``POST /api/config`` as ConfigPage.tsx (b21137fd, ``saveCurrentStep``) builds it from a loaded config."""
    return {
        "workspace_path": config["workspace_path"],
        "source_code_management": config.get("source_code_management") or "git-worktree",
        "terminal": {"width": 120, "height": 40, "seed_lines": 100, "bootstrap_lines": 20000},
        "repos": [{"name": "app", "url": str(remote)}],
        "run_targets": [
            {"name": "my-agent", "command": "claude --model opus", "type": "promptable", "source": "user"},
            {"name": "build", "command": "make", "type": "command", "source": "user"},
        ],
        "quick_launch": [
            {"name": "build it", "target": "build", "prompt": None},
            {"name": "review", "target": "claude", "prompt": "review the branch"},
        ],
        "external_diff_commands": [{"name": "meld", "command": "meld"}],
        "external_diff_cleanup_after_ms": max(60000, round(30 * 60000)),
        "nudgenik": {"target": "", "viewed_buffer_ms": 5000, "seen_interval_ms": 2000},
        "branch_suggest": {"target": ""},
        "conflict_resolve": {"target": "claude"},
        "pr_review": {"target": ""},
        "sessions": {
            "dashboard_poll_interval_ms": 5000,
            "git_status_poll_interval_ms": 10000,
            "git_clone_timeout_ms": 300000,
            "git_status_timeout_ms": 30000,
        },
        "xterm": {
            "mtime_poll_interval_ms": 5000,
            "query_timeout_ms": 5000,
            "operation_timeout_ms": 10000,
            "max_log_size_mb": 50,
            "rotated_log_size_mb": 1,
        },
        "network": {"bind_address": "127.0.0.1", "public_base_url": "", "tls": {"cert_path": "", "key_path": ""}},
        "access_control": {"enabled": False, "provider": "github", "session_ttl_minutes": 1440},
        "notifications": {"sound_disabled": True, "confirm_before_close": False},
        "model_versions": {"claude-opus": "claude-opus-4-1"},
    }


def test_the_dashboards_config_payload_saves_and_reads_back(side, tmp_path):
    remote = bare_remote(tmp_path, "app")
    payload = dashboard_payload(side.get("/api/config").json(), remote)
    saved = side.post("/api/config", json=payload)
    assert saved.status_code == 200, saved.text
    assert saved.json()["status"] == "ok"

    config = side.get("/api/config").json()
    for key in ("external_diff_commands", "external_diff_cleanup_after_ms", "branch_suggest", "pr_review"):
        assert config[key] == payload[key], key
    assert config["conflict_resolve"] == {"target": "claude", "timeout_ms": 300000}
    assert config["notifications"] == {"sound_disabled": True, "confirm_before_close": False}
    assert config["model_versions"] == {"claude-opus": "claude-opus-4-1"}
    assert config["network"]["preview_max_per_workspace"] == 3 and config["network"]["preview_max_global"] == 20
    assert config["network"]["preview_idle_timeout_ms"] == 3_600_000
    assert [t["name"] for t in config["run_targets"] if t["source"] == "user"] == ["my-agent", "build"]

    # Saving again with a version cleared drops it: the map is replaced, not merged.
    assert side.post("/api/config", json={**payload, "model_versions": {}}).status_code == 200
    assert side.get("/api/config").json()["model_versions"] == {}
    # A client that writes back what it read (derived targets, models, needs_restart) changes nothing.
    before = side.get("/api/config").json()
    assert side.put("/api/config", json=before).status_code == 200
    assert side.get("/api/config").json() == before

    # Unknown keys stay refused, in plain text naming them; so do values schmux refuses.
    for changes, says in (
        ({"surprise": 1}, "surprise"),
        ({"branch_suggest": {"target": "x", "model": "y"}}, "branch_suggest.model"),
        ({"external_diff_cleanup_after_ms": 0}, "external_diff_cleanup_after_ms"),
        ({"external_diff_commands": [{"name": "meld"}]}, "external_diff_commands.0.command"),
        ({"quick_launch": [{"name": "q", "target": "no-such-target", "prompt": "x"}]}, "no-such-target"),
    ):
        refused = side.post("/api/config", json=changes)
        assert refused.status_code == 400 and says in plain(refused), (changes, refused.text)


def test_models_are_the_built_in_ones_of_the_detected_tools(side):
    listed = side.get("/api/models").json()["models"]
    assert [m["id"] for m in listed] == sorted(m.id for m in BUILTIN_MODELS)  # claude and codex are both on PATH
    by_id = {m["id"]: m for m in listed}
    assert by_id["claude-opus"] == {
        "id": "claude-opus",
        "display_name": "claude opus",
        "base_tool": "claude",
        "provider": "anthropic",
        "category": "native",
        "configured": True,
        "default_value": "opus",
    }
    assert by_id["kimi-thinking"]["required_secrets"] == ["ANTHROPIC_AUTH_TOKEN"]
    assert by_id["kimi-thinking"]["usage_url"].startswith("https://platform.moonshot.ai")
    assert by_id["glm-5"]["configured"] is False and by_id["gpt-5.2-codex"]["configured"] is True
    assert by_id["minimax"]["default_value"] == "minimax-m2.1"

    assert side.get("/api/models/opus/configured").json() == {"configured": True}  # an alias
    assert side.get("/api/models/kimi-thinking/configured").json() == {"configured": False}
    unknown = side.get("/api/models/gpt-17/configured")
    assert unknown.status_code == 404 and plain(unknown) == "model not found"
    assert side.post("/api/models/gpt-17/secrets", json={"secrets": {}}).status_code == 404


def test_get_config_lists_the_models_and_derived_targets(side):
    """``GET /api/config``'s ``models`` is what the dashboard's config page reads (it never calls /api/models)."""
    config = side.get("/api/config").json()
    assert config["models"] == side.get("/api/models").json()["models"]
    detected = {t["name"]: t for t in config["run_targets"] if t["source"] == "detected"}
    assert detected["claude"] == {"name": "claude", "type": "promptable", "command": "claude", "source": "detected"}


def test_model_secrets_configure_a_provider_and_never_come_back(side, socket_name, tmp_path):
    for body in ({"secrets": {"ANTHROPIC_AUTH_TOKEN": "   "}}, {"secrets": {}}, {}):
        blank = side.post("/api/models/kimi-thinking/secrets", json=body)
        assert blank.status_code == 400 and plain(blank) == "missing required secret ANTHROPIC_AUTH_TOKEN"
    bad_key = side.post("/api/models/kimi-thinking/secrets", json={"secrets": {"NOT AN ENV NAME": MOONSHOT_KEY}})
    assert bad_key.status_code == 400 and MOONSHOT_KEY not in bad_key.text

    saved = side.post("/api/models/kimi-thinking/secrets", json={"secrets": {"ANTHROPIC_AUTH_TOKEN": MOONSHOT_KEY}})
    assert saved.status_code == 200 and saved.json() == {"status": "ok"}
    assert side.get("/api/models/kimi-thinking/configured").json() == {"configured": True}
    # One provider key serves each of its models; other providers stay unconfigured.
    models = {m["id"]: m for m in side.get("/api/models").json()["models"]}
    assert models["kimi-k2.5"]["configured"] is True and models["glm-4.7"]["configured"] is False

    secrets_file = side.data_dir / constants.AGENTS_SECRETS_FILE_NAME
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    assert MOONSHOT_KEY in secrets_file.read_text()

    # A session started after the secrets were saved: its listing holds no secret either.
    remote = bare_remote(tmp_path, "app")
    spawned = side.post(
        "/api/spawn", json={"repo": str(remote), "branch": "secrets", "targets": {"claude": 1}, "prompt": "hi"}
    )
    assert spawned.status_code == 200 and "error" not in spawned.json()[0], spawned.text
    wait_until(lambda: any(w["sessions"] for w in side.get("/api/sessions").json()))
    answers = [side.get(path).text for path in ("/api/config", "/api/models", "/api/sessions", "/api/auth/secrets")]
    assert not any(MOONSHOT_KEY in answer for answer in answers)
    config_file = side.data_dir / constants.AGENTS_CONFIG_FILE_NAME
    assert config_file.exists() and MOONSHOT_KEY not in config_file.read_text()
    assert MOONSHOT_KEY not in side.stderr_text()

    # A model in use cannot lose its secrets; a third-party provider's delete covers all its models.
    assert side.post("/api/config", json={"nudgenik": {"target": "kimi-k2.5"}}).status_code == 200
    in_use = side.delete("/api/models/kimi-thinking/secrets")
    assert in_use.status_code == 200  # kimi-k2.5 is the one in use, not kimi-thinking
    assert side.get("/api/models/kimi-k2.5/configured").json() == {"configured": False}
    side.post("/api/models/kimi-k2.5/secrets", json={"secrets": {"ANTHROPIC_AUTH_TOKEN": MOONSHOT_KEY}})
    refused = side.delete("/api/models/kimi-k2.5/secrets")
    assert refused.status_code == 400 and plain(refused) == "model is in use by nudgenik or quick launch"
    assert side.post("/api/config", json={"nudgenik": {"target": ""}}).status_code == 200
    assert side.delete("/api/models/kimi-k2.5/secrets").json() == {"status": "ok"}
    assert MOONSHOT_KEY not in secrets_file.read_text()
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600


def test_auth_secrets_are_reported_as_set_only(side):
    assert side.get("/api/auth/secrets").json() == {"client_id_set": False, "client_secret_set": False}
    for body in ({}, {"client_id": "abc", "client_secret": " "}, {"client_id": "", "client_secret": GITHUB_SECRET}):
        refused = side.post("/api/auth/secrets", json=body)
        assert refused.status_code == 400 and plain(refused) == "client_id and client_secret are required"
    saved = side.post("/api/auth/secrets", json={"client_id": "Iv1.abc", "client_secret": GITHUB_SECRET})
    assert saved.status_code == 200 and saved.json() == {"status": "ok"}
    status = side.get("/api/auth/secrets")
    assert status.json() == {"client_id_set": True, "client_secret_set": True}
    assert GITHUB_SECRET not in side.get("/api/config").text and GITHUB_SECRET not in side.stderr_text()
    secrets_file = side.data_dir / constants.AGENTS_SECRETS_FILE_NAME
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600 and GITHUB_SECRET in secrets_file.read_text()
    assert side.http.post("/api/auth/secrets", json={"client_id": "a", "client_secret": "b"}).status_code == 401


def test_update_says_how_this_install_updates(side):
    answer = side.post("/api/update")
    assert answer.status_code == 500
    message = answer.json()["error"]
    assert set(answer.json()) == {"error"} and message.startswith("update failed: ")
    assert "git pull" in message and "make install" in message
    assert side.get("/api/update").status_code == 405


def test_dev_mode_is_off_so_its_routes_do_not_exist(side):
    for method, path in (("GET", "/api/dev/status"), ("POST", "/api/dev/rebuild")):
        body = {"workspace_id": "x"} if method == "POST" else None
        answer = side.http.request(method, path, json=body, headers=side.auth)
        assert answer.status_code == 404 and plain(answer) == "404 page not found"
        assert side.http.request(method, path, json=body).status_code == 401
    assert "dev_mode" not in side.http.get("/api/healthz").json()


def test_remote_routes_answer_with_no_flavor_or_host(side):
    assert side.get("/api/config/remote-flavors").json() == []
    assert side.get("/api/remote/hosts").json() == []
    assert side.get("/api/remote/flavor-statuses").json() == []
    missing = side.get("/api/config/remote-flavors/gpu_large")
    assert missing.status_code == 404 and plain(missing) == "Flavor not found"
    reconnect = side.post("/api/remote/hosts/remote-abc/reconnect")
    assert reconnect.status_code == 404 and plain(reconnect) == "Host not found"
    assert side.delete("/api/remote/hosts/remote-abc").status_code == 204  # schmux: always 204
    no_id = side.delete("/api/remote/hosts/")
    assert no_id.status_code == 400 and plain(no_id) == "Host ID required"

    # Three connection attempts a minute per address (a body that does not parse is not one).
    assert side.post("/api/remote/hosts/connect", json={"flavor_id": 7}).status_code == 400
    no_flavor = side.post("/api/remote/hosts/connect", json={})
    assert no_flavor.status_code == 400 and plain(no_flavor) == "flavor_id is required"
    for _ in range(2):
        unknown = side.post("/api/remote/hosts/connect", json={"flavor_id": "gpu_large"})
        assert unknown.status_code == 404 and plain(unknown) == "Flavor not found: gpu_large"
    limited = side.post("/api/remote/hosts/connect", json={"flavor_id": "gpu_large"})
    assert limited.status_code == 429
    assert plain(limited) == "Rate limit exceeded. Max 3 connection attempts per minute."


def test_provisioning_terminal_is_refused_before_the_upgrade(side):
    headers = {**HANDSHAKE, "x-miso-auth": side.token}
    unknown = side.http.get("/ws/provision/provision-remote-abc123", headers=headers)
    assert unknown.status_code == 404 and plain(unknown) == "remote host connection not found"
    malformed = side.http.get("/ws/provision/remote-abc123", headers=headers)
    assert malformed.status_code == 400 and plain(malformed) == "invalid provision ID format"
    empty = side.http.get("/ws/provision/", headers=headers)
    assert empty.status_code == 400 and plain(empty) == "provision ID is required"
    assert side.http.get("/ws/provision/provision-remote-abc123", headers=HANDSHAKE).status_code == 401


def test_pull_requests_without_github_repos(side):
    """No configured repo is on GitHub: a refresh asks nothing and finds nothing (GitHub itself is
    stood in by ``tests/test_schmux_prs.py``)."""
    assert side.get("/api/prs").json() == {"prs": [], "last_fetched_at": None}
    refreshed = side.post("/api/prs/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json() == {"prs": [], "fetched_count": 0, "retry_after_sec": None}
    listing = side.get("/api/prs").json()
    assert listing["prs"] == [] and "error" not in listing
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", listing["last_fetched_at"])
    required = side.post("/api/prs/checkout", json={"repo_url": "https://github.com/me/app", "pr_number": 0})
    assert required.status_code == 400 and required.json() == {"error": "repo_url and pr_number are required"}
    absent = side.post("/api/prs/checkout", json={"repo_url": "https://github.com/me/app", "pr_number": 7})
    assert absent.status_code == 404 and absent.json() == {"error": "PR #7 not found for https://github.com/me/app"}

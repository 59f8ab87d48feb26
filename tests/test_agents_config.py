"""The coding-agents config: the contract's shape, partial updates, validation, atomic saves."""

from __future__ import annotations

import json

import pytest

from miso_runtime.agents.config import AgentsConfigStore, ConfigError

CONTRACT_KEYS = {
    "workspace_path",
    "source_code_management",
    "repos",
    "run_targets",
    "quick_launch",
    "models",
    "nudgenik",
    "terminal",
    "sessions",
    "xterm",
    "network",
    "access_control",
    # The keys schmux's dashboard sends back with every save.
    "external_diff_commands",
    "external_diff_cleanup_after_ms",
    "branch_suggest",
    "conflict_resolve",
    "pr_review",
    "notifications",
    "model_versions",
}


@pytest.fixture
def store(tmp_path):
    return AgentsConfigStore(tmp_path / "agents-config.json", tmp_path / "workspaces")


def test_defaults_have_the_contract_shape(store, tmp_path):
    config = store.get().model_dump()
    assert set(store.view()) == CONTRACT_KEYS | {"needs_restart"}  # what GET /api/config answers
    assert set(config) == CONTRACT_KEYS | {"remote_flavors"}  # kept in the file, shown by their own routes
    assert config["workspace_path"] == str(tmp_path / "workspaces")
    assert config["source_code_management"] == "git-worktree"
    assert set(config["terminal"]) >= {"width", "height", "seed_lines", "bootstrap_lines"}
    assert set(config["sessions"]) == {
        "dashboard_poll_interval_ms",
        "git_status_poll_interval_ms",
        "git_clone_timeout_ms",
        "git_status_timeout_ms",
    }
    assert set(config["network"]["tls"]) == {"cert_path", "key_path"}


def test_omitted_fields_stay_and_sections_merge(store, tmp_path):
    store.update({"repos": [{"name": "app", "url": "file:///srv/app.git"}]})
    result = store.update(
        {"terminal": {"width": 200}, "run_targets": [{"name": "sh", "type": "command", "command": "sh"}]}
    )
    config = result.config
    assert config.repos[0].name == "app"  # not named in the second update
    assert config.terminal.width == 200 and config.terminal.height == 40  # merged field by field
    assert result.response(0, 0)["status"] == "ok"
    reread = AgentsConfigStore(tmp_path / "agents-config.json", tmp_path / "elsewhere")
    assert reread.get() == config


def test_invalid_updates_name_the_field_and_change_nothing(store, tmp_path):
    before = store.get()
    cases = [
        ({"source_code_management": "svn"}, "source_code_management"),
        ({"run_targets": [{"name": "x", "type": "magic", "command": "x"}]}, "run_targets.0.type"),
        ({"repos": [{"name": "a", "url": "u"}, {"name": "a", "url": "v"}]}, "duplicate name a"),
        ({"quick_launch": [{"name": "q", "target": "nowhere"}]}, "unknown target 'nowhere'"),
        ({"terminal": {"width": 0}}, "terminal.width"),
        ({"workspace_path": "relative/dir"}, "absolute path"),
        ({"repos": [{"name": "bad name!", "url": "u"}]}, "repos.0.name"),
        ({"surprise": 1}, "surprise"),
    ]
    for changes, says in cases:
        with pytest.raises(ConfigError) as raised:
            store.update(changes)
        assert says in str(raised.value), (changes, str(raised.value))
    assert store.get() == before
    assert not (tmp_path / "agents-config.json").exists()


def test_moving_the_workspace_path_with_workspaces_warns(store, tmp_path):
    result = store.update({"workspace_path": str(tmp_path / "new-place")})
    answer = result.response(session_count=2, workspace_count=3)
    assert answer["requires_restart"] is True
    assert (answer["session_count"], answer["workspace_count"]) == (2, 3)
    assert "does not exist yet" in " ".join(answer["warnings"])
    assert store.needs_restart
    quiet = store.update({"workspace_path": str(tmp_path / "new-place")}).response(2, 3)
    assert quiet["status"] == "ok"


def test_the_file_is_replaced_whole_and_ignores_needs_restart(store, tmp_path):
    store.update({"needs_restart": True, "nudgenik": {"target": "sh"}})
    saved = json.loads((tmp_path / "agents-config.json").read_text())
    assert "needs_restart" not in saved and saved["nudgenik"]["target"] == "sh"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".agents-config")] == []


def test_an_unreadable_file_falls_back_to_defaults(tmp_path):
    (tmp_path / "agents-config.json").write_text("{broken")
    store = AgentsConfigStore(tmp_path / "agents-config.json", tmp_path / "ws")
    assert store.get().workspace_path == str(tmp_path / "ws")

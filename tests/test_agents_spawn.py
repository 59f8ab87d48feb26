"""The spawn rules of the schmux contract, checked before anything is created."""

from __future__ import annotations

import pytest

from miso_runtime.agents.config import AgentsConfig
from miso_runtime.agents.spawn import SpawnError, SpawnRequest, known_targets, plan_spawn

CONFIG = AgentsConfig(
    run_targets=[
        {"name": "tests", "type": "command", "command": "make test"},
        {"name": "echo-agent", "type": "promptable", "command": "sh /opt/echo-agent.sh"},
    ]
)
TARGETS = known_targets(CONFIG, {"claude": "claude"})


def plan(**fields):
    return plan_spawn(SpawnRequest(**{"repo": "file:///r.git", "branch": "main", **fields}), TARGETS)


def test_promptable_targets_get_the_quoted_prompt_and_nicknames_are_numbered():
    result = plan(targets={"echo-agent": 2, "claude": 1}, prompt="fix it; don't break", nickname="fixer")
    assert [s.command for s in result.sessions] == [
        "sh /opt/echo-agent.sh 'fix it; don'\"'\"'t break'",
        "sh /opt/echo-agent.sh 'fix it; don'\"'\"'t break'",
        "claude 'fix it; don'\"'\"'t break'",
    ]
    assert [s.nickname for s in result.sessions] == ["fixer (1)", "fixer (2)", "fixer (3)"]
    assert result.sessions[0].result("s1", "r-001") == {
        "session_id": "s1",
        "workspace_id": "r-001",
        "target": "echo-agent",
        "prompt": "fix it; don't break",
        "nickname": "fixer (1)",
    }


def test_command_targets_run_once_without_a_prompt():
    result = plan(targets={"tests": 5}, nickname="ci")
    assert [(s.command, s.nickname, s.prompt) for s in result.sessions] == [("make test", "ci", None)]


def test_resume_uses_the_tools_resume_command():
    result = plan(targets={"claude": 1}, resume=True, workspace_id="r-001", repo="", branch="")
    assert result.sessions[0].command == "claude --continue" and result.workspace_id == "r-001"


@pytest.mark.parametrize(
    "fields, says",
    [
        ({"repo": "", "targets": {"tests": 1}}, "repo and branch are required"),
        ({"branch": "", "targets": {"tests": 1}}, "repo and branch are required"),
        ({"targets": {}}, "targets is required"),
        ({"targets": {"nope": 1}}, "unknown target: nope"),
        ({"targets": {"tests": 1}, "prompt": "hi"}, "takes no prompt"),
        ({"targets": {"claude": 1}}, "needs a prompt"),
        ({"targets": {"claude": 1}, "prompt": "x", "resume": True}, "prompt must be empty"),
        ({"targets": {"echo-agent": 1}, "resume": True}, "no resume command"),
        ({"targets": {"claude": 0}, "prompt": "x"}, "at least 1"),
        ({"targets": {"claude": 100}, "prompt": "x"}, "at most"),
    ],
)
def test_rules(fields, says):
    with pytest.raises(SpawnError) as raised:
        plan(**fields)
    assert raised.value.status == 400 and says in raised.value.message


def test_run_targets_override_detected_tools_and_models_map_to_their_tool():
    config = AgentsConfig(
        models=[{"id": "sonnet", "base_tool": "claude"}],
        run_targets=[{"name": "claude", "type": "promptable", "command": "claude --model opus"}],
    )
    targets = known_targets(config, {"claude": "claude"})
    assert targets["claude"].command == "claude --model opus"
    assert targets["claude"].resume_command == "claude --model opus --continue"
    assert targets["sonnet"].kind == "promptable"

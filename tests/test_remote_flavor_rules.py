"""Remote flavors' rules and command templates, as schmux applies them (research/schmux-rest.md section 9)."""

from __future__ import annotations

import pytest

from miso_runtime.agents.command_template import TemplateError, render
from miso_runtime.agents.remote_flavors import FlavorError, RemoteFlavor, created, flavor_id, updated

GOOD = {"flavor": "gpu:ml-large", "display_name": "GPU", "workspace_path": "~/ws"}


def test_a_template_fills_its_fields_and_honours_trim_markers_and_comments():
    data = {"Hostname": "h1.example", "Flavor": "gpu"}
    assert render("ssh -tt {{.Hostname}} --", "c", data) == "ssh -tt h1.example --"
    assert render("a  {{- .Flavor -}}  b{{/* why */}}", "c", data) == "agpub"
    assert render("ssh {hostname}", "c", data) == "ssh {hostname}"  # no action: plain text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ssh {{.Hostname}}", 'template: c:1:6: executing "c" at <.Hostname>: map has no entry for key "Hostname"'),
        ("x\nssh {{ .Repo }}", 'template: c:2:7: executing "c" at <.Repo>: map has no entry for key "Repo"'),
        ("ssh {{.Flavor", "template: c:1: unclosed action"),
        ("{{printf .Flavor}}", 'template: c:1: function "printf" not defined'),
        ("{{}}", "template: c:1: missing value for command"),
    ],
)
def test_a_template_error_reads_as_go_writes_it(text, message):
    with pytest.raises(TemplateError) as error:
        render(text, "c", {"Flavor": "gpu"})
    assert str(error.value) == message


def test_a_created_flavor_gets_schmux_id_and_git_by_default():
    flavor = created({**GOOD, "connect_command": "ssh -tt {{.Flavor}} --", "hostname_regex": r"host=(\S+)"}, [])
    assert flavor.id == "gpu_ml_large" and flavor.vcs == "git"
    assert flavor.response() == {
        "id": "gpu_ml_large",
        "flavor": "gpu:ml-large",
        "display_name": "GPU",
        "vcs": "git",
        "workspace_path": "~/ws",
        "connect_command": "ssh -tt {{.Flavor}} --",
        "hostname_regex": r"host=(\S+)",
    }
    assert flavor_id("Dev Box.2") == "dev_box_2"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"flavor": ""}, "flavor string is required"),
        ({"display_name": ""}, "display_name is required"),
        ({"workspace_path": ""}, "workspace_path is required"),
        ({"vcs": "hg"}, "vcs must be 'git' or 'sapling'"),
        ({"display_name": "x" * 101}, "display_name too long (max 100 characters)"),
        ({"flavor": "f" * 201}, "flavor too long (max 200 characters)"),
        ({"workspace_path": "/" + "w" * 500}, "workspace_path too long (max 500 characters)"),
        ({"flavor": "gpu;rm"}, "flavor contains shell metacharacters"),
        ({"flavor": "a(b)"}, "flavor contains shell metacharacters"),
        ({"workspace_path": "/ws/$HOME"}, "workspace_path contains dangerous characters"),
        ({"workspace_path": "ws"}, "workspace_path must be absolute or start with ~"),
        (
            {"connect_command": "ssh {{.Hostname}}"},
            'connect_command template execution failed: template: connect_command:1:6: executing "connect_command" '
            'at <.Hostname>: map has no entry for key "Hostname"',
        ),
        (
            {"provision_command": "setup {{.Repo"},
            "provision_command has invalid template syntax: template: provision_command:1: unclosed action",
        ),
        ({"hostname_regex": "dev-.*"}, "hostname_regex must contain at least one capture group"),
    ],
)
def test_each_rule_is_refused_with_schmux_message(change, reason):
    with pytest.raises(FlavorError) as error:
        created({**GOOD, **change}, [])
    assert str(error.value) == f"invalid config: {reason}"


def test_a_bad_regex_and_a_duplicate_are_refused():
    with pytest.raises(FlavorError, match="^invalid config: hostname_regex is not valid regex: "):
        created({**GOOD, "hostname_regex": "(unclosed"}, [])
    first = created(GOOD, [])
    with pytest.raises(FlavorError) as error:
        created({**GOOD, "flavor": "gpu-ml:large"}, [first])
    assert str(error.value) == 'invalid config: remote flavor with ID "gpu_ml_large" already exists'


def test_an_update_keeps_id_and_flavor_and_replaces_the_rest():
    first = created({**GOOD, "connect_command": "ssh {{.Flavor}}"}, [])
    second = updated(first, {"display_name": "New", "workspace_path": "/srv", "flavor": "ignored"})
    assert second == RemoteFlavor(id=first.id, flavor=first.flavor, display_name="New", workspace_path="/srv")

"""schmux's remote flavor routes through a real sidecar: create, read, replace, delete, the
statuses the spawn page polls, schmux's plain-text errors, and the flavors kept across restarts."""

from __future__ import annotations

import json

import pytest

from tests.sidecar import Sidecar
from tests.test_schmux_settings import plain

GPU = {
    "flavor": "gpu:ml-large",
    "display_name": "GPU ML Large",
    "workspace_path": "~/workspace",
    "connect_command": "ssh -tt {{.Flavor}} --",
    "hostname_regex": r"Connected to (\S+)",
    "vscode_command_template": "code --remote ssh-remote+{{.Hostname}} {{.Path}}",
}


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory):
    started = Sidecar(tmp_path_factory.mktemp("remote-flavors") / "data")
    yield started
    started.terminate()


@pytest.fixture
def side(sidecar):
    """The module's sidecar, with no flavor left by the test before."""
    yield sidecar
    for flavor in sidecar.get("/api/config/remote-flavors").json():
        assert sidecar.delete(f"/api/config/remote-flavors/{flavor['id']}").status_code == 204


def test_a_flavor_is_created_read_replaced_and_deleted(side):
    assert side.get("/api/config/remote-flavors").json() == []
    made = side.post("/api/config/remote-flavors", json=GPU)
    assert made.status_code == 200, made.text
    expected = {**GPU, "id": "gpu_ml_large", "vcs": "git"}
    assert made.json() == expected
    assert side.get("/api/config/remote-flavors").json() == [expected]
    assert side.get("/api/config/remote-flavors/gpu_ml_large").json() == expected

    statuses = side.get("/api/remote/flavor-statuses").json()
    shown = {k: v for k, v in expected.items() if k not in ("hostname_regex", "vscode_command_template")}
    assert statuses == [{"flavor": shown, "connected": False, "status": "disconnected"}]

    # A full replace: ``flavor`` is kept, what the body leaves out becomes empty (and is omitted).
    replaced = side.put(
        "/api/config/remote-flavors/gpu_ml_large",
        json={"flavor": "other", "display_name": "GPU", "vcs": "sapling", "workspace_path": "/srv/ws"},
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == {
        "id": "gpu_ml_large",
        "flavor": "gpu:ml-large",
        "display_name": "GPU",
        "vcs": "sapling",
        "workspace_path": "/srv/ws",
    }
    assert side.get("/api/config/remote-flavors/gpu_ml_large").json() == replaced.json()

    gone = side.delete("/api/config/remote-flavors/gpu_ml_large")
    assert gone.status_code == 204 and gone.content == b""
    assert side.get("/api/config/remote-flavors").json() == []
    assert side.get("/api/remote/flavor-statuses").json() == []


def test_flavors_survive_a_restart_and_stay_out_of_the_config(tmp_path):
    data_dir = tmp_path / "data"
    first = Sidecar(data_dir)
    try:
        assert first.post("/api/config/remote-flavors", json=GPU).status_code == 200
        config = first.get("/api/config").json()
        assert "remote_flavors" not in config
        # A dashboard that saves its whole config page changes no flavor, even one naming them.
        saved = first.post("/api/config", json={"remote_flavors": []})
        assert saved.status_code == 200, saved.text
    finally:
        first.terminate()
    second = Sidecar(data_dir)
    try:
        assert [f["id"] for f in second.get("/api/config/remote-flavors").json()] == ["gpu_ml_large"]
    finally:
        second.terminate()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "Invalid request body"),
        ("{not json", "Invalid request body"),
        (json.dumps({**GPU, "display_name": 7}), "Invalid request body"),
        (json.dumps({**GPU, "flavor": "gpu;reboot"}), "invalid config: flavor contains shell metacharacters"),
        (
            json.dumps({**GPU, "workspace_path": "workspace"}),
            "invalid config: workspace_path must be absolute or start with ~",
        ),
        (
            json.dumps({**GPU, "connect_command": "ssh {{.Hostname}}"}),
            "invalid config: connect_command template execution failed: template: connect_command:1:6: executing "
            '"connect_command" at <.Hostname>: map has no entry for key "Hostname"',
        ),
        (
            json.dumps({**GPU, "hostname_regex": "dev-.*"}),
            "invalid config: hostname_regex must contain at least one capture group",
        ),
    ],
)
def test_a_bad_flavor_is_refused_in_plain_text_and_saves_nothing(side, body, message):
    answer = side.post(
        "/api/config/remote-flavors", content=body, headers={**side.auth, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and plain(answer) == message
    assert side.get("/api/config/remote-flavors").json() == []


def test_unknown_duplicate_and_missing_ids_answer_as_schmux(side):
    assert side.post("/api/config/remote-flavors", json=GPU).status_code == 200
    again = side.post("/api/config/remote-flavors", json={**GPU, "flavor": "gpu-ml:large"})
    assert again.status_code == 400
    assert plain(again) == 'invalid config: remote flavor with ID "gpu_ml_large" already exists'

    missing = side.get("/api/config/remote-flavors/nope")
    assert missing.status_code == 404 and plain(missing) == "Flavor not found"
    put_missing = side.put("/api/config/remote-flavors/nope", json=GPU)
    assert put_missing.status_code == 404 and plain(put_missing) == "Flavor not found"
    delete_missing = side.delete("/api/config/remote-flavors/nope")
    assert delete_missing.status_code == 404
    assert plain(delete_missing) == "invalid config: remote flavor not found: nope"
    no_id = side.get("/api/config/remote-flavors/")
    assert no_id.status_code == 400 and plain(no_id) == "Flavor ID required"

    bad_update = side.put("/api/config/remote-flavors/gpu_ml_large", json={"display_name": "x"})
    assert bad_update.status_code == 400 and plain(bad_update) == "invalid config: workspace_path is required"
    assert side.get("/api/config/remote-flavors/gpu_ml_large").json()["display_name"] == GPU["display_name"]


def test_changing_a_flavor_needs_admin_access(tmp_path):
    sidecar = Sidecar(tmp_path / "data", token="secret-token")
    try:
        assert sidecar.http.get("/api/config/remote-flavors").status_code == 401
        assert sidecar.http.post("/api/config/remote-flavors", json=GPU).status_code == 401
        assert sidecar.get("/api/config/remote-flavors").json() == []
    finally:
        sidecar.terminate()


def test_another_method_is_a_plain_405(side):
    for method, path in (("PATCH", "/api/config/remote-flavors/gpu"), ("DELETE", "/api/config/remote-flavors")):
        answer = side.http.request(method, path, headers=side.auth)
        assert answer.status_code == 405 and plain(answer) == "Method not allowed", (method, answer.text)

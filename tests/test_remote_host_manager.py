"""The remote host manager on its own: expiry, and a restart's stale hosts (real connections)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from miso_runtime.agents.remote_flavors import RemoteFlavor
from miso_runtime.agents.remote_hosts import HostStore, RemoteHost, RemoteHostManager
from tests.eeg import wait_until

SCRIPT = """#!/bin/sh
echo "Establish ControlMaster connection to $1.test"
shift
export TMUX_TMPDIR={tmux_dir}
exec "$@"
"""


@pytest.fixture
def far(tmp_path: Path):
    tmux_dir = tmp_path / "tmux"
    tmux_dir.mkdir()
    script = tmp_path / "far"
    script.write_text(SCRIPT.format(tmux_dir=tmux_dir))
    script.chmod(0o755)
    yield script
    subprocess.run(["tmux", "kill-server"], env={**os.environ, "TMUX_TMPDIR": str(tmux_dir)}, check=False)


def flavor(script: Path) -> RemoteFlavor:
    return RemoteFlavor(
        id="lab",
        flavor="lab",
        display_name="Lab",
        vcs="git",
        workspace_path="/tmp",
        connect_command=f"{script} {{{{.Flavor}}}}",
    )


def test_a_host_past_its_expiry_is_closed_and_marked_expired(tmp_path, far):
    changes = []
    manager = RemoteHostManager(
        HostStore(tmp_path / "hosts.json"), lambda: [flavor(far)], on_change=lambda: changes.append(1)
    )
    status, body = manager.connect("lab")
    assert status == 202
    host_id = body["provisioning_session_id"].removeprefix("provision-")
    wait_until(lambda: manager.store.get(host_id).status == "connected")
    conn = manager.connection(host_id)
    host = manager.store.get(host_id)
    assert host.hostname == "lab.test" and host.expires_at - host.connected_at == pytest.approx(12 * 3600, abs=5)
    assert manager.expire_hosts(now=time.time()) == 0  # not yet
    assert manager.expire_hosts(now=host.expires_at + 1) == 1
    assert manager.store.get(host_id).status == "expired" and manager.connection(host_id) is None
    wait_until(
        lambda: (
            conn.pid is not None and subprocess.run(["kill", "-0", str(conn.pid)], capture_output=True).returncode != 0
        )
    )
    assert manager.flavor_statuses()[0]["status"] == "disconnected"
    manager.close_all()


def test_after_a_restart_connected_hosts_are_disconnected_or_expired(tmp_path):
    now = time.time()
    hosts = [
        RemoteHost("remote-aaaa0001", "lab", "a.test", status="connected", connected_at=now - 60, expires_at=now + 600),
        RemoteHost("remote-aaaa0002", "lab", "b.test", status="connected", connected_at=now - 9e4, expires_at=now - 60),
        RemoteHost("remote-aaaa0003", "lab", "c.test", status="reconnecting"),
    ]
    path = tmp_path / "hosts.json"
    store = HostStore(path)
    for host in hosts:
        store.put(host)
    manager = RemoteHostManager(HostStore(path), lambda: [])
    assert [h.status for h in manager.store.all()] == ["disconnected", "expired", "disconnected"]
    assert json.loads(path.read_text())["hosts"][1]["status"] == "expired"  # kept so
    manager.close_all()

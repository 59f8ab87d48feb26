"""schmux workspace previews: real dev servers, real proxies, real worker, real tmux.

The dev server here is the test's own: plain HTTP on ``/`` and an echoing WebSocket on ``/ws``
(wsproto on the server side), so what goes through the proxy is checked byte for byte.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

from miso_runtime.agents.preview_detect import LiveSession, PreviewDetector
from miso_runtime.agents.previews import PreviewManager
from miso_runtime.agents.tmux_sessions import TmuxSessions
from miso_runtime.errors import MisoError
from tests.eeg import wait_until
from tests.gitrepo import bare_remote
from tests.sidecar import Sidecar
from tests.ws_client import JsonSocket

PAGE = b"<!doctype html><h1>the dev server of the test</h1>\n"
PREVIEW_KEYS = {"id", "workspace_id", "target_host", "target_port", "proxy_port", "url", "status"}


class DevServer:
    """A loopback dev server: ``GET /`` answers :data:`PAGE`, ``GET /ws`` is an echoing WebSocket."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.hosts_seen: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            host = re.search(rb"(?im)^host:\s*(\S+)", head)
            self.hosts_seen.append(host.group(1).decode() if host else "")
            if b"upgrade: websocket" in head.lower():
                self._echo(conn, head)
            else:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                    + f"Content-Length: {len(PAGE)}\r\n\r\n".encode()
                    + PAGE
                )

    @staticmethod
    def _echo(conn: socket.socket, head: bytes) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        ws.receive_data(head)
        while True:
            for event in ws.events():
                if isinstance(event, Request):
                    conn.sendall(ws.send(AcceptConnection()))
                elif isinstance(event, TextMessage):
                    conn.sendall(ws.send(TextMessage(event.data)))
                elif isinstance(event, CloseConnection):
                    conn.sendall(ws.send(event.response()))
                    return
            data = conn.recv(65536)
            if not data:
                return
            ws.receive_data(data)

    def stop(self) -> None:
        try:  # wakes the thread in accept() (closing alone leaves the socket listening on Linux)
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    return bare_remote(tmp_path_factory.mktemp("remote"), "web")


@pytest.fixture(scope="module")
def socket_name():
    name = f"miso-test-{uuid.uuid4().hex[:8]}"
    yield name
    TmuxSessions(name).kill_server()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("previews-data")


def start(data_dir: Path, socket_name: str) -> Sidecar:
    return Sidecar(data_dir, env={"MISO_TMUX_SOCKET": socket_name})


@pytest.fixture(scope="module")
def side(data_dir, socket_name):
    sidecar = start(data_dir, socket_name)
    python = shlex.quote(sys.executable)
    targets = [
        {"name": "idle", "type": "command", "command": "sh -c 'sleep 600'"},
        # A session that starts a dev server, which prints "Serving HTTP on ... (http://127.0.0.1:N/)".
        {"name": "devserver", "type": "command", "command": f"{python} -m http.server --bind 127.0.0.1 0"},
    ]
    assert sidecar.post("/api/config", json={"run_targets": targets}).status_code == 200
    yield sidecar
    sidecar.terminate()


@pytest.fixture()
def dev():
    server = DevServer()
    yield server
    server.stop()


def new_workspace(side, remote, target: str = "idle") -> str:
    branch = f"preview-{uuid.uuid4().hex[:6]}"
    answer = side.post("/api/spawn", json={"repo": str(remote), "branch": branch, "targets": {target: 1}})
    assert answer.status_code == 200 and "error" not in answer.json()[0], answer.text
    return answer.json()[0]["workspace_id"]


def previews_in_sessions(side, workspace_id: str) -> list[dict] | None:
    """The workspace's ``previews`` in ``GET /api/sessions`` (``None`` when it has none: omitted)."""
    workspace = next(w for w in side.get("/api/sessions").json() if w["id"] == workspace_id)
    return workspace.get("previews")


def create(side, workspace_id: str, port: int, host: str = "127.0.0.1") -> httpx.Response:
    return side.post(f"/api/workspaces/{workspace_id}/previews", json={"target_host": host, "target_port": port})


def assert_text_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == message + "\n"


def test_a_preview_proxies_http_and_websockets(side, remote, dev):
    workspace_id = new_workspace(side, remote)
    answer = create(side, workspace_id, dev.port)
    assert answer.status_code == 200, answer.text
    preview = answer.json()
    assert set(preview) == PREVIEW_KEYS and re.fullmatch(r"prev_[0-9a-f]{8}", preview["id"])
    assert preview["workspace_id"] == workspace_id and preview["status"] == "ready"
    assert (preview["target_host"], preview["target_port"]) == ("127.0.0.1", dev.port)
    assert preview["url"] == f"http://localhost:{preview['proxy_port']}" and preview["proxy_port"] != dev.port

    page = httpx.get(
        f"http://127.0.0.1:{preview['proxy_port']}/", headers={"Host": f"localhost:{preview['proxy_port']}"}
    )
    assert page.status_code == 200 and page.content == PAGE
    assert dev.hosts_seen[-1] == f"localhost:{preview['proxy_port']}"  # the browser's Host, as schmux's proxy

    echo = JsonSocket(preview["proxy_port"], "/ws")
    try:
        echo.send({"hello": "through the proxy"})
        assert echo.wait_messages(lambda got: got and got[0]) == {"hello": "through the proxy"}
    finally:
        echo.close()

    # The same target again is the same preview; listing and the dashboard state show it.
    again = create(side, workspace_id, dev.port, host="  127.0.0.1 ")
    assert again.status_code == 200 and again.json() == preview
    listed = side.get(f"/api/workspaces/{workspace_id}/previews")
    assert listed.status_code == 200 and listed.json() == [preview]
    assert previews_in_sessions(side, workspace_id) == [preview]


def test_bad_requests_are_plain_text_in_schmux_order(side, remote):
    workspace_id = new_workspace(side, remote)
    for host in ("10.0.0.1", "example.com", "0.0.0.0", "127.0.0.2"):
        assert_text_error(
            create(side, workspace_id, 8080, host=host),
            400,
            "target host must be loopback (127.0.0.1, ::1, or localhost)",
        )
    for port in (0, 65536, -1):
        assert_text_error(create(side, workspace_id, port), 400, "target port must be between 1 and 65535")
    assert_text_error(
        side.post(f"/api/workspaces/{workspace_id}/previews", json={}), 400, "target port must be between 1 and 65535"
    )
    for raw in (b"{not json", b"[]", b'"x"', b'{"target_port": "80"}', b'{"target_port": 80.5}', b'{"target_host": 1}'):
        response = side.post(
            f"/api/workspaces/{workspace_id}/previews",
            content=raw,
            headers={**side.auth, "Content-Type": "application/json"},
        )
        assert_text_error(response, 400, "invalid request body")
    # An unknown workspace is 404 before its body is read.
    assert_text_error(
        side.post("/api/workspaces/nope-001/previews", content=b"{not json", headers=side.auth),
        404,
        "workspace not found",
    )
    assert_text_error(create(side, "nope-001", 8080), 404, "workspace not found")
    assert_text_error(side.get("/api/workspaces/nope-001/previews"), 404, "workspace not found")
    assert_text_error(side.delete("/api/workspaces/nope-001/previews/prev_00000000"), 404, "workspace not found")
    assert_text_error(side.delete(f"/api/workspaces/{workspace_id}/previews"), 400, "preview ID is required")
    assert side.get(f"/api/workspaces/{workspace_id}/previews").json() == []
    assert previews_in_sessions(side, workspace_id) is None  # omitted when there are none


def test_limits_degraded_targets_and_idempotent_delete(side, remote):
    workspace_id = new_workspace(side, remote)
    ports = sorted({closed_port() for _ in range(6)})[:4]
    made = []
    for port in ports[:3]:
        answer = create(side, workspace_id, port)
        assert answer.status_code == 200, answer.text
        made.append(answer.json())
    down = made[0]
    assert down["status"] == "degraded"
    assert down["last_error"] == f"target unreachable: dial tcp 127.0.0.1:{ports[0]}: connect: connection refused"
    refused = httpx.get(f"http://127.0.0.1:{down['proxy_port']}/")
    assert refused.status_code == 502 and "target unreachable" in refused.text

    assert_text_error(create(side, workspace_id, ports[3]), 409, "workspace preview limit reached (3)")
    assert create(side, workspace_id, ports[0]).json()["id"] == down["id"]  # reuse needs no room
    listed = side.get(f"/api/workspaces/{workspace_id}/previews").json()
    assert [p["target_port"] for p in listed] == ports[:3]  # by target port
    assert all(p["status"] == "degraded" for p in listed)

    other = new_workspace(side, remote)
    assert_text_error(
        side.delete(f"/api/workspaces/{other}/previews/{down['id']}"), 500, "preview not found in workspace"
    )
    for _ in range(2):  # deleting is idempotent
        gone = side.delete(f"/api/workspaces/{workspace_id}/previews/{down['id']}")
        assert gone.status_code == 200 and gone.json() == {"status": "ok"}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{down['proxy_port']}/")
    assert create(side, workspace_id, ports[3]).status_code == 200  # room again
    assert len(previews_in_sessions(side, workspace_id)) == 3


def test_a_preview_whose_server_stops_is_removed(side, remote):
    server = DevServer()
    workspace_id = new_workspace(side, remote)
    preview = create(side, workspace_id, server.port).json()
    assert preview["status"] == "ready"
    server.stop()
    wait_until(lambda: previews_in_sessions(side, workspace_id) is None, timeout=30)
    assert side.get(f"/api/workspaces/{workspace_id}/previews").json() == []


def test_previews_go_with_their_workspace(side, remote, dev):
    workspace_id = new_workspace(side, remote)
    preview = create(side, workspace_id, dev.port).json()
    done = side.post(f"/api/workspaces/{workspace_id}/dispose-all")
    assert done.status_code == 200, done.text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{preview['proxy_port']}/")
    assert_text_error(side.get(f"/api/workspaces/{workspace_id}/previews"), 404, "workspace not found")


def test_a_dev_server_started_in_a_session_gets_a_preview_by_itself(side, remote, socket_name):
    workspace_id = new_workspace(side, remote, target="devserver")
    previews = wait_until(lambda: previews_in_sessions(side, workspace_id), timeout=40)
    session_id = next(w for w in side.get("/api/sessions").json() if w["id"] == workspace_id)["sessions"][0]["id"]
    screen = subprocess.run(
        ["tmux", "-L", socket_name, "capture-pane", "-p", "-t", f"={session_id}:"], capture_output=True, text=True
    ).stdout
    printed = int(re.search(r"http://127\.0\.0\.1:(\d+)/", screen).group(1))
    assert [(p["target_host"], p["target_port"], p["status"]) for p in previews] == [("127.0.0.1", printed, "ready")]
    listing = httpx.get(previews[0]["url"].replace("localhost", "127.0.0.1") + "/")
    assert listing.status_code == 200 and "Directory listing" in listing.text


def test_detection_keeps_announced_ports_that_the_session_listens_on():
    """The detector alone, on this process's own sockets: a URL counts only when its port listens."""
    listener = socket.create_server(("127.0.0.1", 0))
    port, quiet = listener.getsockname()[1], closed_port()
    text = f"  Local:   \x1b[1mhttp://localhost:\x1b[22m{port}/\x1b[0m\n  Docs: http://localhost:{quiet}/ https://example.com\n"
    opened: list[tuple[str, str, int]] = []
    previewed: set[int] = set()

    def create(workspace_id: str, host: str, target_port: int) -> bool:
        opened.append((workspace_id, host, target_port))
        previewed.add(target_port)
        return True

    def detector(cooldown_s: float) -> PreviewDetector:
        return PreviewDetector(
            capture=lambda _name: text,
            has_preview=lambda _ws, p: p in previewed,
            proxy_ports=set,
            create=create,
            cooldown_s=cooldown_s,
        )

    session = LiveSession("web-001-abcd", "web-001", os.getpid(), datetime.now(timezone.utc))
    first = detector(cooldown_s=45.0)
    assert first.scan([session]) and opened == [("web-001", "127.0.0.1", port)]
    previewed.clear()  # the preview went away (its server restarted): the cooldown holds it back
    assert not first.scan([session]) and len(opened) == 1

    again = detector(cooldown_s=0.0)
    again.dismiss("web-001", port)  # deleted by hand: stays closed while that server listens
    assert not again.scan([session])
    listener.close()
    assert not again.scan([session])  # nothing listens: the dismissal is over
    listener = socket.create_server(("127.0.0.1", port))
    try:
        assert again.scan([session]) and opened[-1] == ("web-001", "127.0.0.1", port)
    finally:
        listener.close()


def test_previews_survive_a_restart(side, remote, dev, data_dir, socket_name):
    workspace_id = new_workspace(side, remote)
    preview = create(side, workspace_id, dev.port).json()
    side.terminate()  # the module's last test: the fixture's teardown finds it stopped
    assert (data_dir / "agents-previews.json").is_file()
    again = start(data_dir, socket_name)
    try:
        restored = wait_until(lambda: previews_in_sessions(again, workspace_id), timeout=20)
        assert [(p["id"], p["target_port"], p["status"]) for p in restored] == [(preview["id"], dev.port, "ready")]
        page = httpx.get(f"http://127.0.0.1:{restored[0]['proxy_port']}/")
        assert page.status_code == 200 and page.content == PAGE
    finally:
        again.terminate()


def test_limits_come_from_the_network_config(tmp_path):
    """``network.preview_max_global`` and ``preview_max_per_workspace`` are read where the config has them."""
    known = {"web-001", "web-002"}

    def get(workspace_id: str):
        if workspace_id not in known:
            raise MisoError(404, "not_found", "no such workspace")
        return SimpleNamespace(id=workspace_id)

    backend = SimpleNamespace(
        config=SimpleNamespace(network=SimpleNamespace(preview_max_global=2, preview_max_per_workspace=5)),
        workspaces=SimpleNamespace(get=get, list=lambda: [SimpleNamespace(id=w) for w in sorted(known)]),
        changed=lambda workspace_id=None: None,
    )
    manager = PreviewManager(backend, tmp_path / "previews.json")
    try:
        ports = sorted({closed_port() for _ in range(5)})[:3]
        manager.create_route("web-001", "", ports[0])
        manager.create_route("web-001", "localhost", ports[1])
        with pytest.raises(MisoError) as refused:
            manager.create_route("web-002", "::1", ports[2])
        assert (refused.value.status, refused.value.message) == (409, "global preview limit reached (2)")
        assert [p["target_host"] for p in manager.for_workspace("web-001")] == ["127.0.0.1", "localhost"]
    finally:
        manager.close()

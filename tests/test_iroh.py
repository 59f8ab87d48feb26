"""Remote access through iroh (skill-daemon 4.12, ``/v1/iroh/*``) with a real sidecar and a real peer.

The sidecar runs its iroh endpoint with no relay, bound to loopback; the test process is the
phone: a second iroh endpoint that connects by the direct address ``/v1/iroh/info`` reports,
registers with a TOTP code computed by pyotp from the invite's secret, and then sends requests
through the tunnel (one JSON request per bi-directional stream, or plain HTTP/1.1 on the daemon's
own ``skill/http-ws/1``) to see the scope rules apply.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from typing import Any, Iterator

import iroh
import pyotp
import pytest

from miso_runtime import constants
from tests.sidecar import Sidecar

IROH_ENV = {"MISO_IROH_ENABLED": "1", "MISO_IROH_RELAY": "disabled", "MISO_IROH_BIND_ADDR": "127.0.0.1:0"}
#: Seconds the sidecar's endpoint gets to come up (it starts with the workers, after the ready line).
ONLINE_WITHIN_S = 30.0


class Phone:
    """A remote peer: its own iroh endpoint on its own asyncio loop, driven synchronously."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.endpoint = self._run(self._bind())
        self.endpoint_id = str(self.endpoint.id())
        self.connection: Any = None

    def _run(self, coroutine: Any, timeout: float = 60.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    async def _bind(self) -> Any:
        return await iroh.Endpoint.bind(
            iroh.EndpointOptions(
                preset=iroh.preset_minimal(), relay_mode=iroh.RelayMode.disabled(), bind_addr="127.0.0.1:0"
            )
        )

    def connect(self, endpoint_id: str, direct_addrs: list[str], alpn: bytes = constants.IROH_ALPN) -> None:
        async def connect() -> Any:
            addr = iroh.EndpointAddr(iroh.EndpointId.from_string(endpoint_id), None, direct_addrs)
            return await self.endpoint.connect(addr, alpn)

        self.connection = self._run(connect())

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> dict:
        """One request frame on a new bi-stream; the response frame."""
        frame: dict[str, Any] = {"method": method, "path": path, "headers": headers or {}}
        if body is not None:
            frame["body"] = body

        async def exchange() -> dict:
            stream = await self.connection.open_bi()
            send = stream.send()
            await send.write_all(json.dumps(frame).encode())
            await send.finish()
            return json.loads(await stream.recv().read_to_end(constants.IROH_MAX_RESPONSE_FRAME_BYTES))

        return self._run(exchange())

    def raw(self, data: bytes) -> dict:
        async def exchange() -> dict:
            stream = await self.connection.open_bi()
            send = stream.send()
            await send.write_all(data)
            await send.finish()
            return json.loads(await stream.recv().read_to_end(1 << 20))

        return self._run(exchange())

    def close(self) -> None:
        try:
            self._run(self.endpoint.close(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


@pytest.fixture(scope="module")
def side(tmp_path_factory) -> Iterator[Sidecar]:
    sidecar = Sidecar(tmp_path_factory.mktemp("iroh") / "data", env=IROH_ENV)
    yield sidecar
    sidecar.terminate()


def wait_online(side: Sidecar) -> dict:
    deadline = time.monotonic() + ONLINE_WITHIN_S
    while True:
        info = side.get("/v1/iroh/info").json()
        if info["online"] or time.monotonic() > deadline:
            return info
        time.sleep(0.1)


@pytest.fixture(scope="module")
def info(side) -> dict:
    info = wait_online(side)
    assert info["online"], info
    return info


def fresh_code(secret: str) -> str:
    """The current code of ``secret``, as an authenticator app shows it."""
    return pyotp.TOTP(secret).now()


@pytest.fixture
def phone() -> Iterator[Phone]:
    device = Phone()
    yield device
    device.close()


def invite(side: Sidecar, name: str) -> dict:
    answer = side.post("/v1/iroh/phone-invite", json={"name": name}).json()
    assert answer["ok"] is True, answer
    return answer


def test_info_reports_the_endpoint(side, info):
    assert set(info) == {
        "online",
        "endpoint_id",
        "relay_url",
        "direct_addrs",
        "local_port",
        "started_at",
        "last_error",
        "auth",
        "ok",
    }
    assert info["ok"] is True and info["relay_url"] == "" and info["last_error"] is None
    assert len(info["endpoint_id"]) == 64
    assert info["local_port"] == side.port
    assert any(addr.startswith("127.0.0.1:") for addr in info["direct_addrs"])
    assert set(info["auth"]) == {"totp_total", "clients_total", "clients_active"}
    key = side.data_dir / constants.IROH_SECRET_KEY_FILE_NAME
    assert key.stat().st_size == 32 and key.stat().st_mode & 0o777 == 0o600


def test_totp_credentials_and_their_qr_codes(side):
    created = side.post("/v1/iroh/totp", json={"name": "tablet"}).json()
    assert created["ok"] is True and created["totp"]["name"] == "tablet"
    assert created["otpauth_url"].startswith("otpauth://totp/") and "secret=" in created["otpauth_url"]
    png = base64.b64decode(created["qr_png_base64"].removeprefix("data:image/png;base64,"))
    assert png.startswith(b"\x89PNG")
    listed = side.get("/v1/iroh/totp").json()["totp"]
    assert listed[0]["id"] == created["totp"]["id"] and "secret_b32" not in listed[0]
    stored = side.data_dir / constants.IROH_AUTH_FILE_NAME
    assert stored.stat().st_mode & 0o777 == 0o600
    assert any(entry["id"] == created["totp"]["id"] for entry in json.loads(stored.read_text())["totp"])
    again = side.get(f"/v1/iroh/totp/{created['totp']['id']}/qr").json()
    assert again["otpauth_url"] == created["otpauth_url"]
    assert side.post("/v1/iroh/totp", json={}).json() == {
        "ok": False,
        "error": 'missing required field: "name" (string)',
    }
    revoked = side.post(f"/v1/iroh/totp/{created['totp']['id']}/revoke").json()
    assert revoked == {"revoked": True, "id": created["totp"]["id"], "ok": True}
    assert side.post("/v1/iroh/phone-invite", json={"totp_id": created["totp"]["id"]}).json()["ok"] is False
    assert side.get("/v1/iroh/totp/nope/qr").json() == {"ok": False, "error": "unknown totp id: nope"}


def test_scope_groups(side):
    groups = side.get("/v1/iroh/scope-groups").json()
    ids = [group["id"] for group in groups["groups"]]
    assert "iroh_admin" in ids and groups["builtin_scopes"]["full"] == "all groups"
    assert set(groups["builtin_scopes"]["read"]) <= set(ids)


def test_a_read_client_reads_but_does_not_change_settings(side, info, phone):
    answer = invite(side, "phone-read")
    payload = answer["payload"]
    assert payload["endpoint_id"] == info["endpoint_id"] and payload["name"] == "phone-read"
    assert answer["otpauth_url"].startswith("otpauth://totp/")
    phone.connect(payload["endpoint_id"], payload["direct_addrs"])

    # Not registered yet: only registration is open, and the peer's own token counts for nothing.
    refused = phone.request("GET", "/v1/iroh/info", headers={"Authorization": f"Bearer {side.token}"})
    assert refused["status"] == 401 and refused["body"]["code"] == "unauthorized"

    other = phone.request(
        "POST",
        "/v1/iroh/clients/register",
        {"endpoint_id": "ab" * 32, "otp": fresh_code(payload["secret_base32"]), "totp_id": payload["totp_id"]},
    )
    assert other["status"] == 200 and other["body"]["ok"] is False  # a peer registers only itself

    registered = phone.request(
        "POST",
        "/v1/iroh/clients/register",
        {"endpoint_id": phone.endpoint_id, "otp": fresh_code(payload["secret_base32"]), "name": "my phone"},
    )
    assert registered["status"] == 200, registered
    client = registered["body"]["client"]
    assert registered["body"]["registered"] is True and registered["body"]["ok"] is True
    assert client["scope"] == "read" and client["endpoint_id"] == phone.endpoint_id and client["name"] == "my phone"

    status = phone.request("GET", "/v1/iroh/info")
    assert status["status"] == 200 and status["body"]["online"] is True
    assert phone.request("GET", "/v1/settings/dnd/config")["status"] == 403  # an admin read
    change = phone.request("POST", "/v1/settings/dnd/config", {"enabled": True})
    assert change["status"] == 403 and change["body"]["code"] == "forbidden"
    assert side.get("/v1/settings/dnd/config").json()["enabled"] is False

    clients = side.get("/v1/iroh/clients").json()["clients"]
    mine = next(row for row in clients if row["id"] == client["id"])
    assert mine["last_connected_at"] is not None and mine["last_remote_addr"].startswith("127.0.0.1:")

    # Raised to full by the admin: the same peer may now change settings.
    scoped = side.post(f"/v1/iroh/clients/{client['id']}/scope", json={"scope": "full"}).json()
    assert scoped["ok"] is True and scoped["dangerous_groups"]
    change = phone.request("POST", "/v1/settings/dnd/config", {"enabled": False, "focus_threshold": 70})
    assert change["status"] == 200, change
    assert side.get("/v1/settings/dnd/config").json()["focus_threshold"] == 70

    # Revoked: its connection is closed, and on a new one it is refused, registration included.
    assert side.post(f"/v1/iroh/clients/{client['id']}/revoke").json() == {
        "revoked": True,
        "id": client["id"],
        "ok": True,
    }
    phone.connect(payload["endpoint_id"], payload["direct_addrs"])
    refused = phone.request("GET", "/v1/iroh/info")
    assert refused["status"] == 401 and "revoked" in refused["body"]["message"]
    retry = phone.request(
        "POST", "/v1/iroh/clients/register", {"endpoint_id": phone.endpoint_id, "otp": "000000", "scope": "full"}
    )
    assert retry["status"] == 401
    listed = {row["id"]: row for row in side.get("/v1/iroh/clients").json()["clients"]}
    assert listed[client["id"]]["revoked_at"] is not None


def test_revoking_a_credential_revokes_its_clients(side, info, phone):
    payload = invite(side, "phone-cascade")["payload"]
    phone.connect(payload["endpoint_id"], payload["direct_addrs"])
    body = {"endpoint_id": phone.endpoint_id, "otp": fresh_code(payload["secret_base32"])}
    assert phone.request("POST", "/v1/iroh/clients/register", body)["body"]["registered"] is True
    assert phone.request("GET", "/v1/iroh/clients")["status"] == 200
    assert side.post(f"/v1/iroh/totp/{payload['totp_id']}/revoke").json()["ok"] is True
    phone.connect(payload["endpoint_id"], payload["direct_addrs"])
    assert phone.request("GET", "/v1/iroh/clients")["status"] == 401


def test_wrong_and_reused_codes_are_refused(side, info, phone):
    payload = invite(side, "phone-codes")["payload"]
    phone.connect(payload["endpoint_id"], payload["direct_addrs"])
    code = fresh_code(payload["secret_base32"])
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    body = {"endpoint_id": phone.endpoint_id, "totp_id": payload["totp_id"]}
    refused = phone.request("POST", "/v1/iroh/clients/register", {**body, "otp": wrong})
    assert refused["body"] == {"ok": False, "error": "invalid otp"}
    assert phone.request("GET", "/v1/iroh/info")["status"] == 401

    # A code is used once: registering a second device with the same code fails.
    accepted = side.post("/v1/iroh/clients/register", json={**body, "otp": code}).json()
    assert accepted["registered"] is True, accepted
    other = {"endpoint_id": "cd" * 32, "totp_id": payload["totp_id"], "otp": code}
    reused = side.post("/v1/iroh/clients/register", json=other).json()
    assert reused["ok"] is False and "already used" in reused["error"]
    assert phone.request("GET", "/v1/iroh/info")["status"] == 200


def test_bad_frames_and_forged_bridge_headers(side, info, phone):
    phone.connect(info["endpoint_id"], info["direct_addrs"])
    assert phone.raw(b"{not json")["status"] == 400
    assert phone.request("GET", "//example.com/x")["status"] == 400
    # A local caller cannot pose as a peer without the bridge's secret.
    forged = side.http.get(
        "/v1/iroh/info",
        headers={constants.IROH_BRIDGE_SECRET_HEADER: "guess", constants.IROH_BRIDGE_PEER_HEADER: phone.endpoint_id},
    )
    assert forged.status_code == 401


def test_remote_access_off_by_default(tmp_path):
    sidecar = Sidecar(tmp_path / "data")
    try:
        info = sidecar.get("/v1/iroh/info").json()
        assert info["online"] is False and "MISO_IROH_ENABLED" in info["last_error"]
        invite = sidecar.post("/v1/iroh/phone-invite", json={"name": "x"}).json()
        assert invite == {"ok": False, "error": "iroh tunnel is not online yet"}
        assert sidecar.post("/v1/iroh/totp", json={"name": "still works"}).json()["ok"] is True
        assert sidecar.http.get("/v1/iroh/info").status_code == 401
    finally:
        sidecar.terminate()


def test_client_scopes_map_onto_token_scopes():
    from miso_runtime.auth import TokenScope
    from miso_runtime.iroh.scope import token_scope

    assert token_scope({"scope": "read"}) is TokenScope.READ_ONLY
    assert token_scope({"scope": "full"}) is TokenScope.ADMIN
    assert token_scope({"scope": "custom", "groups": []}) is TokenScope.STREAM
    assert token_scope({"scope": "custom", "groups": ["status", "search"]}) is TokenScope.READ_ONLY
    assert token_scope({"scope": "custom", "groups": ["status", "labels"]}) is TokenScope.DATA
    assert token_scope({"scope": "custom", "groups": ["hooks"]}) is TokenScope.ADMIN
    assert token_scope({"scope": "custom", "groups": [], "allow": ["hooks_set"]}) is TokenScope.ADMIN


def http_exchange(phone: Phone, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on a new stream of a ``skill/http-ws/1`` connection: status, headers, body."""

    async def exchange() -> bytes:
        stream = await phone.connection.open_bi()
        send = stream.send()
        await send.write_all(request)
        await send.finish()
        return await stream.recv().read_to_end(1 << 20)

    raw = phone._run(exchange())
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split(" ")[1]), headers, body


def http_request(method: str, path: str, body: dict | None = None, extra: str = "") -> bytes:
    content = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: phone.invalid\r\n{extra}"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(content)}\r\n"
    return (head + "\r\n").encode() + content


def test_the_daemons_own_http_protocol_serves_requests_and_websockets_by_the_same_rules(side, info, phone):
    """ALPN ``skill/http-ws/1``, what the daemon's phone app speaks: HTTP/1.1 on each stream."""
    answer = invite(side, "phone-http")
    payload = answer["payload"]
    phone.connect(payload["endpoint_id"], payload["direct_addrs"], alpn=constants.IROH_HTTP_ALPN)

    status, _headers, body = http_exchange(
        phone, http_request("GET", "/v1/iroh/info", extra=f"Authorization: Bearer {side.token}\r\n")
    )
    assert status == 401 and json.loads(body)["code"] == "unauthorized"  # its own token counts for nothing

    register = {"endpoint_id": phone.endpoint_id, "otp": fresh_code(payload["secret_base32"]), "name": "http phone"}
    status, _headers, body = http_exchange(phone, http_request("POST", "/v1/iroh/clients/register", register))
    assert status == 200 and json.loads(body)["registered"] is True, body

    status, headers, body = http_exchange(phone, http_request("GET", "/v1/iroh/info"))
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["online"] is True
    status, _headers, _body = http_exchange(phone, http_request("GET", "/v1/settings/dnd/config"))
    assert status == 403  # a read client, as through the JSON bridge

    # The live event socket, upgraded on a stream of its own.
    key = base64.b64encode(b"0123456789abcdef").decode()
    upgrade = (
        "GET /v1/events HTTP/1.1\r\nHost: phone.invalid\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()

    async def open_socket() -> bytes:
        stream = await phone.connection.open_bi()
        send, recv = stream.send(), stream.recv()
        await send.write_all(upgrade)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await recv.read(4096)
            if not chunk:
                break
            received += chunk
        await send.finish()
        return received

    switched = phone._run(open_socket())
    assert switched.startswith(b"HTTP/1.1 101"), switched[:200]

    status, _headers, body = http_exchange(phone, b"NOT HTTP\r\n\r\n")
    assert status == 400 and b"HTTP/1.x" in body

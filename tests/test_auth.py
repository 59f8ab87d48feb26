"""Auth and safety on every route: declarations, 401/403, tokens, Host and Origin checks."""

from __future__ import annotations

import httpx
import pytest

from miso_runtime.auth import TokenScope, allows
from miso_runtime.auth.scopes import weaker_scopes
from miso_runtime.auth.tokens import TokenService
from miso_runtime.store import TokenRepository, open_database
from tests.routes import app_routes
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def routes(tmp_path_factory):
    return app_routes(tmp_path_factory.mktemp("routes"))


@pytest.fixture(scope="module")
def scoped_tokens(sidecar) -> dict[TokenScope, str]:
    tokens = {TokenScope.ADMIN: sidecar.token}
    for scope in (TokenScope.READ_ONLY, TokenScope.DATA, TokenScope.STREAM):
        response = sidecar.post("/v1/auth/tokens", json={"name": f"test-{scope}", "acl": scope, "expiry": "day"})
        assert response.status_code == 201, response.text
        tokens[scope] = response.json()["token"]
    return tokens


WEBSOCKET_HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def call(sidecar, route, headers: dict[str, str]) -> httpx.Response:
    """Call a route the way its clients do: WebSocket routes with a handshake, others with a JSON body."""
    if route.websocket:
        return sidecar.http.request(route.method, route.path, headers={**WEBSOCKET_HANDSHAKE, **headers})
    return sidecar.http.request(route.method, route.path, headers=headers, json={})


def error_code(route, response: httpx.Response) -> str | None:
    """The error's code; None for schmux routes, whose envelope has only a message."""
    code, message = route.error_of(response)
    assert message
    return code


def test_every_route_declares_access_or_public(routes):
    undeclared = [f"{r.method} {r.rule}" for r in routes if not r.public and r.access is None]
    assert routes and undeclared == []
    public = {r.rule for r in routes if r.public}
    # The probes, and schmux's GitHub login: how a person without a token gets one (a session cookie).
    login = {"/auth/login", "/auth/callback", "/auth/logout", "/auth/me"}
    assert public == {"/health", "/healthz", "/readyz", "/api/healthz", *login}


def test_protected_routes_answer_401_without_a_valid_token(sidecar, routes):
    for route in (r for r in routes if not r.public):
        for headers in ({}, {"x-miso-auth": "wrong"}, {"Authorization": "Bearer wrong"}):
            response = call(sidecar, route, headers)
            assert response.status_code == 401, f"{route.method} {route.rule}: {response.status_code}"
            assert error_code(route, response) in ("unauthorized", None)


def test_protected_routes_answer_403_to_weaker_scopes(sidecar, routes, scoped_tokens):
    checked = 0
    for route in (r for r in routes if not r.public):
        for scope in weaker_scopes(route.access):
            response = call(sidecar, route, {"x-miso-auth": scoped_tokens[scope]})
            assert response.status_code == 403, f"{scope} on {route.method} {route.rule}: {response.status_code}"
            assert error_code(route, response) in ("forbidden", None)
            checked += 1
    assert checked > 0


#: Routes whose contract answers a 5xx for a state of this runtime (see tests/test_fuzz_openapi.py).
CONTRACT_SERVER_ANSWERS = {
    ("POST", "/api/update"),
    ("POST", "/api/suggest-branch"),
}


def test_allowed_scopes_get_past_auth(sidecar, routes, scoped_tokens):
    for route in (r for r in routes if not r.public and not r.websocket):
        for scope in TokenScope:
            if not allows(scope, route.access):
                continue
            # Streamed, and closed after the status line: an event stream (GET /v1/events) never ends.
            with sidecar.http.stream(
                route.method, route.path, headers={"x-miso-auth": scoped_tokens[scope]}, json={}
            ) as response:
                assert response.status_code not in (401, 403), f"{scope} on {route.method} {route.rule}"
                if (route.method, route.rule) in CONTRACT_SERVER_ANSWERS:
                    continue  # schmux's own 5xx for a state of this runtime (no remote support, no self-update)
                assert response.status_code < 500, f"{scope} on {route.method} {route.rule}: {response.status_code}"


def test_token_from_header_bearer_and_query(sidecar):
    assert sidecar.http.get("/models/catalog", headers={"x-miso-auth": sidecar.token}).status_code == 200
    assert sidecar.http.get("/models/catalog", headers={"Authorization": f"Bearer {sidecar.token}"}).status_code == 200
    assert sidecar.http.get("/models/catalog", params={"token": sidecar.token}).status_code == 200


def test_public_routes(sidecar):
    health = sidecar.http.get("/health")
    assert health.status_code == 200
    assert {"status", "version", "model", "threaded"} <= set(health.json())
    assert [worker["name"] for worker in health.json()["workers"]] == [
        "llm",
        "capture",
        "agents",
        "embed",
        "analysis",
        "staging",
        "screenshots",
    ]
    assert sidecar.http.get("/healthz").json() == {"ok": True}
    assert sidecar.http.get("/readyz").json() == {"ok": True}


def test_token_lifecycle(sidecar):
    created = sidecar.post("/v1/auth/tokens", json={"name": "ci", "acl": "read_only", "expiry": "hour"})
    assert created.status_code == 201
    info = created.json()
    assert info["acl"] == "read_only" and info["name"] == "ci" and not info["revoked"]
    assert abs((info["expires_at"] - info["created_at"]) - 3600 * 1000) < 1000
    secret = info["token"]

    listed = sidecar.get("/v1/auth/tokens").json()["tokens"]
    mine = [t for t in listed if t["id"] == info["id"]]
    assert len(mine) == 1 and "token" not in mine[0]
    assert all(secret not in str(t) for t in listed)

    assert sidecar.http.get("/models/catalog", headers={"x-miso-auth": secret}).status_code == 200
    assert sidecar.http.post("/chat/stream", headers={"x-miso-auth": secret}, json={"message": "hi"}).status_code == 403

    assert sidecar.post("/v1/auth/tokens/revoke", json={"id": info["id"]}).json() == {"ok": True}
    assert sidecar.http.get("/models/catalog", headers={"x-miso-auth": secret}).status_code == 401
    revoked = [t for t in sidecar.get("/v1/auth/tokens").json()["tokens"] if t["id"] == info["id"]]
    assert revoked[0]["revoked"] is True

    assert sidecar.post("/v1/auth/tokens/delete", json={"id": info["id"]}).json() == {"ok": True}
    assert all(t["id"] != info["id"] for t in sidecar.get("/v1/auth/tokens").json()["tokens"])
    missing = sidecar.post("/v1/auth/tokens/delete", json={"id": info["id"]})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "body", [{"name": "x", "acl": "root"}, {"name": "x", "acl": "data", "expiry": "year"}, {"acl": "data"}]
)
def test_token_creation_rejects_bad_fields(sidecar, body):
    response = sidecar.post("/v1/auth/tokens", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_issued_tokens_are_stored_as_hashes_only(sidecar):
    secret = sidecar.post("/v1/auth/tokens", json={"name": "h", "acl": "data"}).json()["token"]
    assert secret.encode() not in (sidecar.data_dir / "miso.db").read_bytes()
    wal = sidecar.data_dir / "miso.db-wal"
    assert not wal.exists() or secret.encode() not in wal.read_bytes()


def test_tokens_expire(tmp_path):
    now = [1_000_000]
    service = TokenService("admin-secret", TokenRepository(open_database(tmp_path / "t.db")), clock=lambda: now[0])
    issued = service.issue("short", TokenScope.DATA, "hour")
    forever = service.issue("long", TokenScope.STREAM, "never")
    assert service.authenticate(issued.token).scope == TokenScope.DATA
    now[0] += 3600 * 1000 - 1
    assert service.authenticate(issued.token) is not None
    now[0] += 1
    assert service.authenticate(issued.token) is None
    now[0] += 10 * 365 * 86_400_000
    assert service.authenticate(forever.token).scope == TokenScope.STREAM
    assert service.authenticate("admin-secret").scope == TokenScope.ADMIN
    assert service.authenticate("admin-secret ") is None


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io", "192.168.1.10"])
def test_non_loopback_host_header_is_refused(sidecar, host):
    for path in ("/health", "/models/catalog", "/v1/auth/tokens"):
        response = sidecar.http.get(path, headers={"Host": f"{host}:{sidecar.port}", **sidecar.auth})
        assert response.status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_loopback_host_headers_are_served(sidecar, host):
    assert sidecar.http.get("/health", headers={"Host": f"{host}:{sidecar.port}"}).status_code == 200


def test_cross_origin_requests_need_an_allowed_origin(tmp_path):
    side = Sidecar(tmp_path, env={"MISO_CORS_ORIGINS": '["http://app.example"]'})
    try:
        refused = side.get("/models/catalog", headers={**side.auth, "Origin": "http://evil.example"})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "origin_not_allowed"
        allowed = side.get("/models/catalog", headers={**side.auth, "Origin": "http://app.example"})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "http://app.example"
        preflight = side.http.options(
            "/chat/stream",
            headers={
                "Origin": "http://app.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "x-miso-auth",
            },
        )
        assert preflight.status_code == 204
        assert "x-miso-auth" in preflight.headers["access-control-allow-headers"]
        assert preflight.headers.get("access-control-allow-origin") == "http://app.example"
        no_origin = side.get("/models/catalog")
        assert "access-control-allow-origin" not in no_origin.headers
        assert side.http.options("/chat/stream", headers={"Origin": "http://evil.example"}).status_code == 403
    finally:
        side.terminate()


def test_generated_admin_token_file(tmp_path):
    side = Sidecar(tmp_path, token="")
    try:
        token_file = tmp_path / "auth.token"
        assert token_file.stat().st_mode & 0o777 == 0o600
        token = token_file.read_text().strip()
        assert side.http.get("/v1/auth/tokens", headers={"x-miso-auth": token}).status_code == 200
        assert side.http.get("/v1/auth/tokens").status_code == 401
    finally:
        side.terminate()
    again = Sidecar(tmp_path, token="")
    try:  # the same token survives a restart
        assert again.http.get("/v1/auth/tokens", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        again.terminate()

"""GitHub login for the schmux dashboard beyond loopback (``access_control.enabled``).

A real sidecar serves a small dashboard build with TLS (a self-signed certificate made for the
test) and logs in against a loopback stand-in of GitHub's OAuth and user endpoints
(``tests/standins/github_oauth.py``), laid out as a GitHub Enterprise server. Cookies are
carried by hand so that each attribute the runtime sets is visible to the test.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests.gitrepo import bare_remote
from tests.sidecar import Sidecar
from tests.standins.github_oauth import GitHubOAuthStandIn

SESSION_KEY = b"0123456789abcdef0123456789abcdef"
TTL_MINUTES = 90


def b64raw(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


SESSION_SECRET = b64raw(SESSION_KEY)


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for ``localhost`` and 127.0.0.1, and its key (openssl CLI:
    the ``cryptography`` package is not installed)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def github() -> Iterator[GitHubOAuthStandIn]:
    with GitHubOAuthStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("schmux-build")
    (folder / "assets").mkdir()
    (folder / "index.html").write_text("<!doctype html><title>schmux</title><script src=/assets/app.js></script>\n")
    (folder / "assets" / "app.js").write_text("console.log('dashboard');\n")
    return folder


@pytest.fixture(scope="module")
def socket_name() -> Iterator[str]:
    """A private tmux socket for the agents worker (no session is started on it)."""
    name = f"miso-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, timeout=10)
    Path(tempfile.gettempdir(), f"tmux-{os.getuid()}", name).unlink(missing_ok=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_login_config(
    data_dir: Path,
    *,
    access_control: dict | None = None,
    network: dict | None = None,
    secrets: dict | None = None,
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = {"access_control": {"enabled": True, **(access_control or {})}, "network": network or {}}
    (data_dir / "agents-config.json").write_text(json.dumps(config))
    if secrets is not None:
        (data_dir / "agents-secrets.json").write_text(json.dumps(secrets))
        (data_dir / "agents-secrets.json").chmod(0o600)


def start_dashboard(
    data_dir: Path, build: Path, github: GitHubOAuthStandIn, socket_name: str, certificate, *, bind: str = "127.0.0.1"
) -> tuple[Sidecar, int]:
    port = free_port()
    cert, key = certificate
    write_login_config(
        data_dir,
        access_control={"session_ttl_minutes": TTL_MINUTES},
        network={
            "bind_address": bind,
            "public_base_url": f"https://localhost:{port}",
            "tls": {"cert_path": str(cert), "key_path": str(key)},
        },
        secrets={
            "auth": {
                "github": {"client_id": github.client_id, "client_secret": github.client_secret},
                "session_secret": SESSION_SECRET,
            }
        },
    )
    env = {
        "MISO_PAGES_SCHMUX": str(build),
        "MISO_PAGES_SCHMUX_PORT": str(port),
        "MISO_GITHUB_WEB_URL": github.web_url,
        "MISO_GITHUB_API_URL": github.api_url,
        "MISO_TMUX_SOCKET": socket_name,
    }
    return Sidecar(data_dir, env=env), port


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, build, github, socket_name, certificate) -> Iterator[tuple[Sidecar, int]]:
    side, port = start_dashboard(tmp_path_factory.mktemp("login-data"), build, github, socket_name, certificate)
    github.callback_url = f"https://localhost:{port}/auth/callback"
    yield side, port
    side.terminate()


@pytest.fixture()
def client(dashboard, certificate) -> Iterator[httpx.Client]:
    """An https client that trusts the test's certificate; it keeps no cookies of its own."""
    _side, port = dashboard
    context = ssl.create_default_context(cafile=str(certificate[0]))
    no_cookies = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
    with httpx.Client(base_url=f"https://localhost:{port}", verify=context, cookies=no_cookies, timeout=30.0) as made:
        yield made


# --- helpers ------------------------------------------------------------------------------------


def set_cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """Each cookie a response sets: ``{"value": ..., "max-age": ..., "httponly": "", ...}`` (lower-case keys)."""
    found: dict[str, dict[str, str]] = {}
    for header in response.headers.get_list("set-cookie"):
        name_value, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = name_value.partition("=")
        entry = {"value": value}
        for attribute in attributes:
            key, _, attribute_value = attribute.partition("=")
            entry[key.lower()] = attribute_value
        found[name] = entry
    return found


def cookie_header(**cookies: str) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


def sign(payload: dict, key: bytes = SESSION_KEY) -> str:
    """A ``schmux_auth`` value made as schmux makes it: base64raw(JSON) "." base64raw(HMAC-SHA256)."""
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return f"{b64raw(raw)}.{b64raw(hmac.new(key, raw, hashlib.sha256).digest())}"


def session_payload(expires_at: int | None = None) -> dict:
    return {
        "github_id": 42,
        "login": "hubot",
        "name": "Hubot",
        "avatar_url": "https://example.invalid/a.png",
        "expires_at": expires_at if expires_at is not None else int(time.time()) + 600,
    }


def log_in(client: httpx.Client, github: GitHubOAuthStandIn) -> httpx.Response:
    """The whole browser round trip; returns the callback's answer."""
    start = client.get("/auth/login")
    state = set_cookies(start)["schmux_oauth_state"]["value"]
    approved = httpx.get(start.headers["location"])  # the stand-in's user approves at once
    callback = urlsplit(approved.headers["location"])
    return client.get(f"{callback.path}?{callback.query}", headers=cookie_header(schmux_oauth_state=state))


def logged_in_cookies(client: httpx.Client, github: GitHubOAuthStandIn) -> dict[str, str]:
    cookies = set_cookies(log_in(client, github))
    return {name: cookies[name]["value"] for name in ("schmux_auth", "schmux_csrf")}


def upgrade_status(port: int, path: str, headers: dict[str, str], cafile: Path) -> tuple[int, str]:
    """Status and first line of body of a WebSocket upgrade over TLS (what a browser's ``wss://`` sends)."""
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            lines = [
                f"GET {path} HTTP/1.1",
                f"Host: localhost:{port}",
                "Connection: Upgrade",
                "Upgrade: websocket",
                "Sec-WebSocket-Version: 13",
                f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}",
                *(f"{name}: {value}" for name, value in headers.items()),
            ]
            tls.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            answer = b""
            while b"\r\n\r\n" not in answer:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            while status != 101 and len(body) < length:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                body += chunk
            return status, body.decode(errors="replace").split("\n")[0]


# --- the login round trip -------------------------------------------------------------------------


def test_the_dashboard_is_served_with_tls_from_the_configured_files(dashboard, certificate):
    side, port = dashboard
    assert side.ready["pages"]["schmux"] == f"https://127.0.0.1:{port}/"
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            served = tls.getpeercert(binary_form=True)
    expected = ssl.PEM_cert_to_DER_cert(certificate[0].read_text())
    assert served == expected
    with pytest.raises(httpx.HTTPError):  # plain http on that port gets no HTTP answer
        httpx.get(f"http://127.0.0.1:{port}/api/healthz", timeout=5)


def test_login_round_trip_sets_the_session_and_opens_the_api(dashboard, client, github):
    _side, port = dashboard
    start = client.get("/auth/login")
    assert start.status_code == 302
    location = urlsplit(start.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{github.web_url}/login/oauth/authorize"
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert query["client_id"] == github.client_id
    assert query["redirect_uri"] == f"https://localhost:{port}/auth/callback"
    assert query["scope"] == "read:user"
    state_cookie = set_cookies(start)["schmux_oauth_state"]
    assert state_cookie["value"] == query["state"] and len(base64.b64decode(query["state"] + "=")) == 32
    assert state_cookie["max-age"] == "300" and state_cookie["path"] == "/" and state_cookie["samesite"] == "Lax"
    assert "httponly" in state_cookie and "secure" in state_cookie

    approved = httpx.get(start.headers["location"])
    assert approved.status_code == 302
    callback = urlsplit(approved.headers["location"])
    assert callback.path == "/auth/callback"
    done = client.get(f"{callback.path}?{callback.query}", headers=cookie_header(schmux_oauth_state=query["state"]))
    assert done.status_code == 302 and done.headers["location"] == "/"
    cookies = set_cookies(done)
    session, csrf, state = cookies["schmux_auth"], cookies["schmux_csrf"], cookies["schmux_oauth_state"]
    assert session["max-age"] == str(TTL_MINUTES * 60) and session["samesite"] == "Lax" and session["path"] == "/"
    assert "httponly" in session and "secure" in session
    assert csrf["max-age"] == str(TTL_MINUTES * 60) and csrf["samesite"] == "Strict" and "httponly" not in csrf
    assert "secure" in csrf and len(base64.b64decode(csrf["value"] + "=")) == 32
    assert state["value"] == "" and state["max-age"] == "0"

    exchange = next(r for r in reversed(github.requests) if r.path == "/login/oauth/access_token")
    assert exchange.method == "POST" and exchange.headers["accept"] == "application/json"
    assert exchange.headers["content-type"] == "application/x-www-form-urlencoded"
    form = {key: values[0] for key, values in parse_qs(exchange.body.decode()).items()}
    assert form["client_secret"] == github.client_secret and form["state"] == query["state"]
    user_call = next(r for r in reversed(github.requests) if r.path == "/api/v3/user")
    assert user_call.headers["authorization"].startswith("Bearer gho_")

    with_session = cookie_header(schmux_auth=session["value"])
    me = client.get("/auth/me", headers=with_session)
    assert me.status_code == 200
    body = me.json()
    account = github.account
    assert {k: body[k] for k in ("github_id", "login", "name", "avatar_url")} == {
        "github_id": account.id,
        "login": account.login,
        "name": account.name,
        "avatar_url": account.avatar_url,
    }
    assert abs(body["expires_at"] - (time.time() + TTL_MINUTES * 60)) < 60
    payload, _, _signature = session["value"].partition(".")
    assert json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4))) == body

    config = client.get("/api/config", headers=with_session)
    assert config.status_code == 200 and "access_control" in config.json()
    refused = client.get("/api/config")
    assert refused.status_code == 401 and refused.text == "Unauthorized\n"
    assert refused.headers["content-type"].startswith("text/plain")
    assert client.get("/api/healthz").status_code == 401
    assert client.get("/", headers=with_session).text.startswith("<!doctype html><title>schmux")
    assert client.get("/sessions/abc", headers=with_session).status_code == 200  # an SPA route
    assert client.get("/assets/app.js", headers=with_session).status_code == 200


def test_the_page_sends_a_stranger_to_the_login(client):
    page = client.get("/sessions/abc")
    assert page.status_code == 302 and page.headers["location"] == "/auth/login"
    asset = client.get("/assets/app.js")
    assert asset.status_code == 401 and asset.text == "Unauthorized\n"


def test_forged_and_expired_cookies_are_refused(client):
    assert client.get("/api/config", headers=cookie_header(schmux_auth=sign(session_payload()))).status_code == 200
    forged = [
        sign(session_payload(), key=b"another key of thirty-two bytes!"),
        sign(session_payload()).split(".")[0] + "." + sign({**session_payload(), "login": "x"}).split(".")[1],
        b64raw(json.dumps({**session_payload(), "login": "mallory"}).encode())
        + "."
        + sign(session_payload()).split(".")[1],
        sign(session_payload()) + "=",
        "not-a-cookie",
    ]
    expired = sign(session_payload(expires_at=int(time.time()) - 1))
    for value in [*forged, expired]:
        api = client.get("/api/config", headers=cookie_header(schmux_auth=value))
        assert api.status_code == 401 and api.text == "Unauthorized\n", value
        me = client.get("/auth/me", headers=cookie_header(schmux_auth=value))
        assert me.status_code == 401 and me.text == "Unauthorized\n", value
        assert client.get("/", headers=cookie_header(schmux_auth=value)).status_code == 302


def test_the_callback_refuses_missing_and_wrong_state(client, github):
    state = set_cookies(client.get("/auth/login"))["schmux_oauth_state"]["value"]
    for query in ("", "?code=abc", f"?state={quote(state)}", "?code=&state=x"):
        answer = client.get(f"/auth/callback{query}", headers=cookie_header(schmux_oauth_state=state))
        assert (answer.status_code, answer.text) == (400, "Missing OAuth parameters\n"), query
    for cookies in ({}, {"schmux_oauth_state": "other"}):
        answer = client.get("/auth/callback", params={"code": "abc", "state": state}, headers=cookie_header(**cookies))
        assert (answer.status_code, answer.text) == (400, "Invalid OAuth state\n"), cookies
        assert "schmux_auth" not in set_cookies(answer)


def test_a_code_github_refuses_fails_the_exchange(client, github):
    state = set_cookies(client.get("/auth/login"))["schmux_oauth_state"]["value"]
    answer = client.get(
        "/auth/callback", params={"code": "wrong", "state": state}, headers=cookie_header(schmux_oauth_state=state)
    )
    assert answer.status_code == 400
    assert answer.text == "OAuth exchange failed: oauth error: The code passed is incorrect or expired.\n"
    assert "schmux_auth" not in set_cookies(answer)
    # A code is good once: the browser's back button cannot log in twice with it.
    start = client.get("/auth/login")
    state = set_cookies(start)["schmux_oauth_state"]["value"]
    callback = urlsplit(httpx.get(start.headers["location"]).headers["location"])
    first = client.get(f"/auth/callback?{callback.query}", headers=cookie_header(schmux_oauth_state=state))
    again = client.get(f"/auth/callback?{callback.query}", headers=cookie_header(schmux_oauth_state=state))
    assert first.status_code == 302
    assert again.status_code == 400 and again.text.startswith("OAuth exchange failed: ")


def test_logout_needs_the_csrf_header(client, github):
    cookies = logged_in_cookies(client, github)
    for header in ({}, {"X-CSRF-Token": "wrong"}, {"X-CSRF-Token": ""}):
        refused = client.post("/auth/logout", headers={**cookie_header(**cookies), **header})
        assert (refused.status_code, refused.text) == (403, "Forbidden\n"), header
    assert client.post("/auth/logout", headers={"X-CSRF-Token": cookies["schmux_csrf"]}).status_code == 403
    done = client.post("/auth/logout", headers={**cookie_header(**cookies), "X-CSRF-Token": cookies["schmux_csrf"]})
    assert done.status_code == 200 and done.json() == {"status": "ok"}
    expired = set_cookies(done)
    for name in ("schmux_auth", "schmux_csrf"):
        assert expired[name]["value"] == "" and expired[name]["max-age"] == "0" and expired[name]["path"] == "/"
    wrong_method = client.get("/auth/logout")
    assert (wrong_method.status_code, wrong_method.text) == (405, "Method not allowed\n")


def test_runtime_tokens_keep_working_beside_the_login(dashboard, client):
    side, port = dashboard
    assert client.get("/api/config", headers=side.auth).status_code == 200
    assert client.get("/api/config", headers={"Authorization": f"Bearer {side.token}"}).status_code == 200
    issued = side.post("/v1/auth/tokens", json={"name": "reader", "acl": "read_only", "expiry": "day"}).json()["token"]
    assert client.get("/api/config", headers={"x-miso-auth": issued}).status_code == 200
    assert client.post("/api/config", headers={"x-miso-auth": issued}, json={}).status_code == 403
    wrong = client.get("/api/config", headers={"x-miso-auth": "not-a-token"})
    assert wrong.status_code == 401 and wrong.text == "Unauthorized\n"
    # Opening the page with ?token= still starts the page's own session (then a Secure cookie).
    opened = client.get(f"/?token={side.token}")
    assert opened.status_code == 303
    page_cookie = set_cookies(opened)["miso_page_schmux"]
    assert "secure" in page_cookie
    with_page = cookie_header(miso_page_schmux=page_cookie["value"])
    assert client.get("/", headers=with_page).status_code == 200
    assert client.get("/api/config", headers=with_page).status_code == 200
    # The loopback API port is the app's: tokens only; the dashboard's cookie does not open it.
    cookie = cookie_header(schmux_auth=sign(session_payload()))
    assert side.http.get("/api/config", headers=cookie).status_code == 401
    assert side.get("/api/config").status_code == 200


def test_remote_connect_attempts_count_per_login(client):
    """With login on, schmux counts connect attempts (3 a minute) per GitHub login, not per address."""

    def attempt(login: str) -> httpx.Response:
        cookie = cookie_header(schmux_auth=sign({**session_payload(), "login": login}))
        return client.post("/api/remote/hosts/connect", json={"flavor_id": "nope"}, headers=cookie)

    for _ in range(3):
        answer = attempt("alice")
        assert answer.status_code == 404 and answer.text == "Flavor not found: nope\n"
    refused = attempt("alice")
    assert refused.status_code == 429
    assert refused.text == "Rate limit exceeded. Max 3 connection attempts per minute.\n"
    assert attempt("bob").status_code == 404  # the same address, another login


def test_cors_and_origins_follow_schmux_with_login_on(dashboard, client):
    _side, port = dashboard
    cookie = cookie_header(schmux_auth=sign(session_payload()))
    for origin in (f"https://localhost:{port}", f"https://127.0.0.1:{port}"):
        answer = client.get("/api/config", headers={**cookie, "Origin": origin})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == origin
        assert answer.headers["access-control-allow-credentials"] == "true"
        assert answer.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
        assert answer.headers["access-control-allow-headers"] == "Content-Type, X-CSRF-Token"
    preflight = client.options("/api/config", headers={"Origin": f"https://localhost:{port}"})
    assert preflight.status_code == 200 and preflight.content == b""
    assert preflight.headers["access-control-allow-credentials"] == "true"
    for origin in ("https://evil.example", f"http://localhost:{port}", f"http://127.0.0.1:{port}"):
        refused = client.get("/api/config", headers={**cookie, "Origin": origin})
        assert (refused.status_code, refused.text) == (403, "Forbidden\n"), origin
        assert client.get("/auth/me", headers={**cookie, "Origin": origin}).status_code == 403
    me = client.get("/auth/me", headers={**cookie, "Origin": f"https://localhost:{port}"})
    assert me.status_code == 200 and me.headers["access-control-allow-origin"] == f"https://localhost:{port}"


def test_websocket_upgrades_need_the_login_and_an_allowed_origin(dashboard, certificate):
    _side, port = dashboard
    cafile = certificate[0]
    cookie = cookie_header(schmux_auth=sign(session_payload()))
    own = {"Origin": f"https://localhost:{port}"}
    assert upgrade_status(port, "/ws/dashboard", {}, cafile) == (401, "Unauthorized")
    assert upgrade_status(port, "/ws/dashboard", cookie, cafile)[0] == 101  # no Origin: allowed here
    assert upgrade_status(port, "/ws/dashboard", {**cookie, **own}, cafile)[0] == 101
    assert upgrade_status(port, "/ws/dashboard", {**cookie, "Origin": "https://evil.example"}, cafile)[0] == 403
    assert upgrade_status(port, "/ws/terminal/nope", {}, cafile) == (401, "Unauthorized")
    assert upgrade_status(port, "/ws/terminal/nope", cookie, cafile) == (403, "Forbidden")  # an Origin is required
    assert upgrade_status(port, "/ws/provision/nope", cookie, cafile) == (403, "Forbidden")
    status, _body = upgrade_status(port, "/ws/terminal/nope", {**cookie, **own}, cafile)
    assert status == 404  # past the door: the session does not exist


def this_machines_network_address() -> str | None:
    """An address of this machine that is not loopback (the source of a route out), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, the route is only looked up
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_a_network_bind_allows_any_origin_and_keeps_previews_local(tmp_path, build, github, socket_name, certificate):
    side, port = start_dashboard(tmp_path / "data", build, github, socket_name, certificate, bind="0.0.0.0")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        context = ssl.create_default_context(cafile=str(certificate[0]))
        cookie = cookie_header(schmux_auth=sign(session_payload()))
        answer = httpx.get(
            f"https://localhost:{port}/api/config", headers={**cookie, "Origin": "https://evil.example"}, verify=context
        )
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://evil.example"
        # Any Host header: a name the network knows this machine by.
        named = httpx.get(
            f"https://127.0.0.1:{port}/api/config", headers={**cookie, "Host": "devbox.lan"}, verify=False
        )
        assert named.status_code == 200
        # Previews are for the machine's own browser: a client from the network is refused them.
        targets = [{"name": "idle", "type": "command", "command": "sleep 600"}]
        assert side.post("/api/config", json={"run_targets": targets}).status_code == 200
        remote = bare_remote(tmp_path / "remote", "web")
        spawned = side.post("/api/spawn", json={"repo": str(remote), "branch": "main", "targets": {"idle": 1}})
        workspace_id = spawned.json()[0]["workspace_id"]
        previews = f"/api/workspaces/{workspace_id}/previews"
        local = httpx.get(f"https://localhost:{port}{previews}", headers=cookie, verify=context)
        assert local.status_code == 200 and local.json() == []
        address = this_machines_network_address()
        if address is None:
            pytest.skip("this machine has no network address besides loopback to come from")
        from_network = httpx.get(f"https://{address}:{port}{previews}", headers=cookie, verify=False)
        assert from_network.status_code == 403
        assert from_network.text == "preview is only available to local clients in network-access mode\n"
    finally:
        side.terminate()


def test_with_login_off_the_auth_routes_answer_auth_disabled(tmp_path, build, socket_name):
    side = Sidecar(tmp_path / "data", env={"MISO_PAGES_SCHMUX": str(build), "MISO_TMUX_SOCKET": socket_name})
    try:
        for path in ("/auth/login", "/auth/callback?code=a&state=b", "/auth/me"):
            answer = side.http.get(path)
            assert (answer.status_code, answer.text) == (404, "Auth disabled\n"), path
            assert answer.headers["content-type"].startswith("text/plain")
        page = side.ready["pages"]["schmux"]
        assert page.startswith("http://127.0.0.1:")
        assert httpx.get(f"{page}auth/me").text == "Auth disabled\n"
        assert side.http.post("/auth/logout").status_code == 403
    finally:
        side.terminate()


def refusal(data_dir: Path, env: dict[str, str]) -> str:
    """Start the runtime where it must refuse to serve: exit status 2, no ready line, no traceback; its stderr."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("MISO_")}
    done = subprocess.run(
        [sys.executable, "-m", "miso_runtime", "--port", "0", "--data-dir", str(data_dir)],
        env={**base, "MISO_AUTH_TOKEN": "test-admin-token", **env},
        cwd=data_dir.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    return done.stderr


def test_a_misconfigured_login_refuses_to_start_naming_each_missing_piece(tmp_path, build, socket_name):
    write_login_config(tmp_path / "bare")
    text = refusal(tmp_path / "bare", {"MISO_TMUX_SOCKET": socket_name})
    assert "access_control.enabled is true, but the login is not configured" in text
    for missing in (
        "network.public_base_url is required",
        "network.tls.cert_path is required",
        "network.tls.key_path is required",
        "auth.github.client_id is required",
        "auth.github.client_secret is required",
        "the schmux dashboard's build (pages_schmux, MISO_PAGES_SCHMUX) is required",
    ):
        assert missing in text, missing

    unreadable = tmp_path / "key.pem"
    unreadable.write_text("not a key\n")
    unreadable.chmod(0)
    write_login_config(
        tmp_path / "wrong",
        access_control={"provider": "gitlab"},
        network={
            "public_base_url": "http://dashboard.example",
            "tls": {"cert_path": str(tmp_path / "missing.pem"), "key_path": str(unreadable)},
        },
        secrets={"auth": {"github": {"client_id": "id", "client_secret": "secret"}, "session_secret": "%%%"}},
    )
    text = refusal(tmp_path / "wrong", {"MISO_TMUX_SOCKET": socket_name, "MISO_PAGES_SCHMUX": str(build)})
    assert "network.public_base_url must be https (http://localhost is allowed)" in text
    assert 'access_control.provider must be "github"' in text
    assert "network.tls.cert_path is not readable: No such file or directory" in text
    if os.geteuid() != 0:  # root reads any file
        assert "network.tls.key_path is not readable: Permission denied" in text
    assert "auth.session_secret" in text and "is not base64 without padding" in text
    assert "client_id" not in text  # what is set is not named


def test_tls_files_that_are_not_a_certificate_and_key_refuse_the_start(tmp_path, build, socket_name, certificate):
    cert, _key = certificate
    write_login_config(
        tmp_path / "data",
        network={"public_base_url": "http://localhost:9", "tls": {"cert_path": str(cert), "key_path": str(cert)}},
        secrets={"auth": {"github": {"client_id": "id", "client_secret": "secret"}}},
    )
    text = refusal(tmp_path / "data", {"MISO_TMUX_SOCKET": socket_name, "MISO_PAGES_SCHMUX": str(build)})
    assert "network.tls.cert_path and key_path do not load as a certificate and its key" in text
    assert "public_base_url" not in text and "session_secret" not in text  # made on first use, as schmux does

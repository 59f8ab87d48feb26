"""The users' builds of schmux's, Maria's and Caco's web pages, each on its own loopback port.

Small pages of our own stand in for the real builds: they make the same kinds of calls
(absolute ``fetch``, ``EventSource``, ``WebSocket`` at ``location.host``, an SPA route, a
script under ``/assets/``) and run in headless Chromium (Debian's package) driven by Playwright.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.sidecar import Sidecar

#: Flags the machine's closed network needs (Chromium's own background calls are refused here).
CHROMIUM_ARGS = ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]

INDEX = """<!doctype html>
<html><head><meta charset="utf-8"><title>{name} test page</title>
<script type="module" crossorigin src="{script}"></script>
<link rel="stylesheet" crossorigin href="/assets/style.css"></head>
<body><h1 id="page">{name} page</h1></body></html>
"""

COMMON_JS = """
async function get(path) {
  const answer = await fetch(path);
  return {status: answer.status, body: await answer.text()};
}
function socketReply(path, send) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://${location.host}${path}`);
    ws.onopen = () => { if (send) ws.send(JSON.stringify(send)); };
    ws.onmessage = (event) => { resolve(JSON.parse(event.data)); ws.close(); };
    ws.onclose = (event) => resolve({closed: event.code});
  });
}
function firstEvent(path, name) {
  return new Promise((resolve) => {
    const source = new EventSource(path);
    source.addEventListener(name, (event) => { resolve(JSON.parse(event.data)); source.close(); });
    source.onerror = () => { resolve({error: source.readyState}); source.close(); };
  });
}
"""

#: What each page does on load, as schmux's dashboard, Maria's UI and Caco's page do.
PAGE_JS = {
    "schmux": """
window.results = {
  healthz: await get('/api/healthz'),
  config: await get('/api/config'),
  dashboard: await socketReply('/ws/dashboard'),
};
""",
    "maria": """
window.results = {
  tasks: await get('/v1/tasks'),
  status: await get('/v1/status'),
  events: await firstEvent('/v1/events', 'daemon.tasks.synchronized'),
};
""",
    "caco": """
window.results = {
  sessions: await get('/api/sessions'),
  preferences: await get('/api/preferences'),
  socket: await socketReply('/ws', {type: 'ping', id: 7}),
};
""",
}
#: Vite builds load ``/assets/<name>.js`` by absolute URL; Caco's page loads ``bundle.js`` relative.
SCRIPT = {"schmux": "/assets/app.js", "maria": "/assets/app.js", "caco": "bundle.js"}


def write_page(folder: Path, name: str) -> Path:
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX.format(name=name, script=SCRIPT[name]))
    (folder / SCRIPT[name].lstrip("/")).write_text(COMMON_JS + PAGE_JS[name])
    (folder / "assets" / "style.css").write_text("h1 { color: teal; }\n")
    return folder


@pytest.fixture(scope="module")
def outside(tmp_path_factory) -> Path:
    """A file beside the builds that no page may serve."""
    folder = tmp_path_factory.mktemp("outside")
    (folder / "secret.txt").write_text("not for pages\n")
    return folder


@pytest.fixture(scope="module")
def builds(tmp_path_factory, outside) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("builds")
    folders = {name: write_page(root / name, name) for name in ("schmux", "maria", "caco")}
    (folders["schmux"] / "assets" / "linked.txt").symlink_to(outside / "secret.txt")
    return folders


@pytest.fixture(scope="module")
def socket_name() -> Iterator[str]:
    """A private tmux socket for the agents worker (these tests start no session on it)."""
    name = f"miso-test-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, timeout=10)
    Path(tempfile.gettempdir(), f"tmux-{os.getuid()}", name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def side(tmp_path_factory, builds, socket_name) -> Iterator[Sidecar]:
    env = {"MISO_TMUX_SOCKET": socket_name, "MISO_CACO_ROOT": str(tmp_path_factory.mktemp("caco-root"))}
    env.update({f"MISO_PAGES_{name.upper()}": str(folder) for name, folder in builds.items()})
    sidecar = Sidecar(tmp_path_factory.mktemp("pages-data"), env=env)
    yield sidecar
    sidecar.terminate()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is missing: `make doctor` says how to install it (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture()
def context(browser) -> Iterator[BrowserContext]:
    """A fresh browser profile: no cookies."""
    made = browser.new_context()
    yield made
    made.close()


def url(side: Sidecar, name: str) -> str:
    return side.ready["pages"][name]


def port(side: Sidecar, name: str) -> int:
    return int(url(side, name).rstrip("/").rsplit(":", 1)[1])


def log_in(context: BrowserContext, side: Sidecar, name: str, token: str | None = None) -> Page:
    """Open the page with ``?token=`` once, as a user does, and wait for its calls."""
    page = context.new_page()
    page.goto(f"{url(side, name)}?token={token or side.token}")
    page.wait_for_function("window.results !== undefined", timeout=15_000)
    return page


def session_cookie(context: BrowserContext, name: str) -> dict:
    return next(c for c in context.cookies() if c["name"] == f"miso_page_{name}")


def raw_get(port_number: int, path: str, cookie: str = "") -> tuple[int, bytes]:
    """A GET with the path exactly as written (``..`` and all), as no browser sends it."""
    connection = http.client.HTTPConnection("127.0.0.1", port_number, timeout=10)
    try:
        connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_ready_line_and_status_list_the_pages(side):
    pages = side.ready["pages"]
    assert set(pages) == {"schmux", "maria", "caco"}
    ports = {port(side, name) for name in pages}
    assert len(ports) == 3 and side.port not in ports
    assert all(address == f"http://127.0.0.1:{port(side, name)}/" for name, address in pages.items())
    assert side.get("/v1/status").json()["pages"] == pages


def test_opening_with_a_token_sets_a_strict_http_only_cookie_and_drops_the_token(side, context):
    page = log_in(context, side, "schmux")
    assert page.url == url(side, "schmux")  # redirected to the same address without ?token=
    cookie = session_cookie(context, "schmux")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert cookie["secure"] is False and side.token not in cookie["value"]
    assert page.evaluate("document.cookie") == ""  # the page's own scripts cannot read it
    assert page.text_content("#page") == "schmux page"
    # The stylesheet came through the same cookie (Vite's tags load with crossorigin="anonymous").
    assert page.evaluate("getComputedStyle(document.querySelector('#page')).color") == "rgb(0, 128, 128)"


def test_other_query_parameters_survive_the_login_redirect(side, context):
    page = context.new_page()
    page.goto(f"{url(side, 'caco')}?applet=notes&token={side.token}")
    assert page.url == f"{url(side, 'caco')}?applet=notes"


def test_schmux_page_calls_its_api_and_dashboard_socket(side, context):
    results = log_in(context, side, "schmux").evaluate("window.results")
    assert results["healthz"]["status"] == 200
    assert results["config"]["status"] == 200 and "run_targets" in json.loads(results["config"]["body"])
    assert results["dashboard"]["type"] == "sessions"


def test_maria_page_calls_tasks_status_and_its_event_stream(side, context):
    results = log_in(context, side, "maria").evaluate("window.results")
    assert results["tasks"]["status"] == 200 and json.loads(results["tasks"]["body"])["tasks"] == []
    assert results["status"]["status"] == 200 and "pages" in json.loads(results["status"]["body"])
    assert results["events"] == {"tasks": []}


def test_caco_page_root_api_and_socket_map_onto_caco_routes(side, context):
    results = log_in(context, side, "caco").evaluate("window.results")
    assert results["sessions"]["status"] == 200
    assert results["sessions"]["body"] == side.get("/caco/api/sessions").text
    assert results["preferences"]["status"] == 200
    assert results["socket"] == {"type": "pong", "id": 7}


def test_an_spa_route_serves_index_html_and_its_absolute_assets(side, context):
    log_in(context, side, "schmux")
    page = context.new_page()
    answer = page.goto(f"{url(side, 'schmux')}sessions/abc")
    assert answer.status == 200 and page.text_content("#page") == "schmux page"
    page.wait_for_function("window.results !== undefined")  # /assets/app.js loaded from a nested route
    css = page.request.get(f"{url(side, 'schmux')}assets/style.css")
    assert css.status == 200 and css.headers["content-type"].startswith("text/css")
    assert page.request.get(f"{url(side, 'schmux')}assets/missing.js").status == 404


def test_without_the_cookie_the_page_and_its_calls_get_401(side, context):
    page = context.new_page()
    answer = page.goto(f"{url(side, 'schmux')}sessions/abc")
    assert answer.status == 401 and "?token=" in page.text_content("body")
    assert page.evaluate("fetch('/api/config').then((r) => r.status)") == 401
    assert page.evaluate("fetch('/assets/app.js').then((r) => r.status)") == 401
    caco = context.new_page()
    caco.goto(url(side, "caco"))
    answer = caco.evaluate("fetch('/api/sessions').then(async (r) => [r.status, await r.json()])")
    assert answer[0] == 401 and "error" in answer[1]  # Caco's envelope: its route answered


def test_a_token_the_runtime_refuses_opens_no_session(side, context):
    page = context.new_page()
    answer = page.goto(f"{url(side, 'maria')}?token=not-a-token")
    assert answer.status == 401 and context.cookies() == []


def test_the_cookie_counts_on_its_own_page_port_only(side, context):
    log_in(context, side, "schmux")
    value = session_cookie(context, "schmux")["value"]
    # The browser sends cookies by host, not by port: the schmux cookie reaches Maria's port too.
    maria = context.new_page()
    assert maria.goto(url(side, "maria")).status == 401
    assert maria.evaluate("fetch('/v1/tasks').then((r) => r.status)") == 401
    # Under Maria's own cookie name, or on the main port, the schmux session is nothing.
    assert httpx.get(f"{url(side, 'maria')}v1/tasks", headers={"Cookie": f"miso_page_maria={value}"}).status_code == 401
    main_port = httpx.get(f"{side.base_url}/api/config", headers={"Cookie": f"miso_page_schmux={value}"})
    assert main_port.status_code == 401
    own = httpx.get(f"{url(side, 'schmux')}api/config", headers={"Cookie": f"miso_page_schmux={value}"})
    assert own.status_code == 200


def test_the_cookie_gives_no_access_to_requests_from_other_sites(side, context):
    log_in(context, side, "schmux")
    cookie = f"miso_page_schmux={session_cookie(context, 'schmux')['value']}"
    for site in ("same-site", "cross-site"):  # another port of 127.0.0.1 is "same-site"
        answer = httpx.get(f"{url(side, 'schmux')}api/config", headers={"Cookie": cookie, "Sec-Fetch-Site": site})
        assert answer.status_code == 401
    foreign = httpx.post(
        f"{url(side, 'schmux')}api/config", json={}, headers={"Cookie": cookie, "Origin": side.base_url}
    )
    assert foreign.status_code == 403


def test_the_session_has_the_scope_of_its_token_and_ends_with_it(side, context):
    issued = side.post("/v1/auth/tokens", json={"name": "page", "acl": "read_only", "expiry": "day"}).json()
    page = log_in(context, side, "schmux", issued["token"])
    assert page.evaluate("window.results.config.status") == 200
    write = "fetch('/api/config', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'})"
    assert page.evaluate(f"{write}.then((r) => r.status)") == 403
    assert side.post("/v1/auth/tokens/revoke", json={"id": issued["id"]}).status_code == 200
    assert page.evaluate("fetch('/api/config').then((r) => r.status)") == 401
    assert page.goto(url(side, "schmux")).status == 401


def test_paths_out_of_the_build_folder_are_refused(side, context, outside):
    log_in(context, side, "schmux")
    cookie = f"miso_page_schmux={session_cookie(context, 'schmux')['value']}"
    secret = (outside / "secret.txt").read_text().encode()
    relative = Path("..", "..", outside.name, "secret.txt").as_posix()
    for path in (
        f"/{relative}",
        f"/assets/../{relative}",
        f"/assets/..%2f..%2f..%2f{outside.name}%2fsecret.txt",
        "/assets/linked.txt",  # a link inside the build that points out of it
        "/assets/app.js%00.png",
        "/assets/%ff%fe",
    ):
        status, body = raw_get(port(side, "schmux"), path, cookie)
        assert status == 404 and secret not in body, path
    # An absolute path is a path inside the build: no such file, so the page's own index.html.
    status, body = raw_get(port(side, "schmux"), f"/{outside / 'secret.txt'}", cookie)
    assert status == 200 and secret not in body and b"schmux page" in body
    assert raw_get(port(side, "schmux"), "/assets/app.js", cookie)[0] == 200


def test_a_page_port_refuses_a_foreign_host_and_writes_to_its_files(side):
    assert httpx.get(url(side, "maria"), headers={"Host": "evil.example"}).status_code == 403
    assert httpx.get(f"{url(side, 'maria')}v1/tasks", headers={"Host": "evil.example"}).status_code == 403
    assert httpx.post(f"{url(side, 'maria')}tasks/abc", json={}).status_code == 405


def test_a_page_folder_that_is_not_a_directory_stops_the_start(tmp_path):
    missing = tmp_path / "no-such-build"
    with pytest.raises(RuntimeError, match="must be a directory"):
        Sidecar(tmp_path / "data", env={"MISO_PAGES_MARIA": str(missing)})


def test_shutdown_with_open_streams_on_page_ports_exits_cleanly(tmp_path, builds, socket_name, browser):
    env = {"MISO_TMUX_SOCKET": socket_name, "MISO_PAGES_MARIA": str(builds["maria"])}
    side = Sidecar(tmp_path / "data", env=env)
    context = browser.new_context()
    try:
        page = log_in(context, side, "maria")
        opened = (
            "new Promise((resolve) => { window.kept = new EventSource('/v1/events'); window.kept.onopen = resolve; })"
        )
        page.evaluate(opened)
        assert side.terminate() == 0
    finally:
        context.close()
        side.kill()


GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:miso_runtime.server.gunicorn_conf"]


def test_gunicorn_serves_the_pages_too(tmp_path, builds, socket_name):
    env = {"MISO_TMUX_SOCKET": socket_name, "MISO_PAGES_SCHMUX": str(builds["schmux"])}
    side = Sidecar(tmp_path, command=GUNICORN, env=env, options_in_env=True)
    try:
        address = side.ready["pages"]["schmux"]
        assert side.get("/v1/status").json()["pages"] == {"schmux": address}
        with httpx.Client(base_url=address) as client:
            login = client.get(f"/sessions/abc?token={side.token}")
            assert login.status_code == 303 and login.headers["location"] == "/sessions/abc"
            assert client.get("/sessions/abc").status_code == 200
            assert client.get("/api/config").status_code == 200
    finally:
        side.kill()

"""Screenshots (skill-daemon 4.10) through a real sidecar on a real virtual display.

The test starts Xvfb on a free display number and a Tk window on it that shows the text of a
file (re-read five times a second), so the test changes what is on screen by writing the file.
There is no window manager: the test plays its part in naming the active window, setting the
root window's ``_NET_ACTIVE_WINDOW`` (EWMH) to the Tk window, as a window manager does. The
sidecar gets ``DISPLAY`` and captures every second; what it captured is found by its OCR text
(Tesseract), by meaning (the labels' text model) and by time, and its image is fetched back.
With ``session_only``, capture waits for an EEG session (BrainFlow's synthetic board) and stops
with it.
Every wait is for a condition, with a timeout; nothing asserts how long anything took.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from miso_runtime.screenshots import ocr
from miso_runtime.screenshots.pipeline import ScreenshotPipeline
from miso_runtime.store.database import open_database
from miso_runtime.store.screenshots import ScreenshotRepository
from tests.eeg import wait_until
from tests.sidecar import Sidecar

SCREEN = (1024, 640)
IMAGE_SIZE = 768
TITLE = "Quarterly Report Draft"
#: Tk's class name "MisoProbe" becomes WM_CLASS ("misoProbe", "Misoprobe").
APP_NAME = "Misoprobe"
FIRST = "Photosynthesis converts sunlight into chemical energy\nin the leaves of green plants"
SECOND = "Invoice total due on Friday\nplease pay 1200 euros to the supplier"
THIRD = "The glacier retreated two kilometres\nduring the last century"
DEFAULTS = {
    "enabled": False,
    "interval_secs": 5,
    "image_size": 768,
    "quality": 60,
    "session_only": True,
    "embed_backend": "fastembed",
    "fastembed_model": "nomic-embed-vision-v1.5",
    "ocr_enabled": True,
    "ocr_engine": "tesseract",
    "use_gpu": True,
    "gif_enabled": False,
    "gif_frame_count": 15,
    "gif_frame_delay_ms": 100,
    "gif_motion_threshold": 0.05,
    "gif_max_size_kb": 2048,
    "user_screenshot_enabled": False,
    "clipboard_image_enabled": False,
}
METRIC_KEYS = {
    "captures", "capture_errors", "drops", "capture_us", "ocr_us", "resize_us", "save_us", "capture_total_us",
    "embeds", "embed_errors", "vision_embed_us", "text_embed_us", "embed_total_us", "queue_depth",
    "last_capture_unix", "last_embed_unix", "backoff_multiplier",
}  # fmt: skip
RESULT_KEYS = {"timestamp", "unix_ts", "filename", "app_name", "window_title", "ocr_text", "similarity", "gif_filename"}

WINDOW = """
import sys, tkinter as tk
path = sys.argv[1]
root = tk.Tk(className="MisoProbe")
root.title({title!r})
root.geometry("{width}x{height}+0+0")
label = tk.Label(root, font=("Helvetica", 26), bg="white", fg="black", justify="left")
label.pack(expand=True, fill="both")
def refresh():
    try:
        text = open(path, encoding="utf-8").read()
    except OSError:
        text = ""
    if label.cget("text") != text:
        label.config(text=text)
    root.after(200, refresh)
refresh()
root.mainloop()
"""


def _free_display() -> int:
    for number in range(90, 400):
        if not Path(f"/tmp/.X11-unix/X{number}").exists() and not Path(f"/tmp/.X{number}-lock").exists():
            return number
    raise RuntimeError("no free X display number between :90 and :399")


@pytest.fixture(scope="module")
def display():
    """An Xvfb display of its own; its name (``:N``)."""
    assert shutil.which("Xvfb"), "Xvfb is missing: `make test` installs it (apt-get install xvfb); see `make doctor`"
    assert shutil.which("tesseract"), "tesseract is missing: `make test` installs it (apt-get install tesseract-ocr)"
    for _attempt in range(5):
        number = _free_display()
        server = subprocess.Popen(
            ["Xvfb", f":{number}", "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24", "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        socket = Path(f"/tmp/.X11-unix/X{number}")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and server.poll() is None and not socket.exists():
            time.sleep(0.05)
        if server.poll() is None and socket.exists():
            break
        server.kill()  # another server took the number meanwhile: try the next
        server.wait()
    else:
        raise RuntimeError("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def _make_active(name: str) -> int:
    """Play the window manager: name the Tk window in the root's ``_NET_ACTIVE_WINDOW``; its id."""
    from Xlib import X, Xatom
    from Xlib import display as xdisplay

    conn = xdisplay.Display(name)
    try:

        def probe() -> Any:
            for child in conn.screen().root.query_tree().children:
                wm_class = child.get_wm_class()
                if wm_class and wm_class[-1] == APP_NAME and child.get_wm_name() == TITLE:
                    return child
            return None

        window = wait_until(probe, 30, what="the Tk window on the virtual display")
        root = conn.screen().root
        root.change_property(conn.intern_atom("_NET_ACTIVE_WINDOW"), Xatom.WINDOW, 32, [window.id], X.PropModeReplace)
        conn.sync()
        return int(window.id)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def screen(display, tmp_path_factory):
    """The file whose text the Tk window shows (write it to change the screen)."""
    folder = tmp_path_factory.mktemp("screen")
    text_file = folder / "screen.txt"
    text_file.write_text(FIRST, encoding="utf-8")
    script = folder / "window.py"
    script.write_text(WINDOW.format(title=TITLE, width=SCREEN[0], height=SCREEN[1]), encoding="utf-8")
    window = subprocess.Popen(
        [sys.executable, str(script), str(text_file)],
        env={**os.environ, "DISPLAY": display},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _make_active(display)
    yield text_file
    window.terminate()
    window.wait(timeout=10)


@pytest.fixture(scope="module")
def side(display, screen, tmp_path_factory):
    sidecar = Sidecar(tmp_path_factory.mktemp("screenshots") / "data", env={"DISPLAY": display})
    yield sidecar
    sidecar.terminate()


def raw_get(side: Sidecar, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``path`` as written (httpx would resolve ``..`` before sending it)."""
    conn = http.client.HTTPConnection("127.0.0.1", side.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def search(side: Sidecar, query: str, mode: str | None = None, k: int | None = None) -> list[dict]:
    body: dict[str, Any] = {"query": query}
    if mode:
        body["mode"] = mode
    if k:
        body["k"] = k
    response = side.post("/v1/settings/screenshot/search-text", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def metrics(side: Sidecar) -> dict:
    response = side.get("/v1/settings/screenshot/metrics")
    assert response.status_code == 200, response.text
    return response.json()


def test_config_defaults_replace_and_wrapped(side):
    assert side.get("/v1/settings/screenshot/config").json() == DEFAULTS
    assert metrics(side)["status"] in ("disabled", "starting")
    # The frontend's wrapped form; fields left out take their defaults (the daemon replaces the struct).
    answer = side.post("/v1/settings/screenshot/config", json={"config": {"quality": 80, "interval_secs": 10}})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"model_changed": False, "stale_count": 0}
    assert side.get("/v1/settings/screenshot/config").json() == {**DEFAULTS, "quality": 80, "interval_secs": 10}
    changed = side.post("/v1/settings/screenshot/config", json={"fastembed_model": "clip-vit-b-32"}).json()
    assert changed == {"model_changed": True, "stale_count": 0}
    bad = side.post("/v1/settings/screenshot/config", json={"quality": 500})
    assert bad.status_code == 422 and set(bad.json()) == {"code", "message"} and "quality" in bad.json()["message"]
    assert side.get("/v1/settings/screenshot/config").json()["fastembed_model"] == "clip-vit-b-32"
    assert side.post("/v1/settings/screenshot/config", json=DEFAULTS).json()["model_changed"] is True
    assert side.get("/v1/settings/screenshot/config").json() == DEFAULTS
    assert side.get("/v1/settings/screenshot/dir").json() == {
        "dir": str(side.data_dir / "screenshots"),
        "port": side.port,
    }


def test_capture_search_files_around_and_duplicates(side, screen):
    enable = {"enabled": True, "interval_secs": 1, "session_only": False, "image_size": IMAGE_SIZE}
    assert side.post("/v1/settings/screenshot/config", json=enable).status_code == 200

    found = wait_until(
        lambda: search(side, "photosynthesis", "substring"), 120, what="the first screen found by its text"
    )
    assert len(found) == 1
    first = found[0]
    assert set(first) == RESULT_KEYS
    assert "sunlight into chemical energy" in first["ocr_text"]
    assert (first["app_name"], first["window_title"]) == (APP_NAME, TITLE)
    stamp = str(first["timestamp"])
    assert len(stamp) == 14 and first["filename"] == f"{stamp[:8]}/{stamp}.webp"

    # The image, as an <img> fetches it: ?token=, by day folder or by the name alone.
    for path in (f"/screenshots/{first['filename']}", f"/screenshots/{stamp}.webp"):
        response = side.http.get(path, params={"token": side.token})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/webp"
        image = Image.open(io.BytesIO(response.content))
        assert image.format == "WEBP" and max(image.size) == IMAGE_SIZE
    assert (side.data_dir / "screenshots" / first["filename"]).is_file()
    assert side.http.get(f"/screenshots/{first['filename']}").status_code == 401

    # An unchanged screen: later captures are near-duplicates, dropped and counted.
    wait_until(lambda: metrics(side)["drops"] >= 2, 60, what="two dropped near-duplicates")
    assert len(search(side, "photosynthesis", "substring")) == 1

    screen.write_text(SECOND, encoding="utf-8")
    second = wait_until(lambda: search(side, "invoice total", "substring"), 120, what="the changed screen found")[0]
    assert "1200 euros" in second["ocr_text"] and second["unix_ts"] >= first["unix_ts"]

    # By meaning: a paraphrase finds the screen that says it first.
    plants = search(side, "how plants turn light into food")
    assert plants[0]["filename"] == first["filename"] and plants[0]["similarity"] > plants[-1]["similarity"]
    bills = search(side, "a bill that must be paid")
    assert bills[0]["filename"] == second["filename"]
    assert {row["filename"] for row in search(side, "anything", k=1)} <= {first["filename"], second["filename"]}

    # By time: YYYYMMDDHHmmss or UNIX seconds, oldest first.
    around = side.post("/v1/settings/screenshot/around", json={"timestamp": first["timestamp"], "windowSecs": 0})
    assert around.status_code == 200 and [r["filename"] for r in around.json()] == [first["filename"]]
    wide = side.post("/v1/settings/screenshot/around", json={"timestamp": first["unix_ts"], "windowSecs": 3600}).json()
    names = [r["filename"] for r in wide]
    assert names.index(first["filename"]) < names.index(second["filename"])

    counted = metrics(side)
    assert METRIC_KEYS <= set(counted)
    assert counted["captures"] >= 2 and counted["embeds"] >= 2 and counted["capture_errors"] == 0
    assert counted["status"] == "capturing" and counted["stored"] >= 2

    # session_only: without an EEG session capture waits; a session (BrainFlow's synthetic board) opens it.
    side.post("/v1/settings/screenshot/config", json={**enable, "session_only": True})
    wait_until(lambda: metrics(side)["status"] == "waiting_for_session", 30, what="capture gated on the EEG session")
    screen.write_text(THIRD, encoding="utf-8")
    assert side.post("/v1/control/start-session", json={}).status_code == 200
    try:
        wait_until(lambda: search(side, "glacier", "substring"), 120, what="a capture while the session records")
    finally:
        assert side.post("/v1/control/cancel-session").status_code == 200
    wait_until(
        lambda: metrics(side)["status"] == "waiting_for_session", 30, what="capture gated again after the session"
    )


def test_names_that_are_not_ours_are_refused(side):
    token = f"?token={side.token}"
    planted = side.data_dir / "screenshots" / "20200101" / "20200101000000.webp"
    planted.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(planted, "WEBP")  # on disk, but not a capture of ours
    for path, status in [
        ("/screenshots/..", 400),
        ("/screenshots/20200101/..", 400),
        ("/screenshots/%2E%2E/20200101000000.webp", 400),
        ("/screenshots/..%2F..%2Fmiso.db", 404),
        ("/screenshots/20200101/20200101000000.webp", 404),
        ("/screenshots/20200101000000.webp", 404),
        ("/screenshots/20200101/20200101000000.png", 404),
        ("/screenshots/20200102/20200101000000.webp", 404),
        ("/screenshots/miso.db", 404),
    ]:
        code, headers, body = raw_get(side, path + token)
        assert code == status, (path, code, body)
        assert headers["content-type"].startswith("application/json"), (path, headers)
        assert set(json.loads(body)) == {"code", "message"}, (path, body)
    assert side.get("/healthz").status_code == 200


def test_bad_bodies_are_422_in_the_skill_envelope(side):
    for path, body in [
        ("/v1/settings/screenshot/around", {"timestamp": 20261399999999, "windowSecs": 10}),
        ("/v1/settings/screenshot/around", {"timestamp": 1796000000}),
        ("/v1/settings/screenshot/around", {"timestamp": 1796000000, "windowSecs": -1}),
        ("/v1/settings/screenshot/search-text", {"query": ""}),
        ("/v1/settings/screenshot/search-text", {"query": "x", "mode": "fuzzy"}),
        ("/v1/settings/screenshot/search-text", {"query": "x", "k": 0}),
        ("/v1/settings/screenshot/config", {"interval_secs": 0}),
    ]:
        response = side.post(path, json=body)
        assert response.status_code == 422, (path, body, response.text)
        assert set(response.json()) == {"code", "message"}
    assert search(side, "100% _not_ there", "substring") == []


def test_ocr_of_a_blank_image_is_empty_text():
    assert ocr.recognize(Image.new("RGB", (640, 400), "white")) == ""
    assert ocr.recognize(Image.new("RGB", (1, 1), "black")) == ""


def test_capture_without_a_display_is_counted_not_raised(tmp_path, monkeypatch):
    repository = ScreenshotRepository(open_database(tmp_path / "miso.db"))
    pipeline = ScreenshotPipeline(tmp_path / "screenshots", repository, lambda: None)
    pipeline.configure({"enabled": True, "session_only": False}, session_active=False)
    monkeypatch.setenv("DISPLAY", f":{_free_display()}")  # no server there
    assert pipeline.due() and pipeline.tick() is None
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert pipeline.tick() is None
    snapshot = pipeline.metrics.to_dict()
    assert snapshot["capture_errors"] == 2 and snapshot["captures"] == 0 and snapshot["status"] == "error"
    assert "DISPLAY" in snapshot["last_error"]
    assert repository.summary()["stored"] == 0
    pipeline.close()

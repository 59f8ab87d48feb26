"""DownloadManager against a local HTTP file server that can throttle, drop and ignore Range.

The server is ours (stdlib ``ThreadingHTTPServer`` on loopback) so each failure mode a real CDN
shows now and then can be produced on demand and the requests the manager made can be checked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import pytest

from miso_runtime.errors import MisoError
from miso_runtime.llm.downloads import DOWNLOAD_EVENT, DownloadInfo, DownloadManager

PAYLOAD = os.urandom(3 * 1024 * 1024 + 123)
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
WRITE_BYTES = 16 * 1024
SECRET = "s3cr3t-token"
NAME = "model.gguf"


class FileServer:
    """Serves ``PAYLOAD`` at any ``*.gguf`` path except ``/missing.gguf`` (404).

    Knobs, reset before every test: ``throttle_s`` (sleep after each 16 KiB write),
    ``drop_after`` (close the connection once after that many body bytes), ``ignore_range``
    (answer 200 with the whole file). ``ranges`` records each request's ``Range`` header (None
    when absent) and ``aborted`` is set when a client went away mid-body.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="file-server", daemon=True)
        self.thread.start()

    def reset(self) -> None:
        self.throttle_s = 0.0
        self.drop_after: int | None = None
        self.ignore_range = False
        self.ranges: list[str | None] = []
        self.aborted = threading.Event()

    def url(self, path: str = NAME) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/files/{path}?token={SECRET}"

    def take_drop(self) -> int | None:
        with self.lock:
            drop, self.drop_after = self.drop_after, None
            return drop

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        server: FileServer = self.server.owner  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        if not path.endswith(".gguf") or path.endswith("/missing.gguf"):
            body = b"no such file"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        range_header = self.headers.get("Range")
        with server.lock:
            server.ranges.append(range_header)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        drop = server.take_drop()
        sent = 0
        try:
            for offset in range(0, len(body), WRITE_BYTES):
                piece = body[offset : offset + WRITE_BYTES]
                if drop is not None and sent + len(piece) > drop:
                    self.wfile.write(piece[: drop - sent])
                    self.close_connection = True  # the socket closes with the body unfinished
                    return
                self.wfile.write(piece)
                sent += len(piece)
                if server.throttle_s:
                    time.sleep(server.throttle_s)
        except (BrokenPipeError, ConnectionResetError):
            server.aborted.set()
            self.close_connection = True


class Recorder:
    """The ``on_event`` callback: keeps every payload and calls back into the manager.

    Calling ``list()`` from inside the callback would deadlock if events were delivered under
    the manager's lock, so every test also checks that rule.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.manager: DownloadManager | None = None
        self._lock = threading.Lock()

    def __call__(self, event_type: str, payload: dict[str, Any]) -> None:
        assert event_type == DOWNLOAD_EVENT
        if self.manager is not None:
            self.manager.list()
        with self._lock:
            self.events.append(payload)

    def of(self, download_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [event for event in self.events if event["id"] == download_id]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_state(manager: DownloadManager, download_id: str, state: str, timeout: float = 10.0) -> DownloadInfo:
    return wait_for(lambda: (info := manager.get(download_id)).state == state and info, timeout, f"state {state}")


@pytest.fixture(scope="module")
def file_server() -> Iterator[FileServer]:
    server = FileServer()
    yield server
    server.close()


@pytest.fixture
def server(file_server: FileServer) -> FileServer:
    file_server.reset()
    return file_server


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def manager(models_dir: Path, recorder: Recorder) -> Iterator[DownloadManager]:
    downloads = DownloadManager(models_dir, recorder)
    recorder.manager = downloads
    yield downloads
    downloads.shutdown()


def test_full_download_with_sha256_appears_only_when_complete(server, manager, models_dir, recorder):
    server.throttle_s = 0.002
    info = manager.start(server.url(), sha256=PAYLOAD_SHA256.upper())
    assert info.file_name == NAME and info.sha256 == PAYLOAD_SHA256
    wait_for(lambda: manager.get(info.id).bytes_done > 0, what="first bytes")
    assert not (models_dir / NAME).exists() and (models_dir / f"{NAME}.part").exists()

    done = wait_state(manager, info.id, "completed")
    assert (models_dir / NAME).read_bytes() == PAYLOAD
    assert os.listdir(models_dir) == [NAME]
    assert done.bytes_done == done.bytes_total == len(PAYLOAD) and done.error is None
    wait_for(lambda: recorder.of(info.id)[-1]["state"] == "completed", what="the final event")
    assert "verifying" in [event["state"] for event in recorder.of(info.id)]


def test_progress_events_are_ordered_throttled_and_redacted(server, manager, recorder):
    server.throttle_s = 0.003
    began = time.monotonic()
    info = manager.start(server.url())
    wait_state(manager, info.id, "completed")
    elapsed = time.monotonic() - began
    wait_for(lambda: recorder.of(info.id)[-1]["state"] == "completed", what="the final event")

    events = recorder.of(info.id)
    done = [event["bytes_done"] for event in events]
    assert done == sorted(done) and done[-1] == len(PAYLOAD)
    assert events[0]["state"] == "queued" and events[-1]["state"] == "completed"
    flowing = [event for event in events if event["state"] == "downloading"]
    assert 2 <= len(flowing) <= elapsed * 4 + 3  # at most ~4 a second, plus the state change
    assert any(event["speed_bytes_per_s"] > 0 for event in flowing)
    assert all(SECRET not in event["url"] and "?" not in event["url"] for event in events)
    assert set(events[-1]) == {
        "id", "url", "file_name", "state", "bytes_done", "bytes_total", "sha256", "error",
        "started_at_ms", "updated_at_ms", "speed_bytes_per_s",
    }  # fmt: skip


def test_wrong_sha256_fails_and_leaves_nothing(server, manager, models_dir):
    info = manager.start(server.url(), sha256="0" * 64)
    failed = wait_state(manager, info.id, "failed")
    assert "SHA-256 mismatch" in failed.error and PAYLOAD_SHA256 in failed.error
    assert os.listdir(models_dir) == []


def test_pause_stops_promptly_and_resume_continues_with_range(server, manager, models_dir, recorder):
    server.throttle_s = 0.004
    info = manager.start(server.url())
    part = models_dir / f"{NAME}.part"
    wait_for(lambda: manager.get(info.id).bytes_done >= 256 * 1024, what="256 KiB")

    assert manager.pause(info.id).state == "paused"
    assert server.aborted.wait(0.5), "the transfer went on after pause"
    size = part.stat().st_size
    time.sleep(0.1)
    assert part.stat().st_size == size and 0 < size < len(PAYLOAD)
    assert manager.get(info.id).state == "paused" and not (models_dir / NAME).exists()

    server.throttle_s = 0.0
    assert manager.resume(info.id).state in ("queued", "downloading")
    wait_state(manager, info.id, "completed")
    assert (models_dir / NAME).read_bytes() == PAYLOAD and not part.exists()
    assert server.ranges == [None, f"bytes={size}-"]

    states = [event["state"] for event in recorder.of(info.id)]
    paused_at = states.index("paused")
    assert states[paused_at + 1] == "queued"  # no stale progress after the pause


def test_dropped_connection_is_retried_with_range(server, manager, models_dir):
    server.drop_after = 1_000_000
    info = manager.start(server.url())
    wait_state(manager, info.id, "completed")
    assert (models_dir / NAME).read_bytes() == PAYLOAD
    assert len(server.ranges) == 2 and server.ranges[0] is None
    resumed_at = int(re.fullmatch(r"bytes=(\d+)-", server.ranges[1]).group(1))
    assert 0 < resumed_at <= 1_000_000


def test_server_ignoring_range_restarts_from_zero(server, manager, models_dir):
    server.drop_after = 1_000_000
    server.ignore_range = True
    info = manager.start(server.url(), sha256=PAYLOAD_SHA256)
    wait_state(manager, info.id, "completed")
    assert (models_dir / NAME).read_bytes() == PAYLOAD
    assert server.ranges[0] is None and server.ranges[1].startswith("bytes=")


def test_complete_part_file_is_recognised_on_416(server, manager, models_dir):
    models_dir.mkdir()
    (models_dir / f"{NAME}.part").write_bytes(PAYLOAD)
    info = manager.start(server.url(), sha256=PAYLOAD_SHA256)
    wait_state(manager, info.id, "completed")
    assert server.ranges == [f"bytes={len(PAYLOAD)}-"]
    assert (models_dir / NAME).read_bytes() == PAYLOAD


def test_cancel_removes_the_part_file(server, manager, models_dir):
    server.throttle_s = 0.004
    info = manager.start(server.url())
    wait_for(lambda: manager.get(info.id).bytes_done > 0, what="first bytes")
    assert manager.cancel(info.id).state == "cancelled"
    assert server.aborted.wait(1.0)
    assert os.listdir(models_dir) == []
    assert manager.get(info.id).state == "cancelled"
    with pytest.raises(MisoError) as raised:
        manager.resume(info.id)
    assert raised.value.status == 409


def test_delete_a_finished_download_a_part_file_and_an_unknown_name(server, manager, models_dir):
    info = manager.start(server.url())
    wait_state(manager, info.id, "completed")
    manager.delete(info.id)
    assert not (models_dir / NAME).exists()
    with pytest.raises(MisoError) as raised:
        manager.get(info.id)
    assert raised.value.status == 404 and raised.value.code == "not_found"

    server.throttle_s = 0.004
    paused = manager.start(server.url("other.gguf"))
    wait_for(lambda: manager.get(paused.id).bytes_done > 0, what="first bytes")
    manager.pause(paused.id)
    manager.delete("other.gguf")
    assert os.listdir(models_dir) == [] and manager.list() == []

    (models_dir / "manual.gguf").write_bytes(b"GGUF")
    manager.delete("manual.gguf")
    assert not (models_dir / "manual.gguf").exists()

    for unknown in ("nope.gguf", "no-such-id", "../etc/passwd"):
        with pytest.raises(MisoError) as raised:
            manager.delete(unknown)
        assert raised.value.status == 404


@pytest.mark.parametrize("file_name", ["../x.gguf", "x.bin", "a/b.gguf", ".gguf", "..\\x.gguf"])
def test_bad_file_names_are_refused(server, manager, file_name):
    with pytest.raises(MisoError) as raised:
        manager.start(server.url(), file_name=file_name)
    assert (raised.value.status, raised.value.code) == (400, "invalid_request")
    assert manager.list() == []


def test_bad_url_name_and_hash_are_refused(server, manager):
    for kwargs in (
        {"url": server.url("x.bin")},
        {"url": "ftp://example.com/x.gguf"},
        {"url": server.url(), "sha256": "abc"},
    ):
        with pytest.raises(MisoError) as raised:
            manager.start(**kwargs)
        assert raised.value.status == 400
    assert manager.list() == []


def test_http_404_fails_with_a_clear_error(server, manager, models_dir, caplog):
    caplog.set_level(logging.DEBUG, logger="miso_runtime.llm.downloads")
    info = manager.start(server.url("missing.gguf"))
    failed = wait_state(manager, info.id, "failed")
    assert "HTTP 404" in failed.error and SECRET not in failed.error
    assert os.listdir(models_dir) == []
    assert SECRET not in caplog.text and "HTTP 404" in caplog.text


def test_duplicate_start_conflicts(server, manager):
    server.throttle_s = 0.002
    info = manager.start(server.url())
    for _ in range(2):
        with pytest.raises(MisoError) as raised:
            manager.start(server.url())
        assert (raised.value.status, raised.value.code) == (409, "conflict")
        manager.pause(info.id)  # a paused download still owns its file name

    server.throttle_s = 0.0
    manager.resume(info.id)
    wait_state(manager, info.id, "completed")
    with pytest.raises(MisoError) as raised:
        manager.start(server.url())
    assert raised.value.status == 409


def test_shutdown_pauses_running_downloads(server, models_dir, recorder):
    server.throttle_s = 0.004
    downloads = DownloadManager(models_dir, recorder)
    info = downloads.start(server.url())
    wait_for(lambda: downloads.get(info.id).bytes_done > 0, what="first bytes")
    began = time.monotonic()
    downloads.shutdown()
    assert time.monotonic() - began < 1.0
    assert downloads.get(info.id).state == "paused" and (models_dir / f"{NAME}.part").exists()
    with pytest.raises(MisoError):
        downloads.start(server.url("later.gguf"))

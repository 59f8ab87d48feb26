"""gunicorn with the shipped config and one gevent worker serves the same app: HTTP, SSE, WebSocket."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import cloud_env
from tests.sidecar import Sidecar
from tests.standins import Script
from tests.ws_client import JsonSocket

GUNICORN = [str(Path(sys.executable).parent / "gunicorn"), "-c", "python:miso_runtime.server.gunicorn_conf"]


@pytest.fixture()
def gunicorn_sidecar(tmp_path, openai_standin, anthropic_standin, ollama_standin):
    env = {**cloud_env(openai_standin, anthropic_standin, ollama_standin), "MISO_PROVIDER": "openai"}
    side = Sidecar(tmp_path, command=GUNICORN, env=env, options_in_env=True)
    yield side
    side.kill()


def test_gunicorn_serves_http_sse_and_websocket(gunicorn_sidecar, openai_standin):
    side = gunicorn_sidecar
    assert side.ready["event"] == "ready" and side.ready["pid"] == side.proc.pid
    assert side.http.get("/health").json()["status"] == "ok"
    assert side.http.get("/v1/auth/tokens").status_code == 401

    openai_standin.script = Script(tokens=["via", " gunicorn"])
    events = side.stream_chat({"message": "hi"})
    assert [name for name, _ in events] == ["meta", "token", "token", "done"]

    # Our wsproto client: simple-websocket's holds back a frame that arrives with the handshake.
    ws = JsonSocket(side.port, f"/v1/events?token={side.token}")
    try:
        first = ws.wait_messages(lambda messages: messages and messages[0], timeout=5)
        assert first["type"] == "status"
    finally:
        ws.close()


def test_gunicorn_sigterm_ends_streams_with_a_final_event(gunicorn_sidecar, openai_standin):
    side = gunicorn_sidecar
    openai_standin.script = Script(tokens=["tok "] * 400, token_delay_s=0.02)
    events = side.stream_chat_then_signal({"message": "long"}, 4, signal.SIGTERM)
    assert events[-1][0] == "error" and events[-1][1]["code"] == "server_shutdown"
    assert side.proc.wait(timeout=10) == 0
    assert openai_standin.wait_for_disconnect(timeout=1.0)

"""Starting, configuring and stopping the sidecar as the Electron app and a person do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sidecar import Sidecar
from tests.standins import Script

BIN = Path(sys.executable).parent


def wait_exit(proc: subprocess.Popen, timeout: float) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "miso_runtime"],
        [str(BIN / "miso-runtime")],
        [str(BIN / "miso-runtime"), "serve"],
    ],
    ids=["python-m", "console-script", "serve-subcommand"],
)
def test_three_ways_to_start_print_one_ready_line(tmp_path, command):
    side = Sidecar(tmp_path, command=command)
    try:
        assert set(side.ready) == {"event", "port", "pid", "version"}
        assert side.ready["event"] == "ready" and side.ready["pid"] == side.proc.pid
        assert side.http.get("/health").json()["version"] == side.ready["version"]
    finally:
        assert side.terminate() == 0
    assert side.proc.stdout.read() == b""  # the ready line was the only thing on stdout


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_zero(tmp_path, signum):
    side = Sidecar(tmp_path)
    side.proc.send_signal(signum)
    assert wait_exit(side.proc, 5.0) == 0


def test_sigterm_during_a_stream_ends_it_with_a_final_event(tmp_path, openai_standin):
    openai_standin.script = Script(tokens=["tok "] * 400, token_delay_s=0.02)
    side = Sidecar(
        tmp_path,
        env={"MISO_OPENAI_API_KEY": "k", "MISO_OPENAI_BASE_URL": openai_standin.base_url, "MISO_PROVIDER": "openai"},
    )
    events = side.stream_chat_then_signal({"message": "long"}, 5, signal.SIGTERM)
    assert events[-1] == ("error", {"code": "server_shutdown", "message": events[-1][1]["message"]})
    assert wait_exit(side.proc, 5.0) == 0
    assert openai_standin.wait_for_disconnect(timeout=1.0)
    assert openai_standin.completed_streams == 0


def test_parent_pid_gone_stops_the_sidecar(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    side = Sidecar(tmp_path, args=["--parent-pid", str(parent.pid)])
    assert side.proc.poll() is None
    parent.kill()
    parent.wait()
    assert wait_exit(side.proc, 5.0) == 0


def test_stdin_close_stops_the_sidecar(tmp_path):
    side = Sidecar(tmp_path, args=["--exit-on-stdin-close"], stdin=subprocess.PIPE)
    time.sleep(0.3)
    assert side.proc.poll() is None
    side.proc.stdin.close()
    assert wait_exit(side.proc, 5.0) == 0


def test_configuration_layers(tmp_path):
    """defaults < config.toml in the data dir < MISO_* environment < command line."""
    (tmp_path / "config.toml").write_text('provider = "ollama"\nmodel = "from-file"\nlog_level = "WARNING"\n')
    side = Sidecar(tmp_path, token="")
    try:
        assert side.http.get("/health").json()["model"] == "ollama:from-file"
    finally:
        side.terminate()
    side = Sidecar(
        tmp_path,
        env={"MISO_MODEL": "from-env", "MISO_AUTH_TOKEN": "env-token"},
        token="",
        args=["--token", "cli-token"],
    )
    try:
        assert side.http.get("/health").json()["model"] == "ollama:from-env"
        assert side.http.get("/v1/auth/tokens", headers={"x-miso-auth": "cli-token"}).status_code == 200
        assert side.http.get("/v1/auth/tokens", headers={"x-miso-auth": "env-token"}).status_code == 401
    finally:
        side.terminate()


def test_bad_configuration_is_a_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "miso_runtime", "--data-dir", str(tmp_path), "--port", "0"],
        env={**os.environ, "MISO_PROVIDER": "skynet"},
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"provider must be one of" in result.stderr and result.stdout == b""


def test_logs_go_to_stderr_and_a_rotating_file(tmp_path):
    side = Sidecar(tmp_path, args=["--log-level", "DEBUG"])
    side.http.get("/health")
    side.terminate()
    log_text = (tmp_path / "logs" / "miso-runtime.log").read_text()
    assert "serving on http://127.0.0.1" in log_text and "DEBUG" in log_text
    assert "serving on" in side.stderr_text()


def test_port_in_use_fails_cleanly(tmp_path):
    first = Sidecar(tmp_path / "a")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "miso_runtime", "--data-dir", str(tmp_path / "b"), "--port", str(first.port)],
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 1 and b"cannot serve" in result.stderr and result.stdout == b""
    finally:
        first.terminate()


def test_token_command_prints_the_admin_token(tmp_path):
    side = Sidecar(tmp_path, token="")
    side.terminate()
    printed = subprocess.run(
        [str(BIN / "miso-runtime"), "token", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert printed.returncode == 0
    assert printed.stdout.strip() == (tmp_path / "auth.token").read_text().strip()


def test_doctor_names_what_is_missing(tmp_path):
    ok = subprocess.run([str(BIN / "miso-runtime"), "doctor"], capture_output=True, text=True, timeout=30)
    assert "git" in ok.stdout and "tmux" in ok.stdout
    empty_path = subprocess.run(
        [sys.executable, "miso_runtime/doctor.py"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": str(tmp_path)},
        cwd=Path(__file__).resolve().parents[1],
    )
    assert empty_path.returncode == 1
    assert "MISSING  tmux" in empty_path.stdout and "apt-get install tmux" in empty_path.stdout
    assert "MISSING  git" in empty_path.stdout


def test_openapi_is_generated_from_the_models(sidecar):
    document = sidecar.get("/openapi.json").json()
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    for path in ("/health", "/models/catalog", "/chat/stream", "/v1/auth/tokens", "/v1/auth/tokens/revoke"):
        assert path in paths
    body = paths["/chat/stream"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schema_name = body["$ref"].rsplit("/", 1)[-1]
    properties = document["components"]["schemas"][schema_name]["properties"]
    assert {"message", "history", "options"} <= set(properties)
    assert json.dumps(document)  # serialisable


def test_openapi_documents_what_each_route_answers(sidecar):
    document = sidecar.get("/openapi.json").json()
    paths = document["paths"]
    operations = [operation for item in paths.values() for operation in item.values()]
    assert operations and all({"4XX", "5XX"} <= set(op["responses"]) for op in operations)
    assert all("422" not in op["responses"] for op in operations)  # spectree's own error shape is gone

    def error_schema(path: str, method: str = "post") -> tuple[str, dict]:
        ((mimetype, content),) = paths[path][method]["responses"]["4XX"]["content"].items()
        return mimetype, content["schema"]

    assert error_schema("/v1/analysis/metrics")[1]["required"] == ["code", "message"]  # skill
    assert error_schema("/chat/stream")[1]["properties"]["error"]["required"] == ["code", "message"]  # Miso
    assert set(error_schema("/v1/chat/completions")[1]["properties"]["error"]["required"]) == {
        "message",
        "type",
        "param",
        "code",
    }  # OpenAI
    assert error_schema("/api/spawn")[1]["properties"] == {"error": {"type": "string"}}  # schmux
    assert error_schema("/api/config") == ("text/plain", {"type": "string"})  # schmux, plain text
    assert "201" in paths["/v1/auth/tokens"]["post"]["responses"]
    assert "202" in paths["/v1/llm/download/start"]["post"]["responses"]
    assert "200" in paths["/v1/status"]["get"]["responses"]

    # The input bounds are in the document, where clients and the fuzz test read them.
    body = paths["/v1/history/find-session"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ts_utc = document["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]["ts_utc"]
    assert ts_utc["minimum"] == 0 and ts_utc["maximum"] == 253_402_300_799

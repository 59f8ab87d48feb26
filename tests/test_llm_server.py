"""The local LLM server end to end: real worker process, real llama.cpp, a tiny GGUF we write."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import threading
import time
from pathlib import Path

import openai
import pytest

from tests.llm_fixtures import write_not_gguf, write_tiny_llama_gguf, write_truncated_gguf
from tests.sidecar import Sidecar, parse_sse

LONG = 400  # tokens: long enough to still be generating while a test does something else


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def write_unloadable_gguf(path: Path) -> None:
    """A valid GGUF file of an architecture llama.cpp does not know."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(path), "alien")
    writer.add_context_length(128)
    writer.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_models(models: Path) -> None:
    models.mkdir(parents=True, exist_ok=True)
    write_tiny_llama_gguf(models / "tiny.gguf")
    write_tiny_llama_gguf(models / "tiny-b.gguf", seed=1)
    write_tiny_llama_gguf(models / "bare.gguf", chat_template=None)
    write_not_gguf(models / "broken.gguf")
    write_truncated_gguf(models / "cut.gguf")


@pytest.fixture(scope="module")
def llm_sidecar(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("llm")
    write_models(data_dir / "models")
    side = Sidecar(data_dir)
    assert side.post("/v1/llm/server/start", json={"model": "tiny"}).status_code == 200
    yield side
    side.terminate()


@pytest.fixture()
def client(llm_sidecar) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{llm_sidecar.base_url}/v1", api_key=llm_sidecar.token, max_retries=0)


def status(side) -> dict:
    return side.get("/v1/llm/server/status").json()


def ensure_tiny(side) -> None:
    if status(side)["model"] != "tiny" or status(side)["state"] != "ready":
        assert side.post("/v1/llm/server/start", json={"model": "tiny"}).status_code == 200


# --- catalog --------------------------------------------------------------------------------


def test_catalog_reads_metadata_from_the_files(llm_sidecar):
    models = {m["id"]: m for m in llm_sidecar.get("/v1/llm/catalog").json()["models"]}
    assert {"tiny", "tiny-b", "bare", "broken", "cut"} <= set(models)
    tiny = models["tiny"]
    assert tiny["architecture"] == "llama" and tiny["context_length"] == 512
    assert tiny["has_chat_template"] is True and models["bare"]["has_chat_template"] is False
    assert tiny["parameter_count"] > 100_000 and tiny["quantization"] == "F16"
    assert models["broken"]["error"] and models["cut"]["error"]


def test_catalog_refresh_sees_new_and_removed_files(llm_sidecar):
    extra = llm_sidecar.data_dir / "models" / "extra.gguf"
    write_tiny_llama_gguf(extra, seed=3)
    ids = [m["id"] for m in llm_sidecar.post("/v1/llm/catalog/refresh").json()["models"]]
    assert "extra" in ids
    extra.unlink()
    ids = [m["id"] for m in llm_sidecar.post("/v1/llm/catalog/refresh").json()["models"]]
    assert "extra" not in ids


# --- the OpenAI-compatible API, through the official client ---------------------------------


def test_openai_client_non_streaming(llm_sidecar, client):
    ensure_tiny(llm_sidecar)
    reply = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello"}], max_tokens=8, temperature=0.5, seed=7
    )
    assert reply.object == "chat.completion" and reply.model == "tiny"
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 8 and reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8


def test_openai_client_streaming_with_usage(llm_sidecar, client):
    ensure_tiny(llm_sidecar)
    chunks = list(
        client.chat.completions.create(
            model="local",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 6


def test_same_seed_same_text(llm_sidecar, client):
    ensure_tiny(llm_sidecar)

    def ask() -> str:
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=12, seed=42, temperature=0.8
        )
        return reply.choices[0].message.content

    assert ask() == ask()


def test_a_64_bit_seed_is_taken_as_openai_takes_it(llm_sidecar, client):
    ensure_tiny(llm_sidecar)

    def ask(seed: int) -> str:
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], max_tokens=8, seed=seed, temperature=0.8
        )
        return reply.choices[0].message.content

    assert ask(2**63 - 1) == ask(2**63 - 1) and ask(-(2**63)) == ask(-(2**63))


def test_only_chat_formats_llama_cpp_has_are_accepted(llm_sidecar):
    from llama_cpp.llama_chat_format import LlamaChatCompletionHandlerRegistry

    from miso_runtime import constants

    # The list we validate against is llama-cpp-python's own (an upgrade that changes it fails here).
    assert set(constants.LLAMA_CHAT_FORMATS) == set(LlamaChatCompletionHandlerRegistry()._chat_handlers)
    refused = llm_sidecar.post("/v1/settings/llm-config", json={"chat_format": "no-such-format"})
    assert refused.status_code == 422 and refused.json()["message"].startswith("chat_format: Input should be")
    assert llm_sidecar.get("/v1/settings/llm-config").json()["chat_format"] is None  # nothing changed


def test_stop_sequences_and_params_object(llm_sidecar):
    ensure_tiny(llm_sidecar)
    body = {"messages": [{"role": "user", "content": "hi"}], "params": {"max_tokens": 5, "temperature": 0.1}}
    reply = llm_sidecar.post("/v1/llm/chat-completions", json=body).json()
    assert reply["usage"]["completion_tokens"] == 5
    first = reply["choices"][0]["message"]["content"]
    stopped = llm_sidecar.post(
        "/v1/chat/completions",
        json={
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "temperature": 0.1,
            "seed": 1,
            "stop": [first[1]],
        },
    ).json()
    assert first[1] not in stopped["choices"][0]["message"]["content"]


def test_models_list(llm_sidecar, client):
    ids = [model.id for model in client.models.list()]
    assert "tiny" in ids and "broken" not in ids


# --- bad input: a clear 4xx, and the worker stays up ----------------------------------------


@pytest.mark.parametrize(
    "body, status_code, code",
    [
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404, "model_not_found"),
        ({"model": "broken", "messages": [{"role": "user", "content": "hi"}]}, 422, "invalid_model"),
        ({"model": "cut", "messages": [{"role": "user", "content": "hi"}]}, 422, "invalid_model"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}, 400, "invalid_request"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": -1}, 400, "invalid_request"),
        ({"model": "tiny", "messages": []}, 400, "invalid_request"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "word " * 2000}]}, 400, "context_overflow"),
    ],
)
def test_bad_requests_are_4xx_and_the_worker_stays_up(llm_sidecar, body, status_code, code):
    ensure_tiny(llm_sidecar)
    pid = llm_sidecar.get("/health").json()["workers"][0]["pid"]
    for stream in (False, True):
        response = llm_sidecar.post("/v1/chat/completions", json={**body, "stream": stream})
        assert response.status_code == status_code, response.text
        error = response.json()["error"]
        assert error["code"] == code and error["message"]
    after = llm_sidecar.get("/health").json()["workers"][0]
    assert after["pid"] == pid and after["state"] == "running"
    assert status(llm_sidecar)["state"] == "ready"


def test_openai_client_sees_the_error_message(llm_sidecar, client):
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert "nope" in str(raised.value)


# --- one generation at a time, a visible queue, abort ----------------------------------------


def open_stream(side, max_tokens: int = LONG):
    body = {"model": "tiny", "messages": [{"role": "user", "content": "go"}], "max_tokens": max_tokens, "stream": True}
    context = side.http.stream("POST", "/v1/chat/completions", json=body, headers=side.auth)
    response = context.__enter__()
    return context, response


def test_queue_position_and_queue_full(llm_sidecar):
    ensure_tiny(llm_sidecar)
    llm_sidecar.post("/v1/settings/llm-config", json={"max_queue": 1})
    try:
        first_ctx, first = open_stream(llm_sidecar)
        first_lines = first.iter_lines()
        assert next(line for line in first_lines if line.startswith("data:"))  # generating
        second_ctx, second = open_stream(llm_sidecar)
        assert second.status_code == 200
        second_lines = second.iter_lines()
        assert next(line for line in second_lines if "queue_position" in line) == ": queue_position 1"
        third = llm_sidecar.post(
            "/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}]}
        )
        assert third.status_code == 503 and int(third.headers["retry-after"]) > 0
        assert third.json()["error"]["code"] == "queue_full"
        assert status(llm_sidecar)["queue_length"] == 1
        # the queued stream runs once the first one is done
        rest = "\n".join(second_lines)
        assert "[DONE]" in rest and '"content"' in rest
        first_ctx.__exit__(None, None, None)
        second_ctx.__exit__(None, None, None)
    finally:
        llm_sidecar.post("/v1/settings/llm-config", json={"max_queue": 8})


def test_abort_stream_by_request_id(llm_sidecar):
    ensure_tiny(llm_sidecar)
    context, response = open_stream(llm_sidecar)
    request_id = response.headers["x-request-id"]
    lines = response.iter_lines()
    received = 0
    for line in lines:
        if line.startswith("data: {") and '"content"' in line:
            received += 1
            if received == 3:
                assert llm_sidecar.post("/v1/llm/abort-stream", json={"request_id": request_id}).json() == {
                    "aborted": True
                }
                break
    rest = [line for line in lines if line.startswith("data:")]
    context.__exit__(None, None, None)
    assert rest[-1] == "data: [DONE]"
    assert received + sum('"content"' in line for line in rest) < LONG
    assert not status(llm_sidecar)["generating"]


def test_client_disconnect_stops_generation(llm_sidecar):
    ensure_tiny(llm_sidecar)
    before = llm_sidecar.get("/v1/llm/server/logs").json()
    context, response = open_stream(llm_sidecar)
    lines = response.iter_lines()
    next(line for line in lines if '"content"' in line)
    context.__exit__(None, None, None)
    deadline = time.monotonic() + 3
    while status(llm_sidecar)["generating"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not status(llm_sidecar)["generating"]
    # the next request is served at once: nothing was left running
    reply = llm_sidecar.post(
        "/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    )
    assert reply.status_code == 200
    assert isinstance(before["lines"], list)


# --- model management -----------------------------------------------------------------------


def test_switch_model_and_failed_switch_keeps_the_old_one(llm_sidecar):
    ensure_tiny(llm_sidecar)
    switched = llm_sidecar.post("/v1/llm/server/switch-model", json={"model": "tiny-b"})
    assert switched.status_code == 200 and switched.json()["model"] == "tiny-b"
    bare = llm_sidecar.post("/v1/llm/server/switch-model", json={"model": "bare"})
    assert bare.status_code == 200 and bare.json()["chat_format"] == "llama-2"
    failed = llm_sidecar.post("/v1/llm/server/switch-model", json={"model": "broken"})
    assert failed.status_code == 422 and "broken" in failed.json()["message"]
    assert status(llm_sidecar)["model"] == "bare" and status(llm_sidecar)["state"] == "ready"
    # a well-formed GGUF that llama.cpp refuses (unknown architecture): the worker's load fails
    write_unloadable_gguf(llm_sidecar.data_dir / "models" / "alien.gguf")
    refused = llm_sidecar.post("/v1/llm/server/switch-model", json={"model": "alien"})
    assert refused.status_code == 422 and refused.json()["code"] == "model_load_failed"
    assert "bare is still loaded" in refused.json()["message"]
    assert status(llm_sidecar)["model"] == "bare" and status(llm_sidecar)["state"] == "ready"
    reply = llm_sidecar.post(
        "/v1/chat/completions", json={"model": "local", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    )
    assert reply.status_code == 200 and reply.json()["model"] == "bare"
    ensure_tiny(llm_sidecar)


def test_switch_during_a_generation_waits_for_it(llm_sidecar):
    ensure_tiny(llm_sidecar)
    context, response = open_stream(llm_sidecar)
    lines = response.iter_lines()
    next(line for line in lines if '"content"' in line)
    result = {}
    switcher = threading.Thread(
        target=lambda: result.update(r=llm_sidecar.post("/v1/llm/server/switch-model", json={"model": "tiny-b"}))
    )
    switcher.start()
    rest = "\n".join(lines)
    switcher.join(20)
    context.__exit__(None, None, None)
    assert rest.rstrip().endswith("data: [DONE]") and '"error"' not in rest  # the stream in flight finished
    assert result["r"].status_code == 200 and status(llm_sidecar)["model"] == "tiny-b"
    ensure_tiny(llm_sidecar)


def test_switch_mmproj_answers_clearly(llm_sidecar):
    missing = llm_sidecar.post("/v1/llm/server/switch-mmproj", json={"path": "nope.gguf"})
    assert missing.status_code == 404
    not_clip = llm_sidecar.post("/v1/llm/server/switch-mmproj", json={"path": "tiny-b.gguf"})
    assert not_clip.status_code == 422 and "not a projector" in not_clip.json()["message"]


def test_a_multimodal_chat_format_without_a_projector_is_refused_at_load(llm_sidecar):
    ensure_tiny(llm_sidecar)
    assert llm_sidecar.post("/v1/settings/llm-config", json={"chat_format": "llava-1-5"}).status_code == 200
    try:
        refused = llm_sidecar.post("/v1/llm/server/switch-model", json={"model": "tiny-b"})
        assert refused.status_code == 422 and refused.json()["code"] == "mmproj_required", refused.text
        assert status(llm_sidecar)["model"] == "tiny"  # the loaded model keeps serving
        chat = llm_sidecar.post(
            "/v1/chat/completions", json={"model": "tiny-b", "messages": [{"role": "user", "content": "x"}]}
        )
        assert chat.status_code == 422 and chat.json()["error"]["code"] == "mmproj_required"
    finally:
        llm_sidecar.post("/v1/settings/llm-config", json={"chat_format": None})


def test_messages_a_chat_template_cannot_render_are_a_400(llm_sidecar):
    # A template that reads a field these messages lack (as tool-call templates do): jinja2 fails.
    strict = llm_sidecar.data_dir / "models" / "strict.gguf"
    write_tiny_llama_gguf(
        strict, chat_template="{% for m in messages %}{{ m['content'] }}{{ m.tool_calls[0].id }}{% endfor %}"
    )
    llm_sidecar.post("/v1/llm/catalog/refresh")
    try:
        for stream in (False, True):
            body = {"model": "strict", "messages": [{"role": "user", "content": "x"}], "stream": stream}
            answer = llm_sidecar.post("/v1/chat/completions", json=body)
            assert answer.status_code == 400, answer.text
            error = answer.json()["error"]
            assert error["code"] == "invalid_request" and "chat template refused these messages" in error["message"]
        assert "Traceback" not in llm_sidecar.stderr_text().split("strict")[-1]
    finally:
        strict.unlink()
        llm_sidecar.post("/v1/llm/catalog/refresh")
        ensure_tiny(llm_sidecar)


def test_stop_and_start(llm_sidecar):
    ensure_tiny(llm_sidecar)
    assert llm_sidecar.post("/v1/llm/server/stop").json()["state"] in ("stopped", "ready")
    deadline = time.monotonic() + 5
    while status(llm_sidecar)["state"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert status(llm_sidecar)["state"] == "stopped" and status(llm_sidecar)["model"] is None
    refused = llm_sidecar.post(
        "/v1/chat/completions", json={"model": "local", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
    )
    assert refused.status_code == 200  # "local" loads the configured model on demand
    assert status(llm_sidecar)["model"] == "tiny"


def test_logs_and_settings(llm_sidecar):
    lines = llm_sidecar.get("/v1/llm/server/logs", params={"limit": 50}).json()["lines"]
    assert any("loaded tiny" in line["message"] for line in lines)
    config = llm_sidecar.get("/v1/settings/llm-config").json()
    assert config["model"] == "tiny" and config["n_ctx"] >= 256
    bad = llm_sidecar.post("/v1/settings/llm-config", json={"n_ctx": 10})
    assert bad.status_code == 422 and "n_ctx" in bad.json()["message"]
    unknown = llm_sidecar.post("/v1/settings/llm-config", json={"colour": "blue"})
    assert unknown.status_code == 422
    saved = json.loads((llm_sidecar.data_dir / "llm-config.json").read_text())
    assert saved["model"] == "tiny"


# --- the Miso face on the local model -------------------------------------------------------


def test_miso_chat_on_the_local_model(llm_sidecar):
    ensure_tiny(llm_sidecar)
    events = llm_sidecar.stream_chat({"message": "hi", "options": {"model": "local:tiny-b", "maxTokens": 4}})
    assert [name for name, _ in events] == ["meta", "token", "token", "token", "token", "done"]
    assert events[0][1]["model"] == "local:tiny-b"
    assert events[-1][1]["usage"]["completion_tokens"] == 4
    assert status(llm_sidecar)["model"] == "tiny-b"  # loaded on demand
    catalog = llm_sidecar.get("/models/catalog").json()
    assert "tiny" in catalog["providers"]["local"] and "broken" not in catalog["providers"]["local"]
    assert llm_sidecar.http.get("/health").json()["model"].startswith("local:")
    ensure_tiny(llm_sidecar)


# --- crashes ---------------------------------------------------------------------------------


def test_a_worker_killed_mid_stream_ends_the_stream_and_restarts(llm_sidecar):
    ensure_tiny(llm_sidecar)
    worker = llm_sidecar.get("/health").json()["workers"][0]
    context, response = open_stream(llm_sidecar)
    lines = response.iter_lines()
    next(line for line in lines if '"content"' in line)
    os.kill(worker["pid"], signal.SIGKILL)
    rest = [line for line in lines if line.startswith("data:")]
    context.__exit__(None, None, None)
    assert '"worker_crashed"' in rest[-2] and rest[-1] == "data: [DONE]"
    health = llm_sidecar.get("/health").json()["workers"][0]
    assert health["restarts"] >= worker["restarts"]
    deadline = time.monotonic() + 15
    while (status(llm_sidecar)["state"] != "ready") and time.monotonic() < deadline:
        time.sleep(0.1)
    after = llm_sidecar.get("/v1/status").json()
    assert after["workers"][0]["restarts"] == worker["restarts"] + 1
    assert after["workers"][0]["last_exit_code"] == -signal.SIGKILL
    assert after["llm"]["state"] == "ready" and after["llm"]["model"] == "tiny"  # reloaded


def test_miso_stream_on_a_crashing_worker_gets_an_error_event(llm_sidecar):
    ensure_tiny(llm_sidecar)
    pid = llm_sidecar.get("/health").json()["workers"][0]["pid"]
    events = []
    with llm_sidecar.http.stream(
        "POST",
        "/chat/stream",
        json={"message": "go", "options": {"model": "local:tiny", "maxTokens": LONG}},
        headers=llm_sidecar.auth,
    ) as response:
        for event, data in parse_sse(response.iter_lines()):
            events.append((event, data))
            if event == "token" and len(events) == 3:
                os.kill(pid, signal.SIGKILL)
    assert events[-1][0] == "error" and events[-1][1]["code"] == "provider_unavailable"
    deadline = time.monotonic() + 15
    while status(llm_sidecar)["state"] != "ready" and time.monotonic() < deadline:
        time.sleep(0.1)


def test_killing_the_server_leaves_no_worker(tmp_path):
    side = Sidecar(tmp_path)
    worker_pid = side.get("/health").json()["workers"][0]["pid"]
    deadline = time.monotonic() + 10
    while worker_pid is None and time.monotonic() < deadline:
        time.sleep(0.1)
        worker_pid = side.get("/health").json()["workers"][0]["pid"]
    assert alive(worker_pid)
    side.proc.kill()
    side.proc.wait()
    deadline = time.monotonic() + 2.0
    while alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(worker_pid)


def test_clean_shutdown_stops_workers(tmp_path):
    side = Sidecar(tmp_path)
    worker_pid = side.get("/health").json()["workers"][0]["pid"]
    began = time.monotonic()
    assert side.terminate() == 0
    assert time.monotonic() - began < 5
    assert not alive(worker_pid)


# --- downloads --------------------------------------------------------------------------------


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output quiet
        pass


def test_download_then_serve(llm_sidecar, tmp_path):
    source = tmp_path / "served"
    source.mkdir()
    write_tiny_llama_gguf(source / "fresh.gguf", seed=5)
    digest = hashlib.sha256((source / "fresh.gguf").read_bytes()).hexdigest()
    handler = lambda *a, **k: _Files(*a, directory=str(source), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/fresh.gguf"
        started = llm_sidecar.post("/v1/llm/download/start", json={"url": url, "sha256": digest})
        assert started.status_code == 202
        download_id = started.json()["id"]
        deadline = time.monotonic() + 10
        state = None
        while time.monotonic() < deadline:
            downloads = llm_sidecar.get("/v1/llm/downloads").json()["downloads"]
            state = next(d for d in downloads if d["id"] == download_id)["state"]
            if state in ("completed", "failed"):
                break
            time.sleep(0.05)
        assert state == "completed"
        ids = [m["id"] for m in llm_sidecar.post("/v1/llm/catalog/refresh").json()["models"]]
        assert "fresh" in ids
        reply = llm_sidecar.post(
            "/v1/chat/completions",
            json={"model": "fresh", "messages": [{"role": "user", "content": "x"}], "max_tokens": 3},
        )
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] == 3
        duplicate = llm_sidecar.post("/v1/llm/download/start", json={"url": url})
        assert duplicate.status_code == 409
        assert llm_sidecar.post("/v1/llm/download/delete", json={"id": download_id}).json() == {"ok": True}
        assert not (llm_sidecar.data_dir / "models" / "fresh.gguf").exists()
        bad = llm_sidecar.post("/v1/llm/download/start", json={"url": url, "file_name": "../evil.gguf"})
        assert bad.status_code == 400
    finally:
        server.shutdown()
        ensure_tiny(llm_sidecar)


def test_amx_buffers_can_be_turned_off():
    """The worker's guard against llama.cpp's crashing AMX kernels really changes the load parameters."""
    import subprocess
    import sys

    code = (
        "import llama_cpp; from workers.llm_worker import _avoid_amx_matmul;"
        "assert llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts;"
        "_avoid_amx_matmul(llama_cpp); _avoid_amx_matmul(llama_cpp);"
        "assert not llama_cpp.llama_cpp.llama_model_default_params().use_extra_bufts; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.strip() == "ok", result.stderr

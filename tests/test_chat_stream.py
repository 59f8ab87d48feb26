"""POST /chat/stream end to end: real sidecar, official client libraries, loopback stand-ins."""

from __future__ import annotations

import concurrent.futures
import socket
import time

import httpx
import pytest

from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.sidecar import parse_sse
from tests.standins import Script
from tests.ws_client import JsonSocket


def header(recorded, name: str) -> str | None:
    return {key.lower(): value for key, value in recorded.headers.items()}.get(name)


def events_named(events, name):
    return [data for event, data in events if event == name]


def text_of(events) -> str:
    return "".join(data["delta"] for data in events_named(events, "token"))


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_every_event_of_the_contract_in_order(sidecar, provider, request):
    standin = request.getfixturevalue(f"{provider}_standin")
    standin.script = Script(tokens=["The", " answer", " is", " 42."], prompt_tokens=17)
    model = standin.models[0]
    events = sidecar.stream_chat({"message": "What is the answer?", "options": {"provider": provider, "model": model}})

    names = [name for name, _ in events]
    assert names[0] == "meta" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    meta = events[0][1]
    assert meta["model"] == f"{provider}:{model}"
    assert isinstance(meta["started_at"], int) and abs(meta["started_at"] / 1000 - time.time()) < 60
    assert text_of(events) == "The answer is 42."
    done = events[-1][1]
    assert done["thread_id"] == meta["thread_id"]
    assert done["finished_at"] >= meta["started_at"]
    usage = done["usage"]
    assert usage["prompt_tokens"] == 17
    assert usage["completion_tokens"] == 4
    assert usage["completion_chars"] == len("The answer is 42.")
    assert usage["ttft_ms"] >= 0 and usage["tokens_per_s"] > 0


def test_request_reaches_the_provider_as_sent(sidecar, openai_standin):
    sidecar.stream_chat(
        {
            "message": "hello",
            "history": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hey"},
            ],
            "options": {"model": "openai:gpt-x", "temperature": 0.3, "maxTokens": 55},
        }
    )
    sent = openai_standin.last_request_json
    assert sent["model"] == "gpt-x"
    assert sent["temperature"] == 0.3
    assert sent["max_completion_tokens"] == 55
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == "hello"
    assert header(openai_standin.last_request, "authorization") == f"Bearer {OPENAI_KEY}"


def test_anthropic_gets_system_prompt_and_max_tokens(sidecar, anthropic_standin):
    sidecar.stream_chat(
        {
            "message": "hi",
            "history": [{"role": "system", "content": "be kind"}],
            "options": {"provider": "anthropic", "model": "claude-x", "max_tokens": 99, "temperature": 0.5},
        }
    )
    sent = anthropic_standin.last_request_json
    assert sent["system"] == "be kind"
    assert sent["max_tokens"] == 99
    assert "temperature" not in sent  # the Messages API no longer takes it
    assert all(m["role"] != "system" for m in sent["messages"])
    # The client sends the key as x-api-key or, in newer versions, as a bearer token.
    sent_key = header(anthropic_standin.last_request, "x-api-key") or header(
        anthropic_standin.last_request, "authorization"
    )
    assert sent_key in {ANTHROPIC_KEY, f"Bearer {ANTHROPIC_KEY}"}


@pytest.mark.parametrize(
    "options, expected",
    [
        ({"modelId": "anthropic:claude-a", "provider": "ollama", "model": "llama"}, "anthropic:claude-a"),
        ({"model_id": "ollama:qwen:7b"}, "ollama:qwen:7b"),
        ({"provider": "ollama", "model": "deepseek-r1:14b"}, "ollama:deepseek-r1:14b"),
        ({"model": "anthropic:claude-b"}, "anthropic:claude-b"),
        ({"model": "phi3:mini"}, "openai:phi3:mini"),
        ({}, "openai:gpt-test"),
    ],
)
def test_model_selection_precedence(sidecar, options, expected):
    events = sidecar.stream_chat({"message": "hi", "options": options})
    assert events[0][1]["model"] == expected


def test_thread_id_aliases_and_continuation(sidecar, openai_standin):
    first = sidecar.stream_chat({"message": "my name is Ada"})
    thread_id = first[0][1]["thread_id"]
    assert thread_id

    openai_standin.script = Script(tokens=["Ada", "!"])
    second = sidecar.stream_chat({"message": "what is my name?", "thread_id": thread_id})
    assert second[0][1]["thread_id"] == thread_id
    sent = openai_standin.last_request_json["messages"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "my name is Ada"),
        ("assistant", "Hello, world!"),
        ("user", "what is my name?"),
    ]
    third = sidecar.stream_chat({"message": "and again?", "threadId": thread_id})
    assert third[-1][1]["thread_id"] == thread_id
    assert len(openai_standin.last_request_json["messages"]) == 5


def test_client_named_thread_is_created(sidecar):
    events = sidecar.stream_chat({"message": "hi", "threadId": "my-own-thread-1"})
    assert events[0][1]["thread_id"] == "my-own-thread-1"


def test_per_request_key_wins_and_is_not_stored(sidecar, openai_standin):
    openai_standin.script = Script(required_api_key="sk-request-only")
    refused = sidecar.stream_chat({"message": "hi"})
    assert events_named(refused, "error")[0]["code"] == "provider_auth"
    events = sidecar.stream_chat({"message": "hi", "options": {"openaiApiKey": "sk-request-only"}})
    assert events[-1][0] == "done"
    assert header(openai_standin.last_request, "authorization") == "Bearer sk-request-only"
    database = (sidecar.data_dir / "miso.db").read_bytes()
    log = b"".join(p.read_bytes() for p in (sidecar.data_dir / "logs").glob("*"))
    assert b"sk-request-only" not in database and b"sk-request-only" not in log


HTTP_ERROR_CASES = [
    (provider, status, code)
    for provider in ("openai", "anthropic", "ollama")
    for status, code in (
        (401, "provider_auth"),
        (429, "rate_limited"),
        (500, "provider_unavailable"),
        (404, "provider_error"),
    )
    if not (provider == "ollama" and status == 401)  # Ollama has no API keys
]


@pytest.mark.parametrize("provider, status, code", HTTP_ERROR_CASES)
def test_provider_http_errors_become_error_events(sidecar, request, provider, status, code):
    standin = request.getfixturevalue(f"{provider}_standin")
    standin.script = Script(http_error=status)
    events = sidecar.stream_chat({"message": "hi", "options": {"provider": provider, "model": standin.models[0]}})
    assert [name for name, _ in events] == ["meta", "error"]
    assert events[1][1]["code"] == code
    assert events[1][1]["message"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_mid_stream_provider_error_is_an_error_event(sidecar, request, provider):
    standin = request.getfixturevalue(f"{provider}_standin")
    standin.script = Script(tokens=["a", "b", "c", "d"], error_after_tokens=2, ping_every=1)
    events = sidecar.stream_chat({"message": "hi", "options": {"provider": provider, "model": standin.models[0]}})
    names = [name for name, _ in events]
    assert names == ["meta", "token", "token", "error"]
    assert events[-1][1]["code"] in {"provider_error", "provider_unavailable"}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "ollama"])
def test_dropped_connection_is_stream_failed(sidecar, request, provider):
    standin = request.getfixturevalue(f"{provider}_standin")
    standin.script = Script(tokens=["a", "b", "c"], drop_after_tokens=1)
    events = sidecar.stream_chat({"message": "hi", "options": {"provider": provider, "model": standin.models[0]}})
    assert events[-1][0] == "error"
    assert events[-1][1]["code"] in {"stream_failed", "provider_unavailable"}


def test_unreachable_provider_is_provider_unavailable(tmp_path):
    from tests.sidecar import Sidecar

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    side = Sidecar(tmp_path, env={"MISO_OLLAMA_HOST": f"http://127.0.0.1:{dead_port}"})
    try:
        events = side.stream_chat({"message": "hi", "options": {"provider": "ollama", "model": "x"}})
        assert events[-1] == ("error", events[-1][1]) and events[-1][1]["code"] == "provider_unavailable"
    finally:
        side.terminate()


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"message": "   "}, 400, "invalid_request"),
        ({}, 400, "invalid_request"),
        ({"message": "hi", "options": {"provider": "mistral"}}, 400, "unknown_provider"),
        ({"message": "hi", "options": {"modelId": "nope:model"}}, 400, "unknown_provider"),
    ],
)
def test_errors_known_before_streaming_are_http_errors(sidecar, body, status, code):
    response = sidecar.post("/chat/stream", json=body)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == code


def test_empty_message_has_the_contract_message(sidecar):
    response = sidecar.post("/chat/stream", json={"message": ""})
    assert response.json() == {"error": {"code": "invalid_request", "message": "message is required"}}


def test_missing_key_is_a_4xx_before_streaming(tmp_path):
    from tests.sidecar import Sidecar

    side = Sidecar(tmp_path)
    try:
        response = side.post("/chat/stream", json={"message": "hi", "options": {"provider": "anthropic", "model": "c"}})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "missing_api_key"
        assert "anthropic" in response.json()["error"]["message"]
    finally:
        side.terminate()


def test_disconnect_closes_the_upstream_request(sidecar, openai_standin):
    openai_standin.script = Script(tokens=["tok"] * 200, token_delay_s=0.05)
    with httpx.Client(base_url=sidecar.base_url, timeout=10) as client:
        with client.stream("POST", "/chat/stream", json={"message": "long story"}, headers=sidecar.auth) as response:
            lines = response.iter_lines()
            seen = 0
            for event, _data in parse_sse(lines):
                if event == "token":
                    seen += 1
                if seen == 3:
                    break
        left_at = time.monotonic()
    assert openai_standin.wait_for_disconnect(timeout=2.0)
    assert time.monotonic() - left_at < 1.0
    assert openai_standin.completed_streams == 0


def test_disconnect_during_silent_upstream_closes_it(sidecar, openai_standin):
    """The upstream has sent nothing yet: no write to the client can fail, the socket watch must notice."""
    openai_standin.script = Script(tokens=["late"], first_token_delay_s=5.0)
    with httpx.Client(base_url=sidecar.base_url, timeout=10) as client:
        with client.stream("POST", "/chat/stream", json={"message": "slow"}, headers=sidecar.auth) as response:
            events = parse_sse(response.iter_lines())  # kept referenced: collecting it closes the response
            for event, _data in events:
                if event == "meta":
                    break
            deadline = time.monotonic() + 5
            while openai_standin.active_streams == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert openai_standin.active_streams == 1  # the upstream request is open and silent
        left_at = time.monotonic()
    assert openai_standin.wait_for_disconnect(timeout=2.0)
    assert time.monotonic() - left_at < 1.0


def test_cut_off_reply_is_stored_as_such_and_continues_history(sidecar, openai_standin):
    openai_standin.script = Script(tokens=["part", "ial", " reply"] + ["x"] * 100, token_delay_s=0.05)
    with httpx.Client(base_url=sidecar.base_url, timeout=10) as client:
        with client.stream("POST", "/chat/stream", json={"message": "tell me"}, headers=sidecar.auth) as response:
            thread_id = None
            seen = 0
            for event, data in parse_sse(response.iter_lines()):
                if event == "meta":
                    thread_id = data["thread_id"]
                if event == "token":
                    seen += 1
                if seen == 2:
                    break
    assert openai_standin.wait_for_disconnect(timeout=2.0)
    time.sleep(0.3)
    openai_standin.script = Script()
    sidecar.stream_chat({"message": "go on", "threadId": thread_id})
    sent = openai_standin.last_request_json["messages"]
    assert sent[0] == {"role": "user", "content": "tell me"}
    assert sent[1]["role"] == "assistant" and sent[1]["content"].startswith("partial")

    import sqlite3

    with sqlite3.connect(sidecar.data_dir / "miso.db") as db:
        statuses = db.execute(
            "SELECT role, status FROM messages WHERE thread_id = ? ORDER BY seq", [thread_id]
        ).fetchall()
    assert statuses[:2] == [("user", "complete"), ("assistant", "cancelled")]


def test_fifty_concurrent_streams_all_complete(sidecar, openai_standin):
    openai_standin.script = Script(tokens=[f"t{i} " for i in range(20)], token_delay_s=0.01)

    def one(index: int) -> str:
        events = sidecar.stream_chat({"message": f"stream {index}"})
        assert events[-1][0] == "done", events[-1]
        return text_of(events)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        texts = list(pool.map(one, range(50)))
    assert texts == ["".join(f"t{i} " for i in range(20))] * 50
    assert openai_standin.peak_active_streams >= 10  # they really ran side by side


def test_sse_headers_and_ids(sidecar):
    with sidecar.http.stream("POST", "/chat/stream", json={"message": "hi"}, headers=sidecar.auth) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        raw = response.read().decode()
    assert raw.startswith(":")
    ids = [int(line[3:]) for line in raw.splitlines() if line.startswith("id:")]
    assert ids == list(range(1, len(ids) + 1))


def test_chat_events_are_published_on_the_event_socket(sidecar):
    ws = JsonSocket(sidecar.port, f"/v1/events?token={sidecar.token}")
    try:
        first = ws.wait_messages(lambda messages: messages and messages[0], timeout=5)
        assert first["type"] == "status" and set(first) == {"type", "ts_unix_ms", "correlation_id", "payload"}
        events = sidecar.stream_chat({"message": "hi"})
        thread_id = events[0][1]["thread_id"]

        def states(messages):
            found = [
                m["payload"]["state"]
                for m in messages
                if m["type"] == "chat:stream" and m["payload"]["thread_id"] == thread_id
            ]
            return found if len(found) >= 2 else None

        assert ws.wait_messages(states, timeout=5) == ["started", "complete"]
    finally:
        ws.close()


def test_upstream_connection_is_reused_between_streams(sidecar, openai_standin):
    for _ in range(3):
        assert sidecar.stream_chat({"message": "hi"})[-1][0] == "done"
    ports = {r.client_port for r in openai_standin.requests if r.path == "/v1/chat/completions"}
    assert len(ports) == 1

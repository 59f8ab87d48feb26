"""The provider stand-ins, driven by the official client libraries as the runtime drives them.

Each test asserts what a caller of ``openai``, ``anthropic`` or ``ollama`` would see, so a wire
format mistake in a stand-in shows up here rather than as a confusing failure elsewhere.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx
import httpx2
import ollama
import openai
import pytest

from tests.standins import (
    AnthropicStandIn,
    OllamaStandIn,
    OpenAIStandIn,
    Script,
    ScriptedToolCall,
    StandInServer,
    StreamOutcome,
    Turn,
)

USER = [{"role": "user", "content": "Say hello"}]
TOKENS = ["Hello", ",", " world", "!"]
CLAUDE = "claude-haiku-4-5-20251001"


# One stand-in of each kind per module, reset before each test that uses it, and one client per
# stand-in and key: starting servers and building clients would otherwise dominate the run.


@pytest.fixture(scope="module")
def _openai_module() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def _anthropic_module() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture(scope="module")
def _ollama_module() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as server:
        yield server


@pytest.fixture
def openai_server(_openai_module: OpenAIStandIn) -> OpenAIStandIn:
    _openai_module.reset()
    return _openai_module


@pytest.fixture
def anthropic_server(_anthropic_module: AnthropicStandIn) -> AnthropicStandIn:
    _anthropic_module.reset()
    return _anthropic_module


@pytest.fixture
def ollama_server(_ollama_module: OllamaStandIn) -> OllamaStandIn:
    _ollama_module.reset()
    return _ollama_module


@functools.cache
def openai_client(server: OpenAIStandIn, api_key: str = "sk-test") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=10)


@functools.cache
def anthropic_client(server: AnthropicStandIn, api_key: str = "sk-ant-test") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=api_key, max_retries=0, timeout=10)


@functools.cache
def ollama_client(server: OllamaStandIn) -> ollama.Client:
    return ollama.Client(host=server.host, timeout=10)


# -- OpenAI ------------------------------------------------------------------------------------


def test_openai_stream_yields_role_tokens_and_stop(openai_server: OpenAIStandIn) -> None:
    client = openai_client(openai_server)
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True, temperature=0.2, max_tokens=64)
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == TOKENS
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert {c.model for c in chunks} == {"gpt-4o-mini"}
    sent = openai_server.last_request_json
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == USER
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 64
    assert sent["stream"] is True
    assert openai_server.requests[-1].path == "/v1/chat/completions"
    assert openai_server.wait_for_streams(1, timeout=2)
    assert openai_server.completed_streams == 1


def test_openai_stream_include_usage_ends_with_usage_chunk(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(tokens=["a", "b", "c"], prompt_tokens=7, completion_tokens=5)
    chunks = list(
        openai_client(openai_server).chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )

    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (7, 5)
    assert chunks[-1].usage.total_tokens == 12
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert openai_server.last_request_json["stream_options"] == {"include_usage": True}


def test_openai_stream_wire_format_is_chunked_sse_ending_in_done(openai_server: OpenAIStandIn) -> None:
    body = {"model": "gpt-4o-mini", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", f"{openai_server.base_url}/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [line for line in response.iter_lines() if line]

    assert all(line.startswith("data: ") for line in lines)
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    for chunk in chunks:
        assert {"id", "object", "created", "model", "system_fingerprint", "choices", "usage"} <= chunk.keys()
        assert chunk["object"] == "chat.completion.chunk"
    for chunk in chunks[:-1]:
        assert chunk["usage"] is None
        assert chunk["choices"][0].keys() == {"index", "delta", "logprobs", "finish_reason"}
    assert chunks[-2]["choices"][0]["delta"] == {}


def test_openai_non_streaming_completion(openai_server: OpenAIStandIn) -> None:
    completion = openai_client(openai_server).chat.completions.create(model="gpt-4o", messages=USER)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (11, 4)
    assert openai_server.stream_outcomes == []


def test_openai_models_list(openai_server: OpenAIStandIn) -> None:
    client = openai_client(openai_server)
    assert [m.id for m in client.models.list()] == list(OpenAIStandIn.default_models)

    openai_server.script = Script(models=["gpt-test-1"])
    models = list(client.models.list())
    assert [(m.id, m.object) for m in models] == [("gpt-test-1", "model")]
    assert models[0].owned_by


@pytest.mark.parametrize(
    ("status", "error_type", "code"),
    [
        (401, openai.AuthenticationError, "invalid_api_key"),
        (404, openai.NotFoundError, "model_not_found"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
def test_openai_http_errors(
    openai_server: OpenAIStandIn, status: int, error_type: type[openai.APIStatusError], code: str | None
) -> None:
    openai_server.script = Script(http_error=status)
    with pytest.raises(error_type) as caught:
        openai_client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)

    assert caught.value.status_code == status
    assert caught.value.code == code
    assert caught.value.message
    assert openai_server.stream_outcomes == []


def test_openai_required_api_key(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(required_api_key="sk-right")
    with pytest.raises(openai.AuthenticationError):
        openai_client(openai_server, api_key="sk-wrong").models.list()

    reply = openai_client(openai_server, api_key="sk-right").chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert reply.choices[0].message.content == "Hello, world!"
    assert openai_server.requests[-1].headers["authorization"] == "Bearer sk-right"


def test_openai_mid_stream_error_raises_api_error(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(error_after_tokens=2)
    received: list[str | None] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in openai_client(openai_server).chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True
        ):
            received.append(chunk.choices[0].delta.content)

    assert not isinstance(caught.value, openai.APIStatusError)
    assert caught.value.type == "server_error"
    assert received == ["", "Hello", ","]
    assert openai_server.wait_for_streams(1, timeout=2)
    assert openai_server.stream_outcomes == [StreamOutcome.ERRORED]


def test_openai_dropped_connection_raises_connection_error(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(drop_after_tokens=1)
    received: list[str | None] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in openai_client(openai_server).chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True
        ):
            received.append(chunk.choices[0].delta.content)

    assert received == ["", "Hello"]
    assert openai_server.stream_outcomes == [StreamOutcome.DROPPED]


@pytest.mark.parametrize(
    ("script", "error_type"),
    [
        (Script(error_after_tokens=1), openai.InternalServerError),
        (Script(drop_after_tokens=1), openai.APIConnectionError),
    ],
)
def test_openai_non_streaming_failures(
    openai_server: OpenAIStandIn, script: Script, error_type: type[openai.APIError]
) -> None:
    openai_server.script = script
    with pytest.raises(error_type):
        openai_client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=USER)


def test_openai_async_client_streams(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(tokens=TOKENS, token_delay_s=0.005)

    async def collect() -> list[str]:
        async with openai.AsyncOpenAI(base_url=openai_server.base_url, api_key="sk", max_retries=0) as client:
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
            return [c.choices[0].delta.content async for c in stream if c.choices[0].delta.content]

    assert asyncio.run(collect()) == TOKENS


# -- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_messages_stream_helper(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(tokens=TOKENS, prompt_tokens=21)
    client = anthropic_client(anthropic_server)
    with client.messages.stream(model=CLAUDE, max_tokens=256, messages=USER, system="Be brief.") as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()

    assert texts == TOKENS
    assert final.content[0].type == "text"
    assert final.content[0].text == "Hello, world!"
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (21, 4)
    assert final.model == CLAUDE
    sent = anthropic_server.last_request_json
    assert (sent["model"], sent["max_tokens"], sent["system"], sent["stream"]) == (CLAUDE, 256, "Be brief.", True)
    assert sent["messages"] == USER
    # This SDK version sends the API key as a Bearer token, not x-api-key.
    assert anthropic_server.requests[-1].headers["authorization"] == "Bearer sk-ant-test"


def test_anthropic_create_stream_event_sequence(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(tokens=["a", "b"], ping_every=1)
    events = list(
        anthropic_client(anthropic_server).messages.create(model=CLAUDE, max_tokens=16, messages=USER, stream=True)
    )

    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, delta = events[0], events[-2]
    assert start.type == "message_start" and start.message.usage.output_tokens == 1
    assert delta.type == "message_delta" and delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 2


def test_anthropic_wire_format_has_event_lines_and_pings(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(tokens=["a", "b", "c", "d"], ping_every=2)
    body = {"model": CLAUDE, "max_tokens": 16, "messages": USER, "stream": True}
    with httpx.stream("POST", f"{anthropic_server.base_url}/v1/messages", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]

    names = [line.removeprefix("event: ") for line in lines[0::2]]
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines[1::2]]
    assert all(line.startswith("event: ") for line in lines[0::2])
    assert [p["type"] for p in payloads] == names
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names.count("ping") == 3  # the opening one, then after tokens 2 and 4
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_non_streaming_message(anthropic_server: AnthropicStandIn) -> None:
    message = anthropic_client(anthropic_server).messages.create(model=CLAUDE, max_tokens=32, messages=USER)

    assert message.type == "message"
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello, world!"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 4)


def test_anthropic_models_list(anthropic_server: AnthropicStandIn) -> None:
    models = list(anthropic_client(anthropic_server).models.list())

    assert [m.id for m in models] == list(AnthropicStandIn.default_models)
    assert models[0].display_name == "Claude Sonnet 4.5"
    assert models[0].created_at.year == 2025
    assert anthropic_server.requests[-1].path == "/v1/models"


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (401, anthropic.AuthenticationError, "authentication_error"),
        (404, anthropic.NotFoundError, "not_found_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.InternalServerError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
def test_anthropic_http_errors(
    anthropic_server: AnthropicStandIn, status: int, error_type: type[anthropic.APIStatusError], kind: str
) -> None:
    anthropic_server.script = Script(http_error=status)
    with pytest.raises(error_type) as caught:
        with anthropic_client(anthropic_server).messages.stream(model=CLAUDE, max_tokens=8, messages=USER) as stream:
            stream.until_done()

    assert caught.value.status_code == status
    assert caught.value.type == kind


def test_anthropic_required_api_key(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(required_api_key="sk-ant-right")
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(anthropic_server, api_key="sk-ant-wrong").messages.create(
            model=CLAUDE, max_tokens=8, messages=USER
        )

    message = anthropic_client(anthropic_server, api_key="sk-ant-right").messages.create(
        model=CLAUDE, max_tokens=8, messages=USER
    )
    assert message.content[0].type == "text"
    # Raw callers send the key the way the API documents it.
    raw = httpx.get(f"{anthropic_server.base_url}/v1/models", headers={"x-api-key": "sk-ant-right"})
    assert raw.status_code == 200


def test_anthropic_mid_stream_error_raises_in_both_apis(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(error_after_tokens=2)
    client = anthropic_client(anthropic_server)

    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model=CLAUDE, max_tokens=8, messages=USER) as stream:
            texts.extend(stream.text_stream)
    assert texts == ["Hello", ","]
    assert (caught.value.status_code, caught.value.type) == (200, "overloaded_error")

    with pytest.raises(anthropic.APIStatusError) as caught:
        for _ in client.messages.create(model=CLAUDE, max_tokens=8, messages=USER, stream=True):
            pass
    assert caught.value.type == "overloaded_error"
    assert anthropic_server.wait_for_streams(2, timeout=2)
    assert anthropic_server.stream_outcomes == [StreamOutcome.ERRORED] * 2


def test_anthropic_dropped_connection_raises_transport_error(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(drop_after_tokens=3)
    texts: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        with anthropic_client(anthropic_server).messages.stream(model=CLAUDE, max_tokens=8, messages=USER) as stream:
            texts.extend(stream.text_stream)

    assert texts == TOKENS[:3]
    assert anthropic_server.stream_outcomes == [StreamOutcome.DROPPED]


# -- Ollama ------------------------------------------------------------------------------------


def test_ollama_stream_chat(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(tokens=TOKENS, prompt_tokens=9, token_delay_s=0.002)
    parts = list(
        ollama_client(ollama_server).chat(
            model="llama3.2", messages=USER, stream=True, options={"temperature": 0.1, "num_predict": 32}
        )
    )

    assert [p.message.content for p in parts[:-1]] == TOKENS
    assert not any(p.done for p in parts[:-1])
    final = parts[-1]
    assert final.done and final.done_reason == "stop" and final.message.content == ""
    assert (final.prompt_eval_count, final.eval_count) == (9, 4)
    assert final.total_duration is not None and final.eval_duration is not None
    assert final.total_duration >= final.eval_duration > 0
    sent = ollama_server.last_request_json
    assert (sent["model"], sent["stream"], sent["messages"]) == ("llama3.2", True, USER)
    assert sent["options"] == {"temperature": 0.1, "num_predict": 32}


def test_ollama_non_streaming_chat(ollama_server: OllamaStandIn) -> None:
    reply = ollama_client(ollama_server).chat(model="qwen2.5:0.5b", messages=USER)

    assert reply.done and reply.message.role == "assistant"
    assert reply.message.content == "Hello, world!"
    assert ollama_server.last_request_json["stream"] is False


def test_ollama_wire_format_is_ndjson(ollama_server: OllamaStandIn) -> None:
    body = {"model": "gemma3:1b", "messages": USER}  # no "stream": the API streams by default
    with httpx.stream("POST", f"{ollama_server.host}/api/chat", json=body) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in response.iter_lines()]

    assert all(line["model"] == "gemma3:1b" and line["created_at"].endswith("Z") for line in lines)
    assert lines[-1].keys() >= {
        "done_reason", "total_duration", "load_duration", "prompt_eval_count",
        "prompt_eval_duration", "eval_count", "eval_duration",
    }  # fmt: skip
    assert httpx.get(f"{ollama_server.host}/").text == "Ollama is running"


def test_ollama_list_and_slow_tags(ollama_server: OllamaStandIn) -> None:
    client = ollama_client(ollama_server)
    models = client.list().models
    assert [m.model for m in models] == list(OllamaStandIn.default_models)
    assert models[0].details is not None and models[0].details.format == "gguf"
    assert models[0].size and models[0].digest and models[0].modified_at

    ollama_server.script = Script(tags_delay_s=0.2)
    started = time.monotonic()
    client.list()
    assert time.monotonic() - started >= 0.2


def test_ollama_unknown_model_is_404(ollama_server: OllamaStandIn) -> None:
    client = ollama_client(ollama_server)
    with pytest.raises(ollama.ResponseError) as caught:
        client.chat(model="mistral", messages=USER)
    assert caught.value.status_code == 404
    assert caught.value.error == 'model "mistral" not found, try pulling it first'

    with pytest.raises(ollama.ResponseError) as caught:
        list(client.chat(model="mistral", messages=USER, stream=True))
    assert caught.value.status_code == 404


def test_ollama_http_error(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(http_error=500)
    with pytest.raises(ollama.ResponseError) as caught:
        list(ollama_client(ollama_server).chat(model="llama3.2", messages=USER, stream=True))
    assert caught.value.status_code == 500
    assert caught.value.error


def test_ollama_mid_stream_error_raises_response_error(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(error_after_tokens=1)
    texts: list[str | None] = []
    with pytest.raises(ollama.ResponseError) as caught:
        for part in ollama_client(ollama_server).chat(model="llama3.2", messages=USER, stream=True):
            texts.append(part.message.content)

    assert texts == ["Hello"]
    assert caught.value.status_code == -1
    assert ollama_server.stream_outcomes == [StreamOutcome.ERRORED]


def test_ollama_dropped_connection_raises_transport_error(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(drop_after_tokens=2)
    texts: list[str | None] = []
    with pytest.raises(httpx.RemoteProtocolError):
        for part in ollama_client(ollama_server).chat(model="llama3.2", messages=USER, stream=True):
            texts.append(part.message.content)

    assert texts == TOKENS[:2]


# -- shared behaviour --------------------------------------------------------------------------


def _read_one_then_close_openai(server: StandInServer) -> None:
    assert isinstance(server, OpenAIStandIn)
    stream = openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
    next(stream)
    stream.close()


def _read_one_then_close_anthropic(server: StandInServer) -> None:
    assert isinstance(server, AnthropicStandIn)
    with anthropic_client(server).messages.stream(model=CLAUDE, max_tokens=8, messages=USER) as stream:
        next(iter(stream))


def _read_one_then_close_ollama(server: StandInServer) -> None:
    assert isinstance(server, OllamaStandIn)
    parts = ollama_client(server).chat(model="llama3.2", messages=USER, stream=True)
    next(parts)
    parts.close()


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("server_type", "read_one_then_close"),
    [
        (OpenAIStandIn, _read_one_then_close_openai),
        (AnthropicStandIn, _read_one_then_close_anthropic),
        (OllamaStandIn, _read_one_then_close_ollama),
    ],
)
def test_client_disconnect_is_noticed_within_a_token_delay(
    server_type: type[StandInServer], read_one_then_close: Callable[[StandInServer], None]
) -> None:
    delay = 0.3
    with server_type(Script(tokens=["tok"] * 50, token_delay_s=delay)) as server:
        read_one_then_close(server)
        closed_at = time.monotonic()
        assert server.wait_for_disconnect(timeout=2.0)
        assert time.monotonic() - closed_at < delay
        assert server.aborted_streams == 1
        assert server.completed_streams == 0


def _stream_openai(server: StandInServer) -> Callable[[], str]:
    assert isinstance(server, OpenAIStandIn)
    client = openai_client(server)

    def run() -> str:
        chunks = client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks)

    return run


def _stream_anthropic(server: StandInServer) -> Callable[[], str]:
    assert isinstance(server, AnthropicStandIn)
    client = anthropic_client(server)

    def run() -> str:
        with client.messages.stream(model=CLAUDE, max_tokens=8, messages=USER) as stream:
            return "".join(stream.text_stream)

    return run


def _stream_ollama(server: StandInServer) -> Callable[[], str]:
    assert isinstance(server, OllamaStandIn)
    client = ollama_client(server)

    def run() -> str:
        parts = client.chat(model="llama3.2", messages=USER, stream=True)
        return "".join(p.message.content or "" for p in parts)

    return run


@pytest.mark.timeout(15)
@pytest.mark.parametrize(
    ("server_type", "make_runner"),
    [(OpenAIStandIn, _stream_openai), (AnthropicStandIn, _stream_anthropic), (OllamaStandIn, _stream_ollama)],
)
def test_sixty_concurrent_streams_all_complete(
    server_type: type[StandInServer], make_runner: Callable[[StandInServer], Callable[[], str]]
) -> None:
    count = 60
    # Each stream waits 1 s for its first token: time for all 60 clients to connect even on a
    # busy two-core machine (making an SDK client costs milliseconds of GIL each), so they overlap.
    script = Script(tokens=TOKENS, first_token_delay_s=1.0, token_delay_s=0.01)
    with server_type(script) as server:
        run = make_runner(server)
        with ThreadPoolExecutor(max_workers=count) as pool:
            texts = list(pool.map(lambda _: run(), range(count)))

        assert texts == ["Hello, world!"] * count
        assert server.wait_for_streams(count, timeout=5)
        assert server.completed_streams == count
        assert server.peak_active_streams > count // 2  # they really overlapped


@pytest.mark.timeout(10)
def test_stop_does_not_hang_with_a_stream_open() -> None:
    server = OpenAIStandIn(Script(tokens=["slow"] * 10, token_delay_s=30)).start()
    outcome: list[BaseException] = []
    first_chunk = threading.Event()

    def consume() -> None:
        try:
            for _ in openai_client(server).chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True):
                first_chunk.set()
        except openai.APIError as err:
            outcome.append(err)

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    assert first_chunk.wait(5)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 1.5
    reader.join(5)
    assert outcome and isinstance(outcome[0], openai.APIConnectionError)
    server.stop()  # idempotent


def test_context_manager_serves_loopback_and_releases_port() -> None:
    with OllamaStandIn() as server:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(f"{url}/api/version").json()["version"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/version")


def test_requests_are_recorded_and_reset_restores_the_script() -> None:
    with OpenAIStandIn(Script(tokens=["x"])) as server:
        client = openai_client(server)
        client.models.list()
        list(client.chat.completions.create(model="gpt-4o-mini", messages=USER, stream=True))

        methods_paths = [(r.method, r.path) for r in server.requests]
        assert methods_paths == [("GET", "/v1/models"), ("POST", "/v1/chat/completions")]
        assert server.requests[0].json is None
        assert server.stream_outcomes == [StreamOutcome.COMPLETED]

        server.script.tokens.append("mutated")
        server.script.http_error = 500
        server.reset()
        assert server.requests == [] and server.last_request_json is None
        assert server.stream_outcomes == []
        assert server.script == Script(tokens=["x"])


# -- scripted tool calls -----------------------------------------------------------------------

WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_ANTHROPIC = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
WEATHER_TOOL_OLLAMA = WEATHER_TOOL_OPENAI
ASK_WEATHER = [{"role": "user", "content": "Weather in Paris and in Oslo?"}]
TWO_CALLS = Turn(
    text="Let me check both.",
    tool_calls=[
        ScriptedToolCall("get_weather", {"city": "Paris", "note": 'naïve "quotes"'}),
        ScriptedToolCall("get_weather", '{"city": "Oslo"}'),
    ],
)


def test_turn_text_is_streamed_word_by_word() -> None:
    reply = Script(turns=[Turn(text="Let me  check. ")]).reply(None, None)
    assert reply.texts == ["Let", " me", "  check.", " "]
    assert reply.text == "Let me  check. "
    # Once the turns are spent, requests answer with the tokens again.
    assert Script(turns=[]).reply(None, None).texts == TOKENS


def test_openai_streamed_tool_calls_are_typed_deltas(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(turns=[TWO_CALLS])
    chunks = list(
        openai_client(openai_server).chat.completions.create(
            model="gpt-4o-mini", messages=ASK_WEATHER, tools=[WEATHER_TOOL_OPENAI], stream=True
        )
    )

    deltas = [c.choices[0].delta for c in chunks]
    assert deltas[0].role == "assistant" and deltas[0].content == ""
    assert "".join(d.content or "" for d in deltas) == "Let me check both."
    items = [item for d in deltas for item in d.tool_calls or []]
    assert all(isinstance(item, openai.types.chat.chat_completion_chunk.ChoiceDeltaToolCall) for item in items)
    openings = [item for item in items if item.id is not None]
    assert [(o.index, o.type, o.function.name, o.function.arguments) for o in openings] == [
        (0, "function", "get_weather", ""),
        (1, "function", "get_weather", ""),
    ]
    assert all(o.id.startswith("call_") for o in openings) and openings[0].id != openings[1].id
    arguments = ["".join(i.function.arguments or "" for i in items if i.index == n) for n in (0, 1)]
    assert json.loads(arguments[0]) == {"city": "Paris", "note": 'naïve "quotes"'}
    assert arguments[1] == '{"city": "Oslo"}'  # a str goes out verbatim
    assert sum(1 for i in items if i.index == 0 and i.id is None) > 1  # the arguments came in pieces
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert openai_server.last_request_json["tools"] == [WEATHER_TOOL_OPENAI]


def test_openai_stream_helper_accumulates_tool_calls(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(
        turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"}, "call_x")])]
    )
    with openai_client(openai_server).chat.completions.stream(
        model="gpt-4o-mini", messages=ASK_WEATHER, tools=[WEATHER_TOOL_OPENAI]
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()

    message = final.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_x", "get_weather", '{"city":"Oslo"}')
    ]
    assert final.choices[0].finish_reason == "tool_calls"


def test_openai_non_streamed_tool_calls(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(turns=[Turn(tool_calls=TWO_CALLS.tool_calls)], completion_tokens=9)
    completion = openai_client(openai_server).chat.completions.create(
        model="gpt-4o", messages=ASK_WEATHER, tools=[WEATHER_TOOL_OPENAI]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert all(isinstance(c, openai.types.chat.ChatCompletionMessageFunctionToolCall) for c in calls)
    assert [c.function.arguments for c in calls] == ['{"city":"Paris","note":"naïve \\"quotes\\""}', '{"city": "Oslo"}']
    assert completion.usage is not None and completion.usage.completion_tokens == 9


def test_openai_two_step_tool_conversation(openai_server: OpenAIStandIn) -> None:
    openai_server.script = Script(
        turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]), Turn(text="Sunny, 21 °C.")]
    )
    client = openai_client(openai_server)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=ASK_WEATHER, tools=[WEATHER_TOOL_OPENAI])
    call = (first.choices[0].message.tool_calls or [])[0]
    history = [
        *ASK_WEATHER,
        first.choices[0].message.model_dump(exclude_none=True, exclude={"annotations"}),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21"},
    ]
    second = client.chat.completions.create(
        model="gpt-4o-mini", messages=history, tools=[WEATHER_TOOL_OPENAI], stream=True
    )

    assert "".join(c.choices[0].delta.content or "" for c in second) == "Sunny, 21 °C."
    sent = openai_server.last_request_json["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.id
    assert sent[2] == {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21"}
    # Turns spent: the script's tokens answer again.
    third = client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert third.choices[0].message.content == "Hello, world!"


def _assistant_call(call_id: str) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}],
    }


@pytest.mark.parametrize(
    ("messages", "param", "text"),
    [
        (
            [*ASK_WEATHER, _assistant_call("call_a"), {"role": "tool", "tool_call_id": "call_b", "content": "x"}],
            "messages.[2].tool_call_id",
            "'call_b' not found",
        ),
        (
            [*ASK_WEATHER, _assistant_call("call_a"), {"role": "user", "content": "and?"}],
            "messages.[1].role",
            "did not have response messages: call_a",
        ),
        (
            [*ASK_WEATHER, {"role": "tool", "tool_call_id": "call_a", "content": "x"}],
            "messages.[1].role",
            "must be a response to a preceeding message with 'tool_calls'",
        ),
    ],
)
def test_openai_refuses_a_broken_tool_result_sequence(
    openai_server: OpenAIStandIn, messages: list[dict], param: str, text: str
) -> None:
    openai_server.script = Script(turns=[Turn(text="never sent")])
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(openai_server).chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)

    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict) and caught.value.body["param"] == param
    assert text in caught.value.message
    assert openai_server.script.turns == [Turn(text="never sent")]  # a refused request takes no turn


def test_openai_responder_answers_from_the_request(openai_server: OpenAIStandIn) -> None:
    seen: list[int] = []

    def responder(body: dict) -> Turn:
        seen.append(len(body["messages"]))
        if len(seen) < 3:
            return Turn(tool_calls=[ScriptedToolCall("get_weather", {"city": f"c{len(seen)}"})])
        return Turn(text="done")

    openai_server.script = Script(responder=responder, turns=[Turn(text="loses to the responder")])
    client = openai_client(openai_server)
    messages: list[dict] = list(ASK_WEATHER)
    while True:
        message = client.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message
        if not message.tool_calls:
            break
        messages.append(message.model_dump(exclude_none=True, exclude={"annotations"}))
        messages += [{"role": "tool", "tool_call_id": c.id, "content": "ok"} for c in message.tool_calls]

    assert message.content == "done"
    assert seen == [1, 3, 5]


def test_scripted_turns_keep_delays_and_errors(openai_server: OpenAIStandIn) -> None:
    # Pieces of this turn: "Checking", then the call's opening, then its argument fragments.
    openai_server.script = Script(
        turns=[Turn(text="Checking", tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})])],
        error_after_tokens=3,
        token_delay_s=0.01,
    )
    items = []
    with pytest.raises(openai.APIError):
        for chunk in openai_client(openai_server).chat.completions.create(
            model="gpt-4o-mini", messages=ASK_WEATHER, stream=True
        ):
            items.append(chunk.choices[0].delta)

    assert [d.content for d in items[:2]] == ["", "Checking"]
    assert items[2].tool_calls and items[2].tool_calls[0].function.name == "get_weather"
    assert items[3].tool_calls and items[3].tool_calls[0].function.arguments == '{"city"'
    assert len(items) == 4
    assert openai_server.stream_outcomes == [StreamOutcome.ERRORED]


def test_anthropic_stream_helper_gives_tool_use_blocks(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(
        turns=[Turn(text="Let me check both.", tool_calls=[TWO_CALLS.tool_calls[0], TWO_CALLS.tool_calls[1]])]
    )
    with anthropic_client(anthropic_server).messages.stream(
        model=CLAUDE, max_tokens=256, messages=ASK_WEATHER, tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    assert final.stop_reason == "tool_use"
    text, first, second = final.content
    assert text.type == "text" and text.text == "Let me check both."
    assert isinstance(first, anthropic.types.ToolUseBlock) and isinstance(second, anthropic.types.ToolUseBlock)
    assert first.id.startswith("toolu_") and first.id != second.id
    assert (first.name, first.input) == ("get_weather", {"city": "Paris", "note": 'naïve "quotes"'})
    assert second.input == {"city": "Oslo"}
    starts = [e for e in events if e.type == "content_block_start"]
    assert [(e.index, e.content_block.type) for e in starts] == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    assert [e.index for e in events if e.type == "content_block_stop"] == [0, 1, 2]
    assert anthropic_server.last_request_json["tools"] == [WEATHER_TOOL_ANTHROPIC]


def test_anthropic_raw_stream_sends_input_json_deltas_verbatim(anthropic_server: AnthropicStandIn) -> None:
    broken = '{"city": "Os'
    anthropic_server.script = Script(turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", broken, "toolu_01x")])])
    events = list(
        anthropic_client(anthropic_server).messages.create(
            model=CLAUDE, max_tokens=64, messages=ASK_WEATHER, tools=[WEATHER_TOOL_ANTHROPIC], stream=True
        )
    )

    start = next(e for e in events if e.type == "content_block_start")
    assert start.index == 0
    assert isinstance(start.content_block, anthropic.types.ToolUseBlock)
    assert (start.content_block.id, start.content_block.name, start.content_block.input) == (
        "toolu_01x",
        "get_weather",
        {},
    )
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    assert all(isinstance(d, anthropic.types.InputJSONDelta) for d in deltas)
    assert "".join(d.partial_json for d in deltas) == broken
    message_delta = next(e for e in events if e.type == "message_delta")
    assert message_delta.delta.stop_reason == "tool_use"


def test_anthropic_non_streamed_tool_use(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"})])])
    message = anthropic_client(anthropic_server).messages.create(
        model=CLAUDE, max_tokens=64, messages=ASK_WEATHER, tools=[WEATHER_TOOL_ANTHROPIC]
    )

    assert message.stop_reason == "tool_use"
    (block,) = message.content
    assert isinstance(block, anthropic.types.ToolUseBlock) and block.input == {"city": "Oslo"}


def test_anthropic_two_step_tool_conversation(anthropic_server: AnthropicStandIn) -> None:
    anthropic_server.script = Script(
        turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]), Turn(text="Sunny.")]
    )
    client = anthropic_client(anthropic_server)
    first = client.messages.create(model=CLAUDE, max_tokens=64, messages=ASK_WEATHER, tools=[WEATHER_TOOL_ANTHROPIC])
    (call,) = first.content
    assert call.type == "tool_use"
    history = [
        *ASK_WEATHER,
        {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21"}]},
    ]
    with client.messages.stream(
        model=CLAUDE, max_tokens=64, messages=history, tools=[WEATHER_TOOL_ANTHROPIC]
    ) as stream:
        assert "".join(stream.text_stream) == "Sunny."

    sent = anthropic_server.last_request_json["messages"]
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21"}


def _tool_use(call_id: str) -> dict:
    return {"role": "assistant", "content": [{"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}]}


def _tool_result(call_id: str) -> dict:
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "x"}]}


@pytest.mark.parametrize(
    ("messages", "text"),
    [
        (
            [*ASK_WEATHER, _tool_use("toolu_a"), {"role": "user", "content": "and?"}],
            "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_a",
        ),
        (
            [*ASK_WEATHER, _tool_use("toolu_a"), _tool_result("toolu_b")],
            "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_b",
        ),
        (
            [*ASK_WEATHER, _tool_use("toolu_a"), _tool_result("toolu_a"), {"role": "user", "content": "and?"}],
            'found multiple "user" roles in a row',
        ),
    ],
)
def test_anthropic_refuses_a_broken_tool_result_sequence(
    anthropic_server: AnthropicStandIn, messages: list[dict], text: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        with anthropic_client(anthropic_server).messages.stream(model=CLAUDE, max_tokens=8, messages=messages) as s:
            s.until_done()

    assert caught.value.status_code == 400
    assert caught.value.type == "invalid_request_error"
    assert text in caught.value.message
    assert anthropic_server.stream_outcomes == []


def test_ollama_streamed_tool_calls_are_objects(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(turns=[TWO_CALLS], prompt_tokens=5, completion_tokens=7)
    parts = list(
        ollama_client(ollama_server).chat(
            model="llama3.2", messages=ASK_WEATHER, tools=[WEATHER_TOOL_OLLAMA], stream=True
        )
    )

    assert "".join(p.message.content or "" for p in parts) == "Let me check both."
    calls = [call for p in parts for call in p.message.tool_calls or []]
    assert all(isinstance(c, ollama.Message.ToolCall) for c in calls)
    assert [(c.function.name, dict(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Paris", "note": 'naïve "quotes"'}),
        ("get_weather", {"city": "Oslo"}),  # a str that is a JSON object goes out as the object
    ]
    final = parts[-1]
    assert final.done and final.done_reason == "stop"
    assert (final.prompt_eval_count, final.eval_count) == (5, 7)
    assert ollama_server.last_request_json["tools"][0]["function"]["name"] == "get_weather"


def test_ollama_two_step_tool_conversation_non_streamed(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(
        turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris"})]), Turn(text="Sunny.")]
    )
    client = ollama_client(ollama_server)
    first = client.chat(model="llama3.2", messages=ASK_WEATHER, tools=[WEATHER_TOOL_OLLAMA])
    assert first.message.tool_calls and first.message.tool_calls[0].function.arguments == {"city": "Paris"}
    history = [
        *ASK_WEATHER,
        first.message,
        {"role": "tool", "content": "sunny, 21", "tool_name": "get_weather"},
    ]
    second = client.chat(model="llama3.2", messages=history, tools=[WEATHER_TOOL_OLLAMA])

    assert second.message.content == "Sunny." and not second.message.tool_calls
    sent = ollama_server.last_request_json["messages"]
    assert sent[1]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    assert sent[2] == {"role": "tool", "content": "sunny, 21", "tool_name": "get_weather"}


def test_ollama_sends_arguments_that_are_not_an_object_as_a_json_string(ollama_server: OllamaStandIn) -> None:
    ollama_server.script = Script(turns=[Turn(tool_calls=[ScriptedToolCall("get_weather", '{"city": "Os')])])
    body = {"model": "llama3.2", "messages": ASK_WEATHER, "stream": False}
    reply = httpx.post(f"{ollama_server.host}/api/chat", json=body).json()

    assert reply["message"]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": '{"city": "Os'}}]


def test_process_commands_script_turns() -> None:
    from tests.standins.__main__ import answer

    with OpenAIStandIn() as server:
        command = {
            "provider": "openai",
            "cmd": "script",
            "script": {"turns": [{"text": "hi", "tool_calls": [{"name": "f", "arguments": {"a": 1}, "id": "call_1"}]}]},
        }
        assert answer({"openai": server}, command) == {"ok": True}
        assert server.script.turns == [Turn("hi", [ScriptedToolCall("f", {"a": 1}, "call_1")])]
        bad = {"provider": "openai", "cmd": "script", "script": {"responder": "x"}}
        assert answer({"openai": server}, bad)["ok"] is False

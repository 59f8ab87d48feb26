"""The agent's tool-calling model adapters against the provider stand-ins, over loopback HTTP.

Each test drives an adapter as the agent loop does (``complete(messages, tools, cancel)``) and
asserts what the loop gets back, and, where it matters, what the provider received: the
stand-ins refuse a tool-result sequence the real APIs would refuse, so a translation mistake
fails here as it would against the real service.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from miso_runtime.agent.messages import AgentMessage, Cancelled, CancelToken, ModelTurn, ToolCall, ToolSpec
from miso_runtime.agent.models import AnthropicToolModel, OllamaToolModel, OpenAIToolModel
from miso_runtime.chat.types import ProviderError
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY
from tests.standins import Script, ScriptedToolCall, StandInServer, StreamOutcome, Turn

MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5-20251001", "ollama": "llama3.2"}
PROVIDERS = list(MODELS)

READ_FILE = ToolSpec(
    "read_file",
    "Read a file of the workspace.",
    {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "Relative to the workspace."},
            "range": {
                "type": "object",
                "properties": {"start": {"type": "integer", "minimum": 1}, "end": {"type": "integer"}},
            },
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["path"],
        "additionalProperties": False,
    },
)
LIST_FILES = ToolSpec(
    "list_files",
    "List a directory.",
    {"type": "object", "properties": {"path": {"type": "string"}, "recursive": {"type": "boolean"}}},
)
TOOLS = [READ_FILE, LIST_FILES]
ASK = [AgentMessage("system", "You are terse."), AgentMessage("user", "Read a.txt and list src.")]
READ_ARGS = '{"path": "a.txt", "note": "naïve \\"quoted\\""}'
LIST_ARGS = {"path": "src", "recursive": True}


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Case:
    """One provider: its stand-in and an adapter pointed at it."""

    provider: str
    standin: StandInServer
    model: Any

    @property
    def call_prefix(self) -> str:
        return "toolu_" if self.provider == "anthropic" else "call_"

    def request(self) -> dict[str, Any]:
        recorded = self.standin.last_request_json
        assert isinstance(recorded, dict)
        return recorded


def build_model(provider: str, standin: Any, model: str | None = None) -> Any:
    name = model or MODELS[provider]
    if provider == "openai":
        return OpenAIToolModel(name, OPENAI_KEY, standin.base_url, 128_000)
    if provider == "anthropic":
        return AnthropicToolModel(name, ANTHROPIC_KEY, standin.base_url, 200_000)
    return OllamaToolModel(name, standin.host, 8_192)


@pytest.fixture(params=PROVIDERS)
def case(request: pytest.FixtureRequest, openai_standin, anthropic_standin, ollama_standin) -> Case:
    standin = {"openai": openai_standin, "anthropic": anthropic_standin, "ollama": ollama_standin}[request.param]
    return Case(request.param, standin, build_model(request.param, standin))


def complete(case: Case, messages: list[AgentMessage] = ASK, tools: list[ToolSpec] = TOOLS) -> ModelTurn:
    return case.model.complete(messages, tools, CancelToken())


# -- turns -------------------------------------------------------------------------------------


def test_name_and_context(case: Case) -> None:
    assert case.model.name == f"{case.provider}:{MODELS[case.provider]}"
    assert case.model.context_tokens > 0


def test_text_only_turn(case: Case) -> None:
    case.standin.script = Script(turns=[Turn(text="Nothing to do here.")])
    turn = complete(case)

    assert turn.content == "Nothing to do here."
    assert turn.tool_calls == ()
    assert turn.finish_reason == "stop"
    assert case.standin.stream_outcomes == [StreamOutcome.COMPLETED]
    assert case.request()["stream"] is True


def test_usage_in_completion_usage_form(case: Case) -> None:
    case.standin.script = Script(prompt_tokens=321, completion_tokens=45)
    turn = complete(case)

    assert turn.usage is not None
    assert (turn.usage["prompt_tokens"], turn.usage["completion_tokens"], turn.usage["total_tokens"]) == (321, 45, 366)
    if case.provider != "ollama":  # Ollama reports no cache
        assert turn.usage["prompt_tokens_details"] == {"cached_tokens": 0}


def test_two_tool_calls_come_back_exactly(case: Case) -> None:
    case.standin.script = Script(
        turns=[
            Turn(
                text="Reading both.",
                tool_calls=[ScriptedToolCall("read_file", READ_ARGS), ScriptedToolCall("list_files", LIST_ARGS)],
            )
        ]
    )
    turn = complete(case)

    assert turn.content == "Reading both."
    assert turn.finish_reason == "tool_calls"
    assert [call.name for call in turn.tool_calls] == ["read_file", "list_files"]
    # Text streamed as text is kept to the byte; Ollama gives objects, which become compact JSON.
    read_text = compact(json.loads(READ_ARGS)) if case.provider == "ollama" else READ_ARGS
    assert [call.arguments for call in turn.tool_calls] == [read_text, compact(LIST_ARGS)]
    ids = [call.id for call in turn.tool_calls]
    assert all(call_id.startswith(case.call_prefix) and len(call_id) > 10 for call_id in ids)
    assert len(set(ids)) == 2


def test_a_call_without_text(case: Case) -> None:
    case.standin.script = Script(turns=[Turn(tool_calls=[ScriptedToolCall("list_files", {})])])
    turn = complete(case)

    assert turn.content == ""
    assert [(call.name, call.arguments) for call in turn.tool_calls] == [("list_files", "{}")]


def _expected_second_request(case: Case, first: ModelTurn) -> dict[str, Any]:
    """The parts of the follow-up request that carry the history, in the provider's form."""
    read, listing = first.tool_calls
    if case.provider == "openai":
        return {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Read a.txt and list src."},
                {"role": "assistant", "content": "Reading both.", "tool_calls": [read.openai(), listing.openai()]},
                {"role": "tool", "tool_call_id": read.id, "content": "alpha"},
                {"role": "tool", "tool_call_id": listing.id, "content": "src/x.py"},
            ],
            "tools": [
                {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.schema}}
                for t in TOOLS
            ],
        }
    if case.provider == "anthropic":
        return {
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Read a.txt and list src."}]},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Reading both."},
                        {"type": "tool_use", "id": read.id, "name": "read_file", "input": json.loads(READ_ARGS)},
                        {"type": "tool_use", "id": listing.id, "name": "list_files", "input": LIST_ARGS},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": read.id, "content": "alpha"},
                        {"type": "tool_result", "tool_use_id": listing.id, "content": "src/x.py"},
                    ],
                },
            ],
            "tools": [{"name": t.name, "description": t.description, "input_schema": t.schema} for t in TOOLS],
        }
    return {
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Read a.txt and list src."},
            {
                "role": "assistant",
                "content": "Reading both.",
                "tool_calls": [
                    {"function": {"name": "read_file", "arguments": json.loads(READ_ARGS)}},
                    {"function": {"name": "list_files", "arguments": LIST_ARGS}},
                ],
            },
            {"role": "tool", "content": "alpha", "tool_name": "read_file"},
            {"role": "tool", "content": "src/x.py", "tool_name": "list_files"},
        ],
        "tools": [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.schema}}
            for t in TOOLS
        ],
    }


def test_two_step_exchange_sends_tool_results_in_the_provider_form(case: Case) -> None:
    calls = [ScriptedToolCall("read_file", READ_ARGS), ScriptedToolCall("list_files", LIST_ARGS)]
    case.standin.script = Script(turns=[Turn(text="Reading both.", tool_calls=calls), Turn(text="a.txt says alpha.")])
    first = complete(case)
    read, listing = first.tool_calls
    history = [
        *ASK,
        AgentMessage("assistant", first.content, tool_calls=first.tool_calls),
        AgentMessage("tool", "alpha", tool_call_id=read.id, name=read.name),
        AgentMessage("tool", "src/x.py", tool_call_id=listing.id, name=listing.name),
    ]
    second = complete(case, history)

    assert (second.content, second.tool_calls, second.finish_reason) == ("a.txt says alpha.", (), "stop")
    sent = case.request()
    expected = _expected_second_request(case, first)
    assert {key: sent.get(key) for key in expected} == expected
    assert case.standin.stream_outcomes == [StreamOutcome.COMPLETED] * 2


def test_no_tools_sends_no_tools(case: Case) -> None:
    complete(case, tools=[])
    assert "tools" not in case.request()


# -- provider specifics ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_malformed_arguments_come_back_verbatim_and_the_conversation_stays_valid(
    provider: str, request: pytest.FixtureRequest
) -> None:
    standin = request.getfixturevalue(f"{provider}_standin")
    model = build_model(provider, standin)
    broken = '{"path": "a.t'
    standin.script = Script(turns=[Turn(tool_calls=[ScriptedToolCall("read_file", broken)]), Turn(text="Retrying.")])
    first = model.complete(ASK, TOOLS, CancelToken())
    (call,) = first.tool_calls
    assert call.arguments == broken

    history = [
        *ASK,
        AgentMessage("assistant", "", tool_calls=first.tool_calls),
        AgentMessage("tool", "Error parsing tool arguments", tool_call_id=call.id, name=call.name),
    ]
    assert model.complete(history, TOOLS, CancelToken()).content == "Retrying."
    sent = standin.last_request_json["messages"]
    if provider == "anthropic":
        # Not JSON: the call still goes back (its result refers to it), with an empty input.
        assert sent[1] == {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": call.id, "name": "read_file", "input": {}}],
        }
    else:
        assert sent[2]["tool_calls"][0]["function"]["arguments"] == broken
        assert sent[2]["content"] is None


def test_anthropic_merges_results_and_following_user_text_into_one_message(anthropic_standin) -> None:
    model = build_model("anthropic", anthropic_standin)
    calls = (ToolCall("toolu_01a", "read_file", '{"path": "a.txt"}'), ToolCall("toolu_01b", "list_files", "{}"))
    history = [
        *ASK,
        AgentMessage("assistant", " ", tool_calls=calls),
        AgentMessage("tool", "alpha", tool_call_id="toolu_01a", name="read_file"),
        AgentMessage("tool", "", tool_call_id="toolu_01b", name="list_files"),
        AgentMessage("user", "Also, be quick."),
        AgentMessage("system", "Context was pruned."),
    ]
    anthropic_standin.script = Script(turns=[Turn(text="Done.")])
    assert model.complete(history, TOOLS, CancelToken()).content == "Done."

    sent = anthropic_standin.last_request_json
    assert sent["system"] == "You are terse.\n\nContext was pruned."
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert [block["type"] for block in sent["messages"][1]["content"]] == ["tool_use", "tool_use"]  # no blank text
    assert sent["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_01a", "content": "alpha"},
        {"type": "tool_result", "tool_use_id": "toolu_01b"},
        {"type": "text", "text": "Also, be quick."},
    ]


def test_anthropic_maps_cache_usage_and_stop_reasons(anthropic_standin) -> None:
    model = build_model("anthropic", anthropic_standin)
    anthropic_standin.script = Script(prompt_tokens=9, completion_tokens=3)
    turn = model.complete(ASK, [], CancelToken())

    assert turn.usage == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert turn.finish_reason == "stop"
    assert anthropic_standin.last_request_json["max_tokens"] > 0


def test_ollama_unknown_model_is_a_provider_error(ollama_standin) -> None:
    model = build_model("ollama", ollama_standin, model="mistral")
    with pytest.raises(ProviderError) as caught:
        model.complete(ASK, TOOLS, CancelToken())
    assert caught.value.code == "provider_error"
    assert "mistral" in caught.value.message


def test_ollama_that_is_not_running_is_unavailable() -> None:
    # A bound port that never listens: connecting is refused, and no one else can take it meanwhile.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        model = OllamaToolModel("llama3.2", f"127.0.0.1:{silent.getsockname()[1]}", 8_192)
        with pytest.raises(ProviderError) as caught:
            model.complete(ASK, TOOLS, CancelToken())
    assert caught.value.code == "provider_unavailable"


# -- failures and cancel -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"), [(401, "provider_auth"), (429, "rate_limited"), (503, "provider_unavailable")]
)
def test_http_error_is_mapped_to_its_provider_error_code(case: Case, status: int, code: str) -> None:
    case.standin.script = Script(http_error=status)
    with pytest.raises(ProviderError) as caught:
        complete(case)
    assert caught.value.code == code
    assert caught.value.message


MID_STREAM_CODES = {"openai": "provider_error", "anthropic": "provider_unavailable", "ollama": "provider_error"}


def test_mid_stream_error_is_a_provider_error(case: Case) -> None:
    case.standin.script = Script(
        turns=[Turn(text="Reading", tool_calls=[ScriptedToolCall("read_file", READ_ARGS)])], error_after_tokens=2
    )
    with pytest.raises(ProviderError) as caught:
        complete(case)

    assert caught.value.code == MID_STREAM_CODES[case.provider]
    assert case.standin.stream_outcomes == [StreamOutcome.ERRORED]


def test_dropped_stream_is_stream_failed(case: Case) -> None:
    case.standin.script = Script(turns=[Turn(text="Reading the files now")], drop_after_tokens=2)
    with pytest.raises(ProviderError) as caught:
        complete(case)

    assert caught.value.code == "stream_failed"
    assert case.standin.stream_outcomes == [StreamOutcome.DROPPED]


def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.mark.timeout(20)
def test_cancel_while_waiting_for_the_first_token(case: Case) -> None:
    case.standin.script = Script(first_token_delay_s=5.0, turns=[Turn(text="too late")])
    cancel = CancelToken()
    outcome: list[BaseException | ModelTurn] = []

    def run() -> None:
        try:
            outcome.append(case.model.complete(ASK, TOOLS, cancel))
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    assert _wait_until(lambda: case.standin.active_streams == 1)
    cancel.cancel()
    worker.join(2.0)  # well before the first token would come

    assert not worker.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert case.standin.wait_for_disconnect(timeout=2.0)
    assert case.standin.stream_outcomes == [StreamOutcome.ABORTED]
    # The adapter is still good for the next turn (its connection pool was not poisoned).
    case.standin.script = Script(turns=[Turn(text="Back again.")])
    assert complete(case).content == "Back again."


def test_cancel_mid_stream(case: Case) -> None:
    case.standin.script = Script(turns=[Turn(text=" ".join(["word"] * 200))], token_delay_s=0.02)
    cancel = CancelToken()
    threading.Timer(0.2, cancel.cancel).start()
    with pytest.raises(Cancelled):
        case.model.complete(ASK, TOOLS, cancel)

    assert case.standin.wait_for_disconnect(timeout=2.0)
    assert case.standin.completed_streams == 0


def test_a_cancelled_token_sends_nothing(case: Case) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        case.model.complete(ASK, TOOLS, cancel)
    assert case.standin.requests == []


def test_fifty_tool_calls_then_stop(case: Case) -> None:
    """A responder answers from what the adapter sent: the history grows as the loop's would."""
    counts: list[int] = []

    def responder(body: dict[str, Any]) -> Turn:
        counts.append(len(body["messages"]))
        if len(counts) <= 50:
            return Turn(tool_calls=[ScriptedToolCall("list_files", {"path": f"d{len(counts)}"})])
        return Turn(text="Stopped.")

    case.standin.script = Script(responder=responder)
    history = list(ASK)
    while True:
        turn = complete(case, history)
        history.append(AgentMessage("assistant", turn.content, tool_calls=turn.tool_calls))
        if not turn.tool_calls:
            break
        for call in turn.tool_calls:
            history.append(AgentMessage("tool", f"listed {call.arguments}", tool_call_id=call.id, name=call.name))

    assert turn.content == "Stopped."
    assert len(counts) == 51
    # Each request carried every earlier call and result (Anthropic: system apart, one message each).
    step = 2
    first = counts[0]
    assert counts == [first + step * i for i in range(51)]

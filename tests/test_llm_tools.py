"""Function calling on the local model, through the official ``openai`` client, against the real sidecar.

The models are the tiny random-weight llamas of ``tests/llm_fixtures.py``: their text is noise,
so a tool call that names the right function with arguments its schema accepts can only come
from the grammar the worker samples under, which is what these tests hold it to. Three models
cover the three ways a prompt is built:

* ``tiny-tools``: a ChatML template that knows nothing of tools (the tools go into a system
  section of ours, calls and results into plain turns);
* ``tiny-hermes``: a template that renders tools, calls and results in the Hermes layout, as
  Qwen2.5's does (the tools go through the template);
* ``bare-tools``: no template at all, so llama-cpp-python's registered ``llama-2`` format renders.

Their trained context is 4096 tokens: the vocabulary is bytes, so a tools section alone is
about a thousand tokens. Schemas bound their strings (``enum``, ``maxLength``) so that a model
that never chooses a closing quote still finishes: the grammar, not the weights, ends the call.
"""

from __future__ import annotations

import json
import time

import jsonschema_rs
import openai
import pytest
from openai.types.chat import ChatCompletionMessageFunctionToolCall

from miso_runtime.llm.tool_calls import (
    ArgumentsPiece,
    CallFinished,
    CallStarted,
    CallStreamParser,
    TagScanner,
    format_call,
    hermes_messages,
)
from miso_runtime.llm.tool_generation import CallScanner
from tests.llm_fixtures import write_tiny_llama_gguf
from tests.sidecar import Sidecar

#: A chat template that renders tools, calls and results in the Hermes layout (as Qwen2.5's does).
HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n"
    "{% if messages[0].role == 'system' %}{{ messages[0].content }}\n\n{% endif %}"
    "Tools you may call:\n<tools>\n{% for tool in tools %}{{ tool | tojson }}\n{% endfor %}</tools>\n"
    'Call one as <tool_call>\n{"name": <name>, "arguments": <object>}\n</tool_call><|im_end|>\n'
    "{% endif %}"
    "{% for message in messages %}"
    "{% if message.role == 'system' and tools %}"
    "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{% elif message.tool_calls %}<|im_start|>assistant\n"
    "{% for call in message.tool_calls %}"
    '<tool_call>\n{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n'
    "</tool_call>"
    "{% endfor %}<|im_end|>\n"
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
MODELS = ("tiny-tools", "tiny-hermes", "bare-tools")
#: What each model's worker logs about where its tool prompts come from.
PROMPT_SOURCE = {
    "tiny-tools": "our Hermes section",
    "tiny-hermes": "the model's chat template",
    "bare-tools": "our Hermes section",
}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city for the next days",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "enum": ["Paris", "Tokyo", "Lima"]},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
            },
            "required": ["city", "days"],
        },
    },
}
ALARM = {
    "type": "function",
    "function": {
        "name": "set_alarm",
        "description": "Set an alarm",
        "parameters": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "maxLength": 12},
                "minutes": {"type": "integer"},
                "loud": {"type": "boolean"},
                "tags": {"type": "array", "items": {"enum": ["home", "work"]}, "maxItems": 3},
            },
            "required": ["label", "minutes"],
        },
    },
}
LOOKUP = {
    "type": "function",
    "function": {
        "name": "find-place",
        "parameters": {
            "type": "object",
            "$defs": {
                "point": {
                    "type": "object",
                    "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                    "required": ["lat", "lon"],
                }
            },
            "properties": {"where": {"$ref": "#/$defs/point"}, "radius_km": {"type": "integer"}},
            "required": ["where"],
        },
    },
}
#: A tool whose text argument has no bound: the random model writes it until stopped.
NOTE = {
    "type": "function",
    "function": {
        "name": "write_note",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    },
}
TOOLS = [WEATHER, ALARM, LOOKUP]
SCHEMAS = {tool["function"]["name"]: tool["function"]["parameters"] for tool in [*TOOLS, NOTE]}
ASK = [{"role": "system", "content": "Use the tools."}, {"role": "user", "content": "Will it rain in Lima?"}]


@pytest.fixture(scope="module")
def side(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("llm-tools")
    models = data_dir / "models"
    models.mkdir()
    write_tiny_llama_gguf(models / "tiny-tools.gguf", context_length=4096)
    write_tiny_llama_gguf(models / "tiny-hermes.gguf", chat_template=HERMES_TEMPLATE, context_length=4096, seed=2)
    write_tiny_llama_gguf(models / "bare-tools.gguf", chat_template=None, context_length=4096, seed=3)
    write_tiny_llama_gguf(models / "tiny-small.gguf", context_length=512, seed=4)
    sidecar = Sidecar(data_dir)
    assert sidecar.post("/v1/llm/server/start", json={"model": "tiny-tools"}).status_code == 200
    yield sidecar
    sidecar.terminate()


@pytest.fixture()
def client(side) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{side.base_url}/v1", api_key=side.token, max_retries=0)


def worker(side) -> dict:
    return side.get("/health").json()["workers"][0]


def status(side) -> dict:
    return side.get("/v1/llm/server/status").json()


def assert_valid_call(name: str, arguments: str, allowed: set[str]) -> dict:
    """The call names an allowed function and its arguments are JSON that its schema accepts."""
    assert name in allowed, name
    value = json.loads(arguments)
    errors = [error.message for error in jsonschema_rs.validator_for(SCHEMAS[name]).iter_errors(value)]
    assert errors == [], (name, arguments)
    return value


def collect_stream(chunks) -> tuple[str, dict[int, dict], str | None, list]:
    """Text, calls by index, finish reason and every chunk of a streamed answer."""
    text, calls, finish, seen = "", {}, None, []
    for chunk in chunks:
        seen.append(chunk)
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        for piece in choice.delta.tool_calls or []:
            call = calls.setdefault(piece.index, {"id": None, "type": None, "name": None, "arguments": ""})
            if piece.id is not None:
                assert call["id"] is None, "a call's id comes once, in its first piece"
                call.update(id=piece.id, type=piece.type, name=piece.function.name)
            call["arguments"] += piece.function.arguments or ""
        if choice.finish_reason:
            finish = choice.finish_reason
    return text, calls, finish, seen


# --- forced calls: tool_choice naming a function, and "required" ------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_named_function_is_called_with_arguments_its_schema_accepts(client, model):
    """Not streamed, ``tool_choice`` naming each function in turn, three seeds each.

    Asserted: finish_reason ``tool_calls``, ``content`` None, one call (``parallel_tool_calls``
    off) of the typed class the client builds, id ``call_...``, the named function, arguments
    that parse and validate against its schema. Fails if the grammar does not hold the random
    weights to the layout (the client would then get text or broken JSON), or if the prompt
    cannot be rendered for this model's chat format.
    """
    for tool in TOOLS:
        name = tool["function"]["name"]
        for seed in (1, 2, 3):
            reply = client.chat.completions.create(
                model=model,
                messages=ASK,
                tools=TOOLS,
                tool_choice={"type": "function", "function": {"name": name}},
                parallel_tool_calls=False,
                seed=seed,
                temperature=1.0,
            )
            choice = reply.choices[0]
            assert choice.finish_reason == "tool_calls", choice
            assert choice.message.content is None and choice.message.role == "assistant"
            (call,) = choice.message.tool_calls
            assert isinstance(call, ChatCompletionMessageFunctionToolCall)
            assert call.type == "function" and call.id.startswith("call_") and len(call.id) > 10
            assert_valid_call(call.function.name, call.function.arguments, {name})
            assert reply.usage.completion_tokens > 0 and reply.usage.prompt_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_required_streams_calls_in_openai_shape(client, side, model):
    """Streamed, ``tool_choice: "required"``, parallel calls allowed (OpenAI's default).

    Asserted: no text; each call's first ``delta.tool_calls`` piece carries ``index``, ``id``
    and ``type``/``function.name``, later pieces only argument text; the pieces join into
    arguments valid for the named function; calls are distinct (a repeated call ends the
    answer); the last choice chunk says ``tool_calls``; the worker logged which prompt
    source it used. Fails if a call is malformed, a piece is out of place or ids repeat.
    """
    text, calls, finish, seen = collect_stream(
        client.chat.completions.create(
            model=model, messages=ASK, tools=TOOLS, tool_choice="required", stream=True, seed=4
        )
    )
    assert text == "" and finish == "tool_calls"
    assert sorted(calls) == list(range(len(calls))) and calls
    first = next(chunk for chunk in seen if chunk.choices and chunk.choices[0].delta.tool_calls)
    assert first.choices[0].delta.role == "assistant"
    values = []
    for call in calls.values():
        assert call["type"] == "function" and call["id"].startswith("call_")
        values.append((call["name"], assert_valid_call(call["name"], call["arguments"], set(SCHEMAS) - {"write_note"})))
    assert len({json.dumps(value, sort_keys=True) for value in values}) == len(values)
    assert len({call["id"] for call in calls.values()}) == len(calls)
    lines = [line["message"] for line in side.get("/v1/llm/server/logs").json()["lines"]]
    assert [line for line in lines if "tool prompts:" in line][-1].endswith(PROMPT_SOURCE[model])


def test_the_clients_stream_helper_assembles_the_call(client):
    """The client's own accumulator (``chat.completions.stream``) rebuilds the streamed call.

    Asserted: its final completion holds one typed call with valid arguments and
    ``finish_reason`` ``tool_calls``. Fails if our chunks do not follow the shape the official
    client accumulates (an index, id or name missing where it expects them).
    """
    with client.chat.completions.stream(
        model="tiny-tools",
        messages=ASK,
        tools=[ALARM],
        tool_choice={"type": "function", "function": {"name": "set_alarm"}},
        parallel_tool_calls=False,
        seed=5,
    ) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert_valid_call(call.function.name, call.function.arguments, {"set_alarm"})


# --- auto and none ----------------------------------------------------------------------------


def test_auto_answers_text_or_a_valid_call(client):
    """``tool_choice`` left out (``auto``), streamed and not, five seeds each.

    The random model decides; whichever it does must be self-consistent. Asserted: either a
    call (finish ``tool_calls``, every call valid) or text with no calls (finish ``stop`` or
    ``length``, content not empty). Fails if text and finish reason disagree, or if a call
    that the model started is malformed.
    """
    for seed in range(5):
        reply = client.chat.completions.create(
            model="tiny-tools", messages=ASK, tools=TOOLS, max_tokens=40, seed=seed, temperature=1.0
        )
        choice = reply.choices[0]
        if choice.finish_reason == "tool_calls":
            for call in choice.message.tool_calls:
                assert_valid_call(call.function.name, call.function.arguments, set(SCHEMAS))
        else:
            assert choice.finish_reason in ("stop", "length") and choice.message.tool_calls is None
            assert choice.message.content
        text, calls, finish, _ = collect_stream(
            client.chat.completions.create(
                model="tiny-tools", messages=ASK, tools=TOOLS, max_tokens=40, seed=seed, temperature=1.0, stream=True
            )
        )
        assert (finish == "tool_calls") == bool(calls)
        assert finish == choice.finish_reason and text == (choice.message.content or "")  # same seed, same answer


def test_none_keeps_the_tools_out_of_the_prompt(client):
    """``tool_choice: "none"``: the model answers text, and its prompt is the one without tools.

    The vocabulary is bytes, so the prompt's token count shows what it held. Asserted: no
    calls, text, and ``prompt_tokens`` equal to the same request without tools, while ``auto``
    makes the prompt longer by at least the tools' JSON. Fails if ``none`` still lists the
    tools (or ``auto`` does not).
    """
    plain = client.chat.completions.create(model="tiny-tools", messages=ASK, max_tokens=8, seed=1)
    none = client.chat.completions.create(
        model="tiny-tools", messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=8, seed=1
    )
    auto = client.chat.completions.create(model="tiny-tools", messages=ASK, tools=TOOLS, max_tokens=8, seed=1)
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content
    assert none.choices[0].finish_reason in ("stop", "length")
    assert none.usage.prompt_tokens == plain.usage.prompt_tokens
    assert auto.usage.prompt_tokens > plain.usage.prompt_tokens + len(json.dumps(TOOLS))


# --- the exchange: a call, its result, the answer ---------------------------------------------


@pytest.mark.parametrize("model", MODELS)
def test_a_tool_result_goes_back_and_gets_an_answer(client, model):
    """Two steps as an agent loop does them, with the client's own message objects.

    Step 1 forces a call; step 2 sends the assistant message back as the client returned it
    (``content`` None, ``tool_calls``) with a ``tool`` message answering it, streamed and not.
    Asserted: step 2 answers (text, or valid calls) and its prompt grew by at least the
    result's text (bytes are tokens here), so the result reached the model. Fails if the
    history with a call and its result cannot be rendered for this chat format, or is dropped.
    """
    first = client.chat.completions.create(
        model=model, messages=ASK, tools=TOOLS, tool_choice="required", parallel_tool_calls=False, seed=6
    )
    message = first.choices[0].message
    (call,) = message.tool_calls
    result = json.dumps({"forecast": "light rain", "chance_percent": 80, "checked": "2026-12-01T10:00:00Z"})
    history = [*ASK, message, {"role": "tool", "tool_call_id": call.id, "content": result}]
    second = client.chat.completions.create(model=model, messages=history, tools=TOOLS, max_tokens=24, seed=6)
    choice = second.choices[0]
    assert choice.finish_reason in ("stop", "length", "tool_calls")
    assert choice.message.content or choice.message.tool_calls
    assert second.usage.prompt_tokens >= first.usage.prompt_tokens + len(result)
    text, calls, finish, _ = collect_stream(
        client.chat.completions.create(model=model, messages=history, tools=TOOLS, max_tokens=24, seed=6, stream=True)
    )
    assert finish == choice.finish_reason and (text or calls)
    for streamed in calls.values():
        assert_valid_call(streamed["name"], streamed["arguments"], set(SCHEMAS))
    # no tools on offer any more: the final answer is text, the history still renders
    final = client.chat.completions.create(model=model, messages=history, max_tokens=8, seed=6)
    assert final.choices[0].message.content and final.choices[0].message.tool_calls is None


def test_a_schema_the_grammar_cannot_follow_still_gives_a_json_object(client, side):
    """A valid schema that llama-cpp-python's converter cannot turn into a grammar (``not``).

    Asserted: the forced call still comes, with arguments that parse as a JSON object, and the
    worker logged the fallback. Fails if an unconvertible schema breaks the generation (a 500
    or a crash of the worker) instead of falling back to "any JSON object".
    """
    odd = {
        "type": "function",
        "function": {
            "name": "odd",
            "parameters": {"type": "object", "properties": {"x": {"not": {"type": "string"}}}},
        },
    }
    pid = worker(side)["pid"]
    reply = client.chat.completions.create(
        model="tiny-tools", messages=ASK, tools=[odd], tool_choice="required", parallel_tool_calls=False, seed=2
    )
    (call,) = reply.choices[0].message.tool_calls
    assert call.function.name == "odd" and isinstance(json.loads(call.function.arguments), dict)
    lines = [line["message"] for line in side.get("/v1/llm/server/logs").json()["lines"]]
    assert any("not convertible to a grammar" in line for line in lines)
    assert worker(side)["pid"] == pid


def test_a_call_cut_by_max_tokens_ends_with_length(client):
    """A forced call of ``write_note`` (unbounded text) with a 60-token budget, streamed and not.

    Asserted: finish_reason ``length`` (not ``tool_calls``), and the call as far as it got:
    its id and name, arguments that start the object but do not parse, the same streamed as
    not. Fails if a cut call is reported as complete, or lost.
    """
    body = dict(model="tiny-tools", messages=ASK, tools=[NOTE], tool_choice="required", max_tokens=60, seed=1)
    reply = client.chat.completions.create(**body)
    choice = reply.choices[0]
    assert choice.finish_reason == "length" and reply.usage.completion_tokens == 60
    (call,) = choice.message.tool_calls
    assert call.function.name == "write_note" and call.function.arguments.startswith("{")
    with pytest.raises(ValueError):
        json.loads(call.function.arguments)
    text, calls, finish, _ = collect_stream(client.chat.completions.create(**body, stream=True))
    assert finish == "length" and text == ""
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [("write_note", call.function.arguments)]


def test_tools_that_overflow_the_context_are_a_400(side, client):
    """On a model with a 512-token context the tools section alone does not fit.

    Asserted: 400 ``context_overflow`` in OpenAI's envelope, streamed and not, and the worker
    still up. Fails if the overflow surfaces as a 500 or a broken stream.
    """
    pid = worker(side)["pid"]
    try:
        for stream in (False, True):
            body = {"model": "tiny-small", "messages": ASK, "tools": TOOLS, "tool_choice": "required", "stream": stream}
            answer = side.post("/v1/chat/completions", json=body)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "context_overflow"
        assert worker(side)["pid"] == pid
    finally:
        assert side.post("/v1/llm/server/start", json={"model": "tiny-tools"}).status_code == 200


# --- bad input: OpenAI's 400 envelope, never a 500 --------------------------------------------

CALL = {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}


def _weather_with(parameters: object) -> dict:
    return {"type": "function", "function": {"name": "get_weather", "parameters": parameters}}


BAD_BODIES = {
    "a tool result without its call": {
        "messages": [*ASK, {"role": "tool", "tool_call_id": "call_nope", "content": "12 C"}],
        "tools": TOOLS,
    },
    "a tool result answering an id no call had": {
        "messages": [
            *ASK,
            {"role": "assistant", "content": None, "tool_calls": [CALL]},
            {"role": "tool", "tool_call_id": "call_other", "content": "12 C"},
        ],
    },
    "a tool message without tool_call_id": {
        "messages": [*ASK, {"role": "assistant", "tool_calls": [CALL]}, {"role": "tool", "content": "12 C"}],
    },
    "a custom tool": {"messages": ASK, "tools": [{"type": "custom", "custom": {"name": "grep"}}]},
    "a tool with no type": {"messages": ASK, "tools": [{"function": WEATHER["function"]}]},
    "tool_choice naming an unknown function": {
        "messages": ASK,
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "launch_rocket"}},
    },
    "allowed_tools naming an unknown function": {
        "messages": ASK,
        "tools": TOOLS,
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "nope"}}]},
        },
    },
    "tool_choice required without tools": {"messages": ASK, "tool_choice": "required"},
    "tool_choice that is no choice": {"messages": ASK, "tools": TOOLS, "tool_choice": "always"},
    "a type the schema language does not have": {
        "messages": ASK,
        "tools": [_weather_with({"type": "object", "properties": {"city": {"type": "strin"}}})],
    },
    "parameters that are not an object schema": {"messages": ASK, "tools": [_weather_with({"type": "string"})]},
    "parameters that are not a schema at all": {"messages": ASK, "tools": [_weather_with(["city"])]},
    "a reference outside the schema": {
        "messages": ASK,
        "tools": [_weather_with({"type": "object", "properties": {"c": {"$ref": "https://example.com/city.json"}}})],
    },
    "a reference to nothing": {
        "messages": ASK,
        "tools": [_weather_with({"type": "object", "properties": {"c": {"$ref": "#/$defs/missing"}}})],
    },
    "an unknown $schema": {
        "messages": ASK,
        "tools": [_weather_with({"$schema": "https://example.com/my-meta", "type": "object"})],
    },
    "a schema nested too deep": {
        "messages": ASK,
        "tools": [_weather_with(json.loads('{"type": "object", "properties": {"a": ' * 40 + "{}" + "}}" * 40))],
    },
    "a function name with a space": {
        "messages": ASK,
        "tools": [{"type": "function", "function": {"name": "get weather"}}],
    },
    "two functions of one name": {"messages": ASK, "tools": [WEATHER, WEATHER]},
    "arguments that are not text": {
        "messages": [*ASK, {"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "x", "arguments": {}}}]}],
    },
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_tool_input_is_a_400_in_openais_envelope(side, client, case):
    """Each bad body, streamed and not, raw and through the client.

    Asserted: status 400 with ``{"error": {"message", "type", "param", "code"}}`` and a
    message, ``openai.BadRequestError`` from the client, and the same worker process still up
    afterwards. Fails on a 500 (an unchecked input reaching the worker or the grammar), on a
    200 (a check missing) or if the worker died.
    """
    pid = worker(side)["pid"]
    body = {"model": "tiny-tools", "max_tokens": 4, **BAD_BODIES[case]}
    for stream in (False, True):
        answer = side.post("/v1/chat/completions", json={**body, "stream": stream})
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        assert error["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(**body)
    after = worker(side)
    assert after["pid"] == pid and after["state"] == "running"


def test_the_alias_route_takes_tools_too(side):
    """``/v1/llm/chat-completions`` is the same route: a forced call comes back the same way."""
    body = {
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": False,
        "seed": 3,
    }
    reply = side.post("/v1/llm/chat-completions", json=body).json()
    (call,) = reply["choices"][0]["message"]["tool_calls"]
    assert reply["choices"][0]["finish_reason"] == "tool_calls" and reply["choices"][0]["message"]["content"] is None
    assert set(call) == {"id", "type", "function"} and call["type"] == "function"
    assert_valid_call(call["function"]["name"], call["function"]["arguments"], {"get_weather"})


# --- abort, and the queue behind a tool generation --------------------------------------------


def _long_call(client, **extra):
    return client.chat.completions.create(
        model="tiny-tools",
        messages=ASK,
        tools=[NOTE],
        tool_choice="required",
        parallel_tool_calls=False,
        max_tokens=3000,
        stream=True,
        seed=1,
        **extra,
    )


def _wait_idle(side) -> bool:
    deadline = time.monotonic() + 5
    while status(side)["generating"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return not status(side)["generating"]


def test_a_client_that_closes_the_stream_stops_the_call(client, side):
    """The client closes a streamed call after its first argument pieces.

    ``write_note``'s text has no bound, so the random model would write until 3000 tokens.
    Asserted: the generation stops (the status stops saying ``generating``), the same worker
    serves the next request at once. Fails if a tool generation ignores ``Abort`` (it would
    run on) or if aborting it breaks the worker.
    """
    pid = worker(side)["pid"]
    stream = _long_call(client)
    pieces = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.tool_calls:
            pieces += 1
            if pieces == 5:
                break
    stream.close()
    assert pieces == 5
    assert _wait_idle(side)
    reply = client.chat.completions.create(model="tiny-tools", messages=ASK, max_tokens=2)
    assert reply.choices[0].message.content and worker(side)["pid"] == pid


def test_abort_stream_by_request_id_ends_a_call(side):
    """``/v1/llm/abort-stream`` on a streamed call: the stream ends with ``[DONE]`` well before its budget.

    Asserted: the abort is acknowledged, the stream still closes properly (finish chunk, then
    ``[DONE]``), and fewer argument pieces arrived than the 3000-token budget. Fails if the
    tool phase does not read ``Abort`` between tokens.
    """
    body = {
        "model": "tiny-tools",
        "messages": ASK,
        "tools": [NOTE],
        "tool_choice": "required",
        "max_tokens": 3000,
        "stream": True,
        "seed": 1,
    }
    with side.http.stream("POST", "/v1/chat/completions", json=body, headers=side.auth) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        received = 0
        for line in lines:
            if '"tool_calls"' in line:
                received += 1
                if received == 3:
                    aborted = side.post("/v1/llm/abort-stream", json={"request_id": request_id}).json()
                    assert aborted == {"aborted": True}
                    break
        rest = [line for line in lines if line.startswith("data:")]
    assert rest[-1] == "data: [DONE]"
    assert received + sum('"tool_calls"' in line for line in rest) < 3000
    assert _wait_idle(side)


def test_a_request_queued_behind_a_call_runs_after_it(client, side):
    """A plain chat sent while a call streams waits in the queue, then is served.

    The worker reads its command pipe between tokens while it generates a call; a command
    that is not an Abort must be kept for later, not lost. Asserted: the queued request
    answers 200 with text once the streamed call is closed. Fails if the tool phase drops
    the commands it reads.
    """
    stream = _long_call(client)
    next(chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.tool_calls)
    queued = side.http.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "tiny-tools", "messages": ASK, "max_tokens": 3, "stream": True},
        headers=side.auth,
    )
    response = queued.__enter__()
    try:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith(":") and "queue_position" in line)
        stream.close()
        rest = "\n".join(lines)
        assert '"content"' in rest and rest.rstrip().endswith("data: [DONE]")
    finally:
        queued.__exit__(None, None, None)
    assert _wait_idle(side)


# --- the text conventions, without a model ----------------------------------------------------


def test_the_parser_reads_calls_piece_by_piece():
    """Two calls in the Hermes layout fed one character at a time give names, pieces and ends.

    A brace inside a string must not end the arguments; fails if the parser loses its place
    when a piece ends anywhere in the layout (the worker gets pieces of any length).
    """
    text = format_call("get_weather", '{"city": "Lima", "note": "a \\"}\\" inside"}') + "\n"
    text += format_call("set_alarm", '{"label": "x", "minutes": 5}')
    parser = CallStreamParser()
    events = [event for char in text for event in parser.feed(char)]
    assert [event for event in events if isinstance(event, CallStarted)] == [
        CallStarted(0, "get_weather"),
        CallStarted(1, "set_alarm"),
    ]
    finished = [event for event in events if isinstance(event, CallFinished)]
    assert [json.loads(event.arguments) for event in finished] == [
        {"city": "Lima", "note": 'a "}" inside'},
        {"label": "x", "minutes": 5},
    ]
    pieces = "".join(event.text for event in events if isinstance(event, ArgumentsPiece) and event.index == 0)
    assert pieces == finished[0].arguments and parser.finished == 2


def test_the_scanners_hold_back_what_may_start_a_call():
    """Text streams up to a possible tag; a call found drops the text's trailing whitespace.

    Fails if a partial ``<tool_call>`` or a JSON call's opening leaks into the content, if
    text that turned out not to be a call is lost, or if a JSON answer naming a function that
    does not exist is taken for a call.
    """
    scanner = TagScanner()
    shown = [scanner.feed(piece) for piece in ["Let me look", " it up.\n<to", "ol_call>\n{"]]
    assert shown == ["Let me look", " it up.", ""] and scanner.found and scanner.before == "Let me look it up.\n"
    scanner = TagScanner()
    assert scanner.feed("a <b> c <t") == "a <b> c" and scanner.feed("able>") == " <table>" and not scanner.found
    opening = CallScanner(("get_weather", "set_alarm"))
    pieces = ["```", "json\n{", '\n  "na', 'me": "set', '_alarm"', ', "arguments"']
    assert [opening.feed(piece) for piece in pieces] == [""] * 5 + [""]
    assert opening.found and opening.json_name == "set_alarm" and opening.before == ""
    invented = CallScanner(("get_weather",))
    assert invented.feed('{"name": "') == "" and invented.feed('reverse_string"}') == '{"name": "reverse_string"}'
    assert not invented.found
    prose = CallScanner(("get_weather",))
    assert prose.feed("{") == "" and prose.feed("1, 2}") == "{1, 2}" and not prose.found
    assert prose.flush() == ""


def test_history_becomes_plain_turns_for_a_format_without_tools():
    """Calls and results become Hermes text; the tools join the system message.

    Fails if a format without tools (ChatML, llama-2) would be handed turns it cannot render
    (``content`` None, role ``tool``) or arguments as a quoted string instead of an object.
    """
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "rain?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "12 C"},
    ]
    plain = hermes_messages(messages, (WEATHER,))
    assert [m["role"] for m in plain] == ["system", "user", "assistant", "user"]
    assert plain[0]["content"].startswith("Be brief.\n\n# Tools") and '"get_weather"' in plain[0]["content"]
    assert plain[2]["content"] == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Lima"}}\n</tool_call>'
    assert plain[3]["content"] == "<tool_response>\n12 C\n</tool_response>"

"""Token counting (cl100k_base from the bundled file, Maria's overheads and calibration) and pruning."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from miso_runtime.agent.messages import AgentMessage, ToolCall, ToolSpec
from miso_runtime.agent.pruning import (
    ConversationEntry,
    apply_pruning,
    calculate_pruning,
    messages_of,
    safe_zone_tokens,
)
from miso_runtime.agent.tokens import EncodingUnavailable, TokenCounter, cl100k_file, count_text, encoding, load_cl100k
from miso_runtime.agent.tools import maria_tools
from miso_runtime.constants import PRUNED_TOOL_OUTPUT

PLACEHOLDER = "[Cleared: tool output. If you want to see the output, you can use the tool again.]"
MODEL = "anthropic:claude-sonnet-4-5"


def test_known_strings_under_cl100k():
    assert count_text("hello world") == 2
    assert encoding().encode_ordinary("hello world") == [15339, 1917]
    assert encoding().encode_ordinary("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]
    assert count_text("") == 0
    assert count_text("<|endoftext|>") > 1  # special-token text is ordinary text here, and never raises
    assert encoding().name == "cl100k_base" and encoding().n_vocab == 100277


def test_counting_needs_no_network_and_writes_no_cache(tmp_path: Path):
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {
        **os.environ,
        "TIKTOKEN_CACHE_DIR": str(cache),
        # Any download attempt would go to a port where nothing listens.
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "ALL_PROXY": "http://127.0.0.1:9",
    }
    code = (
        "import sys; from miso_runtime.agent.tokens import count_text; "
        "print(count_text('hello world'), 'requests' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2", "False"]
    assert list(cache.iterdir()) == []


def test_a_file_that_is_not_cl100k_is_refused(tmp_path: Path):
    data = bytearray(cl100k_file().read_bytes())
    data[5] = ord("A") if data[5] != ord("A") else ord("B")
    tampered = tmp_path / "cl100k_base.tiktoken"
    tampered.write_bytes(bytes(data))
    with pytest.raises(EncodingUnavailable, match="sha256"):
        load_cl100k(tampered)
    with pytest.raises(EncodingUnavailable, match="cannot read"):
        load_cl100k(tmp_path / "missing.tiktoken")


def test_maria_overheads():
    counter = TokenCounter()
    assert counter.count_request([]) == 7
    assert counter.count_string("hello world") == 7 + 2
    call = ToolCall("call_1", "read_file", '{"path": "a.txt"}')
    assistant = AgentMessage(role="assistant", content="Reading it.", tool_calls=(call,))
    assert counter.count_message(assistant) == (
        count_text("Reading it.") + count_text("call_1") + count_text("read_file") + count_text('{"path": "a.txt"}')
    )
    tool_reply = AgentMessage(role="tool", content="hello world", tool_call_id="call_1", name="read_file")
    assert counter.count_message(tool_reply) == 2
    spec = ToolSpec("list_files", "List files in a directory", {"type": "object", "properties": {}})
    schema = json.dumps(spec.schema, indent=2)
    expected_tool = (
        20 + count_text("list_files") + 2 * count_text(spec.description) + int(count_text(schema) / math.sqrt(2))
    )
    assert counter.count_tool(spec) == expected_tool
    messages = [AgentMessage(role="user", content="hello world"), assistant, tool_reply]
    assert counter.count_request(messages, [spec]) == 7 + 320 + expected_tool + 2 + counter.count_message(assistant) + 2
    real = [tool.spec for tool in maria_tools(MODEL)]
    assert counter.count_request([], real) == 7 + 320 + sum(counter.count_tool(s) for s in real)


def test_calibration_is_an_ema_per_model_within_bounds():
    counter = TokenCounter()
    assert counter.factor(MODEL) == 1.0 and counter.calibrated(MODEL, 1000) == 1000
    assert counter.calibrate(MODEL, estimated_tokens=100, actual_tokens=200) == pytest.approx(1.3)
    assert counter.calibrate(MODEL, estimated_tokens=100, actual_tokens=200) == pytest.approx(0.3 * 2 + 0.7 * 1.3)
    assert counter.calibrated(MODEL, 1000) == int(1000 * counter.factor(MODEL))
    assert counter.factor("openai:gpt-5") == 1.0
    for _ in range(20):
        counter.calibrate(MODEL, estimated_tokens=10, actual_tokens=1000)
    assert counter.factor(MODEL) == 2.0
    for _ in range(20):
        counter.calibrate("local:tiny", estimated_tokens=1000, actual_tokens=10)
    assert counter.factor("local:tiny") == 0.5
    assert counter.calibrate("other", estimated_tokens=0, actual_tokens=50) == 1.0
    assert counter.calibrate("other", estimated_tokens=50, actual_tokens=0) == 1.0

    resumed = TokenCounter()
    resumed.restore(json.loads(json.dumps(counter.state())))
    assert resumed.factor(MODEL) == 2.0 and resumed.factor("local:tiny") == 0.5
    resumed.restore({"factors": {"bad": "x", "huge": 50.0}})
    assert resumed.factor("bad") == 1.0 and resumed.factor("huge") == 1.0


# --- pruning ------------------------------------------------------------------------------------


def conversation(*outputs: str) -> list[ConversationEntry]:
    """system, user, then per output an assistant call and its tool reply (event ids ev1, ev2, ...)."""
    entries = [
        ConversationEntry(AgentMessage(role="system", content="You are helpful.")),
        ConversationEntry(AgentMessage(role="user", content="Run the commands")),
    ]
    for number, output in enumerate(outputs, 1):
        call = ToolCall(f"call_{number}", "execute_command", '{"command": "cat big"}')
        entries.append(ConversationEntry(AgentMessage(role="assistant", content="", tool_calls=(call,))))
        entries.append(
            ConversationEntry(
                AgentMessage(role="tool", content=output, tool_call_id=call.id, name=call.name), event_id=f"ev{number}"
            )
        )
    return entries


def test_nothing_is_pruned_under_the_safe_zone():
    counter = TokenCounter()
    entries = conversation("short", "also short")
    result = calculate_pruning(entries, counter=counter, safe_zone=10_000, model_name=MODEL)
    assert result.pruned_ids == [] and result.origin_token_count == result.pruned_token_count
    assert result.origin_token_count == counter.count_request(messages_of(entries))


def test_the_oldest_tool_outputs_go_first_until_under_the_zone():
    counter = TokenCounter()
    entries = conversation("alpha " * 1000, "beta " * 1000, "gamma " * 1000)
    full = counter.count_request(messages_of(entries))
    one_cleared = full - (count_text("alpha " * 1000) - count_text(PLACEHOLDER))
    result = calculate_pruning(entries, counter=counter, safe_zone=one_cleared, model_name=MODEL)
    assert result.pruned_ids == ["ev1"] and result.pruned_token_count == one_cleared
    result = calculate_pruning(entries, counter=counter, safe_zone=one_cleared - 1, model_name=MODEL)
    assert result.pruned_ids == ["ev1", "ev2"]
    assert result.origin_token_count == full and result.pruned_token_count < one_cleared

    pruned = apply_pruning(entries, result.pruned_ids)
    tool_contents = [e.message.content for e in pruned if e.message.role == "tool"]
    assert tool_contents == [PLACEHOLDER, PLACEHOLDER, "gamma " * 1000]
    assert PRUNED_TOOL_OUTPUT == PLACEHOLDER
    assert [e.message.tool_call_id for e in pruned if e.message.role == "tool"] == ["call_1", "call_2", "call_3"]
    assert counter.count_request(messages_of(pruned)) == result.raw_token_count == result.pruned_token_count


def test_outputs_already_cleared_are_not_pruned_again():
    counter = TokenCounter()
    entries = apply_pruning(conversation("alpha " * 1000, "beta " * 1000, "gamma " * 1000), ["ev1"])
    result = calculate_pruning(entries, counter=counter, safe_zone=100, model_name=MODEL)
    assert result.pruned_ids == ["ev2", "ev3"]
    result = calculate_pruning(entries, counter=counter, safe_zone=100, model_name=MODEL, already_pruned={"ev2"})
    assert result.pruned_ids == ["ev3"]
    assert result.pruned_token_count > 100  # everything prunable is gone and it is still over: reported as is


def test_pruning_compares_calibrated_counts():
    counter = TokenCounter()
    entries = conversation("alpha " * 1000, "beta " * 1000)
    raw = counter.count_request(messages_of(entries))
    assert calculate_pruning(entries, counter=counter, safe_zone=raw, model_name=MODEL).pruned_ids == []
    for _ in range(30):
        counter.calibrate(MODEL, estimated_tokens=100, actual_tokens=150)
    result = calculate_pruning(entries, counter=counter, safe_zone=raw, model_name=MODEL)
    assert result.pruned_ids == ["ev1"]
    assert result.origin_token_count == int(raw * counter.factor(MODEL))
    assert result.pruned_token_count == int(result.raw_token_count * counter.factor(MODEL)) <= raw


def test_safe_zones():
    assert safe_zone_tokens("anthropic:claude-sonnet-4-5", None) == 200_000
    assert safe_zone_tokens("anthropic/claude-sonnet-4.5", 0) == 200_000
    assert safe_zone_tokens("openai:gpt-5", None) == 400_000
    assert safe_zone_tokens("openai/gpt-5-mini", None) == 400_000
    assert safe_zone_tokens("codex/gpt-5.2", None) == 400_000
    assert safe_zone_tokens("qwen/qwen3-coder-plus", None) == 128_000
    assert safe_zone_tokens("ollama:llama3.2:3b", None) == 128_000
    # A window smaller than the named zone keeps a quarter free (at most 32768 tokens).
    assert safe_zone_tokens("local:qwen2.5-0.5b-instruct", 4096) == 3072
    assert safe_zone_tokens("ollama:llama3.2:3b", 32_768) == 24_576
    assert safe_zone_tokens("anthropic:claude-sonnet-4-5", 200_000) == 200_000 - 32_768
    assert safe_zone_tokens("anthropic:claude-sonnet-4-5", 1_000_000) == 200_000

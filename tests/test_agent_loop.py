"""The agent loop on its own: event order, the queue, cancels and restore, with an in-process model.

The model here is a list of turns in memory (the providers' wire formats are tested against
the stand-ins in ``test_agent_models.py``, and everything together in ``test_maria_tasks.py``);
what is under test is the loop's own bookkeeping, with Maria's real tools in a temporary dir.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from miso_runtime.agent import events as ev
from miso_runtime.agent.budget import TokenBudget
from miso_runtime.agent.conversation import Conversation, restore
from miso_runtime.agent.loop import AgentLoop
from miso_runtime.agent.messages import AgentMessage, Cancelled, CancelToken, ModelTurn, ToolCall
from miso_runtime.agent.tools.base import ToolContext
from miso_runtime.agent.tools.registry import maria_tools, run_tool_call
from miso_runtime.chat.types import ProviderError

pytestmark = pytest.mark.timeout(30)


class ListModel:
    """Answers each request with the next turn; a turn that is an exception is raised."""

    name = "test:list"
    context_tokens = 100_000

    def __init__(self, turns, gate: threading.Event | None = None) -> None:
        self.turns = list(turns)
        self.requests: list[list[AgentMessage]] = []
        self.gate = gate

    def complete(self, messages, tools, cancel: CancelToken, on_text=None) -> ModelTurn:
        self.requests.append(list(messages))
        if self.gate is not None:
            while not self.gate.wait(0.01):
                if cancel.cancelled:
                    raise Cancelled
        turn = self.turns.pop(0) if self.turns else ModelTurn("the end")
        if isinstance(turn, Exception):
            raise turn
        if on_text is not None and turn.content:
            for word in turn.content.split(" "):
                on_text(word)
        return turn


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict] = []
        self.queues: list[list] = []
        self.done = threading.Condition()

    def emit(self, desc: dict) -> str:
        envelope = ev.envelope(desc)
        with self.done:
            self.events.append(envelope)
            self.done.notify_all()
        return envelope["id"]

    def msgs(self) -> list[str]:
        return [event["desc"]["msg"] for event in self.events]

    def wait_for(self, msg: str, count: int = 1) -> None:
        with self.done:
            assert self.done.wait_for(lambda: self.msgs().count(msg) >= count, timeout=10), self.msgs()


def _loop(tmp_path, model, recorder, conversation=None):
    context = ToolContext(cwd=tmp_path.resolve())
    return AgentLoop(
        model=model,
        tools=maria_tools("test"),
        run_tool=lambda tool, call, cancel: run_tool_call([tool], call, replace(context, cancel=cancel)),
        emit=recorder.emit,
        queue_changed=recorder.queues.append,
        conversation=conversation,
        system_prompt="be brief",
        budget=TokenBudget("test:list", 100_000),
    )


def _call(name: str, arguments: str, call_id: str = "call_1") -> ToolCall:
    return ToolCall(call_id, name, arguments)


def test_a_run_emits_maria_order_and_the_model_sees_the_tool_output(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    model = ListModel([ModelTurn("", (_call("read_file", '{"path": "a.txt"}'),)), ModelTurn("done")])
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    message_id, queued = loop.post_message("read a.txt")
    assert queued is False
    recorder.wait_for("PostConversation")
    order = [m for m in recorder.msgs() if m not in ("ToolAdded",)]
    assert order == [
        "ModelLoaded",
        "SystemPromptSet",
        "MessageQueued",
        "PreConversation",
        "MessageUnqueued",
        "UserMessage",
        "TokenCounted",
        "ContextPruned",
        "AssistantMessage",
        "PreToolCall",
        "PostToolCall",
        "TokenCounted",
        "ContextPruned",
        "AssistantMessage",
        "PostConversation",
    ]
    second = model.requests[1]
    assert second[0] == AgentMessage("system", "be brief")
    assert second[-1].role == "tool" and "hello" in second[-1].content and second[-1].tool_call_id == "call_1"
    queued_event = next(e["desc"] for e in recorder.events if e["desc"]["msg"] == "MessageQueued")
    assert queued_event == {"msg": "MessageQueued", "message": {"id": message_id}}


def test_messages_queue_during_a_run_and_are_taken_after_a_turn_without_tools(tmp_path):
    gate = threading.Event()
    model = ListModel([ModelTurn("one"), ModelTurn("two")], gate=gate)
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    loop.post_message("first")
    recorder.wait_for("UserMessage")  # the run has taken the first message and waits for the model
    second_id, queued = loop.post_message("second")
    assert queued is True and [m.id for m in loop.queued_messages()] == [second_id]
    gate.set()
    recorder.wait_for("PostConversation")
    assert recorder.msgs().count("PreConversation") == 1
    assert [e["desc"]["content"] for e in recorder.events if e["desc"]["msg"] == "UserMessage"] == ["first", "second"]
    assert recorder.queues[-1] == []


def test_cancel_unqueues_then_cancels_without_post_conversation(tmp_path):
    gate = threading.Event()
    model = ListModel([ModelTurn("never")], gate=gate)
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    loop.post_message("first")
    recorder.wait_for("UserMessage")  # the run has taken the first message
    waiting_id, _ = loop.post_message("waiting")
    dropped = loop.cancel()
    assert [m.id for m in dropped] == [waiting_id]
    recorder.wait_for("Cancelled")
    tail = recorder.msgs()[recorder.msgs().index("PreConversation") :]
    assert tail.index("MessageUnqueued", 2) < tail.index("Cancelled")
    assert "PostConversation" not in tail
    assert loop.cancel() is None and not loop.busy


def test_a_gentle_stop_ends_with_cancelled_then_post_conversation(tmp_path):
    gate = threading.Event()
    model = ListModel([ModelTurn("", (_call("list_files", '{"path": "."}'),)), ModelTurn("x")], gate=gate)
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    loop.post_message("go")
    recorder.wait_for("UserMessage")
    loop.stop_soon()
    gate.set()
    recorder.wait_for("PostConversation")
    assert recorder.msgs()[-2:] == ["Cancelled", "PostConversation"]
    assert len(model.requests) == 1


def test_a_provider_error_fails_the_run_and_the_next_message_runs(tmp_path):
    model = ListModel([ProviderError("provider_unavailable", "down"), ModelTurn("up again")])
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    loop.post_message("one")
    recorder.wait_for("Failed")
    failed = [e["desc"] for e in recorder.events if e["desc"]["msg"] == "Failed"][0]
    assert failed["error"] == {"code": "provider_unavailable", "message": "down"}
    loop.post_message("two")
    recorder.wait_for("PostConversation")


def test_unknown_tools_get_no_events_and_the_model_is_told(tmp_path):
    model = ListModel([ModelTurn("", (_call("teleport", "{}"),)), ModelTurn("ok")])
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    loop.post_message("go")
    recorder.wait_for("PostConversation")
    assert "PreToolCall" not in recorder.msgs()
    assert model.requests[1][-1].content == "Unknown tool: teleport"


def test_a_conversation_is_rebuilt_from_its_log(tmp_path):
    (tmp_path / "a.txt").write_text("hello\n")
    model = ListModel([ModelTurn("", (_call("read_file", '{"path": "a.txt"}'),)), ModelTurn("done")])
    recorder = Recorder()
    loop = _loop(tmp_path, model, recorder)
    loop.post_message("read a.txt")
    recorder.wait_for("PostConversation")
    restored = restore(recorder.events)
    assert [m.role for m in restored.conversation.messages(None)] == ["user", "assistant", "tool", "assistant"]
    assert restored.system_prompt == "be brief" and restored.has_prompt
    post_id = next(e["id"] for e in recorder.events if e["desc"]["msg"] == "PostToolCall")
    pruned = restore([*recorder.events, ev.envelope(ev.pruned(post_id))])
    assert pruned.conversation.entries[2].pruned


def test_unanswered_calls_get_a_tool_message_before_the_next_request():
    conversation = Conversation()
    conversation.add(AgentMessage("user", "x"))
    conversation.add(
        AgentMessage("assistant", "", tool_calls=(_call("read_file", "{}"), _call("nope", "{}", "call_2")))
    )
    conversation.answer_unanswered_calls(["read_file"])
    answers = [entry.message for entry in conversation.entries[2:]]
    assert [(m.tool_call_id, m.role) for m in answers] == [("call_1", "tool"), ("call_2", "tool")]
    assert answers[1].content == "Unknown tool: nope"


def test_old_tool_outputs_are_pruned_first_when_the_context_fills(tmp_path):
    (tmp_path / "big.txt").write_text("".join(f"line {i} of a long file with words in it\n" for i in range(300)))
    reads = [ModelTurn("", (_call("read_file", '{"path": "big.txt"}', f"call_{i}"),)) for i in range(4)]
    model = ListModel([*reads, ModelTurn("done")])
    recorder = Recorder()
    context = ToolContext(cwd=tmp_path.resolve())
    loop = AgentLoop(
        model=model,
        tools=maria_tools("test"),
        run_tool=lambda tool, call, cancel: run_tool_call([tool], call, replace(context, cancel=cancel)),
        emit=recorder.emit,
        queue_changed=recorder.queues.append,
        system_prompt="be brief",
        budget=TokenBudget("test:list", 12_000),  # a small local model: about two file reads fit
    )
    loop.post_message("read it again and again")
    recorder.wait_for("PostConversation")
    posts = [e["id"] for e in recorder.events if e["desc"]["msg"] == "PostToolCall"]
    pruned = [e["desc"]["id"] for e in recorder.events if e["desc"]["msg"] == "Pruned"]
    assert pruned and pruned == posts[: len(pruned)]  # oldest first, never the newest
    assert len(pruned) < len(posts)
    last_request = model.requests[-1]
    tool_texts = [m.content for m in last_request if m.role == "tool"]
    assert tool_texts[0].startswith("[Cleared: tool output.")
    assert "line 299" in tool_texts[-1]
    counted = [e["desc"] for e in recorder.events if e["desc"]["msg"] == "ContextPruned"]
    assert any(c["pruned_token_count"] < c["origin_token_count"] for c in counted)

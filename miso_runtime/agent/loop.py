"""The agent loop: model turns and tool calls until the model stops, with a queue of user messages.

One :class:`AgentLoop` is one agent (a Maria task). A message that arrives while the agent is
idle starts a *run*; one that arrives during a run waits in the queue and is taken when the
model ends a turn without tool calls. A run emits, in Maria's order::

    PreConversation
      MessageUnqueued, UserMessage            (when the previous turn called no tool)
      TokenCounted, Pruned*, ContextPruned    (before each model request)
      AssistantMessage
      PreToolCall, PostToolCall  (per call)
    PostConversation | Failed | Cancelled

Threads: the run has a thread of its own, so the owner (a worker's command loop) can queue,
cancel and inspect while it runs. Every change of the queue and every event that ends a run is
emitted under one lock, which keeps the stream in a consistent order: a message can never be
queued into a run that has already decided to end, and a new run's ``PreConversation`` never
precedes the previous run's last event.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..chat.types import ProviderError
from . import events
from .conversation import IMMEDIATE_TEMPLATE, Conversation, unknown_tool_text
from .events import QueuedMessage
from .messages import (
    AgentMessage,
    Cancelled,
    CancelToken,
    ModelTurn,
    TextSink,
    ToolCall,
    ToolCallingModel,
    ToolSpec,
)

logger = logging.getLogger(__name__)

#: Seconds a hard cancel waits for the run to end before it answers anyway.
CANCEL_JOIN_S = 2.0


class AgentTool(Protocol):
    spec: ToolSpec


class ToolRunner(Protocol):
    """Runs one call of a known tool; raises :class:`Cancelled` when the cancel token fires."""

    def __call__(self, tool: Any, call: ToolCall, cancel: CancelToken) -> Any: ...


class ContextBudget(Protocol):
    """Token counting and pruning before each request (Maria's counter and pruner)."""

    def fit(self, conversation: Conversation, system_prompt: str | None, tools: list[ToolSpec]) -> "BudgetFit": ...

    def observe(self, estimated: int, usage: dict[str, Any] | None) -> None: ...


@dataclass(frozen=True)
class BudgetFit:
    #: The estimate for the request as it goes out (after pruning).
    token_count: int
    #: Event ids of the ``PostToolCall`` outputs cleared for this request, oldest first.
    pruned_event_ids: tuple[str, ...]
    origin_token_count: int
    pruned_token_count: int


Emit = Callable[[dict[str, Any]], str]
QueueChanged = Callable[[list[QueuedMessage]], None]


class AgentLoop:
    """One agent: its conversation, tools, queue and the run in progress (if any)."""

    def __init__(
        self,
        *,
        model: ToolCallingModel,
        tools: list[Any],
        run_tool: ToolRunner,
        emit: Emit,
        queue_changed: QueueChanged,
        conversation: Conversation | None = None,
        system_prompt: str | None = None,
        budget: ContextBudget | None = None,
        enabled_tools: set[str] | None = None,
        on_text: TextSink | None = None,
    ) -> None:
        """``on_text`` is told each piece of a reply's text as it streams (from the request's
        thread); the ``AssistantMessage`` event still carries the whole text afterwards."""
        self.model = model
        self._on_text = on_text
        self.conversation = conversation or Conversation()
        self.system_prompt = system_prompt
        self._tools = {tool.spec.name: tool for tool in tools}
        self._enabled = set(self._tools) if enabled_tools is None else set(enabled_tools) & set(self._tools)
        self._run_tool = run_tool
        self._emit = emit
        self._queue_changed = queue_changed
        self._budget = budget
        self._lock = threading.Lock()
        self._pending: deque[QueuedMessage] = deque()
        self._immediate: list[str] = []
        self._thread: threading.Thread | None = None
        self._cancel = CancelToken()
        self._stop_soon = False
        self._announced = False

    # --- what the owner asks ----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def queued_messages(self) -> list[QueuedMessage]:
        with self._lock:
            return list(self._pending)

    def set_enabled_tools(self, names: list[str]) -> None:
        """Switch on exactly ``names`` (unknown names are ignored) from the next request on."""
        self._enabled = set(names) & set(self._tools)

    def set_system_prompt(self, prompt: str | None) -> None:
        self.system_prompt = prompt
        self._emit(events.system_prompt_set(prompt))

    def post_message(
        self,
        content: str,
        web_search: bool = False,
        message_id: str | None = None,
        images: tuple[str, ...] = (),
    ) -> tuple[str, bool]:
        """Queue a user message; starts a run when idle. Returns its id and whether it waited.

        ``message_id`` is the id its ``MessageQueued``/``MessageUnqueued`` carry (a new one when
        None): a face that shows the message before the agent has it names it first.
        """
        message = QueuedMessage(message_id or events.new_id(), content, web_search, tuple(images))
        self._announce()
        with self._lock:
            queued = self._thread is not None
            self._pending.append(message)
            self._emit(events.message_queued(message.id))
            self._queue_changed(list(self._pending))
            if not queued:
                self._start_run_locked()
        return message.id, queued

    def immediate_message(self, content: str) -> None:
        """A message the running agent reads before its next request (an idle one simply runs it)."""
        with self._lock:
            if self._thread is not None:
                self._immediate.append(content)
                return
        self.post_message(content)

    def stop_soon(self) -> None:
        """Maria's gentle cancel: the run stops before its next request (``Cancelled``, ``PostConversation``)."""
        with self._lock:
            if self._thread is not None:
                self._stop_soon = True

    def cancel(self) -> list[QueuedMessage] | None:
        """Stop the run now and drop the queue; None when nothing runs.

        The dropped messages are unqueued (``MessageUnqueued`` each) before the run's
        ``Cancelled``, as in Maria; no ``PostConversation`` follows.
        """
        with self._lock:
            thread = self._thread
            if thread is None:
                return None
            dropped = list(self._pending)
            self._pending.clear()
            self._immediate.clear()
            self._cancel.cancel()
            for message in dropped:
                self._emit(events.message_unqueued(message.id))
            if dropped:
                self._queue_changed([])
        # The run sees the cancel only now that the lock is free, so its ``Cancelled`` follows these.
        thread.join(CANCEL_JOIN_S)
        return dropped

    # --- the run ----------------------------------------------------------------------------

    def _announce(self) -> None:
        """``ModelLoaded``, ``SystemPromptSet`` and ``ToolAdded`` once, before the first run."""
        with self._lock:
            if self._announced:
                return
            self._announced = True
            self._emit(events.model_loaded(self.model.name))
            self._emit(events.system_prompt_set(self.system_prompt))
            for tool in self._tools.values():
                self._emit(events.tool_added(tool.spec))

    def _start_run_locked(self) -> None:
        self._cancel = CancelToken()
        self._stop_soon = False
        self._thread = threading.Thread(target=self._run, args=(self._cancel,), name="agent-run", daemon=True)
        self._thread.start()

    def _run(self, cancel: CancelToken) -> None:
        gentle = False
        try:
            self._emit(events.simple("PreConversation"))
            self._converse(cancel)
            endings = [events.simple("PostConversation")]
        except Cancelled:
            endings = [events.simple("Cancelled")]
        except _GentleStop:
            gentle, endings = True, [events.simple("Cancelled"), events.simple("PostConversation")]
        except ProviderError as exc:
            logger.info("model request failed: %s (%s)", exc.message, exc.code)
            endings = [events.failed(exc.code, exc.message)]
        except Exception as exc:  # noqa: BLE001 - a broken run fails this run only, never the agent
            logger.exception("agent run failed")
            endings = [events.failed("agent_error", f"{type(exc).__name__}: {exc}")]
        with self._lock:
            if cancel.cancelled:  # a cancel that came as the run ended still ends it as cancelled
                endings = [events.simple("Cancelled")]
            for ending in endings:
                self._emit(ending)
            self._thread = None
            if self._pending and not cancel.cancelled and not gentle:
                # Messages queued into a run that failed get a run of their own; after a gentle
                # stop they wait in the queue for the next message.
                self._start_run_locked()

    def _converse(self, cancel: CancelToken) -> None:
        need_user = True
        while True:
            if cancel.cancelled:
                raise Cancelled
            with self._lock:
                if self._stop_soon:
                    raise _GentleStop
                message: QueuedMessage | None = None
                if need_user:
                    if not self._pending:
                        return
                    message = self._pending.popleft()
                    self._emit(events.message_unqueued(message.id))
                    self._queue_changed(list(self._pending))
                immediate, self._immediate = self._immediate, []
            if message is not None:
                self._emit(events.user_message(message.content, message.images))
                self.conversation.add(AgentMessage("user", message.content, images=message.images))
            for text in immediate:
                self._emit(events.user_message(text))
                self.conversation.add(AgentMessage("user", IMMEDIATE_TEMPLATE.format(message=text)))
            turn = self._request(cancel)
            self.conversation.add(AgentMessage("assistant", turn.content, tool_calls=turn.tool_calls))
            self._emit(events.assistant_message(turn))
            for call in turn.tool_calls:
                self._call_tool(call, cancel)
            need_user = not turn.tool_calls

    def _request(self, cancel: CancelToken) -> ModelTurn:
        self.conversation.answer_unanswered_calls(self._tools)
        specs = [tool.spec for name, tool in self._tools.items() if name in self._enabled]
        estimate = 0
        if self._budget is not None:
            fit = self._budget.fit(self.conversation, self.system_prompt, specs)
            estimate = fit.token_count
            self._emit(events.token_counted(fit.origin_token_count))
            for event_id in fit.pruned_event_ids:
                self._emit(events.pruned(event_id))
            self._emit(events.context_pruned(fit.origin_token_count, fit.pruned_token_count))
        turn = self.model.complete(self.conversation.messages(self.system_prompt), specs, cancel, self._on_text)
        if self._budget is not None:
            self._budget.observe(estimate, turn.usage)
        return turn

    def _call_tool(self, call: ToolCall, cancel: CancelToken) -> None:
        if cancel.cancelled:
            raise Cancelled
        tool = self._tools.get(call.name) if call.name in self._enabled else None
        if tool is None:
            # Maria: no Pre/PostToolCall for an unknown tool; the model is told, and goes on.
            self.conversation.add(
                AgentMessage("tool", unknown_tool_text(call.name), tool_call_id=call.id, name=call.name)
            )
            return
        self._emit(events.pre_tool_call(call))
        outcome = self._run_tool(tool, call, cancel)
        event_id = self._emit(events.post_tool_call(call, outcome.text, outcome.result, outcome.error))
        self.conversation.add(AgentMessage("tool", outcome.text, tool_call_id=call.id, name=call.name), event_id)


class _GentleStop(Exception):
    """Internal: the run saw a gentle cancel at its poll point."""

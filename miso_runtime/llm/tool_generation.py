"""One generation with tools on a loaded llama.cpp model (run inside the ``llm`` worker).

How a request becomes calls:

1. **The prompt.** The model's own chat handler renders it, exactly as for a plain chat (same
   template, stop tokens and sampling defaults): the handler is called through
   ``Llama.create_chat_completion`` with ``create_completion`` shadowed on the instance, which
   hands us the prompt tokens and completion arguments instead of generating. A model whose
   chat template renders tools, calls and results in the Hermes layout (Qwen2.5's; probed once
   per model with a made-up tool) gets the tools through its template; any other gets our
   Hermes section and plain-text turns (:func:`~miso_runtime.llm.tool_calls.hermes_messages`).
2. **Free text** (``tool_choice`` ``auto``, or tools only in the history): generated with no
   grammar and streamed, until the model shows that it is calling a function: it writes
   ``<tool_call>`` anywhere, or its answer starts as a JSON object whose first key is
   ``"name"`` with the name of an allowed function (bare or in a `````json`` fence), which is
   how Qwen2.5-Coder-0.5B often answers despite its template's instructions (measured: three
   of three prompts with tools in the prompt). What could be the start of either is held back.
3. **The calls** (at once for ``required`` or a named function): generation goes on from the
   prompt plus the text before the call plus ``<tool_call>``, under the grammar of
   :mod:`miso_runtime.llm.tool_grammar`, so each call is one of the allowed functions with
   JSON arguments shaped by its schema; a model that had started a JSON answer of its own
   starts over in the Hermes layout. llama-cpp-python reuses the evaluated prompt (its
   longest common prefix), so going on costs only the new tokens.
   :class:`~miso_runtime.llm.tool_calls.CallStreamParser` turns the text into
   :class:`~workers.protocol.llm.ToolCallDelta` events as it comes.

The finish reason is ``tool_calls`` when at least one call was completed, ``length`` when the
token budget ran out (a call cut short stays as far as it got, as OpenAI leaves it), ``abort``
when the caller aborted; ``Abort`` and ``Shutdown`` are read between two tokens in both phases.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from workers.protocol.base import Event
from workers.protocol.llm import Generate, TextChunk, ToolCallDelta, ToolRequest

from .tool_calls import (
    CALL_HEAD,
    CALL_NAME_END,
    CALL_TAIL,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    ArgumentsPiece,
    CallFinished,
    CallStarted,
    CallStreamParser,
    TagScanner,
    has_tool_history,
    hermes_messages,
    new_call_id,
    template_messages,
)
from .tool_grammar import grammar_for

logger = logging.getLogger(__name__)

#: What the native-template probe renders (names nobody's real tool has).
_PROBE_NAME = "miso_probe_function"
_PROBE_ARGUMENTS = {"query": "miso_probe_argument"}
_PROBE_RESULT = "miso_probe_result"
_PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": _PROBE_NAME,
        "description": "probe",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
}
#: What may stand before an answer that is a JSON call in the model's own style.
_JSON_CALL_FENCES = ("", "```json", "```")
_WHITESPACE = re.compile(r"\s+")


@dataclass
class Outcome:
    """How a generation ended, for ``GenerationDone``."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    first_at: float | None


class _Rendered(Exception):
    """Raised by the shadowed ``create_completion``: the chat handler has built its prompt."""


def render(llm: Any, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, chat: dict[str, Any]) -> dict:
    """The ``create_completion`` arguments the model's chat handler makes of ``messages``.

    ``chat`` holds the other ``create_chat_completion`` arguments (sampling, ``stream``). The
    prompt comes back as tokens, so that a later phase can go on from it.
    """
    captured: dict[str, Any] = {}

    def capture(*args: Any, **kwargs: Any) -> Any:
        captured.update(kwargs)
        if args:
            captured["prompt"] = args[0]
        raise _Rendered

    llm.create_completion = capture
    try:
        llm.create_chat_completion(messages=messages, tools=tools, **chat)
    except _Rendered:
        pass
    finally:
        del llm.create_completion
    if "prompt" not in captured:
        raise RuntimeError("the model's chat handler generated without llama-cpp-python's create_completion")
    if isinstance(captured["prompt"], str):
        captured["prompt"] = llm.tokenize(captured["prompt"].encode("utf-8"), add_bos=True, special=True)
    captured["prompt"] = list(captured["prompt"])
    return captured


class PlainText(TagScanner):
    """A scanner that finds nothing: with no tools on offer, every character is text."""

    def feed(self, piece: str) -> str:
        return piece

    def flush(self) -> str:
        return ""


class CallScanner(TagScanner):
    """:class:`TagScanner` that also takes an answer opening as a JSON call of a known function.

    While the answer so far, without whitespace, could still grow into ``{"name":"<function>"``
    (bare or after a `````json`` fence) for one of ``names``, nothing is shown; once it has,
    :attr:`found` is set, :attr:`json_name` names the function and :attr:`before` is empty (the
    call starts over in the Hermes layout). A JSON answer naming a function that does not exist
    (Qwen2.5-Coder-0.5B invents ``reverse_string`` when asked to write one) stays text.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self._starts = {f'{fence}{{"name":"{name}"': name for name in names for fence in _JSON_CALL_FENCES}
        self._opening: str | None = ""
        self.json_name: str | None = None

    @property
    def before(self) -> str:
        return "" if self.json_name else super().before

    def feed(self, piece: str) -> str:
        if self._opening is None:
            return super().feed(piece)
        self._opening += piece
        compact = _WHITESPACE.sub("", self._opening)
        for start, name in self._starts.items():
            if compact.startswith(start):
                self.found, self.json_name = True, name
                return ""
        if any(start.startswith(compact) for start in self._starts):
            return ""
        held, self._opening = self._opening, None
        return super().feed(held)

    def flush(self) -> str:
        if self._opening:
            held, self._opening = self._opening, None
            return super().feed(held) + super().flush()
        return super().flush()


class ToolGenerator:
    """Generations with tools (or with calls and results in their history) on one loaded model."""

    def __init__(self, llm: Any) -> None:
        self._llm = llm
        self._native: bool | None = None

    @staticmethod
    def wanted(command: Generate) -> bool:
        """Whether ``command`` needs this path (a plain chat keeps llama-cpp-python's own)."""
        return command.tools is not None or has_tool_history(command.messages)

    @property
    def native(self) -> bool:
        """Whether the model's chat template renders tools, calls and results in the Hermes layout."""
        if self._native is None:
            self._native = self._probe()
            logger.info("tool prompts: %s", "the model's chat template" if self._native else "our Hermes section")
        return self._native

    def _probe(self) -> bool:
        call = {
            "id": "call_probe",
            "type": "function",
            "function": {"name": _PROBE_NAME, "arguments": _PROBE_ARGUMENTS},
        }
        messages = [
            {"role": "user", "content": "probe"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_probe", "name": _PROBE_NAME, "content": _PROBE_RESULT},
        ]
        try:
            prompt = render(self._llm, messages, [_PROBE_TOOL], {"stream": True})["prompt"]
            text = self._llm.detokenize(prompt, special=True).decode("utf-8", errors="replace")
            text = text.replace("\u2581", " ")  # SentencePiece's space, where its vocabulary spells it out
        except Exception as exc:  # noqa: BLE001 - a template that cannot render tools is simply not native
            logger.info("the chat template does not render tools (%s: %s)", type(exc).__name__, exc)
            return False
        written = f"{TOOL_CALL_OPEN}{CALL_HEAD}{_PROBE_NAME}{CALL_NAME_END}{json.dumps(_PROBE_ARGUMENTS)}{CALL_TAIL}"
        listed = text.count(_PROBE_NAME) >= 2  # in the tool list and in the call
        return listed and (written + TOOL_CALL_CLOSE) in text and _PROBE_RESULT in text

    def run(
        self,
        command: Generate,
        chat: dict[str, Any],
        aborted: Callable[[], bool],
        send: Callable[[Event], None],
    ) -> Outcome:
        """Generate for ``command``; ``chat`` holds its ``create_chat_completion`` sampling arguments."""
        request = command.tools
        if self.native:
            messages = template_messages(command.messages)
            listed = list(request.tools) if request else None
        else:
            messages = hermes_messages(command.messages, request.tools if request else None)
            listed = None
        completion = render(self._llm, messages, listed, chat)
        run = _Run(self._llm, command.request_id, completion, aborted, send)
        if request is None:
            finish = run.text(PlainText())
        elif request.mode == "required":
            finish = run.calls(request, "")
        else:
            scanner = CallScanner(request.allowed)
            finish = run.text(scanner)
            if finish == "call" and scanner.json_name:  # keep the function the model chose
                finish = run.calls(dataclasses.replace(request, allowed=(scanner.json_name,)), TOOL_CALL_OPEN)
            elif finish == "call":
                finish = run.calls(request, scanner.before + TOOL_CALL_OPEN)
        return Outcome(finish, len(completion["prompt"]), run.tokens, run.first_at)


def _parsed(arguments: str) -> Any:
    """Arguments as a comparable value (parsed JSON; the text itself if it is not JSON)."""
    try:
        return json.loads(arguments)
    except ValueError:
        logger.warning("a tool call's arguments are not JSON: %.200s", arguments)
        return arguments


class _Run:
    """The state of one generation across its phases."""

    def __init__(
        self,
        llm: Any,
        request_id: str,
        completion: dict[str, Any],
        aborted: Callable[[], bool],
        send: Callable[[Event], None],
    ) -> None:
        self._llm = llm
        self._request_id = request_id
        self._completion = completion
        self._aborted = aborted
        self._send = send
        self.tokens = 0
        self.first_at: float | None = None
        self._calls: list[tuple[str, Any]] = []
        self._held: list[ToolCallDelta] = []

    def _pieces(self, **overrides: Any) -> Iterator[tuple[str, str | None]]:
        """(text, finish_reason) of each streamed chunk; stops (and frees the stream) on abort."""
        with contextlib.closing(self._llm.create_completion(**{**self._completion, **overrides})) as chunks:
            for chunk in chunks:
                if self._aborted():
                    yield "", "abort"
                    return
                choice = chunk["choices"][0]
                text = choice.get("text") or ""
                if text:
                    self.tokens += 1
                    if self.first_at is None:
                        self.first_at = time.perf_counter()
                yield text, choice.get("finish_reason")

    def text(self, scanner: TagScanner) -> str:
        """Free text until the end, or until ``scanner`` finds a call (then ``"call"``)."""
        finish = "stop"
        with contextlib.closing(self._pieces()) as pieces:
            for piece, reason in pieces:
                shown = scanner.feed(piece) if piece else ""
                if shown:
                    self._send(TextChunk(self._request_id, shown))
                if scanner.found:
                    return "call"
                if reason:
                    finish = reason
        if finish == "abort":
            return finish
        rest = scanner.flush()
        if rest:
            self._send(TextChunk(self._request_id, rest))
        return finish

    def calls(self, request: ToolRequest, written: str) -> str:
        """Calls under the grammar, going on after ``written`` (text and ``<tool_call>``, or nothing)."""
        opened = bool(written)
        prompt = list(self._completion["prompt"])
        if opened:
            prompt += self._llm.tokenize(written.encode("utf-8"), add_bos=False, special=True)
        budget = self._completion.get("max_tokens")
        if budget is not None and budget > 0:
            budget -= self.tokens
            if budget <= 0:
                return "length"
        if opened and len(prompt) >= self._llm.n_ctx():
            return "length"  # the text filled the context (a prompt that does not fit raises, below)
        parser = CallStreamParser()
        if opened:
            parser.feed(TOOL_CALL_OPEN)
        grammar = grammar_for(self._llm, request, opened=opened)
        finish = "stop"
        with contextlib.closing(self._pieces(prompt=prompt, grammar=grammar, stop=[], max_tokens=budget)) as pieces:
            for piece, reason in pieces:
                for event in parser.feed(piece) if piece else ():
                    if not self._take(event):
                        return "tool_calls"  # the model repeated a call: the answer is complete
                if reason:
                    finish = reason
        if finish == "stop" and parser.finished:
            return "tool_calls"
        return finish

    def _take(self, event: CallStarted | ArgumentsPiece | CallFinished) -> bool:
        """Send what ``event`` adds to the answer; False for a call that repeats an earlier one.

        The first call streams as it is generated. Small models given ``parallel_tool_calls``
        tend to write the same call again and again until the budget runs out (SmolLM2-135M
        does every time), so a later call is held until it is complete, and one that repeats
        an earlier call of the answer ends the answer instead of being sent.
        """
        if isinstance(event, CallStarted):
            delta = ToolCallDelta(self._request_id, event.index, new_call_id(), event.name, "")
        elif isinstance(event, ArgumentsPiece):
            delta = ToolCallDelta(self._request_id, event.index, None, None, event.text)
        else:
            call = (event.name, _parsed(event.arguments))
            if call in self._calls:
                return False
            self._calls.append(call)
            for held in self._held:
                self._send(held)
            self._held = []
            return True
        if event.index == 0:
            self._send(delta)
        else:
            self._held.append(delta)
        return True

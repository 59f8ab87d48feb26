"""NudgeNik: what state is a coding agent's session in, read from its terminal by a model.

``GET /api/askNudgenik/<session>`` and the background checker both:

1. have the ``agents`` worker capture the pane's last 100 lines (``capture_pane``, which also
   notices agent signals there; :mod:`.nudges`);
2. cut the agent's latest reply out of them (:func:`extract_latest_response`): the lines above
   the last prompt line (``❯``/``›``), without separators and status lines, plus a menu of
   numbered choices below it;
3. ask the target ``nudgenik.target`` names (:mod:`.oneshot`) to classify it as one of
   :data:`STATES`, with a confidence, evidence and a summary (:data:`SCHEMA`).

The checker (:meth:`NudgeNik.start_checker`) runs in the server beside the chat models: 10 s
after the start and then every 15 s, it asks about each session the worker names as waiting
(running, no nudge, output quiet for 15 s, no agent signal for 5 min), and stores the answer as
the session's nudge, which the dashboard shows. Errors carry schmux's statuses and texts (the
face answers them in plain text). Nothing here imports Flask or gevent; in the server its
thread is a greenlet.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from .. import constants
from ..chat.types import ResponseSchema
from ..errors import MisoError
from .nudges import encode_nudge
from .oneshot import (
    InvalidAnswer,
    OneShot,
    OneShotError,
    TargetMissingSecrets,
    TargetNotFound,
    string_field,
    string_list_field,
)

logger = logging.getLogger(__name__)

#: The states NudgeNik chooses from (the dashboard picks its emoji by these names).
STATES = ("Needs Authorization", "Needs Feature Clarification", "Needs User Testing", "Completed")
CONFIDENCES = ("high", "medium", "low")

RESPONSE_PLACEHOLDER = "{{AGENT_LAST_RESPONSE}}"

#: The question; the agent's latest reply replaces :data:`RESPONSE_PLACEHOLDER`.
PROMPT = """
You are given the most recent reply of a coding assistant working in a terminal.

Decide which state its session is in now, judging ONLY by that reply.

Do not:
- carry on with the work
- propose next steps
- ask questions back

Pick exactly ONE of these states:
- Needs Authorization
- Needs Feature Clarification
- Needs User Testing
- Completed

When more than one fits, pick the one that blocks progress, or else the one that ends the work.

A reply that reports the conversation was compacted counts as Needs Feature Clarification.

Always pick "Needs Authorization" when the reply:
- shows a menu, numbered options or a question to confirm (such as "Do you want to proceed?",
  "Proceed?", "Choose an option", "What do you want to do?");
- reports a rate limit and offers to wait or to upgrade.

The fields of the answer:
- state: one of the four states, spelled as above;
- confidence: "high", "medium" or "low";
- evidence: a few short quotes or facts from the reply that show the state;
- summary: one short sentence about the situation.

How to write the summary:
- never use the words "agent", "model", "system" or "it";
- do not write about the software as if it were a person;
- start with the situation itself ("Implementation is complete and tests pass", not "The
  assistant has finished...").

Answer with one JSON object and nothing else.

The reply:
<<<
{{AGENT_LAST_RESPONSE}}
>>>
"""

SCHEMA = ResponseSchema(
    "nudgenik",
    {
        "type": "object",
        "properties": {
            "state": {"type": "string", "enum": list(STATES)},
            "confidence": {"type": "string", "enum": list(CONFIDENCES)},
            "evidence": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"},
        },
        "required": ["state", "confidence", "evidence", "summary"],
        "additionalProperties": False,
    },
)

DISABLED_TEXT = "Nudgenik is disabled. Configure a target in settings."

# --- reading the pane -----------------------------------------------------------------------

_PROMPT_MARKS = ("❯", "›")


def is_prompt_line(text: str) -> bool:
    """A line where the agent waits for input (Claude Code's ``❯``, Codex's ``›``)."""
    return text.strip().startswith(_PROMPT_MARKS)


def is_separator_line(text: str) -> bool:
    """A rule drawn across the screen: ten bytes or more, over 80 % one character."""
    if len(text.encode("utf-8")) < 10:
        return False
    return text.count(text[0]) / len(text) > 0.8


def is_status_line(text: str) -> bool:
    """Claude Code's tool-result lines (``⎿``): noise for the question asked."""
    return text.strip().startswith("⎿")


def is_choice_line(text: str) -> bool:
    """A numbered menu entry (``1. Yes``, ``❯ 2) No``)."""
    trimmed = text.strip()
    if trimmed.startswith(_PROMPT_MARKS):
        trimmed = trimmed[1:].strip()
    cut = min((i for i in (trimmed.find("."), trimmed.find(")")) if i >= 0), default=-1)
    return cut > 0 and trimmed[:cut].isascii() and trimmed[:cut].isdigit()


def _choice_lines(lines: list[str], prompt_index: int) -> list[str]:
    """The menu at or below the prompt line, with the short lines that introduce it (two lines at least)."""
    if prompt_index < 0 or prompt_index >= len(lines):
        return []
    context: list[str] = []
    first = -1
    for index in range(prompt_index, len(lines)):
        text = lines[index].strip()
        if not text:
            continue
        if is_choice_line(text):
            first = index
            break
        context = context + [text] if len(text.encode("utf-8")) < 100 and not is_separator_line(text) else []
    if first < 0:
        return []
    choices = list(context)
    for index in range(first, len(lines)):
        text = lines[index].strip()
        if not text or not is_choice_line(text):
            break
        choices.append(text)
    return choices if len(choices) >= 2 else []


def extract_latest_response(lines: list[str]) -> str:
    """The agent's latest reply in captured pane lines (``""`` when there is none).

    Up to ``NUDGENIK_MAX_RESPONSE_LINES`` content lines above the last prompt line (all lines
    when there is no prompt line), then the menu of choices below it.
    """
    prompt_index = next((i for i in range(len(lines) - 1, -1, -1) if is_prompt_line(lines[i])), len(lines))
    response: list[str] = []
    for index in range(prompt_index - 1, -1, -1):
        text = lines[index].strip()
        if not text or is_prompt_line(text) or is_separator_line(text) or is_status_line(text):
            continue
        response.insert(0, text)
        if len(response) >= constants.NUDGENIK_MAX_RESPONSE_LINES:
            break
    return "\n".join(response + _choice_lines(lines, prompt_index))


def result_of(answer: dict[str, Any]) -> dict[str, Any]:
    """The route's answer from a model's object: ``state``, ``confidence``?, ``evidence``?, ``summary``, ``source``?."""
    result: dict[str, Any] = {"state": string_field(answer, "state")}
    confidence = string_field(answer, "confidence")
    if confidence:
        result["confidence"] = confidence
    evidence = string_list_field(answer, "evidence")
    if evidence:
        result["evidence"] = evidence
    result["summary"] = string_field(answer, "summary")
    source = string_field(answer, "source")
    if source:
        result["source"] = source
    return result


# --- the service ----------------------------------------------------------------------------


class NudgeNik:
    """Asks about sessions, for the route and for the background checker."""

    def __init__(self, agents: Any, config: Any, oneshot: OneShot) -> None:
        self._agents = agents
        self._config = config
        self._oneshot = oneshot
        self._stop = threading.Event()
        self._checker: threading.Thread | None = None
        self._failures: dict[str, str] = {}

    def target(self) -> str:
        return (self._config.get().nudgenik.target or "").strip()

    def available(self) -> bool:
        """``GET /api/hasNudgenik``: a target is set (it is not checked that it exists)."""
        return bool(self.target())

    def ask(self, session_id: str) -> dict[str, Any]:
        """``GET /api/askNudgenik/<session>``: the session's state now; nothing is stored."""
        if not session_id:
            raise MisoError(400, "invalid_request", "session ID is required")
        return self.ask_about(self._capture(session_id)["text"])

    def ask_about(self, capture: str) -> dict[str, Any]:
        """The answer for a pane capture; MisoError with schmux's status and text otherwise."""
        extracted = extract_latest_response(capture.split("\n"))
        if not extracted.strip():
            raise MisoError(400, "no_response", "No response found in session output")
        target = self.target()
        if not target:
            raise MisoError(503, "nudgenik_disabled", DISABLED_TEXT)
        prompt = PROMPT.replace(RESPONSE_PLACEHOLDER, extracted)
        try:
            return result_of(self._oneshot.ask(target, prompt, SCHEMA, constants.NUDGENIK_TIMEOUT_S))
        except TargetNotFound:
            raise MisoError(503, "nudgenik_target_not_found", "Nudgenik target not found") from None
        except TargetMissingSecrets:
            raise MisoError(503, "nudgenik_target_secrets", "Nudgenik target missing required secrets") from None
        except InvalidAnswer as exc:
            message = f"Failed to ask nudgenik: invalid nudgenik response: {exc.message}"
            raise MisoError(500, "nudgenik_failed", message) from None
        except OneShotError as exc:
            raise MisoError(500, "nudgenik_failed", f"Failed to ask nudgenik: oneshot execute: {exc.message}") from None

    def _capture(self, session_id: str) -> dict[str, Any]:
        timeout_s = self._config.get().xterm.operation_timeout_ms / 1000 + constants.TMUX_COMMAND_TIMEOUT_S
        try:
            return self._agents.call("capture_pane", timeout_s, session_id=session_id)
        except MisoError as exc:
            if exc.status == 404:
                raise MisoError(404, "session_not_found", "session not found") from None
            raise MisoError(500, "nudgenik_failed", f"Failed to ask nudgenik: {exc.message}") from None

    # --- the background checker -------------------------------------------------------------

    def start_checker(self) -> None:
        """Start asking about waiting sessions (once; the thread is a greenlet in the server)."""
        if self._checker is not None:
            return
        self._stop.clear()
        self._checker = threading.Thread(target=self._check_loop, name="nudgenik-checker", daemon=True)
        self._checker.start()

    def stop_checker(self) -> None:
        self._stop.set()
        self._checker = None

    def _check_loop(self) -> None:
        if self._stop.wait(constants.NUDGENIK_CHECK_FIRST_S):
            return
        while True:
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - one bad round must not end the checker
                logger.exception("nudgenik check failed")
            if self._stop.wait(constants.NUDGENIK_CHECK_EVERY_S):
                return

    def check_once(self) -> int:
        """Ask about every waiting session and store the answers; returns how many were stored."""
        if not self.target():
            return 0
        try:
            waiting = self._agents.call("nudge_candidates", constants.TMUX_COMMAND_TIMEOUT_S * 2)
        except MisoError as exc:
            logger.debug("no nudge candidates: %s", exc.message)
            return 0
        stored = 0
        for session_id in waiting:
            if self._stop.is_set():
                break
            try:
                captured = self._capture(session_id)
                if captured.get("signaled"):
                    continue  # the agent said its state itself
                result = self.ask_about(captured["text"])
                answer = self._agents.call(
                    "set_nudge", constants.TMUX_COMMAND_TIMEOUT_S, session_id=session_id, nudge=encode_nudge(result)
                )
            except MisoError as exc:
                if self._failures.get(session_id) != exc.message:  # once per new reason, not every 15 s
                    logger.warning("nudgenik on %s: %s", session_id, exc.message)
                self._failures[session_id] = exc.message
                continue
            self._failures.pop(session_id, None)
            if answer.get("stored"):
                stored += 1
                logger.info("nudgenik on %s: %s", session_id, result.get("state"))
        return stored

"""Nudges in the ``agents`` worker: agent signals, clearing on input, and the calls NudgeNik makes.

A session's *nudge* is what the dashboard shows beside it (``nudge_state``/``nudge_summary``
of ``GET /api/sessions``): the last NudgeNik answer, or the last *agent signal*. It is kept in
the session's record (``SessionRecord.nudge``, a JSON text as schmux stores it; ``nudge_seq``
rises with each signal that asks for attention, and the dashboard plays a sound on a rise).

Agent signals are lines an agent prints on purpose: ``--<[schmux:<state>:<message>]>--``, with
``needs_input``, ``needs_testing``, ``completed``, ``error`` or ``working``. They are read

- from a session's terminal output while its terminal stream runs (someone has it open): the
  stream hands every piece of pane output here (``TerminalHub.on_output``);
- from the pane itself whenever NudgeNik reads it (:meth:`SessionNudges.capture_pane`, for the
  route and for the background checker every 15 s): so a signal printed while nobody watched is
  noticed too, within one check. The stream sees every line as it comes; a capture only the
  pane's last 100 lines, so of those the newest signal counts.

``working`` clears the nudge; any other state sets it and raises ``nudge_seq``. A signal equal
to the last one that set the nudge is not counted again (terminal programs redraw their screen,
and the line with it). Input typed into a terminal with Enter, Tab or Shift-Tab in it clears the
nudge: the user has answered.

Plain threads; the signal work runs on one thread of its own, never on the pipe's or the
worker's command loop (keystrokes must not wait for a file write).
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from .. import constants
from ..errors import MisoError
from .tmux_sessions import session_name_for

logger = logging.getLogger(__name__)

#: Signal states and the nudge state each one shows as.
SIGNAL_STATES: dict[str, str] = {
    "needs_input": "Needs Authorization",
    "needs_testing": "Needs User Testing",
    "completed": "Completed",
    "error": "Error",
    "working": "Working",
}
#: Input that answers the agent (Enter, Tab, Shift-Tab): it clears the nudge.
ANSWERING_KEYS = ("\r", "\t", "\x1b[Z")

# A signal on a line of its own (bullets such as Claude Code's ``⏺`` may lead), else anywhere:
# stripping a full-screen program's escapes can merge lines it drew apart.
_LINE_SIGNAL = re.compile(r"^[\x00-\x1f⏺•\-*\s]*--<\[schmux:(\w+):([^\]]*)\]>--[ \t]*\r*$", re.M | re.ASCII)
_ANY_SIGNAL = re.compile(r"--<\[schmux:(\w+):([^\]]*)\]>--", re.ASCII)
_MARKER = b"--<[schmux:"
# CSI (its parameters and final byte kept for cursor moves), OSC, DCS/APC, or a lone ESC.
_ESCAPES = re.compile(
    r"\x1b\[([0-?]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|$)|\x1b[P_].*?(?:\x1b\\|$)|\x1b", re.S
)
#: Most spaces or newlines one cursor move becomes.
_MAX_MOVE = 1000


@dataclass(frozen=True)
class Signal:
    state: str
    message: str

    def nudge(self) -> str:
        """The nudge JSON this signal stores (schmux's ``{"state","summary","source":"agent"}``)."""
        return encode_nudge({"state": SIGNAL_STATES[self.state], "summary": self.message, "source": "agent"})


def encode_nudge(result: dict[str, Any]) -> str:
    """A nudge as stored: compact JSON, fields in the contract's order, empty optional ones left out."""
    ordered: dict[str, Any] = {"state": result.get("state", "")}
    for name in ("confidence", "evidence"):
        if result.get(name):
            ordered[name] = result[name]
    ordered["summary"] = result.get("summary", "")
    if result.get("source"):
        ordered["source"] = result["source"]
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def _move_count(params: str) -> int:
    """The count of a cursor move's parameters (1 when absent, private or not a positive number)."""
    first = params.split(";", 1)[0]
    if not first.isdigit() or params.startswith("?"):
        return 1
    return max(1, min(int(first), _MAX_MOVE))


def strip_escapes(text: str) -> str:
    """``text`` without terminal escape sequences; cursor-forward becomes spaces and cursor-down
    newlines, so words and lines a program drew apart stay apart."""

    def replace(match: re.Match[str]) -> str:
        final = match.group(2)
        if final == "C":
            return " " * _move_count(match.group(1))
        if final == "B":
            return "\n" * _move_count(match.group(1))
        return ""

    return _ESCAPES.sub(replace, text)


def find_signals(data: bytes) -> list[Signal]:
    """The signals in ``data`` (terminal output or a pane capture), in order; unknown states skipped."""
    if _MARKER not in data:
        return []
    text = strip_escapes(data.decode("utf-8", "replace"))
    matches = _LINE_SIGNAL.findall(text) or _ANY_SIGNAL.findall(text)
    return [Signal(state, message) for state, message in matches if state in SIGNAL_STATES]


class SignalParser:
    """The signals of one session's output: whole lines, each signal counted once.

    Output arrives in pieces cut anywhere; a line is read once its newline came, or once output
    paused for ``SIGNAL_FLUSH_S`` (a prompt line a program leaves open). Not thread-safe: its
    owner serialises calls.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._last_data_at = 0.0
        #: The last non-``working`` signal counted (a redraw of it is not counted again).
        self._last_counted: Signal | None = None
        #: The newest signal read by either path.
        self.last_seen: Signal | None = None

    def feed(self, data: bytes, now: float) -> list[Signal]:
        """Signals completed by ``data`` that count."""
        self._last_data_at = now
        combined = self._pending + data
        cut = combined.rfind(b"\n")
        if cut < 0:
            self._pending = combined[-constants.SIGNAL_MAX_PENDING_BYTES :]
            return []
        self._pending = combined[cut + 1 :][-constants.SIGNAL_MAX_PENDING_BYTES :]
        return self._count(find_signals(combined[: cut + 1]))

    def flush(self, now: float) -> list[Signal]:
        """Read an unfinished line once output has paused long enough."""
        if not self._pending or now - self._last_data_at < constants.SIGNAL_FLUSH_S:
            return []
        data, self._pending = self._pending, b""
        return self._count(find_signals(data))

    def from_capture(self, text: str, stored_state: str) -> list[Signal]:
        """The newest signal of a pane capture when it is news.

        It is not when it is the newest one already read, nor, at a first look (after a restart
        of the worker), when the stored nudge already shows its state.
        """
        found = find_signals(text.encode("utf-8"))
        if not found:
            return []
        newest = found[-1]
        if newest == self.last_seen:
            return []
        shown = SIGNAL_STATES[newest.state] if newest.state != "working" else ""
        if self.last_seen is None and shown == stored_state:
            self.last_seen = newest
            if newest.state != "working":
                self._last_counted = newest
            return []
        return self._count([newest])

    def _count(self, signals: list[Signal]) -> list[Signal]:
        counted = []
        for signal in signals:
            self.last_seen = signal
            if signal.state != "working":
                if signal == self._last_counted:
                    continue
                self._last_counted = signal
            counted.append(signal)
        return counted


class SessionNudges:
    """Agent signals and nudges of the backend's sessions, and the worker's nudge methods.

    Constructed with the worker's ``TerminalHub``, it hooks into its output and input.
    """

    def __init__(self, backend: Any, terminals: Any = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._backend = backend
        self._clock = clock
        self._lock = threading.Lock()
        self._parsers: dict[str, SignalParser] = {}
        self._last_signal_at: dict[str, float] = {}
        self._ids_by_name: dict[str, str] = {}
        self._jobs: queue.Queue[tuple[str, str, Any]] = queue.Queue()
        threading.Thread(target=self._run, name="agent-signals", daemon=True).start()
        if terminals is not None:
            terminals.on_output = self.output_seen
            terminals.on_input = self.input_seen

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The RPC methods this module adds to the worker."""
        return {
            "capture_pane": self.capture_pane,
            "set_nudge": self.set_nudge,
            "clear_nudge": self.clear_nudge,
            "nudge_candidates": self.nudge_candidates,
        }

    # --- hooks (pipe and command threads: hand over, return at once) -------------------------

    def output_seen(self, name: str, data: bytes) -> None:
        self._jobs.put(("output", name, data))

    def input_seen(self, name: str, data: str) -> None:
        if any(key in data for key in ANSWERING_KEYS):
            self._jobs.put(("input", name, None))

    # --- RPC methods ------------------------------------------------------------------------

    def capture_pane(self, session_id: str) -> dict[str, Any]:
        """The pane's last ``NUDGENIK_CAPTURE_LINES`` lines (no escapes, wrapped lines joined).

        Its newest agent signal is applied when it is news; ``signaled`` says so (the checker
        then asks no model). 404 for an unknown session; 500 when tmux cannot capture it.
        """
        record = self._backend.records.get(session_id)
        if record is None:
            raise MisoError(404, "session_not_found", "session not found")
        try:
            if record.remote_host_id and self._backend.remote is not None:
                text = self._backend.remote.capture(record, constants.NUDGENIK_CAPTURE_LINES)
            else:
                text = self._backend.tmux.capture(
                    session_name_for(session_id), scrollback_lines=constants.NUDGENIK_CAPTURE_LINES, escapes=False
                )
        except MisoError as exc:
            raise MisoError(500, "capture_failed", f"capture tmux session {session_id}: {exc.message}") from None
        with self._lock:
            signals = self._parser(session_id).from_capture(text, _stored_state(record.nudge))
        for signal in signals:
            self._apply(session_id, signal)
        return {"text": text, "signaled": bool(signals)}

    def set_nudge(self, session_id: str, nudge: str, only_if_clear: bool = True) -> dict[str, bool]:
        """Store a NudgeNik answer (JSON text); with ``only_if_clear`` not over a nudge set meanwhile."""
        with self._lock:
            record = self._backend.records.get(session_id)
            if record is None or (only_if_clear and record.nudge):
                return {"stored": False}
            record.nudge = nudge
            self._backend.records.put(record)
        self._backend.changed()
        return {"stored": True}

    def clear_nudge(self, session_id: str) -> dict[str, bool]:
        cleared = self._clear(session_id)
        return {"cleared": cleared}

    def nudge_candidates(self) -> list[str]:
        """Sessions the background checker asks NudgeNik about: running, without a nudge, quiet for
        ``NUDGENIK_IDLE_S`` and without an agent signal for ``NUDGENIK_SIGNAL_QUIET_S``."""
        tmux = self._backend.tmux
        live = {info.name: info for info in tmux.list()} if tmux.server_running() else {}
        now = datetime.now(timezone.utc)
        moment = self._clock()
        candidates = []
        for record in self._backend.records.all():
            if record.nudge:
                continue
            with self._lock:
                signalled_at = self._last_signal_at.get(record.id)
            if signalled_at is not None and moment - signalled_at < constants.NUDGENIK_SIGNAL_QUIET_S:
                continue
            info = live.get(session_name_for(record.id))
            if info is None or not info.running:
                continue
            quiet_s = (now - info.last_output_at).total_seconds() if info.last_output_at is not None else None
            if quiet_s is not None and quiet_s < constants.NUDGENIK_IDLE_S:
                continue
            candidates.append(record.id)
        return candidates

    # --- the signal thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                kind, name, data = self._jobs.get(timeout=constants.SIGNAL_FLUSH_S)
            except queue.Empty:
                kind, name, data = "flush", "", None
            try:
                if kind == "output":
                    self._output(name, data)
                elif kind == "input":
                    session_id = self._session_id(name)
                    if session_id is not None:
                        self._clear(session_id)
                self._flush_idle()
            except Exception:  # noqa: BLE001 - one bad piece must not end signal reading
                logger.exception("agent signal handling failed")

    def _output(self, name: str, data: bytes) -> None:
        session_id = self._session_id(name)
        if session_id is None:
            return
        with self._lock:
            signals = self._parser(session_id).feed(data, self._clock())
        for signal in signals:
            self._apply(session_id, signal)

    def _flush_idle(self) -> None:
        now = self._clock()
        with self._lock:
            due = [(sid, parser.flush(now)) for sid, parser in self._parsers.items()]
        for session_id, signals in due:
            for signal in signals:
                self._apply(session_id, signal)

    # --- changes ----------------------------------------------------------------------------

    def _apply(self, session_id: str, signal: Signal) -> None:
        """``working`` clears the nudge; any other signal sets it and raises ``nudge_seq``."""
        with self._lock:
            self._last_signal_at[session_id] = self._clock()
            record = self._backend.records.get(session_id)
            if record is None:
                return
            if signal.state == "working":
                if record.nudge is None:
                    return
                record.nudge = None
            else:
                record.nudge = signal.nudge()
                record.nudge_seq += 1
            self._backend.records.put(record)
        logger.info("session %s signalled %s: %s", session_id, signal.state, signal.message)
        self._backend.changed()

    def _clear(self, session_id: str) -> bool:
        with self._lock:
            record = self._backend.records.get(session_id)
            if record is None or not record.nudge:
                return False
            record.nudge = None
            self._backend.records.put(record)
        self._backend.changed()
        return True

    def _parser(self, session_id: str) -> SignalParser:
        """The session's parser (lock held); parsers of sessions gone are dropped as new ones come."""
        parser = self._parsers.get(session_id)
        if parser is None:
            known = {record.id for record in self._backend.records.all()}
            for gone in [sid for sid in self._parsers if sid not in known]:
                del self._parsers[gone]
                self._last_signal_at.pop(gone, None)
            parser = self._parsers[session_id] = SignalParser()
        return parser

    def _session_id(self, name: str) -> str | None:
        """The session id of a tmux session name (None: not one of ours)."""
        session_id = self._ids_by_name.get(name)
        if session_id is None:
            self._ids_by_name = {session_name_for(record.id): record.id for record in self._backend.records.all()}
            session_id = self._ids_by_name.get(name)
        return session_id


def _stored_state(nudge: str | None) -> str:
    """The state of a stored nudge (``""`` when there is none or it does not parse)."""
    if not nudge:
        return ""
    try:
        parsed = json.loads(nudge)
    except ValueError:
        return ""
    return str(parsed.get("state") or "") if isinstance(parsed, dict) else ""

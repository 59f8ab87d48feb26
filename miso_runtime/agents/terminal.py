"""The live terminal of one agent session, for ``WS /ws/terminal/{sessionId}``.

A client first gets a ``full`` redraw (screen, scrollback, colours, cursor and terminal modes,
taken from tmux), then ``append`` messages with everything the pane writes after it, each
with a sequence number. Two channels to tmux:

- commands (captures, keystrokes, resizes) go through a tmux control-mode client
  (:mod:`~miso_runtime.agents.control_mode`) attached with ``no-output``;
- output comes through ``pipe-pane`` into a FIFO (:mod:`~miso_runtime.agents.pane_pipe`),
  three times faster than control mode's ``%output``, which tmux throttles.

No gap and no duplicate between a snapshot and the stream after it: the snapshot's captures
and a ``pipe-pane`` that starts a *new* pipe are sent on one command line, which tmux runs with
no pane output read in between, so the new pipe begins at exactly the byte the captures show.
Each snapshot therefore begins a new numbered stream (a :class:`_Segment`, with its own
``epoch``); tmux drops what the old pipe had not yet written, but every client of the old
segment is either displaced or handed the same snapshot as a fresh ``full``.

Also: a chunk never ends inside a UTF-8 character or an escape sequence
(:class:`EscapeSafeSplitter`), so a client may render each ``append`` on its own; a client that
reconnects with its last sequence number gets exactly what it missed from a bounded
:class:`ReplayBuffer`, or a fresh ``full`` when that is gone; a paused client that falls too
far behind is told to ``reconnect``.

Plain threads only (no gevent): a face runs :meth:`Subscription.get` in a thread pool.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Callable

from miso_runtime import constants
from miso_runtime.agents.control_mode import ControlModeClient, Reply, TerminalClosedError
from miso_runtime.agents.pane_pipe import PanePipe, PipeFolder
from miso_runtime.agents.tmux_sessions import MAX_WINDOW_SIZE, TmuxError, TmuxSessions, hex_input_commands
from miso_runtime.errors import bad_request

log = logging.getLogger(__name__)

__all__ = [
    "Chunk",
    "EscapeSafeSplitter",
    "ReplayBuffer",
    "Snapshot",
    "Subscription",
    "TerminalClosedError",
    "TerminalEvent",
    "TerminalStream",
]

#: Content of the ``displaced`` and ``reconnect`` messages.
DISPLACED_MESSAGE = "Connection displaced by another window"
RESYNC_MESSAGE = "Output buffer overflowed, please reconnect"
INTERRUPTED_MESSAGE = "Terminal output was interrupted, please reconnect"

_ESC, _BEL, _CAN, _SUB = 0x1B, 0x07, 0x18, 0x1A
_CSI_BODY = re.compile(rb"[\x20-\x3f\x7f]*")  # CSI parameter and intermediate bytes (DEL ignored)


# --- chunk boundaries -----------------------------------------------------------------------


def incomplete_utf8_tail(data: bytes | bytearray) -> int:
    """How many bytes at the end of ``data`` are the start of a UTF-8 character still missing
    its continuation bytes (0 when ``data`` ends on a character boundary, or is not UTF-8)."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        b = data[n - back]
        if b < 0x80:
            return 0
        if b >= 0xC0:  # a lead byte: how long its character is
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4 if b < 0xF8 else 1
            return back if need > back else 0
    return 0


class EscapeSafeSplitter:
    """Cuts a byte stream into chunks that never end inside a UTF-8 character or an escape
    sequence, whatever pieces the bytes arrive in.

    tmux hands over pane output in arbitrary pieces; a piece may end halfway through
    ``ESC [ 3 1 m`` or the second byte of ``é``. A client that decodes or renders each message
    alone would show garbage, so :meth:`feed` returns the longest prefix that ends on a
    boundary and keeps the rest until more bytes arrive. Recognised (as a VT500-style parser
    does): CSI ``ESC [ params intermediates final``; OSC ``ESC ]`` ended by BEL or ST
    (``ESC \\``); DCS/SOS/PM/APC ``ESC P|X|^|_`` ended by ST (``ESC ESC`` inside DCS is tmux's
    escaped ESC); ``ESC N|O x``; other ``ESC [intermediates] final`` sequences. C0 controls
    inside a sequence do not end it; CAN/SUB cancel it; ESC starts a new one. A sequence
    longer than ``max_pending`` bytes is let through split rather than held forever.

    Pure and incremental: each byte is examined once; runs of text are skipped with
    ``bytes.find``.
    """

    _GROUND, _ESCAPE, _ESCAPE_INTERMEDIATE, _SINGLE_SHIFT, _CSI, _STRING, _STRING_ESCAPE = range(7)

    def __init__(self, max_pending: int = constants.TERMINAL_MAX_PENDING_ESCAPE_BYTES) -> None:
        self.max_pending = max_pending
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already scanned
        self._state = self._GROUND
        self._start = 0  # where the unfinished sequence starts in _buf (when not in ground)
        self._osc = False  # the open string is an OSC (BEL also ends it)

    @property
    def pending(self) -> bytes:
        """Bytes held back, waiting for the rest of their character or sequence."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> bytes:
        """Add bytes; return the safe prefix of everything not yet returned (may be empty)."""
        self._buf += data
        self._scan()
        buf = self._buf
        if self._state == self._GROUND:
            cut = len(buf) - incomplete_utf8_tail(buf)
        else:
            cut = self._start
            if len(buf) - cut > self.max_pending:
                log.debug("escape sequence longer than %d bytes let through split", self.max_pending)
                self._state = self._GROUND
                cut = len(buf) - incomplete_utf8_tail(buf)
        if cut == 0:
            return b""
        out = bytes(buf[:cut])
        del buf[:cut]
        self._pos -= cut
        self._start = max(0, self._start - cut)
        return out

    def flush(self) -> bytes:
        """Everything still held (at end of stream), complete or not."""
        out = bytes(self._buf)
        self._buf.clear()
        self._pos = self._start = 0
        self._state = self._GROUND
        return out

    def _scan(self) -> None:
        buf, n, i, state = self._buf, len(self._buf), self._pos, self._state
        while i < n:
            if state == self._GROUND:
                j = buf.find(_ESC, i)
                if j < 0:
                    i = n
                    break
                self._start, state, i = j, self._ESCAPE, j + 1
                continue
            if state == self._STRING:
                j = buf.find(_ESC, i)
                if self._osc:
                    k = buf.find(_BEL, i, j if j >= 0 else n)
                    if k >= 0:
                        state, i = self._GROUND, k + 1
                        continue
                if j < 0:
                    i = n
                    break
                state, i = self._STRING_ESCAPE, j + 1
                continue
            if state == self._CSI:  # skip parameter and intermediate bytes in one go
                i = _CSI_BODY.match(buf, i).end()
                if i >= n:
                    break
            b = buf[i]
            if state == self._STRING_ESCAPE:
                if b == 0x5C:  # ST
                    state, i = self._GROUND, i + 1
                elif b == _ESC and not self._osc:
                    state, i = self._STRING, i + 1
                else:  # the ESC ended the string and begins a new sequence: read b again there
                    self._start, state = i - 1, self._ESCAPE
                continue
            if b == _ESC:
                self._start, state, i = i, self._ESCAPE, i + 1
                continue
            if b in (_CAN, _SUB):
                state, i = self._GROUND, i + 1
                continue
            if b < 0x20:  # C0 controls act inside a sequence without ending it
                i += 1
                continue
            if state == self._ESCAPE:
                if b == 0x5B:
                    state = self._CSI
                elif b == 0x5D:
                    state, self._osc = self._STRING, True
                elif b in (0x50, 0x58, 0x5E, 0x5F):
                    state, self._osc = self._STRING, False
                elif b in (0x4E, 0x4F):
                    state = self._SINGLE_SHIFT
                elif 0x20 <= b <= 0x2F:
                    state = self._ESCAPE_INTERMEDIATE
                elif 0x30 <= b <= 0x7E:
                    state = self._GROUND
                else:  # DEL or a high byte: the lone ESC is over; b is text
                    state = self._GROUND
                    continue
                i += 1
            elif state == self._ESCAPE_INTERMEDIATE:
                if not 0x20 <= b <= 0x2F:
                    state = self._GROUND
                    if b > 0x7E:
                        continue
                i += 1
            elif state == self._CSI:
                if not (0x20 <= b <= 0x3F or b == 0x7F):
                    state = self._GROUND
                    if b > 0x7E:
                        continue
                i += 1
            else:  # single shift: one more character
                state = self._GROUND
                if b > 0x7E:
                    continue
                i += 1
        self._pos, self._state = i, state


# --- replay ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of pane output: ``seq`` counts from 1 per stream; ``offset`` is the number of
    stream bytes before it."""

    seq: int
    data: bytes
    offset: int


class ReplayBuffer:
    """The newest chunks of a stream, bounded by count and bytes, addressable by sequence.

    Thread-safe. A reader remembers the last ``seq`` it has; :meth:`since` gives it what
    follows, or ``None`` when some of that has already been dropped (it must resync).
    """

    def __init__(
        self,
        max_chunks: int = constants.TERMINAL_REPLAY_MAX_CHUNKS,
        max_bytes: int = constants.TERMINAL_REPLAY_MAX_BYTES,
    ) -> None:
        if max_chunks < 1 or max_bytes < 1:
            raise ValueError("replay buffer bounds must be positive")
        self.max_chunks = max_chunks
        self.max_bytes = max_bytes
        self._chunks: deque[Chunk] = deque()
        self._bytes = 0
        self._total = 0
        self._next_seq = 1
        self._lock = threading.Lock()

    def append(self, data: bytes) -> Chunk:
        """Number and keep ``data``; drop the oldest chunks beyond the bounds (never the new one)."""
        with self._lock:
            chunk = Chunk(self._next_seq, data, self._total)
            self._next_seq += 1
            self._total += len(data)
            self._chunks.append(chunk)
            self._bytes += len(data)
            while len(self._chunks) > self.max_chunks or (self._bytes > self.max_bytes and len(self._chunks) > 1):
                self._bytes -= len(self._chunks.popleft().data)
            return chunk

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest chunk (0 before the first)."""
        return self._next_seq - 1

    @property
    def oldest_seq(self) -> int:
        """Sequence number of the oldest chunk still held (``last_seq + 1`` when empty)."""
        with self._lock:
            return self._chunks[0].seq if self._chunks else self._next_seq

    @property
    def total_bytes(self) -> int:
        """Bytes appended since the start, dropped ones included."""
        return self._total

    def since(self, last_seq: int, max_bytes: int | None = None) -> list[Chunk] | None:
        """Chunks after ``last_seq``, oldest first (at least one, then up to ``max_bytes``);
        ``[]`` when there is nothing new; ``None`` when some were dropped already, or
        ``last_seq`` lies in the future (a client of another stream)."""
        with self._lock:
            if last_seq < 0 or last_seq >= self._next_seq:
                return None
            first = self._chunks[0].seq if self._chunks else self._next_seq
            if last_seq + 1 < first:
                return None
            out: list[Chunk] = []
            size = 0
            for chunk in islice(self._chunks, last_seq + 1 - first, None):
                if out and max_bytes is not None and size + len(chunk.data) > max_bytes:
                    break
                out.append(chunk)
                size += len(chunk.data)
            return out

    def lag_bytes(self, last_seq: int) -> int | None:
        """Bytes a reader at ``last_seq`` has not had yet; ``None`` when they are not all held."""
        with self._lock:
            if last_seq < 0 or last_seq >= self._next_seq:
                return None
            if last_seq == self._next_seq - 1:
                return 0
            first = self._chunks[0].seq if self._chunks else self._next_seq
            if last_seq + 1 < first:
                return None
            return self._total - self._chunks[last_seq + 1 - first].offset


# --- snapshot -------------------------------------------------------------------------------

_STATE_FIELDS = (
    "cursor_x",
    "cursor_y",
    "cursor_flag",
    "pane_width",
    "pane_height",
    "history_size",
    "alternate_on",
    "keypad_cursor_flag",
    "keypad_flag",
    "insert_flag",
    "origin_flag",
    "wrap_flag",
    "scroll_region_upper",
    "scroll_region_lower",
    "mouse_standard_flag",
    "mouse_button_flag",
    "mouse_all_flag",
    "mouse_utf8_flag",
    "mouse_sgr_flag",
)
_STATE_FORMAT = ",".join("#{%s}" % f for f in _STATE_FIELDS)
# Terminal modes a redraw must switch back on, with the sequence that does it.
_MODE_SEQUENCES = (
    ("keypad_cursor_flag", "\x1b[?1h"),
    ("keypad_flag", "\x1b="),
    ("insert_flag", "\x1b[4h"),
    ("mouse_standard_flag", "\x1b[?1000h"),
    ("mouse_button_flag", "\x1b[?1002h"),
    ("mouse_all_flag", "\x1b[?1003h"),
    ("mouse_utf8_flag", "\x1b[?1005h"),
    ("mouse_sgr_flag", "\x1b[?1006h"),
)


def _lines(reply: Reply) -> str:
    return "\n".join(line.decode("utf-8", "replace") for line in reply.lines)


@dataclass(frozen=True)
class Snapshot:
    """What a terminal emulator needs to draw a pane exactly as tmux has it.

    ``history``, ``screen`` and ``saved_screen`` are tmux ``capture-pane -e -J`` text: lines
    separated by ``\\n``, colours and attributes as SGR sequences, wrapped rows joined (a
    client as wide as the pane wraps them the same way). ``screen`` has one line per row (or
    per joined row). ``saved_screen`` is the main screen under an alternate screen (full-screen
    programs), else empty. ``seq`` is the last output chunk the snapshot already shows: the
    stream continues at ``seq + 1``.
    """

    seq: int
    cols: int
    rows: int
    cursor_x: int
    cursor_y: int
    cursor_visible: bool
    alternate_screen: bool
    history: str
    screen: str
    saved_screen: str = ""
    modes: dict[str, int] = field(default_factory=dict)

    def to_ansi(self) -> str:
        """One string that redraws the pane on a fresh emulator of ``cols`` x ``rows``: the
        ``full`` message content.

        It starts with RIS (``ESC c``) so a reused emulator starts clean, writes scrollback and
        screen (switching to the alternate screen when the pane is on it), then restores the
        scroll region, cursor position and visibility and the keypad, insert and mouse modes.
        The pane's current SGR pen is not exposed by tmux, so attributes end reset.
        """
        out = ["\x1bc"]
        if self.history:
            out += [self.history.replace("\n", "\r\n"), "\r\n\x1b[0m"]
        if self.alternate_screen:
            out += [self.saved_screen.replace("\n", "\r\n"), "\x1b[0m\x1b[?1049h\x1b[H"]
        out += [self.screen.replace("\n", "\r\n"), "\x1b[0m"]
        top = self.modes.get("scroll_region_upper", 0)
        bottom = self.modes.get("scroll_region_lower", self.rows - 1)
        if (top, bottom) != (0, self.rows - 1):
            out.append(f"\x1b[{top + 1};{bottom + 1}r")
        y = self.cursor_y
        if self.modes.get("origin_flag"):
            out.append("\x1b[?6h")
            y -= top
        out.append(f"\x1b[{y + 1};{self.cursor_x + 1}H")
        if not self.modes.get("wrap_flag", 1):
            out.append("\x1b[?7l")
        out += [seq for name, seq in _MODE_SEQUENCES if self.modes.get(name)]
        if not self.cursor_visible:
            out.append("\x1b[?25l")
        return "".join(out)


# --- subscribers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TerminalEvent:
    """One message for a terminal client.

    ``type`` is ``full``, ``append``, ``reconnect`` or ``displaced`` (the contract's), or
    ``closed`` (the session's terminal ended; sent as schmux's ``append`` of "[Session ended]",
    after which a face closes the socket). ``seq`` is the last
    chunk the client has once it applied this message; ``data`` the raw bytes of an append;
    ``epoch`` names the numbered stream a ``full`` begins.
    """

    type: str
    content: str
    seq: int
    data: bytes = b""
    snapshot: Snapshot | None = None
    epoch: str = ""

    def to_message(self) -> dict[str, object]:
        """The JSON object of the ``/ws/terminal`` contract, plus ``seq`` (and ``epoch`` on
        ``full``) for reconnects."""
        if self.type == "closed":
            # schmux's dashboard knows no ``closed``: its server writes the end into the terminal.
            return {"type": "append", "content": constants.TERMINAL_SESSION_ENDED_TEXT, "seq": self.seq}
        message: dict[str, object] = {"type": self.type, "content": self.content, "seq": self.seq}
        if self.type == "full":
            message["epoch"] = self.epoch
        return message


class _Segment:
    """The pane's output from one snapshot on: numbered chunks, read from one pipe.

    ``interrupted`` is set when its pipe ended while the session went on (someone else took
    the pane's pipe): its clients must resync.
    """

    def __init__(self, replay_max_chunks: int, replay_max_bytes: int, max_pending_escape_bytes: int) -> None:
        self.epoch = secrets.token_hex(8)
        self.buffer = ReplayBuffer(replay_max_chunks, replay_max_bytes)
        self.splitter = EscapeSafeSplitter(max_pending_escape_bytes)
        self.pipe: PanePipe | None = None
        self.interrupted = False


class Subscription:
    """One client's cursor on a :class:`TerminalStream`.

    Chunks are not copied per client: each subscription remembers the last ``seq`` it handed
    out and reads its segment's replay buffer from there, coalescing what is waiting into one
    ``append`` (up to ``TERMINAL_MAX_APPEND_BYTES``). While paused it hands out nothing, until
    it is more than ``max_paused_bytes`` behind (or the replay buffer dropped what it still
    needs): then it says ``reconnect`` and ends.
    """

    def __init__(
        self, stream: TerminalStream, segment: _Segment, cursor: int, first: TerminalEvent | None, max_paused_bytes: int
    ) -> None:
        self._stream = stream
        self._cond = stream._cond
        self._segment = segment
        self._cursor = cursor
        self._first = first
        self._final: TerminalEvent | None = None
        self._done = False
        self._paused = False
        self.max_paused_bytes = max_paused_bytes

    @property
    def last_seq(self) -> int:
        """The last chunk handed to this client."""
        return self._cursor

    @property
    def epoch(self) -> str:
        """The numbered stream ``last_seq`` belongs to."""
        return self._segment.epoch

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def done(self) -> bool:
        """True once the last event (reconnect, displaced, closed) has been handed out."""
        return self._done

    def pause(self) -> None:
        """Stop handing out output (the client's tab is hidden, say); it stays buffered."""
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        """Hand out again, starting with everything buffered while paused."""
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def close(self) -> None:
        """Stop following the stream (the client went away)."""
        with self._cond:
            self._done = True
            self._stream._subscriptions.discard(self)
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> TerminalEvent | None:
        """The next event, waiting up to ``timeout`` seconds (``None``: until there is one).

        Returns ``None`` on timeout, and at once when the subscription is done.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._done:
                    return None
                if self._first is not None:
                    event, self._first = self._first, None
                    return event
                if self._final is not None:
                    return self._end()
                segment = self._segment
                lag = segment.buffer.lag_bytes(self._cursor)
                if lag is None or (self._paused and lag > self.max_paused_bytes):
                    self._final = TerminalEvent("reconnect", RESYNC_MESSAGE, self._cursor)
                    return self._end()
                if not self._paused and lag:
                    chunks = segment.buffer.since(self._cursor, constants.TERMINAL_MAX_APPEND_BYTES) or []
                    if chunks:
                        data = b"".join(c.data for c in chunks)
                        self._cursor = chunks[-1].seq
                        return TerminalEvent("append", data.decode("utf-8", "replace"), self._cursor, data)
                if not lag and self._stream.closed:
                    reason = self._stream.close_reason or "session ended"
                    self._final = TerminalEvent("closed", reason, self._cursor)
                    return self._end()
                if not lag and segment.interrupted:
                    self._final = TerminalEvent("reconnect", INTERRUPTED_MESSAGE, self._cursor)
                    return self._end()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def _end(self) -> TerminalEvent:
        """Hand out the final event once and leave the stream (lock held)."""
        assert self._final is not None
        self._done = True
        self._stream._subscriptions.discard(self)
        return self._final

    def _displace(self) -> None:
        """Lock held: the next event is ``displaced``."""
        self._first = None
        self._final = TerminalEvent("displaced", DISPLACED_MESSAGE, self._cursor)

    def _reseed(self, full: TerminalEvent, segment: _Segment) -> None:
        """Lock held: a new snapshot began a new segment; redraw from it and follow that."""
        self._first, self._segment, self._cursor = full, segment, full.seq


# --- the stream -----------------------------------------------------------------------------


class TerminalStream:
    """The terminal of one tmux session: one control-mode client, one pane pipe, many subscribers.

    Parameters
    ----------
    sessions : TmuxSessions
        The manager of the socket the session lives on.
    name : str
        The tmux session name.
    replay_max_chunks, replay_max_bytes : int
        Bounds of the replay buffer kept for reconnecting and paused clients.
    max_pending_escape_bytes : int
        Longest escape sequence held back rather than split.
    timeout_s : float
        Seconds a tmux command (snapshot, input, resize) may take.

    ``epoch`` is random per segment: sequence numbers of one segment mean nothing in another
    (after a runtime restart, or a snapshot), so a face hands the epoch to clients along with
    ``seq`` and passes both back to :meth:`subscribe`.
    """

    def __init__(
        self,
        sessions: TmuxSessions,
        name: str,
        *,
        replay_max_chunks: int = constants.TERMINAL_REPLAY_MAX_CHUNKS,
        replay_max_bytes: int = constants.TERMINAL_REPLAY_MAX_BYTES,
        max_pending_escape_bytes: int = constants.TERMINAL_MAX_PENDING_ESCAPE_BYTES,
        timeout_s: float = constants.TMUX_COMMAND_TIMEOUT_S,
    ) -> None:
        self.sessions = sessions
        self.name = name
        self.timeout_s = timeout_s
        self.pane_id = ""
        self.window_id = ""
        self._bounds = (replay_max_chunks, replay_max_bytes, max_pending_escape_bytes)
        self._segment = _Segment(*self._bounds)  # empty until the first snapshot
        self._cond = threading.Condition()
        self._snapshot_lock = threading.Lock()
        self._subscriptions: set[Subscription] = set()
        self._client: ControlModeClient | None = None
        self._folder: PipeFolder | None = None
        self._closed = False
        self._close_reason: str | None = None
        #: Called with every piece of pane output, on the pipe's thread (agent signals are read from it).
        self.on_output: Callable[[bytes], None] | None = None

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> TerminalStream:
        """Attach control mode to the session. :class:`SessionNotFoundError` if it is gone."""
        if self._client is not None:
            return self
        info = self.sessions.get(self.name)
        self.pane_id, self.window_id = info.pane_id, info.window_id
        flags = "ignore-size,no-output"  # never resizes the window; output comes through the pipe
        argv = self.sessions.base_argv() + ["-C", "attach-session", "-f", flags, "-t", f"={self.name}"]
        self._client = ControlModeClient(argv, on_exit=self._on_exit)
        self._client.start(self.timeout_s)
        self._folder = PipeFolder()
        log.info("terminal stream attached to %s (pane %s, control pid %s)", self.name, self.pane_id, self.pid)
        return self

    def close(self) -> None:
        """Stop the pane's pipe, detach the control-mode client and end every subscription
        (idempotent). The session itself goes on."""
        self._mark_closed("stream closed")
        client = self._client
        pipe = self._segment.pipe
        if pipe is not None:
            pipe.cancel()
        if client is not None:
            if pipe is not None and client.alive:
                try:  # end the pipe's copy process now rather than at its next write
                    client.call([f"pipe-pane -t {self.pane_id}"], self.timeout_s)
                except TmuxError as exc:
                    log.debug("pipe of %s not stopped: %s", self.name, exc)
            client.close()
        if self._folder is not None:
            self._folder.remove()

    def __enter__(self) -> TerminalStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def close_reason(self) -> str | None:
        return self._close_reason

    @property
    def pid(self) -> int | None:
        """Process id of the control-mode client (for checks that none is left behind)."""
        return self._client.pid if self._client else None

    @property
    def epoch(self) -> str:
        """The current segment's epoch."""
        return self._segment.epoch

    @property
    def buffer(self) -> ReplayBuffer:
        """The current segment's replay buffer."""
        return self._segment.buffer

    @property
    def last_seq(self) -> int:
        return self._segment.buffer.last_seq

    # --- reading ----------------------------------------------------------------------------

    def snapshot(self, scrollback_lines: int = constants.AGENTS_TERMINAL_SEED_LINES) -> Snapshot:
        """The pane as tmux draws it now, with up to ``scrollback_lines`` of history; output
        after it is numbered from :attr:`Snapshot.seq` in a new segment.

        Current subscribers are handed the same snapshot as a ``full`` and follow the new
        segment (see :meth:`subscribe` for the one that displaces them instead).
        """
        _segment, full = self._begin_segment(scrollback_lines, displace=False)
        assert full.snapshot is not None
        return full.snapshot

    def _begin_segment(self, scrollback_lines: int, *, displace: bool) -> tuple[_Segment, TerminalEvent]:
        """Capture the pane and start a new pipe on one tmux command line; make its segment
        the current one. Returns the segment and its ``full`` event."""
        with self._snapshot_lock:
            client = self._require_client()
            assert self._folder is not None
            segment = _Segment(*self._bounds)
            segment.pipe = PanePipe(
                self._folder.path,
                on_data=lambda data: self._on_pipe_data(segment, data),
                on_end=lambda: self._on_pipe_end(segment),
            )
            target = self.pane_id
            commands = [
                *self._snapshot_commands(scrollback_lines),
                f"pipe-pane -O -t {target} {segment.pipe.tmux_command}",
            ]
            try:
                replies: list[Reply] = client.wait(client.submit(commands), self.timeout_s)
                snap = self._build_snapshot(replies, scrollback_lines)
            except Exception:
                segment.pipe.cancel()
                raise
            if len(replies) < len(commands) or not replies[-1].ok:  # the pane has exited: no more output
                log.debug("no pipe for %s: %s", self.name, replies[-1].text)
                segment.pipe.cancel()
                segment.pipe = None
            full = TerminalEvent("full", snap.to_ansi(), snap.seq, snapshot=snap, epoch=segment.epoch)
            with self._cond:
                old, self._segment = self._segment, segment
                for other in self._subscriptions:
                    if displace:
                        other._displace()
                    else:
                        other._reseed(full, segment)
                self._cond.notify_all()
            if old.pipe is not None:  # tmux closed it; what it still held is in the snapshot
                old.pipe.cancel()
            return segment, full

    def _snapshot_commands(self, scrollback_lines: int) -> list[str]:
        """The pane's state, screen, saved screen and history: what :meth:`_build_snapshot` reads."""
        target = self.pane_id
        return [
            f"display-message -p -t {target} '{_STATE_FORMAT}'",
            f"capture-pane -p -e -J -t {target}",
            f"capture-pane -p -e -J -a -q -t {target}",
            f"capture-pane -p -e -J -S -{max(0, int(scrollback_lines))} -E -1 -t {target}",
        ]

    def _build_snapshot(self, replies: list[Reply], scrollback_lines: int) -> Snapshot:
        for reply in replies[:4]:
            if not reply.ok:
                raise TmuxError(reply.text or "capture failed")
        if len(replies) < 4:
            raise TmuxError("capture failed")
        values = replies[0].text.strip().split(",")
        state = {name: int(v) if v.lstrip("-").isdigit() else 0 for name, v in zip(_STATE_FIELDS, values, strict=False)}
        alternate = bool(state.get("alternate_on"))
        history = _lines(replies[3]) if scrollback_lines > 0 and state.get("history_size", 0) > 0 else ""
        return Snapshot(
            seq=0,
            cols=state.get("pane_width", 0),
            rows=state.get("pane_height", 0),
            cursor_x=state.get("cursor_x", 0),
            cursor_y=state.get("cursor_y", 0),
            cursor_visible=bool(state.get("cursor_flag", 1)),
            alternate_screen=alternate,
            history=history,
            screen=_lines(replies[1]),
            saved_screen=_lines(replies[2]) if alternate else "",
            modes=state,
        )

    def replay_since(self, last_seq: int) -> list[Chunk] | None:
        """Chunks of the current segment after ``last_seq``, or ``None`` when they are no
        longer all held."""
        return self._segment.buffer.since(last_seq)

    def subscribe(
        self,
        *,
        last_seq: int | None = None,
        epoch: str | None = None,
        scrollback_lines: int = constants.AGENTS_TERMINAL_SEED_LINES,
        max_paused_bytes: int = constants.TERMINAL_PAUSED_MAX_BYTES,
        displace: bool = False,
    ) -> Subscription:
        """Follow the stream.

        A new client (``last_seq=None``) first gets ``full``. A reconnecting one passes the
        last ``seq`` it applied (and the ``epoch`` it got it from): it gets the missed chunks
        as ``append``, or ``full`` when they are gone or the seq is from another segment. With
        ``displace``, every other subscriber gets ``displaced`` (one window per session);
        without, they are redrawn from the new snapshot when there is one.
        """
        if self._closed:
            raise TerminalClosedError()
        segment = self._segment
        resumable = (
            last_seq is not None
            and (epoch is None or epoch == segment.epoch)
            and not segment.interrupted
            and segment.buffer.since(last_seq) is not None
        )
        first: TerminalEvent | None = None
        if resumable:
            assert last_seq is not None
            cursor = last_seq
        else:
            segment, first = self._begin_segment(scrollback_lines, displace=displace)
            cursor = first.seq
        sub = Subscription(self, segment, cursor, first, max_paused_bytes)
        with self._cond:
            if displace and resumable:
                for other in self._subscriptions:
                    other._displace()
            self._subscriptions.add(sub)
            self._cond.notify_all()
        return sub

    # --- writing ----------------------------------------------------------------------------

    def send_input(self, data: bytes | str) -> None:
        """Type raw input into the pane: keys, control characters, escape sequences, UTF-8."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if not raw:
            return
        client = self._require_client()
        commands = [" ".join(cmd) for cmd in hex_input_commands(self.pane_id, raw)]
        futures = [client.submit(commands[i : i + 16]) for i in range(0, len(commands), 16)]
        for future in futures:
            for reply in client.wait(future, self.timeout_s):
                if not reply.ok:
                    raise TmuxError(reply.text or "send-keys failed")

    def resize(self, cols: int, rows: int) -> None:
        """Resize the session's window (the client's terminal was resized)."""
        if not (1 <= cols <= MAX_WINDOW_SIZE and 1 <= rows <= MAX_WINDOW_SIZE):
            raise bad_request(f"cols and rows must be 1-{MAX_WINDOW_SIZE}")
        command = f"resize-window -t {self.window_id} -x {int(cols)} -y {int(rows)}"
        self._require_client().call([command], self.timeout_s)

    # --- internals --------------------------------------------------------------------------

    def _require_client(self) -> ControlModeClient:
        if self._client is None or not self._client.alive or self._closed:
            raise TerminalClosedError()
        return self._client

    def _on_pipe_data(self, segment: _Segment, data: bytes) -> None:
        self._append(segment, segment.splitter.feed(data))

    def _append(self, segment: _Segment, data: bytes) -> None:
        if not data:
            return
        segment.buffer.append(data)
        with self._cond:
            self._cond.notify_all()
        if self.on_output is not None:
            self.on_output(data)

    def _on_pipe_end(self, segment: _Segment) -> None:
        """The pipe ended without our asking: the session is going (its control client goes
        too), or another pipe took the pane."""
        self._append(segment, segment.splitter.flush())
        client = self._client
        if client is not None and client.wait_closed(constants.TERMINAL_CLOSE_TIMEOUT_S):
            return
        if segment is self._segment and not self._closed:
            log.warning("the output pipe of %s ended while the session goes on", self.name)
            with self._cond:
                segment.interrupted = True
                self._cond.notify_all()

    def _on_exit(self, reason: str | None) -> None:
        pipe = self._segment.pipe
        if pipe is not None and not self._closed:  # the pane's last output, before clients hear it closed
            pipe.join(constants.TERMINAL_CLOSE_TIMEOUT_S)
        self._mark_closed(reason or "session ended")

    def _mark_closed(self, reason: str) -> None:
        with self._cond:
            if not self._closed:
                self._closed = True
                self._close_reason = reason
                log.info("terminal stream of %s closed: %s", self.name, reason)
            self._cond.notify_all()

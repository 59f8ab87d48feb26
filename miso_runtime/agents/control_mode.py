"""One tmux control-mode client (``tmux -C attach``): commands in, replies and pane output out.

Control mode is tmux's machine protocol. Every command line we write is answered by one
``%begin``/``%end`` block per command (``%error`` instead of ``%end`` when it fails, and a
failure drops the rest of that line's commands); pane output arrives as
``%output %<pane> <data>`` notification lines with every byte below space and ``\\`` written
as ``\\ooo`` octal. ``%exit`` says the client is leaving (session killed, server gone).

The property :class:`~miso_runtime.agents.terminal.TerminalStream` builds on: the commands
of one line run back to back, with no pane output read in between (tmux empties a client's
command queue before it goes back to its event loop). So a ``capture-pane`` and a
``pipe-pane`` on one line see the pane at the same byte of its output.

A client attached with ``-f no-output`` gets no ``%output`` at all, and never slows the pane
down (tmux pauses reading a pane whose control clients lag behind).
"""

from __future__ import annotations

import codecs
import logging
import os
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from miso_runtime import constants
from miso_runtime.agents.tmux_sessions import TmuxError, TmuxTimeoutError, tmux_environment

log = logging.getLogger(__name__)


class TerminalClosedError(TmuxError):
    """The control-mode client is gone: the session ended, or the stream was closed."""

    default_status = 410
    default_code = "session_not_running"

    def __init__(self, message: str = "session not running") -> None:
        super().__init__(message)


def unescape_output(data: bytes) -> bytes:
    """Undo control mode's octal escaping of ``%output`` data (``\\033`` -> ESC, ``\\134`` -> ``\\``).

    tmux escapes every backslash, so each one starts exactly one three-digit escape; bytes
    from 0x80 up are passed through raw (UTF-8 arrives as is).
    """
    if b"\\" not in data:
        return data
    # Every backslash starts a three-digit octal escape, which is exactly what Python's C
    # escape decoder reads (ten times faster than a regex substitution at terminal rates).
    return codecs.escape_decode(data)[0]


@dataclass
class Reply:
    """The reply block to one command: its output lines (bytes, raw) and whether it succeeded."""

    ok: bool
    lines: list[bytes] = field(default_factory=list)

    @property
    def text(self) -> str:
        return b"\n".join(self.lines).decode("utf-8", "replace")


@dataclass
class _Pending:
    expected: int
    future: Future[Any]
    on_reply: Callable[[list[Reply]], Any] | None
    replies: list[Reply] = field(default_factory=list)


class ControlModeClient:
    """A ``tmux -C attach`` subprocess with a reader thread.

    Parameters
    ----------
    argv : list of str
        The full command, e.g. ``tmux -L sock -u -C attach-session -f ignore-size -t =name``.
    on_output : callable, optional
        ``on_output(pane_id, data)`` for each ``%output`` line, data unescaped; runs on the
        reader thread, in stream order (none arrive with ``-f no-output``).
    on_exit : callable, optional
        ``on_exit(reason)`` once, when the client has gone (``%exit`` reason or ``None``).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        on_output: Callable[[str, bytes], None] | None = None,
        on_exit: Callable[[str | None], None] | None = None,
    ) -> None:
        self.argv = list(argv)
        self._on_output = on_output
        self._on_exit = on_exit
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._write_lock = threading.Lock()
        self._pending: deque[_Pending] = deque()
        self._block: tuple[bytes, bool] | None = None  # (command number, ours) of the open block
        self._block_lines: list[bytes] = []
        self._exit_reason: str | None = None
        self._closed = threading.Event()
        #: Where command lines go when the client is fed by someone else (:meth:`over`).
        self._write_fd: int | None = None

    @classmethod
    def over(
        cls,
        write_fd: int,
        *,
        on_output: Callable[[str, bytes], None] | None = None,
        on_exit: Callable[[str | None], None] | None = None,
    ) -> ControlModeClient:
        """A client over a connection someone else reads: commands are written to ``write_fd``
        and the owner hands every protocol line to :meth:`feed_lines`, then calls
        :meth:`connection_lost` when it ends.

        Why: a remote host's tmux (``tmux -CC`` at the far end of an ssh-like command) talks
        through the pseudo-terminal of that command, which also carries its login output first;
        its reader decides where the protocol starts.
        """
        client = cls([], on_output=on_output, on_exit=on_exit)
        client._write_fd = write_fd
        return client

    def feed_lines(self, lines: Sequence[bytes]) -> None:
        """Protocol lines (without their newlines) read by the owner of the connection.

        Consecutive ``%output`` lines of one pane are delivered as one piece: a program that
        prints fast makes one line per write of the pane, and handing each on alone would cost
        more than reading them (escapes never span lines, so joining before unescaping is exact).
        """
        pane = b""
        parts: list[bytes] = []
        for line in lines:
            if self._block is None and line.startswith(b"%output "):
                target, _, data = line[8:].partition(b" ")
                if target != pane and parts:
                    self._deliver(pane.decode("ascii", "replace"), unescape_output(b"".join(parts)))
                    parts = []
                pane = target
                parts.append(data)
                continue
            if parts:
                self._deliver(pane.decode("ascii", "replace"), unescape_output(b"".join(parts)))
                parts = []
            self._handle_line(line)
        if parts:
            self._deliver(pane.decode("ascii", "replace"), unescape_output(b"".join(parts)))

    def connection_lost(self) -> None:
        """The owner's connection ended: waiting commands fail, ``on_exit`` runs once."""
        if not self._closed.is_set():
            self._finish()

    # --- life cycle -------------------------------------------------------------------------

    def start(self, timeout_s: float = constants.TERMINAL_ATTACH_TIMEOUT_S) -> None:
        """Start the client and wait until tmux has attached it (a first command answered)."""
        self._proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # tmux reports a failed attach there; we log it
            env=tmux_environment(),
            bufsize=0,
        )
        self._reader = threading.Thread(target=self._read_loop, name="tmux-control-reader", daemon=True)
        self._reader.start()
        try:
            self.call(["display-message -p ready"], timeout_s=timeout_s)
        except Exception:
            self.close()
            raise

    @property
    def alive(self) -> bool:
        return (self._proc is not None or self._write_fd is not None) and not self._closed.is_set()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def wait_closed(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` seconds for the client to go; True if it has."""
        return self._closed.wait(timeout_s)

    @property
    def exit_reason(self) -> str | None:
        return self._exit_reason

    def close(self, timeout_s: float = constants.TERMINAL_CLOSE_TIMEOUT_S) -> None:
        """Detach and reap the client: closing its stdin makes tmux detach it; a client that
        does not go in time is terminated, then killed. Never leaves a process behind."""
        proc = self._proc
        if proc is None:
            return
        with self._write_lock:
            try:
                if proc.stdin:
                    proc.stdin.close()
            except OSError:
                pass
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("tmux control client %d did not exit; terminating it", proc.pid)
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None and self._reader is not threading.current_thread():
            self._reader.join(timeout=timeout_s)
        if proc.stdout:
            proc.stdout.close()

    # --- commands ---------------------------------------------------------------------------

    def submit(self, commands: Sequence[str], on_reply: Callable[[list[Reply]], Any] | None = None) -> Future[Any]:
        """Send ``commands`` on one line (tmux runs them back to back, with no pane output
        read in between) and return a future of their replies.

        ``on_reply(replies)``, when given, runs on the reader thread at the exact point of the
        output stream where the replies arrived; the future then holds its return value (or
        the exception it raised). The replies stop at the first failed command.
        """
        if not commands or any("\n" in c for c in commands):
            raise ValueError("commands must be non-empty and single-line")
        future: Future[Any] = Future()
        line = (" ; ".join(commands) + "\n").encode("utf-8")
        with self._write_lock:
            if self._closed.is_set() or (self._write_fd is None and (self._proc is None or self._proc.stdin is None)):
                raise TerminalClosedError()
            self._pending.append(_Pending(len(commands), future, on_reply))
            try:
                fd = self._write_fd if self._write_fd is not None else self._proc.stdin.fileno()  # type: ignore[union-attr]
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
            except (OSError, ValueError) as exc:
                self._pending.pop()
                raise TerminalClosedError() from exc
        return future

    def call(self, commands: Sequence[str], timeout_s: float = constants.TMUX_COMMAND_TIMEOUT_S) -> list[Reply]:
        """Send commands and wait for their replies; :class:`TmuxError` with tmux's message if
        one failed, :class:`TerminalClosedError` if the client went away first."""
        replies: list[Reply] = self.wait(self.submit(commands), timeout_s)
        for reply in replies:
            if not reply.ok:
                raise TmuxError(reply.text or "tmux command failed")
        return replies

    @staticmethod
    def wait(future: Future[Any], timeout_s: float) -> Any:
        """A future's result, with tmux's timeout error when it takes too long."""
        try:
            return future.result(timeout=timeout_s)
        except FutureTimeout as exc:
            raise TmuxTimeoutError(f"tmux control mode did not answer in {timeout_s:g} s") from exc

    # --- reading ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        buf = bytearray()
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                buf += data
                start = 0
                while (end := buf.find(b"\n", start)) >= 0:
                    self._handle_line(bytes(buf[start:end]))
                    start = end + 1
                del buf[:start]
        except OSError as exc:
            log.debug("tmux control client read ended: %s", exc)
        finally:
            self._finish()

    def _handle_line(self, line: bytes) -> None:
        if self._block is not None:
            if line.startswith((b"%end ", b"%error ")):
                parts = line.split(b" ")
                if len(parts) >= 3 and parts[2] == self._block[0]:
                    self._end_block(ok=line.startswith(b"%end "))
                    return
            self._block_lines.append(line)
            return
        if line.startswith(b"%output "):
            parts = line.split(b" ", 2)
            self._deliver(parts[1].decode("ascii", "replace"), unescape_output(parts[2] if len(parts) > 2 else b""))
        elif line.startswith(b"%extended-output "):
            head, _, data = line.partition(b" : ")
            self._deliver(head.split(b" ")[1].decode("ascii", "replace"), unescape_output(data))
        elif line.startswith(b"%begin "):
            parts = line.split(b" ")
            self._block = (parts[2] if len(parts) > 2 else b"", len(parts) > 3 and parts[3] == b"1")
            self._block_lines = []
        elif line.startswith(b"%exit"):
            self._exit_reason = line[6:].decode("utf-8", "replace").strip() or None
        elif line and not line.startswith(b"%"):
            log.warning("tmux control client: %s", line.decode("utf-8", "replace"))

    def _deliver(self, pane: str, data: bytes) -> None:
        if self._on_output is None:
            return
        try:
            self._on_output(pane, data)
        except Exception:
            log.exception("terminal output handler failed")

    def _end_block(self, ok: bool) -> None:
        assert self._block is not None
        ours = self._block[1]
        reply = Reply(ok, self._block_lines)
        self._block, self._block_lines = None, []
        if not ours:  # the attach itself, or a hook: not an answer to one of our lines
            return
        if not self._pending:
            log.warning("tmux control client: reply with no command waiting")
            return
        pending = self._pending[0]
        pending.replies.append(reply)
        if ok and len(pending.replies) < pending.expected:
            return
        self._pending.popleft()
        if pending.on_reply is None:
            pending.future.set_result(pending.replies)
            return
        try:
            pending.future.set_result(pending.on_reply(pending.replies))
        except Exception as exc:  # the caller's parser failed: its future says why
            pending.future.set_exception(exc)

    def _finish(self) -> None:
        with self._write_lock:
            self._closed.set()
            pending, self._pending = list(self._pending), deque()
        for item in pending:
            if not item.future.done():
                item.future.set_exception(TerminalClosedError())
        if self._proc is not None:
            try:
                self._proc.wait(timeout=constants.TERMINAL_CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass
        log.debug("tmux control client ended (%s)", self._exit_reason)
        if self._on_exit is not None:
            try:
                self._on_exit(self._exit_reason)
            except Exception:
                log.exception("terminal exit handler failed")

"""One connection to a remote host: the flavor's connect command under a pseudo-terminal, then
tmux in control mode through it.

What schmux does, and so what the dashboard expects: the connect command (``ssh -tt host --``,
a cloud CLI, anything) runs in a PTY so that its login prompts work in the provisioning
terminal; ``tmux -CC new-session -A -s schmux`` is appended, so once the login is through the
far end's tmux speaks its control protocol over the same PTY. Until then every byte is the
command's own output: it is shown raw in the provisioning terminal, and read line by line for
the hostname (the flavor's regex, group 1) and a session uuid.

One thread reads the PTY. It decides where the protocol starts (tmux ``-CC`` opens with the
DCS ``ESC P 1000 p``) and from there hands lines to a
:class:`~miso_runtime.agents.control_mode.ControlModeClient`. The command's exit is the
connection's loss, seen at once (the read ends), and said through ``on_status``.

Sessions on the host are windows of its ``schmux`` tmux session; their output arrives as
``%output`` notifications of this one client (:mod:`~miso_runtime.agents.remote_terminal`).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import constants
from .control_mode import ControlModeClient, TerminalClosedError
from .tmux_sessions import TmuxError

log = logging.getLogger(__name__)

#: The DCS that ``tmux -CC`` writes before its first protocol line, and the ST it ends with.
_CONTROL_MODE_START = b"\x1bP1000p"
_CONTROL_MODE_END = b"\x1b\\"
#: schmux's default hostname pattern (an ``ssh -v`` style line) and its uuid pattern.
DEFAULT_HOSTNAME_REGEX = r"Establish ControlMaster connection to (\S+)"
_UUID_REGEX = re.compile(r"(?:uuid|UUID|session-id):\s*(\S+)")
#: The remote tmux session that holds one window per agent session (schmux's name).
REMOTE_TMUX_SESSION = "schmux"
#: Appended to every connect and reconnect command, as schmux appends it.
TMUX_CONTROL_SUFFIX = f" tmux -CC new-session -A -s {REMOTE_TMUX_SESSION}"

#: Host statuses (schmux's ``RemoteHostStatus*``).
PROVISIONING = "provisioning"
CONNECTING = "connecting"
CONNECTED = "connected"
DISCONNECTED = "disconnected"
EXPIRED = "expired"
RECONNECTING = "reconnecting"


class RemoteError(TmuxError):
    """A remote host could not be reached or used."""

    default_status = 502
    default_code = "remote_failed"


def control_quote(value: str) -> str:
    """One argument of a tmux command line, single-quoted (no ``$``/``~`` expansion, no ``;``
    splitting); a single quote inside is closed, escaped and reopened."""
    return "'" + value.replace("'", "'\\''") + "'"


@dataclass
class WindowInfo:
    """One window of the remote ``schmux`` session (an agent session)."""

    window_id: str
    pane_id: str
    name: str
    dead: bool
    activity: float  # unix seconds of the pane's last output


@dataclass
class Subscriber:
    """A provisioning terminal's viewer: gets every raw byte of the PTY before control mode."""

    on_data: Callable[[bytes], None]
    on_end: Callable[[], None]


@dataclass
class HostFacts:
    """What the command's own output said, and when the connection came up."""

    hostname: str = ""
    uuid: str = ""
    connected_at: float | None = None
    status: str = PROVISIONING
    error: str = ""
    #: The last output lines (for the progress stream), and how many were read in all.
    progress: list[str] = field(default_factory=list)
    lines_read: int = 0


class RemoteConnection:
    """The connect command's process and PTY, and the control-mode client once tmux runs.

    ``on_status(status)`` runs (on the reader thread) whenever the status changes;
    ``on_output(pane_id, data)`` gets the output of every remote pane.
    """

    def __init__(
        self,
        host_id: str,
        command_line: str,
        *,
        hostname_regex: str = "",
        hostname: str = "",
        status: str = PROVISIONING,
        on_status: Callable[[str], None] = lambda _status: None,
        on_output: Callable[[str, bytes], None] = lambda _pane, _data: None,
        on_window_close: Callable[[str], None] = lambda _window: None,
    ) -> None:
        self.host_id = host_id
        self.provisioning_session_id = f"provision-{host_id}"
        self.command_line = command_line
        self.facts = HostFacts(hostname=hostname, status=status)
        try:
            self._hostname_re = re.compile(hostname_regex or DEFAULT_HOSTNAME_REGEX)
        except re.error:  # checked when the flavor was saved; a hand-edited file falls back as schmux does
            self._hostname_re = re.compile(DEFAULT_HOSTNAME_REGEX)
        self._on_status = on_status
        self._on_output = on_output
        self._on_window_close = on_window_close
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._master: int | None = None
        self._client: ControlModeClient | None = None
        self._protocol_seen = threading.Event()
        self._ended = threading.Event()
        self._closing = False
        self._history = bytearray()
        self._tail = b""
        self._subscribers: list[Subscriber] = []

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the command under a new PTY (80x24, as schmux) and its reader; returns at once."""
        argv = self.command_line.split()  # Go's strings.Fields: no shell, as schmux runs it
        if not argv:
            raise RemoteError("connect command template produced empty command")
        master, slave = os.openpty()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        # setsid --ctty: the PTY becomes the command's controlling terminal, so ssh can ask
        # for a password or a key touch on /dev/tty (the provisioning terminal shows it).
        prefix = ["setsid", "--ctty"] if shutil.which("setsid") else []
        try:
            self._proc = subprocess.Popen(
                prefix + argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=not prefix,
                close_fds=True,
                env=_remote_environment(),
            )
        except OSError as exc:
            os.close(master)
            raise RemoteError(f"failed to start remote connection: {exc}") from None
        finally:
            os.close(slave)
        self._master = master
        log.info("remote %s: started %r (pid %d)", self.host_id, self.command_line, self._proc.pid)
        threading.Thread(target=self._read_loop, name=f"remote-{self.host_id}", daemon=True).start()

    def wait_connected(self, timeout_s: float) -> None:
        """Block until tmux answers in control mode; :class:`RemoteError` (and the process is
        gone) when the command exits first or ``timeout_s`` seconds pass."""
        deadline = time.monotonic() + timeout_s
        if not self._protocol_seen.wait(timeout_s):
            if self._ended.is_set():
                self._fail(self._exit_text())
            else:
                self._fail(f"control mode not ready: no tmux control mode within {timeout_s:g} s")
        client = self._client
        assert client is not None
        try:
            client.call(["display-message -p ready"], timeout_s=max(0.5, deadline - time.monotonic()))
        except TmuxError as exc:
            self._fail(f"control mode not ready: {exc.message}")
        self._set_status(CONNECTED, connected_at=time.time())

    def close(self) -> None:
        """End the connection: the command is hung up on, terminated, then killed; reaped. Idempotent."""
        with self._lock:
            self._closing = True
            proc = self._proc
        if proc is not None and proc.poll() is None:
            for sig, wait_s in ((signal.SIGHUP, 1.0), (signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    proc.wait(timeout=wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._ended.wait(constants.TERMINAL_CLOSE_TIMEOUT_S)
        self._set_status(DISCONNECTED)

    @property
    def status(self) -> str:
        return self.facts.status

    @property
    def connected(self) -> bool:
        return self.facts.status == CONNECTED and self._client is not None and self._client.alive

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def client(self) -> ControlModeClient:
        """The control-mode client; :class:`RemoteError` unless the host is connected."""
        client = self._client
        if client is None or not self.connected:
            raise RemoteError("remote host not connected")
        return client

    # --- the provisioning terminal ----------------------------------------------------------

    def subscribe(self, on_data: Callable[[bytes], None], on_end: Callable[[], None]) -> Subscriber:
        """Follow the raw PTY: what it printed so far at once, then every new byte until
        control mode starts (then ``on_end``)."""
        subscriber = Subscriber(on_data, on_end)
        with self._lock:
            history = bytes(self._history)
            done = self._protocol_seen.is_set() or self._ended.is_set()
            if not done:
                self._subscribers.append(subscriber)
        if history:
            on_data(history)
        if done:
            on_end()
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self._lock:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def write_input(self, data: bytes) -> None:
        """Keys of the provisioning terminal (a password, a key touch prompt's answer)."""
        if self._master is None or self._protocol_seen.is_set() or self._ended.is_set():
            return
        try:
            os.write(self._master, data)
        except OSError as exc:
            log.debug("remote %s: input not written: %s", self.host_id, exc)

    def resize(self, cols: int, rows: int) -> None:
        if self._master is not None and not self._ended.is_set():
            try:
                fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
            except OSError as exc:
                log.debug("remote %s: resize failed: %s", self.host_id, exc)

    # --- windows (agent sessions) -----------------------------------------------------------

    def create_window(self, name: str, workdir: str, command: str, env: dict[str, str]) -> tuple[str, str]:
        """A new window running ``command`` in ``workdir``; ``(window id, pane id)``.

        ``remain-on-exit`` is set on the same command line, before tmux can see the command
        exit: a finished agent's last screen stays, as for local sessions.
        """
        parts = ["new-window", "-P", "-F", "'#{window_id} #{pane_id}'", "-t", f"{REMOTE_TMUX_SESSION}:"]
        parts += ["-n", control_quote(name), "-c", control_quote(workdir)]
        for key, value in env.items():
            parts += ["-e", control_quote(f"{key}={value}")]
        parts.append(control_quote(command))
        replies = self.client.call([" ".join(parts), "set-option -w remain-on-exit on"])
        window_id, _, pane_id = replies[0].text.strip().partition(" ")
        if not window_id.startswith("@") or not pane_id.startswith("%"):
            raise RemoteError(f"unexpected new-window answer: {replies[0].text!r}")
        return window_id, pane_id

    def kill_window(self, window_id: str) -> None:
        self.client.call([f"kill-window -t {window_id}"])

    def list_windows(self) -> list[WindowInfo]:
        fmt = "'#{window_id} #{pane_id} #{pane_dead} #{window_activity} #{window_name}'"
        reply = self.client.call([f"list-windows -t {REMOTE_TMUX_SESSION}: -F {fmt}"])[0]
        windows = []
        for line in reply.text.splitlines():
            fields = line.split(" ", 4)
            if len(fields) == 5 and fields[0].startswith("@"):
                activity = float(fields[3]) if fields[3].isdigit() else 0.0
                windows.append(WindowInfo(fields[0], fields[1], fields[4], fields[2] == "1", activity))
        return windows

    def capture(self, pane_id: str, lines: int) -> str:
        """The last ``lines`` lines of a pane, as text (NudgeNik reads them)."""
        reply = self.client.call([f"capture-pane -p -J -S -{max(0, int(lines))} -t {pane_id}"])[0]
        return reply.text

    # --- reading ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        assert self._master is not None
        buf = bytearray()
        try:
            while True:
                try:
                    data = os.read(self._master, 65536)
                except OSError as exc:
                    if exc.errno not in (errno.EIO, errno.EBADF):  # EIO: every holder of the PTY is gone
                        log.debug("remote %s: read ended: %s", self.host_id, exc)
                    break
                if not data:
                    break
                if self._protocol_seen.is_set():
                    buf += data
                    self._protocol_lines(buf)
                else:
                    self._before_protocol(data, buf)
        finally:
            self._finish()

    def _before_protocol(self, data: bytes, buf: bytearray) -> None:
        """The command's own output: shown raw, read for the hostname, until tmux starts."""
        # The DCS may be split between two reads: look for it across the previous read's tail.
        seen = self._tail + data
        found = seen.find(_CONTROL_MODE_START)
        before = len(seen) - len(data)  # bytes of the tail in front of this read
        self._tail = seen[-(len(_CONTROL_MODE_START) - 1) :]
        if found < 0:
            start = -1
        elif found >= before:
            start = found - before
        else:  # it began in the last read (already shown, harmless): the protocol starts after it
            data = _CONTROL_MODE_START + data[found + len(_CONTROL_MODE_START) - before :]
            start = 0
        shown = data if start < 0 else data[:start]
        buf += shown
        if shown:
            self._show(shown)
        *lines, rest = buf.split(b"\n")
        buf[:] = rest
        for line in lines:
            self._read_line(line.rstrip(b"\r").decode("utf-8", "replace"))
        if start < 0 and not rest.lstrip().startswith(b"%begin "):
            return
        # The protocol starts here (a -CC DCS, or a bare %begin of a plain -C client).
        if start >= 0:
            buf[:] = data[start + len(_CONTROL_MODE_START) :]
        elif buf:
            self._read_line(bytes(buf).rstrip(b"\r").decode("utf-8", "replace"))
        assert self._master is not None
        self._client = ControlModeClient.over(
            self._master, on_output=self._on_output, on_exit=lambda _reason: self._set_status(DISCONNECTED)
        )
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        self._protocol_seen.set()
        for subscriber in subscribers:
            subscriber.on_end()
        self._protocol_lines(buf)

    def _protocol_lines(self, buf: bytearray) -> None:
        """Hand complete lines to the client; a window's end is said after the output before it."""
        client = self._client
        assert client is not None
        *lines, rest = buf.split(b"\n")
        buf[:] = rest
        batch: list[bytes] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.startswith(_CONTROL_MODE_END):  # tmux -CC's ST before its last line
                line = line[len(_CONTROL_MODE_END) :]
            batch.append(line)
            if line.startswith((b"%window-close ", b"%unlinked-window-close ")):
                client.feed_lines(batch)
                batch = []
                self._on_window_close(line.split(b" ")[1].decode("ascii", "replace"))
        client.feed_lines(batch)

    def _read_line(self, line: str) -> None:
        with self._lock:
            self.facts.progress.append(line)
            self.facts.lines_read += 1
            del self.facts.progress[: -constants.REMOTE_PROGRESS_LINES]
        if (match := self._hostname_re.search(line)) and match.groups():
            self.facts.hostname = match.group(1) or ""
            if self.facts.status == PROVISIONING:
                self._set_status(CONNECTING)
        if match := _UUID_REGEX.search(line):
            self.facts.uuid = match.group(1)

    def _show(self, data: bytes) -> None:
        with self._lock:
            self._history += data
            del self._history[: -constants.REMOTE_PROVISION_HISTORY_BYTES]
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber.on_data(data)
            except Exception:  # noqa: BLE001 - one viewer must not stop the connection
                log.exception("remote %s: provisioning viewer failed", self.host_id)

    def _finish(self) -> None:
        proc = self._proc
        if proc is not None:
            try:
                proc.wait(timeout=constants.TERMINAL_CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:  # the PTY closed but the command lingers: it goes now
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
        if self._master is not None:
            try:
                os.close(self._master)
            except OSError:
                pass
        with self._lock:
            subscribers, self._subscribers = self._subscribers, []
        self._ended.set()
        if self._client is not None:
            self._client.connection_lost()
        for subscriber in subscribers:
            subscriber.on_end()
        if not self.facts.error and not self._closing:
            self.facts.error = self._exit_text()
        log.info("remote %s: connection ended (%s)", self.host_id, self._exit_text())
        self._set_status(DISCONNECTED)

    def _exit_text(self) -> str:
        code = self._proc.poll() if self._proc else None
        return f"remote connection command exited with status {code}" if code is not None else "connection closed"

    def _fail(self, message: str) -> None:
        self.facts.error = message
        self.close()
        raise RemoteError(message)

    def _set_status(self, status: str, connected_at: float | None = None) -> None:
        """Move to ``status``; a connection that has ended stays ``disconnected`` (a new one is made)."""
        with self._lock:
            if self.facts.status in (status, DISCONNECTED):
                return
            self.facts.status = status
            if connected_at is not None:
                self.facts.connected_at = connected_at
        log.info("remote %s: %s", self.host_id, status)
        try:
            self._on_status(status)
        except Exception:  # noqa: BLE001 - the manager's bookkeeping must not kill the reader
            log.exception("remote %s: status handler failed", self.host_id)


def _remote_environment() -> dict[str, str]:
    """The command's environment: the runtime's own settings and secrets (``MISO_*``) left out."""
    drop = constants.AGENT_COMMAND_ENV_DROP_PREFIXES
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop) and k not in ("TMUX", "TMUX_PANE")}
    env.setdefault("TERM", "xterm-256color")
    return env


__all__ = [
    "CONNECTED",
    "CONNECTING",
    "DEFAULT_HOSTNAME_REGEX",
    "DISCONNECTED",
    "EXPIRED",
    "PROVISIONING",
    "RECONNECTING",
    "REMOTE_TMUX_SESSION",
    "TMUX_CONTROL_SUFFIX",
    "RemoteConnection",
    "RemoteError",
    "TerminalClosedError",
    "WindowInfo",
    "control_quote",
]

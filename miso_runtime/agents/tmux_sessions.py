"""Agent sessions on the runtime's private tmux server.

Each coding agent runs in a detached tmux session (``tmux -L <socket> new-session -d``) so that
it outlives the runtime: after a restart :meth:`TmuxSessions.adopt` finds the sessions still on
the socket and recovers which Miso session and workspace each one belongs to from tmux user
options (``@miso_session_id``, ``@miso_workspace_id``) or, failing that, the session
environment. A person can attach to any of them with :attr:`SessionInfo.attach_cmd`.

Every tmux call goes through libtmux's :class:`~libtmux.Server` on a runner with a deadline
(:mod:`~miso_runtime.agents.tmux_server`; libtmux itself has no timeouts): listings come back as
libtmux ``Session`` objects, kills and the environment read go through libtmux's methods. The
command lines libtmux cannot write stay ours, sent through the same runner: ``create`` (the
server options and ``new-session`` on one tmux call, the command as an argv after ``--``),
keystrokes (``send-keys -l``/``-H`` with tmux's ``;`` escaped), ``capture`` (the pane's text
byte for byte, trailing blank rows included) and ``resize``. The socket is private, so the
server-wide options set on it (``remain-on-exit`` so that a finished agent's last screen stays
inspectable, ``history-limit``) touch no one else.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from miso_runtime import constants
from miso_runtime.agents.tmux_runner import (
    SessionExistsError,
    SessionNotFoundError,
    TmuxError,
    TmuxNotFoundError,
    TmuxRunner,
    TmuxTimeoutError,
    tmux_environment,
)
from miso_runtime.errors import bad_request

if TYPE_CHECKING:  # libtmux is imported where a TmuxSessions is made (the agents worker), not here
    from libtmux.session import Session

log = logging.getLogger(__name__)

#: Environment variables every agent pane gets: who it is and which workspace it works in.
ENV_SESSION_ID = "MISO_SESSION_ID"
ENV_WORKSPACE_ID = "MISO_WORKSPACE_ID"
#: tmux user options (session scope) carrying the same ids, readable in formats.
OPTION_SESSION_ID = "@miso_session_id"
OPTION_WORKSPACE_ID = "@miso_workspace_id"

#: tmux's own bound on a window dimension (``WINDOW_MAXIMUM``).
MAX_WINDOW_SIZE = 10_000

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$")
_SOCKET_RE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")

# One row per session from ``list-sessions`` (libtmux's field names): on a session row tmux
# gives the fields of its current window and that window's active pane.
_FIELDS = (
    "session_id",
    "session_name",
    "session_created",
    "window_activity",
    "window_id",
    "window_width",
    "window_height",
    "pane_id",
    "pane_pid",
    "pane_dead",
    "pane_dead_status",
    "history_limit",
    OPTION_SESSION_ID,
    OPTION_WORKSPACE_ID,
)
# What new-session prints (-P) about the session it made: the same, less the user options that
# are set after it on the same command line.
_CREATED_FIELDS = tuple(field for field in _FIELDS if not field.startswith("@"))

__all__ = [
    "ENV_SESSION_ID",
    "ENV_WORKSPACE_ID",
    "MAX_WINDOW_SIZE",
    "OPTION_SESSION_ID",
    "OPTION_WORKSPACE_ID",
    "SessionExistsError",
    "SessionInfo",
    "SessionNotFoundError",
    "TmuxError",
    "TmuxNotFoundError",
    "TmuxSessions",
    "TmuxTimeoutError",
    "hex_input_commands",
    "session_name_for",
    "tmux_arg",
    "tmux_environment",
    "tmux_version",
]


@dataclass(frozen=True)
class SessionInfo:
    """What tmux knows about one agent session, read in one ``list-sessions`` call.

    ``created_at`` and ``last_output_at`` are UTC with one-second resolution (tmux keeps
    seconds); ``last_output_at`` is tmux's ``window_activity``, which moves on every byte the
    pane writes. ``session_id``/``workspace_id`` are ``None`` for a session not made by us.
    ``running`` is false once the pane's process has exited (the pane stays, ``remain-on-exit``);
    ``exit_status`` is its exit code when tmux has recorded one (it usually has within
    milliseconds, but tmux 3.3 occasionally never does, so ``None`` is possible).
    """

    name: str
    session_id: str | None
    workspace_id: str | None
    running: bool
    exit_status: int | None
    pane_id: str
    window_id: str
    pane_pid: int | None
    width: int
    height: int
    history_limit: int
    created_at: datetime | None
    last_output_at: datetime | None
    attach_cmd: str


def session_name_for(session_id: str) -> str:
    """A tmux session name for a Miso session id: tmux rejects ``.`` and ``:`` and treats
    ``#{`` as a format, so anything but letters, digits, ``_`` and ``-`` becomes ``-``."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", session_id)[:100] or "session"
    return "_" + name[1:] if name.startswith("-") else name  # a leading "-" reads as a flag


def tmux_arg(value: str) -> str:
    """Protect one argument on tmux's command line: an argument ending in ``;`` would end the
    command (tmux's command separator), so that ``;`` is escaped as ``\\;``."""
    return value[:-1] + "\\;" if value.endswith(";") else value


def hex_input_commands(
    target: str, data: bytes, chunk_bytes: int = constants.TMUX_INPUT_CHUNK_BYTES
) -> list[list[str]]:
    """``send-keys -H`` commands that type ``data`` into a pane byte for byte.

    Hex keys are written to the pane untranslated (tmux marks them literal), so control
    characters (Ctrl-C is ``03``), escape sequences (arrow keys) and UTF-8 all arrive as the
    client sent them, with no quoting problems on the command line.
    """
    return [
        ["send-keys", "-t", target, "-H", *(f"{b:02x}" for b in data[start : start + chunk_bytes])]
        for start in range(0, len(data), chunk_bytes)
    ]


def _utc(epoch: str | None) -> datetime | None:
    if not epoch or not epoch.isdigit() or int(epoch) <= 0:
        return None
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc)


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _check_id(value: str | None, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value or len(value) > 200 or _CONTROL_CHARS_RE.search(value):
        raise bad_request(f"{field} must be 1-200 characters without control characters")


class TmuxSessions:
    """Agent sessions on one private tmux socket.

    Parameters
    ----------
    socket_name : str
        The ``tmux -L`` socket name; tests pass their own so they never see the runtime's.
    tmux_bin : str, optional
        The tmux executable; default the one on ``PATH``. A missing tmux raises
        :class:`TmuxNotFoundError` on first use, not here, so the runtime starts without it.
    config_file : str, optional
        ``tmux -f``, read when this call starts the server. ``None`` keeps tmux's default (the
        user's ``~/.tmux.conf``, so a person attaching gets their key bindings); tests pass
        ``/dev/null``.
    timeout_s : float
        Seconds any one tmux command may take; then tmux is killed and the call raises
        :class:`TmuxTimeoutError`.
    """

    def __init__(
        self,
        socket_name: str = constants.TMUX_SOCKET_NAME,
        *,
        tmux_bin: str | None = None,
        config_file: str | None = None,
        timeout_s: float = constants.TMUX_COMMAND_TIMEOUT_S,
    ) -> None:
        if not _SOCKET_RE.match(socket_name):
            raise ValueError(f"invalid tmux socket name: {socket_name!r}")
        from miso_runtime.agents.tmux_server import DeadlineServer  # libtmux: a few hundred ms to import

        self.runner = TmuxRunner(socket_name, tmux_bin=tmux_bin, config_file=config_file, timeout_s=timeout_s)
        #: libtmux's server object on that runner: every command it sends has the deadline.
        self.server = DeadlineServer(self.runner)
        self._path_tmux = shutil.which("tmux")  # for attach_cmd, which is asked once per session listed
        # create() sets server-wide options right before new-session; two creates at once
        # must not interleave their history limits.
        self._create_lock = threading.Lock()

    @property
    def socket_name(self) -> str:
        return self.runner.socket_name

    @property
    def tmux_bin(self) -> str | None:
        return self.runner.tmux_bin

    @property
    def config_file(self) -> str | None:
        return self.runner.config_file

    @property
    def timeout_s(self) -> float:
        return self.runner.timeout_s

    # --- plumbing ---------------------------------------------------------------------------

    def base_argv(self) -> list[str]:
        """``tmux -L <socket> -u [-f conf]``: the prefix of every tmux call on our socket (the
        control-mode client of :mod:`~miso_runtime.agents.terminal` starts with it too).

        ``-u`` tells tmux the client speaks UTF-8 whatever the locale, so command output
        (capture-pane, control mode replies) is never rewritten with ``_`` for non-ASCII.
        """
        return self.runner.base_argv()

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        """Run one tmux command line (``;`` arguments separate commands) and return stdout.

        Raises :class:`SessionNotFoundError` when tmux says the target is missing (or no
        server runs), :class:`TmuxTimeoutError`, :class:`TmuxNotFoundError`, else
        :class:`TmuxError` with tmux's message.
        """
        return self.runner.run(args, timeout_s).check()

    @staticmethod
    def target(name: str) -> str:
        """Exact-match target of a session's current window (``=name:``): a bare ``name``
        would also match any session whose name merely starts with it."""
        return f"={name}:"

    def attach_cmd(self, name: str) -> str:
        """The shell command a person runs in a terminal to attach to a session."""
        tmux = "tmux" if self.tmux_bin == self._path_tmux else (self.tmux_bin or "tmux")
        return shlex.join([tmux, "-L", self.socket_name, "attach", "-t", name])

    # --- queries ----------------------------------------------------------------------------

    def list(self) -> list[SessionInfo]:
        """Every session on the socket (none, not an error, when no server is running)."""
        return [self._info(session, row) for session, row in self._sessions()]

    def get(self, name: str) -> SessionInfo:
        """One session by tmux name; :class:`SessionNotFoundError` when there is none."""
        for info in self.list():
            if info.name == name:
                return info
        raise SessionNotFoundError(f"session not found: {name}")

    def exists(self, name: str) -> bool:
        """Whether a session of exactly that name is on the socket."""
        try:
            self.server.cmd("has-session", target=f"={name}").check()
        except SessionNotFoundError:
            return False
        return True

    def adopt(self) -> list[SessionInfo]:
        """Sessions already on the socket (after a runtime restart), ids recovered.

        The ids come from the ``@miso_*`` user options set by :meth:`create`; a session
        without them (made by hand, or by an older runtime) falls back to the
        ``MISO_SESSION_ID``/``MISO_WORKSPACE_ID`` of its tmux environment. A session with
        neither keeps ``session_id=None``: the caller decides whether it is ours.
        """
        adopted = []
        for session, row in self._sessions():
            info = self._info(session, row)
            if info.session_id is None or info.workspace_id is None:
                env = self._session_environment(session)
                info = replace(
                    info,
                    session_id=info.session_id or env.get(ENV_SESSION_ID) or None,
                    workspace_id=info.workspace_id or env.get(ENV_WORKSPACE_ID) or None,
                )
            adopted.append(info)
        log.info("adopted %d tmux session(s) on socket %s", len(adopted), self.socket_name)
        return adopted

    def capture(self, name: str, *, scrollback_lines: int = 0, escapes: bool = True) -> str:
        """The pane's screen plus up to ``scrollback_lines`` of history, wrapped lines joined;
        with ``escapes`` the colours and attributes are kept as SGR sequences.

        The text is tmux's byte for byte (every row, blank ones at the end too), which
        libtmux's ``Pane.capture_pane`` does not keep (it drops trailing blank lines)."""
        args = ["capture-pane", "-p", "-J", "-t", self.target(name)]
        if escapes:
            args.append("-e")
        if scrollback_lines > 0:
            args += ["-S", f"-{int(scrollback_lines)}"]
        return self.run(*args)

    # --- changes ----------------------------------------------------------------------------

    def create(
        self,
        session_id: str,
        command: str | Sequence[str],
        cwd: str | os.PathLike[str],
        *,
        workspace_id: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        history_limit: int = constants.TMUX_HISTORY_LIMIT,
        width: int = constants.AGENTS_TERMINAL_WIDTH,
        height: int = constants.AGENTS_TERMINAL_HEIGHT,
    ) -> SessionInfo:
        """Start ``command`` in a new detached session and return its state.

        ``command`` as a string runs through the default shell (``sh -c`` style); as a list it
        is executed directly. The pane's environment gets ``env`` plus ``MISO_SESSION_ID`` and
        ``MISO_WORKSPACE_ID``. ``history-limit`` is fixed when a pane is made, so it is set (on
        our private server) in the same tmux command list, right before ``new-session``.

        That command list is why this is not libtmux's ``Server.new_session``: it sends
        ``new-session`` alone (a server it starts would not have our limit yet), runs the
        command through a shell with no ``--``, and asks ``tmux -V`` with no deadline. Its
        ``-P -F`` idea is kept: ``new-session`` prints the new session's fields, read as a
        libtmux ``Session``, so no listing follows.
        """
        _check_id(session_id, "session_id")
        _check_id(workspace_id, "workspace_id")
        name = name or session_name_for(session_id)
        if not _NAME_RE.match(name):
            raise bad_request("session name must be 1-100 letters, digits, '_' or '-' (not first)")
        argv = [command] if isinstance(command, str) else list(command)
        if not argv or not all(isinstance(a, str) for a in argv) or not argv[0].strip():
            raise bad_request("command must be a non-empty string or list of strings")
        workdir = Path(cwd)
        if not workdir.is_dir():
            raise bad_request(f"working directory does not exist: {workdir}")
        if not (1 <= width <= MAX_WINDOW_SIZE and 1 <= height <= MAX_WINDOW_SIZE):
            raise bad_request(f"width and height must be 1-{MAX_WINDOW_SIZE}")
        if history_limit < 0:
            raise bad_request("history_limit must be >= 0")
        pane_env = dict(env or {})
        pane_env[ENV_SESSION_ID] = session_id
        pane_env[ENV_WORKSPACE_ID] = workspace_id or ""
        for key, value in pane_env.items():
            if not _ENV_KEY_RE.match(key) or "\x00" in value:
                raise bad_request(f"invalid environment variable: {key!r}")

        printed = "\t".join("#{%s}" % field for field in _CREATED_FIELDS)
        new_session = ["new-session", "-d", "-P", "-F", printed, "-s", name, "-x", str(width), "-y", str(height)]
        new_session += ["-c", tmux_arg(str(workdir.resolve()).replace("#", "##"))]  # -c is a format
        for key, value in pane_env.items():
            new_session += ["-e", tmux_arg(f"{key}={value}")]
        new_session += ["--", *(tmux_arg(a) for a in argv)]
        args = ["set-option", "-g", "history-limit", str(history_limit), ";"]
        args += ["set-option", "-gw", "remain-on-exit", "on", ";"]
        args += new_session + [";"]
        args += ["set-option", "-t", self.target(name), "--", OPTION_SESSION_ID, tmux_arg(session_id)]
        if workspace_id:
            args += [";", "set-option", "-t", self.target(name), "--", OPTION_WORKSPACE_ID, tmux_arg(workspace_id)]
        with self._create_lock:
            if self.exists(name):
                raise SessionExistsError(f"session already exists: {name}")
            out = self.run(*args)
        log.info("tmux session %s created on socket %s (session %s)", name, self.socket_name, session_id)
        lines = [line for line in out.splitlines() if line]
        if len(lines) != 1:  # not what new-session -P prints: ask tmux instead
            return self.get(name)
        row = dict(zip(_CREATED_FIELDS, lines[0].split("\t", len(_CREATED_FIELDS) - 1), strict=False))
        row |= {OPTION_SESSION_ID: session_id, OPTION_WORKSPACE_ID: workspace_id or ""}
        (session,) = self.server.objects([row], _session_class())
        return self._info(session, row)

    def kill(self, name: str) -> None:
        """End a session and its processes; :class:`SessionNotFoundError` if there is none."""
        from miso_runtime.agents.tmux_server import libtmux_errors

        with libtmux_errors():
            self.server.kill_session(f"={name}")
        log.info("tmux session %s killed", name)

    def kill_server(self) -> None:
        """End the whole private server and every session on it (no error if none runs), and
        wait until it has gone: a client that connects while it exits gets an error."""
        from miso_runtime.agents.tmux_server import libtmux_errors

        try:
            with libtmux_errors():
                self.server.kill()
        except SessionNotFoundError:
            pass
        deadline = time.monotonic() + self.timeout_s
        while self.server_running():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        # tmux 3.3 leaves its socket file behind; a socket no server answers on is litter.
        path = self.socket_path
        if path.is_socket():
            path.unlink(missing_ok=True)

    @property
    def socket_path(self) -> Path:
        """Where tmux puts the socket of ``-L <name>``: ``$TMUX_TMPDIR`` (or ``/tmp``), then
        ``tmux-<uid>/<name>``."""
        base = os.path.realpath(os.environ.get("TMUX_TMPDIR") or "/tmp")
        return Path(base) / f"tmux-{os.getuid()}" / self.socket_name

    def server_running(self) -> bool:
        """Whether a tmux server answers on our socket."""
        try:
            result = self.server.cmd("list-sessions")
        except TmuxTimeoutError:
            return True  # something holds the socket and does not answer
        stderr = result.error_text.lower()
        return not ("no server running" in stderr or "error connecting to" in stderr)

    def send_keys(self, name: str, text: str, *, enter: bool = False) -> None:
        """Type ``text`` literally (no key-name lookup), then Enter if asked."""
        args = ["send-keys", "-t", self.target(name), "-l", "--", tmux_arg(text)] if text else []
        if enter:
            args += ([";"] if args else []) + ["send-keys", "-t", self.target(name), "Enter"]
        if args:
            self.run(*args)

    def send_input(self, name: str, data: bytes | str) -> None:
        """Write raw input bytes (control characters, escape sequences, UTF-8) to the pane."""
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        commands = hex_input_commands(self.target(name), raw)
        for start in range(0, len(commands), 32):  # bounded command lines per tmux call
            args: list[str] = []
            for cmd in commands[start : start + 32]:
                args += ([";"] if args else []) + cmd
            self.run(*args)

    def resize(self, name: str, cols: int, rows: int) -> None:
        """Resize the session's window (and so its pane) to ``cols`` x ``rows``.

        ``resize-window`` also switches the window to ``window-size manual``, so the size
        stays put when a person attaches with a different terminal size (tmux would otherwise
        follow the latest client).
        """
        if not (1 <= cols <= MAX_WINDOW_SIZE and 1 <= rows <= MAX_WINDOW_SIZE):
            raise bad_request(f"cols and rows must be 1-{MAX_WINDOW_SIZE}")
        self.run("resize-window", "-t", self.target(name), "-x", str(int(cols)), "-y", str(int(rows)))

    # --- reading ----------------------------------------------------------------------------

    def _sessions(self) -> list[tuple[Session, dict[str, str]]]:
        """libtmux ``Session`` objects of one ``list-sessions`` call, each with its row (which
        also holds the ``@miso_*`` user options: libtmux's objects have no place for them)."""
        rows = self.server.fetch("list-sessions", _FIELDS)
        return list(zip(self.server.objects(rows, _session_class()), rows, strict=True))

    def _info(self, session: Session, row: Mapping[str, str]) -> SessionInfo:
        name = session.session_name or ""
        dead = session.pane_dead == "1"
        pid = _int(session.pane_pid, 0)
        return SessionInfo(
            name=name,
            session_id=row.get(OPTION_SESSION_ID) or None,
            workspace_id=row.get(OPTION_WORKSPACE_ID) or None,
            running=not dead and pid > 0,
            exit_status=_int(session.pane_dead_status) if dead and session.pane_dead_status else None,
            pane_id=session.pane_id or "",
            window_id=session.window_id or "",
            pane_pid=pid or None,
            width=_int(session.window_width),
            height=_int(session.window_height),
            history_limit=_int(session.history_limit),
            created_at=_utc(session.session_created),
            last_output_at=_utc(session.window_activity),
            attach_cmd=self.attach_cmd(name),
        )

    def _session_environment(self, session: Session) -> dict[str, str]:
        """The session's tmux environment (libtmux's ``show_environment``); ``{}`` if tmux fails
        (a variable tmux marks removed, ``-NAME``, is left out)."""
        from miso_runtime.agents.tmux_server import libtmux_errors

        try:
            with libtmux_errors():
                env = session.show_environment()
        except TmuxError:
            return {}
        return {k: v for k, v in env.items() if isinstance(v, str) and not k.startswith("-")}


def _session_class() -> type[Session]:
    from libtmux.session import Session

    return Session


def tmux_version(tmux_bin: str | None = None) -> str | None:
    """``tmux -V`` without the ``tmux`` word (``"3.3a"``), or ``None`` when tmux is missing."""
    binary = tmux_bin or shutil.which("tmux")
    if not binary:
        return None
    try:
        out = subprocess.run([binary, "-V"], capture_output=True, timeout=constants.TMUX_COMMAND_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.decode("utf-8", "replace").strip().removeprefix("tmux ").strip() or None

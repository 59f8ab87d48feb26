"""Agent sessions on the runtime's private tmux server.

Each coding agent runs in a detached tmux session (``tmux -L <socket> new-session -d``) so that
it outlives the runtime: after a restart :meth:`TmuxSessions.adopt` finds the sessions still on
the socket and recovers which Miso session and workspace each one belongs to from tmux user
options (``@miso_session_id``, ``@miso_workspace_id``) or, failing that, the session
environment. A person can attach to any of them with :attr:`SessionInfo.attach_cmd`.

Every tmux call is a subprocess with a timeout (libtmux has no timeouts, so it is not used
here). The socket is private, so the server-wide options set on it (``remain-on-exit`` so that
a finished agent's last screen stays inspectable, ``history-limit``) touch no one else.
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

from miso_runtime import constants
from miso_runtime.errors import MisoError, bad_request

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

# One line per session from ``list-sessions``: the session's current window and active pane.
_FIELDS = (
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
_LIST_FORMAT = "\t".join("#{%s}" % field for field in _FIELDS)
_NO_SERVER_MARKERS = ("no server running", "error connecting to", "no sessions", "server exited unexpectedly")
_NO_SESSION_MARKERS = ("can't find session", "session not found", "can't find window", "can't find pane")


class TmuxError(MisoError):
    """A tmux command failed; the message is tmux's own words."""

    default_status = 500
    default_code = "tmux_error"

    def __init__(self, message: str) -> None:
        super().__init__(self.default_status, self.default_code, message)


class TmuxNotFoundError(TmuxError):
    """tmux is not installed (or not on ``PATH``): coding agents cannot run at all."""

    default_status = 503
    default_code = "tmux_missing"


class TmuxTimeoutError(TmuxError):
    """A tmux command did not answer in time (a wedged server, or a machine under load)."""

    default_status = 503
    default_code = "tmux_timeout"


class SessionNotFoundError(TmuxError):
    """No tmux session of that name on our socket (never made, killed, or the server died)."""

    default_status = 404
    default_code = "session_not_found"


class SessionExistsError(TmuxError):
    """A tmux session of that name already exists on our socket."""

    default_status = 409
    default_code = "session_exists"


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


def tmux_environment() -> dict[str, str]:
    """Our environment minus what must not reach the tmux server (see ``TMUX_ENV_DROP``)."""
    return {k: v for k, v in os.environ.items() if k not in constants.TMUX_ENV_DROP}


def _utc(epoch: str) -> datetime | None:
    return datetime.fromtimestamp(int(epoch), tz=timezone.utc) if epoch.isdigit() and int(epoch) > 0 else None


def _int(value: str, default: int = 0) -> int:
    try:
        return int(value)
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
        Seconds any one tmux command may take.
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
        self.socket_name = socket_name
        self.tmux_bin = tmux_bin or shutil.which("tmux")
        self.config_file = config_file
        self.timeout_s = timeout_s
        # create() sets server-wide options right before new-session; two creates at once
        # must not interleave their history limits.
        self._create_lock = threading.Lock()

    # --- plumbing ---------------------------------------------------------------------------

    def base_argv(self) -> list[str]:
        """``tmux -L <socket> -u [-f conf]``: the prefix of every tmux call on our socket.

        ``-u`` tells tmux the client speaks UTF-8 whatever the locale, so command output
        (capture-pane, control mode replies) is never rewritten with ``_`` for non-ASCII.
        """
        if not self.tmux_bin:
            raise TmuxNotFoundError("tmux is not installed or not on PATH")
        argv = [self.tmux_bin, "-L", self.socket_name, "-u"]
        if self.config_file is not None:
            argv += ["-f", self.config_file]
        return argv

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        """Run one tmux command line (``;`` arguments separate commands) and return stdout.

        Raises :class:`SessionNotFoundError` when tmux says the target is missing (or no
        server runs), :class:`TmuxTimeoutError`, :class:`TmuxNotFoundError`, else
        :class:`TmuxError` with tmux's message.
        """
        argv = self.base_argv() + list(args)
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s or self.timeout_s,
                env=tmux_environment(),
            )
        except FileNotFoundError as exc:
            raise TmuxNotFoundError(f"tmux not found: {self.tmux_bin}") from exc
        except subprocess.TimeoutExpired as exc:
            raise TmuxTimeoutError(f"tmux {args[0] if args else ''} did not answer in {exc.timeout:g} s") from exc
        if proc.returncode != 0:
            message = proc.stderr.decode("utf-8", "replace").strip() or f"tmux exited with {proc.returncode}"
            lowered = message.lower()
            if any(marker in lowered for marker in _NO_SERVER_MARKERS + _NO_SESSION_MARKERS):
                raise SessionNotFoundError(message)
            if "duplicate session" in lowered:
                raise SessionExistsError(message)
            raise TmuxError(message)
        return proc.stdout.decode("utf-8", "replace")

    @staticmethod
    def target(name: str) -> str:
        """Exact-match target of a session's current window (``=name:``): a bare ``name``
        would also match any session whose name merely starts with it."""
        return f"={name}:"

    def attach_cmd(self, name: str) -> str:
        """The shell command a person runs in a terminal to attach to a session."""
        tmux = "tmux" if self.tmux_bin == shutil.which("tmux") else (self.tmux_bin or "tmux")
        return shlex.join([tmux, "-L", self.socket_name, "attach", "-t", name])

    # --- queries ----------------------------------------------------------------------------

    def list(self) -> list[SessionInfo]:
        """Every session on the socket (none, not an error, when no server is running)."""
        try:
            out = self.run("list-sessions", "-F", _LIST_FORMAT)
        except SessionNotFoundError:
            return []
        return [self._parse(line) for line in out.splitlines() if line.strip()]

    def get(self, name: str) -> SessionInfo:
        """One session by tmux name; :class:`SessionNotFoundError` when there is none."""
        for info in self.list():
            if info.name == name:
                return info
        raise SessionNotFoundError(f"session not found: {name}")

    def exists(self, name: str) -> bool:
        """Whether a session of exactly that name is on the socket."""
        try:
            self.run("has-session", "-t", f"={name}")
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
        for info in self.list():
            if info.session_id is None or info.workspace_id is None:
                env = self._session_environment(info.name)
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
        with ``escapes`` the colours and attributes are kept as SGR sequences."""
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

        new_session = ["new-session", "-d", "-s", name, "-x", str(width), "-y", str(height)]
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
            self.run(*args)
        log.info("tmux session %s created on socket %s (session %s)", name, self.socket_name, session_id)
        return self.get(name)

    def kill(self, name: str) -> None:
        """End a session and its processes; :class:`SessionNotFoundError` if there is none."""
        self.run("kill-session", "-t", f"={name}")
        log.info("tmux session %s killed", name)

    def kill_server(self) -> None:
        """End the whole private server and every session on it (no error if none runs), and
        wait until it has gone: a client that connects while it exits gets an error."""
        try:
            self.run("kill-server")
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
            proc = subprocess.run(
                self.base_argv() + ["list-sessions"],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout_s,
                env=tmux_environment(),
            )
        except FileNotFoundError as exc:
            raise TmuxNotFoundError(f"tmux not found: {self.tmux_bin}") from exc
        except subprocess.TimeoutExpired:
            return True  # something holds the socket and does not answer
        stderr = proc.stderr.decode("utf-8", "replace").lower()
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

    # --- parsing ----------------------------------------------------------------------------

    def _parse(self, line: str) -> SessionInfo:
        values = dict(zip(_FIELDS, line.split("\t", len(_FIELDS) - 1), strict=False))
        get = values.get
        name = get("session_name", "")
        dead = get("pane_dead", "") == "1"
        pid = _int(get("pane_pid", ""), 0)
        return SessionInfo(
            name=name,
            session_id=get(OPTION_SESSION_ID) or None,
            workspace_id=get(OPTION_WORKSPACE_ID) or None,
            running=not dead and pid > 0,
            exit_status=_int(get("pane_dead_status", "")) if dead and get("pane_dead_status") else None,
            pane_id=get("pane_id", ""),
            window_id=get("window_id", ""),
            pane_pid=pid or None,
            width=_int(get("window_width", "")),
            height=_int(get("window_height", "")),
            history_limit=_int(get("history_limit", "")),
            created_at=_utc(get("session_created", "")),
            last_output_at=_utc(get("window_activity", "")),
            attach_cmd=self.attach_cmd(name),
        )

    def _session_environment(self, name: str) -> dict[str, str]:
        try:
            out = self.run("show-environment", "-t", f"={name}")
        except TmuxError:
            return {}
        env = {}
        for line in out.splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("-"):
                env[key] = value
        return env


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

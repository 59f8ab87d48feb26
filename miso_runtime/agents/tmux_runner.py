"""Every one-shot tmux command of the agents on one runner, with a deadline.

libtmux runs each command with ``subprocess.Popen(...).communicate()`` and no timeout, so a
wedged tmux server (or a machine under load) would hang the agents worker for good.
:class:`TmuxRunner` runs ``tmux -L <socket> -u [-f conf] <args>``, kills tmux after
``timeout_s`` and raises :class:`TmuxTimeoutError`; it also adds what libtmux does not: ``-u``
(UTF-8 output whatever the locale) and an environment without the runtime's secrets
(``TMUX_ENV_DROP``). libtmux's object model runs on it through
:class:`~miso_runtime.agents.tmux_server.DeadlineServer`.

This module does not import libtmux (which takes a few hundred milliseconds): the server
process imports it, through :mod:`~miso_runtime.agents.tmux_sessions`, for the error classes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from miso_runtime import constants
from miso_runtime.errors import MisoError

#: What tmux says when nothing answers on the socket, or the target is not there. "no current
#: target" comes when the last session is still being torn down after a kill (seen under load).
NO_SERVER_MARKERS = ("no server running", "error connecting to", "no sessions", "server exited unexpectedly")
NO_TARGET_MARKERS = (
    "can't find session",
    "no such session",
    "session not found",
    "can't find window",
    "can't find pane",
    "no current target",
)


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


def tmux_environment() -> dict[str, str]:
    """Our environment minus what must not reach the tmux server (see ``TMUX_ENV_DROP``)."""
    return {k: v for k, v in os.environ.items() if k not in constants.TMUX_ENV_DROP}


def tmux_failure(message: str) -> TmuxError:
    """The error for tmux's own message: not found (404), exists (409), else a plain 500."""
    lowered = message.lower()
    if any(marker in lowered for marker in NO_SERVER_MARKERS + NO_TARGET_MARKERS):
        return SessionNotFoundError(message)
    if "duplicate session" in lowered:
        return SessionExistsError(message)
    return TmuxError(message)


@dataclass(frozen=True)
class TmuxResult:
    """One finished tmux command, shaped like libtmux's ``tmux_cmd`` (``stdout``/``stderr`` as
    lists of lines, ``returncode``, ``cmd``) so that libtmux's methods can read it, with the raw
    text kept for callers that need it byte for byte (a capture's trailing blank rows)."""

    cmd: list[str]
    returncode: int
    text: str
    error_text: str

    @property
    def stdout(self) -> list[str]:
        lines = self.text.split("\n")
        while lines and lines[-1] == "":
            lines.pop()
        return lines

    @property
    def stderr(self) -> list[str]:
        return [line for line in self.error_text.split("\n") if line]

    def check(self) -> str:
        """The output; the matching :class:`TmuxError` if tmux failed."""
        if self.returncode != 0:
            raise tmux_failure(self.error_text.strip() or f"tmux exited with {self.returncode}")
        return self.text


class TmuxRunner:
    """Runs tmux on one socket: ``tmux -L <socket> -u [-f conf] <args>``, killed after a deadline.

    Only two things raise here: :class:`TmuxNotFoundError` (no tmux) and
    :class:`TmuxTimeoutError` (no answer in time). A command tmux refuses comes back as a
    :class:`TmuxResult` with its exit status and message; :meth:`TmuxResult.check` raises.
    """

    def __init__(
        self,
        socket_name: str,
        *,
        tmux_bin: str | None = None,
        config_file: str | None = None,
        timeout_s: float = constants.TMUX_COMMAND_TIMEOUT_S,
    ) -> None:
        self.socket_name = socket_name
        self.tmux_bin = tmux_bin or shutil.which("tmux")
        self.config_file = config_file
        self.timeout_s = timeout_s
        self._version: str | None = None

    def base_argv(self) -> list[str]:
        """The prefix of every call on our socket. ``-u`` tells tmux the client speaks UTF-8
        whatever the locale, so output (capture-pane, control mode replies) keeps non-ASCII."""
        if not self.tmux_bin:
            raise TmuxNotFoundError("tmux is not installed or not on PATH")
        argv = [self.tmux_bin, "-L", self.socket_name, "-u"]
        if self.config_file is not None:
            argv += ["-f", self.config_file]
        return argv

    def run(self, args: Sequence[str], timeout_s: float | None = None) -> TmuxResult:
        """Run one tmux command line (``;`` arguments separate commands) within the deadline."""
        label = str(args[0]) if args else ""
        return self._exec(self.base_argv() + [str(a) for a in args], timeout_s or self.timeout_s, label)

    def version(self) -> str:
        """``tmux -V`` without the word ``tmux`` (``"3.3a"``), asked once per runner."""
        if self._version is None:
            if not self.tmux_bin:
                raise TmuxNotFoundError("tmux is not installed or not on PATH")
            out = self._exec([self.tmux_bin, "-V"], self.timeout_s, "-V").check()
            self._version = out.strip().removeprefix("tmux ").strip() or "3.2a"
        return self._version

    def _exec(self, argv: list[str], timeout_s: float, label: str) -> TmuxResult:
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s, env=tmux_environment()
            )
        except FileNotFoundError as exc:
            raise TmuxNotFoundError(f"tmux not found: {argv[0]}") from exc
        except subprocess.TimeoutExpired as exc:
            raise TmuxTimeoutError(f"tmux {label} did not answer in {exc.timeout:g} s") from exc
        return TmuxResult(
            cmd=argv,
            returncode=proc.returncode,
            text=proc.stdout.decode("utf-8", "replace"),
            error_text=proc.stderr.decode("utf-8", "replace"),
        )

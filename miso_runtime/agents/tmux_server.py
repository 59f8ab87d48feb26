"""libtmux's object model on our tmux runner: every command it sends has a deadline.

libtmux's :class:`libtmux.Server` sends every command of its object model (sessions, windows,
panes, options, environment) through one method, :meth:`libtmux.Server.cmd`.
:class:`DeadlineServer` overrides it to run the command through
:class:`~miso_runtime.agents.tmux_runner.TmuxRunner` (a deadline, ``-u``, a filtered
environment) instead of libtmux's ``tmux_cmd`` (``Popen.communicate()``, no timeout).

Not everything in libtmux goes through ``Server.cmd``: its listings (``neo.fetch_objs``, used
by ``Session.windows``, ``Window.panes`` and the stock ``Server.sessions``) and its version
checks (``get_version``, used by ``Server.new_session`` and some ``capture_pane`` flags) call
``tmux_cmd`` directly, without a deadline. :class:`DeadlineServer` therefore lists through
:meth:`DeadlineServer.fetch` (and overrides ``sessions``/``windows``/``panes`` to match), and
the runtime calls none of the others.

Imported only where a :class:`~miso_runtime.agents.tmux_sessions.TmuxSessions` is made (the
agents worker): importing libtmux takes a few hundred milliseconds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from libtmux import exc as libtmux_exc
from libtmux._internal.query_list import QueryList
from libtmux.neo import Obj, get_output_format, parse_output
from libtmux.pane import Pane
from libtmux.server import Server
from libtmux.session import Session
from libtmux.window import Window

from miso_runtime.agents.tmux_runner import (
    NO_SERVER_MARKERS,
    TmuxNotFoundError,
    TmuxResult,
    TmuxRunner,
    tmux_failure,
)

#: The fields libtmux's object model knows (its ``Obj`` dataclass); ``@name`` user options aside.
OBJ_FIELDS = frozenset(name for name in Obj.__dataclass_fields__ if name != "server")


@contextlib.contextmanager
def libtmux_errors() -> Iterator[None]:
    """Turn what libtmux raises into our errors, with tmux's words (not libtmux's prefix)."""
    try:
        yield
    except libtmux_exc.TmuxCommandNotFound as exc:
        raise TmuxNotFoundError("tmux is not installed or not on PATH") from exc
    except libtmux_exc.LibTmuxException as exc:
        # libtmux passes tmux's stderr as a string, or as its list of lines
        parts = [line for arg in exc.args for line in (arg if isinstance(arg, list) else [arg])]
        words = "\n".join(str(part) for part in parts).strip()
        raise tmux_failure(words or str(exc) or type(exc).__name__) from exc


class DeadlineServer(Server):
    """libtmux's :class:`~libtmux.Server` whose every command runs through a :class:`TmuxRunner`.

    Sessions, windows and panes read from it are libtmux objects bound to this server, so
    their methods (``Session.kill``, ``Session.show_environment``, ``set_option``,
    ``show_option``, ``Pane.send_keys``...) have the deadline too. Their listing properties
    (``Session.windows``, ``Window.panes``) do not (see the module docstring): list through
    :meth:`fetch` or this server's ``sessions``/``windows``/``panes``.
    """

    def __init__(self, runner: TmuxRunner) -> None:
        super().__init__(socket_name=runner.socket_name, config_file=runner.config_file, tmux_bin=runner.tmux_bin)
        self.runner = runner

    def cmd(self, cmd: str, *args: Any, target: str | int | None = None) -> TmuxResult:  # type: ignore[override]
        """``tmux <cmd> [-t target] <args>`` on our socket, within the runner's deadline."""
        head = [cmd, "-t", str(target)] if target is not None else [cmd]
        return self.runner.run([*head, *(str(a) for a in args)])

    def fetch(self, list_cmd: str, fields: Sequence[str], *extra_args: str) -> list[dict[str, str]]:
        """One ``list-sessions``/``list-windows``/``list-panes`` call asking for just ``fields``
        (libtmux field names, or ``@user`` options), one dict per row; ``[]`` when no server
        runs. libtmux's own listings ask for all of its ~120 fields, which costs tmux
        measurably more per row (``bench/tmux_calls.py``)."""
        unknown = [f for f in fields if f not in OBJ_FIELDS and not f.startswith("@")]
        if unknown:
            raise ValueError(f"not tmux format fields libtmux knows: {unknown}")
        # A tab between fields (libtmux uses "\u241e"): our ids and names cannot hold one (control
        # characters are refused), so only the last field may, and it keeps the rest of the row.
        fmt = "\t".join(f"#{{{f}}}" for f in fields)
        result = self.cmd(list_cmd, *extra_args, "-F", fmt)
        if result.returncode != 0:
            if any(marker in result.error_text.lower() for marker in NO_SERVER_MARKERS):
                return []
            result.check()
        return [dict(zip(fields, line.split("\t", len(fields) - 1), strict=False)) for line in result.stdout if line]

    def objects(self, rows: list[dict[str, str]], cls: type[Obj]) -> list[Any]:
        """libtmux objects (``Session``, ``Window``, ``Pane``) bound to this server, from rows of
        :meth:`fetch` (user options are left out: libtmux's objects have no place for them)."""
        return [cls(server=self, **{k: v for k, v in row.items() if v and k in OBJ_FIELDS}) for row in rows]

    def _full(self, list_cmd: str, cls: type[Obj], *extra_args: str) -> QueryList[Any]:
        """What libtmux's stock listing returns (all its fields), through the runner."""
        version = self.runner.version()
        _fields, fmt = get_output_format(list_cmd, version)
        result = self.cmd(list_cmd, *extra_args, f"-F{fmt}")
        if result.returncode != 0:
            if any(marker in result.error_text.lower() for marker in NO_SERVER_MARKERS):
                return QueryList([])
            result.check()
        return QueryList([cls(server=self, **parse_output(line, list_cmd, version)) for line in result.stdout])

    @property
    def sessions(self) -> QueryList[Session]:  # type: ignore[override]
        return self._full("list-sessions", Session)

    @property
    def windows(self) -> QueryList[Window]:  # type: ignore[override]
        return self._full("list-windows", Window, "-a")

    @property
    def panes(self) -> QueryList[Pane]:  # type: ignore[override]
        return self._full("list-panes", Pane, "-a")

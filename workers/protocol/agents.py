"""Messages of the ``agents`` worker's terminals and dashboard state (its other calls are RPC)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Command, Event


@dataclass(frozen=True)
class TerminalAttach(Command):
    """Follow a session's terminal as stream ``stream_id`` (one per ``/ws/terminal`` client).

    ``last_seq``/``epoch``: what a reconnecting client already has (it then gets only what it
    missed); ``seed_lines``: scrollback lines in the first ``full``.
    """

    stream_id: str
    session_id: str
    seed_lines: int
    last_seq: int | None = None
    epoch: str | None = None


@dataclass(frozen=True)
class TerminalClientMessage(Command):
    """A client message of a terminal stream: ``input`` (raw text), ``resize`` (cols, rows),
    ``pause`` or ``resume``."""

    stream_id: str
    type: str
    data: str | bytes = ""
    cols: int = 0
    rows: int = 0


@dataclass(frozen=True)
class ProvisionAttach(Command):
    """Follow a remote host's provisioning terminal (the connect command's raw PTY) as
    ``stream_id``; its input and resizes come as ``TerminalClientMessage`` (``data`` may be
    bytes: a binary frame is raw input)."""

    stream_id: str
    provision_id: str


@dataclass(frozen=True)
class TerminalDetach(Command):
    stream_id: str


@dataclass(frozen=True)
class AgentsState(Event):
    """The agents worker's workspaces and sessions in the shape of ``GET /api/sessions``."""

    workspaces: list[dict[str, Any]]


@dataclass(frozen=True)
class TerminalOut(Event):
    """A message for one terminal client (``{"type", "content", "seq"}``, ``epoch`` on ``full``);
    ``final`` when the stream ends with it (displaced, reconnect, closed, or refused)."""

    stream_id: str
    message: dict[str, Any]
    final: bool = False


@dataclass(frozen=True)
class AgentsConflicts(Event):
    """Every workspace's resolve-conflict state (the ``linear_sync_resolve_conflict`` frames of
    ``/ws/dashboard``), sent whole after each change."""

    states: list[dict[str, Any]]

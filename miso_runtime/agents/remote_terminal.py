"""The terminal of an agent session on a remote host: the same stream as a local one, fed by
``%output`` notifications instead of a pane pipe.

A local session's output comes through ``pipe-pane`` into a FIFO on this machine; a remote
pane's FIFO would be on the far machine, so its bytes come through the connection's one
control-mode client instead (:class:`~miso_runtime.agents.remote_connection.RemoteConnection`).
Everything a client sees (``full``, ``append`` with ``seq``, reconnect with what it missed,
``displaced``, pause) is :class:`~miso_runtime.agents.terminal.TerminalStream`'s.

The snapshot is exact for the same reason as locally: the capture commands' replies and the
``%output`` lines come down one ordered stream, and the new segment starts at the point of the
stream where the replies arrive (``submit(on_reply=...)`` runs there, on the reader thread).
"""

from __future__ import annotations

import logging

from .control_mode import ControlModeClient, Reply, TerminalClosedError
from .terminal import TerminalEvent, TerminalStream, _Segment

log = logging.getLogger(__name__)


class RemoteTerminalStream(TerminalStream):
    """One remote session's terminal; the manager calls :meth:`feed` with its pane's output and
    :meth:`ended` when its window or the connection goes."""

    def __init__(self, client: ControlModeClient, name: str, window_id: str, pane_id: str) -> None:
        super().__init__(None, name)  # type: ignore[arg-type] # no local tmux socket behind it
        self._remote_client = client
        self.window_id, self.pane_id = window_id, pane_id
        self.host_id = ""

    def start(self) -> RemoteTerminalStream:
        if not self._remote_client.alive:
            raise TerminalClosedError("remote host not connected")
        log.info("terminal stream of remote session %s (pane %s)", self.name, self.pane_id)
        return self

    def close(self) -> None:
        """End every subscription; the shared connection and the remote window go on."""
        self._mark_closed("stream closed")

    @property
    def pid(self) -> int | None:
        return None

    def feed(self, data: bytes) -> None:
        """Pane output, in stream order (the connection's reader thread)."""
        segment = self._segment
        self._append(segment, segment.splitter.feed(data))

    def ended(self, reason: str) -> None:
        segment = self._segment
        self._append(segment, segment.splitter.flush())
        self._mark_closed(reason)

    def _require_client(self) -> ControlModeClient:
        if self._closed or not self._remote_client.alive:
            raise TerminalClosedError()
        return self._remote_client

    def _begin_segment(self, scrollback_lines: int, *, displace: bool) -> tuple[_Segment, TerminalEvent]:
        with self._snapshot_lock:
            client = self._require_client()
            segment = _Segment(*self._bounds)
            commands = self._snapshot_commands(scrollback_lines)

            def switch(replies: list[Reply]) -> TerminalEvent:
                snap = self._build_snapshot(replies, scrollback_lines)
                full = TerminalEvent("full", snap.to_ansi(), snap.seq, snapshot=snap, epoch=segment.epoch)
                with self._cond:
                    self._segment = segment
                    for other in self._subscriptions:
                        if displace:
                            other._displace()
                        else:
                            other._reseed(full, segment)
                    self._cond.notify_all()
                return full

            full: TerminalEvent = client.wait(client.submit(commands, on_reply=switch), self.timeout_s)
            return segment, full


__all__ = ["RemoteTerminalStream"]

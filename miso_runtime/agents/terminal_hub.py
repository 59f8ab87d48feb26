"""The terminals of the agents worker: one terminal stream per session, one follower per client.

Each ``/ws/terminal`` client is a stream id in the worker. Its follower thread hands the
:class:`~miso_runtime.agents.terminal.Subscription`'s events to the server as ``TerminalOut``
messages; the server only relays them. A session's stream starts with its first client and
closes ``linger_s`` seconds after its last one leaves: a client that reconnects within that
time (a network blip, a reloaded page) gets only what it missed, and an idle runtime still runs
no control-mode or pipe process.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from workers.protocol.agents import TerminalAttach, TerminalClientMessage, TerminalOut
from workers.protocol.base import Event

from .. import constants
from ..errors import MisoError
from .terminal import Subscription, TerminalStream
from .tmux_sessions import TmuxSessions, session_name_for

logger = logging.getLogger(__name__)

#: Seconds a follower waits for output before checking that its client is still there.
FOLLOW_POLL_S = 0.5
#: Largest terminal size a resize may ask for (tmux's own limit is 10000).
MAX_COLS = 1000
MAX_ROWS = 500


class TerminalHub:
    def __init__(
        self, tmux: TmuxSessions, send: Callable[[Event], None], linger_s: float = constants.TERMINAL_LINGER_S
    ) -> None:
        self._tmux = tmux
        self._send = send
        self.linger_s = linger_s
        self._lock = threading.Lock()
        self._streams: dict[str, TerminalStream] = {}
        self._closers: dict[str, threading.Timer] = {}
        self._clients: dict[str, tuple[str, Subscription | None]] = {}
        #: ``(tmux name, output)`` of every stream and ``(tmux name, input)`` of every client's
        #: keys, for the agent signals and nudges (:mod:`~miso_runtime.agents.nudges`).
        self.on_output: Callable[[str, bytes], None] | None = None
        self.on_input: Callable[[str, str], None] | None = None
        #: How to open the stream of a session on a remote host; None for a local session
        #: (set by the worker: ``RemoteSessions.stream_factory``).
        self.remote_stream: Callable[[str], Callable[[], TerminalStream] | None] = lambda _session_id: None

    def attach(self, command: TerminalAttach) -> None:
        """Start following; a session that is gone or has exited is refused (404 or 410)."""
        name = session_name_for(command.session_id)
        try:
            remote = self.remote_stream(command.session_id)
            if remote is None:
                info = self._tmux.get(name)
                if not info.running:
                    raise MisoError(410, "session_not_running", "session not running")
            with self._lock:
                closer = self._closers.pop(name, None)
                if closer is not None:
                    closer.cancel()
                stream = self._streams.get(name)
                if stream is None or stream.closed:
                    stream = remote() if remote is not None else TerminalStream(self._tmux, name)
                    if self.on_output is not None:
                        stream.on_output = lambda data, name=name, hook=self.on_output: hook(name, data)
                    stream.start()
                    self._streams[name] = stream
                # a user of the stream from now on: a displaced client leaving must not close it
                self._clients[command.stream_id] = (name, None)
            subscription = stream.subscribe(
                last_seq=command.last_seq, epoch=command.epoch, scrollback_lines=command.seed_lines, displace=True
            )
        except MisoError as exc:
            self._send(
                TerminalOut(command.stream_id, {"type": "error", "status": exc.status, "content": exc.message}, True)
            )
            self._forget(command.stream_id)
            return
        with self._lock:
            wanted = command.stream_id in self._clients
            if wanted:
                self._clients[command.stream_id] = (name, subscription)
        if not wanted:  # the client left while its snapshot was taken
            subscription.close()
            return
        threading.Thread(target=self._follow, args=(command.stream_id, name, subscription), daemon=True).start()

    def _follow(self, stream_id: str, name: str, subscription: Subscription) -> None:
        try:
            while not subscription.done:
                event = subscription.get(FOLLOW_POLL_S)
                if event is None:
                    continue
                message = event.to_message()
                final = event.type in ("displaced", "reconnect", "closed")
                self._send(TerminalOut(stream_id, message, final))
                if final:
                    break
        except Exception as exc:  # noqa: BLE001 - end this client, never the worker
            logger.exception("terminal %s: follower failed", name)
            self._send(TerminalOut(stream_id, {"type": "reconnect", "content": f"terminal error: {exc}"}, True))
        finally:
            self._forget(stream_id)

    def message(self, command: TerminalClientMessage) -> None:
        with self._lock:
            entry = self._clients.get(command.stream_id)
            stream = self._streams.get(entry[0]) if entry else None
        if entry is None or stream is None:
            return
        subscription = entry[1]  # None while its first snapshot is taken: keys still go through
        try:
            if command.type == "input":
                if self.on_input is not None:
                    self.on_input(entry[0], command.data)
                stream.send_input(command.data)
            elif command.type == "resize":
                stream.resize(max(1, min(command.cols, MAX_COLS)), max(1, min(command.rows, MAX_ROWS)))
            elif command.type == "pause" and subscription is not None:
                subscription.pause()
            elif command.type == "resume" and subscription is not None:
                subscription.resume()
        except MisoError as exc:
            self._send(TerminalOut(command.stream_id, {"type": "error", "content": exc.message}))

    def detach(self, stream_id: str) -> None:
        with self._lock:
            entry = self._clients.get(stream_id)
        if entry is not None:
            if entry[1] is not None:
                entry[1].close()
            self._forget(stream_id)

    def _forget(self, stream_id: str) -> None:
        """Drop a client; the last client of a session closes its stream after ``linger_s``."""
        with self._lock:
            entry = self._clients.pop(stream_id, None)
            if entry is None:
                return
            name = entry[0]
            if name not in self._streams or self._in_use(name):
                return
            if self._streams[name].closed or self.linger_s <= 0:
                stream = self._streams.pop(name)
            else:
                stream = None
                if name not in self._closers:
                    closer = threading.Timer(self.linger_s, self._close_unused, args=(name,))
                    closer.daemon = True
                    self._closers[name] = closer
                    closer.start()
        if stream is not None:
            stream.close()

    def _in_use(self, name: str) -> bool:
        """Whether a client follows (or is joining) the stream of session ``name`` (lock held)."""
        return any(other == name for other, _sub in self._clients.values())

    def _close_unused(self, name: str) -> None:
        with self._lock:
            self._closers.pop(name, None)
            if self._in_use(name):
                return
            stream = self._streams.pop(name, None)
        if stream is not None:
            stream.close()

    def close_all(self) -> None:
        with self._lock:
            streams = list(self._streams.values())
            closers = list(self._closers.values())
            self._streams.clear()
            self._closers.clear()
            self._clients.clear()
        for closer in closers:
            closer.cancel()
        for stream in streams:
            stream.close()

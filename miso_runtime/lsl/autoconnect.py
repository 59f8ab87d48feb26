"""Auto-connect: while no session runs, the capture worker looks for the paired streams.

Why in the capture worker: a scan blocks for as long as it listens, which the server's gevent
hub must never do, and the worker is idle between sessions anyway (a scan delays a command by
at most :data:`~miso_runtime.constants.LSL_AUTO_CONNECT_WAIT_S`). The worker only reports a
stream it found (``LslStreamFound``); the server starts the session as if a client had asked.

The settings are read from their file at each scan, so a change (or a worker restarted by the
supervisor) needs no message. A stream whose session the user cancelled, or that ended by
going silent, is not connected again until a scan has missed it: auto-connect reacts to a
stream *appearing*, never to one that is still there.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from pydantic import ValidationError

from workers.protocol.base import Event
from workers.protocol.capture import LslStreamFound

from .. import constants
from .config import LslConfig
from .discovery import load_pylsl
from .source import source_predicate

logger = logging.getLogger(__name__)

#: Session ends after which the same stream is left alone until it disappears.
HOLD_OFF_REASONS = frozenset({"user_cancel", "idle_timeout"})


def read_config(path: Path) -> LslConfig:
    """The saved LSL settings, or the defaults (auto-connect off) when unreadable."""
    try:
        return LslConfig.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return LslConfig()
    except (OSError, ValueError, ValidationError) as exc:
        logger.debug("LSL settings unreadable (%s): auto-connect is off", exc)
        return LslConfig()


class AutoConnect:
    """Scans for paired streams between sessions and reports the first one seen.

    Parameters
    ----------
    config_path : Path
        The LSL settings file (``lsl-config.json`` in the data dir).
    send : callable
        Delivers ``LslStreamFound`` to the server.
    poll_s, wait_s : float
        Seconds between scans, and seconds each scan listens.
    """

    def __init__(
        self,
        config_path: Path,
        send: Callable[[Event], None],
        *,
        poll_s: float = constants.LSL_AUTO_CONNECT_POLL_S,
        wait_s: float = constants.LSL_AUTO_CONNECT_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = config_path
        self._send = send
        self._poll_s = poll_s
        self._wait_s = wait_s
        self._clock = clock
        self._next_scan_at = 0.0
        self._held_off: set[str] = set()

    def session_ended(self, source_id: str | None, reason: str) -> None:
        """Leave ``source_id`` alone until it disappears when its session ended by the user or by silence."""
        if source_id and reason in HOLD_OFF_REASONS:
            self._held_off.add(source_id)
        self._next_scan_at = self._clock() + self._poll_s

    def tick(self) -> None:
        """Scan when one is due (blocks up to ``wait_s``); call only while no session runs."""
        if self._clock() < self._next_scan_at:
            return
        self._next_scan_at = self._clock() + self._poll_s
        config = read_config(self._path)
        if not config.auto_connect or not config.paired_streams:
            self._held_off.clear()
            return
        try:
            predicate = " or ".join(source_predicate(stream.source_id) for stream in config.paired_streams)
            pylsl = load_pylsl()
        except Exception as exc:  # noqa: BLE001 - no liblsl, or a source id LSL cannot look up
            logger.warning("LSL auto-connect cannot scan: %s", exc)
            return
        seen = {info.source_id() for info in pylsl.resolve_bypred(predicate, 0, self._wait_s)}
        self._held_off &= seen
        for stream in config.paired_streams:  # the order the user paired them in
            if stream.source_id in seen and stream.source_id not in self._held_off:
                logger.info("LSL auto-connect: paired stream %r (%s) is announced", stream.name, stream.source_id)
                self._send(LslStreamFound(stream.source_id))
                return

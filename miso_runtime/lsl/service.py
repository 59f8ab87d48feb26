"""What the ``/v1/lsl`` routes do: scan for streams, keep the pairings, auto-connect and idle timeout.

Each change is saved at once (the daemon writes its settings file on every call too) and then
announced to the listeners, so the capture side (auto-connect, a running session's idle
timeout) follows without being polled.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from .. import constants
from ..errors import MisoError
from ..settings_files import SettingsFile
from .config import LslConfig, PairedStream
from .discovery import DiscoveredStream, discover_streams

logger = logging.getLogger(__name__)

Listener = Callable[[LslConfig], None]


class LslService:
    """The LSL settings of one runtime and the scan behind ``GET /v1/lsl/discover``.

    Parameters
    ----------
    config : SettingsFile
        The saved :class:`LslConfig`.
    discover : callable, optional
        ``discover(wait_s) -> [DiscoveredStream]``; blocks for ``wait_s`` seconds.
    """

    def __init__(
        self,
        config: SettingsFile[LslConfig],
        discover: Callable[[float], list[DiscoveredStream]] = discover_streams,
    ) -> None:
        self._config = config
        self._discover = discover
        self._listeners: list[Listener] = []

    @property
    def config(self) -> LslConfig:
        return self._config.get()

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(config)`` after every saved change."""
        self._listeners.append(listener)

    def discover(self, wait_s: float = constants.LSL_DISCOVER_WAIT_S) -> list[DiscoveredStream]:
        """The streams announced within ``wait_s`` seconds (blocking: run it off the hub)."""
        return self._discover(wait_s)

    def view(self) -> dict[str, Any]:
        """``GET /v1/lsl/config``: the daemon's shape (the idle timeout has its own route)."""
        config = self.config
        return {
            "auto_connect": config.auto_connect,
            "paired_streams": [stream.model_dump() for stream in config.paired_streams],
        }

    def set_auto_connect(self, enabled: bool) -> LslConfig:
        return self._save({"auto_connect": enabled})

    def pair(self, stream: PairedStream) -> LslConfig:
        """Add ``stream``, or replace the pairing with the same ``source_id`` (an upsert)."""
        streams = [s for s in self.config.paired_streams if s.source_id != stream.source_id]
        if len(streams) >= constants.LSL_MAX_PAIRED:
            raise MisoError(409, "too_many_paired", f"{constants.LSL_MAX_PAIRED} streams are paired; unpair one first")
        kept = [s.model_dump() for s in self.config.paired_streams]
        index = next((i for i, s in enumerate(kept) if s["source_id"] == stream.source_id), None)
        if index is None:
            kept.append(stream.model_dump())
        else:
            kept[index] = stream.model_dump()
        return self._save({"paired_streams": kept})

    def unpair(self, source_id: str) -> LslConfig:
        """Forget the pairing of ``source_id``; 404 when none has it."""
        config = self.config
        if config.paired(source_id) is None:
            raise MisoError(404, "not_paired", f"no paired LSL stream has source_id {source_id!r}")
        kept = [s.model_dump() for s in config.paired_streams if s.source_id != source_id]
        return self._save({"paired_streams": kept})

    def set_idle_timeout(self, secs: int | None) -> LslConfig:
        return self._save({"idle_timeout_secs": secs})

    def _save(self, changes: dict[str, Any]) -> LslConfig:
        config = self._config.update(changes)
        for listener in self._listeners:
            try:
                listener(config)
            except Exception:  # noqa: BLE001 - a listener's failure must not undo a saved setting
                logger.exception("an LSL settings listener failed")
        return config

"""Messages of the ``screenshots`` worker: its settings in, each kept capture and the metrics out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Command, Event


@dataclass(frozen=True)
class ConfigureScreenshots(Command):
    """The whole ``ScreenshotConfig`` (as a dict) and whether an EEG session records now."""

    config: dict[str, Any]
    session_active: bool


@dataclass(frozen=True)
class SessionActive(Command):
    """An EEG session started (True) or ended (False): ``session_only`` capture follows it."""

    active: bool


@dataclass(frozen=True)
class ScreenshotKept(Event):
    """A capture was stored: ``timestamp`` ``YYYYMMDDHHmmss`` UTC, ``filename`` ``YYYYMMDD/<timestamp>.webp``."""

    timestamp: int
    unix_ts: int
    filename: str


@dataclass(frozen=True)
class ScreenshotMetrics(Event):
    """The pipeline's metrics after a capture or a change of state (the fields of ``Metrics``)."""

    metrics: dict[str, Any]

"""The focus score of a band-power frame and the state machine that decides Do Not Disturb.

Why a pure state machine: what turns DND on and off is a rule over a stream of scores (windows,
a lookback, a countdown); kept apart from the desktop commands and the event bus, it can be
reasoned about tick by tick, and the service only performs what it decides.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping

from .. import constants
from .config import DoNotDisturbConfig


def focus_score(engagement: float) -> float:
    """The daemon's 0-100 focus: a sigmoid of the engagement ratio, centred on 0.8.

    Parameters
    ----------
    engagement : float
        Mean over channels of β / (α + θ) (band powers, relative or absolute: the ratio is the same).

    Returns
    -------
    float
        ``100 / (1 + exp(-2 (engagement - 0.8)))``, in (0, 100).
    """
    exponent = -constants.DND_FOCUS_SLOPE * (engagement - constants.DND_FOCUS_CENTRE)
    if exponent > 700.0:  # exp would overflow; the score is 0 to any precision that matters
        return 0.0
    return 100.0 / (1.0 + math.exp(exponent))


def frame_focus(payload: Mapping[str, Any]) -> float | None:
    """The focus score of one ``EegBands`` payload, or None when it has none (every channel flat).

    The frame's ``scores.engagement`` is β / (α + θ) per channel averaged over channels (flat
    channels left out), the daemon's engagement.
    """
    scores = payload.get("scores")
    engagement = scores.get("engagement") if isinstance(scores, Mapping) else None
    if not isinstance(engagement, (int, float)) or not math.isfinite(engagement):
        return None
    return focus_score(float(engagement))


def frames(seconds: float, least: int) -> int:
    """Band-power frames in ``seconds`` of EEG (one every hop), at least ``least`` (the daemon's floors)."""
    return max(int(round(seconds * constants.DND_FRAMES_PER_S)), least)


@dataclass(frozen=True)
class Windows:
    """The frame counts a configuration means: entry window, exit window, lookback."""

    entry: int
    exit: int
    lookback: int

    @classmethod
    def of(cls, config: DoNotDisturbConfig) -> "Windows":
        return cls(
            entry=frames(config.duration_secs, constants.DND_MIN_ENTRY_FRAMES),
            exit=frames(config.exit_duration_secs, constants.DND_MIN_EXIT_FRAMES),
            lookback=frames(config.focus_lookback_secs, constants.DND_MIN_LOOKBACK_FRAMES),
        )


class FocusTracker:
    """Rolling focus windows and the on/off decision, one frame at a time (not thread-safe: the caller locks).

    - DND goes on when the mean focus of the last ``entry`` frames is at or above the threshold
      and the window is full.
    - While on, a frame whose mean is below the threshold counts towards the exit, unless a
      focused frame is within the lookback (then the count restarts: a dip is not an exit).
      ``exit`` such frames in a row turn DND off.
    - Turned off in the settings while on: off at the next frame.

    :attr:`active` changes only through :meth:`applied`, once the desktop did what was decided,
    so a failed command is decided again at the next frame.
    """

    def __init__(self) -> None:
        self.active = False
        self.below_ticks = 0
        self.exit_held = False
        self.avg_score = 0.0
        self.last_score: float | None = None
        self._window: deque[float] = deque()
        self._history: deque[float] = deque()

    @property
    def sample_count(self) -> int:
        return len(self._window)

    def tick(self, config: DoNotDisturbConfig, score: float) -> tuple[bool, str] | None:
        """Feed one frame's focus score (0-100); returns ``(turn_on, reason)`` when DND should change."""
        windows = Windows.of(config)
        self.last_score = score
        self._window.append(score)
        while len(self._window) > windows.entry:
            self._window.popleft()
        self._history.append(score)
        while len(self._history) > windows.lookback:
            self._history.popleft()
        self.avg_score = sum(self._window) / len(self._window)
        self.exit_held = False
        if not config.enabled:
            self.below_ticks = 0
            return (False, "disabled") if self.active else None
        if self.avg_score >= config.focus_threshold:
            self.below_ticks = 0
            if not self.active and len(self._window) >= windows.entry:
                return True, "focused"
            return None
        if not self.active:
            self.below_ticks = 0
            return None
        if any(value >= config.focus_threshold for value in self._history):
            self.below_ticks = 0
            self.exit_held = True
            return None
        self.below_ticks = min(self.below_ticks + 1, windows.exit)
        return (False, "unfocused") if self.below_ticks >= windows.exit else None

    def applied(self, enabled: bool) -> None:
        """The desktop's DND is now ``enabled`` (as this tracker decided, or turned by hand)."""
        self.active = enabled
        self.below_ticks = 0
        self.exit_held = False

    def exit_secs_remaining(self, config: DoNotDisturbConfig) -> float:
        """Seconds of EEG still to go below the threshold before DND goes off (0 when not counting)."""
        if not self.active or self.below_ticks == 0:
            return 0.0
        return max(Windows.of(config).exit - self.below_ticks, 0) / constants.DND_FRAMES_PER_S

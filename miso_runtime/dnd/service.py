"""The Do Not Disturb service: live frames in, desktop commands out, and what the routes show.

Why no worker: each frame costs one sigmoid and a few additions, so the service reads the
``EegBands`` events of the bus on a thread of the server (a greenlet there; the desktop
commands are cooperative subprocesses under gevent). Frames it cannot keep up with are dropped
by the bus (they are droppable), never queued without bound.

Why it remembers who turned DND on: a user's own Do Not Disturb is theirs. The service turns it
off again (at the exit, when the automation is switched off, at shutdown) only when it was the
one that turned it on.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Mapping

from .. import constants
from ..bus import EventBus, Subscription
from ..settings_files import SettingsFile
from .config import DoNotDisturbConfig
from .desktop import Desktop, DesktopError, detect_desktop, notify
from .focus import FocusTracker, Windows, frame_focus

logger = logging.getLogger(__name__)

_EXIT_MESSAGES = {
    "unfocused": "Your focus score dropped. Do Not Disturb is off again.",
    "disabled": "Do Not Disturb automation was switched off. Do Not Disturb is off again.",
}


class DndService:
    """Focus-driven Do Not Disturb of one runtime.

    Parameters
    ----------
    config : SettingsFile
        The user's :class:`DoNotDisturbConfig`.
    bus : EventBus
        Where the ``EegBands`` frames come from and the ``dnd-*`` events go.
    desktop : Desktop, optional
        The desktop control (default: detected from the environment).
    env : mapping, optional
        The environment to detect with and to find ``notify-send`` on (default: ``os.environ``).
    clock : callable
        Monotonic seconds (for the pause after a failed command).
    """

    def __init__(
        self,
        config: SettingsFile[DoNotDisturbConfig],
        bus: EventBus,
        desktop: Desktop | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._bus = bus
        self._env = dict(os.environ if env is None else env)
        self.desktop = desktop if desktop is not None else detect_desktop(self._env)
        self._clock = clock
        self._tracker = FocusTracker()
        self._lock = threading.Lock()  # the tracker and the fields below
        self._desktop_lock = threading.Lock()  # one desktop command at a time
        self._ours = False  # whether this runtime turned the desktop's DND on (and so must turn it off)
        self._last_error: str | None = None
        self._retry_at = 0.0
        self._subscription: Subscription | None = None
        self._thread: threading.Thread | None = None
        logger.info(
            "Do Not Disturb control: %s%s",
            self.desktop.name,
            f" ({self.desktop.problem})" if self.desktop.problem else "",
        )

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start following the live frames (once)."""
        if self._thread is not None:
            return
        self._subscription = self._bus.subscribe(
            [constants.EVENT_EEG_BANDS], capacity=constants.DND_QUEUE_FRAMES, info={"name": "dnd"}
        )
        self._thread = threading.Thread(target=self._follow, args=(self._subscription,), name="dnd", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following frames; turn the desktop's DND off if this runtime turned it on."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.close()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(constants.DND_COMMAND_TIMEOUT_S * 2)
        with self._lock:
            ours = self._ours
        if ours:
            logger.info("turning Do Not Disturb off: the runtime is stopping")
            self._change(False, "shutdown")

    def _follow(self, subscription: Subscription) -> None:
        while not subscription.closed:
            event = subscription.get(timeout=1.0)
            if event is None:
                continue
            try:
                self.on_frame(event.payload)
            except Exception:  # noqa: BLE001 - one bad frame must not end the automation
                logger.exception("Do Not Disturb: a frame could not be handled")

    # --- frames -----------------------------------------------------------------------------

    def on_frame(self, payload: Mapping[str, Any]) -> None:
        """Feed one ``EegBands`` payload; turns DND on or off when the tracker says so."""
        score = frame_focus(payload)
        if score is None:
            return
        config = self.config.get()
        with self._lock:
            decision = self._tracker.tick(config, score)
            if decision is not None and self._clock() < self._retry_at:
                decision = None  # the last command failed a moment ago: not 4 times a second
            eligibility = self._snapshot(config) if config.enabled else None
        if eligibility is not None:
            self._bus.publish(constants.EVENT_DND_ELIGIBILITY, eligibility, droppable=True)
        if decision is not None:
            turn_on, reason = decision
            self._change(turn_on, reason)

    # --- changes ----------------------------------------------------------------------------

    def _change(self, enabled: bool, reason: str) -> bool:
        """Turn the desktop's DND on or off for ``reason``; False (and ``last_error``) if it failed."""
        with self._desktop_lock:
            try:
                self.desktop.set(enabled)
            except DesktopError as exc:
                message = f"could not turn Do Not Disturb {'on' if enabled else 'off'}: {exc}"
                with self._lock:
                    repeated = message == self._last_error
                # The same failure every retry (no desktop at all) is logged once, not every 10 s.
                logger.log(logging.DEBUG if repeated else logging.WARNING, "%s", message)
                with self._lock:
                    self._last_error = message
                    self._retry_at = self._clock() + constants.DND_RETRY_AFTER_S
                self._bus.publish(constants.EVENT_DND_ERROR, {"message": message, "reason": reason})
                return False
        with self._lock:
            if reason != "test" or not enabled:
                # A test that turns DND on is not the automation's: the tracker must not
                # count it as its own and turn it off at the next frame.
                self._tracker.applied(enabled)
            self._ours = enabled
            self._last_error = None
            self._retry_at = 0.0
            config = self.config.get()
        logger.info("Do Not Disturb %s (%s)", "on" if enabled else "off", reason)
        self._bus.publish(constants.EVENT_DND_STATE_CHANGED, {"value": enabled, "reason": reason})
        if not enabled and config.exit_notification and reason in _EXIT_MESSAGES:
            notify(self._env, "Do Not Disturb off", _EXIT_MESSAGES[reason])
        return True

    def set_config(self, values: dict[str, Any]) -> DoNotDisturbConfig:
        """Replace the settings (missing fields: defaults, as the daemon's POST); switching the
        automation off while it holds DND on turns DND off now, not at the next frame."""
        config = self.config.replace(values)
        with self._lock:
            release = not config.enabled and self._ours
        if release:
            self._change(False, "disabled")
        return config

    def test(self, enabled: bool) -> dict[str, Any]:
        """Turn the desktop's DND on or off once, by hand (the settings page's test button)."""
        ok = self._change(enabled, "test")
        if ok:
            return {"ok": True, "value": enabled}
        with self._lock:
            error = self._last_error
        return {"ok": False, "value": False, "error": error}

    # --- what the routes show ---------------------------------------------------------------

    def os_state(self) -> tuple[bool, str | None]:
        """The desktop's DND as read back now (False when unreadable) and why it could not be read."""
        try:
            with self._desktop_lock:
                return self.desktop.query(), None
        except DesktopError as exc:
            return False, str(exc)

    def active(self) -> bool:
        """Whether this runtime's automation (or its test) holds the desktop's DND on."""
        with self._lock:
            return self._ours

    def status(self) -> dict[str, Any]:
        """The daemon's ``/settings/dnd/status`` object, from the live tracker and the desktop."""
        config = self.config.get()
        os_active, read_error = self.os_state()
        with self._lock:
            snapshot = self._snapshot(config)
            last_error = self._last_error
        snapshot["os_active"] = os_active
        snapshot["last_error"] = last_error or self.desktop.problem or read_error
        snapshot["focus_db_available"] = read_error is None
        snapshot["desktop"] = self.desktop.name
        return snapshot

    def _snapshot(self, config: DoNotDisturbConfig) -> dict[str, Any]:
        tracker = self._tracker
        windows = Windows.of(config)
        return {
            "enabled": config.enabled,
            "avg_score": round(tracker.avg_score, 3),
            "threshold": config.focus_threshold,
            "sample_count": tracker.sample_count,
            "window_size": windows.entry,
            "duration_secs": config.duration_secs,
            "dnd_active": self._ours,
            "exit_duration_secs": config.exit_duration_secs,
            "below_ticks": tracker.below_ticks,
            "exit_window_size": windows.exit,
            "exit_secs_remaining": tracker.exit_secs_remaining(config),
            "focus_lookback_secs": config.focus_lookback_secs,
            "exit_held_by_lookback": tracker.exit_held,
        }

    def focus_modes(self) -> list[dict[str, str]]:
        """The modes the user may pick: on Linux, the one Do Not Disturb (the daemon's identifier)."""
        return [{"identifier": constants.DND_LINUX_MODE_ID, "name": "Do Not Disturb"}]

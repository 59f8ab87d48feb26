"""Hooks in the ``embed`` worker: each live epoch's vector checked as soon as it is stored.

A firing writes its log row, tells the server (``HookFired``: the ``hook`` event), and starts the
rule's command on a thread of its own, so the next epoch's embedding never waits for it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import numpy as np

from workers.protocol.embed import HookFired

from ..store.eeg import EpochRepository
from ..store.hook_log import HookLogRepository
from .commands import HookCommands
from .matcher import Firing, HookMatcher, TextModel
from .rules import HookRule

logger = logging.getLogger(__name__)


def compact_utc_now(now_s: float) -> int:
    """``YYYYMMDDHHmmss`` (UTC) of a UNIX time, the daemon's ``triggered_at_utc``."""
    return int(time.strftime("%Y%m%d%H%M%S", time.gmtime(now_s)))


class LiveHooks:
    """The worker's hooks: rules, matcher, log and commands.

    Parameters
    ----------
    db : callable
        The worker's SQLite database.
    send : callable
        Delivers events to the server.
    text_model : callable
        Loads the labels' text embedder (first rebuild with keywords).
    command_timeout_s : float
        Seconds a command may run before its process group is killed.
    """

    def __init__(
        self,
        db: Callable[[], Any],
        send: Callable[[Any], None],
        text_model: Callable[[], TextModel],
        command_timeout_s: float,
    ) -> None:
        self._db = db
        self._send = send
        self.matcher = HookMatcher(db, text_model)
        self.commands = HookCommands(self._command_finished, command_timeout_s)

    def use(self, rules: list[dict[str, Any]]) -> None:
        self.matcher.set_rules([HookRule.model_validate(rule) for rule in rules])

    def labels_changed(self) -> None:
        self.matcher.labels_changed()

    def check_epochs(self, encoder: str, epochs: list[tuple[int, int]], vectors: np.ndarray) -> list[Firing]:
        """Check stored live epochs (``(epoch_id, start_utc_ms)`` and their vectors); fire what matches."""
        if not self.matcher.has_rules:
            return []
        fired: list[Firing] = []
        for (epoch_id, start_ms), vector in zip(epochs, vectors, strict=True):

            def scores(epoch_id: int = epoch_id) -> dict[str, float | None] | None:
                return EpochRepository(self._db()).scores_of([epoch_id]).get(epoch_id)

            for firing in self.matcher.check(encoder, np.asarray(vector), scores, start_ms):
                self._fire(firing)
                fired.append(firing)
        return fired

    def _fire(self, firing: Firing) -> None:
        rule, reference = firing.rule, firing.reference
        now = time.time()
        triggered = compact_utc_now(now)
        distance = round(firing.distance, 6)
        trigger = {
            "triggered_at_utc": triggered,
            "distance": distance,
            "label_id": reference.label_id,
            "label_text": reference.label_text,
            "label_eeg_start_utc": reference.label_eeg_start,
            "epoch_start_utc_ms": firing.epoch_start_ms,
        }
        payload = {"context": "labels", "command": rule.command, "text": rule.text}
        log_id = HookLogRepository(self._db()).insert(triggered, int(now * 1000), rule.model_dump(), trigger, payload)
        logger.info("hook %r fired (distance %.4f to label %d)", rule.name, distance, reference.label_id)
        event = {
            "hook": rule.name,
            "context": "labels",
            "command": rule.command,
            "text": rule.text,
            "scenario": rule.scenario,
            "distance": distance,
            "label_id": reference.label_id,
            "label_text": reference.label_text,
            "triggered_at_utc": triggered,
            "log_id": log_id,
        }
        self._send(HookFired(event, log_id))
        if rule.command.strip():
            env = {
                "MISO_HOOK_NAME": rule.name,
                "MISO_HOOK_DISTANCE": f"{distance:.6f}",
                "MISO_HOOK_LABEL_ID": str(reference.label_id),
                "MISO_HOOK_LABEL_TEXT": reference.label_text,
                "MISO_HOOK_TEXT": rule.text,
            }
            self.commands.start(log_id, rule.command, env)

    def _command_finished(self, log_id: int, outcome: dict[str, Any]) -> None:
        HookLogRepository(self._db()).add_to_payload(log_id, {"result": outcome})

    def close(self) -> None:
        self.commands.close()

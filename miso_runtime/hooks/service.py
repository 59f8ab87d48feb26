"""Hooks as the routes see them: the rules file, the log, statuses and the editor's suggestions.

The rules are kept in ``hooks.json`` and handed to the ``embed`` worker (``UseHooks``) when they
change and whenever the worker starts; the worker checks each live epoch and reports firings
(``HookFired``), which become the ``hook`` event of ``/v1/events``. Reads of the log and the
suggestions run in the hub's threadpool (``run_blocking``): each thread gets its own connection.
No Flask, no gevent.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Protocol

import numpy as np

from workers.protocol.base import WorkerStarted
from workers.protocol.embed import HookFired, LabelsChanged, UseHooks

from .. import constants
from ..settings_files import SettingsFile
from ..store.database import ConnectionPerThread
from ..store.embeddings import EmbeddingRepository
from ..store.hook_log import HookLogRepository
from ..store.labels import LabelRepository
from .matcher import TextModel, labels_for_keywords, references_for, text_searchable, unit_eeg
from .rules import HookRule, SavedHooks, problems, rule_problems

logger = logging.getLogger(__name__)


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


class HookService:
    """The hook routes' logic (server side)."""

    def __init__(
        self,
        rules: SettingsFile[SavedHooks],
        store: ConnectionPerThread,
        worker: CommandSink,
        publish: Callable[..., Any],
        text_model: Callable[[], TextModel],
    ) -> None:
        self._rules = rules
        self._store = store
        self._worker = worker
        self._publish = publish
        self._text_model = text_model

    # --- rules ------------------------------------------------------------------------------

    def rules(self) -> list[HookRule]:
        return list(self._rules.get().hooks)

    def set_rules(self, rules: list[HookRule]) -> dict[str, Any]:
        """Replace every rule; ``{"ok": true}``, with ``warnings`` naming rules that cannot fire."""
        self._rules.replace({"hooks": [rule.model_dump() for rule in rules]})
        self._send_rules()
        answer: dict[str, Any] = {"ok": True}
        warnings = problems(rules)
        if warnings:
            answer["warnings"] = warnings
        return answer

    def _send_rules(self) -> None:
        try:
            self._worker.send(UseHooks([rule.model_dump() for rule in self.rules()]))
        except Exception as exc:  # noqa: BLE001 - the worker gets them when it starts
            logger.info("embed worker not reachable (%s); it gets the hooks when it starts", exc)

    def labels_changed(self) -> None:
        """Tell the worker that labels changed (call on the hub, after the change)."""
        try:
            self._worker.send(LabelsChanged())
        except Exception as exc:  # noqa: BLE001 - it looks for new labels by itself within 20 s
            logger.info("embed worker not reachable (%s); it finds the labels by itself", exc)

    def handle_event(self, _name: str, event: Any) -> None:
        """Embed worker events: a start gets the rules, a firing becomes the ``hook`` event."""
        if isinstance(event, WorkerStarted):
            self._send_rules()
        elif isinstance(event, HookFired):
            self._publish(constants.EVENT_HOOK, event.payload)

    # --- statuses and the log ---------------------------------------------------------------

    def _log(self) -> HookLogRepository:
        return HookLogRepository(self._store.db())

    def statuses(self) -> list[dict[str, Any]]:
        """Each rule with its last firing (the daemon always answers null; its frontend shows it)."""
        last = self._log().last_triggers()
        answers = []
        for rule in self.rules():
            trigger = last.get(rule.name)
            entry: dict[str, Any] = {"hook": rule.model_dump(), "last_trigger": _last_trigger(trigger)}
            reasons = rule_problems(rule)
            if reasons:
                entry["problem"] = "; ".join(reasons)
            answers.append(entry)
        return answers

    def log_page(self, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._log().page(limit, offset)

    def log_count(self) -> dict[str, int]:
        return {"count": self._log().count()}

    # --- the editor's suggestions -----------------------------------------------------------

    def suggest_keywords(self, draft: str, limit: int) -> list[dict[str, Any]]:
        """Label texts that contain ``draft`` (case-insensitive), newest first, as the daemon."""
        query = draft.strip().lower()
        if len(query) < constants.HOOK_SUGGEST_MIN_DRAFT:
            return []
        found = []
        for text in LabelRepository(self._store.db()).distinct_texts(constants.HOOK_SUGGEST_LABELS):
            if query in text.lower():
                found.append({"keyword": text, "source": "fuzzy", "score": constants.HOOK_SUGGEST_SCORE})
                if len(found) >= limit:
                    break
        return found

    def suggest_distances(self, keywords: list[str], encoder: str) -> dict[str, Any]:
        """A threshold for ``keywords`` from how near the recent live EEG came to their labels' EEG.

        The minimum distance of each of the last :data:`~miso_runtime.constants.HOOK_SUGGEST_SAMPLES`
        embeddings to the references gives the percentiles; the suggestion is their p25 (the
        quarter of moments most like the labels), within 0.05..0.95. Without references or
        history it falls back, as the daemon does, to the distances of past firings, then to 0.1.
        """
        rule = HookRule(keywords=keywords)
        db = self._store.db()
        model = self._text_model()
        usable, matrix = text_searchable(LabelRepository(db).all(), model.name)
        queries = rule.queries()
        vectors = list(np.asarray(model.embed(queries), dtype=np.float32)) if queries else []
        found = labels_for_keywords(usable, matrix, vectors, constants.HOOK_LABELS_PER_KEYWORD)
        embeddings = EmbeddingRepository(db)
        references = references_for(rule, usable, matrix, vectors, lambda label: unit_eeg(embeddings, encoder, label))
        samples = np.zeros(0)
        if references:
            recent = embeddings.recent(encoder, constants.HOOK_SUGGEST_SAMPLES)
            if len(recent):
                vectors_now = recent.vectors.astype(np.float32)
                norms = np.linalg.norm(vectors_now, axis=1, keepdims=True)
                units = vectors_now / np.where(norms > 0, norms, 1.0)
                stacked = np.stack([ref.vector for ref in references])
                samples = np.clip(1.0 - units @ stacked.T, 0.0, 2.0).min(axis=1)
        base = {"label_n": len(found), "ref_n": len(references)}
        if len(samples):
            return {**base, **_percentiles(samples, 0.25), "note": "From the recent EEG against the labels' EEG."}
        logged = np.array(self._log().distances(5000))
        if len(logged):
            note = "No recent EEG to compare with the labels; from past hook firings."
            return {**base, **_percentiles(np.clip(logged, 0.0, 1.0), 0.75), "note": note}
        zeros = {"sample_n": 0, "eeg_min": 0.0, "eeg_p25": 0.0, "eeg_p50": 0.0, "eeg_p75": 0.0, "eeg_max": 0.0}
        note = "No labels with EEG match these keywords yet." if not references else "No recent EEG to compare with."
        return {**base, **zeros, "suggested": constants.HOOK_DEFAULT_DISTANCE, "note": note}


def _percentiles(values: np.ndarray, suggested_at: float) -> dict[str, Any]:
    ordered = np.sort(values)
    n = len(ordered)

    def at(p: float) -> float:
        return round(float(ordered[min(n - 1, int(round((n - 1) * p)))]), 6)

    return {
        "sample_n": n,
        "eeg_min": round(float(ordered[0]), 6),
        "eeg_p25": at(0.25),
        "eeg_p50": at(0.5),
        "eeg_p75": at(0.75),
        "eeg_max": round(float(ordered[-1]), 6),
        "suggested": round(min(max(at(suggested_at), 0.05), 0.95), 6),
    }


def _last_trigger(trigger: dict[str, Any] | None) -> dict[str, Any] | None:
    """The frontend's ``HookLastTrigger`` from a logged trigger."""
    if trigger is None:
        return None
    return {
        "triggered_at_utc": trigger.get("triggered_at_utc", 0),
        "distance": trigger.get("distance", 0.0),
        "label_id": trigger.get("label_id"),
        "label_text": trigger.get("label_text"),
        "label_eeg_start_utc": trigger.get("label_eeg_start_utc"),
    }

"""Which hooks a live epoch fires: its embedding against the EEG of the labels its keywords name.

For each enabled rule (as the daemon does): its keywords are embedded with the labels' text
model, the :data:`~miso_runtime.constants.HOOK_LABELS_PER_KEYWORD` labels nearest to each by
text are taken, and the mean EEG embedding of each label's window (current encoder) becomes a
reference, up to the rule's ``reference_limit``. An epoch fires the rule when its cosine distance
to the nearest reference is within the rule's threshold, the scenario's gate passes on the
epoch's scores, and the rule has not fired in the last
:data:`~miso_runtime.constants.HOOK_COOLDOWN_S` seconds.

References are rebuilt when the rules or the encoder change and every
:data:`~miso_runtime.constants.HOOK_REFRESH_S` seconds (new labels). Between rebuilds a check is
one matrix product over every rule's references at once, so 50 rules cost about what one does.
Runs in the ``embed`` worker, beside the vectors; no Flask, no gevent.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .. import constants
from ..labels.service import cosine_distances, mean_eeg_vector
from ..store.embeddings import EmbeddingRepository
from ..store.labels import LabelRecord, LabelRepository
from .rules import HookRule

logger = logging.getLogger(__name__)


class TextModel(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class Reference:
    """A label whose EEG a rule compares with: ``vector`` is its mean embedding (unit length)."""

    label_id: int
    label_text: str
    label_eeg_start: int
    vector: np.ndarray


@dataclass(frozen=True)
class Firing:
    """A rule an epoch fired, and what it came near."""

    rule: HookRule
    distance: float
    reference: Reference
    epoch_start_ms: int


def focus_score(engagement: float) -> float:
    """The daemon's 0-100 focus from the engagement ratio β/(α+θ): a sigmoid centred on 0.8."""
    return 100.0 / (1.0 + math.exp(-2.0 * (engagement - 0.8)))


def scenario_allows(scenario: str, scores: dict[str, float | None] | None) -> bool:
    """The daemon's scenario gate, on the scores the runtime computes per epoch.

    ``any`` always passes. ``cognitive``: focus at least
    :data:`~miso_runtime.constants.HOOK_COGNITIVE_MIN_FOCUS`; ``emotional``: relaxation
    (α/(α+β), 0-100) at most :data:`~miso_runtime.constants.HOOK_EMOTIONAL_MAX_RELAXATION` (the
    daemon also reads cognitive load, stress and mood, which are not computed here).
    ``physical`` needs drowsiness, headache and heart-rate scores, which are not computed here:
    like the daemon without scores, it does not pass.
    """
    if scenario == "any":
        return True
    if not scores:
        return False
    engagement, relaxation = scores.get("engagement"), scores.get("relaxation")
    if scenario == "cognitive":
        return engagement is not None and focus_score(engagement) >= constants.HOOK_COGNITIVE_MIN_FOCUS
    if scenario == "emotional":
        return relaxation is not None and relaxation * 100.0 <= constants.HOOK_EMOTIONAL_MAX_RELAXATION
    return False


def labels_for_keywords(
    labels: list[LabelRecord], model: TextModel, keywords: list[str], per_keyword: int
) -> list[tuple[LabelRecord, float]]:
    """The labels nearest by text to each keyword (``per_keyword`` each, nearest first, each label
    once, none farther than :data:`~miso_runtime.constants.HOOK_KEYWORD_MAX_TEXT_DISTANCE`) with
    their text distance; only labels whose text vector is of ``model``."""
    usable = [label for label in labels if label.embedding_model == model.name and label.text_vector is not None]
    if not usable or not keywords:
        return []
    matrix = np.stack([label.text_vector for label in usable])
    found: list[tuple[LabelRecord, float]] = []
    seen: set[int] = set()
    for query in np.asarray(model.embed(keywords), dtype=np.float32):
        if not np.any(query):
            continue
        distances = cosine_distances(matrix, query)
        for index in np.argsort(distances, kind="stable")[:per_keyword]:
            if distances[index] > constants.HOOK_KEYWORD_MAX_TEXT_DISTANCE:
                break
            label = usable[int(index)]
            if label.id not in seen:
                seen.add(label.id)
                found.append((label, float(distances[index])))
    return found


def references_for(
    rule: HookRule, labels: list[LabelRecord], model: TextModel, embeddings: EmbeddingRepository, encoder: str
) -> list[Reference]:
    """A rule's references: the EEG of its keywords' labels that have epochs of ``encoder``."""
    references: list[Reference] = []
    for label, _distance in labels_for_keywords(labels, model, rule.queries(), constants.HOOK_LABELS_PER_KEYWORD):
        vector = mean_eeg_vector(embeddings, encoder, label.eeg_start, label.eeg_end)
        if vector is None or not np.any(vector):
            continue
        unit = (vector / np.linalg.norm(vector)).astype(np.float32)
        references.append(Reference(label.id, label.text, label.eeg_start, unit))
        if len(references) >= rule.reference_limit():
            break
    return references


class HookMatcher:
    """The rules of the moment and their references, checked against each live epoch.

    Parameters
    ----------
    db : callable
        Returns the worker's SQLite database (labels and embeddings are read from it).
    text_model : callable
        Returns the labels' text embedder; called on the first rebuild that has keywords.
    clock : callable
        Seconds (monotonic) for the cooldown and the rebuild period; injectable for tests.
    """

    def __init__(
        self, db: Callable[[], Any], text_model: Callable[[], TextModel], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._load_text_model = text_model
        self._text_model: TextModel | None = None
        self._clock = clock
        self._rules: list[HookRule] = []
        self._built_at: float | None = None
        self._built_for = ""
        self._armed: list[tuple[HookRule, list[Reference]]] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._owners = np.zeros(0, dtype=np.int64)  # the armed rule of each matrix row
        self._thresholds = np.zeros(0)
        self._last_fired: dict[str, float] = {}

    @property
    def has_rules(self) -> bool:
        return any(rule.enabled and rule.queries() for rule in self._rules)

    def set_rules(self, rules: list[HookRule]) -> None:
        """Use ``rules`` from now on (references are rebuilt at the next check)."""
        self._rules = list(rules)
        self._built_at = None

    def armed(self) -> list[tuple[HookRule, int]]:
        """Each rule that can fire now, with its number of references."""
        return [(rule, len(refs)) for rule, refs in self._armed]

    def rebuild(self, encoder: str) -> None:
        """Recompute every enabled rule's references for ``encoder``."""
        self._built_at, self._built_for = self._clock(), encoder
        armed: list[tuple[HookRule, list[Reference]]] = []
        wanted = [rule for rule in self._rules if rule.enabled and rule.queries()]
        if wanted:
            db = self._db()
            labels = LabelRepository(db).all()
            embeddings = EmbeddingRepository(db)
            try:
                model = self._model()
            except Exception as exc:  # noqa: BLE001 - no text model: no references, tried again later
                logger.warning("hooks cannot embed their keywords: %s", exc)
                wanted = []
            for rule in wanted:
                references = references_for(rule, labels, model, embeddings, encoder)
                if references:
                    armed.append((rule, references))
        self._armed = armed
        rows = [ref.vector for _rule, refs in armed for ref in refs]
        self._matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        self._owners = np.array([i for i, (_rule, refs) in enumerate(armed) for _ in refs], dtype=np.int64)
        self._thresholds = np.array([rule.threshold() for rule, _refs in armed]) + 1e-7
        logger.info("hooks: %d of %d enabled rule(s) have EEG references", len(armed), len(wanted))

    def _model(self) -> TextModel:
        if self._text_model is None:
            self._text_model = self._load_text_model()
        return self._text_model

    def check(
        self, encoder: str, vector: np.ndarray, scores: dict[str, float | None] | None, start_ms: int
    ) -> list[Firing]:
        """The rules one epoch (its embedding ``vector`` of ``encoder`` and its ``scores``) fires."""
        now = self._clock()
        if self._built_at is None or encoder != self._built_for or now - self._built_at >= constants.HOOK_REFRESH_S:
            self.rebuild(encoder)
        if not self._armed or self._matrix.shape[1] != vector.shape[-1]:
            return []
        norm = float(np.linalg.norm(vector))
        if norm == 0.0 or not math.isfinite(norm):
            return []
        distances = 1.0 - self._matrix @ (vector.astype(np.float32) / norm)
        best = np.full(len(self._armed), np.inf)
        np.minimum.at(best, self._owners, distances)
        fired = []
        for index in np.flatnonzero(best <= self._thresholds):
            rule, references = self._armed[int(index)]
            if not scenario_allows(rule.scenario, scores):
                continue
            last = self._last_fired.get(rule.name)
            if last is not None and now - last < constants.HOOK_COOLDOWN_S:
                continue
            self._last_fired[rule.name] = now
            rows = np.flatnonzero(self._owners == index)
            nearest = references[int(np.argmin(distances[rows]))]
            fired.append(Firing(rule, max(0.0, float(best[index])), nearest, start_ms))
        return fired

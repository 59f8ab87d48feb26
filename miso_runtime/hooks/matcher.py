"""Which hooks a live epoch fires: its embedding against the EEG of the labels its keywords name.

For each enabled rule (as the daemon does): its keywords are embedded with the labels' text
model, the :data:`~miso_runtime.constants.HOOK_LABELS_PER_KEYWORD` labels nearest to each by
text are taken, and the mean EEG embedding of each label's window (current encoder) becomes a
reference, up to the rule's ``reference_limit``. An epoch fires the rule when its cosine distance
to the nearest reference is within the rule's threshold, the scenario's gate passes on the
epoch's scores, and the rule has not fired in the last
:data:`~miso_runtime.constants.HOOK_COOLDOWN_S` seconds.

References are rebuilt when the rules, the labels or the encoder change, or when new epochs land
within a label's window; every :data:`~miso_runtime.constants.HOOK_REFRESH_S` seconds two cheap
queries look for labels and epochs written meanwhile. What a rebuild needs is cached: each
keyword's text vector (the text model runs once per new keyword), the labels' text matrix (until
the labels change), each label's EEG (until an epoch lands in its window). Between rebuilds a
check is one matrix product over every rule's references at once, so 50 rules cost about what
one does. Runs in the ``embed`` worker, beside the vectors; no Flask, no gevent.
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
from ..store.hook_log import change_markers
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
    labels: list[LabelRecord], matrix: np.ndarray, keyword_vectors: list[np.ndarray], per_keyword: int
) -> list[tuple[LabelRecord, float]]:
    """The labels nearest by text to each keyword (``per_keyword`` each, nearest first, each label
    once, none farther than :data:`~miso_runtime.constants.HOOK_KEYWORD_MAX_TEXT_DISTANCE`) with
    their text distance. ``labels`` are those with a text vector of the model the keywords were
    embedded with, ``matrix`` their text vectors stacked."""
    if not labels or not keyword_vectors:
        return []
    found: list[tuple[LabelRecord, float]] = []
    seen: set[int] = set()
    for query in keyword_vectors:
        if not np.any(query):
            continue
        distances = cosine_distances(matrix, query)
        for index in np.argsort(distances, kind="stable")[:per_keyword]:
            if distances[index] > constants.HOOK_KEYWORD_MAX_TEXT_DISTANCE:
                break
            label = labels[int(index)]
            if label.id not in seen:
                seen.add(label.id)
                found.append((label, float(distances[index])))
    return found


def text_searchable(labels: list[LabelRecord], model_name: str) -> tuple[list[LabelRecord], np.ndarray]:
    """The labels whose text vector is of ``model_name``, and those vectors stacked."""
    usable = [label for label in labels if label.embedding_model == model_name and label.text_vector is not None]
    matrix = np.stack([label.text_vector for label in usable]) if usable else np.zeros((0, 0), dtype=np.float32)
    return usable, matrix


def unit_eeg(embeddings: EmbeddingRepository, encoder: str, label: LabelRecord) -> np.ndarray | None:
    """A label's EEG (mean embedding of its window, :func:`mean_eeg_vector`) at unit length; None without."""
    vector = mean_eeg_vector(embeddings, encoder, label.eeg_start, label.eeg_end)
    if vector is None or not np.any(vector):
        return None
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def references_for(
    rule: HookRule,
    labels: list[LabelRecord],
    matrix: np.ndarray,
    keyword_vectors: list[np.ndarray],
    eeg_of: Callable[[LabelRecord], np.ndarray | None],
) -> list[Reference]:
    """A rule's references: the EEG (``eeg_of``) of its keywords' labels that have some."""
    references: list[Reference] = []
    for label, _distance in labels_for_keywords(labels, matrix, keyword_vectors, constants.HOOK_LABELS_PER_KEYWORD):
        vector = eeg_of(label)
        if vector is None:
            continue
        references.append(Reference(label.id, label.text, label.eeg_start, vector))
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
        Seconds (monotonic) for the cooldown and the refresh period; injectable for tests.
    """

    def __init__(
        self, db: Callable[[], Any], text_model: Callable[[], TextModel], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._db = db
        self._load_text_model = text_model
        self._text_model: TextModel | None = None
        self._clock = clock
        self._rules: list[HookRule] = []
        self._has_rules = False
        self._stale = True  # the references must be rebuilt before the next check
        self._looked_at: float | None = None  # when the store was last looked at for changes
        # caches of what a rebuild needs
        self._keyword_vectors: dict[str, np.ndarray] = {}
        self._labels: list[LabelRecord] | None = None
        self._labels_marker: tuple[int, int] | None = None
        self._searchable: tuple[list[LabelRecord], np.ndarray] | None = None
        self._eeg: dict[int, np.ndarray | None] = {}  # label id -> unit EEG of the encoder below
        no_labels = np.zeros(0, dtype=np.int64)
        self._windows = (no_labels, no_labels, no_labels)  # label ids, window starts and ends, ms
        self._encoder = ""
        self._embeddings_seen = 0  # newest embedding id the EEG cache has taken into account
        # the armed rules, their references stacked, each rule's first row, its least similarity
        self._armed: list[tuple[HookRule, list[Reference]]] = []
        self._matrix = np.zeros((0, 0), dtype=np.float32)
        self._starts = np.zeros(0, dtype=np.int64)
        self._min_similarity = np.zeros(0)  # 1 - each rule's threshold
        self._last_fired: dict[str, float] = {}

    @property
    def has_rules(self) -> bool:
        return self._has_rules

    def set_rules(self, rules: list[HookRule]) -> None:
        """Use ``rules`` from now on (references are rebuilt at the next check)."""
        self._rules = list(rules)
        self._has_rules = any(rule.enabled and rule.queries() for rule in self._rules)
        self._stale = True

    def labels_changed(self) -> None:
        """A label was made, changed or deleted: read them again at the next check."""
        self._labels = None
        self._searchable = None
        self._stale = True

    def armed(self) -> list[tuple[HookRule, int]]:
        """Each rule that can fire now, with its number of references."""
        return [(rule, len(refs)) for rule, refs in self._armed]

    # --- keeping the references current -----------------------------------------------------

    def refresh(self, encoder: str) -> None:
        """Look for what changed since the last look (labels, new epochs in a label's window, the
        encoder) and rebuild the references if anything did."""
        db = self._db()
        marker, newest = change_markers(db, encoder)
        if encoder != self._encoder:
            self._encoder, self._eeg, self._stale = encoder, {}, True
            self._embeddings_seen = newest
        if marker != self._labels_marker:
            self._labels_marker = marker
            self.labels_changed()
        if newest > self._embeddings_seen:
            span = EmbeddingRepository(db).time_span_after(encoder, self._embeddings_seen)
            self._embeddings_seen = newest
            if span is not None and self._forget_eeg_within(span):
                self._stale = True
        if self._stale:
            self._rebuild(encoder)

    def _forget_eeg_within(self, span: tuple[int, int]) -> bool:
        """Drop the cached EEG of labels whose window (with its margin) meets ``span`` (ms)."""
        if self._labels is None:
            dropped = bool(self._eeg)
            self._eeg.clear()
            return dropped
        ids, low, high = self._windows
        hit = ids[(low <= span[1]) & (span[0] <= high)]
        dropped = False
        for label_id in hit.tolist():
            if self._eeg.pop(label_id, False) is not False:
                dropped = True
        return dropped

    def _load_labels(self) -> list[LabelRecord]:
        labels = LabelRepository(self._db()).all()
        margin_ms = constants.LABEL_EEG_MARGIN_S * 1000
        self._windows = (
            np.array([label.id for label in labels], dtype=np.int64),
            np.array([label.eeg_start * 1000 - margin_ms for label in labels], dtype=np.int64),
            np.array([label.eeg_end * 1000 + margin_ms + 999 for label in labels], dtype=np.int64),
        )
        self._labels, self._searchable = labels, None
        return labels

    def _rebuild(self, encoder: str) -> None:
        """Recompute every enabled rule's references for ``encoder`` (from the caches where they
        hold; :meth:`refresh` has emptied the EEG cache if the encoder changed)."""
        self._stale = False
        wanted = [rule for rule in self._rules if rule.enabled and rule.queries()]
        armed: list[tuple[HookRule, list[Reference]]] = []
        if wanted:
            try:
                model = self._model()
            except Exception as exc:  # noqa: BLE001 - no text model: no references, tried again later
                logger.warning("hooks cannot embed their keywords: %s", exc)
                wanted = []
            db = self._db()
            if wanted:
                labels = self._labels if self._labels is not None else self._load_labels()
                if self._searchable is None:
                    self._searchable = text_searchable(labels, model.name)
                usable, matrix = self._searchable
                self._embed_keywords(model, [k for rule in wanted for k in rule.queries()])
            embeddings = EmbeddingRepository(db)

            def eeg_of(label: LabelRecord) -> np.ndarray | None:
                if label.id not in self._eeg:
                    self._eeg[label.id] = unit_eeg(embeddings, encoder, label)
                return self._eeg[label.id]

            for rule in wanted:
                vectors = [self._keyword_vectors[keyword] for keyword in rule.queries()]
                references = references_for(rule, usable, matrix, vectors, eeg_of)
                if references:
                    armed.append((rule, references))
        self._armed = armed
        rows = [ref.vector for _rule, refs in armed for ref in refs]
        self._matrix = np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
        sizes = [len(refs) for _rule, refs in armed]
        self._starts = np.cumsum([0, *sizes[:-1]]).astype(np.int64) if sizes else np.zeros(0, dtype=np.int64)
        self._min_similarity = 1.0 - np.array([rule.threshold() for rule, _refs in armed]) - 1e-7
        logger.info("hooks: %d of %d enabled rule(s) have EEG references", len(armed), len(wanted))

    def _embed_keywords(self, model: TextModel, keywords: list[str]) -> None:
        missing = sorted({keyword for keyword in keywords if keyword not in self._keyword_vectors})
        if missing:
            for keyword, vector in zip(missing, np.asarray(model.embed(missing), dtype=np.float32), strict=True):
                self._keyword_vectors[keyword] = vector

    def _model(self) -> TextModel:
        if self._text_model is None:
            self._text_model = self._load_text_model()
        return self._text_model

    # --- checking an epoch ------------------------------------------------------------------

    def check(
        self,
        encoder: str,
        vector: np.ndarray,
        scores: Callable[[], dict[str, float | None] | None],
        start_ms: int,
    ) -> list[Firing]:
        """The rules one epoch fires: its embedding ``vector`` of ``encoder``; ``scores`` returns
        its scores, asked only when a rule within its threshold has a scenario to check."""
        now = self._clock()
        if (
            self._stale
            or encoder != self._encoder
            or self._looked_at is None
            or (now - self._looked_at >= constants.HOOK_REFRESH_S)
        ):
            self._looked_at = now
            self.refresh(encoder)
        if not self._armed or self._matrix.shape[1] != vector.shape[-1]:
            return []
        query = vector if vector.dtype == np.float32 else vector.astype(np.float32)
        norm = math.sqrt(float(query @ query))
        if norm == 0.0 or not math.isfinite(norm):
            return []
        # Cosine similarity against every reference at once; a rule fires on its nearest one.
        similarities = self._matrix @ query
        best = np.maximum.reduceat(similarities, self._starts)
        within = np.flatnonzero(best >= self._min_similarity * norm)
        if not len(within):
            return []
        best = 1.0 - best / norm
        distances = 1.0 - similarities / norm
        fired = []
        epoch_scores: dict[str, float | None] | None = None
        for index in within:
            rule, references = self._armed[int(index)]
            if rule.scenario != "any" and epoch_scores is None:
                epoch_scores = scores() or {}
            if not scenario_allows(rule.scenario, epoch_scores):
                continue
            last = self._last_fired.get(rule.name)
            if last is not None and now - last < constants.HOOK_COOLDOWN_S:
                continue
            self._last_fired[rule.name] = now
            start = int(self._starts[index])
            nearest = references[int(np.argmin(distances[start : start + len(references)]))]
            fired.append(Firing(rule, max(0.0, float(best[index])), nearest, start_ms))
        return fired

"""Labels: create, list, change and delete them, and find them by meaning or by EEG.

Each label carries three vectors, as in the daemon: its text's and its context's (from the
offline text embedder) and the mean EEG embedding of the epochs in its window widened by
:data:`~miso_runtime.constants.LABEL_EEG_MARGIN_S` on each side (of the encoder in use).
Labels are few (hundreds to thousands), so searches are exact cosine over all of them: an
approximate index would only lose recall here. The EEG vectors follow the recordings: a
label made while recording gets its vector once the epochs of its window are embedded, and
an encoder switch recomputes them, both on the next EEG search.

Runs in threadpool threads of the server (``run_blocking``): embedding a text and reading
vectors are blocking work; every thread uses its own SQLite connection, and no lock is
taken (gevent's patched locks cannot be shared with native threads).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import constants
from ..errors import MisoError
from ..store.database import ConnectionPerThread
from ..store.eeg import EpochRepository
from ..store.embeddings import EmbeddingRepository
from ..store.labels import LabelRecord, LabelRepository, NewLabel

logger = logging.getLogger(__name__)


def cosine_distances(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine distance (0..2) of each row of ``matrix`` to ``query``; a zero row is at distance 1."""
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sims = (matrix @ query) / np.where(norms > 0, norms, 1.0)
    return np.clip(1.0 - sims, 0.0, 2.0)


def mean_eeg_vector(embeddings: EmbeddingRepository, encoder: str, start_s: int, end_s: int) -> np.ndarray | None:
    """The mean embedding of ``encoder`` over ``[start_s, end_s]`` (UNIX seconds) widened by
    :data:`~miso_runtime.constants.LABEL_EEG_MARGIN_S` each side: a label's EEG; None without epochs."""
    margin = constants.LABEL_EEG_MARGIN_S
    rows = embeddings.in_range(encoder, (start_s - margin) * 1000, (end_s + margin) * 1000 + 999)
    if not len(rows):
        return None
    return rows.vectors.astype(np.float64).mean(axis=0).astype(np.float32)


class LabelService:
    """The labels of one data dir.

    Parameters
    ----------
    database_path : Path
        The shared SQLite file.
    text_embedder : callable
        Returns the offline text embedder; :meth:`text_model` calls it once, on the hub (an
        import in a threadpool thread can deadlock on gevent's patched import lock).

    Methods that need the EEG encoder take its name (``encoder``): faces read it on the hub.
    """

    def __init__(self, database_path: Path, text_embedder: Callable[[], Any]) -> None:
        self._database_path = database_path
        self._load_text_embedder = text_embedder
        self._text_embedder: Any = None
        self._store = ConnectionPerThread(database_path)
        self._eeg_checked: dict[str, int] = {}

    def _db(self) -> Any:
        return self._store.db()

    @property
    def _labels(self) -> LabelRepository:
        return LabelRepository(self._db())

    @property
    def _embeddings(self) -> EmbeddingRepository:
        return EmbeddingRepository(self._db())

    def text_model(self) -> Any:
        """The text embedder, loaded on first use (call on the hub before any threadpool work)."""
        if self._text_embedder is None:
            self._text_embedder = self._load_text_embedder()
        return self._text_embedder

    def model_name(self) -> str:
        return str(self.text_model().name)

    def _embed_texts(self, *texts: str) -> list[np.ndarray]:
        vectors = self.text_model().embed(list(texts))
        return [np.asarray(v, dtype=np.float32) for v in vectors]

    # --- the list ---------------------------------------------------------------------------

    def recent(self) -> list[dict[str, Any]]:
        return [label.entry() for label in self._labels.recent(constants.LABELS_LIST_LIMIT)]

    def create(
        self,
        encoder: str,
        text: str,
        context: str,
        label_start: float | None,
        eeg_start: int | None,
        eeg_end: int | None,
    ) -> dict:
        start = float(label_start) if label_start is not None else time.time()
        window_start = int(eeg_start) if eeg_start is not None else int(start)
        window_end = int(eeg_end) if eeg_end is not None else int(start)
        if window_end < window_start:
            raise MisoError(422, "invalid_range", f"eegEnd ({window_end}) is before eegStart ({window_start})")
        text_vector, context_vector = self._embed_texts(text, context)
        record = self._labels.insert(
            NewLabel(text, context, window_start, window_end, start, self.model_name(), text_vector, context_vector)
        )
        self._refresh_eeg_vector(record, encoder)
        return {**record.entry(), "created_at": start}

    def update(self, label_id: int, text: str, context: str | None) -> dict[str, Any]:
        record = self._require(label_id)
        new_context = record.context if context is None else context
        text_vector, context_vector = self._embed_texts(text, new_context)
        self._labels.update_text(label_id, text, new_context, self.model_name(), text_vector, context_vector)
        return {"ok": True}

    def delete(self, label_id: int) -> dict[str, Any]:
        if not self._labels.delete(label_id):
            raise MisoError(404, "label_not_found", f"no label {label_id}")
        return {"ok": True}

    def _require(self, label_id: int) -> LabelRecord:
        record = self._labels.get(label_id)
        if record is None:
            raise MisoError(404, "label_not_found", f"no label {label_id}")
        return record

    # --- searching --------------------------------------------------------------------------

    def search_text(self, query: str, k: int, mode: str) -> dict[str, Any]:
        """Labels nearest to ``query`` by their text (``mode`` ``context``: by their context)."""
        model = self.model_name()
        (query_vector,) = self._embed_texts(query)
        if not np.any(query_vector):
            return {"results": [], "error": "the query has no words to embed"}
        labels = [
            label
            for label in self._labels.all()
            if label.embedding_model == model
            and (label.context_vector if mode == "context" else label.text_vector) is not None
        ]
        if mode == "context":
            labels = [label for label in labels if label.context.strip()]
        if not labels:
            return {"results": []}
        matrix = np.stack([label.context_vector if mode == "context" else label.text_vector for label in labels])
        return {"results": self._ranked(labels, cosine_distances(matrix, query_vector), k)}

    def search_eeg(self, encoder: str, start_utc: int, end_utc: int, k: int) -> dict[str, Any]:
        """Labels whose EEG vector is nearest to the mean EEG vector of ``[start_utc, end_utc]`` (± margin)."""
        query = mean_eeg_vector(self._embeddings, encoder, start_utc, end_utc)
        if query is None:
            return {"results": [], "error": "no EEG data in window"}
        self._refresh_eeg_vectors(encoder)
        labels = [
            label for label in self._labels.all() if label.eeg_encoder == encoder and label.eeg_vector is not None
        ]
        if not labels:
            return {"results": []}
        matrix = np.stack([label.eeg_vector for label in labels])
        return {"results": self._ranked(labels, cosine_distances(matrix, query), k)}

    def _ranked(self, labels: list[LabelRecord], distances: np.ndarray, k: int) -> list[dict[str, Any]]:
        order = np.argsort(distances, kind="stable")[:k]
        epochs = EpochRepository(self._db())
        return [self._neighbor(labels[i], float(distances[i]), epochs) for i in order]

    @staticmethod
    def _neighbor(label: LabelRecord, distance: float, epochs: EpochRepository) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label_id": label.id,
            "text": label.text,
            "context": label.context,
            "eeg_start": label.eeg_start,
            "eeg_end": label.eeg_end,
            "created_at": int(label.created_at),
            "distance": round(distance, 6),
        }
        if label.embedding_model is not None:
            out["embedding_model"] = label.embedding_model
        means = epochs.aggregate(label.eeg_start * 1000, label.eeg_end * 1000 + 999)
        if means["n_epochs"]:
            metrics = {
                "relaxation": means.get("relaxation"),
                "engagement": means.get("engagement"),
                "faa": means.get("frontal_alpha_asymmetry"),
                "rel_alpha": means.get("rel_alpha"),
                "rel_beta": means.get("rel_beta"),
                "rel_theta": means.get("rel_theta"),
            }
            out["eeg_metrics"] = {key: round(value, 6) for key, value in metrics.items() if value is not None}
        return out

    # --- EEG vectors ------------------------------------------------------------------------

    def _refresh_eeg_vector(self, label: LabelRecord, encoder: str) -> bool:
        vector = mean_eeg_vector(self._embeddings, encoder, label.eeg_start, label.eeg_end)
        self._labels.set_eeg_vector(label.id, encoder if vector is not None else None, vector)
        return vector is not None

    def _refresh_eeg_vectors(self, encoder: str) -> None:
        """Recompute the EEG vectors that new epochs or an encoder switch made stale."""
        embeddings = self._embeddings
        newest = embeddings.max_id(encoder)
        checked = self._eeg_checked.get(encoder, 0)
        self._eeg_checked[encoder] = newest
        span = embeddings.time_span_after(encoder, checked) if checked else None
        margin = constants.LABEL_EEG_MARGIN_S
        for label in self._labels.all():
            stale = label.eeg_encoder != encoder or not checked
            if span is not None and not stale:
                lo, hi = span
                stale = (label.eeg_start - margin) * 1000 <= hi and (label.eeg_end + margin) * 1000 + 999 >= lo
            if stale:
                self._refresh_eeg_vector(label, encoder)

    # --- maintenance ------------------------------------------------------------------------

    def reembed(self, encoder: str) -> dict[str, Any]:
        """Embed every label's text and context again with the current model, then its EEG vector."""
        model = self.model_name()
        labels = self._labels.all()
        for label in labels:
            text_vector, context_vector = self._embed_texts(label.text, label.context)
            self._labels.update_text(label.id, label.text, label.context, model, text_vector, context_vector)
        self.rebuild(encoder)
        return {"ok": True, "total": len(labels), "updated": len(labels), "model": model}

    def rebuild(self, encoder: str) -> dict[str, Any]:
        labels = self._labels.all()
        with_eeg = sum(1 for label in labels if self._refresh_eeg_vector(label, encoder))
        self._eeg_checked[encoder] = self._embeddings.max_id(encoder)
        texts = sum(1 for label in labels if label.text_vector is not None)
        return {"ok": True, "text_nodes": texts, "eeg_nodes": with_eeg, "eeg_skipped": len(labels) - with_eeg}

    def embedding_status(self) -> dict[str, Any]:
        model = self.model_name()
        counts = self._labels.model_counts()
        total = sum(counts.values())
        return {"current_model": model, "total": total, "stale": total - counts.get(model, 0), "models": counts}

    def index_stats(self, encoder: str) -> dict[str, Any]:
        model = self.model_name()
        labels = self._labels.all()
        return {
            "text_nodes": sum(
                1 for label in labels if label.text_vector is not None and label.embedding_model == model
            ),
            "context_nodes": sum(
                1
                for label in labels
                if label.context_vector is not None and label.context.strip() and label.embedding_model == model
            ),
            "eeg_nodes": sum(1 for label in labels if label.eeg_vector is not None and label.eeg_encoder == encoder),
        }

"""skill-daemon section 4.6: labels, and finding them by meaning or by EEG.

Where this answers differently from the daemon, on purpose: an unknown label id is a 404 (the
daemon says ``ok`` and changes nothing), ``GET /v1/labels`` includes ``label_start`` and
``label_end`` (its frontend's ``LabelRow`` reads them), and the searches are exact.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, jsonify

from ...auth import Access
from ...errors import MisoError
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime

if TYPE_CHECKING:
    from ...labels.service import LabelService
from .skill_embedding_models import CreateLabelBody, LabelEegSearchBody, LabelSearchBody, UpdateLabelBody

blueprint = Blueprint("skill_labels", __name__)
TAGS = ("skill", "labels")


@blueprint.get("/v1/labels")
@endpoint(Access.READ, tags=TAGS)
def list_labels():
    """The newest 1000 labels, newest first (a JSON array, as the daemon)."""
    return jsonify(run_blocking(runtime().labels.recent))


@blueprint.post("/v1/labels")
@endpoint(Access.DATA, body=CreateLabelBody, tags=TAGS)
def create_label(body: CreateLabelBody):
    """Label a moment (``labelStartUtc``, default now) or an EEG window (``eegStart``..``eegEnd``)."""
    eeg_start = int(body.eeg_start) if body.eeg_start is not None else None
    eeg_end = int(body.eeg_end) if body.eeg_end is not None else None
    labels = _labels_with_model()
    args = (runtime().embeddings.encoder, body.text, body.context, body.label_start_utc, eeg_start, eeg_end)
    created = run_blocking(labels.create, *args)
    runtime().hooks.labels_changed()
    return jsonify(created)


def _labels_with_model() -> "LabelService":
    """The label service, its text model loaded here on the hub (an import in a threadpool
    thread can deadlock on gevent's patched import lock)."""
    labels = runtime().labels
    labels.text_model()
    return labels


def _label_id(text: str) -> int:
    """A label id of the URL (the daemon's ``i64``): anything else is a 400."""
    if not text.isdigit() or len(text) > 18:
        raise MisoError(400, "invalid_request", f"label id {text!r} is not a positive integer")
    return int(text)


@blueprint.put("/v1/labels/<label_id>")
@endpoint(Access.DATA, body=UpdateLabelBody, tags=TAGS)
def update_label(label_id: str, body: UpdateLabelBody):
    """Change a label's text (and context); its vectors are embedded again. 404 for an unknown id."""
    number = _label_id(label_id)
    labels = _labels_with_model()
    answer = run_blocking(labels.update, number, body.text, body.context)
    runtime().hooks.labels_changed()
    return jsonify(answer)


@blueprint.delete("/v1/labels/<label_id>")
@endpoint(Access.DATA, tags=TAGS)
def delete_label(label_id: str):
    """Delete a label (404 for an unknown id)."""
    answer = run_blocking(runtime().labels.delete, _label_id(label_id))
    runtime().hooks.labels_changed()
    return jsonify(answer)


@blueprint.post("/v1/labels/search")
@endpoint(Access.DATA, body=LabelSearchBody, tags=TAGS)
def search_labels(body: LabelSearchBody):
    """Labels by meaning: nearest texts (``mode: context``: contexts) to ``query``, as ``{results}``."""
    mode = "context" if body.mode == "context" else "text"
    labels = _labels_with_model()
    return jsonify(run_blocking(labels.search_text, body.query, body.k, mode))


@blueprint.post("/v1/labels/search-by-eeg")
@endpoint(Access.DATA, body=LabelEegSearchBody, tags=TAGS)
def search_labels_by_eeg(body: LabelEegSearchBody):
    """Labels whose EEG is nearest to the mean EEG of ``startUtc``..``endUtc`` (±30 s)."""
    rt = runtime()
    return jsonify(
        run_blocking(rt.labels.search_eeg, rt.embeddings.encoder, int(body.start_utc), int(body.end_utc), body.k)
    )


@blueprint.post("/v1/labels/reembed")
@endpoint(Access.DATA, tags=TAGS)
def reembed_labels():
    """Embed every label's text and context again with the current text model."""
    answer = run_blocking(_labels_with_model().reembed, runtime().embeddings.encoder)
    runtime().hooks.labels_changed()  # their text vectors may be of a new model now
    return jsonify(answer)


@blueprint.get("/v1/labels/embedding-status")
@endpoint(Access.READ, tags=TAGS)
def embedding_status():
    """The current text model and how many labels still have vectors of another."""
    labels = _labels_with_model()
    return jsonify(run_blocking(labels.embedding_status))


@blueprint.get("/v1/labels/index/stats")
@endpoint(Access.READ, tags=TAGS)
def index_stats():
    """Labels searchable by text, by context and by EEG."""
    return jsonify(run_blocking(_labels_with_model().index_stats, runtime().embeddings.encoder))


@blueprint.post("/v1/labels/index/rebuild")
@endpoint(Access.DATA, tags=TAGS)
def rebuild_index():
    """Recompute every label's EEG vector from the epochs of its window."""
    return jsonify(run_blocking(_labels_with_model().rebuild, runtime().embeddings.encoder))

"""skill-daemon section 4.4 (the embedding half) and 4.9's ``umap-config``: the Brain Nebula."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime
from .skill_embedding_models import CompareBody, TimeRangeBody, UmapConfigBody

blueprint = Blueprint("skill_nebula", __name__)
ANALYSIS = ("skill", "analysis")
SETTINGS = ("skill", "settings")


@blueprint.post("/v1/analysis/umap")
@endpoint(Access.DATA, body=CompareBody, tags=ANALYSIS)
def umap(body: CompareBody):
    """Project the epochs of ranges A and B together in 3-D, with how well they separate.

    Runs in the analysis worker; this request waits for it (up to the configured timeout).
    """
    ranges = (body.a_start_utc, body.a_end_utc, body.b_start_utc, body.b_end_utc)
    return jsonify(runtime().analysis.umap(*(int(value) for value in ranges)))


@blueprint.post("/v1/analysis/embedding-count")
@endpoint(Access.DATA, body=TimeRangeBody, tags=ANALYSIS)
def embedding_count(body: TimeRangeBody):
    """Epochs in the range and how many have a vector of the current encoder."""
    rt = runtime()
    start_ms, end_ms = int(body.start_utc) * 1000, int(body.end_utc) * 1000 + 999
    count, embedded = run_blocking(rt.embeddings.embeddings_in_range, rt.embeddings.encoder, start_ms, end_ms)
    return jsonify(count=count, embedded=embedded, encoder=rt.embeddings.encoder)


@blueprint.get("/v1/settings/umap-config")
@endpoint(Access.ADMIN, tags=SETTINGS)
def get_umap_config():
    """The projection settings (stored as given; clamped when a projection uses them)."""
    return jsonify(runtime().analysis.umap_config.get().model_dump())


@blueprint.post("/v1/settings/umap-config")
@endpoint(Access.ADMIN, body=UmapConfigBody, tags=SETTINGS)
def set_umap_config(body: UmapConfigBody):
    """Replace the settings, raw or as ``{"config": ...}``; a change that alters results empties the cache."""
    runtime().analysis.set_umap_config(body.model_dump(exclude_none=True))
    return jsonify(ok=True)

"""skill-daemon section 4.5: EEG similarity search over epoch embeddings.

The plain search gathers what the streaming one sends. The stream is the daemon's framing:
bare ``data:`` lines with ``{"kind": "started"|"result"|"done"}``; each chunk of query epochs
runs in the threadpool, so the hub stays free and a client that leaves stops the search
before its next chunk.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

from flask import Blueprint, jsonify, request

from ... import constants
from ...auth import Access
from ..blocking import run_blocking
from ..endpoint import endpoint
from ..sse import sse_response
from . import runtime, streams
from .skill_embedding_models import CompareBody, SearchBody

blueprint = Blueprint("skill_search", __name__)
TAGS = ("skill", "search")

EMPTY_GRAPH = {"nodes": [], "edges": [], "dot": "", "svg": "", "svg_col": "", "results": []}
SHUTDOWN_EVENT = {"kind": "error", "error": "the runtime is shutting down"}


def format_data(payload: dict[str, Any], _event_id: int) -> str:
    """The daemon's SSE framing: one ``data:`` line per event, no names, no ids."""
    return f"data: {json.dumps(payload, ensure_ascii=False, separators=(',', ':'))}\n\n"


def _range(body: SearchBody) -> tuple[int, int]:
    assert body.start_utc is not None and body.end_utc is not None
    return int(body.start_utc), int(body.end_utc)


@blueprint.post("/v1/search/eeg")
@endpoint(Access.DATA, body=SearchBody, tags=TAGS)
def search_eeg(body: SearchBody):
    """Neighbours (cosine distance) of every embedded epoch in ``startUtc``..``endUtc``, from other times."""
    rt = runtime()
    if body.start_utc is None or body.end_utc is None:
        # The daemon's text mode (a cross-modal graph) needs screenshots and more; without a
        # range there is nothing to search here, answered as the daemon answers an empty request.
        return jsonify(EMPTY_GRAPH)
    start, end = _range(body)
    return jsonify(run_blocking(rt.search.search, rt.embeddings.encoder, start, end, body.k, body.ef, body.device_name))


@blueprint.post("/v1/search/eeg/stream")
@endpoint(Access.DATA, body=SearchBody, tags=TAGS)
def search_eeg_stream(body: SearchBody):
    """The same search as SSE: ``started``, one ``result`` per query epoch, ``done``; closing stops it."""
    rt = runtime()
    if body.start_utc is None or body.end_utc is None:
        events: Iterator[dict[str, Any]] = iter(
            [{"kind": "started", "query_count": 0, "searched_days": []}, {"kind": "done", "total": 0}]
        )
    else:
        start, end = _range(body)
        events = rt.search.search_range(rt.embeddings.encoder, start, end, body.k, body.ef, body.device_name)

    def stepped() -> Iterator[dict[str, Any]]:
        sentinel = object()
        while (event := run_blocking(next, events, sentinel)) is not sentinel:
            yield event

    return sse_response(
        stepped(), registry=streams(), environ=request.environ, final_on_shutdown=SHUTDOWN_EVENT, formatter=format_data
    )


@blueprint.post("/v1/search/compare")
@endpoint(Access.DATA, body=CompareBody, tags=TAGS)
def search_compare(body: CompareBody):
    """Two range searches side by side (``k`` 10, as the daemon), as ``{a, b}``."""
    rt = runtime()
    encoder, k = rt.embeddings.encoder, constants.SEARCH_COMPARE_K
    ranges = ((body.a_start_utc, body.a_end_utc), (body.b_start_utc, body.b_end_utc))

    def both() -> list[dict[str, Any]]:
        return [rt.search.search(encoder, int(s), int(e), k, constants.SEARCH_DEFAULT_EF, None) for s, e in ranges]

    a, b = run_blocking(both)
    return jsonify(a=a, b=b)


@blueprint.get("/v1/search/global-index/stats")
@endpoint(Access.DATA, tags=TAGS)
def global_index_stats():
    """The global index: vectors it holds, size on disk, and how many wait for the next build."""
    rt = runtime()
    return jsonify(run_blocking(rt.search.global_stats, rt.embeddings.encoder))


@blueprint.post("/v1/search/global-index/rebuild")
@endpoint(Access.DATA, tags=TAGS)
def global_index_rebuild():
    """Build the global index again now (in the analysis worker; search keeps serving meanwhile)."""
    rt = runtime()
    encoder = rt.embeddings.encoder
    rt.search.request_build("global", encoder)
    return jsonify({**run_blocking(rt.search.global_stats, encoder), "rebuild_requested": True})

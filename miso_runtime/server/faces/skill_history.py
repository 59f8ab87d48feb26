"""skill-daemon sections 4.3 and 4.4: recorded sessions, statistics and analysis of a range."""

from __future__ import annotations

import time

from flask import Blueprint, jsonify

from ...auth import Access
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime
from .skill_neuro_models import (
    CsvMetricsBody,
    DayMetricsBody,
    DaysBody,
    FindSessionBody,
    RangeBody,
    SessionIdBody,
    SessionsQuery,
)

blueprint = Blueprint("skill_history", __name__)
HISTORY = ("skill", "history")
ANALYSIS = ("skill", "analysis")


@blueprint.get("/v1/history/sessions")
@endpoint(Access.READ, query=SessionsQuery, tags=HISTORY)
def sessions(query: SessionsQuery):
    """Recording sessions, newest first (``?limit=&offset=``)."""
    return jsonify(runtime().history.list_sessions(query.limit, query.offset))


@blueprint.post("/v1/history/sessions/delete")
@endpoint(Access.DATA, body=SessionIdBody, tags=HISTORY)
def delete_session(body: SessionIdBody):
    """Delete a session with its epochs and recording file (409 while it records)."""
    return jsonify(runtime().history.delete_session(body.id))


@blueprint.get("/v1/history/stats")
@endpoint(Access.READ, tags=HISTORY)
def stats():
    """Totals: sessions, recorded time, samples, epochs."""
    return jsonify(runtime().history.stats())


@blueprint.post("/v1/history/daily-recording-mins")
@endpoint(Access.DATA, body=DaysBody, tags=HISTORY)
def daily_recording_mins(body: DaysBody):
    """Minutes recorded on each of the last ``days`` UTC days."""
    return jsonify(runtime().history.daily_recording_mins(body.days, int(time.time() * 1000)))


@blueprint.post("/v1/history/find-session")
@endpoint(Access.DATA, body=FindSessionBody, tags=HISTORY)
def find_session(body: FindSessionBody):
    """The session recording at ``ts_utc`` (UNIX seconds), or ``found: false``."""
    return jsonify(runtime().history.find_session(body.ts_utc))


@blueprint.post("/v1/analysis/metrics")
@endpoint(Access.DATA, body=RangeBody, tags=ANALYSIS)
def metrics(body: RangeBody):
    """Mean band powers and scores of the epochs in ``startUtc``..``endUtc``."""
    return jsonify(runtime().history.metrics(body.start_utc, body.end_utc))


@blueprint.post("/v1/analysis/timeseries")
@endpoint(Access.DATA, body=RangeBody, tags=ANALYSIS)
def timeseries(body: RangeBody):
    """Per-epoch rows, averaged into time buckets beyond 800 rows."""
    return jsonify(runtime().history.timeseries(body.start_utc, body.end_utc))


@blueprint.post("/v1/analysis/day-metrics")
@endpoint(Access.DATA, body=DayMetricsBody, tags=ANALYSIS)
def day_metrics(body: DayMetricsBody):
    """Metrics of several sessions: the ones named, or every one in the range."""
    return jsonify(runtime().history.day_metrics(body.session_ids, body.start_utc, body.end_utc))


@blueprint.post("/v1/analysis/csv-metrics")
@endpoint(Access.DATA, body=CsvMetricsBody, tags=ANALYSIS)
def csv_metrics(body: CsvMetricsBody):
    """Metrics computed from one recording file inside the data dir (run through the live pipeline)."""
    return jsonify(run_blocking(runtime().history.csv_metrics, body.path, body.board_id))


@blueprint.post("/v1/analysis/location")
@endpoint(Access.DATA, body=RangeBody, tags=ANALYSIS)
def location(body: RangeBody):
    """Where the sessions in the range were recorded (those started with a location)."""
    return jsonify(runtime().history.location(body.start_utc, body.end_utc))

"""Recorded sessions and what was measured in them: history, statistics and analysis.

Ranges are UNIX seconds as the skill-daemon contract sends them (``startUtc``/``endUtc``);
the store keeps UTC milliseconds. An empty range is an answer (``n_epochs: 0`` with every
mean null), never an error: a chart of a day without recordings is still a chart.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import constants
from ..client_input import client_path, unix_ms
from ..errors import MisoError
from ..store.eeg import EPOCH_BANDS, EPOCH_SCORES, EpochRepository, SessionRecord, SessionRepository
from .boards import BoardError, BoardParams, layout_of
from .layout import PipelineConfig, lsl_channel_count, lsl_layout
from .sample_file import samples_path

logger = logging.getLogger(__name__)

#: Samples fed to the pipeline at a time when analysing a recording file (1 s at 256 Hz).
CSV_CHUNK_SAMPLES = 256


def _midnight_ms(day: dt.date) -> int:
    """UTC ms of the start of a UTC day."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc).timestamp() * 1000)


def check_range(start_utc: float, end_utc: float) -> tuple[int, int]:
    """A range in UNIX seconds as UTC ms; ``start > end`` is the caller's mistake (400)."""
    if start_utc > end_utc:
        raise MisoError(400, "invalid_range", f"startUtc ({start_utc}) is after endUtc ({end_utc})")
    return unix_ms(start_utc, "startUtc"), unix_ms(end_utc, "endUtc")


def shape_means(row: dict[str, Any]) -> dict[str, Any]:
    """Column means of the store as ``{absolute: {band}, relative: {band}, scores: {name}}``."""
    return {
        "absolute": {band: row.get(f"abs_{band}") for band in EPOCH_BANDS},
        "relative": {band: row.get(f"rel_{band}") for band in EPOCH_BANDS},
        "scores": {name: row.get(name) for name in EPOCH_SCORES},
    }


class HistoryService:
    """Sessions, statistics and range analysis over the store and the recording files."""

    def __init__(
        self,
        sessions: SessionRepository,
        epochs: EpochRepository,
        data_dir: Path,
        running_session_id: Callable[[], str | None],
        pipeline_config: Callable[[], PipelineConfig],
    ) -> None:
        self.sessions = sessions
        self.epochs = epochs
        self.data_dir = data_dir
        self._running = running_session_id
        self._pipeline_config = pipeline_config

    # --- sessions ---------------------------------------------------------------------------

    def list_sessions(self, limit: int, offset: int) -> dict[str, Any]:
        return {
            "sessions": [record.to_dict() for record in self.sessions.page(limit, offset)],
            "total": self.sessions.count(),
            "limit": limit,
            "offset": offset,
        }

    def delete_session(self, session_id: str) -> dict[str, Any]:
        """Remove a session, its epochs and its recording file."""
        record = self.sessions.get(session_id)
        if record is None:
            raise MisoError(404, "session_not_found", f"no session {session_id!r}")
        if self._running() == session_id:
            raise MisoError(409, "session_running", "the session is recording; cancel it before deleting it")
        n_epochs = self.epochs.count(session_id)
        self.sessions.delete(session_id)
        path = self.data_dir / record.recording_path
        removed = path.is_file()
        path.unlink(missing_ok=True)
        samples_path(path).unlink(missing_ok=True)
        return {"ok": True, "id": session_id, "deleted_epochs": n_epochs, "deleted_file": removed}

    def stats(self) -> dict[str, Any]:
        totals = self.sessions.totals()
        return {
            "n_sessions": totals["n_sessions"],
            "total_recording_secs": totals["total_ms"] / 1000.0,
            "total_recording_mins": totals["total_ms"] / 60_000.0,
            "n_samples": totals["n_samples"],
            "n_epochs": totals["n_epochs"],
            "n_embedded_epochs": totals["n_embedded_epochs"],
            "first_session_utc": None if totals["first_utc_ms"] is None else totals["first_utc_ms"] / 1000.0,
            "last_session_utc": None if totals["last_utc_ms"] is None else totals["last_utc_ms"] / 1000.0,
            "recording": self._running(),
        }

    def daily_recording_mins(self, days: int, now_ms: int) -> dict[str, Any]:
        """Minutes recorded on each of the last ``days`` UTC days (today last), zeros included."""
        today = dt.datetime.fromtimestamp(now_ms / 1000, dt.timezone.utc).date()
        first = today - dt.timedelta(days=days - 1)
        start_ms = _midnight_ms(first)
        minutes = {first + dt.timedelta(days=i): 0.0 for i in range(days)}
        for record in self.sessions.overlapping(start_ms, now_ms):
            begin = max(record.started_utc_ms, start_ms)
            end = min(record.ended_utc_ms if record.ended_utc_ms is not None else now_ms, now_ms)
            while begin < end:
                day = dt.datetime.fromtimestamp(begin / 1000, dt.timezone.utc).date()
                next_day = day + dt.timedelta(days=1)
                day_end = _midnight_ms(next_day)
                piece_end = min(end, day_end)
                if day in minutes:
                    minutes[day] += (piece_end - begin) / 60_000.0
                begin = piece_end
        return {
            "days": [{"date": day.isoformat(), "minutes": round(value, 3)} for day, value in minutes.items()],
            "total_minutes": round(sum(minutes.values()), 3),
        }

    def find_session(self, ts_utc: float) -> dict[str, Any]:
        record = self.sessions.containing(unix_ms(ts_utc, "ts_utc"))
        return {"found": record is not None, "session": record.to_dict() if record else None}

    # --- analysis ---------------------------------------------------------------------------

    def metrics(self, start_utc: float, end_utc: float, session_ids: list[str] | None = None) -> dict[str, Any]:
        """Mean band powers and scores over every epoch that starts in the range."""
        start_ms, end_ms = check_range(start_utc, end_utc)
        row = self.epochs.aggregate(start_ms, end_ms, session_ids)
        return self._metrics_answer(row, start_utc, end_utc)

    @staticmethod
    def _metrics_answer(row: dict[str, Any], start_utc: float, end_utc: float) -> dict[str, Any]:
        return {
            "n_epochs": row["n_epochs"],
            "n_sessions": row["n_sessions"],
            "start_utc": start_utc,
            "end_utc": end_utc,
            "first_epoch_utc": None if row["first_utc_ms"] is None else row["first_utc_ms"] / 1000.0,
            "last_epoch_end_utc": None if row["last_utc_ms"] is None else row["last_utc_ms"] / 1000.0,
            **shape_means(row),
        }

    def timeseries(self, start_utc: float, end_utc: float) -> dict[str, Any]:
        """Per-epoch rows, averaged into equal time buckets when there would be more than 800."""
        start_ms, end_ms = check_range(start_utc, end_utc)
        overview = self.epochs.aggregate(start_ms, end_ms)
        n_epochs = overview["n_epochs"]
        if n_epochs == 0:
            return {"n_epochs": 0, "n_rows": 0, "bucket_secs": None, "downsampled": False, "rows": []}
        first_ms = overview["first_utc_ms"]
        if n_epochs <= constants.TIMESERIES_MAX_ROWS:
            bucket_ms = 1
        else:
            span_ms = max(1, overview["last_utc_ms"] - first_ms + 1)
            bucket_ms = math.ceil(span_ms / constants.TIMESERIES_MAX_ROWS)
        rows = self.epochs.buckets(first_ms, end_ms, bucket_ms)
        return {
            "n_epochs": n_epochs,
            "n_rows": len(rows),
            "bucket_secs": None if bucket_ms == 1 else bucket_ms / 1000.0,
            "downsampled": bucket_ms > 1,
            "rows": [
                {
                    "t_utc": row["start_utc_ms"] / 1000.0,
                    "start_utc_ms": row["start_utc_ms"],
                    "end_utc_ms": row["end_utc_ms"],
                    "n_epochs": row["n_epochs"],
                    **shape_means(row),
                }
                for row in rows
            ],
        }

    def day_metrics(
        self, session_ids: list[str] | None, start_utc: float | None, end_utc: float | None
    ) -> dict[str, Any]:
        """Metrics of several sessions at once: the ones named, or every one in the range."""
        if session_ids:
            records = self.sessions.by_ids(session_ids)
            missing = sorted(set(session_ids) - {record.id for record in records})
            if missing:
                raise MisoError(404, "session_not_found", f"no session {', '.join(missing)}")
        elif start_utc is not None and end_utc is not None:
            start_ms, end_ms = check_range(start_utc, end_utc)
            records = self.sessions.overlapping(start_ms, end_ms)
        else:
            raise MisoError(400, "invalid_request", "give session_ids, or startUtc and endUtc")
        answers = []
        for record in records:
            row = self.epochs.aggregate(0, 2**62, [record.id])
            start, end = record.started_utc_ms / 1000.0, (record.ended_utc_ms or record.started_utc_ms) / 1000.0
            answers.append({"session": record.to_dict(), "metrics": self._metrics_answer(row, start, end)})
        return {"n_sessions": len(answers), "sessions": answers}

    def location(self, start_utc: float, end_utc: float) -> dict[str, Any]:
        start_ms, end_ms = check_range(start_utc, end_utc)
        located = [record for record in self.sessions.overlapping(start_ms, end_ms) if record.location]
        return {
            "n_sessions": len(located),
            "locations": [
                {
                    "session_id": record.id,
                    "start_utc": record.started_utc_ms / 1000.0,
                    "end_utc": None if record.ended_utc_ms is None else record.ended_utc_ms / 1000.0,
                    **(record.location or {}),
                }
                for record in located
            ],
        }

    # --- recording files --------------------------------------------------------------------

    def resolve_recording(self, path_text: str) -> Path:
        """A recording path inside the data dir (relative to it, or absolute); anything else is refused."""
        raw = client_path(path_text)
        if ".." in raw.parts:
            raise MisoError(400, "invalid_path", "the path must not contain '..'")
        root = self.data_dir.resolve()
        candidate = (raw if raw.is_absolute() else root / raw).resolve()
        if not candidate.is_relative_to(root):
            raise MisoError(403, "path_outside_data_dir", f"{path_text} is outside the data dir {root}")
        if not candidate.is_file():
            raise MisoError(404, "file_not_found", f"no recording at {path_text}")
        return candidate

    def csv_metrics(self, path_text: str, board_id: int | None) -> dict[str, Any]:
        """Run a recording file through the live pipeline and summarise it (blocking: call off the hub)."""
        # The DSP stack (scipy) is imported here, in the threadpool, not at the server's start.
        from .pipeline import SignalPipeline, channel_mean, epoch_means
        from .recording import read_recording

        path = self.resolve_recording(path_text)
        root = self.data_dir.resolve()
        record: SessionRecord | None = self.sessions.by_recording_path(str(path.relative_to(root)))
        data_board = record.data_board_id if record else board_id
        if data_board is None:
            raise MisoError(400, "board_id_required", "this file belongs to no session; give board_id (its row layout)")
        try:
            n_lsl = lsl_channel_count(data_board)
            if record is not None and n_lsl is not None:
                names = tuple(record.channel_names or ())
                if len(names) != n_lsl:
                    names = tuple(f"ch{i + 1}" for i in range(n_lsl))
                layout = lsl_layout(n_lsl, record.sample_rate_hz, names, record.board_name)
            else:
                layout = layout_of(data_board, BoardParams())
            data, _rate, _eeg, _ts = read_recording(path, data_board, record.sample_rate_hz if record else None)
        except BoardError as exc:
            raise MisoError(400, "invalid_board", str(exc)) from None
        except (ValueError, OSError) as exc:
            raise MisoError(
                422, "unreadable_recording", f"{path.name} is not a recording of board {data_board}: {exc}"
            ) from None
        pipeline = SignalPipeline(layout, self._pipeline_config())
        epochs = []
        for start in range(0, data.shape[1], CSV_CHUNK_SAMPLES):
            _frames, done = pipeline.process(data[:, start : start + CSV_CHUNK_SAMPLES])
            epochs.extend(done)
        rows = [epoch_means(epoch) for epoch in epochs if epoch.metrics is not None]
        means = {
            column: channel_mean(np.array([row.get(column) for row in rows], dtype=float)) if rows else None
            for column in [f"abs_{b}" for b in EPOCH_BANDS] + [f"rel_{b}" for b in EPOCH_BANDS] + list(EPOCH_SCORES)
        }
        n_samples = data.shape[1]
        return {
            "path": str(path),
            "session_id": record.id if record else None,
            "board_id": data_board,
            "sample_rate_hz": layout.sample_rate_hz,
            "channels": list(layout.channel_names),
            "n_samples": n_samples,
            "duration_secs": n_samples / layout.sample_rate_hz,
            "n_epochs": len(rows),
            **shape_means(means),
        }

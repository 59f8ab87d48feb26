"""SQL for EEG devices, recording sessions and epochs (tables of migration 3).

The capture worker writes epochs through :class:`EpochRepository` from its own connection
while the server reads them; everything else is written by the server process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import sqlite_utils

#: Band and score columns of ``eeg_epochs`` (channel means), in table order.
EPOCH_BANDS = ("delta", "theta", "alpha", "beta", "gamma")
EPOCH_SCORES = ("relaxation", "engagement", "alpha_theta", "theta_beta", "frontal_alpha_asymmetry")


class SessionStatus:
    RECORDING = "recording"
    COMPLETE = "complete"
    #: Closed at start-up from its recording file after the runtime was killed mid-session.
    RECOVERED = "recovered"


@dataclass(frozen=True)
class DeviceRecord:
    id: str
    board_id: int
    board_name: str
    params: dict[str, Any]
    preferred: bool
    first_seen_ms: int
    last_seen_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "board_id": self.board_id,
            "board_name": self.board_name,
            "params": self.params,
            "preferred": self.preferred,
            "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms,
        }


class DeviceRepository:
    """SQL for ``eeg_devices``."""

    _COLUMNS = "id, board_id, board_name, params, preferred, first_seen_ms, last_seen_ms"

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    @staticmethod
    def _record(row: tuple) -> DeviceRecord:
        return DeviceRecord(row[0], row[1], row[2], json.loads(row[3]), bool(row[4]), row[5], row[6])

    def seen(self, device_id: str, board_id: int, board_name: str, params: dict[str, Any], at_ms: int) -> None:
        """Insert a device or refresh its params and last-seen time."""
        self._db.execute(
            "INSERT INTO eeg_devices (id, board_id, board_name, params, preferred, first_seen_ms, last_seen_ms) "
            "VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "board_name = excluded.board_name, params = excluded.params, last_seen_ms = excluded.last_seen_ms",
            [device_id, board_id, board_name, json.dumps(params), at_ms, at_ms],
        )

    def all(self) -> list[DeviceRecord]:
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM eeg_devices ORDER BY preferred DESC, last_seen_ms DESC"
        ).fetchall()
        return [self._record(row) for row in rows]

    def get(self, device_id: str) -> DeviceRecord | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM eeg_devices WHERE id = ?", [device_id]).fetchone()
        return self._record(row) if row else None

    def preferred(self) -> DeviceRecord | None:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM eeg_devices WHERE preferred = 1 LIMIT 1").fetchone()
        return self._record(row) if row else None

    def set_preferred(self, device_id: str) -> bool:
        with self._db.conn:
            if self.get(device_id) is None:
                return False
            self._db.execute("UPDATE eeg_devices SET preferred = (id = ?)", [device_id])
        return True

    def delete(self, device_id: str) -> bool:
        return self._db.execute("DELETE FROM eeg_devices WHERE id = ?", [device_id]).rowcount > 0


@dataclass(frozen=True)
class SessionRecord:
    id: str
    device_id: str | None
    board_id: int
    data_board_id: int
    board_name: str
    sample_rate_hz: float | None
    channel_names: list[str]
    started_utc_ms: int
    ended_utc_ms: int | None
    n_samples: int
    n_epochs: int
    status: str
    end_reason: str | None
    recording_path: str
    location: dict[str, Any] | None
    epoch_s: float | None
    overlap_s: float | None

    @property
    def duration_s(self) -> float:
        if self.ended_utc_ms is None:
            return 0.0
        return max(0.0, (self.ended_utc_ms - self.started_utc_ms) / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "device_id": self.device_id,
            "board_id": self.board_id,
            "data_board_id": self.data_board_id,
            "board_name": self.board_name,
            "sample_rate_hz": self.sample_rate_hz,
            "channel_names": self.channel_names,
            "start_utc": self.started_utc_ms / 1000.0,
            "end_utc": None if self.ended_utc_ms is None else self.ended_utc_ms / 1000.0,
            "started_utc_ms": self.started_utc_ms,
            "ended_utc_ms": self.ended_utc_ms,
            "duration_s": self.duration_s,
            "n_samples": self.n_samples,
            "n_epochs": self.n_epochs,
            "status": self.status,
            "end_reason": self.end_reason,
            "recording_path": self.recording_path,
            "location": self.location,
            "epoch_s": self.epoch_s,
            "overlap_s": self.overlap_s,
        }


@dataclass
class NewSession:
    """What the server knows when a session starts (the rest arrives when the board is up)."""

    id: str
    device_id: str | None
    board_id: int
    data_board_id: int
    board_name: str
    started_utc_ms: int
    recording_path: str
    location: dict[str, Any] | None = None
    epoch_s: float | None = None
    overlap_s: float | None = None
    channel_names: list[str] = field(default_factory=list)
    sample_rate_hz: float | None = None


class SessionRepository:
    """SQL for ``eeg_sessions``."""

    _COLUMNS = (
        "id, device_id, board_id, data_board_id, board_name, sample_rate_hz, channel_names, started_utc_ms, "
        "ended_utc_ms, "
        "n_samples, n_epochs, status, end_reason, recording_path, location, epoch_s, overlap_s"
    )

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    @staticmethod
    def _record(row: tuple) -> SessionRecord:
        values = list(row)
        values[6] = json.loads(values[6] or "[]")
        values[14] = json.loads(values[14]) if values[14] else None
        return SessionRecord(*values)

    def _select(self, where: str = "", params: Iterable[Any] = (), suffix: str = "") -> list[SessionRecord]:
        sql = f"SELECT {self._COLUMNS} FROM eeg_sessions {where} {suffix}"
        return [self._record(row) for row in self._db.execute(sql, list(params)).fetchall()]

    def insert(self, new: NewSession) -> None:
        self._db.execute(
            "INSERT INTO eeg_sessions (id, device_id, board_id, data_board_id, board_name, sample_rate_hz, "
            "channel_names, started_utc_ms, status, recording_path, location, epoch_s, overlap_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                new.id,
                new.device_id,
                new.board_id,
                new.data_board_id,
                new.board_name,
                new.sample_rate_hz,
                json.dumps(new.channel_names),
                new.started_utc_ms,
                SessionStatus.RECORDING,
                new.recording_path,
                json.dumps(new.location) if new.location else None,
                new.epoch_s,
                new.overlap_s,
            ],
        )

    def set_board(self, session_id: str, sample_rate_hz: float, channel_names: list[str]) -> None:
        self._db.execute(
            "UPDATE eeg_sessions SET sample_rate_hz = ?, channel_names = ? WHERE id = ?",
            [sample_rate_hz, json.dumps(channel_names), session_id],
        )

    def end(
        self,
        session_id: str,
        ended_utc_ms: int,
        n_samples: int,
        status: str,
        reason: str,
        *,
        started_utc_ms: int | None,
    ) -> None:
        """Close a session; ``started_utc_ms`` (the first sample's time) replaces the request time if given."""
        with self._db.conn:
            n_epochs = self._db.execute("SELECT COUNT(*) FROM eeg_epochs WHERE session_id = ?", [session_id]).fetchone()
            self._db.execute(
                "UPDATE eeg_sessions SET ended_utc_ms = ?, n_samples = ?, n_epochs = ?, status = ?, end_reason = ?, "
                "started_utc_ms = COALESCE(?, started_utc_ms) WHERE id = ?",
                [ended_utc_ms, n_samples, n_epochs[0], status, reason, started_utc_ms, session_id],
            )

    def get(self, session_id: str) -> SessionRecord | None:
        found = self._select("WHERE id = ?", [session_id])
        return found[0] if found else None

    def by_recording_path(self, recording_path: str) -> SessionRecord | None:
        found = self._select("WHERE recording_path = ?", [recording_path])
        return found[0] if found else None

    def recording(self) -> list[SessionRecord]:
        """Sessions not closed yet (at start-up: cut by a crash)."""
        return self._select("WHERE status = ?", [SessionStatus.RECORDING])

    def page(self, limit: int, offset: int) -> list[SessionRecord]:
        return self._select(suffix="ORDER BY started_utc_ms DESC LIMIT ? OFFSET ?", params=[limit, offset])

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM eeg_sessions").fetchone()[0]

    def overlapping(self, start_ms: int, end_ms: int) -> list[SessionRecord]:
        """Sessions with any part in ``[start_ms, end_ms]`` (an open session extends to now)."""
        return self._select(
            "WHERE started_utc_ms <= ? AND COALESCE(ended_utc_ms, 9223372036854775807) >= ?",
            [end_ms, start_ms],
            "ORDER BY started_utc_ms",
        )

    def containing(self, ts_ms: int) -> SessionRecord | None:
        found = self.overlapping(ts_ms, ts_ms)
        return found[-1] if found else None

    def by_ids(self, ids: list[str]) -> list[SessionRecord]:
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        return self._select(f"WHERE id IN ({marks})", ids, "ORDER BY started_utc_ms")

    def delete(self, session_id: str) -> bool:
        """Delete a session and its epochs."""
        with self._db.conn:
            self._db.execute("DELETE FROM eeg_epochs WHERE session_id = ?", [session_id])
            return self._db.execute("DELETE FROM eeg_sessions WHERE id = ?", [session_id]).rowcount > 0

    def totals(self) -> dict[str, Any]:
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(MAX(0, COALESCE(ended_utc_ms, started_utc_ms) - started_utc_ms)), 0), "
            "MIN(started_utc_ms), MAX(COALESCE(ended_utc_ms, started_utc_ms)), COALESCE(SUM(n_samples), 0) "
            "FROM eeg_sessions"
        ).fetchone()
        epochs = self._db.execute(
            "SELECT (SELECT COUNT(*) FROM eeg_epochs), (SELECT COUNT(DISTINCT epoch_id) FROM eeg_embeddings)"
        ).fetchone()
        return {
            "n_sessions": row[0],
            "total_ms": row[1],
            "first_utc_ms": row[2],
            "last_utc_ms": row[3],
            "n_samples": row[4],
            "n_epochs": epochs[0],
            "n_embedded_epochs": epochs[1],
        }


@dataclass(frozen=True)
class EpochRow:
    """One stored epoch: times, channel-mean band powers and scores, per-channel metrics."""

    id: int
    session_id: str
    start_utc_ms: int
    end_utc_ms: int
    n_windows: int
    absolute: dict[str, float | None]
    relative: dict[str, float | None]
    scores: dict[str, float | None]
    metrics: dict[str, Any]


class EpochRepository:
    """SQL for ``eeg_epochs``."""

    _MEAN_COLUMNS = [f"abs_{b}" for b in EPOCH_BANDS] + [f"rel_{b}" for b in EPOCH_BANDS] + list(EPOCH_SCORES)
    _COLUMNS = "id, session_id, start_utc_ms, end_utc_ms, n_windows, " + ", ".join(_MEAN_COLUMNS) + ", metrics"

    def __init__(self, db: sqlite_utils.Database) -> None:
        self._db = db

    def insert(
        self,
        session_id: str,
        start_utc_ms: int,
        end_utc_ms: int,
        n_windows: int,
        means: dict[str, float | None],
        metrics: dict[str, Any],
    ) -> int:
        """Store one epoch; ``means`` maps ``abs_<band>``, ``rel_<band>`` and score names to values."""
        columns = ["session_id", "start_utc_ms", "end_utc_ms", "n_windows", *self._MEAN_COLUMNS, "metrics"]
        values = [session_id, start_utc_ms, end_utc_ms, n_windows]
        values += [means.get(name) for name in self._MEAN_COLUMNS]
        values.append(json.dumps(metrics))
        marks = ", ".join("?" for _ in columns)
        cursor = self._db.execute(f"INSERT INTO eeg_epochs ({', '.join(columns)}) VALUES ({marks})", values)
        return int(cursor.lastrowid)

    def _row(self, row: tuple) -> EpochRow:
        n = len(EPOCH_BANDS)
        means = row[5:-1]
        return EpochRow(
            id=row[0],
            session_id=row[1],
            start_utc_ms=row[2],
            end_utc_ms=row[3],
            n_windows=row[4],
            absolute=dict(zip(EPOCH_BANDS, means[:n], strict=True)),
            relative=dict(zip(EPOCH_BANDS, means[n : 2 * n], strict=True)),
            scores=dict(zip(EPOCH_SCORES, means[2 * n :], strict=True)),
            metrics=json.loads(row[-1]),
        )

    def in_range(self, start_ms: int, end_ms: int, session_ids: list[str] | None = None) -> list[EpochRow]:
        """Epochs that start in ``[start_ms, end_ms]``, oldest first (optionally of some sessions)."""
        where = "WHERE start_utc_ms >= ? AND start_utc_ms <= ?"
        params: list[Any] = [start_ms, end_ms]
        if session_ids is not None:
            where += f" AND session_id IN ({', '.join('?' for _ in session_ids)})"
            params += session_ids
        sql = f"SELECT {self._COLUMNS} FROM eeg_epochs {where} ORDER BY start_utc_ms, id"
        return [self._row(row) for row in self._db.execute(sql, params).fetchall()]

    def relative_in_range(self, start_ms: int, end_ms: int) -> list[tuple[int, Any, Any, Any, Any]]:
        """``(start_utc_ms, rel_delta, rel_theta, rel_alpha, rel_beta)`` of epochs starting in the range,
        oldest first: what the daemon's sleep rule reads, without parsing each row's metrics."""
        return self._db.execute(
            "SELECT start_utc_ms, rel_delta, rel_theta, rel_alpha, rel_beta FROM eeg_epochs"
            " WHERE start_utc_ms >= ? AND start_utc_ms <= ? ORDER BY start_utc_ms, id",
            [start_ms, end_ms],
        ).fetchall()

    def for_session(self, session_id: str) -> list[EpochRow]:
        sql = f"SELECT {self._COLUMNS} FROM eeg_epochs WHERE session_id = ? ORDER BY start_utc_ms, id"
        return [self._row(row) for row in self._db.execute(sql, [session_id]).fetchall()]

    def count(self, session_id: str) -> int:
        return self._db.execute("SELECT COUNT(*) FROM eeg_epochs WHERE session_id = ?", [session_id]).fetchone()[0]

    def _filter(self, start_ms: int, end_ms: int, session_ids: list[str] | None) -> tuple[str, list[Any]]:
        where = "WHERE start_utc_ms >= ? AND start_utc_ms <= ?"
        params: list[Any] = [start_ms, end_ms]
        if session_ids is not None:
            where += f" AND session_id IN ({', '.join('?' for _ in session_ids) or 'NULL'})"
            params += session_ids
        return where, params

    def scores_of(self, epoch_ids: Sequence[int]) -> dict[int, dict[str, float | None]]:
        """The channel-mean scores (``relaxation``, ``engagement``...) of each epoch id found."""
        ids = [int(i) for i in epoch_ids]
        if not ids:
            return {}
        columns = ", ".join(EPOCH_SCORES)
        marks = ", ".join("?" for _ in ids)
        rows = self._db.execute(f"SELECT id, {columns} FROM eeg_epochs WHERE id IN ({marks})", ids).fetchall()
        return {int(row[0]): dict(zip(EPOCH_SCORES, row[1:], strict=True)) for row in rows}

    def aggregate(self, start_ms: int, end_ms: int, session_ids: list[str] | None = None) -> dict[str, Any]:
        """Count, first/last times and the mean of every band and score column over a range."""
        where, params = self._filter(start_ms, end_ms, session_ids)
        means = ", ".join(f"AVG({column})" for column in self._MEAN_COLUMNS)
        row = self._db.execute(
            f"SELECT COUNT(*), MIN(start_utc_ms), MAX(end_utc_ms), COUNT(DISTINCT session_id), {means} "
            f"FROM eeg_epochs {where}",
            params,
        ).fetchone()
        return {
            "n_epochs": row[0],
            "first_utc_ms": row[1],
            "last_utc_ms": row[2],
            "n_sessions": row[3],
            **dict(zip(self._MEAN_COLUMNS, row[4:], strict=True)),
        }

    def buckets(
        self, start_ms: int, end_ms: int, bucket_ms: int, session_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Epochs averaged in buckets of ``bucket_ms`` from ``start_ms`` (1 = one row per epoch)."""
        where, params = self._filter(start_ms, end_ms, session_ids)
        means = ", ".join(f"AVG({column})" for column in self._MEAN_COLUMNS)
        rows = self._db.execute(
            f"SELECT (start_utc_ms - ?) / ? AS bucket, COUNT(*), MIN(start_utc_ms), MAX(end_utc_ms), {means} "
            f"FROM eeg_epochs {where} GROUP BY bucket ORDER BY bucket",
            [start_ms, max(1, bucket_ms), *params],
        ).fetchall()
        return [
            {
                "n_epochs": row[1],
                "start_utc_ms": row[2],
                "end_utc_ms": row[3],
                **dict(zip(self._MEAN_COLUMNS, row[4:], strict=True)),
            }
            for row in rows
        ]

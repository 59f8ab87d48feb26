"""The server's side of screenshots: settings, metrics, the worker's session gate, queries, files.

The ``screenshots`` worker captures; this service tells it the settings and whether an EEG
session records (it follows the capture worker's events, after the neuro service has handled
them), keeps the metrics the worker reports, and answers the routes from the shared store.

Threads: the settings, the gate and the metrics are touched on the hub (routes, pump greenlets)
and need no lock; :meth:`around`, :meth:`search_text` and :meth:`file_path` run in threadpool
threads (``run_blocking``) and touch only SQLite, through one connection per thread.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import constants
from ..errors import MisoError
from ..settings_files import SettingsFile
from ..store.database import ConnectionPerThread
from ..store.screenshots import ScreenshotRepository
from .config import ScreenshotConfig
from .pipeline import Metrics

logger = logging.getLogger(__name__)

#: Our names: a UTC day folder and a capture of that day.
_DATE = re.compile(r"\d{8}")
_FILE = re.compile(r"(\d{14})\.webp")
#: Below this, ``timestamp`` is UNIX seconds (what the daemon's frontend sends); at or above it,
#: ``YYYYMMDDHHmmss`` (what its docs and its results say): 14 digits start at 10^13.
_COMPACT_FROM = 10**13


def unix_seconds(timestamp: int) -> int:
    """``timestamp`` as UNIX seconds, from ``YYYYMMDDHHmmss`` (UTC) or from UNIX seconds already.

    A 14-digit value that is no date is a 422, in the words of what is wrong with it.
    """
    if timestamp < _COMPACT_FROM:
        return timestamp
    from datetime import datetime, timezone

    try:
        moment = datetime.strptime(str(timestamp), "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        raise MisoError(
            422, "invalid_request", f"timestamp {timestamp} is neither UNIX seconds nor a YYYYMMDDHHmmss date"
        ) from None
    return int(moment.timestamp())


def cosine_similarities(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity (-1..1) of each row of ``matrix`` to ``query``; a zero row scores 0."""
    norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) or 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, (matrix @ query) / np.where(norms > 0, norms, 1.0), 0.0)


class ScreenshotService:
    """Screenshots of one data dir.

    Parameters
    ----------
    worker : Worker
        The ``screenshots`` worker (``send``).
    config : SettingsFile
        ``ScreenshotConfig`` in the data dir.
    database_path : Path
        The shared SQLite file.
    screenshots_dir : Path
        ``<data dir>/screenshots``.
    session_active : callable
        Whether an EEG session records now (the neuro service's view).
    text_model : callable
        The labels' text embedder (loaded on the hub on first use: see ``LabelService``).
    publish : callable
        ``publish(event_type, payload)`` on the event bus.
    serving_port : callable
        The port the server listens on, once it does.
    """

    def __init__(
        self,
        worker: Any,
        config: SettingsFile[ScreenshotConfig],
        database_path: Path,
        screenshots_dir: Path,
        session_active: Callable[[], bool],
        text_model: Callable[[], Any],
        publish: Callable[[str, dict[str, Any]], Any],
        serving_port: Callable[[], int | None],
    ) -> None:
        self._worker = worker
        self.config = config
        self._store = ConnectionPerThread(database_path)
        self.dir = screenshots_dir
        self._session_active = session_active
        self._text_model = text_model
        self._publish = publish
        self._serving_port = serving_port
        self._sent_active: bool | None = None
        self._metrics: dict[str, Any] = Metrics().to_dict()
        self._worker_up = False

    @property
    def _repository(self) -> ScreenshotRepository:
        return ScreenshotRepository(self._store.db())

    # --- the worker -------------------------------------------------------------------------

    def _send_config(self) -> None:
        from workers.protocol.screenshots import ConfigureScreenshots
        from workers.supervisor import WorkerUnavailable

        active = bool(self._session_active())
        try:
            self._worker.send(ConfigureScreenshots(self.config.get().model_dump(), active))
            self._sent_active = active
        except WorkerUnavailable as exc:
            logger.info("screenshot settings not sent now (sent when the worker starts): %s", exc)

    def handle_event(self, _name: str, event: Any) -> None:
        """Events of the ``screenshots`` worker."""
        from workers.protocol.base import WorkerStarted
        from workers.protocol.screenshots import ScreenshotKept, ScreenshotMetrics

        if isinstance(event, WorkerStarted):
            self._worker_up = True
            self._send_config()
        elif isinstance(event, ScreenshotMetrics):
            self._metrics = dict(event.metrics)
        elif isinstance(event, ScreenshotKept):
            self._publish(
                constants.EVENT_SCREENSHOT_CAPTURED,
                {"ts": str(event.timestamp), "filename": event.filename, "unix_ts": event.unix_ts},
            )

    def handle_exit(self, _name: str, code: int | None) -> None:
        self._worker_up = False
        self._sent_active = None
        self._metrics = {**self._metrics, "status": "error", "last_error": f"the screenshot worker exited ({code})"}

    def session_changed(self, *_args: Any) -> None:
        """After each capture-worker event or exit: tell the worker when the EEG session started or ended."""
        active = bool(self._session_active())
        if active == self._sent_active:
            return
        from workers.protocol.screenshots import SessionActive
        from workers.supervisor import WorkerUnavailable

        try:
            self._worker.send(SessionActive(active))
            self._sent_active = active
        except WorkerUnavailable:
            pass  # sent with the settings when it starts again

    # --- settings and status ----------------------------------------------------------------

    def set_config(self, values: dict[str, Any]) -> dict[str, Any]:
        """Replace the settings (fields left out take their defaults, as the daemon's POST does).

        Returns ``{"model_changed", "stale_count"}``: whether the image model changed (backend or
        model id), and then how many stored captures have an image vector of another model.
        """
        before = self.config.get()
        after = self.config.replace(values)
        model_changed = (before.embed_backend, before.model_id()) != (after.embed_backend, after.model_id())
        stale = self._repository.count_stale(after.embed_backend, after.model_id()) if model_changed else 0
        self._send_config()
        return {"model_changed": model_changed, "stale_count": stale}

    def metrics(self) -> dict[str, Any]:
        """The worker's last metrics, with what the store holds (``stored``, ``with_text``, the newest times)."""
        summary = self._repository.summary()
        metrics = dict(self._metrics)
        if not self._worker_up and metrics.get("status") != "error":
            metrics["status"] = "starting"
        metrics["last_capture_unix"] = max(int(metrics.get("last_capture_unix") or 0), summary["last_capture_unix"])
        metrics["last_embed_unix"] = max(int(metrics.get("last_embed_unix") or 0), summary["last_embed_unix"])
        metrics["stored"] = summary["stored"]
        metrics["with_text"] = summary["with_text"]
        return metrics

    def directory(self) -> dict[str, Any]:
        """``{"dir", "port"}``: where the images are, and the port that serves them."""
        return {"dir": str(self.dir), "port": self._serving_port()}

    # --- queries (threadpool) ---------------------------------------------------------------

    def around(self, timestamp: int, window_secs: int) -> list[dict[str, Any]]:
        """Captures within ``window_secs`` of ``timestamp`` (UNIX seconds or ``YYYYMMDDHHmmss``), oldest first."""
        centre = unix_seconds(timestamp)
        return self._repository.around(centre - window_secs, centre + window_secs)

    def search_text(self, query: str, k: int, mode: str) -> list[dict[str, Any]]:
        """Captures by their OCR text: ``substring`` (newest first) or ``semantic`` (nearest meaning first).

        Semantic ranks every capture whose text was embedded with the current text model by
        cosine similarity to the query's vector; where none was (no capture with text yet, or
        all of another model), it answers as ``substring`` does, as the daemon falls back to LIKE.
        """
        repository = self._repository
        if mode == "substring":
            return repository.search_substring(query, k)
        model = self._text_model()
        vector = np.asarray(model.embed([query])[0], dtype=np.float32)
        best_ids = np.empty(0, dtype=np.int64)
        best_scores = np.empty(0, dtype=np.float64)
        for ids, vectors in repository.ocr_vectors(str(model.name), constants.SCREENSHOT_SEARCH_CHUNK_ROWS):
            ids = np.concatenate([best_ids, ids])
            scores = np.concatenate([best_scores, cosine_similarities(vectors.astype(np.float32), vector)])
            keep = np.argsort(-scores, kind="stable")[:k]
            best_ids, best_scores = ids[keep], scores[keep]
        if not len(best_ids):
            return repository.search_substring(query, k)
        rows = repository.by_ids([int(i) for i in best_ids])
        return [
            {**rows[int(i)], "similarity": float(s)}
            for i, s in zip(best_ids, best_scores, strict=True)
            if int(i) in rows
        ]

    def file_path(self, date: str | None, filename: str) -> Path:
        """The image file ``[date/]filename`` names, when it is one of ours; a 4xx otherwise.

        Refused: a name with ``..``, a slash or a backslash (400), and any name that is not a
        capture this runtime stored (404), whatever is on disk.
        """
        for part in (date, filename):
            if part is not None and (".." in part or "/" in part or "\\" in part):
                raise MisoError(400, "invalid_filename", f"{part!r} is not a screenshot name (no '..' or '/')")
        match = _FILE.fullmatch(filename)
        day = date if date is not None else filename[:8]
        if match is None or not _DATE.fullmatch(day) or not match.group(1).startswith(day):
            raise MisoError(404, "not_found", f"no screenshot {filename!r}: names are YYYYMMDD/YYYYMMDDHHmmss.webp")
        relative = f"{day}/{filename}"
        path = (self.dir / relative).resolve()
        if self.dir.resolve() not in path.parents or not self._repository.has_file(relative) or not path.is_file():
            raise MisoError(404, "not_found", f"no screenshot {relative!r}")
        return path

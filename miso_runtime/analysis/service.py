"""The ``analysis`` worker as the faces see it: Brain Nebula projections and search index builds.

A projection is answered from the cache when the same two ranges were projected with the same
settings and the same vectors (the cache key includes each range's vector count and newest
id, so an epoch embedded since is never served a stale picture); otherwise the worker runs
it while its progress goes out as ``umap-progress`` events.

Plain ``threading`` only: in the server those primitives are gevent's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from workers.protocol.analysis import (
    BuildIndex,
    CancelUmap,
    IndexBuildFailed,
    IndexBuilt,
    ProjectUmap,
    UmapDone,
    UmapFailed,
    UmapProgress,
)
from workers.protocol.base import WorkerStarted

from .. import constants
from ..errors import MisoError
from ..settings_files import SettingsFile, write_atomic
from ..store.database import ConnectionPerThread
from ..store.embeddings import EmbeddingRepository
from .settings import RESULT_FIELDS, UmapUserConfig

logger = logging.getLogger(__name__)

Publish = Callable[..., Any]


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


@dataclass
class _Pending:
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, Any] | None = None
    error: tuple[str, str] | None = None


class AnalysisService:
    def __init__(
        self,
        worker: CommandSink,
        store: ConnectionPerThread,
        umap_config: SettingsFile[UmapUserConfig],
        data_dir: Path,
        encoder: Callable[[], str],
        publish: Publish,
    ) -> None:
        self._worker = worker
        self._store = store
        self.umap_config = umap_config
        self._cache_dir = data_dir / constants.UMAP_CACHE_DIR_NAME
        self._encoder = encoder
        self._publish = publish
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}
        self._build_listeners: list[Callable[[str, str], None]] = []
        self._start_listeners: list[Callable[[str], None]] = []

    # --- settings ---------------------------------------------------------------------------

    def set_umap_config(self, values: dict[str, Any]) -> UmapUserConfig:
        before = self.umap_config.get()
        after = self.umap_config.replace(values)
        if any(getattr(before, name) != getattr(after, name) for name in RESULT_FIELDS):
            shutil.rmtree(self._cache_dir, ignore_errors=True)
        return after

    # --- projections ------------------------------------------------------------------------

    def umap(self, a_start: int, a_end: int, b_start: int, b_end: int) -> dict[str, Any]:
        """``/v1/analysis/umap`` for two ranges of UNIX seconds."""
        for lo, hi, name in ((a_start, a_end, "A"), (b_start, b_end, "B")):
            if hi < lo:
                raise MisoError(422, "invalid_range", f"range {name} ends ({hi}) before it starts ({lo})")
        encoder = self._encoder()
        ranges_ms = (a_start * 1000, a_end * 1000 + 999, b_start * 1000, b_end * 1000 + 999)
        config = self.umap_config.get()
        cache = self._cache_path(a_start, a_end, b_start, b_end, encoder, ranges_ms, config)
        if cache.is_file():
            try:
                return {**json.loads(cache.read_text(encoding="utf-8")), "cached": True}
            except (OSError, ValueError):
                cache.unlink(missing_ok=True)
        request_id = uuid.uuid4().hex
        pending = _Pending()
        with self._lock:
            self._pending[request_id] = pending
        timeout_s = min(600, max(10, config.timeout_secs)) + 30
        try:
            try:
                self._worker.send(
                    ProjectUmap(
                        request_id, encoder, ranges_ms, config.model_dump(), constants.UMAP_MAX_EPOCHS_PER_RANGE
                    )
                )
            except Exception as exc:  # noqa: BLE001
                raise MisoError(503, "worker_unavailable", f"the analysis worker is not running: {exc}") from None
            if not pending.done.wait(timeout_s):
                self._send_quietly(CancelUmap(request_id))
                raise MisoError(504, "umap_timeout", f"the projection did not finish within {timeout_s} s")
        finally:
            with self._lock:
                self._pending.pop(request_id, None)
        if pending.error is not None:
            code, message = pending.error
            if code == "worker_exited":
                raise MisoError(503, code, message)
            return {"error": f"UMAP projection failed: {message}"}
        result = pending.result or {}
        if result.get("points"):
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(cache, json.dumps(result))
        return result

    def _cache_path(
        self, a_start: int, a_end: int, b_start: int, b_end: int, encoder: str, ranges_ms: tuple, config: UmapUserConfig
    ) -> Path:
        markers = [
            EmbeddingRepository(self._store.db()).range_marker(encoder, ranges_ms[0], ranges_ms[1]),
            EmbeddingRepository(self._store.db()).range_marker(encoder, ranges_ms[2], ranges_ms[3]),
        ]
        settings = {name: getattr(config, name) for name in RESULT_FIELDS}
        digest = hashlib.sha256(json.dumps([encoder, markers, settings], sort_keys=True).encode()).hexdigest()[:16]
        return self._cache_dir / f"umap_{a_start}_{a_end}_{b_start}_{b_end}_{digest}.json"

    # --- index builds -----------------------------------------------------------------------

    def request_build(self, scope: str, encoder: str) -> None:
        self._worker.send(BuildIndex(scope, encoder))

    def on_build_finished(self, listener: Callable[[str, str], None]) -> None:
        self._build_listeners.append(listener)

    def on_worker_started(self, listener: Callable[[str], None]) -> None:
        """``listener(encoder)`` each time the worker (re)starts."""
        self._start_listeners.append(listener)

    # --- worker events ----------------------------------------------------------------------

    def handle_event(self, _name: str, event: Any) -> None:
        if isinstance(event, WorkerStarted):
            for listener in self._start_listeners:
                try:
                    listener(self._encoder())
                except Exception:  # noqa: BLE001 - the next build request tries again
                    logger.exception("asking for index builds after the worker started failed")
        elif isinstance(event, UmapProgress):
            self._publish(
                constants.EVENT_UMAP_PROGRESS,
                {"request_id": event.request_id, "stage": event.stage, "fraction": round(event.fraction, 4)},
            )
        elif isinstance(event, (UmapDone, UmapFailed)):
            with self._lock:
                pending = self._pending.get(event.request_id)
            if pending is not None:
                if isinstance(event, UmapDone):
                    pending.result = event.result
                else:
                    pending.error = (event.code, event.message)
                pending.done.set()
        elif isinstance(event, (IndexBuilt, IndexBuildFailed)):
            payload: dict[str, Any] = {"scope": event.scope, "encoder": event.encoder}
            if isinstance(event, IndexBuilt):
                payload.update(status="built", n_items=event.meta.get("n_items"), elapsed_ms=round(event.elapsed_ms))
            else:
                payload.update(status="failed", message=event.message)
            self._publish(constants.EVENT_SEARCH_INDEX, payload)
            for listener in self._build_listeners:
                listener(event.scope, event.encoder)

    def handle_exit(self, _name: str, code: int | None) -> None:
        with self._lock:
            waiting = list(self._pending.values())
        for pending in waiting:
            pending.error = ("worker_exited", f"the analysis worker exited (code {code})")
            pending.done.set()

    def _send_quietly(self, command: Any) -> None:
        try:
            self._worker.send(command)
        except Exception:  # noqa: BLE001
            pass

"""The ``analysis`` worker: search index builds and UMAP projections over stored embeddings.

Both are long CPU jobs (a global Annoy build over a million vectors takes minutes; a UMAP of
10,000 epochs tens of seconds, much of it in numba code that holds the GIL), so they run here
rather than in the server or beside live embedding. Each kind has its own thread, so a
projection never waits behind a build; the main loop only routes commands, which keeps a
cancel prompt. Killing this process mid-build leaves the previous index serving.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Any

from .protocol.analysis import (
    BuildIndex,
    CancelUmap,
    IndexBuildFailed,
    IndexBuilt,
    ProjectUmap,
    UmapDone,
    UmapFailed,
    UmapProgress,
)
from .protocol.base import Shutdown
from .runner import Channel

logger = logging.getLogger("miso.analysis_worker")


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.analysis_worker:run``).

    ``options``: ``database_path``, ``data_dir`` and ``numba_cache_dir`` (compiled UMAP code is
    kept there, so only the first projection after an install pays for compiling it).
    """
    if options.get("numba_cache_dir"):
        os.environ.setdefault("NUMBA_CACHE_DIR", str(options["numba_cache_dir"]))
    data_dir = Path(options["data_dir"])
    builds: queue.Queue[BuildIndex | None] = queue.Queue()
    projections: queue.Queue[ProjectUmap | None] = queue.Queue()
    cancelled: set[str] = set()
    threading.Thread(
        target=_build_loop, args=(channel, builds, options["database_path"], data_dir), daemon=True, name="builds"
    ).start()
    threading.Thread(
        target=_umap_loop, args=(channel, projections, cancelled, options["database_path"]), daemon=True, name="umap"
    ).start()
    try:
        while True:
            command = channel.receive(1.0)
            if isinstance(command, Shutdown):
                break
            if isinstance(command, BuildIndex):
                builds.put(command)
            elif isinstance(command, ProjectUmap):
                projections.put(command)
            elif isinstance(command, CancelUmap):
                cancelled.add(command.request_id)
            elif command is not None:
                logger.warning("analysis worker ignores %s", type(command).__name__)
    except EOFError:
        pass
    logger.info("analysis worker %d exiting", os.getpid())


def _open(database_path: str) -> Any:
    from miso_runtime.store.database import open_database

    return open_database(Path(database_path), run_migrations=False)


def _build_loop(channel: Channel, builds: "queue.Queue[BuildIndex | None]", database_path: str, data_dir: Path) -> None:
    from miso_runtime.search.index_builder import build_scope
    from miso_runtime.store.embeddings import EmbeddingRepository

    embeddings = EmbeddingRepository(_open(database_path))
    while (command := builds.get()) is not None:
        began = time.perf_counter()
        try:
            meta = build_scope(data_dir, embeddings, command.encoder, command.scope)
        except Exception as exc:  # noqa: BLE001 - a failed build must not end the worker
            logger.exception("building the %s index failed", command.scope)
            channel.send(IndexBuildFailed(command.scope, command.encoder, str(exc)))
            continue
        elapsed = (time.perf_counter() - began) * 1000.0
        channel.send(IndexBuilt(command.scope, command.encoder, _meta_dict(meta), elapsed))


def _meta_dict(meta: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(meta)


def _umap_loop(
    channel: Channel, projections: "queue.Queue[ProjectUmap | None]", cancelled: set[str], database_path: str
) -> None:
    # numba and umap-learn are imported with the first projection, not at start-up: most
    # runtimes never project, and every start would pay for the import.
    first = projections.get()
    if first is None:
        return
    projections.put(first)
    from miso_runtime.analysis.umap_job import run_projection
    from miso_runtime.analysis.umap_projection import ProjectionCancelled, ProjectionFailed, warm_up
    from miso_runtime.store.embeddings import EmbeddingRepository
    from miso_runtime.store.labels import LabelRepository

    db = _open(database_path)
    embeddings, labels = EmbeddingRepository(db), LabelRepository(db)
    warm: list[bool] = []

    def prepare() -> None:
        """Compile (or load from numba's disk cache) before the first projection, outside its
        timeout; not at start-up, where most runtimes would pay for it for nothing."""
        if not warm:
            warm.append(True)
            try:
                logger.info("UMAP ready in %.1f s", warm_up())
            except Exception:  # noqa: BLE001 - the projection reports the problem itself
                logger.exception("warming up UMAP failed")

    while (command := projections.get()) is not None:
        request_id = command.request_id
        if request_id in cancelled:
            cancelled.discard(request_id)
            channel.send(UmapFailed(request_id, "cancelled", "the projection was cancelled"))
            continue
        try:
            result = run_projection(
                embeddings,
                labels,
                command.encoder,
                command.ranges_ms,
                command.settings,
                command.limit_per_range,
                progress=lambda stage, fraction, rid=request_id: channel.send(UmapProgress(rid, stage, fraction)),
                should_stop=lambda rid=request_id: rid in cancelled,
                prepare=prepare,
            )
        except ProjectionCancelled:
            channel.send(UmapFailed(request_id, "cancelled", "the projection was cancelled"))
        except ProjectionFailed as exc:
            channel.send(UmapFailed(request_id, "failed", str(exc)))
        except Exception as exc:  # noqa: BLE001
            logger.exception("projection %s failed", request_id)
            channel.send(UmapFailed(request_id, "failed", str(exc)))
        else:
            channel.send(UmapDone(request_id, result))
        cancelled.discard(request_id)

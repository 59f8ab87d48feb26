"""The ``screenshots`` worker: periodic captures of the screen, their OCR text and its vector.

Grabbing, OCR (a Tesseract process per capture, hundreds of ms) and the text model (about
200 MB once loaded) all stay out of the server: the hub only gets a small event per capture.
The loop waits on the command pipe until the next capture is due, so a change of settings or
of the EEG session is seen within a second even between long intervals. Nothing heavy is
imported until the first capture: a runtime whose capture stays off pays only for this process.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .protocol.base import Shutdown
from .protocol.screenshots import ConfigureScreenshots, ScreenshotKept, ScreenshotMetrics, SessionActive
from .runner import Channel

logger = logging.getLogger("miso.screenshot_worker")


def _text_embedder() -> Any:
    from miso_runtime.labels.text_embedder import default_text_embedder

    return default_text_embedder()


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.screenshot_worker:run``).

    ``options``: ``database_path`` and ``screenshots_dir``. Settings arrive as
    ``ConfigureScreenshots`` once the server sees this worker start (capture is off until then).
    """
    # Tesseract's OpenMP threads spin against each other and the other workers: on the 2-core
    # development machine one thread read a capture in about 0.4 s, the default (all cores) in 1.7.
    os.environ.setdefault("OMP_THREAD_LIMIT", "1")
    from miso_runtime.screenshots.pipeline import ScreenshotPipeline
    from miso_runtime.store.database import open_database
    from miso_runtime.store.screenshots import ScreenshotRepository

    repository = ScreenshotRepository(open_database(Path(options["database_path"]), run_migrations=False))
    pipeline = ScreenshotPipeline(Path(options["screenshots_dir"]), repository, _text_embedder)
    try:
        while True:
            command = channel.receive(pipeline.seconds_to_next())
            if isinstance(command, Shutdown):
                break
            if isinstance(command, ConfigureScreenshots):
                pipeline.configure(command.config, command.session_active)
                channel.send(ScreenshotMetrics(pipeline.metrics.to_dict()))
            elif isinstance(command, SessionActive):
                pipeline.set_session_active(command.active)
                channel.send(ScreenshotMetrics(pipeline.metrics.to_dict()))
            elif command is not None:
                logger.warning("screenshot worker ignores %s", type(command).__name__)
            if channel.pending() or not pipeline.due():
                continue
            try:
                kept = pipeline.tick()
            except Exception as exc:  # noqa: BLE001 - the store or the disk failed: counted, and the next tick tries again
                logger.exception("a screenshot capture failed")
                pipeline.metrics.capture_errors += 1
                pipeline.metrics.status, pipeline.metrics.last_error = "error", f"capture failed: {exc}"
                kept = None
            if kept is not None:
                channel.send(ScreenshotKept(**kept))
            channel.send(ScreenshotMetrics(pipeline.metrics.to_dict()))
    except EOFError:
        pass
    finally:
        pipeline.close()
    logger.info("screenshot worker %d exiting", os.getpid())

"""One capture after another, in the ``screenshots`` worker: grab, shrink, drop near-duplicates,
save, read the window and the text, embed it, store the row.

The stages and their costs (each ``*_us`` in the metrics is the last capture's):

1. grab the primary monitor (mss; ``capture_us``), 2. shrink its longest side to ``image_size``
   (``resize_us``), 3. hash it: a capture within a few bits of the last one kept is a
   near-duplicate and is dropped (``drops``) before any costly stage, 4. save it as WebP and read
   the active window (``save_us``), 5. OCR (Tesseract, ``ocr_us``), 6. embed the text with the
   labels' text model (``text_embed_us``), 7. insert the row.

Why one thread and no queue (the daemon hands stages 5-6 to a second thread): the worker is a
process of its own, so a slow OCR delays only the next capture, never the server, and a capture
that comes late is simply taken late (the interval is counted from the previous start). Each
failure is counted, kept in ``last_error`` and logged once when it changes, and the pipeline goes
on: a missing display is ``capture_errors`` and ``status: "error"``, never a crash.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .. import constants
from ..store.screenshots import NewScreenshot, ScreenshotRepository
from . import capture, ocr
from .config import ScreenshotConfig
from .window import ActiveWindow, WindowInfo

logger = logging.getLogger(__name__)


@dataclass
class Metrics:
    """The daemon's ``MetricsSnapshot`` fields, plus ``ocr_errors``, ``status`` and ``last_error``.

    Counters are since the worker started. ``status``: ``disabled``, ``waiting_for_session``
    (``session_only`` and no EEG session records), ``capturing`` or ``error`` (the last capture
    failed; ``last_error`` says why).
    """

    captures: int = 0
    capture_errors: int = 0
    drops: int = 0
    capture_us: int = 0
    ocr_us: int = 0
    resize_us: int = 0
    save_us: int = 0
    capture_total_us: int = 0
    embeds: int = 0
    embed_errors: int = 0
    vision_embed_us: int = 0
    text_embed_us: int = 0
    embed_total_us: int = 0
    queue_depth: int = 0
    last_capture_unix: int = 0
    last_embed_unix: int = 0
    backoff_multiplier: int = 1
    ocr_errors: int = 0
    status: str = "disabled"
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _us(started: float) -> int:
    return int((time.perf_counter() - started) * 1_000_000)


class ScreenshotPipeline:
    """Captures for one data dir; the worker calls :meth:`due` and :meth:`tick`.

    Parameters
    ----------
    screenshots_dir : Path
        ``<data dir>/screenshots``.
    repository : ScreenshotRepository
        Where the rows go (the worker's own connection).
    text_embedder : callable
        Returns the labels' text embedder, called once, at the first capture with text.
    grab : callable, optional
        Returns the screen as an RGB image (default: :func:`capture.grab_screen`).
    """

    def __init__(
        self,
        screenshots_dir: Path,
        repository: ScreenshotRepository,
        text_embedder: Callable[[], Any],
        grab: Callable[[], Any] = capture.grab_screen,
    ) -> None:
        self._dir = screenshots_dir
        self._repository = repository
        self._load_embedder = text_embedder
        self._embedder: Any = None
        self._grab = grab
        self._window = WindowInfo()
        self.config = ScreenshotConfig()
        self.session_active = False
        self.metrics = Metrics()
        self._last_hash: Any = None
        self._last_start: float | None = None

    # --- the schedule -----------------------------------------------------------------------

    def configure(self, config: dict[str, Any], session_active: bool) -> None:
        self.config = ScreenshotConfig.model_validate(config)
        self.session_active = session_active
        self._refresh_status()

    def set_session_active(self, active: bool) -> None:
        self.session_active = active
        self._refresh_status()

    @property
    def gated_status(self) -> str | None:
        """Why nothing is captured now (``disabled``, ``waiting_for_session``), or None."""
        if not self.config.enabled:
            return "disabled"
        if self.config.session_only and not self.session_active:
            return "waiting_for_session"
        return None

    def _refresh_status(self) -> None:
        gated = self.gated_status
        if gated is not None:
            self.metrics.status = gated
            self._last_start = None  # the first capture after the gate opens comes at once
        elif self.metrics.status in ("disabled", "waiting_for_session"):
            self.metrics.status = "capturing"

    def seconds_to_next(self) -> float:
        """Seconds until the next capture is due (the idle poll while gated)."""
        if self.gated_status is not None:
            return constants.SCREENSHOT_IDLE_POLL_S
        if self._last_start is None:
            return 0.0
        wait = self._last_start + self.config.interval_secs - time.monotonic()
        return max(0.0, min(wait, constants.SCREENSHOT_IDLE_POLL_S))

    def due(self) -> bool:
        if self.gated_status is not None:
            return False
        return self._last_start is None or time.monotonic() >= self._last_start + self.config.interval_secs

    # --- one capture ------------------------------------------------------------------------

    def tick(self) -> dict[str, Any] | None:
        """Take one capture; returns ``{timestamp, unix_ts, filename}`` of a kept one, else None."""
        self._last_start = time.monotonic()
        began = time.perf_counter()
        config, metrics = self.config, self.metrics
        try:
            started = time.perf_counter()
            screen = self._grab()
            metrics.capture_us = _us(started)
        except capture.CaptureUnavailable as exc:
            metrics.capture_errors += 1
            self._failed(str(exc))
            return None
        started = time.perf_counter()
        image = capture.fit_longest(screen, config.image_size)
        metrics.resize_us = _us(started)
        digest = capture.perceptual_hash(image)
        if capture.is_near_duplicate(digest, self._last_hash):
            metrics.drops += 1
            self._ok()
            return None
        now = datetime.now(timezone.utc)
        stamp = now.strftime("%Y%m%d%H%M%S")
        filename = f"{stamp[:8]}/{stamp}.webp"
        path = self._dir / filename
        if path.exists():
            return None  # a second capture within the same second: the first one stands
        started = time.perf_counter()
        try:
            size = capture.save_webp(image, path, config.quality)
        except OSError as exc:
            metrics.capture_errors += 1
            self._failed(f"could not save {path}: {exc}")
            return None
        window = self._window.active()
        metrics.save_us = _us(started)
        text = self._ocr(image) if config.ocr_enabled else ""
        vector, model = self._embed(text)
        self._repository.insert(
            NewScreenshot(
                timestamp=int(stamp),
                unix_ts=int(now.timestamp()),
                filename=filename,
                width=image.width,
                height=image.height,
                file_size=size,
                image_size=config.image_size,
                quality=config.quality,
                phash=str(digest),
                app_name=window.app_name,
                window_title=window.window_title,
                ocr_text=text,
                ocr_model=model,
                ocr_vector=vector,
            )
        )
        self._last_hash = digest
        metrics.captures += 1
        metrics.last_capture_unix = int(now.timestamp())
        metrics.capture_total_us = _us(began)
        self._ok()
        return {"timestamp": int(stamp), "unix_ts": int(now.timestamp()), "filename": filename}

    def _ocr(self, image: Any) -> str:
        started = time.perf_counter()
        try:
            return ocr.recognize(image)
        except (ocr.OcrUnavailable, ocr.OcrFailed) as exc:
            self.metrics.ocr_errors += 1
            self._note_error(str(exc))
            return ""
        finally:
            self.metrics.ocr_us = _us(started)

    def _embed(self, text: str) -> tuple[Any, str | None]:
        """The text's vector and its model's name; ``(None, None)`` without text or when it fails."""
        if not text:
            return None, None
        started = time.perf_counter()
        try:
            if self._embedder is None:
                self._embedder = self._load_embedder()
            vector = self._embedder.embed([text])[0]
        except Exception as exc:  # noqa: BLE001 - a capture is kept without its vector
            self.metrics.embed_errors += 1
            self._note_error(f"embedding the OCR text failed: {exc}")
            return None, None
        self.metrics.text_embed_us = self.metrics.embed_total_us = _us(started)
        self.metrics.embeds += 1
        self.metrics.last_embed_unix = int(time.time())
        return vector, str(self._embedder.name)

    def _failed(self, message: str) -> None:
        if self.metrics.status != "error" or self.metrics.last_error != message:
            logger.warning("screenshot capture failed: %s", message)
        self.metrics.status = "error"
        self.metrics.last_error = message

    def _note_error(self, message: str) -> None:
        if self.metrics.last_error != message:
            logger.warning("screenshot: %s", message)
        self.metrics.last_error = message

    def _ok(self) -> None:
        if self.metrics.status == "error":
            logger.info("screenshot capture works again")
        self.metrics.status = "capturing"

    def close(self) -> None:
        self._window.close()


def active_window() -> ActiveWindow:
    """The active window now (for the benchmark and tests: one look, its own connection)."""
    info = WindowInfo()
    try:
        return info.active()
    finally:
        info.close()

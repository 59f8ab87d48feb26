"""Epoch embeddings as the faces see them: the encoder in use, live vectors, re-embedding, weights.

The server owns the settings (which family embeds, how re-embedding is paced), the weights
downloads and the idle loop; the ``embed`` worker owns the encoder and writes the vectors.
This service turns capture events into ``EmbedEpochs`` commands (each finished epoch with its
raw samples), and the worker's events into the daemon's ``/v1/events`` events
(``EegEmbedding``, ``reembed-progress``, ``EmbedWorkerStatus``, ``ExgDownload*``).

Plain ``threading`` only: in the server those primitives are gevent's.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Protocol

from workers.protocol.base import WorkerStarted
from workers.protocol.capture import BoardConnected, CaptureEnded, EpochStored
from workers.protocol.embed import (
    EmbedEpochs,
    EncoderStatus,
    EpochsEmbedded,
    PauseReembed,
    ReembedProgress,
    StartReembed,
    UseEncoder,
)

from ... import constants
from ...errors import MisoError
from ...llm.downloads import CANCELLED, COMPLETED, DOWNLOADING, FAILED, VERIFYING, DownloadManager
from ...settings_files import SettingsFile
from ...store.database import ConnectionPerThread
from ...store.embeddings import EmbeddingRepository, day_start_ms, utc_day
from .catalog import EncoderCatalog, EncoderFamily
from .onnx_encoder import available_providers
from .settings import ExgModelConfig, InferenceDevice, ReembedConfig

logger = logging.getLogger(__name__)

Publish = Callable[..., Any]

#: onnxruntime providers tried for each ``exg-inference-device`` value, best first.
_DEVICE_PROVIDERS: dict[str, tuple[str, ...]] = {
    "auto": ("CUDAExecutionProvider", "ROCMExecutionProvider", "CoreMLExecutionProvider", "DmlExecutionProvider"),
    "gpu": ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider"),
    "mlx": ("CoreMLExecutionProvider",),
    "cpu": (),
}


class CommandSink(Protocol):
    def send(self, command: Any) -> None: ...


def compact_utc(ms: int) -> int:
    """``YYYYMMDDHHmmss`` of a UTC time in ms, as the daemon's ``EegEmbedding.timestamp``."""
    return int(time.strftime("%Y%m%d%H%M%S", time.gmtime(ms / 1000.0)))


class EmbeddingService:
    """The encoder configuration, the embed worker's events, re-embedding and weights downloads."""

    def __init__(
        self,
        worker: CommandSink,
        store: ConnectionPerThread,
        catalog: EncoderCatalog,
        model_config: SettingsFile[ExgModelConfig],
        reembed_config: SettingsFile[ReembedConfig],
        device: SettingsFile[InferenceDevice],
        publish: Publish,
        is_recording: Callable[[], bool],
    ) -> None:
        self._worker = worker
        self._store = store
        self.catalog = catalog
        self.model_config = model_config
        self.reembed_config = reembed_config
        self.device = device
        self._publish = publish
        self._is_recording = is_recording
        self._lock = threading.Lock()
        self._worker_status: EncoderStatus | None = None
        self._worker_up = False
        self._epoch_count = 0
        self._last_embed_ms = 0.0
        self._avg_embed_ms: float | None = None
        self._reembed: dict[str, Any] = {"status": "idle", "total": 0, "done": 0}
        self._reembed_running = False
        self._idle_since = time.monotonic()
        self._idle_checked: tuple[str, int] | None = None
        self._idle_run = False
        self._download: dict[str, Any] | None = None
        self._listeners: list[Callable[[str, list[int]], None]] = []
        self.downloads = DownloadManager(
            catalog.weights_dir,
            self._on_download_event,
            progress_interval_s=constants.EXG_DOWNLOAD_PROGRESS_INTERVAL_S,
            suffix=".onnx",
        )
        self._stop = threading.Event()
        self._idle_thread: threading.Thread | None = None

    @property
    def embeddings(self) -> EmbeddingRepository:
        """The vectors' SQL over this thread's connection (the hub's, or a threadpool thread's)."""
        return EmbeddingRepository(self._store.db())

    def embeddings_in_range(self, encoder: str, start_ms: int, end_ms: int) -> tuple[int, int]:
        """Epochs starting in ``[start_ms, end_ms]`` and how many have a vector of ``encoder`` (blocking SQL)."""
        return self.embeddings.count_in_range(encoder, start_ms, end_ms)

    # --- what embeds ------------------------------------------------------------------------

    def family(self) -> EncoderFamily:
        """The configured family (the built-in one when the configured id left the catalog)."""
        families = self.catalog.families()
        return families.get(self.model_config.get().model_backend) or families[constants.DEFAULT_EXG_FAMILY]

    @property
    def encoder(self) -> str:
        """The versioned encoder name whose vectors search and counts use."""
        return self.family().encoder

    def set_model_config(self, values: dict[str, Any]) -> ExgModelConfig:
        family_id = values.get("model_backend", constants.DEFAULT_EXG_FAMILY)
        families = self.catalog.families()
        if family_id not in families:
            known = ", ".join(sorted(families))
            raise MisoError(422, "unknown_encoder", f"model_backend {family_id!r} is not in the catalog ({known})")
        before = self.encoder
        config = self.model_config.replace(values)
        if self.encoder != before:
            logger.info("encoder switched from %s to %s", before, self.encoder)
            self.load_encoder()
        return config

    def providers(self) -> tuple[str, ...]:
        return _DEVICE_PROVIDERS.get(self.device.get().value, ())

    def set_device(self, value: str) -> InferenceDevice:
        stored = self.device.replace({"value": value})
        self.load_encoder()
        return stored

    def offered_devices(self) -> list[str]:
        return available_providers()

    def load_encoder(self) -> None:
        """Tell the worker which encoder to use (at its start, after a switch, after a download)."""
        family = self.family()
        path = family.weights_path(self.catalog.weights_dir)
        if family.kind == "onnx" and (path is None or not path.is_file()):
            command = UseEncoder(family.encoder, "onnx", None, self.providers())
        else:
            command = UseEncoder(family.encoder, family.kind, str(path) if path else None, self.providers())
        try:
            self._worker.send(command)
        except Exception as exc:  # noqa: BLE001 - the worker restarts and asks again when it is up
            logger.info("embed worker not reachable yet (%s); it loads the encoder when it starts", exc)

    # --- events -----------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[str, list[int]], None]) -> None:
        """``listener(encoder, embedding_ids)`` after vectors were stored (the search tail, label vectors)."""
        self._listeners.append(listener)

    def handle_capture_event(self, _name: str, event: Any) -> None:
        """Capture worker events: finished epochs go to the embed worker; a device pauses re-embedding."""
        if isinstance(event, EpochStored):
            if event.signal_uv is None or event.sample_rate_hz <= 0:
                return
            command = EmbedEpochs(
                event.session_id, [(event.epoch_id, event.start_utc_ms)], event.signal_uv[None], event.sample_rate_hz
            )
            try:
                self._worker.send(command)
            except Exception as exc:  # noqa: BLE001 - re-embedding catches up on the epoch later
                logger.warning("epoch %d not sent to the embed worker: %s", event.epoch_id, exc)
        elif isinstance(event, BoardConnected):
            self._idle_since = None  # type: ignore[assignment]
            self._send_quietly(PauseReembed("device_connected"))
        elif isinstance(event, CaptureEnded):
            self._idle_since = time.monotonic()

    def handle_event(self, _name: str, event: Any) -> None:
        """Embed worker events."""
        if isinstance(event, WorkerStarted):
            with self._lock:
                self._worker_up = True
                self._reembed_running = False
            self.load_encoder()
        elif isinstance(event, EncoderStatus):
            with self._lock:
                self._worker_status = event
            self._publish(
                constants.EVENT_EMBED_WORKER_STATUS,
                {
                    "status": event.status,
                    "backend": self.family().id,
                    "encoder": event.encoder,
                    "dim": event.dim,
                    "providers": list(event.providers),
                    "message": event.message or None,
                    "hnsw_rebuilt": False,
                    "recovered_embeddings": 0,
                },
            )
        elif isinstance(event, EpochsEmbedded):
            self._on_embedded(event)
        elif isinstance(event, ReembedProgress):
            self._on_reembed_progress(event)

    def handle_exit(self, _name: str, code: int | None) -> None:
        with self._lock:
            self._worker_up = False
            self._worker_status = None
            running = self._reembed_running
            self._reembed_running = False
        if running:
            payload = {"status": "error", "message": f"the embed worker exited (code {code})"}
            self._reembed = payload
            self._publish(constants.EVENT_REEMBED_PROGRESS, payload)

    def _on_embedded(self, event: EpochsEmbedded) -> None:
        with self._lock:
            self._last_embed_ms = event.elapsed_ms / max(1, len(event.items))
        for epoch_id, start_ms, embedding_id in event.items:
            with self._lock:
                self._epoch_count += 1
                count = self._epoch_count
            self._publish(
                constants.EVENT_EEG_EMBEDDING,
                {
                    "timestamp": compact_utc(start_ms),
                    "timestamp_ms": start_ms,
                    "timestamp_unix": start_ms // 1000,
                    "dim": event.dim,
                    "epoch": count,
                    "epoch_id": epoch_id,
                    "embedding_id": embedding_id,
                    "session_id": event.session_id,
                    "encoder": event.encoder,
                    "embed_ms": round(event.elapsed_ms / max(1, len(event.items)), 3),
                },
                correlation_id=event.session_id,
            )
        if event.failed:
            logger.warning("embedding of %d epoch(s) failed: %s", len(event.failed), event.message)
        ids = [item[2] for item in event.items]
        if ids:
            for listener in self._listeners:
                listener(event.encoder, ids)

    def _on_reembed_progress(self, event: ReembedProgress) -> None:
        payload = dict(event.payload)
        status = payload.get("status")
        with self._lock:
            if event.avg_embed_ms is not None:
                self._avg_embed_ms = event.avg_embed_ms
            self._reembed_running = status in ("scanning", "started", "running", "loading_encoder")
            if status in ("done", "paused", "error", "idle_done"):
                self._idle_run = False
            if status != "idle_done":
                self._reembed = payload
        self._publish(constants.EVENT_REEMBED_PROGRESS, payload)
        if status in ("running", "done"):
            for listener in self._listeners:
                listener(self.encoder, [])

    # --- re-embedding -----------------------------------------------------------------------

    def trigger_reembed(self, reason: str = "manual") -> dict[str, Any]:
        if self._download is not None and self._download.get("downloading"):
            return {"ok": False, "message": "weights download in progress — wait for it to finish"}
        config = self.reembed_config.get()
        throttle = config.idle_reembed_throttle_ms if reason == "idle" else 0
        try:
            self._worker.send(StartReembed(config.batch_size, config.batch_delay_ms, throttle, reason))
        except Exception as exc:  # noqa: BLE001
            raise MisoError(503, "worker_unavailable", f"the embed worker is not running: {exc}") from None
        with self._lock:
            self._reembed_running = True
        return {"ok": True, "message": "reembed started"}

    def coverage(self, encoder: str) -> list[dict[str, Any]]:
        """Per UTC day, epochs with and without a vector of ``encoder`` (blocking SQL: faces run
        it in the threadpool, with the encoder read on the hub, and hand it to :meth:`estimate`)."""
        return self.embeddings.coverage_by_day(encoder)

    def embeddings_today(self, encoder: str) -> int:
        """Vectors of ``encoder`` whose epoch started today (UTC); blocking SQL."""
        return self.embeddings.count_since(encoder, day_start_ms(utc_day(int(time.time() * 1000))))

    def estimate(self, per_day: list[dict[str, Any]]) -> dict[str, Any]:
        """``/v1/models/estimate-reembed``: what is left for the current encoder, per UTC day."""
        total = sum(day["total"] for day in per_day)
        embedded = sum(day["embedded"] for day in per_day)
        missing = total - embedded
        with self._lock:
            avg = self._avg_embed_ms if self._avg_embed_ms is not None else constants.REEMBED_DEFAULT_EMBED_MS
            reembed = dict(self._reembed)
            idle_run = self._idle_run
            running = self._reembed_running
        idle_s = 0 if self._idle_since is None else int(time.monotonic() - self._idle_since)
        return {
            "total_epochs": total,
            "embedded": embedded,
            "missing": missing,
            "date_dirs": len(per_day),
            "coverage_pct": round(100 * embedded / total) if total else 100,
            "avg_embed_ms": round(avg, 3),
            "eta_secs": round(missing * avg / 1000),
            "per_day": per_day,
            "encoder": self.encoder,
            "idle_reembed": {
                "active": idle_run and running,
                "idle_secs": idle_s,
                "delay_secs": self.reembed_config.get().idle_reembed_delay_secs,
                "total": reembed.get("total", 0),
                "done": reembed.get("done", 0),
                "current_day": reembed.get("date", ""),
            },
        }

    def start_idle_loop(self) -> None:
        self._idle_thread = threading.Thread(target=self._idle_loop, name="idle-reembed", daemon=True)
        self._idle_thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.downloads.shutdown()

    def _idle_loop(self) -> None:
        """Start a background run once no device has been connected for the configured delay."""
        while not self._stop.wait(constants.IDLE_REEMBED_POLL_S):
            try:
                self._idle_check()
            except Exception:  # noqa: BLE001 - the loop must outlive one bad check
                logger.exception("idle re-embedding check failed")

    def _idle_check(self) -> None:
        config = self.reembed_config.get()
        with self._lock:
            busy = self._reembed_running or not self._worker_up or self._worker_status is None
        if not config.idle_reembed_enabled or busy or self._is_recording() or self._idle_since is None:
            return
        if time.monotonic() - self._idle_since < config.idle_reembed_delay_secs:
            return
        # Only look again once something new was stored: a run that left epochs it cannot
        # embed (a recording file gone) must not start over every few seconds.
        marker = (self.encoder, self.embeddings.max_epoch_id())
        if marker == self._idle_checked:
            return
        self._idle_checked = marker
        missing = sum(day["missing"] for day in self.embeddings.coverage_by_day(self.encoder))
        if missing:
            with self._lock:
                self._idle_run = True
            self.trigger_reembed("idle")

    def _send_quietly(self, command: Any) -> None:
        try:
            self._worker.send(command)
        except Exception:  # noqa: BLE001
            pass

    # --- weights ----------------------------------------------------------------------------

    def trigger_download(self) -> dict[str, Any]:
        family = self.family()
        if family.kind != "onnx" or family.url is None:
            return {"ok": False, "message": f"{family.name} is built in: there are no weights to download"}
        path = family.weights_path(self.catalog.weights_dir)
        if path is not None and path.is_file():
            return {"ok": False, "message": "weights already downloaded"}
        if self._download is not None and self._download.get("downloading"):
            return {"ok": False, "message": "download already in progress"}
        try:
            info = self.downloads.start(family.url, family.weights_file, family.sha256)
        except MisoError as exc:
            if exc.code == "conflict":
                return {"ok": False, "message": "download already in progress"}
            raise
        with self._lock:
            self._download = {"id": info.id, "family": family.id, "downloading": True, "progress": 0.0}
        return {"ok": True, "message": "weights download started"}

    def cancel_download(self) -> dict[str, Any]:
        current = self._download
        if current is not None and current.get("downloading"):
            try:
                self.downloads.cancel(current["id"])
            except MisoError:
                pass
        return {"ok": True, "message": "weights download cancellation requested"}

    def _on_download_event(self, _kind: str, info: dict[str, Any]) -> None:
        with self._lock:
            current = self._download
            if current is None or current.get("id") != info["id"]:
                return
            family_id = current["family"]
        state = info["state"]
        total = info.get("bytes_total") or 0
        progress = min(1.0, info["bytes_done"] / total) if total else 0.0
        downloading = state not in (COMPLETED, FAILED, CANCELLED)
        if state == COMPLETED:
            message = "Download complete."
        elif state == CANCELLED:
            message = "Download cancelled."
        elif state == FAILED:
            message = f"Download failed: {info.get('error')}"
        elif state == VERIFYING:
            message = "Verifying sha256…"
        elif state == DOWNLOADING:
            message = f"Downloading {info['file_name']}…"
        else:
            message = f"Waiting to download {info['file_name']}…"
        path = self.catalog.weights_dir / info["file_name"]
        payload = {
            "backend": family_id,
            "downloading": downloading,
            "progress": 1.0 if state == COMPLETED else round(progress, 4),
            "status_msg": message,
            "weights_found": path.is_file(),
            "needs_restart": False,
            "bytes_done": info["bytes_done"],
            "bytes_total": info.get("bytes_total"),
            "error": info.get("error"),
        }
        with self._lock:
            self._download = {**current, **payload, "state": state}
        if state == COMPLETED:
            if self.family().id == family_id:
                self.load_encoder()
            self._publish(constants.EVENT_EXG_DOWNLOAD_COMPLETED, payload)
        elif state in (FAILED, CANCELLED):
            self._publish(constants.EVENT_EXG_DOWNLOAD_FAILED, payload)
        else:
            self._publish(constants.EVENT_EXG_DOWNLOAD_PROGRESS, payload)

    # --- status -----------------------------------------------------------------------------

    def status(self, embeddings_today: int, latest_metrics: dict[str, Any] | None = None) -> dict[str, Any]:
        """``/v1/models/status`` (every field of the daemon's ``EegModelStatus``)."""
        family = self.family()
        path = family.weights_path(self.catalog.weights_dir)
        with self._lock:
            worker = self._worker_status
            download = dict(self._download or {})
            last, avg = self._last_embed_ms, self._avg_embed_ms
            up = self._worker_up
        loaded = worker is not None and worker.status == "ready" and worker.encoder == family.encoder
        return {
            "encoder_loaded": loaded,
            "embed_worker_active": up,
            "encoder_describe": f"{family.name} ({worker.dim} dims)" if loaded and worker else None,
            "weights_found": path is None or path.is_file(),
            "weights_path": str(path) if path else None,
            "downloading_weights": bool(download.get("downloading")),
            "download_progress": float(download.get("progress", 0.0)),
            "download_status_msg": download.get("status_msg"),
            "download_needs_restart": False,
            "download_retry_attempt": 0,
            "download_retry_in_secs": 0,
            "active_model_backend": family.id,
            "encoder": family.encoder,
            "embed_dim": worker.dim if loaded and worker else family.embed_dim,
            "providers": list(worker.providers) if worker else [],
            "last_embed_ms": round(last, 3),
            "avg_embed_ms": round(avg or 0.0, 3),
            "embeddings_today": embeddings_today,
            "daily_db_path": "",
            "daily_hnsw_path": "",
            "latest_metrics": latest_metrics,
        }

"""Messages of the ``embed`` worker: EEG epochs in, embedding vectors (stored in SQLite) out.

Live epochs arrive with their raw samples (``EmbedEpochs``); background re-embedding reads
the recording files itself. Vectors never travel back: the worker writes them to the shared
store and reports which rows it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Command, Event


@dataclass(frozen=True)
class UseEncoder(Command):
    """Load the encoder that embeds from now on.

    ``kind`` is ``spectral`` (built in) or ``onnx`` (``path`` names the model file);
    ``providers`` are the onnxruntime execution providers to try, in order.
    """

    encoder: str
    kind: str
    path: str | None = None
    providers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmbedEpochs(Command):
    """Live epochs of a running session.

    ``signals_uv`` is ``(n_epochs, n_channels, n_samples)`` raw EEG in µV at ``sample_rate_hz``
    (the samples the recording file holds), ``epochs`` the ``(epoch_id, start_utc_ms)`` of each.
    """

    session_id: str
    epochs: list[tuple[int, int]]
    signals_uv: np.ndarray
    sample_rate_hz: float


@dataclass(frozen=True)
class StartReembed(Command):
    """Embed every stored epoch that has no vector of the current encoder, in batches.

    ``batch_size`` epochs per SQLite commit, ``batch_delay_ms`` and ``throttle_ms`` of sleep
    after each batch (``reembed-config``), ``reason`` ``manual`` or ``idle``.
    """

    batch_size: int
    batch_delay_ms: int
    throttle_ms: int
    reason: str = "manual"


@dataclass(frozen=True)
class PauseReembed(Command):
    """Stop the background run before its next batch (live epochs keep being embedded)."""

    reason: str = "device_connected"


@dataclass(frozen=True)
class EncoderStatus(Event):
    """The encoder the worker uses: ``status`` ``ready`` or ``metrics_only`` (none loaded)."""

    encoder: str
    status: str
    dim: int
    kind: str
    providers: tuple[str, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class EpochsEmbedded(Event):
    """Vectors written for live epochs: ``items`` are ``(epoch_id, start_utc_ms, embedding_id)``."""

    session_id: str
    encoder: str
    dim: int
    items: list[tuple[int, int, int]]
    elapsed_ms: float
    failed: list[int] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class ReembedProgress(Event):
    """One ``reembed-progress`` payload (``status``, ``total``, ``done``...), as the contract names them."""

    payload: dict[str, Any]
    avg_embed_ms: float | None = None


@dataclass(frozen=True)
class UseHooks(Command):
    """The hook rules from now on (``HookRule`` dicts), checked against every live epoch."""

    rules: list[dict[str, Any]]


@dataclass(frozen=True)
class LabelsChanged(Command):
    """A label was made, changed or deleted: the hooks' references are rebuilt at the next epoch."""


@dataclass(frozen=True)
class HookFired(Event):
    """A live epoch fired a hook: ``payload`` is the ``hook`` event's, ``log_id`` its log row."""

    payload: dict[str, Any]
    log_id: int

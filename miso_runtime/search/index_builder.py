"""Building the Annoy indices of EEG search from SQLite (runs in the ``analysis`` worker).

A build reads every vector of one encoder (one UTC day's, or all for the global index),
remembers the largest row id it saw (the watermark: rows above it are searched exactly until
the next build) and writes a new index beside the old one, swapped in atomically by
:func:`~miso_runtime.search.vector_index.build_index`. A build killed half way leaves the old
index serving.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from .. import constants
from ..store.embeddings import DAY_MS, EmbeddingRepository, utc_day
from .vector_index import IndexMeta, build_index

logger = logging.getLogger(__name__)


def encoder_dir(data_dir: Path, encoder: str) -> Path:
    """Where one encoder's indices live (its name made a plain folder name)."""
    return data_dir / constants.SEARCH_INDEX_DIR_NAME / re.sub(r"[^A-Za-z0-9._-]", "_", encoder)


def scope_dir(data_dir: Path, encoder: str, scope: str) -> Path:
    """``global`` or ``day:YYYYMMDD`` -> its index folder."""
    base = encoder_dir(data_dir, encoder)
    if scope == "global":
        return base / "global"
    kind, _, day = scope.partition(":")
    if kind != "day" or not re.fullmatch(r"\d{8}", day):
        raise ValueError(f"unknown index scope {scope!r}")
    return base / "days" / day


def _days_of(start_ms: np.ndarray) -> list[str]:
    """The UTC days (``YYYYMMDD``) the vectors fall on, so a search names them without a scan."""
    return [utc_day(int(day) * DAY_MS) for day in np.unique(start_ms // DAY_MS)]


def build_scope(data_dir: Path, embeddings: EmbeddingRepository, encoder: str, scope: str) -> IndexMeta:
    """Build one index from the store and swap it in; returns what was built."""
    day = None if scope == "global" else scope.partition(":")[2]
    rows = embeddings.after(encoder, 0, day=day)
    watermark = int(rows.ids.max()) if len(rows) else embeddings.max_id(encoder) if day is None else 0
    logger.info("building %s index of %s: %d vectors", scope, encoder, len(rows))
    return build_index(
        scope_dir(data_dir, encoder, scope),
        rows.ids,
        rows.vectors,
        encoder=encoder,
        watermark=watermark,
        extra={"scope": scope, "day": day, "days": _days_of(rows.start_ms)},
    )

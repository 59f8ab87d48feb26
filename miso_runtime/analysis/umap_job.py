"""One Brain Nebula projection as the ``analysis`` worker runs it: load, project, answer.

The worker reads the two ranges' vectors itself (the server would only pass them through), with
the labels that cover each epoch, and hands them to
:func:`~miso_runtime.analysis.umap_projection.project`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import numpy as np

from .. import constants
from ..store.embeddings import EmbeddingRepository
from ..store.labels import LabelRepository
from .umap_projection import UmapSettings, empty_answer, evenly_subsample, project

logger = logging.getLogger(__name__)


def run_projection(
    embeddings: EmbeddingRepository,
    labels: LabelRepository,
    encoder: str,
    ranges_ms: tuple[int, int, int, int],
    settings: dict[str, Any],
    limit_per_range: int,
    progress: Callable[[str, float], None],
    should_stop: Callable[[], bool],
    prepare: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """The ``/v1/analysis/umap`` answer for two ranges (UNIX ms, inclusive)."""
    a_start, a_end, b_start, b_end = ranges_ms
    total_a, _ = embeddings.count_in_range(encoder, a_start, a_end)
    total_b, _ = embeddings.count_in_range(encoder, b_start, b_end)
    rows_a = embeddings.in_range(encoder, a_start, a_end)
    rows_b = embeddings.in_range(encoder, b_start, b_end)
    n_a, n_b = len(rows_a), len(rows_b)
    if total_a + total_b == 0:
        return empty_answer("no_epochs", n_a, n_b, total_a, total_b)
    if n_a + n_b == 0:
        return empty_answer(
            f"no_embeddings: none of the {total_a + total_b} epochs has a {encoder} vector yet", 0, 0, total_a, total_b
        )
    if n_a + n_b < constants.UMAP_MIN_EMBEDDINGS:
        least = constants.UMAP_MIN_EMBEDDINGS
        reason = f"too_few_embeddings: only {n_a + n_b} embeddings available (need at least {least})"
        return empty_answer(reason, n_a, n_b, total_a, total_b)
    # Thinned here (the labels of only the kept epochs are looked up); ``totals`` lets the
    # answer say how many each range had.
    keep_a = evenly_subsample(n_a, limit_per_range)
    keep_b = evenly_subsample(n_b, limit_per_range)
    utc_a = rows_a.start_ms[keep_a] // 1000
    utc_b = rows_b.start_ms[keep_b] // 1000
    covering = labels.covering(sorted(set(np.concatenate([utc_a, utc_b]).tolist())))

    def first_label(t: int) -> str | None:
        found = covering.get(int(t)) or []
        return found[0].text if found else None

    prepare()  # compiles UMAP's code the first time: only when there is something to project
    answer = project(
        np.asarray(rows_a.vectors[keep_a], dtype=np.float32),
        np.asarray(rows_b.vectors[keep_b], dtype=np.float32),
        utc_a,
        utc_b,
        [first_label(t) for t in utc_a],
        [first_label(t) for t in utc_b],
        UmapSettings.from_config(settings),
        progress=progress,
        should_stop=should_stop,
        max_per_range=limit_per_range,
        totals=(n_a, n_b),
    )
    answer.setdefault("total_a", total_a)
    answer.setdefault("total_b", total_b)
    answer["encoder"] = encoder
    return answer

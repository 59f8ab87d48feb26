"""The skill-daemon's sleep rule: fixed thresholds on each stored epoch's relative band powers.

Kept for parity with the daemon (``POST /v1/analysis/sleep`` answers exactly what it would with
``method: "thresholds"``) and for recordings YASA cannot stage: naps shorter than a few 30 s
epochs, or sessions whose recording file is gone while their epochs remain. It is not a
validated stager; ``docs/sleep-staging.md`` says why YASA is the default.

The rule (daemon commit bfe84a9, ``classify_sleep`` in ``crates/skill-history/src/cache.rs``),
applied to every stored epoch on its own, first match wins. ``rd``, ``rt``, ``ra`` and ``rb`` are
the channel-mean relative delta, theta, alpha and beta powers (fractions 0-1); a missing value
counts as 0, and an epoch whose delta and theta are both 0 is skipped:

=====================================================  =====  =====
condition                                              stage  code
=====================================================  =====  =====
``ra > 0.30 or rb > 0.30``                             Wake   0
``rt > 0.30 and ra < 0.15 and rd < 0.45``              REM    5
``rd > 0.50``                                          N3     3
``rt > 0.25 and rd < 0.50``                            N1     1
otherwise                                              N2     2
=====================================================  =====  =====

``epoch_secs`` is the median (the upper one of an even count, as the daemon indexes
``gaps[len / 2]``) of the positive gaps under 30 s between consecutive epochs' whole UNIX
seconds, or 2.5 s when there is no such gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .. import constants

#: Stored with results of this method; bump it when the rule changes.
THRESHOLDS_VERSION = "skill-daemon-bfe84a9"


def classify(rd: float, rt: float, ra: float, rb: float) -> int:
    """Stage code of one epoch by the daemon's rule (relative powers as fractions)."""
    if ra > 0.30 or rb > 0.30:
        return constants.SLEEP_STAGE_WAKE
    if rt > 0.30 and ra < 0.15 and rd < 0.45:
        return constants.SLEEP_STAGE_REM
    if rd > 0.50:
        return constants.SLEEP_STAGE_N3
    if rt > 0.25 and rd < 0.50:
        return constants.SLEEP_STAGE_N1
    return constants.SLEEP_STAGE_N2


def median_gap_epoch_secs(utc_s: np.ndarray) -> float:
    """The daemon's ``epoch_secs``: the upper median of positive gaps under 30 s, else 2.5 s."""
    if utc_s.size < 2:
        return constants.SLEEP_DEFAULT_EPOCH_SECS
    gaps = np.diff(utc_s.astype(np.float64))
    gaps = np.sort(gaps[(gaps > 0) & (gaps < 30.0)])
    if gaps.size == 0:
        return constants.SLEEP_DEFAULT_EPOCH_SECS
    return float(gaps[gaps.size // 2])


@dataclass(frozen=True)
class ThresholdEpoch:
    utc: int
    stage: int
    rel_delta: float
    rel_theta: float
    rel_alpha: float
    rel_beta: float


def stage_epochs(
    rows: Iterable[tuple[int, float | None, float | None, float | None, float | None]],
) -> list[ThresholdEpoch]:
    """Stage ``(utc_s, rel_delta, rel_theta, rel_alpha, rel_beta)`` rows, oldest first.

    Rows are sorted by their whole UNIX second (a stable sort, as the daemon's ``sort_by_key``),
    so rows of one second keep their stored order.
    """
    kept: list[ThresholdEpoch] = []
    for utc, rd, rt, ra, rb in rows:
        d, t, a, b = (0.0 if v is None else float(v) for v in (rd, rt, ra, rb))
        if d == 0.0 and t == 0.0:
            continue
        kept.append(ThresholdEpoch(int(utc), classify(d, t, a, b), d, t, a, b))
    kept.sort(key=lambda epoch: epoch.utc)
    return kept

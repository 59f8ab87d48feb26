"""Standard sleep statistics of one hypnogram, so every view reports the same numbers.

The hypnogram uses the skill-daemon's stage codes (see :data:`STAGE_CODES`); one code covers
one epoch of ``epoch_secs`` seconds and the epochs are in time order, assumed to cover time in
bed ("lights out" to "lights on") without holes. The definitions follow the AASM scoring manual
(Iber 2007) as YASA implements them, except where noted:

===========================  ============================================================================
Key                          Definition (durations in minutes, percents in %, both rounded to 2 decimals)
===========================  ============================================================================
``time_in_bed_min``          TIB: all epochs × ``epoch_secs`` / 60.
``sleep_period_min``         SPT: first to last sleep epoch (any non-wake stage), both included.
``total_sleep_time_min``     TST: epochs of N1 + N2 + N3 + REM.
``sleep_efficiency_pct``     SE: TST / TIB × 100; 0 when TIB is 0.
``sleep_onset_latency_min``  SOL: start of the first epoch to the start of the first sleep epoch;
                             ``None`` when never asleep.
``rem_latency_min``          Sleep onset to the start of the first REM epoch (AASM). YASA's ``Lat_REM``
                             is from the start of the recording, i.e. SOL + this; ``None`` when never
                             asleep or no REM.
``waso_min``                 WASO: wake epochs inside SPT (after sleep onset, before the final
                             awakening); 0 when never asleep.
``awakenings``               Count of sleep→wake transitions, the final awakening included (as the
                             skill-daemon's ``analyze_sleep_stages`` counts it).
``transitions``              Count of consecutive epoch pairs whose stages differ.
``stages``                   ``{"wake"|"n1"|"n2"|"n3"|"rem": {"minutes", "percent"}}``; percent of
                             N1..REM is of TST (clinical convention, 0 when TST is 0), wake's is of TIB.
===========================  ============================================================================

An empty hypnogram gives 0 for every duration, percent and count, and ``None`` latencies.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np

from .. import constants

#: Stage code of the skill-daemon → short name used as key in :func:`sleep_statistics`' ``stages``.
#: There is no code 4 (the daemon skipped the old R&K "S4").
STAGE_CODES: dict[int, str] = {
    constants.SLEEP_STAGE_WAKE: "wake",
    constants.SLEEP_STAGE_N1: "n1",
    constants.SLEEP_STAGE_N2: "n2",
    constants.SLEEP_STAGE_N3: "n3",
    constants.SLEEP_STAGE_REM: "rem",
}
WAKE = constants.SLEEP_STAGE_WAKE
REM = constants.SLEEP_STAGE_REM

_SECONDS_PER_MINUTE = 60.0


def _round(value: float) -> float:
    """Round to 2 decimals and return a plain float (JSON-friendly, no NumPy scalar)."""
    return round(float(value), 2)


def check_epoch_secs(epoch_secs: float) -> float:
    """Return ``epoch_secs`` as a float; raise ValueError unless it is a positive, finite number of seconds."""
    if not isinstance(epoch_secs, numbers.Real) or isinstance(epoch_secs, bool):
        raise ValueError(f"epoch_secs must be a number of seconds, got {epoch_secs!r}")
    secs = float(epoch_secs)
    if not (math.isfinite(secs) and secs > 0):
        raise ValueError(f"epoch_secs must be a positive, finite number of seconds, got {epoch_secs!r}")
    return secs


def validate_stages(stages: Sequence[int]) -> np.ndarray:
    """Return ``stages`` as a 1-D int array; raise ValueError on any code not in :data:`STAGE_CODES`.

    Shared by the statistics and the hypnogram picture so both reject the same input.
    """
    arr = np.asarray(stages)
    if arr.ndim != 1:
        raise ValueError(f"stages must be a flat sequence of stage codes, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"stages must be integer stage codes, got dtype {arr.dtype}")
    known = np.isin(arr, list(STAGE_CODES))
    if not known.all():
        bad = sorted({v.item() for v in arr[~known]})
        raise ValueError(f"unknown stage codes {bad}; expected one of {sorted(STAGE_CODES)}")
    return arr.astype(np.int64)


def sleep_statistics(stages: Sequence[int], epoch_secs: float) -> dict[str, Any]:
    """Compute the standard sleep statistics of a hypnogram (definitions in the module docstring).

    ``stages``: stage codes in time order, one per epoch. ``epoch_secs``: epoch length in seconds
    (30 for clinical scoring, smaller for the daemon's live staging). Raises ValueError on unknown
    codes or a non-positive / non-finite ``epoch_secs``.
    """
    min_per_epoch = check_epoch_secs(epoch_secs) / _SECONDS_PER_MINUTE
    arr = validate_stages(stages)

    n_epochs = int(arr.size)
    is_sleep = arr != WAKE
    sleep_idx = np.flatnonzero(is_sleep)
    counts = {name: int(np.count_nonzero(arr == code)) for code, name in STAGE_CODES.items()}
    tst_epochs = int(sleep_idx.size)

    if tst_epochs:
        onset, final = int(sleep_idx[0]), int(sleep_idx[-1])
        spt_epochs = final - onset + 1
        waso_epochs = spt_epochs - tst_epochs  # every non-sleep epoch inside SPT is wake
        sol_min: float | None = _round(onset * min_per_epoch)
        rem_idx = np.flatnonzero(arr == REM)
        rem_latency_min = _round((int(rem_idx[0]) - onset) * min_per_epoch) if rem_idx.size else None
    else:
        spt_epochs = waso_epochs = 0
        sol_min = rem_latency_min = None

    prev, nxt = arr[:-1], arr[1:]
    awakenings = int(np.count_nonzero((prev != WAKE) & (nxt == WAKE)))
    transitions = int(np.count_nonzero(prev != nxt))

    def percent(count: int, of: int) -> float:
        return _round(100.0 * count / of) if of else 0.0

    stage_stats = {
        name: {
            "minutes": _round(counts[name] * min_per_epoch),
            "percent": percent(counts[name], n_epochs if code == WAKE else tst_epochs),
        }
        for code, name in STAGE_CODES.items()
    }
    return {
        "time_in_bed_min": _round(n_epochs * min_per_epoch),
        "sleep_period_min": _round(spt_epochs * min_per_epoch),
        "total_sleep_time_min": _round(tst_epochs * min_per_epoch),
        "sleep_efficiency_pct": percent(tst_epochs, n_epochs),
        "sleep_onset_latency_min": sol_min,
        "rem_latency_min": rem_latency_min,
        "waso_min": _round(waso_epochs * min_per_epoch),
        "awakenings": awakenings,
        "transitions": transitions,
        "stages": stage_stats,
    }

"""Sleep statistics: hand-worked hypnograms, then a cross-check against YASA's definitions.

Codes: 0 Wake, 1 N1, 2 N2, 3 N3, 5 REM. At 30 s epochs one epoch is 0.5 min.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from miso_runtime.sleep.statistics import sleep_statistics

W, N1, N2, N3, R = 0, 1, 2, 3, 5


def _stage(minutes: float, percent: float) -> dict[str, float]:
    return {"minutes": minutes, "percent": percent}


def test_empty_hypnogram_is_all_zero_with_no_latencies():
    assert sleep_statistics([], 30) == {
        "time_in_bed_min": 0.0,
        "sleep_period_min": 0.0,
        "total_sleep_time_min": 0.0,
        "sleep_efficiency_pct": 0.0,
        "sleep_onset_latency_min": None,
        "rem_latency_min": None,
        "waso_min": 0.0,
        "awakenings": 0,
        "transitions": 0,
        "stages": {name: _stage(0.0, 0.0) for name in ("wake", "n1", "n2", "n3", "rem")},
    }


def test_never_asleep():
    # 4 wake epochs × 0.5 min = 2.0 min in bed, all of it wake (100 % of TIB); no sleep at all,
    # so SPT = TST = WASO = 0, latencies undefined, no awakening and no transition.
    assert sleep_statistics([W, W, W, W], 30) == {
        "time_in_bed_min": 2.0,
        "sleep_period_min": 0.0,
        "total_sleep_time_min": 0.0,
        "sleep_efficiency_pct": 0.0,
        "sleep_onset_latency_min": None,
        "rem_latency_min": None,
        "waso_min": 0.0,
        "awakenings": 0,
        "transitions": 0,
        "stages": {
            "wake": _stage(2.0, 100.0),
            "n1": _stage(0.0, 0.0),
            "n2": _stage(0.0, 0.0),
            "n3": _stage(0.0, 0.0),
            "rem": _stage(0.0, 0.0),
        },
    }


def test_no_rem():
    # idx:    0  1   2   3   4   5   6   7
    hypno = [W, N1, N2, N2, N3, N3, N2, W]
    # TIB 8 × 0.5 = 4.0; sleep idx 1..6 → SPT 6 × 0.5 = 3.0; TST 6 × 0.5 = 3.0; SE 6/8 = 75 %.
    # SOL = 1 epoch = 0.5; no REM → None; no wake inside 1..6 → WASO 0.
    # awakenings: N2→W at 6→7 = 1.  transitions: W-N1, N1-N2, N2-N3, N3-N2, N2-W = 5.
    # wake 2 ep = 1.0 min, 2/8 = 25 % of TIB; N1 1 ep = 0.5, 1/6 = 16.67 %; N2 3 ep = 1.5, 3/6 = 50 %;
    # N3 2 ep = 1.0, 2/6 = 33.33 %.
    assert sleep_statistics(hypno, 30) == {
        "time_in_bed_min": 4.0,
        "sleep_period_min": 3.0,
        "total_sleep_time_min": 3.0,
        "sleep_efficiency_pct": 75.0,
        "sleep_onset_latency_min": 0.5,
        "rem_latency_min": None,
        "waso_min": 0.0,
        "awakenings": 1,
        "transitions": 5,
        "stages": {
            "wake": _stage(1.0, 25.0),
            "n1": _stage(0.5, 16.67),
            "n2": _stage(1.5, 50.0),
            "n3": _stage(1.0, 33.33),
            "rem": _stage(0.0, 0.0),
        },
    }


def test_waso_in_the_middle_and_final_awakening():
    # idx:    0  1  2   3   4  5  6   7  8  9
    hypno = [W, W, N1, N2, W, W, N2, R, R, W]
    # TIB 10 × 0.5 = 5.0. Sleep idx 2, 3, 6, 7, 8 → onset 2, final 8: SPT 7 ep = 3.5; TST 5 ep = 2.5;
    # SE 5/10 = 50 %. SOL 2 ep = 1.0. First REM idx 7: REM latency (7 - 2) ep = 2.5 (from onset).
    # WASO: wake idx 4, 5 inside 2..8 = 2 ep = 1.0; the final wake at idx 9 is after SPT, not WASO.
    # awakenings: N2→W (3→4) and REM→W (8→9, the final awakening) = 2.
    # transitions: W-N1, N1-N2, N2-W, W-N2, N2-R, R-W = 6 (W-W, W-W, R-R are not).
    # wake idx 0, 1, 4, 5, 9 = 5 ep = 2.5, 5/10 = 50 % of TIB; N1 1 ep = 0.5, 1/5 = 20 %; N2 2 ep = 1.0, 40 %;
    # REM 2 ep = 1.0, 40 %.
    assert sleep_statistics(hypno, 30) == {
        "time_in_bed_min": 5.0,
        "sleep_period_min": 3.5,
        "total_sleep_time_min": 2.5,
        "sleep_efficiency_pct": 50.0,
        "sleep_onset_latency_min": 1.0,
        "rem_latency_min": 2.5,
        "waso_min": 1.0,
        "awakenings": 2,
        "transitions": 6,
        "stages": {
            "wake": _stage(2.5, 50.0),
            "n1": _stage(0.5, 20.0),
            "n2": _stage(1.0, 40.0),
            "n3": _stage(0.0, 0.0),
            "rem": _stage(1.0, 40.0),
        },
    }


def test_epoch_of_2_5_seconds():
    # blocks: W idx 0-3, N1 4-5, N2 6-11, REM 12-15, W 16-17, N2 18-21, W 22-23 (24 epochs of 2.5 s).
    hypno = [W] * 4 + [N1] * 2 + [N2] * 6 + [R] * 4 + [W] * 2 + [N2] * 4 + [W] * 2
    # TIB 24 × 2.5 s = 60 s = 1.0 min. Onset 4, final 21: SPT 18 ep = 45 s = 0.75 min.
    # TST 2 + 6 + 4 + 4 = 16 ep = 40 s = 0.667 → 0.67; SE 16/24 = 66.67 %.
    # SOL 4 ep = 10 s = 0.167 → 0.17. REM latency (12 - 4) ep = 20 s = 0.333 → 0.33.
    # WASO idx 16-17 = 5 s = 0.083 → 0.08. awakenings REM→W, N2→W = 2.
    # transitions W-N1, N1-N2, N2-R, R-W, W-N2, N2-W = 6.
    # wake 8 ep = 20 s = 0.33, 8/24 = 33.33 %; N1 2 ep = 5 s = 0.08, 2/16 = 12.5 %;
    # N2 10 ep = 25 s = 0.417 → 0.42, 10/16 = 62.5 %; REM 4 ep = 10 s = 0.17, 4/16 = 25 %.
    assert sleep_statistics(hypno, 2.5) == {
        "time_in_bed_min": 1.0,
        "sleep_period_min": 0.75,
        "total_sleep_time_min": 0.67,
        "sleep_efficiency_pct": 66.67,
        "sleep_onset_latency_min": 0.17,
        "rem_latency_min": 0.33,
        "waso_min": 0.08,
        "awakenings": 2,
        "transitions": 6,
        "stages": {
            "wake": _stage(0.33, 33.33),
            "n1": _stage(0.08, 12.5),
            "n2": _stage(0.42, 62.5),
            "n3": _stage(0.0, 0.0),
            "rem": _stage(0.17, 25.0),
        },
    }


def test_asleep_from_the_first_epoch_into_rem():
    # REM at idx 0 is sleep onset itself: SOL 0 and REM latency 0; REM→W at 1→2 is one awakening.
    # SPT = TST = 2 ep = 1.0; TIB 1.5; SE 2/3 = 66.67 %; no WASO (the wake is after the final sleep).
    stats = sleep_statistics(np.array([R, R, W]), 30)
    assert stats["sleep_onset_latency_min"] == 0.0
    assert stats["rem_latency_min"] == 0.0
    assert stats["awakenings"] == 1
    assert stats["transitions"] == 1
    assert stats["sleep_period_min"] == stats["total_sleep_time_min"] == 1.0
    assert stats["time_in_bed_min"] == 1.5
    assert stats["sleep_efficiency_pct"] == 66.67
    assert stats["waso_min"] == 0.0
    assert stats["stages"]["rem"] == _stage(1.0, 100.0)


def test_plain_python_types_come_back():
    stats = sleep_statistics((W, N2, R), 30.0)
    assert type(stats["time_in_bed_min"]) is float
    assert type(stats["awakenings"]) is int
    assert type(stats["stages"]["n2"]["percent"]) is float


@pytest.mark.parametrize("stages", [[W, 4], [W, 7], [-1, N2], [1.5], ["W", "N2"]])
def test_unknown_stage_codes_raise(stages):
    with pytest.raises(ValueError):
        sleep_statistics(stages, 30)


@pytest.mark.parametrize("epoch_secs", [0, -30, math.nan, math.inf, "30", None])
def test_bad_epoch_length_raises(epoch_secs):
    with pytest.raises(ValueError):
        sleep_statistics([W, N2], epoch_secs)


# --- Cross-check against YASA 0.8.1 -----------------------------------------------------------
#
# yasa.sleep_statistics(hypno, sf_hyp) (deprecated in 0.8 in favour of yasa.Hypnogram, hence the
# FutureWarning filter) takes integer codes 0 W, 1 N1, 2 N2, 3 N3, 4 REM, so our 5 maps to 4.
# It returns minutes for TIB, SPT, WASO, TST, N1, N2, N3, REM, NREM, SOL, Lat_* and percents for
# %N1..%REM, %NREM (of TST), SE (TST/TIB) and SME (TST/SPT). Definitions that coincide with ours:
#   TIB   = len × epoch                           ↔ time_in_bed_min
#   SPT   = first..last sleep epoch inclusive      ↔ sleep_period_min
#   WASO  = wake epochs inside SPT                 ↔ waso_min
#   TST   = N1+N2+N3+REM epochs inside SPT (= all sleep epochs, SPT spans all of them)
#                                                  ↔ total_sleep_time_min
#   N1..REM minutes, %N1..%REM of TST              ↔ stages[...]["minutes" / "percent"]
#   SOL   = index of the first sleep epoch         ↔ sleep_onset_latency_min
#   SE    = TST / TIB × 100                        ↔ sleep_efficiency_pct
# REM latency differs on purpose: YASA's Lat_REM is from the start of the recording (its docstring
# says the AASM value is Lat_REM - SOL); ours is the AASM one from sleep onset, so ours + SOL is
# compared with Lat_REM. YASA has no wake minutes (we check wake = TIB - TST, which holds without
# artefact/unscored epochs) and no awakening / transition counts, so those are not compared.
# Ours is rounded to 2 decimals, hence the tolerance (twice that for the sum of two rounded values).

_TOL = 0.005 + 1e-9


def _night(seed: int) -> list[int]:
    """A random hypnogram of runs of random stages, 2..900 epochs, sometimes starting awake."""
    rng = np.random.default_rng(seed)
    stages: list[int] = [W] * int(rng.integers(0, 40))
    target = int(rng.integers(2, 900))
    while len(stages) < target:
        stages += [int(rng.choice([W, N1, N2, N3, R]))] * int(rng.integers(1, 30))
    return stages


_HAND_MADE = [
    [W, W, N1, N1, N1, N2, N2, N2, N3, N3, N3, N2, N3, N3, R, R, R, R, W, W],  # YASA's docstring example
    [W, N1, N2, N2, N3, N3, N2, W],
    [W, W, N1, N2, W, W, N2, R, R, W],
    [R, R, W],
    [N2, N2],
]


def _yasa_stats(yasa, hypno: list[int], epoch_secs: float) -> dict[str, float]:
    coded = np.array([4 if s == R else s for s in hypno])
    return yasa.sleep_statistics(coded, sf_hyp=1.0 / epoch_secs)


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize(
    ("hypno", "epoch_secs"),
    [(h, 30.0) for h in _HAND_MADE]
    + [([W] * 4 + [N1] * 2 + [N2] * 6 + [R] * 4 + [W] * 2 + [N2] * 4 + [W] * 2, 2.5)]
    + [(_night(seed), 30.0) for seed in range(12)]
    + [(_night(100 + seed), 5.0) for seed in range(4)],
)
def test_matches_yasa_where_definitions_coincide(hypno, epoch_secs):
    yasa = pytest.importorskip("yasa")
    theirs = _yasa_stats(yasa, hypno, epoch_secs)
    ours = sleep_statistics(hypno, epoch_secs)

    def close(value: float, expected: float, tol: float = _TOL) -> None:
        assert value == pytest.approx(expected, abs=tol)

    close(ours["time_in_bed_min"], theirs["TIB"])
    close(ours["sleep_period_min"], theirs["SPT"])
    close(ours["total_sleep_time_min"], theirs["TST"])
    close(ours["sleep_efficiency_pct"], theirs["SE"])
    for name, key in (("n1", "N1"), ("n2", "N2"), ("n3", "N3"), ("rem", "REM")):
        close(ours["stages"][name]["minutes"], theirs[key])
    close(ours["stages"]["wake"]["minutes"], theirs["TIB"] - theirs["TST"])
    if any(s != W for s in hypno):
        close(ours["waso_min"], theirs["WASO"])
        close(ours["sleep_onset_latency_min"], theirs["SOL"])
        for name, key in (("n1", "%N1"), ("n2", "%N2"), ("n3", "%N3"), ("rem", "%REM")):
            close(ours["stages"][name]["percent"], theirs[key])
    if R in hypno:
        close(ours["sleep_onset_latency_min"] + ours["rem_latency_min"], theirs["Lat_REM"], 2 * _TOL)
    else:
        assert ours["rem_latency_min"] is None and math.isnan(theirs["Lat_REM"])


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_never_asleep_yasa_says_nan_where_we_say_none_or_zero():
    # Without sleep YASA leaves WASO, SOL, Lat_REM and the stage percents undefined (NaN); we report
    # None for the latencies (undefined) and 0 for WASO and the percents (nothing to count), so the
    # JSON stays numeric where a number is meaningful. TIB, SPT, TST and SE agree.
    yasa = pytest.importorskip("yasa")
    theirs = _yasa_stats(yasa, [W, W, W], 30.0)
    ours = sleep_statistics([W, W, W], 30.0)
    assert (ours["time_in_bed_min"], ours["sleep_period_min"], ours["total_sleep_time_min"]) == (
        theirs["TIB"],
        theirs["SPT"],
        theirs["TST"],
    )
    assert ours["sleep_efficiency_pct"] == theirs["SE"] == 0.0
    assert math.isnan(theirs["WASO"]) and ours["waso_min"] == 0.0
    assert math.isnan(theirs["SOL"]) and ours["sleep_onset_latency_min"] is None
    assert math.isnan(theirs["Lat_REM"]) and ours["rem_latency_min"] is None
    assert math.isnan(theirs["%N2"]) and ours["stages"]["n2"]["percent"] == 0.0

"""Synthetic overnight EEG with a known hypnogram, for tests and benchmarks of automatic sleep staging.

``synthetic_night(hours)`` returns a multi-channel EEG record in µV together with the scripted stage of
every 30 s epoch.  The signal is built so that YASA's EEG-only classifier (``yasa.SleepStaging``, trained
on real C4-M1 polysomnography) reads it as a plausible night: every stage is present and predicted, and
the prediction agrees with the script on most epochs.  The shared sources and events are drawn from
``np.random.default_rng(seed)`` and channel ``c``'s gains and noise from ``np.random.default_rng([seed, c + 1])``,
so a seed always gives the same record, and a channel is the same whatever ``n_channels`` is.

Hypnogram
---------
The night is a whole number of 30 s epochs (``round(hours * 120)``).  It opens with wake (10 % of the
night, at most 15 min), ends with wake (5 %, at most 10 min) and fills the rest with
``n = max(1, round(sleep_min / 90))`` equal cycles (about 90 min; a 2 h night has one cycle of about
100 min).  Cycle ``k`` sits at relative position ``p = k / (n - 1)`` of the night (``p = 0.35`` when there
is a single cycle) and runs N1 -> N2 -> N3 -> N2 -> REM:

* N1: 7 min in the first cycle (sleep onset), 4 min in later ones;
* N3: ``0.40 * (1 - p) ** 1.5`` of the cycle (36 min in the first cycle of an 8 h night, none in the
  last), placed after 60 % of the cycle's N2;
* REM: ``0.12 + 0.25 * p`` of the cycle (11 min in the first cycle, 34 min in the last);
* N2: the remainder;
* brief awakenings: 3 min of wake (then N1) after REM in every second cycle but the last, and a 1 min
  awakening in the middle of the last cycle's N2 when there are three cycles or more.

Cycles shorter than 90 min scale their N1 and awakenings down in proportion.  An 8 h night holds 5 cycles
(about 7 % wake, 5 % N1, 49 % N2, 16 % N3, 23 % REM); a 2 h night holds one cycle with every stage, and so
does any night from 0.5 h (shorter ones lose stages).  The script depends on ``hours`` only, not on the seed.
Stage codes follow the skill daemon: 0 Wake, 1 N1, 2 N2, 3 N3, 5 REM.

Signal model
------------
Each derivation is a sum of shared sources, each scaled by a stage-dependent envelope, plus events and
independent noise.  All amplitudes below are for a central derivation (C4-M1); they are standard
deviations of Gaussian noise unless stated otherwise.

Background sources are stationary Gaussian noises made with one inverse FFT over the whole record, with
amplitude spectra ``|H(f)|`` (Hz) set by a shape and band (normalised to unit variance):

======  =================================================  ====  ===  ===  ===  ===
source  amplitude spectrum, band                           Wake   N1   N2   N3  REM
======  =================================================  ====  ===  ===  ===  ===
pink    ``f**-0.5`` (1/f power), 0.2 Hz - 0.45 fs             5    6    7    6    6
brown   ``1/f`` (1/f² power), 0.2-45 Hz                       5    8   10   12    7
slow    log-Gaussian at 0.85 Hz, σ 0.55 octave, 0.25-3 Hz     6    6   14   24    4
delta   log-Gaussian at 2.3 Hz, σ 0.45 octave, 1-5 Hz         5    7   10   12    5
theta   Gaussian at 5.8 Hz, σ 0.9 Hz, 3.5-8.5 Hz            3.5  4.5    6    6  5.5
alpha   Gaussian at 10 Hz, σ 0.6 Hz, 7.5-12.5 Hz              9    4    3  1.5    2
beta    ``f**-0.5``, 13-32 Hz                                 4    3  1.5    1    2
muscle  white, 25 Hz - 0.45 fs                                5    3  1.5    1    1
======  =================================================  ====  ===  ===  ===  ===

(µV).  The slow source is bent to ``x - 0.05 (x² - 1)`` so that its negative half-waves (down states) are
deeper and sharper.  In N3 its amplitude is also scaled by ``(1.1 - 0.3 t) (0.8 + 0.35 sin(π q))``, where
``t`` is the position in the night (0 to 1) and ``q`` the position in the N3 period: N3 deepens towards
the middle of each period and is deeper early in the night (0.5-2 Hz waves of more than 75 µV
peak-to-peak cover about 70 % of a median N3 epoch, 30 % at the 10th percentile).  Every source's
amplitude is multiplied per epoch by a log-normal factor (σ = 0.12).  The per-epoch amplitudes are
expanded to 1 s steps, smoothed with an 8 s moving average and linearly interpolated to the samples, so
stage changes cross-fade over about 8 s.

Events are added as templates at Poisson-distributed onsets (rate per minute of the epoch's stage):

* sleep spindles (N2 7/min, N3 2/min, and after 40 % of K-complexes): 11.5-15.5 Hz sine under a
  ``sin²`` (waxing-waning) envelope, 0.5-2 s, peak 10-25 µV (20-50 µV peak-to-peak);
* K-complexes (N2 1.5/min, N3 0.5/min): a sharp negative Gaussian wave (peak at 0.25 s, σ 85 ms) then a
  positive one (0.65 s, σ 160 ms, 0.6 of the size), negative peak 55-95 µV (90-150 µV peak-to-peak);
* vertex sharp waves (N1 2/min): negative Gaussian (σ 35 ms) with a positive after-wave, 30-60 µV;
* eye blinks (Wake 10/min, N1 1/min): positive ``(t/τ)² exp(2 (1 - t/τ))`` pulse, τ = 0.1 s, 15-40 µV;
* saccades (Wake 6/min): a 20 ms step held 0.3-1 s then a 80 ms return, ±10-30 µV;
* slow rolling eye movements (N1 3/min): 2-4 s half-sine, ±15-35 µV;
* rapid eye movements (REM 6/min, bunched by a gamma-distributed rate per epoch): 30 ms rise, 0.35 s
  decay, ±20-50 µV;
* sawtooth waves (REM 2/min): 2-5 s trains of 2-4.5 Hz asymmetric triangles (rise over 75 % of the
  period, fall over 25 %) under a half-sine envelope, 15-30 µV peak.

Derivations: the default names are ``C4-M1, C3-M2, F4-M1, F3-M2, O2-M1, O1-M2, EEG7, ...``.  The first
letter of a name picks scalp-region gains for each source and event (F: more slow waves, blinks and eye
movements, less alpha; O: more alpha, fewer slow waves and eye artefacts; anything else counts as
central, gain 1).  Channels after the first multiply those gains by independent factors in 0.85-1.15, so
they see the same brain and eyes through a different derivation.  Each channel also gets its own local
activity and sensor noise: 4 µV with a ``sqrt(1/f + 0.02)`` amplitude spectrum from 0.2 Hz (C4-M1 and
C3-M2 correlate at about 0.96).

The record is built in float32 and returned as float64; an 8 h, 256 Hz, 2-channel night takes a few
seconds and about 0.4 GB of memory at peak.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import numpy as np
from scipy import fft as sp_fft
from scipy.ndimage import uniform_filter1d

EPOCH_S = 30.0
WAKE, N1, N2, N3, REM = 0, 1, 2, 3, 5
STAGES = (WAKE, N1, N2, N3, REM)
_ROW = {WAKE: 0, N1: 1, N2: 2, N3: 3, REM: 4}  # stage code -> row of the tables below
_FFT_WORKERS = 2

# Background sources: name -> (low Hz, high Hz or None for 0.45 fs, amplitude spectrum shape).
_SOURCES = {
    "pink": (0.2, None, lambda f: f**-0.5),
    "brown": (0.2, 45.0, lambda f: 1.0 / f),
    "slow": (0.25, 3.0, lambda f: np.exp(-0.5 * (np.log2(f / 0.85) / 0.55) ** 2)),
    "delta": (1.0, 5.0, lambda f: np.exp(-0.5 * (np.log2(f / 2.3) / 0.45) ** 2)),
    "theta": (3.5, 8.5, lambda f: np.exp(-0.5 * ((f - 5.8) / 0.9) ** 2)),
    "alpha": (7.5, 12.5, lambda f: np.exp(-0.5 * ((f - 10.0) / 0.6) ** 2)),
    "beta": (13.0, 32.0, lambda f: f**-0.5),
    "muscle": (25.0, None, lambda f: np.ones_like(f)),
}
_SOURCE_NAMES = tuple(_SOURCES)
_SLOW_BEND = 0.05  # x - b (x² - 1): sharper negative half-waves of the slow source

# Standard deviation (µV) of each source in each stage at a central derivation.
_STAGE_UV = np.array(
    [
        # pink brown slow delta theta alpha beta muscle
        [5.0, 5.0, 6.0, 5.0, 3.5, 9.0, 4.0, 5.0],  # Wake
        [6.0, 8.0, 6.0, 7.0, 4.5, 4.0, 3.0, 3.0],  # N1
        [7.0, 10.0, 14.0, 10.0, 6.0, 3.0, 1.5, 1.5],  # N2
        [6.0, 12.0, 24.0, 12.0, 6.0, 1.5, 1.0, 1.0],  # N3
        [6.0, 7.0, 4.0, 5.0, 5.5, 2.0, 2.0, 1.0],  # REM
    ]
)

# Events: name -> events per minute in (Wake, N1, N2, N3, REM).
_EVENT_RATE = {
    "spindle": (0.0, 0.0, 7.0, 2.0, 0.0),
    "kcomplex": (0.0, 0.0, 1.5, 0.5, 0.0),
    "vertex": (0.0, 2.0, 0.0, 0.0, 0.0),
    "blink": (10.0, 1.0, 0.0, 0.0, 0.0),
    "saccade": (6.0, 0.0, 0.0, 0.0, 0.0),
    "sem": (0.0, 3.0, 0.0, 0.0, 0.0),
    "rem": (0.0, 0.0, 0.0, 0.0, 6.0),
    "sawtooth": (0.0, 0.0, 0.0, 0.0, 2.0),
}
_EVENT_NAMES = tuple(_EVENT_RATE)
_KC_SPINDLE = 0.4  # share of K-complexes followed by a spindle

# Scalp region (first letter of the derivation) -> (source gains, event gains), in the orders above.
_REGION_GAIN = {
    "F": ((1.0, 1.1, 1.25, 1.1, 1.05, 0.6, 1.0, 1.3), (1.0, 1.2, 1.0, 2.5, 2.0, 2.0, 2.0, 0.9)),
    "C": ((1.0,) * len(_SOURCES), (1.0,) * len(_EVENT_RATE)),
    "O": ((1.0, 0.9, 0.7, 0.8, 0.9, 1.6, 0.9, 1.1), (0.6, 0.6, 0.6, 0.3, 0.4, 0.4, 0.4, 0.6)),
}
_DEFAULT_NAMES = ("C4-M1", "C3-M2", "F4-M1", "F3-M2", "O2-M1", "O1-M2")
_NOISE_UV = 4.0  # independent local activity + sensor noise per derivation


@dataclass(frozen=True)
class SyntheticNight:
    """A synthetic night: EEG in µV and the scripted stage of each 30 s epoch."""

    signal_uv: np.ndarray  # (n_channels, n_samples) float64, µV; n_samples = len(truth) * 30 * rate_hz
    rate_hz: float
    truth: np.ndarray  # int8 stage code per 30 s epoch: 0 Wake, 1 N1, 2 N2, 3 N3, 5 REM
    channel_names: tuple[str, ...]


def night_start_utc_s() -> float:
    """A fixed start time for synthetic nights: 2025-11-20 23:00:00 UTC, in UNIX seconds.

    Well in the past: the tests seed nights up to 12 days after it, and a capture the same test
    module runs now (stamped with the wall clock) must never fall inside one of them.
    """
    return _dt.datetime(2025, 11, 20, 23, 0, 0, tzinfo=_dt.timezone.utc).timestamp()


def scripted_hypnogram(hours: float) -> np.ndarray:
    """The scripted stage (int8, skill-daemon codes) of each 30 s epoch of a night of ``hours``."""
    n_epochs = max(1, int(round(hours * 3600 / EPOCH_S)))
    total_min = n_epochs * EPOCH_S / 60
    onset = min(15.0, 0.10 * total_min)
    final = min(10.0, 0.05 * total_min)
    sleep = total_min - onset - final
    n_cycles = max(1, int(round(sleep / 90)))
    cycle = sleep / n_cycles
    squeeze = min(1.0, cycle / 90)
    segments: list[tuple[int, float]] = [(WAKE, onset)]
    for k in range(n_cycles):
        p = 0.35 if n_cycles == 1 else k / (n_cycles - 1)
        n1 = (7.0 if k == 0 else 4.0) * squeeze
        n3 = cycle * 0.40 * (1 - p) ** 1.5
        rem = cycle * (0.12 + 0.25 * p)
        awake = 3.0 * squeeze if (k % 2 == 1 and k < n_cycles - 1) else 0.0
        arousal = 1.0 if (n_cycles >= 3 and k == n_cycles - 1) else 0.0
        n2 = cycle - n1 - n3 - rem - awake - arousal
        segments.append((N1, n1))
        if n3 >= 1.0:
            segments += [(N2, 0.6 * n2), (N3, n3), (N2, 0.4 * n2)]
        elif arousal:
            segments += [(N2, 0.5 * (n2 + n3)), (WAKE, arousal), (N2, 0.5 * (n2 + n3))]
        else:
            segments.append((N2, n2 + n3))
        segments.append((REM, rem))
        if awake:
            segments.append((WAKE, awake))
    segments.append((WAKE, final))
    ends = np.round(np.cumsum([minutes for _, minutes in segments]) * 60 / EPOCH_S).astype(int)
    ends[-1] = n_epochs
    truth = np.empty(n_epochs, np.int8)
    start = 0
    for (stage, _), end in zip(segments, ends, strict=True):
        truth[start:end] = stage
        start = max(start, end)
    return truth


def _run_position(truth: np.ndarray) -> np.ndarray:
    """Position (0 to 1) of each epoch inside its run of one stage."""
    starts = np.flatnonzero(np.r_[True, truth[1:] != truth[:-1]])
    lengths = np.diff(np.r_[starts, truth.size])
    return (np.arange(truth.size) - np.repeat(starts, lengths) + 0.5) / np.repeat(lengths, lengths)


def _colored(rng: np.random.Generator, n: int, rate: float, lo: float, hi: float | None, shape) -> np.ndarray:
    """``n`` samples (float32) of unit-variance Gaussian noise with amplitude spectrum ``shape`` on [lo, hi] Hz."""
    nfft = sp_fft.next_fast_len(n, real=True)
    df = rate / nfft
    hi = 0.45 * rate if hi is None else min(hi, 0.45 * rate)
    k0, k1 = max(1, int(np.ceil(lo / df))), int(np.floor(hi / df)) + 1
    if k1 <= k0:
        return np.zeros(n, np.float32)
    h = shape(np.arange(k0, k1) * df).astype(np.float32)
    spec = np.zeros(nfft // 2 + 1, np.complex64)
    spec.real[k0:k1] = rng.standard_normal(k1 - k0, dtype=np.float32) * h
    spec.imag[k0:k1] = rng.standard_normal(k1 - k0, dtype=np.float32) * h
    x = sp_fft.irfft(spec, nfft, overwrite_x=True, workers=_FFT_WORKERS)[:n]
    # Each interior bin of E|X|² = 2 h² adds 4 h² / nfft² to the variance of the inverse transform.
    x *= np.float32(nfft / np.sqrt(4.0 * np.sum(h.astype(np.float64) ** 2)))
    return x


def _envelope(per_epoch: np.ndarray, rate: float, out: np.ndarray) -> np.ndarray:
    """Per-sample envelope (float32, into ``out``) from per-epoch values, cross-faded over about 8 s."""
    knots = uniform_filter1d(np.repeat(per_epoch, int(EPOCH_S)), size=8, mode="nearest").astype(np.float32)
    if float(rate).is_integer():  # one linear ramp per second, written in place
        blocks = out.reshape(knots.size, int(rate))
        step = np.append(knots[1:], knots[-1]) - knots
        np.multiply(step[:, None], np.arange(int(rate), dtype=np.float32) / np.float32(rate), out=blocks)
        blocks += knots[:, None]
    else:
        out[:] = np.interp(np.arange(out.size) / rate, np.arange(knots.size), knots)
    return out


def _onsets(rng: np.random.Generator, truth: np.ndarray, name: str, epoch_n: float, bunch: float = 0.0):
    """Poisson onsets (sample indices) of event ``name``; ``bunch`` > 0 varies the rate per epoch."""
    rates = np.asarray(_EVENT_RATE[name])[[_ROW[int(s)] for s in truth]] * EPOCH_S / 60
    if bunch:
        rates = rates * rng.gamma(1 / bunch, bunch, size=rates.size)
    epochs = np.repeat(np.arange(truth.size), rng.poisson(rates))
    return ((epochs + rng.random(epochs.size)) * epoch_n).astype(np.int64)


def _events(rng: np.random.Generator, truth: np.ndarray, epoch_n: float, rate: float) -> dict:
    """Event name -> (onsets, waveforms (n_events, length) float32 µV)."""

    def grid(length_s):
        return (np.arange(int(np.ceil(length_s * rate)), dtype=np.float32) / np.float32(rate))[None, :]

    def uniform(lo, hi, n, signed=False):
        x = rng.uniform(lo, hi, (n, 1))
        if signed:
            x *= rng.choice([-1.0, 1.0], (n, 1))
        return x.astype(np.float32)

    def half_sine(t, dur):
        return np.where(t < dur, np.sin(np.pi * np.minimum(t / dur, 1)), 0)

    out = {}
    kc_on = _onsets(rng, truth, "kcomplex", epoch_n)
    sp_on = _onsets(rng, truth, "spindle", epoch_n)
    sp_on = np.concatenate([sp_on, kc_on[rng.random(kc_on.size) < _KC_SPINDLE] + int(0.7 * rate)])
    n = sp_on.size
    t = grid(2.0)
    dur, freq, amp = uniform(0.5, 2.0, n), uniform(11.5, 15.5, n), uniform(10.0, 25.0, n)
    carrier = np.sin(2 * np.pi * freq * t + uniform(0, 2 * np.pi, n))
    out["spindle"] = (sp_on, amp * half_sine(t, dur) ** 2 * carrier)

    t = grid(1.3)
    shape = -np.exp(-0.5 * ((t - 0.25) / 0.085) ** 2) + 0.6 * np.exp(-0.5 * ((t - 0.65) / 0.16) ** 2)
    out["kcomplex"] = (kc_on, uniform(55.0, 95.0, kc_on.size) * shape)

    on = _onsets(rng, truth, "vertex", epoch_n)
    t = grid(0.45)
    shape = -np.exp(-0.5 * ((t - 0.1) / 0.035) ** 2) + 0.35 * np.exp(-0.5 * ((t - 0.22) / 0.07) ** 2)
    out["vertex"] = (on, uniform(30.0, 60.0, on.size) * shape)

    on = _onsets(rng, truth, "blink", epoch_n)
    t = grid(0.6) / np.float32(0.1)
    out["blink"] = (on, uniform(15.0, 40.0, on.size) * t**2 * np.exp(2 * (1 - t)))

    on = _onsets(rng, truth, "saccade", epoch_n)
    t = grid(1.5)
    hold = uniform(0.3, 1.0, on.size)
    shape = (1 - np.exp(-t / 0.02)) * np.where(t < hold, 1.0, np.exp(-(t - hold) / 0.08))
    out["saccade"] = (on, uniform(10.0, 30.0, on.size, signed=True) * shape)

    on = _onsets(rng, truth, "sem", epoch_n)
    t = grid(4.0)
    out["sem"] = (on, uniform(15.0, 35.0, on.size, signed=True) * half_sine(t, uniform(2.0, 4.0, on.size)))

    on = _onsets(rng, truth, "rem", epoch_n, bunch=1.0)
    t = grid(1.0)
    out["rem"] = (on, uniform(20.0, 50.0, on.size, signed=True) * (1 - np.exp(-t / 0.03)) * np.exp(-t / 0.35))

    on = _onsets(rng, truth, "sawtooth", epoch_n)
    n = on.size
    t = grid(5.0)
    frac = (uniform(2.0, 4.5, n) * t + uniform(0.0, 1.0, n)) % 1
    saw = np.where(frac < 0.75, frac / 0.75, (1 - frac) / 0.25) * 2 - 1
    out["sawtooth"] = (on, uniform(15.0, 30.0, n) * half_sine(t, uniform(2.0, 5.0, n)) * saw)
    return out


def _gains(names: tuple[str, ...], rngs: list[np.random.Generator]) -> tuple[np.ndarray, np.ndarray]:
    """(source gains (n_channels, n_sources), event gains (n_channels, n_events)) of the derivations."""
    src = np.empty((len(names), len(_SOURCES)))
    ev = np.empty((len(names), len(_EVENT_RATE)))
    for c, (name, rng) in enumerate(zip(names, rngs, strict=True)):
        src[c], ev[c] = _REGION_GAIN.get(name[:1].upper(), _REGION_GAIN["C"])
        if c:
            src[c] *= rng.uniform(0.85, 1.15, src.shape[1])
            ev[c] *= rng.uniform(0.85, 1.15, ev.shape[1])
    return src, ev


def synthetic_night(
    hours: float = 8.0,
    rate_hz: float = 256.0,
    n_channels: int = 2,
    seed: int = 0,
    channel_names: tuple[str, ...] | None = None,
) -> SyntheticNight:
    """A synthetic night of ``hours`` (rounded to whole 30 s epochs) at ``rate_hz`` (at least 64 Hz).

    ``channel_names``, when given, must hold ``n_channels`` names; the first letter of each picks its scalp
    region (F, C, O; anything else counts as central).  The signal model is in the module docstring.
    """
    if not hours > 0:
        raise ValueError(f"hours must be positive, got {hours}")
    if not rate_hz >= 64:
        raise ValueError(f"rate_hz must be at least 64 Hz, got {rate_hz}")
    if channel_names is None:
        if n_channels < 1:
            raise ValueError(f"n_channels must be at least 1, got {n_channels}")
        channel_names = tuple(
            _DEFAULT_NAMES[i] if i < len(_DEFAULT_NAMES) else f"EEG{i + 1}" for i in range(n_channels)
        )
    channel_names = tuple(channel_names)
    if len(channel_names) != n_channels:
        raise ValueError(f"{len(channel_names)} channel names for {n_channels} channels")

    rng = np.random.default_rng(seed)  # shared sources and events
    channel_rngs = [np.random.default_rng([seed, c + 1]) for c in range(n_channels)]  # gains, local noise
    rate = float(rate_hz)
    truth = scripted_hypnogram(hours)
    epoch_n = EPOCH_S * rate
    n = int(round(truth.size * epoch_n))
    src_gain, ev_gain = _gains(channel_names, channel_rngs)

    # Per-epoch amplitude (µV) of each source: the stage's value, N3 depth, log-normal jitter.
    amp = _STAGE_UV[[_ROW[int(s)] for s in truth]].T.copy()
    night_pos = (np.arange(truth.size) + 0.5) / truth.size
    depth = (1.1 - 0.3 * night_pos) * (0.8 + 0.35 * np.sin(np.pi * _run_position(truth)))
    amp[_SOURCE_NAMES.index("slow")] *= np.where(truth == N3, depth, 1.0)
    amp *= np.exp(0.12 * rng.standard_normal(amp.shape))

    acc = np.zeros((n_channels, n), np.float32)
    env, tmp = np.empty(n, np.float32), np.empty(n, np.float32)
    for k, name in enumerate(_SOURCE_NAMES):
        lo, hi, shape = _SOURCES[name]
        x = _colored(rng, n, rate, lo, hi, shape)
        if name == "slow":
            np.multiply(x, x, out=tmp)
            tmp -= 1
            tmp *= np.float32(_SLOW_BEND)
            x -= tmp
            x *= np.float32(1 / np.sqrt(1 + 2 * _SLOW_BEND**2))
        x *= _envelope(amp[k], rate, env)
        for c in range(n_channels):
            acc[c] += np.multiply(x, np.float32(src_gain[c, k]), out=tmp)
        del x
    del env, tmp

    for c in range(n_channels):
        x = _colored(channel_rngs[c], n, rate, 0.2, None, lambda f: np.sqrt(1.0 / f + 0.02))
        x *= np.float32(_NOISE_UV)
        acc[c] += x
        del x

    for name, (onsets, waves) in _events(rng, truth, epoch_n, rate).items():
        idx = onsets[:, None] + np.arange(waves.shape[1])
        keep = idx < n
        idx, vals = idx[keep], waves[keep].astype(np.float32)
        for c in range(n_channels):
            np.add.at(acc[c], idx, np.float32(ev_gain[c, _EVENT_NAMES.index(name)]) * vals)

    return SyntheticNight(signal_uv=acc.astype(np.float64), rate_hz=rate, truth=truth, channel_names=channel_names)

"""EEG band powers: the band table, Welch band powers, derived scores and a sliding window.

Every tunable constant of :mod:`miso_runtime.neuro` (filters, quality and epochs too) is
defined in :mod:`miso_runtime.constants` and summarised in the table below. Arrays are
``(n_channels, n_samples)`` float64 in µV.

Why Welch: a single FFT of a 2 s window has a high variance per bin; averaging a few
half-overlapping Hann-windowed segments trades frequency resolution (1 Hz is plenty for
bands 4 Hz or wider) for a much steadier estimate, which is what a feedback display needs.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import signal

from ..constants import (
    BAND_NAMES,
    BANDS,
    FRONTAL_PAIRS,
    SLIDING_HOP_S,
    SLIDING_WINDOW_S,
    TOTAL_POWER_RANGE_HZ,
    WELCH_SEGMENT_S,
    WELCH_WINDOW,
)

log = logging.getLogger(__name__)

# =============================================================================================
# Constants table (all of miso_runtime.neuro)
# =============================================================================================
#
# ======================================  ======================  ==============================
# Name                                    Value                   Meaning
# Tunables (defined in miso_runtime.constants, with their reasons):
# ======================================  ======================  ==============================
# BANDS                                   delta..gamma, Hz        EEG bands, half-open [lo, hi)
# TOTAL_POWER_RANGE_HZ                    (0.5, 50.0) Hz          denominator of relative power
# WELCH_SEGMENT_S                         1.0 s                   Welch nperseg = min(n, 1 s)
# WELCH_WINDOW                            "hann"                  Welch taper
# FRONTAL_PAIRS                           F3/F4, AF7/AF8, ...     (left, right) asymmetry pairs
# DEFAULT_FILTER_ORDER                    4                       Butterworth band-pass order
# NOTCH_QUALITY                           30.0                    notch Q (-3 dB width f0/Q Hz)
# ALLOWED_NOTCH_HZ                        (50.0, 60.0) Hz         mains frequencies
# SLIDING_WINDOW_S / SLIDING_HOP_S        2.0 s / 0.25 s          sliding band powers
# QUALITY_FLAT_STD_UV                     0.5 µV                  std below -> "flat"
# QUALITY_RAIL_UV                         187 500 µV              |x| at/above -> at the rail
# QUALITY_RAILED_FRACTION                 0.10                    share of railed/clipped samples
# QUALITY_CLIP_TOLERANCE_UV               1e-6 µV                 "at the window extreme"
# QUALITY_NOISY_RMS_UV                    200.0 µV                RMS (mean removed) -> "noisy"
# QUALITY_LINE_HALF_WIDTH_HZ              2.0 Hz                  mains band f0 ± this
# QUALITY_LINE_RATIO                      1.0                     mains / 1-40 Hz power -> noisy
# QUALITY_EEG_RANGE_HZ                    (1.0, 40.0) Hz          reference band for that ratio
# EPOCH_DEFAULT_S                         5.0 s                   epoch length
# EPOCH_MAX_OVERLAP_FRACTION              0.9                     overlap <= 0.9 * epoch (4.5 s)
# ======================================  ======================  ==============================


# =============================================================================================
# Band powers
# =============================================================================================


@dataclass(frozen=True)
class BandPowers:
    """Absolute and relative power of each :data:`BANDS` band, per channel, over one window.

    Attributes
    ----------
    absolute : ndarray, shape (n_channels, n_bands)
        Band power in µV² (PSD in µV²/Hz integrated over the band).
    relative : ndarray, shape (n_channels, n_bands)
        ``absolute / total``; NaN on a channel with zero total power.
    total : ndarray, shape (n_channels,)
        Power in µV² over :data:`TOTAL_POWER_RANGE_HZ`.
    band_names : tuple of str
        Column names of ``absolute`` and ``relative``.
    window_end_sample : int | None
        For :class:`SlidingBandPowers`: number of samples fed up to the end of this window
        (so an :class:`~miso_runtime.neuro.epochs.Epocher` can place it); None offline.
    """

    absolute: np.ndarray
    relative: np.ndarray
    total: np.ndarray
    band_names: Tuple[str, ...] = BAND_NAMES
    window_end_sample: Optional[int] = None

    def band(self, name: str, relative: bool = False) -> np.ndarray:
        """Per-channel power of band ``name`` (µV², or unitless if ``relative``)."""
        idx = self.band_names.index(name)
        return (self.relative if relative else self.absolute)[:, idx]

    def to_dict(self) -> Dict[str, Dict[str, List[float]]]:
        """JSON-friendly ``{"absolute": {band: [per channel]}, "relative": {...}}``."""
        return {
            kind: {n: arr[:, i].tolist() for i, n in enumerate(self.band_names)}
            for kind, arr in (("absolute", self.absolute), ("relative", self.relative))
        }


def _as_2d(window: np.ndarray, name: str = "window") -> np.ndarray:
    arr = np.asarray(window, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (n_channels, n_samples), got shape {arr.shape}")
    return arr


def _check_rate(sample_rate_hz: float) -> float:
    rate = float(sample_rate_hz)
    if not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"sample_rate_hz must be a positive number, got {sample_rate_hz!r}")
    return rate


def welch_nperseg(n_samples: int, sample_rate_hz: float) -> int:
    """Welch segment length, samples: ``min(n_samples, round(WELCH_SEGMENT_S * fs))``.

    Shorter windows than 1 s fall back to one segment of the whole window, so short
    windows still work (at a coarser resolution, ``fs / n_samples`` Hz).
    """
    return int(max(1, min(n_samples, round(WELCH_SEGMENT_S * sample_rate_hz))))


def band_powers(window: np.ndarray, sample_rate_hz: float) -> BandPowers:
    """Absolute and relative band powers of every channel of one window (Welch PSD).

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples)
        EEG in µV, ideally already band-passed / notched. A 1-D array is one channel.
    sample_rate_hz : float
        Sampling rate in Hz.

    Returns
    -------
    BandPowers
        Absolute power (µV²) = sum of the one-sided PSD (µV²/Hz, ``scaling="density"``)
        over the bins in ``[low, high)`` times the bin width ``fs / nperseg`` Hz — the
        rectangle-rule integral. Relative = absolute / power over
        :data:`TOTAL_POWER_RANGE_HZ`.

    Notes
    -----
    ``nperseg`` is :func:`welch_nperseg` (1 s, 1 Hz resolution), Hann taper, 50 % overlap,
    constant detrend (removes the DC offset BrainFlow boards carry). A window must be at
    least 2 samples long.
    """
    rate = _check_rate(sample_rate_hz)
    data = _as_2d(window)
    n_samples = data.shape[1]
    if n_samples < 2:
        raise ValueError(f"window must hold at least 2 samples, got {n_samples}")
    nperseg = welch_nperseg(n_samples, rate)
    freqs, psd = signal.welch(
        data,
        fs=rate,
        window=WELCH_WINDOW,
        nperseg=nperseg,
        detrend="constant",
        scaling="density",
        axis=-1,
    )
    df = rate / nperseg
    absolute = np.empty((data.shape[0], len(BANDS)), dtype=np.float64)
    for i, (_, lo, hi) in enumerate(BANDS):
        mask = (freqs >= lo) & (freqs < hi)
        absolute[:, i] = psd[:, mask].sum(axis=1) * df
    lo, hi = TOTAL_POWER_RANGE_HZ
    total_mask = (freqs >= lo) & (freqs < hi)
    total = psd[:, total_mask].sum(axis=1) * df
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(total[:, None] > 0, absolute / total[:, None], np.nan)
    return BandPowers(absolute=absolute, relative=relative, total=total)


# =============================================================================================
# Derived scores
# =============================================================================================


@dataclass(frozen=True)
class DerivedScores:
    """Ratios of band powers, averaged over channels (None where undefined).

    See :func:`derived_scores` for the formulas.
    """

    relaxation: Optional[float]
    engagement: Optional[float]
    alpha_theta: Optional[float]
    theta_beta: Optional[float]
    frontal_alpha_asymmetry: Optional[float]

    def to_dict(self) -> Dict[str, Optional[float]]:
        """JSON-friendly ``{score: value}``."""
        return {
            "relaxation": self.relaxation,
            "engagement": self.engagement,
            "alpha_theta": self.alpha_theta,
            "theta_beta": self.theta_beta,
            "frontal_alpha_asymmetry": self.frontal_alpha_asymmetry,
        }


SCORE_NAMES: Tuple[str, ...] = (
    "relaxation",
    "engagement",
    "alpha_theta",
    "theta_beta",
    "frontal_alpha_asymmetry",
)


def _mean_ratio(num: np.ndarray, den: np.ndarray) -> Optional[float]:
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    if not ok.any():
        return None
    return float(np.mean(num[ok] / den[ok]))


def find_frontal_pairs(channel_names: Sequence[str]) -> List[Tuple[int, int]]:
    """Indices ``(left, right)`` of every :data:`FRONTAL_PAIRS` pair in the montage."""
    lookup = {name.strip().lower(): i for i, name in enumerate(channel_names)}
    pairs = []
    for left, right in FRONTAL_PAIRS:
        li, ri = lookup.get(left.lower()), lookup.get(right.lower())
        if li is not None and ri is not None:
            pairs.append((li, ri))
    return pairs


def derived_scores(powers: BandPowers, channel_names: Sequence[str]) -> DerivedScores:
    """Standard band-power ratios, each computed per channel then averaged over channels.

    Parameters
    ----------
    powers : BandPowers
        Absolute band powers (µV²) of one window.
    channel_names : sequence of str
        Electrode names, one per row of ``powers`` (used for the frontal pairs).

    Returns
    -------
    DerivedScores
        With α, β, θ the absolute alpha, beta, theta power of a channel:

        - ``relaxation = α / (α + β)`` — in [0, 1]; rises with eyes-closed relaxed
          wakefulness.
        - ``engagement = β / (α + θ)`` — the Pope et al. (1995) engagement index.
        - ``alpha_theta = α / θ`` — used in alpha/theta neurofeedback.
        - ``theta_beta = θ / β`` — the theta/beta ratio of attention research.
        - ``frontal_alpha_asymmetry = ln(α_right) − ln(α_left)`` averaged over every
          :data:`FRONTAL_PAIRS` pair in the montage (F3/F4, AF7/AF8, Fp1/Fp2, F7/F8);
          positive means more right alpha (conventionally, relatively more left
          activity). None when the montage has no pair.

        Channels whose denominator is zero (flat) are left out of the average; a score
        no channel defines is None.
    """
    if len(channel_names) != powers.absolute.shape[0]:
        raise ValueError(f"channel_names has {len(channel_names)} names for {powers.absolute.shape[0]} channels")
    alpha, beta, theta = powers.band("alpha"), powers.band("beta"), powers.band("theta")
    asym_values = []
    for li, ri in find_frontal_pairs(channel_names):
        a_left, a_right = alpha[li], alpha[ri]
        if a_left > 0 and a_right > 0 and np.isfinite(a_left) and np.isfinite(a_right):
            asym_values.append(math.log(a_right) - math.log(a_left))
    return DerivedScores(
        relaxation=_mean_ratio(alpha, alpha + beta),
        engagement=_mean_ratio(beta, alpha + theta),
        alpha_theta=_mean_ratio(alpha, theta),
        theta_beta=_mean_ratio(theta, beta),
        frontal_alpha_asymmetry=float(np.mean(asym_values)) if asym_values else None,
    )


# =============================================================================================
# Sliding band powers
# =============================================================================================


class SlidingBandPowers:
    """Band powers over a sliding window, fed with chunks of any size.

    A ring buffer holds the last ``window_s`` seconds; once it is full, one
    :class:`BandPowers` is produced every ``hop_s`` seconds of input, computed by
    :func:`band_powers` on exactly the samples an offline slice would hold, so the result
    does not depend on how the stream was chunked.

    Parameters
    ----------
    sample_rate_hz : float
        Sampling rate in Hz.
    n_channels : int
        Number of EEG channels (rows of every chunk).
    window_s : float
        Window length in seconds (rounded to whole samples; >= 2 samples).
    hop_s : float
        Hop in seconds (rounded to whole samples; >= 1 sample).
    """

    def __init__(
        self,
        sample_rate_hz: float,
        n_channels: int,
        window_s: float = SLIDING_WINDOW_S,
        hop_s: float = SLIDING_HOP_S,
    ) -> None:
        self.sample_rate_hz = _check_rate(sample_rate_hz)
        if int(n_channels) != n_channels or n_channels < 1:
            raise ValueError(f"n_channels must be a positive integer, got {n_channels!r}")
        self.n_channels = int(n_channels)
        if not (window_s > 0):
            raise ValueError(f"window_s must be positive, got {window_s!r}")
        if not (hop_s > 0):
            raise ValueError(f"hop_s must be positive, got {hop_s!r}")
        self.window_samples = int(round(window_s * self.sample_rate_hz))
        self.hop_samples = int(round(hop_s * self.sample_rate_hz))
        if self.window_samples < 2:
            raise ValueError(f"window_s is under 2 samples at {self.sample_rate_hz} Hz")
        if self.hop_samples < 1:
            raise ValueError(f"hop_s is under 1 sample at {self.sample_rate_hz} Hz")
        self._buf = np.zeros((self.n_channels, self.window_samples), dtype=np.float64)
        self.reset()

    def reset(self) -> None:
        """Forget all buffered samples (e.g. after a gap or a board restart)."""
        self._buf[:] = 0.0
        self._pos = 0  # next write column in the ring
        self.samples_seen = 0
        self._next_emit = self.window_samples

    def _window(self) -> np.ndarray:
        # Oldest sample is at self._pos once the ring has wrapped.
        return np.concatenate((self._buf[:, self._pos :], self._buf[:, : self._pos]), axis=1)

    def feed(self, chunk: np.ndarray) -> List[BandPowers]:
        """Add a chunk (µV, shape ``(n_channels, n)``, any n >= 0); return new windows.

        Returns
        -------
        list of BandPowers
            One per hop boundary crossed by this chunk, oldest first, each with
            ``window_end_sample`` set.
        """
        data = _as_2d(chunk, "chunk")
        if data.shape[0] != self.n_channels:
            raise ValueError(f"chunk has {data.shape[0]} channels, expected {self.n_channels}")
        out: List[BandPowers] = []
        n = data.shape[1]
        start = 0
        while start < n:
            # Copy up to the next emission point (and never more than the ring at once).
            take = min(n - start, self._next_emit - self.samples_seen, self.window_samples)
            take = min(take, self.window_samples - self._pos)
            self._buf[:, self._pos : self._pos + take] = data[:, start : start + take]
            self._pos = (self._pos + take) % self.window_samples
            self.samples_seen += take
            start += take
            if self.samples_seen == self._next_emit:
                bp = band_powers(self._window(), self.sample_rate_hz)
                out.append(
                    BandPowers(bp.absolute, bp.relative, bp.total, bp.band_names, window_end_sample=self.samples_seen)
                )
                self._next_emit += self.hop_samples
        return out

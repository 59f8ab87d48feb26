"""EEG band powers: the band table, Welch band powers, derived scores and a sliding window.

Every tunable constant of :mod:`miso_runtime.neuro` (filters, quality and epochs too) is
defined in :mod:`miso_runtime.constants` and summarised in the table below. Arrays are
``(n_channels, n_samples)`` float64 in µV.

Why Welch: a single FFT of a 2 s window has a high variance per bin; averaging a few
half-overlapping Hann-windowed segments trades frequency resolution (1 Hz is plenty for
bands 4 Hz or wider) for a much steadier estimate, which is what a feedback display needs.

Why our own Welch instead of :func:`scipy.signal.welch`: the live pipeline computes a 2 s
window every 0.25 s on every channel, and scipy's per-call set-up (window design, argument
checks, a generic short-time FFT, moving axes) cost several times the FFTs themselves. The
same estimate is computed here from a plan cached per ``(n_samples, fs)`` (taper, segment
offsets, and one matrix holding band membership, density scale, one-sided doubling and bin
width), all segments of all windows in one FFT call, and band sums as one matrix product.
Band power is linear in the PSD, so the band sums of each segment are averaged instead of
the PSDs; :class:`SlidingBandPowers` keeps each segment's sums, so a segment shared by
overlapping windows (with 0.25 s hop and 0.5 s segment step, every segment serves three
windows) is transformed once. The values equal scipy's to rounding (tested to 1e-9
relative against :func:`scipy.signal.welch` itself).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from numpy.lib.stride_tricks import as_strided
from scipy import signal

from ..constants import (
    BAND_NAMES,
    BANDS,
    FRONTAL_PAIRS,
    SLIDING_BATCH_MAX_WINDOWS,
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
# SLIDING_BATCH_MAX_WINDOWS               256                     windows per vectorised batch
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


@dataclass(frozen=True)
class _WelchPlan:
    """Everything about a Welch band-power estimate that depends only on ``(n_samples, fs)``.

    Why: building these per window (as :func:`scipy.signal.welch` does on every call) costs
    more than the FFTs themselves at 2 s windows; built once and cached they are free.

    Attributes
    ----------
    nperseg : int
        Segment length, samples (:func:`welch_nperseg`).
    offsets : ndarray of int64, shape (n_segments,)
        Start of each segment within the window, samples (step ``nperseg - nperseg // 2``,
        i.e. scipy's default 50 % overlap, no padding: scipy's segment count).
    taper : ndarray, shape (nperseg,)
        :data:`WELCH_WINDOW` as :func:`scipy.signal.get_window` makes it for Welch.
    bin_lo, bin_hi : int
        The FFT bins ``[bin_lo, bin_hi)`` that any band or the total range uses.
    weights : ndarray, shape (bin_hi - bin_lo, n_bands + 1)
        ``|X_k|²`` of one segment times this gives its band powers in µV² (last column:
        the total over :data:`TOTAL_POWER_RANGE_HZ`): 0/1 band membership (half-open
        ``[lo, hi)`` on scipy's own frequency grid) × density scale ``1 / (fs Σw²)`` ×
        one-sided doubling × bin width ``fs / nperseg`` Hz.
    """

    nperseg: int
    offsets: np.ndarray
    taper: np.ndarray
    bin_lo: int
    bin_hi: int
    weights: np.ndarray


@functools.lru_cache(maxsize=64)
def _welch_plan(n_samples: int, sample_rate_hz: float) -> _WelchPlan:
    """Build (once per ``(n_samples, fs)``) the plan that reproduces ``scipy.signal.welch``.

    The frequency grid is taken from scipy itself (one call on zeros) so that band edges
    such as 4.0 Hz fall into exactly the bins scipy puts them in, whatever the rounding of
    ``fs / nperseg``.
    """
    nperseg = welch_nperseg(n_samples, sample_rate_hz)
    step = nperseg - nperseg // 2
    n_segments = (n_samples - nperseg // 2) // step
    offsets = np.arange(n_segments, dtype=np.int64) * step
    taper = np.asarray(signal.get_window(WELCH_WINDOW, nperseg), dtype=np.float64)
    freqs, _ = signal.welch(
        np.zeros(n_samples), fs=sample_rate_hz, window=WELCH_WINDOW, nperseg=nperseg, detrend="constant"
    )
    n_bins = freqs.shape[0]
    onesided = np.ones(n_bins)
    onesided[1 : n_bins - 1 if nperseg % 2 == 0 else n_bins] = 2.0
    ranges = [(lo, hi) for _, lo, hi in BANDS] + [TOTAL_POWER_RANGE_HZ]
    member = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in ranges], axis=1).astype(np.float64)
    scale = 1.0 / (sample_rate_hz * float(np.sum(taper * taper)))
    df = sample_rate_hz / nperseg
    weights = member * (onesided * scale * df)[:, np.newaxis]
    used = np.flatnonzero(member.any(axis=1))
    bin_lo, bin_hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)
    for arr in (offsets, taper, weights):
        arr.flags.writeable = False
    log.debug(
        "Welch plan n=%d fs=%s: nperseg=%d, %d segments, bins [%d, %d)",
        n_samples,
        sample_rate_hz,
        nperseg,
        n_segments,
        bin_lo,
        bin_hi,
    )
    return _WelchPlan(nperseg, offsets, taper, bin_lo, bin_hi, np.ascontiguousarray(weights[bin_lo:bin_hi]))


def _segment_band_sums(data: np.ndarray, starts: np.ndarray, plan: _WelchPlan) -> np.ndarray:
    """Band powers of single Welch segments: ``(n_segments, n_channels, n_bands + 1)`` µV².

    Parameters
    ----------
    data : ndarray, shape (n_channels, n_samples)
        Samples in µV.
    starts : ndarray of int, shape (n_segments,)
        Column of ``data`` where each segment starts (each must fit: ``start + nperseg <=
        n_samples``).
    plan : _WelchPlan

    Notes
    -----
    Per segment, exactly scipy's steps: subtract the segment mean (``detrend="constant"``),
    taper, real FFT, ``|X|²``; then ``@ plan.weights`` scales and sums the bins per band.
    All segments of all channels go through one FFT and one matrix product.
    """
    # Read-only view of every segment position, (n_positions, n_channels, nperseg), then a
    # copy of the wanted ones (as_strided: sliding_window_view's checks cost more than this
    # function's arithmetic on a 1 s chunk).
    ch_stride, t_stride = data.strides
    positions = as_strided(
        data,
        shape=(data.shape[1] - plan.nperseg + 1, data.shape[0], plan.nperseg),
        strides=(t_stride, ch_stride, t_stride),
        writeable=False,
    )
    segments = positions[starts]
    segments -= segments.mean(axis=-1, keepdims=True)
    segments *= plan.taper
    spectrum = np.fft.rfft(segments, axis=-1)[..., plan.bin_lo : plan.bin_hi]
    power = spectrum.real * spectrum.real + spectrum.imag * spectrum.imag
    n_seg, n_ch, n_bins = power.shape
    return (power.reshape(n_seg * n_ch, n_bins) @ plan.weights).reshape(n_seg, n_ch, -1)


def _split_sums(sums: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(..., n_channels, n_bands + 1)`` band sums -> contiguous absolute, relative, total."""
    absolute = np.ascontiguousarray(sums[..., :-1])
    total = np.ascontiguousarray(sums[..., -1])
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(total[..., np.newaxis] > 0, absolute / total[..., np.newaxis], np.nan)
    return absolute, relative, total


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
    least 2 samples long. Equal to the same sums over :func:`scipy.signal.welch` with those
    arguments, to rounding; computed with a cached plan (see the module docstring for why).
    """
    rate = _check_rate(sample_rate_hz)
    data = _as_2d(window)
    n_samples = data.shape[1]
    if n_samples < 2:
        raise ValueError(f"window must hold at least 2 samples, got {n_samples}")
    plan = _welch_plan(n_samples, rate)
    sums = _segment_band_sums(data, plan.offsets, plan).mean(axis=0)
    absolute, relative, total = _split_sums(sums)
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


def _mean_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean over the last axis (channels) of ``num / den`` where both are finite and ``den > 0``.

    ``num``, ``den``: ``(n_windows, n_channels)``. Returns ``(n_windows,)``, NaN where no
    channel qualifies (a flat channel has zero power and is left out, not averaged as 0).
    """
    ok = np.isfinite(num) & np.isfinite(den) & (den > 0)
    count = ok.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, num / np.where(ok, den, 1.0), 0.0)
        return np.where(count > 0, ratio.sum(axis=-1) / count, np.nan)


def find_frontal_pairs(channel_names: Sequence[str]) -> List[Tuple[int, int]]:
    """Indices ``(left, right)`` of every :data:`FRONTAL_PAIRS` pair in the montage."""
    lookup = {name.strip().lower(): i for i, name in enumerate(channel_names)}
    pairs = []
    for left, right in FRONTAL_PAIRS:
        li, ri = lookup.get(left.lower()), lookup.get(right.lower())
        if li is not None and ri is not None:
            pairs.append((li, ri))
    return pairs


def derived_scores_array(
    absolute: np.ndarray,
    channel_names: Sequence[str],
    band_names: Sequence[str] = BAND_NAMES,
) -> np.ndarray:
    """:func:`derived_scores` of many windows at once, as an array (NaN where undefined).

    Why: an :class:`~miso_runtime.neuro.epochs.Epocher` averages the scores of the ~20
    windows of an epoch; one vectorised call costs what one window did one by one.

    Parameters
    ----------
    absolute : ndarray, shape (n_windows, n_channels, n_bands) or (n_channels, n_bands)
        Absolute band powers, µV², columns in ``band_names`` order.
    channel_names : sequence of str
        Electrode names, one per channel.
    band_names : sequence of str
        Column names of ``absolute`` (must include alpha, beta, theta).

    Returns
    -------
    ndarray, shape (n_windows, len(SCORE_NAMES)) or (len(SCORE_NAMES),)
        Columns in :data:`SCORE_NAMES` order; NaN where :func:`derived_scores` gives None.
    """
    arr = np.asarray(absolute, dtype=np.float64)
    single = arr.ndim == 2
    if single:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"absolute must be (n_windows, n_channels, n_bands), got shape {arr.shape}")
    if len(channel_names) != arr.shape[1]:
        raise ValueError(f"channel_names has {len(channel_names)} names for {arr.shape[1]} channels")
    names = list(band_names)
    alpha, beta, theta = (arr[:, :, names.index(b)] for b in ("alpha", "beta", "theta"))
    out = np.empty((arr.shape[0], len(SCORE_NAMES)), dtype=np.float64)
    out[:, 0] = _mean_ratio(alpha, alpha + beta)
    out[:, 1] = _mean_ratio(beta, alpha + theta)
    out[:, 2] = _mean_ratio(alpha, theta)
    out[:, 3] = _mean_ratio(theta, beta)
    pairs = find_frontal_pairs(channel_names)
    if pairs:
        left = alpha[:, [li for li, _ in pairs]]
        right = alpha[:, [ri for _, ri in pairs]]
        ok = (left > 0) & (right > 0) & np.isfinite(left) & np.isfinite(right)
        count = ok.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            diff = np.where(ok, np.log(np.where(ok, right, 1.0)) - np.log(np.where(ok, left, 1.0)), 0.0)
            out[:, 4] = np.where(count > 0, diff.sum(axis=-1) / count, np.nan)
    else:
        out[:, 4] = np.nan
    return out[0] if single else out


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
        no channel defines is None. Computed by :func:`derived_scores_array`.
    """
    if len(channel_names) != powers.absolute.shape[0]:
        raise ValueError(f"channel_names has {len(channel_names)} names for {powers.absolute.shape[0]} channels")
    values = derived_scores_array(powers.absolute, channel_names, powers.band_names)
    return DerivedScores(*(None if math.isnan(v) else float(v) for v in values))


# =============================================================================================
# Sliding band powers
# =============================================================================================


class SlidingBandPowers:
    """Band powers over a sliding window, fed with chunks of any size.

    Once ``window_s`` seconds have been fed, one :class:`BandPowers` is produced every
    ``hop_s`` seconds of input, equal (to rounding) to :func:`band_powers` on exactly the
    samples an offline slice would hold, so the result does not depend on how the stream
    was chunked.

    Why it is fast: the Welch segments of consecutive windows overlap (2 s windows, 1 s
    segments every 0.5 s, 0.25 s hop: each segment serves three windows), so the band
    sums of every segment are kept until no future window needs them, and a window is the
    mean of its segments' sums. All windows a chunk completes are computed in one
    vectorised batch (at most :data:`SLIDING_BATCH_MAX_WINDOWS` at a time, to bound memory
    when a whole recording is fed at once).

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
        self._plan = _welch_plan(self.window_samples, self.sample_rate_hz)
        self._n_sums = len(BANDS) + 1
        self.reset()

    def reset(self) -> None:
        """Forget all buffered samples (e.g. after a gap or a board restart)."""
        # The last (up to) window_samples samples fed; its first column is stream sample
        # samples_seen - _tail.shape[1].
        self._tail = np.zeros((self.n_channels, 0), dtype=np.float64)
        self.samples_seen = 0
        self._next_emit = self.window_samples
        # Band sums of Welch segments still needed, by stream sample of the segment start
        # (sorted ascending): (n, n_channels, n_bands + 1) µV².
        self._seg_starts = np.zeros(0, dtype=np.int64)
        self._seg_sums = np.zeros((0, self.n_channels, self._n_sums), dtype=np.float64)

    def feed(self, chunk: np.ndarray) -> List[BandPowers]:
        """Add a chunk (µV, shape ``(n_channels, n)``, any n >= 0); return new windows.

        Returns
        -------
        list of BandPowers
            One per hop boundary crossed by this chunk, oldest first, each with
            ``window_end_sample`` set (samples fed up to the window's last sample).
        """
        data = _as_2d(chunk, "chunk")
        if data.shape[0] != self.n_channels:
            raise ValueError(f"chunk has {data.shape[0]} channels, expected {self.n_channels}")
        n = data.shape[1]
        if n == 0:
            return []
        seen_after = self.samples_seen + n
        buf = np.concatenate((self._tail, data), axis=1)
        buf_start = self.samples_seen - self._tail.shape[1]
        out: List[BandPowers] = []
        if seen_after >= self._next_emit:
            ends = np.arange(self._next_emit, seen_after + 1, self.hop_samples, dtype=np.int64)
            for i in range(0, ends.shape[0], SLIDING_BATCH_MAX_WINDOWS):
                out.extend(self._windows(buf, buf_start, ends[i : i + SLIDING_BATCH_MAX_WINDOWS]))
            self._next_emit = int(ends[-1]) + self.hop_samples
        keep = min(self.window_samples, buf.shape[1])
        self._tail = buf[:, buf.shape[1] - keep :].copy()
        self.samples_seen = seen_after
        return out

    def _windows(self, buf: np.ndarray, buf_start: int, ends: np.ndarray) -> List[BandPowers]:
        """The windows ending at stream samples ``ends`` (all inside ``buf``), in one batch."""
        plan = self._plan
        seg_starts = (ends - self.window_samples)[:, np.newaxis] + plan.offsets[np.newaxis, :]
        needed = np.unique(seg_starts)
        cached = self._seg_starts
        if cached.shape[0]:
            at = np.minimum(np.searchsorted(cached, needed), cached.shape[0] - 1)
            new = needed[cached[at] != needed]
        else:
            new = needed
        if new.shape[0]:
            new_sums = _segment_band_sums(buf, new - buf_start, plan)
            starts = np.concatenate((cached, new))
            sums = np.concatenate((self._seg_sums, new_sums))
            if cached.shape[0] and new[0] < cached[-1]:
                order = np.argsort(starts, kind="stable")
                starts, sums = starts[order], sums[order]
        else:
            starts, sums = cached, self._seg_sums
        window_sums = sums[np.searchsorted(starts, seg_starts)].mean(axis=1)
        # Keep only segments a later window can still use.
        first_needed = int(ends[-1]) + self.hop_samples - self.window_samples
        keep_from = int(np.searchsorted(starts, first_needed))
        self._seg_starts, self._seg_sums = starts[keep_from:], sums[keep_from:]
        absolute, relative, total = _split_sums(window_sums)
        return [
            BandPowers(absolute[w], relative[w], total[w], BAND_NAMES, window_end_sample=int(end))
            for w, end in enumerate(ends)
        ]

"""The built-in EEG epoch encoder: one epoch -> a 32-dimensional float32 vector of its spectral shape.

Why this encoder
----------------
EEG similarity search ("when was my brain in a state like this one?") needs a vector per
epoch such that cosine distance means "similar brain state". What tells states apart in
scalp EEG (drowsy, relaxed, focused, eyes open/closed, artefact) is the shape of the power
spectrum: how much delta, theta, alpha, beta and gamma there is, how steep the aperiodic 1/f
background is, where the alpha peak sits. So the vector is a set of classic, interpretable
quantitative-EEG features of the Welch power spectrum. It needs nothing downloaded, no model
and no training, it is deterministic (same input, bit-identical output, whatever the batch
it comes in), and it is fast: one Welch estimate of every channel of every epoch of a batch
in one FFT call, then arithmetic on the spectra (roughly 10 000 x real time on one core for
16 channels at 256 Hz, about half the time of :func:`scipy.signal.welch` alone on the same
data; see ``bench/neuro_encoder.py``).

How
---
1. **Welch PSD** of every channel, µV²/Hz: Hann segments of :data:`SPECTRAL_SEGMENT_S` (2 s,
   0.5 Hz resolution; at most half the epoch, so a 2 s epoch gets 1 s segments and 1 Hz)
   with 50 % overlap, each segment's mean removed (scipy's ``detrend="constant"``), one-sided
   density scaling as :func:`scipy.signal.welch` (equal to it to rounding). Only the bins in
   :data:`SPECTRAL_RANGE_HZ` (0.5-45 Hz) are kept: below 0.5 Hz is drift and the segment
   mean's leakage, 48-62 Hz is mains, above it mostly muscle. No filter is needed. A floor of
   :data:`SPECTRAL_PSD_FLOOR_UV2_PER_HZ` is added to every bin so that logarithms and ratios
   are defined on a flat channel (a flat channel then has a white spectrum at the floor).
2. **16 features per channel** (table below) from the kept PSD.
3. **Pooled across channels** into a vector independent of the channel count and order: the
   mean (16 dims) and the population standard deviation (16 dims) over the *usable*
   channels. Duplicating every channel leaves both unchanged. A channel is unusable when a
   sample is non-finite or beyond ±:data:`SPECTRAL_MAX_ABS_UV` (it is zeroed before the FFT),
   or when its 0.5-45 Hz power is below :data:`SPECTRAL_MIN_CHANNEL_POWER_UV2` (flat,
   disconnected): dead channels say nothing about the brain and must not pull the vector.
   An epoch with no usable channel pools all of them, so an all-flat (or all-NaN) epoch
   gets one defined vector: that of the white floor spectrum, zero spread.
4. **Standardised by fixed constants**: feature ``j`` of the mean block becomes
   ``(mean_j - SPECTRAL_FEATURE_CENTER[j]) / SPECTRAL_FEATURE_SCALE[j]``, where the centre and
   scale are typical values of resting scalp EEG (5 s epochs; rounded from the spread of the
   2-channel recording in ``tests/data`` and the usual ranges of quantitative EEG). Without
   this, cosine distance would be meaningless: the raw features are mostly positive and of
   very different units (µV², Hz, unitless), so every vector would point the same way and
   the largest-unit feature would dominate. The spread block is the across-channel standard
   deviation in units of the same scale, centred and scaled by the common
   :data:`SPECTRAL_SPREAD_CENTER` / :data:`SPECTRAL_SPREAD_SCALE` and weighted by
   :data:`SPECTRAL_SPREAD_WEIGHT` (0.5): topography matters less to "brain state" than the
   shared spectral shape, and a spread estimated from few channels is noisy. Every value is
   finally clipped to ±:data:`SPECTRAL_Z_CLIP` so that one artefact-driven feature cannot
   decide a distance on its own. The constants are part of the encoder: changing a feature
   or a constant means a new :data:`SPECTRAL_ENCODER_NAME`.

Why these features: log band powers carry the overall amplitude per band (log, because
power is log-normally distributed and ratios between states matter, not differences);
relative band powers carry the shape independent of amplitude (electrode impedance and skull
thickness scale all bands together); entropy, spectral edge, Hjorth mobility and complexity
summarise where the power is and how peaked the spectrum is (sedation, drowsiness, EMG);
the alpha centre of gravity is the individual alpha frequency (slows with drowsiness); the
aperiodic slope is the 1/f exponent, related to arousal. About 32 dims keep the vector small
for the search index (recall and latency are easier at low dimension).

Features
--------
Per channel, from the PSD ``P(f)`` over the kept bins (0.5-45 Hz, bin width ``df``); the
vector's dims ``0-15`` are their channel means (standardised), dims ``16-31`` their
across-channel standard deviations (standardised, weighted), in this order:

====  ===========  ========  ===================================================  ======  =====
dim   name         unit      meaning                                              centre  scale
====  ===========  ========  ===================================================  ======  =====
0     log_delta    log µV²   log10 of band power, 0.5-4 Hz (``Σ P df``)           1.5     0.5
1     log_theta    log µV²   log10 band power, 4-8 Hz                              1.1     0.4
2     log_alpha    log µV²   log10 band power, 8-13 Hz                             1.2     0.5
3     log_beta     log µV²   log10 band power, 13-30 Hz                            1.0     0.35
4     log_gamma    log µV²   log10 band power, 30-45 Hz                            0.5     0.4
5     rel_delta    1         delta power / total 0.5-45 Hz power                  0.40    0.20
6     rel_theta    1         theta / total                                        0.15    0.08
7     rel_alpha    1         alpha / total                                        0.25    0.15
8     rel_beta     1         beta / total                                         0.15    0.08
9     rel_gamma    1         gamma / total                                        0.04    0.03
10    entropy      1         Shannon entropy of ``P / ΣP`` over the bins, / ln    0.70    0.10
                             (number of bins): 1 = white, 0 = one line
11    sef90        Hz        spectral edge: frequency below which 90 % of the     18      6
                             0.5-45 Hz power lies (interpolated within a bin)
12    alpha_cog    Hz        alpha centre of gravity ``Σ f P / Σ P`` over 7-14    10      0.8
                             Hz: the individual alpha (peak) frequency
13    slope        1         aperiodic slope: least-squares slope of              -1.5    0.4
                             ``log10 P`` against ``log10 f`` over 2-45 Hz
                             without 7-14 Hz (alpha); minus the 1/f exponent
14    mobility     Hz        Hjorth mobility from spectral moments,               11      3
                             ``sqrt(m2 / m0)``, ``mk = Σ f^k P``: the mean
                             frequency of the 0.5-45 Hz signal
15    complexity   1         Hjorth complexity ``sqrt(m4 / m2) / mobility``       2.5     0.8
                             (1 for a pure sine, more for broad spectra)
16-31 (name)_sd    as above  standard deviation across usable channels of dims    0.4     0.4
                             0-15, divided by that dim's scale; then (x - 0.4)
                             / 0.4 x 0.5 (weight)
====  ===========  ========  ===================================================  ======  =====

Hjorth parameters are computed from the spectrum (``m0, m2, m4`` are the variances of the
signal and its first and second derivatives, up to ``2π`` factors), so they see only the
0.5-45 Hz band, not drift or mains; mobility is in Hz (time-domain mobility times
``fs / 2π``).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass

import numpy as np
import scipy.fft
from numpy.lib.stride_tricks import as_strided
from scipy import signal

from ...constants import (
    SPECTRAL_ALPHA_RANGE_HZ,
    SPECTRAL_BANDS,
    SPECTRAL_BATCH_VALUES,
    SPECTRAL_EDGE_FRACTION,
    SPECTRAL_FEATURE_CENTER,
    SPECTRAL_FEATURE_SCALE,
    SPECTRAL_MAX_ABS_UV,
    SPECTRAL_MIN_CHANNEL_POWER_UV2,
    SPECTRAL_MIN_EPOCH_S,
    SPECTRAL_MIN_RATE_HZ,
    SPECTRAL_PSD_FLOOR_UV2_PER_HZ,
    SPECTRAL_RANGE_HZ,
    SPECTRAL_SEGMENT_S,
    SPECTRAL_SLOPE_EXCLUDE_HZ,
    SPECTRAL_SLOPE_RANGE_HZ,
    SPECTRAL_SPREAD_CENTER,
    SPECTRAL_SPREAD_SCALE,
    SPECTRAL_SPREAD_WEIGHT,
    SPECTRAL_Z_CLIP,
)

log = logging.getLogger(__name__)

#: Name of the built-in encoder; it names the features, their order and every constant, so a
#: change to any of them is a new name (vectors of different names are never compared).
SPECTRAL_ENCODER_NAME = "miso-spectral-v1"

#: Per-channel features, in vector order (dims 0-15 are their means, 16-31 their spreads).
FEATURE_NAMES: tuple[str, ...] = (
    tuple(f"log_{name}" for name, _, _ in SPECTRAL_BANDS)
    + tuple(f"rel_{name}" for name, _, _ in SPECTRAL_BANDS)
    + ("entropy", "sef90", "alpha_cog", "slope", "mobility", "complexity")
)
N_FEATURES = len(FEATURE_NAMES)
_ENTROPY, _SEF90, _ALPHA_COG, _SLOPE, _MOBILITY, _COMPLEXITY = range(2 * len(SPECTRAL_BANDS), N_FEATURES)
#: Names of all dims of a vector.
DIM_NAMES: tuple[str, ...] = FEATURE_NAMES + tuple(f"{name}_sd" for name in FEATURE_NAMES)

_CENTER = np.asarray(SPECTRAL_FEATURE_CENTER, dtype=np.float64)
_SCALE = np.asarray(SPECTRAL_FEATURE_SCALE, dtype=np.float64)
if _CENTER.shape != (N_FEATURES,) or _SCALE.shape != (N_FEATURES,) or not np.all(_SCALE > 0):
    raise ImportError("SPECTRAL_FEATURE_CENTER/SCALE need one value per feature, scales > 0")


@dataclass(frozen=True)
class _Plan:
    """Everything about the encoding that depends only on ``(n_samples, fs)``, built once.

    Attributes
    ----------
    nperseg, step, n_segments : int
        Welch segment length, hop (samples) and number of segments per epoch.
    taper : ndarray of float32, shape (nperseg,)
        Hann window (scipy's periodic one, as :func:`scipy.signal.welch` uses).
    bin_lo, bin_hi : int
        Kept FFT bins ``[bin_lo, bin_hi)``: those in :data:`SPECTRAL_RANGE_HZ`.
    psd_scale : float
        ``Σ_segments |X_k|²`` times this is the one-sided Welch density, µV²/Hz.
    df : float
        Bin width, Hz.
    freqs : ndarray, shape (n_bins,)
        Frequencies of the kept bins, Hz.
    band_starts : ndarray of intp, shape (n_bands,)
        First kept bin of each band (the bands tile the kept range, so they are contiguous).
    alpha_mask, slope_weights, f2, f4 : ndarray, shape (n_bins,)
        Per-bin weights: 0/1 membership of the alpha centre-of-gravity range; least-squares
        slope weights (``Σ w log10 P`` is the slope); ``f²`` and ``f⁴`` for the Hjorth moments.
    log_n_bins : float
        ``ln(n_bins)``, the entropy of a white spectrum.
    """

    nperseg: int
    step: int
    n_segments: int
    taper: np.ndarray
    bin_lo: int
    bin_hi: int
    psd_scale: float
    df: float
    freqs: np.ndarray
    band_starts: np.ndarray
    alpha_mask: np.ndarray
    slope_weights: np.ndarray
    f2: np.ndarray
    f4: np.ndarray
    log_n_bins: float


@functools.lru_cache(maxsize=32)
def _plan(n_samples: int, sample_rate_hz: float) -> _Plan:
    """Build the :class:`_Plan` of ``n_samples``-sample epochs at ``sample_rate_hz`` Hz."""
    nperseg = int(min(round(SPECTRAL_SEGMENT_S * sample_rate_hz), n_samples // 2))
    step = nperseg - nperseg // 2
    n_segments = (n_samples - nperseg) // step + 1
    taper = np.asarray(signal.get_window("hann", nperseg), dtype=np.float64)
    df = sample_rate_hz / nperseg
    all_freqs = np.arange(nperseg // 2 + 1) * df
    lo, hi = SPECTRAL_RANGE_HZ
    kept = np.flatnonzero((all_freqs >= lo) & (all_freqs < hi))
    bin_lo, bin_hi = int(kept[0]), int(kept[-1]) + 1
    freqs = all_freqs[bin_lo:bin_hi]
    band_starts = np.array([np.searchsorted(freqs, b_lo, side="left") for _, b_lo, _ in SPECTRAL_BANDS], np.intp)
    if np.any(np.diff(band_starts) <= 0) or band_starts[-1] >= freqs.shape[0]:
        raise ValueError(f"{n_samples} samples at {sample_rate_hz} Hz resolve too few bins per band")
    # One-sided density (every kept bin is neither DC nor Nyquist): 2 / (fs Σw²), averaged
    # over the segments.
    psd_scale = 2.0 / (sample_rate_hz * float(np.sum(taper * taper)) * n_segments)
    a_lo, a_hi = SPECTRAL_ALPHA_RANGE_HZ
    alpha_mask = ((freqs >= a_lo) & (freqs < a_hi)).astype(np.float64)
    s_lo, s_hi = SPECTRAL_SLOPE_RANGE_HZ
    x_lo, x_hi = SPECTRAL_SLOPE_EXCLUDE_HZ
    fit = (freqs >= s_lo) & (freqs < s_hi) & ~((freqs >= x_lo) & (freqs < x_hi))
    log_f = np.log10(freqs)
    centred = np.where(fit, log_f - log_f[fit].mean(), 0.0)
    slope_weights = centred / float(np.sum(centred * centred))
    f2 = freqs * freqs
    log.debug(
        "spectral encoder plan n=%d fs=%s: nperseg=%d, %d segments, bins [%d, %d) of %.3f Hz",
        n_samples,
        sample_rate_hz,
        nperseg,
        n_segments,
        bin_lo,
        bin_hi,
        df,
    )
    arrays = (taper.astype(np.float32), freqs, band_starts, alpha_mask, slope_weights, f2, f2 * f2)
    for arr in arrays:
        arr.flags.writeable = False
    taper32, freqs, band_starts, alpha_mask, slope_weights, f2, f4 = arrays
    return _Plan(
        nperseg=nperseg,
        step=step,
        n_segments=n_segments,
        taper=taper32,
        bin_lo=bin_lo,
        bin_hi=bin_hi,
        psd_scale=psd_scale,
        df=df,
        freqs=freqs,
        band_starts=band_starts,
        alpha_mask=alpha_mask,
        slope_weights=slope_weights,
        f2=f2,
        f4=f4,
        log_n_bins=math.log(freqs.shape[0]),
    )


def _welch_psd(x: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD over the kept bins, and which channels are sane.

    Parameters
    ----------
    x : ndarray, shape (n_epochs, n_channels, n_samples)
        EEG in µV, any float dtype.
    plan : _Plan

    Returns
    -------
    psd : ndarray of float64, shape (n_epochs, n_channels, n_bins)
        µV²/Hz, plus the floor.
    sane : ndarray of bool, shape (n_epochs, n_channels)
        Every sample finite and within ±:data:`SPECTRAL_MAX_ABS_UV` (NaN fails both tests).

    Notes
    -----
    The epoch mean of each channel is removed in float64 first (boards deliver DC offsets of
    thousands of µV), then the rest runs in float32, which halves the memory traffic and the
    FFT time; float32 rounding (1e-7 of a signal of tens of µV) is far below anything the
    features resolve. Every operation is per epoch and channel, so an epoch's result does
    not depend on the batch it is in.
    """
    sane = (x.max(axis=-1) <= SPECTRAL_MAX_ABS_UV) & (x.min(axis=-1) >= -SPECTRAL_MAX_ABS_UV)
    if not sane.all():
        x = np.where(sane[..., np.newaxis], x, 0.0)
    centred = np.empty(x.shape, dtype=np.float32)
    np.subtract(x, x.mean(axis=-1, keepdims=True, dtype=np.float64), out=centred, casting="same_kind")
    e_stride, c_stride, t_stride = centred.strides
    segments = as_strided(
        centred,
        shape=(x.shape[0], x.shape[1], plan.n_segments, plan.nperseg),
        strides=(e_stride, c_stride, t_stride * plan.step, t_stride),
        writeable=False,
    )
    segments = segments - segments.mean(axis=-1, keepdims=True)
    segments *= plan.taper
    spectrum = scipy.fft.rfft(segments, axis=-1, overwrite_x=True)[..., plan.bin_lo : plan.bin_hi]
    power = spectrum.real * spectrum.real
    power += spectrum.imag * spectrum.imag
    psd = power.sum(axis=-2, dtype=np.float64)
    psd *= plan.psd_scale
    psd += SPECTRAL_PSD_FLOOR_UV2_PER_HZ
    return psd, sane


def _features(psd: np.ndarray, plan: _Plan) -> tuple[np.ndarray, np.ndarray]:
    """The 16 per-channel features (module docstring table) and the 0.5-45 Hz power of each channel.

    Parameters
    ----------
    psd : ndarray, shape (..., n_bins)
        Welch PSD over the kept bins, µV²/Hz, floor included (so every bin is > 0).
    plan : _Plan

    Returns
    -------
    features : ndarray, shape (..., 16)
        In :data:`FEATURE_NAMES` order, raw units.
    total : ndarray, shape (...)
        Power over :data:`SPECTRAL_RANGE_HZ`, µV².
    """
    feats = np.empty(psd.shape[:-1] + (N_FEATURES,), dtype=np.float64)
    n_bands = len(SPECTRAL_BANDS)
    band = np.add.reduceat(psd, plan.band_starts, axis=-1) * plan.df
    m0 = psd.sum(axis=-1)
    total = m0 * plan.df
    feats[..., 0:n_bands] = np.log10(band)
    feats[..., n_bands : 2 * n_bands] = band / total[..., np.newaxis]
    share = psd / m0[..., np.newaxis]
    feats[..., _ENTROPY] = -(share * np.log(share)).sum(axis=-1) / plan.log_n_bins
    # Spectral edge: first bin where the cumulative share reaches the fraction, then linear
    # interpolation inside that bin (bin k covers [f_k - df/2, f_k + df/2)).
    cumulative = np.cumsum(share, axis=-1)
    k = np.minimum((cumulative < SPECTRAL_EDGE_FRACTION).sum(axis=-1), psd.shape[-1] - 1)[..., np.newaxis]
    share_k = np.take_along_axis(share, k, axis=-1)[..., 0]
    before_k = np.take_along_axis(cumulative, k, axis=-1)[..., 0] - share_k
    inside = np.clip((SPECTRAL_EDGE_FRACTION - before_k) / share_k, 0.0, 1.0)
    feats[..., _SEF90] = plan.freqs[k[..., 0]] - 0.5 * plan.df + plan.df * inside
    alpha = psd * plan.alpha_mask
    feats[..., _ALPHA_COG] = (alpha * plan.freqs).sum(axis=-1) / alpha.sum(axis=-1)
    feats[..., _SLOPE] = (np.log10(psd) * plan.slope_weights).sum(axis=-1)
    m2 = (psd * plan.f2).sum(axis=-1)
    m4 = (psd * plan.f4).sum(axis=-1)
    mobility = np.sqrt(m2 / m0)
    feats[..., _MOBILITY] = mobility
    feats[..., _COMPLEXITY] = np.sqrt(m4 / m2) / mobility
    return feats, total


def _pool(feats: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Standardised vectors ``(n_epochs, 32)`` float64 from per-channel features ``(n_epochs, n_channels, 16)``.

    Mean and population standard deviation over the usable channels of each epoch (all
    channels where none is usable), then the fixed standardisation and clip of the module
    docstring.
    """
    weight = usable.astype(np.float64)
    none = ~usable.any(axis=-1)
    if none.any():
        weight[none] = 1.0
    weight = weight[..., np.newaxis]
    count = weight.sum(axis=-2)
    mean = (feats * weight).sum(axis=-2) / count
    spread = np.sqrt((((feats - mean[:, np.newaxis, :]) ** 2) * weight).sum(axis=-2) / count)
    out = np.empty((feats.shape[0], 2 * N_FEATURES), dtype=np.float64)
    out[:, :N_FEATURES] = (mean - _CENTER) / _SCALE
    out[:, N_FEATURES:] = (spread / _SCALE - SPECTRAL_SPREAD_CENTER) * (SPECTRAL_SPREAD_WEIGHT / SPECTRAL_SPREAD_SCALE)
    np.clip(out, -SPECTRAL_Z_CLIP, SPECTRAL_Z_CLIP, out=out)
    return out


class SpectralEncoder:
    """Deterministic EEG epoch encoder: spectral-shape features, pooled over channels (module docstring).

    Attributes
    ----------
    name : str
        :data:`SPECTRAL_ENCODER_NAME`; vectors are comparable only between equal names.
    dim : int
        Length of a vector, 32.
    """

    name: str = SPECTRAL_ENCODER_NAME
    dim: int = 2 * N_FEATURES

    def encode(self, signals_uv: np.ndarray, sample_rate_hz: float) -> np.ndarray:
        """Encode EEG epochs into vectors whose cosine distance compares spectral shape.

        Parameters
        ----------
        signals_uv : array_like, shape (n_epochs, n_channels, n_samples) or (n_channels, n_samples)
            EEG in µV (a 2-D array is one epoch). Any number of channels >= 1, in any order;
            at least :data:`SPECTRAL_MIN_EPOCH_S` seconds. Non-finite samples are allowed
            (their channel is left out).
        sample_rate_hz : float
            Sample rate in Hz, at least :data:`SPECTRAL_MIN_RATE_HZ` (the features reach 45 Hz).

        Returns
        -------
        ndarray of float32, shape (n_epochs, dim)
            One finite vector per epoch, dims as in the module docstring's table.

        Raises
        ------
        ValueError
            Wrong shape, no channels, too short epochs or a sample rate below the minimum.
        """
        x = np.asarray(signals_uv)
        if x.ndim == 2:
            x = x[np.newaxis]
        if x.ndim != 3:
            raise ValueError(f"signals_uv must be (n_epochs, n_channels, n_samples), got shape {x.shape}")
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float64)
        rate = float(sample_rate_hz)
        if not math.isfinite(rate) or rate < SPECTRAL_MIN_RATE_HZ:
            raise ValueError(f"sample_rate_hz must be >= {SPECTRAL_MIN_RATE_HZ:g} Hz, got {sample_rate_hz!r}")
        n_epochs, n_channels, n_samples = x.shape
        if n_channels < 1:
            raise ValueError("signals_uv has no channels")
        if n_samples < SPECTRAL_MIN_EPOCH_S * rate - 1e-9:
            raise ValueError(f"epochs must be >= {SPECTRAL_MIN_EPOCH_S:g} s; got {n_samples} samples at {rate:g} Hz")
        plan = _plan(n_samples, rate)
        out = np.empty((n_epochs, self.dim), dtype=np.float32)
        # Batches bounded to ~SPECTRAL_BATCH_VALUES segment samples (tens of MB of scratch):
        # each is still one FFT call over all its epochs and channels.
        per_batch = max(1, SPECTRAL_BATCH_VALUES // (n_channels * plan.n_segments * plan.nperseg))
        for start in range(0, n_epochs, per_batch):
            psd, sane = _welch_psd(x[start : start + per_batch], plan)
            feats, total = _features(psd, plan)
            vectors = _pool(feats, sane & (total >= SPECTRAL_MIN_CHANNEL_POWER_UV2))
            # The features are finite by construction (floor > 0 in every bin); this keeps
            # the contract "always finite" even against a case not foreseen.
            out[start : start + per_batch] = np.nan_to_num(
                vectors, nan=0.0, posinf=SPECTRAL_Z_CLIP, neginf=-SPECTRAL_Z_CLIP
            )
        return out

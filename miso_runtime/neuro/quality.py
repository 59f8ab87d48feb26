"""Per-channel EEG signal quality over a window: flat, railed, noisy or good.

Why: a capture UI must tell the user which electrode to fix before any band power is
trusted, and the scores should skip channels that are not EEG. The tests are cheap
(a std, a few comparisons, one Welch PSD) so they can run on every hop. Thresholds: see the
constants table in :mod:`miso_runtime.neuro.bands`.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import List, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import signal

from miso_runtime.constants import (
    QUALITY_CLIP_TOLERANCE_UV,
    QUALITY_EEG_RANGE_HZ,
    QUALITY_FLAT_STD_UV,
    QUALITY_LINE_HALF_WIDTH_HZ,
    QUALITY_LINE_RATIO,
    QUALITY_NOISY_RMS_UV,
    QUALITY_RAIL_UV,
    QUALITY_RAILED_FRACTION,
)
from miso_runtime.neuro.bands import (
    _as_2d,
    _check_rate,
    welch_nperseg,
)

log = logging.getLogger(__name__)


class ChannelQuality(str, enum.Enum):
    """Quality verdict of one channel (a ``str`` so it serialises as its value)."""

    GOOD = "good"
    FLAT = "flat"
    RAILED = "railed"
    NOISY = "noisy"


@dataclass(frozen=True)
class ChannelQualityReport:
    """Verdict and the measurements behind it, for one channel.

    Attributes
    ----------
    status : ChannelQuality
    std_uv : float
        Standard deviation, µV.
    rms_uv : float
        RMS after removing the mean, µV (equals ``std_uv``; kept for clarity in UIs).
    railed_fraction : float
        Share of samples at the rail or stuck at the window's max/min.
    line_ratio : float | None
        Mains-band power / 1-40 Hz power; None when no ``line_hz`` was given.
    """

    status: ChannelQuality
    std_uv: float
    rms_uv: float
    railed_fraction: float
    line_ratio: Optional[float]


def _relative_psd(data: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Welch PSD up to a constant factor (Hann, 1 s segments, 50 % overlap, mean removed per segment).

    Why not ``scipy.signal.welch``: the line test only needs a ratio of two band sums, so the
    density scaling can go, and scipy's general machinery costs several times the FFT itself
    on a 2 s window, which the live pipeline checks every second.
    """
    nperseg = welch_nperseg(data.shape[1], rate)
    step = max(1, nperseg // 2)
    segments = sliding_window_view(data, nperseg, axis=-1)[:, ::step, :]
    segments = segments - segments.mean(axis=-1, keepdims=True)
    spectrum = np.fft.rfft(segments * signal.get_window("hann", nperseg), axis=-1)
    psd = (spectrum.real**2 + spectrum.imag**2).mean(axis=1)
    return np.fft.rfftfreq(nperseg, 1.0 / rate), psd


def assess_quality(
    window: np.ndarray,
    sample_rate_hz: float,
    line_hz: Optional[float] = None,
) -> List[ChannelQualityReport]:
    """Classify each channel of a window, checks in this order (first match wins).

    1. **railed** — more than ``QUALITY_RAILED_FRACTION`` (10 %) of samples have
       ``|x| >= QUALITY_RAIL_UV`` (187 500 µV, the ADS1299 full scale at gain 24). Checked
       before "flat" because an amplifier stuck at the rail is also flat.
    2. **flat** — std < ``QUALITY_FLAT_STD_UV`` (0.5 µV): disconnected or shorted input.
    3. **railed** — more than 10 % of samples sit within ``QUALITY_CLIP_TOLERANCE_UV`` of
       the window's own max or min: a clipping plateau from a board with a lower rail.
       Real EEG (continuous-valued) touches its extreme at one or two samples.
    4. **noisy** — RMS (mean removed) > ``QUALITY_NOISY_RMS_UV`` (200 µV), or, when
       ``line_hz`` is given, power in ``line_hz ± 2 Hz`` exceeds ``QUALITY_LINE_RATIO`` times
       the power in 1-40 Hz (mains stronger than the EEG itself).
    5. **good** otherwise.

    Parameters
    ----------
    window : ndarray, shape (n_channels, n_samples)
        EEG in µV. For the RMS test pass the band-passed signal (the
        :class:`~miso_runtime.neuro.filters.StreamingFilter` output): raw BrainFlow data
        carries drifts of hundreds of µV that are not noise. For the line test pass the
        signal *before* the notch (after it, mains is gone by construction). The rail
        test needs the raw signal (filters move a plateau away from the rail).
    sample_rate_hz : float
        Sampling rate in Hz.
    line_hz : float or None
        Mains frequency in Hz for the line-noise test; None skips it.

    Returns
    -------
    list of ChannelQualityReport
        One per channel.
    """
    rate = _check_rate(sample_rate_hz)
    data = _as_2d(window)
    n = data.shape[1]
    if n < 2:
        raise ValueError(f"window must hold at least 2 samples, got {n}")
    if line_hz is not None and not (0 < line_hz + QUALITY_LINE_HALF_WIDTH_HZ < rate / 2):
        raise ValueError(
            f"line_hz={line_hz} (± {QUALITY_LINE_HALF_WIDTH_HZ} Hz) must lie below the Nyquist frequency {rate / 2} Hz"
        )

    std = data.std(axis=1)
    at_rail = (np.abs(data) >= QUALITY_RAIL_UV).mean(axis=1)
    hi = data.max(axis=1, keepdims=True)
    lo = data.min(axis=1, keepdims=True)
    # Any signal touches its max and min once each; only the samples beyond those two count,
    # so short windows of clean EEG are not mistaken for a plateau.
    n_extreme = ((data >= hi - QUALITY_CLIP_TOLERANCE_UV) | (data <= lo + QUALITY_CLIP_TOLERANCE_UV)).sum(axis=1)
    at_extreme = np.maximum(n_extreme - 2, 0) / n

    line_ratio = None
    if line_hz is not None:
        freqs, psd = _relative_psd(data, rate)
        line_mask = np.abs(freqs - line_hz) <= QUALITY_LINE_HALF_WIDTH_HZ
        eeg_mask = (freqs >= QUALITY_EEG_RANGE_HZ[0]) & (freqs < QUALITY_EEG_RANGE_HZ[1])
        line_p = psd[:, line_mask].sum(axis=1)
        eeg_p = psd[:, eeg_mask].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            line_ratio = np.where(eeg_p > 0, line_p / eeg_p, np.where(line_p > 0, np.inf, 0.0))

    reports = []
    for ch in range(data.shape[0]):
        ratio = None if line_ratio is None else float(line_ratio[ch])
        if at_rail[ch] > QUALITY_RAILED_FRACTION:
            status, railed = ChannelQuality.RAILED, float(at_rail[ch])
        elif std[ch] < QUALITY_FLAT_STD_UV:
            status, railed = ChannelQuality.FLAT, float(at_rail[ch])
        elif at_extreme[ch] > QUALITY_RAILED_FRACTION:
            status, railed = ChannelQuality.RAILED, float(at_extreme[ch])
        elif std[ch] > QUALITY_NOISY_RMS_UV or (ratio is not None and ratio > QUALITY_LINE_RATIO):
            status, railed = ChannelQuality.NOISY, float(max(at_rail[ch], at_extreme[ch]))
        else:
            status, railed = ChannelQuality.GOOD, float(max(at_rail[ch], at_extreme[ch]))
        reports.append(ChannelQualityReport(status, float(std[ch]), float(std[ch]), railed, ratio))
    return reports

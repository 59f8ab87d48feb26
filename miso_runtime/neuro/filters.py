"""Causal streaming EEG filters (mains notch + Butterworth band-pass) with carried state.

Why causal and stateful: the capture worker sees the signal in chunks as the board sends
them and must display/score each chunk at once, so zero-phase (forward-backward) filtering
is impossible; carrying the second-order-section state between calls makes chunked output
identical to filtering the whole recording in one go, so results never depend on the
chunk sizes the board happened to deliver. Constants: see the table in
:mod:`miso_runtime.neuro.bands`.
"""

from __future__ import annotations

import logging
import math
from typing import Literal, Optional, Tuple

import numpy as np
from scipy import signal

from miso_runtime.constants import (
    ALLOWED_NOTCH_HZ,
    DEFAULT_FILTER_ORDER,
    NOTCH_QUALITY,
)

log = logging.getLogger(__name__)

InitialState = Literal["zeros", "step"]


def design_sos(
    sample_rate_hz: float,
    notch_hz: Optional[float],
    bandpass_hz: Optional[Tuple[float, float]],
    order: int = DEFAULT_FILTER_ORDER,
) -> np.ndarray:
    """Second-order sections of the notch (if any) followed by the band-pass (if any).

    Parameters
    ----------
    sample_rate_hz : float
        Sampling rate in Hz.
    notch_hz : {50, 60} or None
        Mains frequency to remove, Hz (IIR notch, Q = ``NOTCH_QUALITY``).
    bandpass_hz : (low_hz, high_hz) or None
        Butterworth band-pass edges, Hz; ``0 < low < high < Nyquist``.
    order : int
        Butterworth order (>= 1).

    Returns
    -------
    ndarray, shape (n_sections, 6)
        Empty ``(0, 6)`` when neither filter is requested.

    Raises
    ------
    ValueError
        Naming the offending parameter.
    """
    if not (isinstance(sample_rate_hz, (int, float)) and math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
        raise ValueError(f"sample_rate_hz must be a positive number, got {sample_rate_hz!r}")
    nyquist = sample_rate_hz / 2.0
    sections = []
    if notch_hz is not None:
        if float(notch_hz) not in ALLOWED_NOTCH_HZ:
            raise ValueError(f"notch_hz must be one of {ALLOWED_NOTCH_HZ} or None, got {notch_hz!r}")
        if notch_hz >= nyquist:
            raise ValueError(f"notch_hz={notch_hz} is at or above the Nyquist frequency {nyquist} Hz")
        b, a = signal.iirnotch(float(notch_hz), NOTCH_QUALITY, fs=sample_rate_hz)
        sections.append(signal.tf2sos(b, a))
    if bandpass_hz is not None:
        try:
            low, high = (float(v) for v in bandpass_hz)
        except (TypeError, ValueError):
            raise ValueError(f"bandpass_hz must be (low_hz, high_hz), got {bandpass_hz!r}") from None
        if not (math.isfinite(low) and low > 0):
            raise ValueError(f"bandpass_hz low edge must be > 0 Hz, got {low}")
        if low >= high:
            raise ValueError(f"bandpass_hz low edge {low} must be below high edge {high}")
        if high >= nyquist:
            raise ValueError(f"bandpass_hz high edge {high} must be below the Nyquist frequency {nyquist} Hz")
        if int(order) != order or order < 1:
            raise ValueError(f"order must be a positive integer, got {order!r}")
        sections.append(signal.butter(int(order), [low, high], btype="bandpass", fs=sample_rate_hz, output="sos"))
    if not sections:
        return np.zeros((0, 6), dtype=np.float64)
    return np.vstack(sections).astype(np.float64)


class StreamingFilter:
    """Causal notch + band-pass applied chunk by chunk with carried filter state.

    Filtering a signal in chunks of any sizes gives the same output as one call on the
    whole signal (the per-section state ``zi`` of :func:`scipy.signal.sosfilt` is carried).

    Parameters
    ----------
    sample_rate_hz : float
        Sampling rate in Hz.
    notch_hz : {50, 60} or None
        Mains frequency to notch out, Hz; None for no notch.
    bandpass_hz : (low_hz, high_hz) or None
        Butterworth band-pass edges in Hz (e.g. ``(1.0, 45.0)``); None for none.
    order : int
        Butterworth order (default ``DEFAULT_FILTER_ORDER`` = 4).
    initial_state : {"step", "zeros"}
        How the state starts (and restarts after :meth:`reset`). ``"step"`` (default)
        assumes the signal has sat at its first sample forever (``sosfilt_zi`` scaled per
        channel): BrainFlow boards deliver DC offsets of thousands of µV, and a zero state
        would turn that offset into a large high-pass transient lasting seconds.
        ``"zeros"`` matches plain ``sosfilt`` with no ``zi``.
    """

    def __init__(
        self,
        sample_rate_hz: float,
        notch_hz: Optional[float] = None,
        bandpass_hz: Optional[Tuple[float, float]] = None,
        order: int = DEFAULT_FILTER_ORDER,
        initial_state: InitialState = "step",
    ) -> None:
        if initial_state not in ("step", "zeros"):
            raise ValueError(f"initial_state must be 'step' or 'zeros', got {initial_state!r}")
        self.sample_rate_hz = float(sample_rate_hz) if isinstance(sample_rate_hz, (int, float)) else sample_rate_hz
        self.notch_hz = notch_hz
        self.bandpass_hz = None if bandpass_hz is None else tuple(bandpass_hz)
        self.order = order
        self.initial_state = initial_state
        self.sos = design_sos(self.sample_rate_hz, notch_hz, bandpass_hz, order)
        self._zi_unit = signal.sosfilt_zi(self.sos) if len(self.sos) else None
        self._state: Optional[np.ndarray] = None
        self._n_channels: Optional[int] = None
        log.debug(
            "StreamingFilter %s Hz notch=%s bandpass=%s order=%s: %d sections",
            sample_rate_hz,
            notch_hz,
            bandpass_hz,
            order,
            len(self.sos),
        )

    def reset(self) -> None:
        """Forget the filter state; the next chunk starts a new signal."""
        self._state = None
        self._n_channels = None

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """Filter the next chunk of the stream.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_samples)
            EEG in µV; a 1-D array is one channel. ``n_samples`` may be 0.

        Returns
        -------
        ndarray
            Filtered chunk in µV, same shape (a new array).
        """
        data = np.asarray(chunk, dtype=np.float64)
        squeeze = data.ndim == 1
        if squeeze:
            data = data[np.newaxis, :]
        if data.ndim != 2:
            raise ValueError(f"chunk must be (n_channels, n_samples), got shape {data.shape}")
        if self._n_channels is not None and data.shape[0] != self._n_channels:
            raise ValueError(f"chunk has {data.shape[0]} channels, the stream has {self._n_channels}")
        if data.shape[1] == 0 or len(self.sos) == 0:
            out = data.copy()
            return out[0] if squeeze else out
        if self._state is None:
            self._n_channels = data.shape[0]
            if self.initial_state == "step":
                # (n_sections, 2) x first sample per channel -> (n_sections, n_channels, 2)
                self._state = self._zi_unit[:, np.newaxis, :] * data[np.newaxis, :, 0:1]
            else:
                self._state = np.zeros((len(self.sos), data.shape[0], 2))
        out, self._state = signal.sosfilt(self.sos, data, axis=-1, zi=self._state)
        return out[0] if squeeze else out

    __call__ = process

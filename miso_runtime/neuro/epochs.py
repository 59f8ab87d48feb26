"""Cut a sample stream into fixed-length (optionally overlapping) epochs with metrics.

Why: the sliding band powers update every 0.25 s, far too often to store; an epoch of
5 s summarises them (means of absolute/relative band powers and derived scores) with UTC
start/end times, which is what gets persisted and charted. Epochs are counted in samples,
not wall-clock time, so their number depends only on the data: for T seconds of data,
``floor((T - epoch_s) / (epoch_s - overlap_s)) + 1`` epochs (0 if ``T < epoch_s``).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from miso_runtime.constants import (
    BAND_NAMES,
    EPOCH_DEFAULT_S,
    EPOCH_MAX_OVERLAP_FRACTION,
)
from miso_runtime.neuro.bands import (
    SCORE_NAMES,
    BandPowers,
    _check_rate,
    derived_scores_array,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochMetrics:
    """Means over the sliding windows that end inside one epoch.

    Attributes
    ----------
    absolute : ndarray, shape (n_channels, n_bands)
        Mean absolute band power, µV².
    relative : ndarray, shape (n_channels, n_bands)
        Mean relative band power (unitless).
    scores : dict of str to float or None
        Mean of each :class:`~miso_runtime.neuro.bands.DerivedScores` field over the
        windows where it was defined (None if none); empty without channel names.
    n_windows : int
        Number of sliding windows averaged.
    band_names : tuple of str
    """

    absolute: np.ndarray
    relative: np.ndarray
    scores: Dict[str, Optional[float]]
    n_windows: int
    band_names: Tuple[str, ...] = BAND_NAMES

    def to_dict(self) -> Dict[str, object]:
        """JSON-friendly form: per band, a list with one value per channel."""
        return {
            "absolute": {n: self.absolute[:, i].tolist() for i, n in enumerate(self.band_names)},
            "relative": {n: self.relative[:, i].tolist() for i, n in enumerate(self.band_names)},
            "scores": dict(self.scores),
            "n_windows": self.n_windows,
        }


@dataclass(frozen=True)
class Epoch:
    """One epoch of the stream.

    Attributes
    ----------
    start_utc_ms : int
        UTC time of the epoch's first sample, milliseconds since the Unix epoch.
    end_utc_ms : int
        ``start_utc_ms + n_samples / fs`` in ms (exclusive end: the time the sample after
        the epoch would have).
    n_samples : int
        Samples in the epoch (``round(epoch_s * fs)``).
    metrics : EpochMetrics | None
        None when no sliding window ended inside the epoch.
    first_sample : int
        Index of the epoch's first sample in the stream (0-based).
    raw_uv : ndarray or None, shape (n_channels, n_samples)
        The epoch's unfiltered EEG in µV (what the recording file holds), for its embedding;
        set by :class:`~miso_runtime.neuro.pipeline.SignalPipeline`, None from a bare Epocher.
    """

    start_utc_ms: int
    end_utc_ms: int
    n_samples: int
    metrics: Optional[EpochMetrics]
    first_sample: int = 0
    raw_uv: Optional[np.ndarray] = None


class Epocher:
    """Group a stream and its sliding band powers into epochs.

    Feed every chunk with the timestamp of its first sample, together with the
    :class:`BandPowers` that :class:`~miso_runtime.neuro.bands.SlidingBandPowers` returned
    for that same chunk (both must have been started/reset together so their sample
    counts agree). A window belongs to an epoch when its ``window_end_sample`` lies in
    ``(epoch_start, epoch_end]``, i.e. it was completed by samples of the epoch.

    Parameters
    ----------
    sample_rate_hz : float
        Sampling rate in Hz.
    epoch_s : float
        Epoch length in seconds (default 5 s).
    overlap_s : float
        Overlap of consecutive epochs in seconds, in
        ``[0, EPOCH_MAX_OVERLAP_FRACTION * epoch_s]`` = [0, 4.5] s for 5 s epochs.
    channel_names : sequence of str or None
        Electrode names, for the derived scores (frontal asymmetry needs them); None
        leaves ``metrics.scores`` empty.
    """

    def __init__(
        self,
        sample_rate_hz: float,
        epoch_s: float = EPOCH_DEFAULT_S,
        overlap_s: float = 0.0,
        channel_names: Optional[Sequence[str]] = None,
    ) -> None:
        self.sample_rate_hz = _check_rate(sample_rate_hz)
        if not (epoch_s > 0):
            raise ValueError(f"epoch_s must be positive, got {epoch_s!r}")
        max_overlap = EPOCH_MAX_OVERLAP_FRACTION * epoch_s
        if not (0.0 <= overlap_s <= max_overlap):
            raise ValueError(f"overlap_s must be within [0, {max_overlap:g}] s, got {overlap_s!r}")
        self.epoch_s = float(epoch_s)
        self.overlap_s = float(overlap_s)
        self.epoch_samples = int(round(epoch_s * self.sample_rate_hz))
        self.step_samples = self.epoch_samples - int(round(overlap_s * self.sample_rate_hz))
        if self.epoch_samples < 1 or self.step_samples < 1:
            raise ValueError("epoch_s / overlap_s leave less than one sample per epoch step")
        self.channel_names = None if channel_names is None else list(channel_names)
        self.reset()

    def reset(self) -> None:
        """Start over: sample count 0, no pending windows."""
        self.samples_seen = 0
        self._next_start = 0
        # (first_sample_index, timestamp_s) of recent chunks, to time any sample.
        self._anchors: Deque[Tuple[int, float]] = deque()
        self._windows: Deque[Tuple[int, BandPowers]] = deque()

    def _time_of(self, sample: int) -> float:
        """Timestamp (s) of a sample, from the last chunk that started at or before it."""
        anchor = self._anchors[0]
        for a in self._anchors:
            if a[0] <= sample:
                anchor = a
            else:
                break
        return anchor[1] + (sample - anchor[0]) / self.sample_rate_hz

    def feed(
        self,
        chunk: np.ndarray,
        first_sample_timestamp_s: float,
        band_powers: Sequence[BandPowers] = (),
    ) -> List[Epoch]:
        """Add a chunk; return the epochs it completed, oldest first.

        Parameters
        ----------
        chunk : ndarray, shape (n_channels, n_samples)
            EEG in µV (only its length is used; the band powers carry the spectra).
        first_sample_timestamp_s : float
            UTC time of the chunk's first sample, seconds since the Unix epoch (BrainFlow's
            timestamp channel). Gaps between chunks are honoured per chunk.
        band_powers : sequence of BandPowers
            Sliding windows completed by this chunk. A window without
            ``window_end_sample`` is taken to end at this chunk's last sample.
        """
        data = np.asarray(chunk)
        n = int(data.shape[-1]) if data.ndim else 0
        if n:
            self._anchors.append((self.samples_seen, float(first_sample_timestamp_s)))
        self.samples_seen += n
        for bp in band_powers:
            end = bp.window_end_sample if bp.window_end_sample is not None else self.samples_seen
            self._windows.append((end, bp))

        out: List[Epoch] = []
        while self._next_start + self.epoch_samples <= self.samples_seen:
            start = self._next_start
            stop = start + self.epoch_samples
            members = [bp for end, bp in self._windows if start < end <= stop]
            t0 = self._time_of(start)
            out.append(
                Epoch(
                    start_utc_ms=int(round(t0 * 1000.0)),
                    end_utc_ms=int(round((t0 + self.epoch_samples / self.sample_rate_hz) * 1000.0)),
                    n_samples=self.epoch_samples,
                    metrics=self._metrics(members),
                    first_sample=start,
                )
            )
            self._next_start += self.step_samples
        # Drop what no future epoch can need.
        while self._windows and self._windows[0][0] <= self._next_start:
            self._windows.popleft()
        while len(self._anchors) > 1 and self._anchors[1][0] <= self._next_start:
            self._anchors.popleft()
        return out

    def _metrics(self, members: List[BandPowers]) -> Optional[EpochMetrics]:
        """Means over the windows of one epoch.

        The derived scores of all ~20 windows come from one vectorised
        :func:`~miso_runtime.neuro.bands.derived_scores_array` call (per window, one by
        one, they used to cost more than the band powers themselves); each score is the
        mean over the windows that define it, as before.
        """
        if not members:
            return None
        abs_stack = np.stack([bp.absolute for bp in members])
        absolute = abs_stack.mean(axis=0)
        with np.errstate(invalid="ignore"):
            rel_stack = np.stack([bp.relative for bp in members])
            relative = np.full(absolute.shape, np.nan)
            ok = np.isfinite(rel_stack).any(axis=0)
            relative[ok] = np.nanmean(rel_stack[:, ok], axis=0)
        scores: Dict[str, Optional[float]] = {}
        if self.channel_names is not None:
            per_window = derived_scores_array(abs_stack, self.channel_names, members[0].band_names)
            defined = ~np.isnan(per_window)
            counts = defined.sum(axis=0)
            sums = np.where(defined, per_window, 0.0).sum(axis=0)
            for j, name in enumerate(SCORE_NAMES):
                scores[name] = float(sums[j] / counts[j]) if counts[j] else None
        return EpochMetrics(absolute=absolute, relative=relative, scores=scores, n_windows=len(members))

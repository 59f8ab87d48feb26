"""The signal pipeline of one board: raw board rows in, band-power frames and epochs out.

Why one class: the live capture worker, the CSV analysis of a recording and the benchmark
must compute exactly the same thing, so all three feed board data through
:class:`SignalPipeline` (causal notch and band-pass -> sliding Welch band powers every hop
-> 5 s epochs), and only differ in where the data comes from.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .bands import BandPowers, SlidingBandPowers, band_powers, derived_scores
from .epochs import Epoch, Epocher
from .filters import StreamingFilter
from .layout import BoardLayout, PipelineConfig
from .quality import ChannelQualityReport, assess_quality

logger = logging.getLogger(__name__)

#: Seconds between two signal-quality checks (quality changes slowly; each check costs a Welch).
QUALITY_INTERVAL_S = 1.0
#: Shortest window, seconds, of the warm-up frames sent before the first full window: a
#: display gets band powers half a second after the board starts instead of a whole window
#: later, at the coarser resolution of the shorter window (1 / 0.5 s = 2 Hz bins).
WARMUP_MIN_WINDOW_S = 0.5


@dataclass(frozen=True)
class BandsFrame:
    """One sliding window's band powers, with the time of the sample that completed it.

    Attributes
    ----------
    powers : BandPowers
        Absolute (µV²) and relative band powers per channel.
    window_end_sample : int
        Samples fed since the pipeline (re)started, up to and including this window's last.
    window_end_ts_s : float
        Board timestamp of the window's last sample, UNIX seconds.
    window_s : float
        Length of the window, seconds: the configured window, or less for a warm-up frame.
    """

    powers: BandPowers
    window_end_sample: int
    window_end_ts_s: float
    window_s: float


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _finite_list(values: np.ndarray) -> list[float | None]:
    return [_finite_or_none(v) for v in values.tolist()]


def channel_mean(values: np.ndarray) -> float | None:
    """Mean over channels ignoring NaN (flat channels); None when every channel is NaN."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


class _RawWindow:
    """The newest unfiltered samples of the stream, addressed by their index since the last reset.

    Why: an epoch's embedding is computed from the raw samples (those the recording file
    holds, so re-embedding from the file later gives the same vector), but the epocher only
    sees filtered chunks; this keeps at most one epoch plus one chunk of raw EEG.
    """

    def __init__(self, n_channels: int) -> None:
        self._data = np.zeros((n_channels, 0), dtype=np.float32)
        self._start = 0  # stream index of self._data[:, 0]

    def append(self, raw: np.ndarray) -> None:
        self._data = np.concatenate([self._data, raw.astype(np.float32)], axis=1)

    def take(self, first_sample: int, n_samples: int) -> np.ndarray | None:
        lo = first_sample - self._start
        if lo < 0 or lo + n_samples > self._data.shape[1]:
            return None
        return self._data[:, lo : lo + n_samples].copy()

    def keep_last(self, n_samples: int) -> None:
        drop = max(0, self._data.shape[1] - n_samples)
        if drop:
            self._data = self._data[:, drop:]
            self._start += drop


class SignalPipeline:
    """Filters, sliding band powers, quality and epochs of one board's stream.

    Parameters
    ----------
    layout : BoardLayout
        The board's rows and rate.
    config : PipelineConfig
        Filter, window and epoch settings; change them later with :meth:`reconfigure`.
    """

    def __init__(self, layout: BoardLayout, config: PipelineConfig) -> None:
        self.layout = layout
        self.config = config
        self._eeg_rows = np.asarray(layout.eeg_rows, dtype=np.intp)
        self._build(config)
        self.quality: list[ChannelQualityReport] = []
        self._raw_tail = np.zeros((len(layout.eeg_rows), 0))
        self._epoch_raw = _RawWindow(len(layout.eeg_rows))
        self._samples_since_quality = 0
        self._quality_every = max(1, int(round(QUALITY_INTERVAL_S * layout.sample_rate_hz)))

    def _build(self, config: PipelineConfig) -> None:
        rate = self.layout.sample_rate_hz
        self.filter = StreamingFilter(rate, config.notch_for(rate), config.bandpass_for(rate), config.filter_order)
        self.sliding = SlidingBandPowers(rate, len(self.layout.eeg_rows), config.window_s, config.hop_s)
        self.epocher = Epocher(rate, config.epoch_s, config.overlap_s, self.layout.channel_names)
        # Warm-up frames keep the live schedule: one hop apart, the last one hop before the
        # first full window.
        window, hop = self.sliding.window_samples, self.sliding.hop_samples
        shortest = max(2, int(round(WARMUP_MIN_WINDOW_S * rate)))
        self._warmup_ends = list(range(window - hop, shortest - 1, -hop))[::-1]
        self._warmup: list[np.ndarray] = []

    def reconfigure(self, config: PipelineConfig) -> None:
        """Apply new settings from the next chunk on.

        A new filter or window restarts the filter state and the sliding window (the next
        frame comes one window later); a new overlap only changes where the next epoch starts.
        """
        old = self.config
        self.config = config
        if replace(old, overlap_s=config.overlap_s, epoch_s=config.epoch_s) != config:
            self.reset()
        elif (old.epoch_s, old.overlap_s) != (config.epoch_s, config.overlap_s):
            rate = self.layout.sample_rate_hz
            self.epocher.step_samples = self.epocher.epoch_samples - int(round(config.overlap_s * rate))
            self.epocher.overlap_s = config.overlap_s

    def reset(self) -> None:
        """Start over after a gap in the stream (a reconnect): new filter state, empty windows."""
        self._build(self.config)
        self._raw_tail = np.zeros((len(self.layout.eeg_rows), 0))
        self._epoch_raw = _RawWindow(len(self.layout.eeg_rows))
        self._samples_since_quality = 0

    def process(self, board_data: np.ndarray) -> tuple[list[BandsFrame], list[Epoch]]:
        """Feed a chunk of board rows (``(num_rows, n)``, as ``get_board_data`` returns).

        Returns the frames (one per hop boundary crossed) and the epochs this chunk completed.
        """
        n = board_data.shape[1]
        if n == 0:
            return [], []
        raw = board_data[self._eeg_rows]
        timestamps = board_data[self.layout.timestamp_row]
        first_sample = self.sliding.samples_seen
        filtered = self.filter.process(raw)
        warmup = self._warmup_powers(filtered, first_sample)
        powers = self.sliding.feed(filtered)
        epochs = self.epocher.feed(filtered, float(timestamps[0]), powers)
        self._epoch_raw.append(raw)
        epochs = [replace(epoch, raw_uv=self._epoch_raw.take(epoch.first_sample, epoch.n_samples)) for epoch in epochs]
        self._epoch_raw.keep_last(self.epocher.epoch_samples)
        self._update_quality(raw, n)
        rate = self.layout.sample_rate_hz
        return [
            BandsFrame(
                powers=p,
                window_end_sample=int(p.window_end_sample),
                window_end_ts_s=float(timestamps[int(p.window_end_sample) - 1 - first_sample]),
                window_s=min(int(p.window_end_sample), self.sliding.window_samples) / rate,
            )
            for p in [*warmup, *powers]
        ], epochs

    def _warmup_powers(self, filtered: np.ndarray, first_sample: int) -> list[BandPowers]:
        """Frames over the samples so far, at each hop before the first full window.

        They go to the display only: epochs average full windows, so their numbers do not
        depend on when a session's first window happened to fill.
        """
        if first_sample >= self.sliding.window_samples:
            return []
        end = first_sample + filtered.shape[1]
        self._warmup.append(filtered)
        due = [b for b in self._warmup_ends if first_sample < b <= end]
        out = []
        if due:
            so_far = np.concatenate(self._warmup, axis=1)
            self._warmup = [so_far]
            for boundary in due:
                p = band_powers(so_far[:, :boundary], self.layout.sample_rate_hz)
                out.append(BandPowers(p.absolute, p.relative, p.total, p.band_names, window_end_sample=boundary))
        if end >= self.sliding.window_samples:
            self._warmup = []
        return out

    def _update_quality(self, raw: np.ndarray, n: int) -> None:
        """Check the last window of raw samples (the rail and mains tests need the unfiltered signal)."""
        window = self.sliding.window_samples
        self._raw_tail = np.concatenate((self._raw_tail, raw), axis=1)[:, -window:]
        self._samples_since_quality += n
        if self._samples_since_quality < self._quality_every or self._raw_tail.shape[1] < window:
            return
        self._samples_since_quality = 0
        rate = self.layout.sample_rate_hz
        line_hz = self.config.notch_hz if self.config.notch_hz and self.config.notch_hz + 2 < rate / 2 else None
        self.quality = assess_quality(self._raw_tail, rate, line_hz)

    # --- what leaves the pipeline ---------------------------------------------------------

    def frame_payload(self, frame: BandsFrame) -> dict[str, Any]:
        """The ``EegBands`` payload of one frame (JSON-ready: NaN becomes null).

        The derived scores are computed here, for the frames that are sent, not in
        :meth:`process`: offline analysis only needs the epochs.
        """
        powers = frame.powers
        names = powers.band_names
        return {
            "sample_rate_hz": self.layout.sample_rate_hz,
            "channels": list(self.layout.channel_names),
            "window_s": frame.window_s,
            "window_end_sample": frame.window_end_sample,
            "window_end_ts_unix_ms": round(frame.window_end_ts_s * 1000.0, 3),
            "absolute": {name: _finite_list(powers.absolute[:, i]) for i, name in enumerate(names)},
            "relative": {name: _finite_list(powers.relative[:, i]) for i, name in enumerate(names)},
            "mean_relative": {name: channel_mean(powers.relative[:, i]) for i, name in enumerate(names)},
            "scores": derived_scores(powers, self.layout.channel_names).to_dict(),
            "quality": [
                {"channel": channel, "status": report.status.value, "rms_uv": round(report.rms_uv, 3)}
                for channel, report in zip(self.layout.channel_names, self.quality, strict=False)
            ],
        }


def epoch_means(epoch: Epoch) -> dict[str, float | None]:
    """Channel means of an epoch's band powers and its scores, by ``eeg_epochs`` column name."""
    means: dict[str, float | None] = {}
    if epoch.metrics is None:
        return means
    for i, band in enumerate(epoch.metrics.band_names):
        means[f"abs_{band}"] = channel_mean(epoch.metrics.absolute[:, i])
        means[f"rel_{band}"] = channel_mean(epoch.metrics.relative[:, i])
    for name, value in epoch.metrics.scores.items():
        means[name] = _finite_or_none(value) if value is not None else None
    return means


def epoch_metrics_json(epoch: Epoch, channel_names: tuple[str, ...]) -> dict[str, Any]:
    """Per-channel metrics of an epoch for the ``metrics`` column (NaN becomes null)."""
    if epoch.metrics is None:
        return {"channels": list(channel_names), "n_windows": 0}
    metrics = epoch.metrics
    return {
        "channels": list(channel_names),
        "n_windows": metrics.n_windows,
        "absolute": {b: _finite_list(metrics.absolute[:, i]) for i, b in enumerate(metrics.band_names)},
        "relative": {b: _finite_list(metrics.relative[:, i]) for i, b in enumerate(metrics.band_names)},
        "scores": {k: (_finite_or_none(v) if v is not None else None) for k, v in metrics.scores.items()},
    }

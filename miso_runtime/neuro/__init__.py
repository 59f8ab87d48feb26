"""EEG signal processing for the BrainFlow capture worker: filters, band powers, quality,
epochs. Pure functions and small classes over ``(n_channels, n_samples)`` float64 arrays in
µV; no I/O. All tunable constants: the table at the top of :mod:`.bands`.
"""

from miso_runtime.constants import (
    BAND_NAMES,
    BANDS,
    FRONTAL_PAIRS,
    TOTAL_POWER_RANGE_HZ,
)
from miso_runtime.neuro.bands import (
    BandPowers,
    DerivedScores,
    SlidingBandPowers,
    band_powers,
    derived_scores,
)
from miso_runtime.neuro.epochs import Epoch, Epocher, EpochMetrics
from miso_runtime.neuro.filters import StreamingFilter, design_sos
from miso_runtime.neuro.quality import ChannelQuality, ChannelQualityReport, assess_quality

__all__ = [
    "BANDS",
    "BAND_NAMES",
    "FRONTAL_PAIRS",
    "TOTAL_POWER_RANGE_HZ",
    "BandPowers",
    "DerivedScores",
    "SlidingBandPowers",
    "band_powers",
    "derived_scores",
    "Epoch",
    "Epocher",
    "EpochMetrics",
    "StreamingFilter",
    "design_sos",
    "ChannelQuality",
    "ChannelQualityReport",
    "assess_quality",
]

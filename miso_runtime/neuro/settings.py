"""The EEG and live-event settings of ``/v1/settings/*``, with their limits and defaults.

Each model is kept in its own JSON file by :class:`~miso_runtime.settings_files.SettingsFile`;
a partial update is validated as a whole, so a combination that cannot work (a band-pass
whose low edge is above its high edge) is refused before anything changes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .. import constants
from .layout import PipelineConfig

#: Largest epoch overlap, seconds (0.9 of a 5 s epoch).
MAX_OVERLAP_S = constants.EPOCH_MAX_OVERLAP_FRACTION * constants.EPOCH_DEFAULT_S


class FilterConfig(BaseModel):
    """Causal filters and the band-power window applied to every EEG channel.

    The band-pass high edge is capped below each board's Nyquist frequency when applied.
    """

    model_config = ConfigDict(extra="forbid")

    notch_hz: Literal[50, 60] | None = Field(default=50, description="mains notch, Hz (50 or 60); null = off")
    bandpass_enabled: bool = Field(default=True, description="false = no band-pass")
    bandpass_low_hz: float = Field(default=1.0, gt=0, lt=100, description="band-pass low edge, Hz")
    bandpass_high_hz: float = Field(default=45.0, gt=0, le=1000, description="band-pass high edge, Hz")
    filter_order: int = Field(default=constants.DEFAULT_FILTER_ORDER, ge=1, le=8, description="Butterworth order")
    band_window_secs: float = Field(
        default=constants.SLIDING_WINDOW_S, ge=0.5, le=10.0, description="sliding band-power window, s"
    )

    @model_validator(mode="after")
    def _edges_in_order(self) -> "FilterConfig":
        if self.bandpass_low_hz >= self.bandpass_high_hz:
            raise ValueError(
                f"bandpass_low_hz ({self.bandpass_low_hz}) must be below bandpass_high_hz ({self.bandpass_high_hz})"
            )
        return self


class EpochConfig(BaseModel):
    """Overlap of consecutive 5 s epochs (``/v1/settings/embedding-overlap``)."""

    model_config = ConfigDict(extra="forbid")

    overlap_secs: float = Field(
        default=0.0,
        ge=0.0,
        le=MAX_OVERLAP_S,
        description=f"seconds shared by consecutive epochs, 0 to {MAX_OVERLAP_S:g}",
    )
    epoch_secs: float = Field(default=constants.EPOCH_DEFAULT_S, description="epoch length, s (fixed)")

    @model_validator(mode="after")
    def _fixed_length(self) -> "EpochConfig":
        if self.epoch_secs != constants.EPOCH_DEFAULT_S:
            raise ValueError(f"epoch_secs is fixed at {constants.EPOCH_DEFAULT_S:g} s")
        return self


class WsConfig(BaseModel):
    """``/v1/events`` limits (``/v1/settings/ws-config``); they apply to clients that connect later."""

    model_config = ConfigDict(extra="forbid")

    client_queue_size: int = Field(
        default=constants.WS_DEFAULT_CLIENT_QUEUE,
        ge=4,
        le=100_000,
        description="events a client may have waiting; beyond it the oldest EegBands are dropped",
    )
    max_clients: int = Field(default=constants.WS_DEFAULT_MAX_CLIENTS, ge=1, le=10_000)


class WatchdogConfig(BaseModel):
    """How crashed workers are restarted (``/v1/settings/daemon-watchdog``).

    A worker that dies is started again after ``initial_backoff_secs``; each further crash
    multiplies the delay by ``backoff_factor`` up to ``max_backoff_secs``; a worker that ran
    ``stable_after_secs`` gets the initial delay again. ``enabled: false`` leaves crashed
    workers down until it is turned back on.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    initial_backoff_secs: float = Field(default=0.5, ge=0.05, le=600)
    backoff_factor: float = Field(default=2.0, ge=1.0, le=10.0)
    max_backoff_secs: float = Field(default=15.0, ge=0.05, le=3600)
    stable_after_secs: float = Field(default=30.0, ge=1.0, le=86_400)

    @model_validator(mode="after")
    def _ordered(self) -> "WatchdogConfig":
        if self.initial_backoff_secs > self.max_backoff_secs:
            raise ValueError("initial_backoff_secs must not exceed max_backoff_secs")
        return self


def pipeline_config(filters: FilterConfig, epochs: EpochConfig) -> PipelineConfig:
    """The pipeline settings these two files describe."""
    return PipelineConfig(
        notch_hz=float(filters.notch_hz) if filters.notch_hz else None,
        bandpass_low_hz=filters.bandpass_low_hz if filters.bandpass_enabled else None,
        bandpass_high_hz=filters.bandpass_high_hz if filters.bandpass_enabled else None,
        filter_order=filters.filter_order,
        window_s=filters.band_window_secs,
        epoch_s=epochs.epoch_secs,
        overlap_s=epochs.overlap_secs,
    )

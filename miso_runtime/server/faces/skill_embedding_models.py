"""Request bodies of the skill-daemon's embedding, search, label and Brain Nebula routes.

Casing follows the daemon's structs (camelCase where it renames, snake_case where not), and
both spellings are accepted where the daemon's own clients differ. Unknown keys are ignored,
as the daemon's serde structs do: its frontend sends a command's whole argument object.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator

from ... import constants
from ...fields import UnixSeconds

TEXT_MAX = 10_000


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


def unwrap_config(data: Any) -> Any:
    """The daemon's frontend sends some settings as ``{"config": {...}}``; the daemon reads them raw."""
    if isinstance(data, dict) and set(data) == {"config"} and isinstance(data["config"], dict):
        return data["config"]
    return data


class WrappedOrRaw(_Lenient):
    """A settings body, raw or wrapped in ``{"config": ...}`` (both are accepted)."""

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return unwrap_config(data)


class ModelConfigBody(WrappedOrRaw):
    hf_repo: str | None = Field(default=None, max_length=500)
    hnsw_m: int | None = Field(default=None, ge=2, le=256)
    hnsw_ef_construction: int | None = Field(default=None, ge=8, le=10_000)
    data_norm: float | None = Field(default=None, gt=0, le=1e6)
    model_backend: str | None = Field(
        default=None, min_length=1, max_length=64, description="an encoder family id of /v1/models/exg-catalog"
    )
    luna_variant: Literal["base", "large", "huge"] | None = None
    luna_hf_repo: str | None = Field(default=None, max_length=500)


class ReembedConfigBody(WrappedOrRaw):
    auto_labels: bool | None = None
    auto_eeg: bool | None = None
    auto_screenshots: bool | None = None
    batch_size: int | None = Field(default=None, ge=1, le=10_000)
    batch_delay_ms: int | None = Field(default=None, ge=0, le=60_000)
    idle_reembed_enabled: bool | None = None
    idle_reembed_delay_secs: int | None = Field(default=None, ge=0, le=7 * 86_400)
    idle_reembed_gpu: bool | None = None
    gpu_precision: Literal["f16", "f32"] | None = None
    idle_reembed_throttle_ms: int | None = Field(default=None, ge=0, le=60_000)


class DeviceBody(_Lenient):
    value: str = Field(max_length=100, description="auto | mlx | gpu | cpu (anything else is stored as auto)")


class UmapConfigBody(WrappedOrRaw):
    repulsion_strength: float | None = Field(default=None, ge=0, le=1000)
    neg_sample_rate: int | None = Field(default=None, ge=0, le=1000)
    timeout_secs: int | None = Field(default=None, ge=0, le=86_400)
    n_epochs: int | None = Field(default=None, ge=0, le=100_000)
    n_neighbors: int | None = Field(default=None, ge=0, le=10_000)
    cooldown_ms: int | None = Field(default=None, ge=0, le=600_000)
    backend: Literal["auto", "mlx", "gpu"] | None = None
    precision: Literal["f32", "f16"] | None = None


class TimeRangeBody(_Lenient):
    """The daemon's ``TimeRangeRequest``: UNIX seconds, ``startUtc`` <= ``endUtc``."""

    start_utc: UnixSeconds = Field(validation_alias=_alias("startUtc", "start_utc"))
    end_utc: UnixSeconds = Field(validation_alias=_alias("endUtc", "end_utc"))

    @model_validator(mode="after")
    def _ordered(self) -> "TimeRangeBody":
        if self.end_utc < self.start_utc:
            raise ValueError(f"endUtc ({self.end_utc}) is before startUtc ({self.start_utc})")
        return self


class CompareBody(_Lenient):
    """Two ranges A and B in UNIX seconds (the daemon's ``CompareRequest``)."""

    a_start_utc: UnixSeconds = Field(validation_alias=_alias("aStartUtc", "a_start_utc"))
    a_end_utc: UnixSeconds = Field(validation_alias=_alias("aEndUtc", "a_end_utc"))
    b_start_utc: UnixSeconds = Field(validation_alias=_alias("bStartUtc", "b_start_utc"))
    b_end_utc: UnixSeconds = Field(validation_alias=_alias("bEndUtc", "b_end_utc"))

    @model_validator(mode="after")
    def _ordered(self) -> "CompareBody":
        for start, end, name in ((self.a_start_utc, self.a_end_utc, "A"), (self.b_start_utc, self.b_end_utc, "B")):
            if end < start:
                raise ValueError(f"range {name} ends ({end}) before it starts ({start})")
        return self


class SearchBody(_Lenient):
    """``/v1/search/eeg``: a range whose epochs are the queries (every field optional, as in the daemon)."""

    start_utc: UnixSeconds | None = Field(default=None, validation_alias=_alias("startUtc", "start_utc"))
    end_utc: UnixSeconds | None = Field(default=None, validation_alias=_alias("endUtc", "end_utc"))
    k: int = Field(default=constants.SEARCH_DEFAULT_K, ge=1, le=constants.SEARCH_MAX_K)
    ef: int = Field(default=constants.SEARCH_DEFAULT_EF, ge=1, le=10_000)
    query: str | None = Field(default=None, max_length=TEXT_MAX)
    device_name: str | None = Field(default=None, max_length=200, validation_alias=_alias("deviceName", "device_name"))

    @model_validator(mode="after")
    def _ordered(self) -> "SearchBody":
        if self.start_utc is not None and self.end_utc is not None and self.end_utc < self.start_utc:
            raise ValueError(f"endUtc ({self.end_utc}) is before startUtc ({self.start_utc})")
        return self


class CreateLabelBody(_Lenient):
    """The daemon's ``CreateLabelRequest`` (camelCase)."""

    text: str = Field(max_length=TEXT_MAX)
    context: str = Field(default="", max_length=TEXT_MAX)
    label_start_utc: float | None = Field(
        default=None, ge=0, le=253_402_300_799, validation_alias=_alias("labelStartUtc", "label_start_utc")
    )
    eeg_start: UnixSeconds | None = Field(default=None, validation_alias=_alias("eegStart", "eeg_start"))
    eeg_end: UnixSeconds | None = Field(default=None, validation_alias=_alias("eegEnd", "eeg_end"))


class UpdateLabelBody(_Lenient):
    text: str = Field(max_length=TEXT_MAX)
    context: str | None = Field(default=None, max_length=TEXT_MAX)


class LabelSearchBody(_Lenient):
    query: str = Field(max_length=TEXT_MAX)
    k: int = Field(default=constants.LABELS_DEFAULT_K, ge=1, le=constants.LABELS_MAX_K)
    ef: int = Field(default=64, ge=1, le=10_000, description="kept for the daemon's clients (search is exact)")
    mode: str = Field(default="text", max_length=20, description="text (default) or context; anything else is text")


class LabelEegSearchBody(TimeRangeBody):
    k: int = Field(default=constants.LABELS_DEFAULT_K, ge=1, le=constants.LABELS_MAX_K)

"""Request bodies of the sleep routes: ``/v1/analysis/sleep``, its hypnogram and ``sleep-config``."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field

from ... import constants
from ...sleep.settings import CLOCK_PATTERN, Method, Preset
from .skill_embedding_models import TimeRangeBody, WrappedOrRaw


class SleepRangeBody(TimeRangeBody):
    """The daemon's ``TimeRangeRequest``; ``method`` and ``channel`` override the settings for one request."""

    method: Method | None = None
    channel: str | None = Field(default=None, min_length=1, max_length=64)
    wait_secs: float = Field(
        default=constants.SLEEP_REQUEST_WAIT_S,
        ge=0,
        le=constants.SLEEP_REQUEST_MAX_WAIT_S,
        validation_alias=AliasChoices("waitSecs", "wait_secs"),
        description="seconds to wait for stagings this request starts (the daemon's frontend gives up at 10 s)",
    )


class HypnogramQuery(SleepRangeBody):
    """The same range and options as ``POST /v1/analysis/sleep``, and how to draw it."""

    format: Literal["svg", "png"] = "svg"
    tz_offset_minutes: int = Field(
        default=0, ge=-14 * 60, le=14 * 60, validation_alias=AliasChoices("tzOffsetMinutes", "tz_offset_minutes")
    )
    width: int = Field(default=1200, ge=200, le=4000, description="pixels")
    height: int = Field(default=420, ge=200, le=4000, description="pixels")


class SleepConfigBody(WrappedOrRaw):
    bedtime: str | None = Field(default=None, pattern=CLOCK_PATTERN)
    wake_time: str | None = Field(default=None, pattern=CLOCK_PATTERN)
    preset: Preset | None = None
    method: Method | None = None
    channel: str | None = Field(default=None, min_length=1, max_length=64)
    auto_stage_min_minutes: float | None = Field(default=None, ge=0.5, le=24 * 60)

"""``/v1/settings/sleep-config``: the daemon's sleep schedule, plus how nights are staged.

The daemon keeps only the schedule (``bedtime``, ``wake_time``, ``preset``) and never uses it
for staging; ``method`` and ``channel`` are ours. A POST changes only the fields it names, so the
daemon's frontend, which sends the three schedule fields, never resets the method.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import constants

#: ``HH:MM`` on a 24-hour clock.
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
Preset = Literal["default", "early_bird", "night_owl", "short_sleeper", "long_sleeper", "custom"]
Method = Literal["yasa", "thresholds"]


class SleepConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    bedtime: str = Field(default="23:00", pattern=CLOCK_PATTERN, description="usual bedtime, HH:MM")
    wake_time: str = Field(default="07:00", pattern=CLOCK_PATTERN, description="usual wake time, HH:MM")
    preset: Preset = "default"
    method: Method = Field(
        default=constants.SLEEP_METHOD_YASA,
        description="yasa: YASA's classifier on the raw recording; thresholds: the daemon's rule on stored epochs",
    )
    channel: str = Field(
        default=constants.SLEEP_CHANNEL_AUTO,
        min_length=1,
        max_length=64,
        description="EEG channel YASA stages, or auto (central, else TP10/TP9, else frontal...)",
    )
    auto_stage_min_minutes: float = Field(
        default=constants.SLEEP_AUTO_STAGE_MIN_S / 60,
        ge=0.5,
        le=24 * 60,
        description="a session at least this long is staged as soon as it ends, minutes",
    )

"""Request bodies of the skill-daemon EEG routes (sections 4.1-4.4) and their settings (4.9).

Field names follow the contract (``startUtc``/``endUtc`` in UNIX seconds); snake_case
spellings are accepted too, since clients of the same daemon send both.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ... import constants
from ...fields import CInt, Identifier, Offset, PathText, UnixSeconds
from ...neuro.settings import MAX_OVERLAP_S


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class BoardParamsBody(BaseModel):
    """BrainFlow input params; which ones a board needs is BrainFlow's board table."""

    model_config = ConfigDict(extra="forbid")

    serial_port: PathText | None = Field(default=None, description="e.g. /dev/ttyUSB0 (Cyton)")
    mac_address: str | None = None
    ip_address: str | None = None
    ip_address_aux: str | None = None
    ip_address_anc: str | None = None
    ip_port: int | None = Field(default=None, ge=0, le=65535)
    ip_port_aux: int | None = Field(default=None, ge=0, le=65535)
    ip_port_anc: int | None = Field(default=None, ge=0, le=65535)
    ip_protocol: CInt | None = Field(default=None, ge=0)
    other_info: str | None = None
    timeout: int | None = Field(default=None, ge=0, le=600, description="discovery timeout, s")
    serial_number: str | None = None
    file: PathText | None = Field(default=None, description="recording to replay (playback board, id -3)")
    file_aux: PathText | None = None
    file_anc: PathText | None = None
    master_board: CInt | None = Field(default=None, description="board whose rows a playback/streaming board carries")


class LocationBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latitude: float = Field(ge=-90, le=90, validation_alias=_alias("latitude", "lat"))
    longitude: float = Field(ge=-180, le=180, validation_alias=_alias("longitude", "lon", "lng"))
    accuracy_m: float | None = Field(default=None, ge=0)
    label: str | None = Field(default=None, max_length=200)


class StartSessionBody(BaseModel):
    """Everything optional: no board means the preferred device, else the synthetic board."""

    model_config = ConfigDict(extra="forbid")

    board_id: CInt | None = Field(default=None, validation_alias=_alias("board_id", "boardId"))
    device_id: Identifier | None = Field(default=None, validation_alias=_alias("device_id", "deviceId"))
    params: BoardParamsBody = Field(default_factory=BoardParamsBody)
    location: LocationBody | None = None
    playback_speed: float = Field(
        default=1.0,
        gt=0,
        le=constants.PLAYBACK_MAX_SPEED,
        validation_alias=_alias("playback_speed", "playbackSpeed"),
        description="playback board only: replay this many times faster than real time",
    )
    stop_at_end: bool = Field(
        default=True,
        validation_alias=_alias("stop_at_end", "stopAtEnd"),
        description="playback board only: end the session at the file's end (false: reconnect like a silent device)",
    )


class DeviceIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier = Field(validation_alias=_alias("id", "device_id", "deviceId"))


class SessionIdBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier = Field(validation_alias=_alias("id", "session_id", "sessionId"))


class SessionsQuery(BaseModel):
    limit: int = Field(default=100, ge=1, le=1000)
    offset: Offset = 0


class DaysBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(default=30, ge=1, le=constants.HISTORY_MAX_DAYS)


class FindSessionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts_utc: UnixSeconds = Field(validation_alias=_alias("ts_utc", "tsUtc"))


class RangeBody(BaseModel):
    """A time range in UNIX seconds (``startUtc`` <= ``endUtc``)."""

    model_config = ConfigDict(extra="forbid")

    start_utc: UnixSeconds = Field(validation_alias=_alias("startUtc", "start_utc"))
    end_utc: UnixSeconds = Field(validation_alias=_alias("endUtc", "end_utc"))


class DayMetricsBody(BaseModel):
    """The sessions named, or every session overlapping ``startUtc``..``endUtc``."""

    model_config = ConfigDict(extra="forbid")

    session_ids: list[Identifier] | None = Field(
        default=None, max_length=1000, validation_alias=_alias("session_ids", "sessionIds", "sessions")
    )
    start_utc: UnixSeconds | None = Field(default=None, validation_alias=_alias("startUtc", "start_utc"))
    end_utc: UnixSeconds | None = Field(default=None, validation_alias=_alias("endUtc", "end_utc"))


class CsvMetricsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: PathText = Field(validation_alias=_alias("path", "csv_path", "csvPath", "file"))
    board_id: CInt | None = Field(
        default=None,
        validation_alias=_alias("board_id", "boardId"),
        description="row layout of a file that belongs to no session",
    )


class FilterConfigBody(BaseModel):
    """Partial update of the filter settings; the fields given change."""

    model_config = ConfigDict(extra="forbid")

    notch_hz: Literal[50, 60] | None = None
    bandpass_enabled: bool | None = None
    bandpass_low_hz: float | None = None
    bandpass_high_hz: float | None = None
    filter_order: int | None = None
    band_window_secs: float | None = None


class OverlapBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_secs: float = Field(
        ge=0,
        le=MAX_OVERLAP_S,
        validation_alias=_alias("overlap_secs", "overlapSecs", "overlap_s", "overlap"),
        description=f"seconds shared by consecutive 5 s epochs, 0 to {MAX_OVERLAP_S:g}",
    )


class WsConfigBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_queue_size: int | None = None
    max_clients: int | None = None


class WatchdogBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    initial_backoff_secs: float | None = None
    backoff_factor: float | None = None
    max_backoff_secs: float | None = None
    stable_after_secs: float | None = None

"""Request bodies of the skill-daemon LSL routes (section 4.13).

The daemon spells ``pair`` and ``unpair`` in camelCase (``sourceId``, ``streamType``,
``sampleRate``) and every field is required; the snake_case spellings of the same fields are
accepted too, as elsewhere in this contract.
"""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ... import constants
from ...fields import PRINTABLE


class AutoConnectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool


class PairBody(BaseModel):
    """A stream as ``GET /v1/lsl/discover`` listed it; upserted by ``sourceId``."""

    model_config = ConfigDict(extra="forbid")

    source_id: str = Field(
        min_length=1,
        max_length=constants.MAX_ID_CHARS,
        pattern=PRINTABLE,
        validation_alias=AliasChoices("sourceId", "source_id"),
    )
    name: str = Field(max_length=constants.MAX_ID_CHARS, pattern=PRINTABLE)
    stream_type: str = Field(
        max_length=constants.MAX_ID_CHARS, pattern=PRINTABLE, validation_alias=AliasChoices("streamType", "stream_type")
    )
    channels: int = Field(ge=1, le=constants.LSL_MAX_CHANNELS)
    sample_rate: float = Field(
        ge=0.0,
        le=constants.LSL_MAX_SAMPLE_RATE_HZ,
        allow_inf_nan=False,
        validation_alias=AliasChoices("sampleRate", "sample_rate"),
        description="nominal rate, Hz (0: an irregular stream)",
    )


class UnpairBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: str = Field(
        min_length=1, max_length=constants.MAX_ID_CHARS, validation_alias=AliasChoices("sourceId", "source_id")
    )


class IdleTimeoutBody(BaseModel):
    """``secs``: seconds without a sample that end an LSL session, or null for never (required)."""

    model_config = ConfigDict(extra="forbid")

    secs: int | None = Field(ge=1, le=constants.LSL_IDLE_TIMEOUT_MAX_S)

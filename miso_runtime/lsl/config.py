"""The LSL settings a user makes: the paired streams, auto-connect, the idle timeout.

Kept in one JSON file in the data dir (:class:`~miso_runtime.settings_files.SettingsFile`),
written by the server (routes) and read by it when a session starts; the capture worker reads
the same file at each auto-connect scan (:mod:`.autoconnect`), and a running session gets a
changed idle timeout as a command.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field, field_validator

from .. import constants


class PairedStream(BaseModel):
    """A stream the user chose to record from, keyed by its ``source_id``.

    ``channels`` and ``sample_rate`` (Hz) are what discovery reported when it was paired; a
    session takes the live values from the stream itself, so a publisher that changes them
    still records correctly.
    """

    source_id: str = Field(min_length=1, max_length=constants.MAX_ID_CHARS)
    name: str = Field(max_length=constants.MAX_ID_CHARS)
    stream_type: str = Field(max_length=constants.MAX_ID_CHARS)
    channels: int = Field(ge=1, le=constants.LSL_MAX_CHANNELS)
    sample_rate: float = Field(
        ge=0.0, le=constants.LSL_MAX_SAMPLE_RATE_HZ, description="nominal rate, Hz (0: irregular)"
    )

    @field_validator("sample_rate")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("sample_rate must be a finite number of Hz")
        return value


class LslConfig(BaseModel):
    """``auto_connect``: start a session when a paired stream appears; ``idle_timeout_secs``: end a
    session after that many seconds without a sample (None: never)."""

    auto_connect: bool = False
    paired_streams: list[PairedStream] = Field(default_factory=list, max_length=constants.LSL_MAX_PAIRED)
    idle_timeout_secs: int | None = Field(
        default=constants.LSL_IDLE_TIMEOUT_DEFAULT_S, ge=1, le=constants.LSL_IDLE_TIMEOUT_MAX_S
    )

    def paired(self, source_id: str) -> PairedStream | None:
        return next((stream for stream in self.paired_streams if stream.source_id == source_id), None)

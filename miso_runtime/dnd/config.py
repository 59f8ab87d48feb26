"""The user's Do Not Disturb settings, the daemon's ``DoNotDisturbConfig`` field for field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .. import constants


class DoNotDisturbConfig(BaseModel):
    """What the automation does, kept in :data:`~miso_runtime.constants.DND_CONFIG_FILE_NAME`.

    Attributes
    ----------
    enabled : bool
        Whether the focus score drives the desktop's Do Not Disturb at all.
    focus_threshold : float
        Focus score, 0-100, at or above which the user counts as focused.
    duration_secs : int
        Seconds of EEG (4 frames a second) whose mean focus must reach the threshold to turn DND on.
    exit_duration_secs : int
        Seconds of EEG below the threshold, with no focused frame in the lookback, before DND goes off.
    focus_lookback_secs : int
        Seconds of EEG looked back on: one focused frame in them holds DND on (a short dip is not an exit).
    focus_mode_identifier : str
        The macOS Focus mode to turn on; kept for the daemon's clients, unused on Linux.
    exit_notification : bool
        Whether leaving DND automatically says so in a desktop notification.
    snr_exit_db : float
        The daemon's signal-to-noise exit, dB; kept, but not applied: our frames carry no SNR.
    grayscale : bool
        macOS only in the daemon (grayscale display with DND); kept, unused on Linux.
    """

    model_config = ConfigDict(extra="ignore")

    enabled: bool = False
    focus_threshold: float = Field(default=constants.DND_DEFAULT_FOCUS_THRESHOLD, ge=0.0, le=100.0)
    duration_secs: int = Field(default=constants.DND_DEFAULT_DURATION_S, ge=1, le=constants.DND_MAX_SECS)
    exit_duration_secs: int = Field(default=constants.DND_DEFAULT_EXIT_DURATION_S, ge=1, le=constants.DND_MAX_SECS)
    focus_lookback_secs: int = Field(default=constants.DND_DEFAULT_LOOKBACK_S, ge=0, le=constants.DND_MAX_SECS)
    focus_mode_identifier: str = Field(default=constants.DND_DEFAULT_FOCUS_MODE, max_length=200)
    exit_notification: bool = True
    snr_exit_db: float = Field(default=0.0, ge=-100.0, le=100.0)
    grayscale: bool = False

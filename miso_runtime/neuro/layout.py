"""The plain descriptions the server and the capture worker share: a board's rows, the pipeline's settings.

Kept apart from :mod:`.pipeline` so that the server process can validate boards and settings
without importing scipy (over a second of start-up) for DSP it never runs itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import constants


@dataclass(frozen=True)
class PipelineConfig:
    """What ``/v1/settings/filter-config`` and ``/v1/settings/embedding-overlap`` set.

    Attributes
    ----------
    notch_hz : {50, 60} or None
        Mains frequency removed by the notch, Hz.
    bandpass_low_hz, bandpass_high_hz : float or None
        Butterworth band-pass edges, Hz; both None for no band-pass. The high edge is capped
        just below the board's Nyquist frequency.
    filter_order : int
        Butterworth order.
    window_s, hop_s : float
        Sliding band-power window and hop, seconds.
    epoch_s, overlap_s : float
        Epoch length and overlap of consecutive epochs, seconds.
    """

    notch_hz: float | None = 50.0
    bandpass_low_hz: float | None = 1.0
    bandpass_high_hz: float | None = 45.0
    filter_order: int = constants.DEFAULT_FILTER_ORDER
    window_s: float = constants.SLIDING_WINDOW_S
    hop_s: float = constants.SLIDING_HOP_S
    epoch_s: float = constants.EPOCH_DEFAULT_S
    overlap_s: float = 0.0

    def bandpass_for(self, sample_rate_hz: float) -> tuple[float, float] | None:
        """Band-pass edges in Hz for a board, the high edge kept below Nyquist (0.45 * fs)."""
        if self.bandpass_low_hz is None or self.bandpass_high_hz is None:
            return None
        high = min(self.bandpass_high_hz, 0.45 * sample_rate_hz)
        return (self.bandpass_low_hz, high)

    def notch_for(self, sample_rate_hz: float) -> float | None:
        """The notch, unless the board samples too slowly to see mains at all."""
        if self.notch_hz is None or self.notch_hz >= sample_rate_hz / 2:
            return None
        return self.notch_hz


@dataclass(frozen=True)
class BoardLayout:
    """Where a board puts its signals in the rows BrainFlow returns.

    Attributes
    ----------
    board_id : int
        BrainFlow board id of the data layout (the master board for playback/streaming).
    board_name : str
    sample_rate_hz : float
        Nominal sampling rate, Hz.
    eeg_rows : tuple of int
        Rows of the EEG channels (µV).
    channel_names : tuple of str
        Electrode names of those rows (``ch1..chN`` when the board does not name them).
    timestamp_row : int
        Row of the UNIX timestamp, seconds.
    battery_row : int or None
        Row of the battery level (percent) where the board reports one.
    num_rows : int
        Rows of a board array.
    """

    board_id: int
    board_name: str
    sample_rate_hz: float
    eeg_rows: tuple[int, ...]
    channel_names: tuple[str, ...]
    timestamp_row: int
    battery_row: int | None
    num_rows: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "board_id": self.board_id,
            "board_name": self.board_name,
            "sample_rate_hz": self.sample_rate_hz,
            "channels": list(self.channel_names),
            "n_channels": len(self.eeg_rows),
        }


def lsl_board_id(n_channels: int) -> int:
    """The board id of an LSL session with ``n_channels`` channels (see ``constants.LSL_BOARD_ID_BASE``)."""
    return constants.LSL_BOARD_ID_BASE - int(n_channels)


def lsl_channel_count(board_id: int) -> int | None:
    """Channels of an LSL board id; None for a BrainFlow board id."""
    if board_id > constants.LSL_BOARD_ID_BASE - 1:
        return None
    return constants.LSL_BOARD_ID_BASE - int(board_id)


def lsl_layout(n_channels: int, sample_rate_hz: float, channel_names: tuple[str, ...], name: str) -> BoardLayout:
    """The rows of an LSL session: one per channel (µV), then the timestamp (UNIX s); no battery.

    Parameters
    ----------
    n_channels : int
    sample_rate_hz : float
        The stream's nominal rate, Hz.
    channel_names : tuple of str
        Labels from the stream's description (``ch1..chN`` where it has none).
    name : str
        The stream's name, shown as the board name.
    """
    return BoardLayout(
        board_id=lsl_board_id(n_channels),
        board_name=name,
        sample_rate_hz=float(sample_rate_hz),
        eeg_rows=tuple(range(n_channels)),
        channel_names=tuple(channel_names),
        timestamp_row=n_channels,
        battery_row=None,
        num_rows=n_channels + 1,
    )

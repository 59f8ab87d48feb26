"""BrainFlow boards: which ids exist, what their rows hold, and how a device is named.

Pure look-ups on BrainFlow's board descriptions (no session is opened here), so the server
can refuse an unknown board id or a playback board without a file before any worker is
involved, with a message a person can act on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

from brainflow.board_shim import BoardIds, BoardShim, BrainFlowError, BrainFlowInputParams

from . import recording  # noqa: F401 - patches BrainFlow's library loader before first use
from .layout import BoardLayout

logger = logging.getLogger(__name__)

PLAYBACK_BOARD_ID = int(BoardIds.PLAYBACK_FILE_BOARD)
STREAMING_BOARD_ID = int(BoardIds.STREAMING_BOARD)
SYNTHETIC_BOARD_ID = int(BoardIds.SYNTHETIC_BOARD)
#: Boards that replay or receive another board's rows: their layout is the master board's.
RELAY_BOARD_IDS = frozenset({PLAYBACK_BOARD_ID, STREAMING_BOARD_ID})


class BoardError(ValueError):
    """A board id or its params cannot work; the message says what to change."""


@dataclass(frozen=True)
class BoardParams:
    """BrainFlow's input params (``BrainFlowInputParams``), each optional.

    Which ones a board needs is BrainFlow's board table: a serial port for Cyton
    (``/dev/ttyUSB0``), a MAC address or serial number for Bluetooth boards, IP address and
    port for Wi-Fi boards, ``file`` and ``master_board`` for the playback board.
    ``timeout`` is in seconds (BrainFlow's discovery timeout).
    """

    serial_port: str = ""
    mac_address: str = ""
    ip_address: str = ""
    ip_address_aux: str = ""
    ip_address_anc: str = ""
    ip_port: int = 0
    ip_port_aux: int = 0
    ip_port_anc: int = 0
    ip_protocol: int = 0
    other_info: str = ""
    timeout: int = 0
    serial_number: str = ""
    file: str = ""
    file_aux: str = ""
    file_anc: str = ""
    master_board: int = int(BoardIds.NO_BOARD)

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "BoardParams":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in known and v is not None})

    def to_dict(self) -> dict[str, Any]:
        """Only the params that are set (what a person would write down)."""
        defaults = BoardParams()
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != getattr(defaults, f.name)
        }

    def to_brainflow(self) -> BrainFlowInputParams:
        params = BrainFlowInputParams()
        for f in fields(self):
            setattr(params, f.name, getattr(self, f.name))
        return params


def board_name(board_id: int) -> str:
    """BrainFlow's enum name of a board id, e.g. ``SYNTHETIC_BOARD``."""
    try:
        return BoardIds(board_id).name
    except ValueError:
        return f"BOARD_{board_id}"


def known_board_ids() -> list[int]:
    return sorted(int(board) for board in BoardIds if board != BoardIds.NO_BOARD)


def _description(board_id: int) -> dict[str, Any]:
    try:
        return BoardShim.get_board_descr(board_id)
    except BrainFlowError as exc:
        raise BoardError(f"BrainFlow has no board with id {board_id} ({exc})") from None


def layout_of(board_id: int, params: BoardParams) -> BoardLayout:
    """Rows, rate and channel names of the data a board delivers.

    Raises
    ------
    BoardError
        Unknown board id, a board without EEG channels, or a playback/streaming board
        without a usable ``master_board`` (or, for playback, without a ``file``).
    """
    if board_id not in known_board_ids():
        raise BoardError(f"unknown board id {board_id}; BrainFlow board ids: {known_board_ids()}")
    data_board = board_id
    if board_id in RELAY_BOARD_IDS:
        if params.master_board in RELAY_BOARD_IDS or params.master_board == int(BoardIds.NO_BOARD):
            raise BoardError(
                f"{board_name(board_id)} needs params.master_board: the id of the board whose rows it carries"
            )
        if board_id == PLAYBACK_BOARD_ID and not params.file:
            raise BoardError("PLAYBACK_FILE_BOARD needs params.file: the recording to replay")
        data_board = params.master_board
    descr = _description(data_board)
    eeg_rows = tuple(int(row) for row in descr.get("eeg_channels", ()))
    if not eeg_rows:
        raise BoardError(f"{board_name(data_board)} has no EEG channels")
    names_text = descr.get("eeg_names") or ""
    names = tuple(name.strip() for name in names_text.split(",")) if names_text else ()
    if len(names) != len(eeg_rows):
        names = tuple(f"ch{i + 1}" for i in range(len(eeg_rows)))
    return BoardLayout(
        board_id=data_board,
        board_name=str(descr.get("name") or board_name(data_board)),
        sample_rate_hz=float(descr["sampling_rate"]),
        eeg_rows=eeg_rows,
        channel_names=names,
        timestamp_row=int(descr["timestamp_channel"]),
        battery_row=int(descr["battery_channel"]) if "battery_channel" in descr else None,
        num_rows=int(descr["num_rows"]),
    )


def device_id(board_id: int, params: BoardParams) -> str:
    """A stable name for a physical device: board id plus whatever identifies the unit.

    Two Muse headbands differ by MAC or serial number; a Cyton by its serial port; a
    replayed recording by its file. Boards with nothing to tell units apart (the synthetic
    board) are one device each.
    """
    identity = (
        params.serial_number
        or params.mac_address
        or (f"{params.ip_address}:{params.ip_port}" if params.ip_address else "")
        or params.serial_port
        or params.file
    )
    return f"{board_name(board_id).lower()}:{identity}" if identity else board_name(board_id).lower()

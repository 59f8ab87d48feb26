"""Where a capture session's samples come from: a BrainFlow board or a Lab Streaming Layer stream.

Why a seam here: everything after the read (recording file, filters, band powers, epochs,
reconnecting) is the same for every device, so :class:`~miso_runtime.neuro.capture.Capture`
talks to a :class:`CaptureSource` and only the source knows its driver. A source hands out
chunks as ``(layout.num_rows, n_samples)`` arrays in its :class:`~.layout.BoardLayout`: EEG
rows in µV, the timestamp row in UNIX seconds.

Errors: opening raises :class:`SourceUnavailable` (the device is not there: reconnecting may
help), reading raises :class:`SourceLost` (it went away mid-session). BrainFlow's own
``BrainFlowError`` is let through unchanged for the board, whose messages name exit codes.
"""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
from brainflow.board_shim import BoardShim, BrainFlowError

from .boards import BoardParams
from .layout import BoardLayout

logger = logging.getLogger(__name__)


class SourceError(Exception):
    """A source cannot deliver; the message says why, for a person."""


class SourceUnavailable(SourceError):
    """Opening failed: the device or stream is not there (now)."""


class SourceLost(SourceError):
    """A source that streamed is gone (its stream closed, its connection broke)."""


class CaptureSource(Protocol):
    """One open device of a session; ``layout`` is what :meth:`read` delivers."""

    layout: BoardLayout

    def read(self) -> np.ndarray:
        """Everything buffered since the last read, ``(num_rows, n)``; n may be 0."""
        ...

    def close(self) -> None:
        """Release the device; safe to call twice."""
        ...


class BrainFlowSource:
    """A prepared, streaming BrainFlow board.

    Parameters
    ----------
    board_id : int
        BrainFlow board id (playback: -3).
    params : BoardParams
    layout : BoardLayout
        The rows of its data (the master board's for playback).

    Raises
    ------
    BrainFlowError
        The board cannot be prepared or started (nothing is left open).
    """

    def __init__(self, board_id: int, params: BoardParams, layout: BoardLayout) -> None:
        self.layout = layout
        self._board: BoardShim | None = BoardShim(board_id, params.to_brainflow())
        try:
            self._board.prepare_session()
            self._board.start_stream()
        except BrainFlowError:
            self.close()
            raise

    def read(self) -> np.ndarray:
        assert self._board is not None
        return self._board.get_board_data()

    def close(self) -> None:
        board, self._board = self._board, None
        if board is None:
            return
        try:
            if board.is_prepared():
                try:
                    board.stop_stream()
                except BrainFlowError:
                    pass
                board.release_session()
        except BrainFlowError as exc:
            logger.debug("releasing the board failed: %s", exc)

"""Reading a few rows of a long recording fast: one EEG channel and the timestamps of a night.

``DataFilter.read_file`` parses every field of every line (28.7 s for an 8-hour Muse S night,
634 MB); pandas' C parser with ``usecols`` skips the fields it is not asked for and reads the
same file's EEG channel and timestamp row in about 1.9 s. The values are the same doubles: both
parse the file's ``%lf`` decimals to the nearest double.

The read is chunked so a caller can report progress. A torn last line (a crash in the middle of
a write, see :mod:`~miso_runtime.neuro.recording`) is dropped: a file that does not end with a
newline loses its last parsed line, which costs one byte read instead of counting every line.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from brainflow.board_shim import BoardShim

from . import recording  # noqa: F401 - patches BrainFlow's library loader before BoardShim is used

logger = logging.getLogger(__name__)

#: Lines per parsed chunk: about 0.1 s of parsing, so progress moves every few percent of a night.
CHUNK_LINES = 500_000


def read_rows(
    path: Path,
    board_id: int,
    rows: Sequence[int],
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """``(len(rows), n_samples)`` float64 of the given board rows (EEG in µV, timestamps in s).

    Raises OSError when the file cannot be read and ValueError when it is not in ``board_id``'s
    layout (a line with another number of fields).
    """
    import pandas as pd  # noqa: PLC0415 - a large import only the staging worker needs

    path = Path(path)
    wanted = sorted(set(int(row) for row in rows))
    num_rows = BoardShim.get_num_rows(board_id)
    if wanted and (wanted[0] < 0 or wanted[-1] >= num_rows):
        raise ValueError(f"rows {wanted} are not all in board {board_id}'s {num_rows} rows")
    size = path.stat().st_size
    with path.open("rb") as handle:
        first = handle.readline()
        handle.seek(max(0, size - 1))
        torn = handle.read(1) != b"\n"
    if not first.endswith(b"\n"):
        return np.zeros((len(rows), 0), dtype=np.float64)  # no complete line at all
    n_fields = len(first.rstrip(b"\r\n").split(b"\t"))
    if n_fields != num_rows:
        raise ValueError(f"{path}: {n_fields} fields per line, board {board_id} writes {num_rows}")
    blocks: list[np.ndarray] = []
    done_bytes = 0
    reader = pd.read_csv(
        path,
        sep="\t",
        header=None,
        usecols=wanted,
        dtype=np.float64,
        engine="c",
        chunksize=CHUNK_LINES,
        # Complete lines never hold an empty field, and not looking for NaN markers saves about
        # 10 %; a torn last line has empty fields, which only NaN handling can parse.
        na_filter=torn,
        memory_map=True,
    )
    with reader:
        for chunk in reader:
            blocks.append(chunk.to_numpy(dtype=np.float64).T)
            if progress is not None and size:
                done_bytes += blocks[-1].shape[1] * len(first)
                progress(min(0.99, done_bytes / size))
    if progress is not None:
        progress(1.0)
    out = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(wanted), 0))
    if torn and out.shape[1]:
        out = out[:, :-1]
    order = [wanted.index(int(row)) for row in rows]
    return np.ascontiguousarray(out[order])

"""Staging one session's recording with YASA's pre-trained classifier (worker side).

What runs, in order, for a session:

1. the EEG channel is chosen (:func:`~miso_runtime.sleep.channels.pick_channel`);
2. that channel and the timestamps are read from the recording's binary copy
   (:func:`~miso_runtime.neuro.sample_file.read_channel`: the board's own doubles, µV and UNIX
   seconds) when it holds every sample of the session, else parsed out of the text file
   (:func:`~miso_runtime.neuro.recording_columns.read_rows`, its 6 decimals);
3. ``yasa.SleepStaging`` gets the channel as an MNE ``RawArray`` at the board's own rate, in
   volts. YASA resamples to 100 Hz (``raw.resample``) and band-passes at 0.4-30 Hz itself, and
   its documentation asks for an unfiltered signal, so nothing else is done to it: the answer
   is exactly the one of calling YASA directly on the same samples;
4. the 30 s epochs get their start time from the recording's own timestamps (the sample at
   ``i * 30 s * rate``), so a reconnection gap inside a session shifts the epochs after it to
   their true clock time.

``rel_*`` of a YASA epoch are YASA's own relative band powers of the staged channel over
0.4-30 Hz: delta = 0.4-4 Hz (its ``sdelta`` + ``fdelta``), theta 4-8, alpha 8-12 and beta =
12-30 Hz (``sigma`` + ``beta``).
"""

from __future__ import annotations

import importlib.metadata
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .. import constants
from ..neuro.recording_columns import read_rows
from ..neuro.sample_file import read_channel
from ..store.sleep import StagedNight
from .channels import ChannelNotFound, pick_channel

logger = logging.getLogger(__name__)

#: YASA's labels -> the daemon's stage codes, in the column order of stored probabilities.
YASA_LABELS = ("WAKE", "N1", "N2", "N3", "REM")
YASA_CODES = {
    "WAKE": constants.SLEEP_STAGE_WAKE,
    "N1": constants.SLEEP_STAGE_N1,
    "N2": constants.SLEEP_STAGE_N2,
    "N3": constants.SLEEP_STAGE_N3,
    "REM": constants.SLEEP_STAGE_REM,
}
#: YASA's feature columns summed into each ``rel_*`` (its relative powers over 0.4-30 Hz).
RELATIVE_FEATURES = (
    ("eeg_sdelta", "eeg_fdelta"),
    ("eeg_theta",),
    ("eeg_alpha",),
    ("eeg_sigma", "eeg_beta"),
)

Progress = Callable[[str, float], None]


def load_yasa() -> float:
    """Import YASA and antropy, seconds it took (0 once done).

    antropy compiles its numba functions when it is imported, and YASA imports it inside its
    first ``fit``: about 8 s on one core, more than staging a whole night once loaded. The worker
    calls this ahead of the first job when a long session is recording.
    """
    began = time.perf_counter()
    import antropy  # noqa: F401, PLC0415 - the import is the point
    import mne  # noqa: F401, PLC0415
    import yasa  # noqa: F401, PLC0415

    return time.perf_counter() - began


def yasa_method_version() -> str:
    """``yasa-<version>``: YASA's classifiers ship inside its wheel, so its version names them."""
    try:
        return f"yasa-{importlib.metadata.version('yasa')}"
    except importlib.metadata.PackageNotFoundError:
        return "yasa-missing"


class StagingError(Exception):
    """A session YASA cannot stage; ``code`` says why (kept with the session's staging)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class StagedRecording:
    night: StagedNight
    channel: str
    channel_reason: str
    n_samples: int
    recorded_s: float
    #: Seconds per phase: ``load`` (imports of a cold worker), ``read`` and ``stage``.
    timings_s: dict[str, float]


def stage_signal(signal_uv: np.ndarray, rate_hz: float, channel: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YASA's ``(stage codes, probabilities (n, 5), relative powers (n, 4))`` of one channel in µV."""
    import mne  # noqa: PLC0415 - large imports, only in the staging worker
    import yasa  # noqa: PLC0415

    info = mne.create_info([channel], float(rate_hz), "eeg")
    raw = mne.io.RawArray(np.asarray(signal_uv, dtype=np.float64)[None, :] * 1e-6, info, verbose=False)
    with warnings.catch_warnings():
        # scikit-learn warns that YASA's pickled label encoder is from 0.24.2; YASA's own CI
        # checks its classifiers against current scikit-learn, and the classes are plain strings.
        warnings.simplefilter("ignore", category=UserWarning)
        staging = yasa.SleepStaging(raw, eeg_name=channel)
        hypnogram = staging.predict()
    labels = np.asarray(hypnogram.hypno.values, dtype=object)
    codes = np.array([YASA_CODES[str(label)] for label in labels], dtype=np.int8)
    probabilities = hypnogram.proba[list(YASA_LABELS)].to_numpy(dtype=np.float64)
    features = staging.get_features()
    relative = np.column_stack([features[list(columns)].sum(axis=1).to_numpy() for columns in RELATIVE_FEATURES])
    return codes, probabilities, relative.astype(np.float64)


def stage_recording(
    path: Path,
    board_id: int,
    channel_names: Sequence[str],
    channel_request: str,
    progress: Progress | None = None,
    expected_samples: int = 0,
) -> StagedRecording:
    """Stage the recording at ``path`` (board ``board_id``'s layout); raises :class:`StagingError`.

    ``expected_samples`` is what the session says it recorded: the recording's binary copy is read
    when it holds exactly that many samples, the text file otherwise.
    """
    from brainflow.board_shim import BoardShim  # noqa: PLC0415

    report = progress or (lambda _phase, _fraction: None)
    rate = float(BoardShim.get_sampling_rate(board_id))
    eeg_rows = list(BoardShim.get_eeg_channels(board_id))
    names = list(channel_names) if len(channel_names) == len(eeg_rows) else [f"ch{i + 1}" for i in range(len(eeg_rows))]
    try:
        channel, reason = pick_channel(names, channel_request)
    except ChannelNotFound as exc:
        raise StagingError("channel_not_found", str(exc)) from None
    except ValueError as exc:
        raise StagingError("no_channels", str(exc)) from None
    if rate <= constants.SLEEP_MIN_SAMPLE_RATE_HZ:
        raise StagingError(
            "sample_rate_too_low", f"{rate:g} Hz; YASA needs more than {constants.SLEEP_MIN_SAMPLE_RATE_HZ:g} Hz"
        )
    if not Path(path).is_file():
        raise StagingError("recording_missing", f"the recording file {path} is gone")
    load_s = load_yasa()
    began = time.perf_counter()
    index = names.index(channel)
    copy = read_channel(path, len(eeg_rows), index, expected_samples) if expected_samples else None
    if copy is not None:
        timestamps_s, signal_uv = copy
        report("reading", 1.0)
    else:
        try:
            data = read_rows(
                path,
                board_id,
                [eeg_rows[index], BoardShim.get_timestamp_channel(board_id)],
                progress=lambda fraction: report("reading", fraction),
            )
        except FileNotFoundError:
            raise StagingError("recording_missing", f"the recording file {path} is gone") from None
        except (OSError, ValueError) as exc:
            raise StagingError("recording_unreadable", f"the recording file cannot be read: {exc}") from None
        signal_uv, timestamps_s = data[0], data[1]
    n = signal_uv.size
    per_epoch = int(round(constants.SLEEP_EPOCH_S * rate))
    if n < per_epoch:
        raise StagingError(
            "too_short",
            f"{n / rate:.1f} s of signal; YASA needs at least one {constants.SLEEP_EPOCH_S:g} s epoch"
            " (the thresholds method stages shorter recordings)",
        )
    if not np.all(np.isfinite(signal_uv)):
        raise StagingError("recording_unreadable", "the recording holds values that are not numbers")
    read_s = time.perf_counter() - began
    logger.info("read %d samples of %s in %.2f s", n, channel, read_s)
    report("staging", 0.0)
    began = time.perf_counter()
    codes, probabilities, relative = stage_signal(signal_uv, rate, channel)
    stage_s = time.perf_counter() - began
    starts = np.arange(codes.size) * per_epoch
    night = StagedNight(
        start_utc_ms=np.round(timestamps_s[starts] * 1000.0).astype(np.int64),
        stage=codes,
        confidence=probabilities.max(axis=1),
        probabilities=probabilities,
        relative=relative,
    )
    return StagedRecording(night, channel, reason, n, n / rate, {"load": load_s, "read": read_s, "stage": stage_s})

"""Messages of the ``staging`` worker: sleep staging of whole recordings with YASA."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Command, Event


@dataclass(frozen=True)
class StageSession(Command):
    """Stage one finished session and store the result under its key.

    ``recording_path`` is absolute; ``channel_names`` are the session's EEG channels in board
    order; ``session_n_samples`` is what the session row says it recorded (a file with fewer
    samples is staged and marked truncated).
    """

    job_id: str
    session_id: str
    recording_path: str
    board_id: int
    channel_names: tuple[str, ...]
    channel_request: str
    version: str
    session_n_samples: int
    expected_s: float


@dataclass(frozen=True)
class PrepareStaging(Command):
    """Load YASA now (a long session is recording), so staging it when it ends does not wait for imports."""


@dataclass(frozen=True)
class StagingProgress(Event):
    job_id: str
    session_id: str
    phase: str  # reading | staging | storing
    fraction: float


@dataclass(frozen=True)
class SessionStaged(Event):
    """Stored as staging ``staging_id`` (``status`` staged, or failed with ``code``)."""

    job_id: str
    session_id: str
    staging_id: int
    status: str
    code: str | None
    message: str | None
    n_epochs: int
    elapsed_ms: float
    timings_ms: dict[str, float] | None = None

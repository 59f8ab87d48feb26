"""Messages of the ``analysis`` worker: search index builds and UMAP projections.

Both are long batch jobs over stored embeddings, kept out of the ``embed`` worker so a build or
a projection never delays a live epoch's vector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Command, Event


@dataclass(frozen=True)
class BuildIndex(Command):
    """Build the Annoy index of ``scope`` (``global`` or ``day:YYYYMMDD``) for ``encoder`` from SQLite."""

    scope: str
    encoder: str


@dataclass(frozen=True)
class IndexBuilt(Event):
    """A build finished and was swapped in; ``meta`` is the index's ``IndexMeta`` as a dict."""

    scope: str
    encoder: str
    meta: dict[str, Any]
    elapsed_ms: float


@dataclass(frozen=True)
class IndexBuildFailed(Event):
    scope: str
    encoder: str
    message: str


@dataclass(frozen=True)
class ProjectUmap(Command):
    """Project two ranges together in 3-D; ``ranges_ms`` are ``(a_start, a_end, b_start, b_end)``."""

    request_id: str
    encoder: str
    ranges_ms: tuple[int, int, int, int]
    settings: dict[str, Any]
    limit_per_range: int


@dataclass(frozen=True)
class CancelUmap(Command):
    request_id: str


@dataclass(frozen=True)
class UmapProgress(Event):
    request_id: str
    stage: str
    fraction: float


@dataclass(frozen=True)
class UmapDone(Event):
    """The projection's answer as the contract shapes it (``points``, ``analysis``...) or an empty one."""

    request_id: str
    result: dict[str, Any]


@dataclass(frozen=True)
class UmapFailed(Event):
    request_id: str
    code: str  # failed | cancelled | timeout
    message: str

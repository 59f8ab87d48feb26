"""Times as Caco writes them: JavaScript's ``Date.prototype.toISOString()`` (UTC, milliseconds, ``Z``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


def iso_time(ms: int | None = None) -> str:
    """``ms`` (milliseconds since the epoch; now when None) as ``2026-01-27T12:00:00.000Z``."""
    moment = datetime.fromtimestamp((time.time() * 1000 if ms is None else ms) / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"

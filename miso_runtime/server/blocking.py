"""Running a blocking call (file reads, DSP over a whole recording) off the gevent hub.

The hub's threadpool runs the call in a real thread, so other requests and live streams keep
being served while it works; the calling greenlet waits for its result.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import gevent

T = TypeVar("T")


def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in the hub's threadpool; its exception is raised here.

    The exception is carried back as a value: one that escapes a threadpool task is also
    printed by gevent with its traceback, and an expected ``MisoError`` (a 404 for a missing
    file) must not put a traceback in the log.
    """

    def outcome() -> tuple[bool, Any]:
        try:
            return True, function(*args)
        except Exception as exc:  # noqa: BLE001 - re-raised in the calling greenlet below
            return False, exc

    succeeded, value = gevent.get_hub().threadpool.apply(outcome)
    if not succeeded:
        raise value
    return value

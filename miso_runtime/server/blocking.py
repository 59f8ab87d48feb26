"""Running a blocking call (file reads, DSP over a whole recording) off the gevent hub.

The hub's threadpool runs the call in a real thread, so other requests and live streams keep
being served while it works; the calling greenlet waits for its result.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import gevent

T = TypeVar("T")


def run_blocking(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in the hub's threadpool; its exception is raised here."""
    return gevent.get_hub().threadpool.apply(function, args)

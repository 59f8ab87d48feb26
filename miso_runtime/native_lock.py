"""A real OS lock, also in a process gevent has monkey-patched.

Code that runs both on the hub and in its threadpool (the search index, the text embedder)
cannot share gevent's patched locks between them: a native thread waiting on one ends in
``LoopExit``. The original ``_thread`` lock works across both; keep what it guards short, as it
blocks the hub while held by another thread. Services stay free of gevent imports: the patch
is looked up only if gevent is already loaded.
"""

from __future__ import annotations

import _thread
import sys
from typing import Any


def native_lock() -> Any:
    """A new ``_thread`` lock that gevent's patching does not replace."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return monkey.get_original("_thread", "allocate_lock")()
    return _thread.allocate_lock()

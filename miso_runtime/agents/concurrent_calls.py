"""Independent blocking calls run side by side, each on a thread of its own.

A git route needs several git commands that do not wait on each other's output: ``git status``
and ``git diff`` each walk the whole worktree, and two ``git log`` runs start from different
commits. One after the other, their process starts and their waits add up; side by side the
route costs about its slowest command. Fresh threads rather than a shared pool: a call may fan
out again itself, and a nested wait on a bounded pool can deadlock. This runs in the agents
worker, which is not monkey-patched, so these are OS threads.
"""

from __future__ import annotations

import threading
from typing import Any, Callable


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run every call at once (the first on the caller's thread) and return their results in order.

    Waits for all of them; if any raised, raises the first call's error (by position) after that.
    """
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors[index] = exc

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(1, len(calls))]
    for thread in threads:
        thread.start()
    if calls:
        run(0)
    for thread in threads:
        thread.join()
    for error in errors:
        if error is not None:
            raise error
    return results


def in_turn(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls one after the other and return their results in order: the drop-in for
    :func:`concurrently` where the work is in the background and should leave the other cores to
    requests."""
    return [call() for call in calls]

"""One module per contract: parse the request, call a service, render the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from ...runtime import Runtime
    from ..sse import StreamRegistry


def runtime() -> "Runtime":
    """The runtime of the app serving the current request."""
    return current_app.extensions["miso.runtime"]


def streams() -> "StreamRegistry":
    """The open SSE streams of this process (shutdown ends each with a final event)."""
    return current_app.extensions["miso.streams"]

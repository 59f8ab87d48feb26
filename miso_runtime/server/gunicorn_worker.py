"""gunicorn's gevent worker, taught to end open streams with their final event on SIGTERM.

gunicorn's own graceful stop only waits for requests to finish, and an SSE stream never
finishes by itself; this worker tells the streams first, as ``miso-runtime serve`` does.
"""

from __future__ import annotations

import contextlib
import socket

import gevent
from gunicorn.workers.ggevent import GeventWorker

from .. import constants


class MisoGeventWorker(GeventWorker):
    def _end_streams(self) -> None:
        extensions = getattr(self.wsgi, "extensions", {})
        if "miso.streams" in extensions:
            extensions["miso.streams"].shutdown(constants.SHUTDOWN_GRACE_S)
            extensions["miso.runtime"].bus.close_all()
            extensions["miso.runtime"].stop()

    def handle(self, listener, client, addr) -> None:
        # No Nagle delay on small writes (see miso_runtime.server.serve._Handler).
        with contextlib.suppress(OSError):
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(listener, client, addr)

    def handle_exit(self, sig, frame) -> None:  # noqa: D401 - gunicorn's signal hook
        # A signal handler must not block: the work goes to a greenlet.
        gevent.spawn(self._end_streams)
        super().handle_exit(sig, frame)

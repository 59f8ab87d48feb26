"""Running the app on gevent's WSGI server: the ready line, signals, and watching the parent.

The caller must have monkey-patched before importing this module (``miso_runtime.__main__``
and the console script do it first thing). Lifecycle:

1. bind (port 0 = any free port) and start serving;
2. print the one ready line on stdout: ``{"event":"ready","port":...,"pid":...,"version":...}``,
   plus ``"pages":{"schmux":"http://127.0.0.1:PORT/",...}`` when web pages are configured
   (``pages.py``: each page on a loopback port of its own, same app);
3. on SIGTERM/SIGINT, the parent's death (``--parent-pid``) or stdin closing
   (``--exit-on-stdin-close``): stop accepting, end open streams with their final event,
   close idle connections, and return so the process exits 0 within ``SHUTDOWN_GRACE_S`` + 1 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys

import gevent
import gevent.event
import gevent.os
from gevent.pywsgi import WSGIHandler, WSGIServer

from .. import constants
from ..config import Settings
from ..runtime import Runtime, build_runtime
from .app import create_app
from .pages import PageServer, close_pages, start_pages, stop_pages

logger = logging.getLogger(__name__)


class _Handler(WSGIHandler):
    """gevent's handler, exposing the client socket so that streams can watch it for close.

    It also turns off Nagle's algorithm: a small write after another one (an SSE event after
    the headers, a response on a kept-alive connection) would otherwise wait ~40 ms for an ACK.
    """

    def handle(self):  # noqa: D401 - gevent's hook
        with contextlib.suppress(OSError):
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return super().handle()

    def get_environ(self):  # noqa: D401 - gevent's hook
        environ = super().get_environ()
        environ["miso.client_socket"] = self.socket
        return environ


class _AccessLog:
    """A file-like sink for gevent's access log that writes to ``logging`` at DEBUG."""

    def write(self, line: str) -> None:
        logger.debug(line.rstrip())


def ready_line(port: int, version: str, pages: dict[str, str] | None = None) -> str:
    """The ready line; ``pages`` only when some are served, so the line is unchanged without them."""
    line: dict[str, object] = {"event": "ready", "port": port, "pid": os.getpid(), "version": version}
    if pages:
        line["pages"] = pages
    return json.dumps(line, separators=(",", ":"))


def page_server(address: tuple[str, int], site, tls: tuple[str, str] | None = None) -> WSGIServer:
    """A gevent server for one web page's port, with the API server's handler and log.

    ``tls``: ``(certificate file, key file)`` to serve https (the schmux dashboard with GitHub login).
    """
    ssl_args = {"certfile": tls[0], "keyfile": tls[1]} if tls else {}
    return WSGIServer(address, site, handler_class=_Handler, log=_AccessLog(), error_log=_AccessLog(), **ssl_args)


def login_refusal(runtime: Runtime) -> str | None:
    """Why the runtime must not start: GitHub login is on but misconfigured (each missing piece named)."""
    problems = runtime.login.config.problems
    if not problems:
        return None
    return "access_control.enabled is true, but the login is not configured: " + "; ".join(problems)


def _watch_parent(pid: int, stop: gevent.event.Event) -> None:
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            logger.info("parent process %d is gone; shutting down", pid)
            stop.set()
            return
        except PermissionError:
            pass  # alive, owned by someone else
        if os.getppid() == 1 and pid != 1:
            logger.info("orphaned (parent %d is gone); shutting down", pid)
            stop.set()
            return
        gevent.sleep(constants.PARENT_POLL_S)


def _watch_stdin(stop: gevent.event.Event) -> None:
    """Set ``stop`` when stdin reaches end of file (the app that spawned us closed its pipe)."""
    try:
        while gevent.os.tp_read(sys.stdin.fileno(), 4096):
            pass
    except OSError:
        pass
    logger.info("stdin closed; shutting down")
    stop.set()


def serve(settings: Settings) -> int:
    """Serve until asked to stop; returns the process exit code."""
    runtime: Runtime = build_runtime(settings)
    refusal = login_refusal(runtime)
    if refusal is not None:
        logger.error("cannot serve: %s", refusal)
        return 2
    # Import the default provider's client library now: an import on the first request would
    # stall every greenlet for a second or more. (Importing in a native thread instead can
    # deadlock against gevent's patched locks.)
    runtime.chat.registry.warm_up([runtime.chat.default_model().provider])
    app = create_app(runtime)
    server = WSGIServer(
        (settings.host, settings.port), app, handler_class=_Handler, log=_AccessLog(), error_log=_AccessLog()
    )
    server.start()
    try:
        pages = start_pages(settings, app, runtime.tokens, page_server)
    except BaseException:
        server.stop()
        raise
    runtime.serving_port = server.server_port
    runtime.start()
    port = server.server_port
    stop = gevent.event.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, stop.set)
    if settings.parent_pid:
        gevent.spawn(_watch_parent, settings.parent_pid, stop)
    if settings.exit_on_stdin_close:
        gevent.spawn(_watch_stdin, stop)
    logger.info("serving on http://%s:%d (data dir %s)", settings.host, port, settings.data_dir)
    sys.stdout.write(ready_line(port, runtime.version, {page.name: page.url for page in pages}) + "\n")
    sys.stdout.flush()
    stop.wait()
    shutdown(server, app, pages)
    return 0


def shutdown(server: WSGIServer, app, pages: list[PageServer] | None = None) -> None:
    """Stop accepting, let streams send their final event, then stop the server."""
    logger.info("shutting down")
    server.close()
    close_pages(pages or [])
    app.extensions["miso.streams"].shutdown(constants.SHUTDOWN_GRACE_S)
    runtime = app.extensions["miso.runtime"]
    runtime.bus.close_all()
    runtime.stop()
    # The pages' servers wait for their idle connections at the same time as the API's.
    page_stops = [gevent.spawn(stop_pages, [page]) for page in pages or []]
    server.stop(timeout=1.0)
    gevent.joinall(page_stops)
    logger.info("stopped")

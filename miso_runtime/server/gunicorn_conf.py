"""gunicorn configuration: one gevent worker serving the same app as ``miso-runtime serve``.

Run it with ``gunicorn -c python:miso_runtime.server.gunicorn_conf``. Host and port come
from ``MISO_HOST`` and ``MISO_PORT`` (0 = any free port); the worker prints the same ready
line on stdout as ``miso-runtime serve`` does.
"""

from __future__ import annotations

import json
import os
import sys

from miso_runtime import __version__, constants

bind = f"{os.environ.get('MISO_HOST', '127.0.0.1')}:{os.environ.get('MISO_PORT', constants.DEFAULT_PORT)}"
workers = 1
worker_class = "miso_runtime.server.gunicorn_worker.MisoGeventWorker"
worker_connections = 1000
wsgi_app = "miso_runtime.server.wsgi:application"
graceful_timeout = int(constants.SHUTDOWN_GRACE_S) + 1
# Streams are long-lived by design; the worker heartbeat, not a request timeout, guards liveness.
timeout = 30
keepalive = 75
accesslog = None
# A sidecar must not leave a control socket in the user's home directory.
control_socket_disable = True
errorlog = "-"
loglevel = os.environ.get("MISO_LOG_LEVEL", "info").lower()


def post_worker_init(worker) -> None:
    """Print the ready line once the worker serves; its pid is the master's, which the app stops."""
    port = worker.sockets[0].getsockname()[1]
    from miso_runtime.server import wsgi

    wsgi.runtime.serving_port = port  # task processes reach the local model through this port
    line: dict[str, object] = {"event": "ready", "port": port, "pid": worker.ppid, "version": __version__}
    # The web pages' ports belong to this worker's gevent hub (the master binds only the API's).
    from miso_runtime.server.pages import start_pages
    from miso_runtime.server.serve import login_refusal, page_server

    refusal = login_refusal(wsgi.runtime)
    if refusal is not None:
        worker.log.error("cannot serve: %s", refusal)
        sys.exit(3)  # gunicorn's WORKER_BOOT_ERROR: the master halts instead of restarting the worker
    pages = start_pages(wsgi.runtime.settings, wsgi.application, wsgi.runtime.tokens, page_server)
    if pages:
        line["pages"] = {page.name: page.url for page in pages}
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")
    sys.stdout.flush()

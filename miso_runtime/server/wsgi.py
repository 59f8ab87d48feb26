"""The WSGI application for servers that import one (gunicorn): settings from the environment.

Importing this module builds the runtime (opens the store), so only a server process should
import it, after gevent has patched that process.
"""

from __future__ import annotations

from ..config import load_settings
from ..logs import configure_logging
from ..runtime import build_runtime
from .app import create_app

_settings = load_settings()
configure_logging(_settings.log_level, _settings.log_dir)
runtime = build_runtime(_settings)
application = create_app(runtime)
runtime.start()

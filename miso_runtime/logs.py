"""Logging set-up: stderr and a rotating file in the data dir, never stdout.

Stdout carries exactly one line, the ready handshake, which the Electron side parses; a stray
log line there would break it.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

from . import constants

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


def configure_logging(level: str, log_dir: Path | None) -> None:
    """Send the runtime's logs to stderr and, when ``log_dir`` is given, a rotating file."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / constants.LOG_FILE_NAME,
                maxBytes=constants.LOG_FILE_MAX_BYTES,
                backupCount=constants.LOG_FILE_BACKUPS,
                encoding="utf-8",
            )
        )
    formatter = logging.Formatter(LOG_FORMAT)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(level)
    # Client libraries log every request at INFO; that is noise at our INFO level.
    for chatty in ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "anthropic", "ollama", "urllib3"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))

"""A small worker for supervisor tests: echoes text commands back as log lines, on demand slowly."""

from __future__ import annotations

import logging
import time
from typing import Any

from workers.protocol.base import Shutdown
from workers.protocol.llm import Abort
from workers.runner import Channel

logger = logging.getLogger("echo")


def run(channel: Channel, options: dict[str, Any]) -> None:
    while True:
        command = channel.receive()
        if isinstance(command, Shutdown):
            if options.get("ignore_shutdown"):
                time.sleep(60)
            return
        if isinstance(command, Abort):
            logger.info("echo %s", command.request_id)

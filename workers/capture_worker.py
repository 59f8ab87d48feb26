"""The ``capture`` worker: owns the device (BrainFlow board or LSL stream) of the running EEG session.

It runs in its own process so that reading the board, filtering and Welch transforms never
touch the server's gevent hub, and a board driver that crashes takes only this process down
(the supervisor restarts it; the server closes the session from its recording file).

The loop waits up to ``CAPTURE_POLL_S`` for a command, then lets the session read the
board; between sessions it waits for commands and, with LSL auto-connect on, looks for the
paired streams (:mod:`miso_runtime.lsl.autoconnect`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .protocol.base import Shutdown
from .protocol.capture import (
    CancelRetry,
    ConfigureLsl,
    ConfigurePipeline,
    RetryConnect,
    StartCapture,
    StopCapture,
)
from .runner import Channel

logger = logging.getLogger("miso.capture_worker")

#: Seconds between command checks while no session runs.
IDLE_WAIT_S = 1.0


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.capture_worker:run``).

    ``options``: ``database_path`` (the shared SQLite file), ``brainflow_log`` (file for
    BrainFlow's own driver log) and ``lsl_config_path`` (the LSL settings, for auto-connect).
    """
    from brainflow.board_shim import BoardShim

    from miso_runtime import constants
    from miso_runtime.lsl.autoconnect import AutoConnect
    from miso_runtime.neuro.capture import Capture
    from miso_runtime.neuro.recording import ensure_brainflow_loadable
    from miso_runtime.store.database import open_database
    from miso_runtime.store.eeg import EpochRepository

    ensure_brainflow_loadable()
    log_file = options.get("brainflow_log")
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        BoardShim.set_log_file(str(log_file))
        BoardShim.enable_board_logger()
    db = open_database(Path(options["database_path"]), run_migrations=False)
    capture = Capture(channel.send, EpochRepository(db))
    lsl_config = options.get("lsl_config_path")
    autoconnect = AutoConnect(Path(lsl_config), channel.send) if lsl_config else None
    was_active = False
    try:
        while True:
            command = channel.receive(constants.CAPTURE_POLL_S if capture.active else IDLE_WAIT_S)
            if isinstance(command, Shutdown):
                capture.stop("shutdown", "the runtime is stopping")
                break
            if isinstance(command, StartCapture):
                capture.start(command)
            elif isinstance(command, StopCapture):
                capture.stop(command.reason, "")
            elif isinstance(command, RetryConnect):
                capture.retry_now()
            elif isinstance(command, CancelRetry):
                capture.cancel_retry()
            elif isinstance(command, ConfigurePipeline):
                capture.configure(command.pipeline)
            elif isinstance(command, ConfigureLsl):
                capture.configure_idle_timeout(command.idle_timeout_s)
            elif command is not None:
                logger.warning("capture worker ignores %s", type(command).__name__)
            capture.tick()
            if autoconnect is not None:
                if was_active and not capture.active and capture.last_ended is not None:
                    autoconnect.session_ended(*capture.last_ended)
                elif not capture.active:
                    autoconnect.tick()
            was_active = capture.active
    except EOFError:
        capture.stop("shutdown", "the runtime went away")
    logger.info("capture worker %d exiting", os.getpid())

"""The ``embed`` worker: turns EEG epochs into vectors and stores them.

A process of its own so that encoding (an FFT per channel, or an ONNX model) never runs on
the server's gevent hub, and an encoder that crashes (a bad ONNX file, a GPU driver) takes
only this process down. Commands are always handled before the next background batch, so a
live epoch never waits behind re-embedding.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .protocol.base import Shutdown
from .protocol.embed import EmbedEpochs, PauseReembed, StartReembed, UseEncoder
from .runner import Channel

logger = logging.getLogger("miso.embed_worker")

#: Seconds between command checks while nothing runs in the background.
IDLE_WAIT_S = 1.0


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.embed_worker:run``).

    ``options``: ``database_path`` (the shared SQLite file) and ``data_dir`` (recording paths
    are relative to it).
    """
    from miso_runtime.neuro.embedding.embedder import Embedder
    from miso_runtime.neuro.recording import ensure_brainflow_loadable
    from miso_runtime.store.database import open_database
    from miso_runtime.store.eeg import SessionRepository
    from miso_runtime.store.embeddings import EmbeddingRepository

    ensure_brainflow_loadable()
    db = open_database(Path(options["database_path"]), run_migrations=False)
    embedder = Embedder(channel.send, EmbeddingRepository(db), SessionRepository(db), Path(options["data_dir"]))
    try:
        while True:
            command = channel.receive(0 if embedder.reembedding else IDLE_WAIT_S)
            if isinstance(command, Shutdown):
                break
            if isinstance(command, EmbedEpochs):
                embedder.embed_live(command)
            elif isinstance(command, UseEncoder):
                embedder.use(command)
            elif isinstance(command, StartReembed):
                embedder.start_reembed(command)
            elif isinstance(command, PauseReembed):
                embedder.pause(command)
            elif command is not None:
                logger.warning("embed worker ignores %s", type(command).__name__)
            if command is None and embedder.reembedding:
                embedder.step()
    except EOFError:
        pass
    logger.info("embed worker %d exiting", os.getpid())

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
from .protocol.embed import EmbedEpochs, LabelsChanged, PauseReembed, StartReembed, UseEncoder, UseHooks
from .runner import Channel

logger = logging.getLogger("miso.embed_worker")

#: Seconds between command checks while nothing runs in the background.
IDLE_WAIT_S = 1.0


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.embed_worker:run``).

    ``options``: ``database_path`` (the shared SQLite file), ``data_dir`` (recording paths
    are relative to it) and ``hook_command_timeout_s`` (seconds a fired hook's command may run).
    """
    from miso_runtime import constants
    from miso_runtime.hooks.live import LiveHooks
    from miso_runtime.labels.text_embedder import default_text_embedder
    from miso_runtime.neuro.embedding.embedder import Embedder
    from miso_runtime.neuro.recording import ensure_brainflow_loadable
    from miso_runtime.store.database import ConnectionPerThread, open_database
    from miso_runtime.store.eeg import SessionRepository
    from miso_runtime.store.embeddings import EmbeddingRepository

    ensure_brainflow_loadable()
    db = open_database(Path(options["database_path"]), run_migrations=False)
    embedder = Embedder(channel.send, EmbeddingRepository(db), SessionRepository(db), Path(options["data_dir"]))
    # Hooks read labels and write their log on connections of their own (commands end on other threads).
    hooks = LiveHooks(
        ConnectionPerThread(Path(options["database_path"])).db,
        channel.send,
        default_text_embedder,
        options.get("hook_command_timeout_s", constants.HOOK_COMMAND_TIMEOUT_S),
    )
    try:
        while True:
            command = channel.receive(0 if embedder.reembedding else IDLE_WAIT_S)
            if isinstance(command, Shutdown):
                break
            if isinstance(command, EmbedEpochs):
                stored = embedder.embed_live(command)
                if stored is not None:
                    _check_hooks(hooks, *stored)
            elif isinstance(command, UseHooks):
                hooks.use(command.rules)
            elif isinstance(command, LabelsChanged):
                hooks.labels_changed()
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
    hooks.close()
    logger.info("embed worker %d exiting", os.getpid())


def _check_hooks(hooks: Any, encoder: str, epochs: list, vectors: Any) -> None:
    """Hooks never stop embedding: a rule that fails to check is logged and the next epoch goes on."""
    try:
        hooks.check_epochs(encoder, epochs, vectors)
    except Exception:  # noqa: BLE001 - see above
        logger.exception("checking the hooks failed")

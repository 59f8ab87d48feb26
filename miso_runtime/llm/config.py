"""The LLM server settings (``/v1/settings/llm-config``), kept in a JSON file in the data dir.

Kept by :class:`~miso_runtime.settings_files.SettingsFile` (atomic writes, partial updates).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import constants
from ..settings_files import SettingsFile

ChatFormat = Literal[constants.LLAMA_CHAT_FORMATS + tuple(constants.LLAMA_MULTIMODAL_CHAT_HANDLERS)]  # type: ignore[valid-type]


class LlmConfig(BaseModel):
    """How the local model is loaded and served."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, description="catalog name of the model to serve")
    n_ctx: int = Field(default=constants.LLM_DEFAULT_N_CTX, ge=256, le=1_048_576, description="context size, tokens")
    n_threads: int | None = Field(default=None, ge=1, le=512, description="CPU threads; null = llama.cpp's choice")
    n_gpu_layers: int = Field(default=0, ge=-1, le=10_000, description="layers offloaded to the GPU; -1 = all")
    chat_format: ChatFormat | None = Field(
        default=None, description="llama-cpp-python chat format; null = from the file"
    )
    max_queue: int = Field(default=constants.LLM_DEFAULT_MAX_QUEUE, ge=0, le=1000)
    autostart: bool = Field(default=False, description="load the model when the runtime starts")
    mmproj: str | None = Field(default=None, description="path of a multimodal projector GGUF")


class LlmConfigStore(SettingsFile[LlmConfig]):
    """The LLM server settings file."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, LlmConfig)

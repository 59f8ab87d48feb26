"""Request bodies of the skill-daemon LLM server routes (section 4.8) and their settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ... import constants
from ...fields import Identifier, PathText
from ...llm.config import ChatFormat


class StartBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Identifier | None = Field(default=None, description="catalog model; null = the configured or default one")


class SwitchModelBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Identifier


class SwitchMmprojBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: PathText = Field(description="path of a projector GGUF (absolute, or relative to the models dir)")


class AbortBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    request_id: Identifier | None = Field(default=None, description="null = the running generation")


class LogsQuery(BaseModel):
    limit: int = Field(default=200, ge=1, le=5000)


class DownloadStartBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    url: str = Field(
        max_length=constants.MAX_PATH_CHARS,
        pattern=r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f]+$",
        description="an absolute http:// or https:// URL",
    )
    file_name: Identifier | None = Field(default=None, max_length=constants.MAX_FILE_NAME_CHARS)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


class DownloadIdBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Identifier


class LlmConfigBody(BaseModel):
    """Partial update of the LLM settings: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    model: Identifier | None = None
    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int | None = None
    chat_format: ChatFormat | None = None
    max_queue: int | None = None
    autostart: bool | None = None
    mmproj: PathText | None = None

"""Request and response bodies of the Miso contract (``shared/seeds/000``), as pydantic models.

Where the contract accepts a camelCase and a snake_case name for one field, both are
accepted (``threadId``/``thread_id``, ``maxTokens``/``max_tokens``...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from ...fields import CInt


def _aliases(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class HistoryItem(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class StreamOptions(BaseModel):
    """``options`` of ``POST /chat/stream``: model selection, sampling and per-request keys."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    model_id: str | None = Field(default=None, validation_alias=_aliases("modelId", "model_id"))
    provider: str | None = None
    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: CInt | None = Field(default=None, gt=0, validation_alias=_aliases("maxTokens", "max_tokens"))
    api_key: str | None = Field(default=None, validation_alias=_aliases("apiKey", "api_key"), repr=False)
    openai_api_key: str | None = Field(
        default=None, validation_alias=_aliases("openaiApiKey", "openai_api_key"), repr=False
    )
    anthropic_api_key: str | None = Field(
        default=None, validation_alias=_aliases("anthropicApiKey", "anthropic_api_key"), repr=False
    )
    miso_api_key: str | None = Field(default=None, validation_alias=_aliases("misoApiKey", "miso_api_key"), repr=False)


class ChatStreamBody(BaseModel):
    """Body of ``POST /chat/stream``. ``message`` is required and must not be blank."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    message: str = ""
    thread_id: str | None = Field(default=None, max_length=200, validation_alias=_aliases("threadId", "thread_id"))
    history: list[HistoryItem] | None = None
    options: StreamOptions = Field(default_factory=StreamOptions)


class WorkerInfo(BaseModel):
    name: str
    state: str
    pid: int | None
    restarts: int
    last_exit_code: int | None
    started_at_ms: int | None


class HealthResponse(BaseModel):
    status: str
    version: str
    model: str
    threaded: bool
    workers: list[WorkerInfo]


class ActiveModel(BaseModel):
    provider: str
    model: str
    model_id: str


class CatalogResponse(BaseModel):
    active: ActiveModel
    providers: dict[str, list[str]]
    errors: dict[str, str] | None = None

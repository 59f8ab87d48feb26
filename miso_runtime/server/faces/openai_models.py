"""Request bodies of the OpenAI-compatible API (skill-daemon section 8)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...fields import CInt


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message as plain text (text parts joined; other parts are not supported locally)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class StreamOptions(BaseModel):
    include_usage: bool = False


class SamplingParams(BaseModel):
    """Sampling fields, accepted at the top level and inside the contract's ``params`` object."""

    model_config = ConfigDict(extra="ignore")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: CInt | None = Field(default=None, ge=1)
    max_completion_tokens: CInt | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(
        default=None, ge=-(2**63), le=2**63 - 1, description="any 64-bit integer, as OpenAI takes it"
    )

    @field_validator("stop")
    @classmethod
    def _at_most_four(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value


class ChatCompletionBody(SamplingParams):
    """``POST /v1/chat/completions`` (and ``/v1/llm/chat-completions``)."""

    model: str | None = Field(default=None, description="a catalog model, or 'local' for the loaded one")
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=1)
    params: SamplingParams | None = Field(default=None, description="the skill-daemon contract's sampling object")

    def sampling(self) -> SamplingParams:
        """Top-level fields, with ``params`` filling those the top level leaves out."""
        merged: dict[str, Any] = self.params.model_dump(exclude_none=True) if self.params else {}
        merged.update(
            SamplingParams.model_validate(self.model_dump(include=set(SamplingParams.model_fields))).model_dump(
                exclude_none=True
            )
        )
        return SamplingParams.model_validate(merged)

"""Request bodies of the OpenAI-compatible API (skill-daemon section 8).

Function calling follows OpenAI's Chat Completions shapes: ``tools`` (function tools only),
``tool_choice``, ``parallel_tool_calls``, assistant messages with ``tool_calls`` and ``tool``
messages with ``tool_call_id``. Each field is checked here; the checks across fields (a
``tool_choice`` naming a listed function, a result answering an earlier call) are in
:mod:`miso_runtime.llm.tool_calls`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ...fields import CInt, Identifier
from ...llm.tool_calls import FUNCTION_NAME_PATTERN, ToolInputError, check_parameters

#: A function's name as OpenAI allows it: letters, digits, ``_`` and ``-``, at most 64.
FunctionName = Annotated[str, Field(pattern=FUNCTION_NAME_PATTERN, description="a-z, A-Z, 0-9, _ and -, 1 to 64")]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class CalledFunction(BaseModel):
    name: FunctionName
    arguments: str = Field(description="the arguments as JSON text, as the model wrote them")


class MessageToolCall(BaseModel):
    """A call an assistant message made (sent back with the conversation)."""

    id: Identifier
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[MessageToolCall] | None = Field(default=None, description="assistant: the calls it made")
    tool_call_id: Identifier | None = Field(default=None, description="tool: the call this message answers")

    def text(self) -> str:
        """The message as plain text (text parts joined; other parts are not supported locally)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: FunctionName
    description: str | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the arguments, an object; left out: no arguments"
    )
    strict: bool | None = Field(default=None, description="accepted; arguments always follow the schema's grammar")

    @field_validator("parameters")
    @classmethod
    def _a_schema_of_an_object(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        try:
            return check_parameters(value)
        except ToolInputError as exc:
            raise ValueError(str(exc)) from None


class FunctionTool(BaseModel):
    """A tool the model may call; only function tools exist here (OpenAI's custom tools do not)."""

    type: Literal["function"]
    function: FunctionDefinition

    def openai(self) -> dict[str, Any]:
        """The tool as a model's prompt shows it (OpenAI's form, without ``strict``)."""
        return {"type": "function", "function": self.function.model_dump(exclude_none=True, exclude={"strict"})}


class ChosenFunction(BaseModel):
    name: FunctionName


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming the function the model must call."""

    type: Literal["function"]
    function: ChosenFunction


class AllowedTools(BaseModel):
    mode: Literal["auto", "required"]
    tools: list[NamedToolChoice] = Field(min_length=1)


class AllowedToolsChoice(BaseModel):
    """``tool_choice`` that lets the model use only some of the tools."""

    type: Literal["allowed_tools"]
    allowed_tools: AllowedTools


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
    tools: list[FunctionTool] | None = Field(default=None, description="functions the model may call")
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | AllowedToolsChoice | None = Field(
        default=None, description="auto (the default with tools), none, required, or a named function"
    )
    parallel_tool_calls: bool | None = Field(default=None, description="whether one answer may hold several calls")

    def sampling(self) -> SamplingParams:
        """Top-level fields, with ``params`` filling those the top level leaves out."""
        merged: dict[str, Any] = self.params.model_dump(exclude_none=True) if self.params else {}
        merged.update(
            SamplingParams.model_validate(self.model_dump(include=set(SamplingParams.model_fields))).model_dump(
                exclude_none=True
            )
        )
        return SamplingParams.model_validate(merged)

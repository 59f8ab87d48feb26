"""Request bodies of the Maria face (seeds/003 and ``research/maria-and-caco.md`` part 1).

Every field Maria's daemon reads is optional where it is there, and ``null`` counts as absent.
A message is OpenAI-shaped: ``content`` is a string or a list of ``{"type":"text","text"}``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ...fields import Identifier, PathText

#: A message's text: long, but bounded like every body (the body limit applies too).
MessageText = str


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: MessageText


class UserMessageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["user"] = "user"
    content: MessageText | list[TextPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class CreateTaskBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    #: Maria's UI sends its whole first message as the name: no limit but the body's.
    name: str | None = None
    model: Identifier | None = None
    message: UserMessageBody | None = None
    cwd: PathText | None = None
    web_search: bool | None = None


class PostMessageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: UserMessageBody
    web_search: bool | None = None


class ExternalEventBody(BaseModel):
    """``{"type": "UserMessage", "message"}`` reads like an immediate message; ``Cancelled`` like a gentle cancel."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["UserMessage", "Cancelled"]
    message: MessageText | UserMessageBody | None = None


class ImmediateMessageBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    message: MessageText | UserMessageBody


class EnabledToolsBody(RootModel[list[Identifier]]):
    """A JSON array of the tool names to switch on (the others go off)."""


class SystemPromptBody(RootModel[str | None]):
    """The new system prompt as a JSON string, or ``null`` for none."""


class TasksConfigBody(BaseModel):
    """A partial ``/v1/settings/agent-tasks``: the fields given replace the stored ones."""

    model_config = ConfigDict(extra="forbid")

    model_map: dict[Identifier, Identifier] | None = None
    idle_stop_secs: float | None = Field(default=None, ge=5, le=7 * 86_400)


def message_text(value: str | UserMessageBody | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.text()

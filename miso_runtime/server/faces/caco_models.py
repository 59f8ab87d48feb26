"""Request bodies and queries of Caco's session routes (seeds/001; ``research/maria-and-caco.md`` part 2).

Caco checks a few fields itself with its own messages (``prompt is required``); those fields
are optional here and checked by the view, so the answer is Caco's text, not pydantic's.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...fields import PathText


class CacoBody(BaseModel):
    """Caco's bodies: unknown fields are ignored, as Express does."""

    model_config = ConfigDict(extra="ignore")


class CreateSessionBody(CacoBody):
    cwd: PathText | None = Field(
        default=None, description="The session's working directory (default: the workspace root)."
    )
    model: str | None = Field(default=None, max_length=200, description="A model id of `GET /caco/api/sessions`.")


class AppletEntry(BaseModel):
    slug: str = Field(max_length=200)
    label: str | None = Field(default=None, max_length=500)


class AppletNavigation(CacoBody):
    stack: list[AppletEntry] = Field(default_factory=list, max_length=100)
    urlParams: dict[str, Any] = Field(default_factory=dict)


class PostMessageBody(CacoBody):
    prompt: str | None = Field(default=None, description="The message (required; Caco's 400 `prompt is required`).")
    imageData: str | None = Field(default=None, description="A pasted image as `data:image/<type>;base64,...`.")
    appletState: dict[str, Any] | None = Field(default=None, description="Shallow-merged into the applet state.")
    appletNavigation: AppletNavigation | None = Field(default=None, description="Replaces the navigation context.")
    source: Literal["user", "applet", "agent"] = "user"
    appletSlug: str | None = Field(default=None, max_length=200)
    fromSession: str | None = Field(default=None, max_length=200)


class SessionQuery(BaseModel):
    sessionId: str | None = Field(default=None, max_length=200)

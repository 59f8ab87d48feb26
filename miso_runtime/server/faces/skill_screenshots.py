"""skill-daemon section 4.10: screenshots (``/v1/settings/screenshot/*``) and their image files.

The daemon's shapes. Where this answers differently, on purpose: a body that does not fit is a
422 naming the field (the daemon's serde text, or defaults), ``around`` takes ``timestamp`` as
UNIX seconds (its frontend) or ``YYYYMMDDHHmmss`` (its docs), and an image name that is not one
of our captures is a 4xx in the skill envelope, never a file from elsewhere on disk.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, jsonify, request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator
from werkzeug.utils import send_file

from ... import constants
from ...auth import Access
from ...screenshots.config import ScreenshotConfig
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime
from .skill_embedding_models import unwrap_config

blueprint = Blueprint("skill_screenshots", __name__)
TAGS = ("skill", "screenshots")


class ScreenshotConfigBody(ScreenshotConfig):
    """A ``ScreenshotConfig``, raw or as ``{"config": {...}}``; fields left out take their defaults."""

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        return unwrap_config(data)


class AroundBody(BaseModel):
    """The daemon's camelCase ``{timestamp, windowSecs}`` (``window_secs`` is accepted too)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    timestamp: int = Field(ge=0, lt=10**14, description="UNIX seconds, or YYYYMMDDHHmmss UTC")
    window_secs: int = Field(
        validation_alias=AliasChoices("windowSecs", "window_secs"),
        ge=0,
        le=constants.SCREENSHOT_AROUND_MAX_WINDOW_S,
        description="seconds each side",
    )


class SearchTextBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    query: str = Field(min_length=1, max_length=constants.SCREENSHOT_QUERY_MAX_CHARS)
    k: int | None = Field(default=None, ge=1, le=constants.SCREENSHOT_SEARCH_MAX_K)
    mode: Literal["semantic", "substring"] | None = None


@blueprint.get("/v1/settings/screenshot/config")
@endpoint(Access.ADMIN, tags=TAGS)
def get_screenshot_config():
    """What is captured, how often and how it is kept (``ScreenshotConfig``)."""
    return jsonify(runtime().screenshots.config.get().model_dump())


@blueprint.post("/v1/settings/screenshot/config")
@endpoint(Access.ADMIN, body=ScreenshotConfigBody, tags=TAGS)
def set_screenshot_config(body: ScreenshotConfigBody):
    """Replace the settings; the worker applies them at once. ``{"model_changed", "stale_count"}``."""
    return jsonify(runtime().screenshots.set_config(body.model_dump(exclude_unset=True)))


@blueprint.get("/v1/settings/screenshot/metrics")
@endpoint(Access.ADMIN, tags=TAGS)
def get_screenshot_metrics():
    """Counters and the last capture's stage times, ``status`` and ``last_error``."""
    return jsonify(run_blocking(runtime().screenshots.metrics))


@blueprint.get("/v1/settings/screenshot/dir")
@endpoint(Access.ADMIN, tags=TAGS)
def get_screenshot_dir():
    """``{"dir", "port"}``: the screenshots folder and the port serving ``/screenshots/...``."""
    return jsonify(runtime().screenshots.directory())


@blueprint.post("/v1/settings/screenshot/around")
@endpoint(Access.ADMIN, body=AroundBody, tags=TAGS)
def screenshots_around(body: AroundBody):
    """Captures within ``windowSecs`` of ``timestamp``, oldest first (``[ScreenshotResult]``)."""
    return jsonify(run_blocking(runtime().screenshots.around, body.timestamp, body.window_secs))


@blueprint.post("/v1/settings/screenshot/search-text")
@endpoint(Access.ADMIN, body=SearchTextBody, tags=TAGS)
def search_screenshots_text(body: SearchTextBody):
    """Captures by OCR text: ``semantic`` (default; by meaning) or ``substring``."""
    mode = body.mode or "semantic"
    service = runtime().screenshots
    if mode == "semantic":
        runtime().labels.text_model()  # loaded here on the hub (see LabelService.text_model)
    k = body.k or constants.SCREENSHOT_SEARCH_DEFAULT_K
    return jsonify(run_blocking(service.search_text, body.query, k, mode))


def _send_image(date: str | None, filename: str):
    path = run_blocking(runtime().screenshots.file_path, date, filename)
    response = send_file(path, request.environ, mimetype="image/webp", conditional=True, max_age=86_400)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@blueprint.get("/screenshots/<filename>")
@endpoint(Access.READ, tags=TAGS)
def get_screenshot_file(filename: str):
    """One capture's WebP, its day taken from the name (``?token=`` for ``<img>``)."""
    return _send_image(None, filename)


@blueprint.get("/screenshots/<date>/<filename>")
@endpoint(Access.READ, tags=TAGS)
def get_screenshot_file_of_day(date: str, filename: str):
    """One capture's WebP under its day folder (the ``filename`` of a ``ScreenshotResult``)."""
    return _send_image(date, filename)

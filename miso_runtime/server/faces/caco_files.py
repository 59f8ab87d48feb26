"""Caco's file browser over the workspace root, and its preferences (research/maria-and-caco.md §2.8, §2.4).

Errors are Caco's ``{"error": "..."}``, except on ``GET /caco/api/file``, which answers them in
plain text as Caco does (that blueprint has the plain-text envelope). What Caco leaves open is
closed here: every route needs a token (reads a read token, writes an admin one), the guard's
Origin check refuses other sites' pages, and a served file cannot run script on our origin
(``Content-Security-Policy: sandbox``, ``nosniff``).

``PUT /caco/api/files/<path>`` takes its body as text whatever its ``Content-Type``, JSON too:
Caco's app-wide JSON parser eats a JSON body and answers 400, a quirk not worth copying. An
empty body writes an empty file.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field
from werkzeug.exceptions import RequestEntityTooLarge

from ... import constants
from ...auth import Access
from ...errors import MisoError
from ...workbench.files import WorkspaceFiles
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("caco_files", __name__)
#: ``GET /caco/api/file`` answers its errors in plain text (Caco's ``res.send(text)``).
raw_blueprint = Blueprint("caco_file_raw", __name__)
TAGS = ("caco",)

#: Served files are documents of no origin of their own: an HTML or SVG file from the workspace
#: must not run script with our origin's tokens. A sandboxed PDF would not render, and the
#: browser's PDF viewer runs a PDF's script away from our origin anyway.
_SANDBOX_EXEMPT = ("application/pdf",)


class PathQuery(BaseModel):
    """``?path=``, relative to the workspace root or absolute inside it."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = Field(None, description="relative to the workspace root, or absolute inside it")


class WriteBody(BaseModel):
    """The legacy write: ``{"path", "content"}``."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = Field(None, description="relative to the workspace root, or absolute inside it")
    content: str | None = Field(None, description="the file's new text (UTF-8)")


class PreferencesBody(BaseModel):
    """Some preferences: ``lastModel``/``lastCwd`` change only to a non-empty value; ``null`` clears the session."""

    model_config = ConfigDict(extra="ignore")

    lastCwd: str | None = None
    lastModel: str | None = None
    lastSessionId: str | None = None


def _files() -> WorkspaceFiles:
    return runtime().workbench.files


def _required(path: str | None) -> str:
    """Caco's 400 for a missing or empty ``path`` (pydantic's message would name the field differently)."""
    if not path:
        raise MisoError(400, "invalid_request", "path parameter required")
    return path


# --- the file browser ---------------------------------------------------------------------------


@blueprint.route("/caco/api/files", methods=["GET"])
@endpoint(Access.READ, query=PathQuery, tags=TAGS)
def list_files(query: PathQuery):
    """A directory of the workspace (the root without ``path``): directories first, dot-files hidden."""
    return jsonify(_files().list(query.path or ""))


@raw_blueprint.route("/caco/api/file", methods=["GET"])
@endpoint(Access.READ, query=PathQuery, tags=TAGS)
def serve_file(query: PathQuery):
    """A file's bytes, typed by its extension; at most 10 MiB. Errors are plain text."""
    data, content_type = _files().serve(_required(query.path))
    response = Response(data, content_type=content_type)
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not content_type.startswith(_SANDBOX_EXEMPT):
        response.headers["Content-Security-Policy"] = "sandbox"
    return response


@blueprint.route("/caco/api/files/", methods=["PUT"])
@endpoint(Access.ADMIN, tags=TAGS)
def put_file_without_path():
    """Caco's 400 for a write that names no file."""
    raise MisoError(400, "invalid_request", "file path required in URL")


def _put(client_path: str) -> Response:
    try:
        raw = request.get_data(cache=False)
    except RequestEntityTooLarge:
        raw = b""
        too_large = True
    else:
        # The route's limit is one byte more than a file may have, because a chunked body is cut at
        # the limit without an error: a body that reaches it was larger than the file may be.
        too_large = len(raw) > constants.CACO_FILE_WRITE_MAX_BYTES
    if too_large:
        raise MisoError(413, "payload_too_large", "File too large (max 10MB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MisoError(400, "invalid_request", "request body must be UTF-8 text") from None
    return jsonify(_files().put(client_path, text))


@blueprint.route("/caco/api/files/<path:file_path>", methods=["PUT"], merge_slashes=False)
@endpoint(Access.ADMIN, tags=TAGS, max_body=constants.CACO_FILE_WRITE_MAX_BYTES + 1)
def put_file(file_path: str):
    """Write the raw body (UTF-8 text, at most 10 MiB) to the file, creating its parents; atomic."""
    return _put(file_path)


@blueprint.route("/caco/api/files/read", methods=["GET"])
@endpoint(Access.READ, query=PathQuery, tags=TAGS)
def read_file(query: PathQuery):
    """Legacy: a UTF-8 text file of at most 100 KiB as ``{"path", "content", "size"}``."""
    return jsonify(_files().read(_required(query.path)))


@blueprint.route("/caco/api/files/write", methods=["POST"])
@endpoint(Access.ADMIN, body=WriteBody, tags=TAGS)
def write_file(body: WriteBody):
    """Legacy: write ``content`` to ``path``, whose directory must exist."""
    path = _required(body.path)
    if body.content is None:
        raise MisoError(400, "invalid_request", "content parameter required")
    return jsonify(_files().write(path, body.content))


# --- preferences --------------------------------------------------------------------------------


@blueprint.route("/caco/api/preferences", methods=["GET"])
@endpoint(Access.READ, tags=TAGS)
def get_preferences():
    """``{"lastCwd", "lastModel", "lastSessionId"}``."""
    return jsonify(runtime().workbench.preferences.get())


@blueprint.route("/caco/api/preferences", methods=["POST"])
@endpoint(Access.DATA, body=PreferencesBody, tags=TAGS)
def update_preferences(body: PreferencesBody):
    """Change some preferences (Caco's rules) and answer all of them."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    return jsonify(runtime().workbench.preferences.update(changes))

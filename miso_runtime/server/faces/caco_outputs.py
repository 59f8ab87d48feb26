"""``GET /caco/api/outputs/<id>``: a display output, raw or as the JSON the page renders from.

The page asks for ``?format=json`` (``display-output.ts``) and renders by the metadata; the raw
form is for links and ``<img>``. A raw output is served as a document of no origin of its own
(``Content-Security-Policy: sandbox``, ``nosniff``): an embed's HTML or an SVG must not run
script with this origin's tokens. An embed is ``text/html`` as Express labels a string it sends.
The JSON form is always ``application/json`` (Express kept the raw type there, ``image/png`` for
an image's JSON; clients ignore it). Outputs do not expire (see :mod:`miso_runtime.workbench.outputs`),
so the 404's "expired" only means "not found".
"""

from __future__ import annotations

import base64
import json

from flask import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("caco_outputs", __name__)
TAGS = ("caco",)
#: Output types whose data is text (an image's is bytes, sent as base64 in JSON).
_TEXT_TYPES = {"file": "text/plain; charset=utf-8", "terminal": "text/plain; charset=utf-8"}


class OutputQuery(BaseModel):
    """``?format=json`` for the JSON form; any other value (or none) is the raw form, as in Caco."""

    model_config = ConfigDict(extra="ignore")

    format: str | None = Field(None, description="`json` for `{id, data, metadata, createdAt}`")


@blueprint.get("/caco/api/outputs/<output_id>")
@endpoint(Access.READ, query=OutputQuery, tags=TAGS)
def output(output_id: str, query: OutputQuery):
    """The output's data with its content type, or ``{id, data, metadata, createdAt}`` with ``?format=json``."""
    stored = runtime().workbench.outputs.get(output_id)
    if stored is None:
        raise MisoError(404, "not_found", "Output expired or not found")
    metadata = stored.metadata
    kind = metadata.get("type")
    is_image = str(metadata.get("mimeType") or "").startswith("image/")
    if query.format == "json":
        data = base64.b64encode(stored.data).decode() if is_image else stored.data.decode("utf-8", errors="replace")
        body = {"id": stored.id, "data": data, "metadata": metadata, "createdAt": metadata.get("createdAt")}
        return Response(json.dumps(body, ensure_ascii=False), mimetype="application/json")
    if kind == "embed":
        content_type = "text/html; charset=utf-8"
    else:
        content_type = str(metadata.get("mimeType") or _TEXT_TYPES.get(str(kind), "text/plain; charset=utf-8"))
    response = Response(stored.data, content_type=content_type)
    response.headers["Content-Security-Policy"] = "sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response

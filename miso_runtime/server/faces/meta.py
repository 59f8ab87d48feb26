"""Documents about the API itself: ``GET /openapi.json``."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ..api_document import openapi_document
from ..endpoint import endpoint

blueprint = Blueprint("meta", __name__)


@blueprint.get("/openapi.json")
@endpoint(Access.READ, tags=("meta",))
def openapi_json():
    """The OpenAPI document of every documented route, generated from the pydantic models."""
    return jsonify(openapi_document())

"""``/openapi.json``: spectree's document of the routes, completed with what each route answers.

:mod:`miso_runtime.server.openapi` holds the spectree instance that routes register with; this
module turns its document into the one served, once per app.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from flask import Flask, current_app

from .endpoint import declared_status
from .envelopes import Envelope, envelope_of_route
from .openapi import spec

_DOCUMENT_KEY = "miso.openapi"


def openapi_document() -> dict[str, Any]:
    """The document for the current app (spectree reads the routes from ``current_app``), made once."""
    app = current_app
    document = app.extensions.get(_DOCUMENT_KEY)
    if document is None:
        document = copy.deepcopy(spec.spec)
        document_responses(document, app)
        app.extensions[_DOCUMENT_KEY] = document
    return document


def document_responses(document: dict[str, Any], app: Flask) -> None:
    """Give every operation its success status and its contract's error envelope for 4xx and 5xx.

    spectree documents a success only where a route names a response model, and adds a 422 in
    its own error shape that no route answers with. Clients (and the fuzz test, which checks
    every answer against the document) need what the route really sends: its success status,
    and the error envelope of its face (``miso_runtime.server.envelopes``) for any failure.
    """
    envelopes: dict[str, Envelope] = app.extensions["miso.envelopes"]
    for rule in app.url_map.iter_rules():
        item = document["paths"].get(_openapi_path(rule.rule))
        if item is None:
            continue
        view = app.view_functions[rule.endpoint]
        blueprint = rule.endpoint.rpartition(".")[0] or None
        envelope = envelope_of_route(blueprint, rule.rule, envelopes)
        error = {
            "description": f"an error in the {envelope.name} contract's envelope",
            "content": {envelope.mimetype: {"schema": envelope.schema}},
        }
        status = str(declared_status(view))
        for method in rule.methods or ():
            operation = item.get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)  # spectree's validation error, which we never send
            responses.setdefault(status, {"description": "success"})
            responses["4XX"] = error
            responses["5XX"] = error


def _openapi_path(rule: str) -> str:
    """``/api/sessions/<session_id>`` (Flask) as ``/api/sessions/{session_id}`` (OpenAPI)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)

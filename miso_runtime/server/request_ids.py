"""Request ids: one per request, answered in ``X-Request-Id`` and named in error log lines.

A person who sees a 500 in the app can then find its traceback in the log. A client (the
Electron bridge, a proxy) may send its own id so that its log and ours line up; one that is not
short and plain is replaced rather than written into the log.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, has_request_context, request

from .. import constants

_SANE_ID = re.compile(rf"^[A-Za-z0-9._:-]{{1,{constants.REQUEST_ID_MAX_CHARS}}}$")


def request_id() -> str:
    """The current request's id ("-" outside a request)."""
    if not has_request_context():
        return "-"
    if "request_id" not in g:
        sent = request.headers.get(constants.REQUEST_ID_HEADER, "")
        g.request_id = sent if _SANE_ID.match(sent) else uuid.uuid4().hex[:16]
    return g.request_id


def name_request(rid: str) -> None:
    """Make ``rid`` the current request's id: a route whose work has an id of its own (an OpenAI
    completion's ``chatcmpl-...``, which ``/v1/llm/abort-stream`` takes) answers and logs that one."""
    g.request_id = rid


def install_request_ids(app: Flask) -> None:
    """Answer every response, errors and streams included, with its request's id."""

    @app.after_request
    def answer_with_id(response: Response) -> Response:
        response.headers[constants.REQUEST_ID_HEADER] = request_id()
        return response

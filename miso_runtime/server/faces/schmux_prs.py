"""schmux (seeds/004): pull requests of the configured public GitHub repositories.

``GET /api/prs`` answers the cache, ``POST /api/prs/refresh`` asks GitHub again and
``POST /api/prs/checkout`` checks one out into a workspace with a review session; the logic is
:class:`~miso_runtime.agents.pull_requests.PullRequests`. Errors are ``{"error": "..."}`` with
schmux's texts. The checkout body is read as schmux's Go decoder reads it (unknown keys ignored,
a value of the wrong type refused), so its two 400s come in schmux's order.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, request

from ...auth import Access
from ...errors import MisoError
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_prs", __name__)
TAGS = ("schmux",)

#: Bytes of a checkout body schmux reads (``http.MaxBytesReader(..., 1<<20)``).
_MAX_BODY_BYTES = 1 << 20
#: Go's ``int`` on the 64-bit builds schmux ships.
_GO_INT_MAX = 2**63 - 1


class _Pairs(list):
    """A JSON object as its ``(key, value)`` pairs in order, told apart from an array."""


def _checkout_body() -> tuple[str, int] | None:
    """``(repo_url, pr_number)`` as Go decodes ``{"repo_url": string, "pr_number": int}``; ``None`` when
    Go would refuse the body (empty, not JSON, not an object, a field of the wrong type)."""
    raw = request.get_data(cache=True)
    if len(raw) > _MAX_BODY_BYTES:
        return None
    try:
        payload: Any = json.JSONDecoder(object_pairs_hook=_Pairs, parse_constant=_refuse).raw_decode(
            raw.decode("utf-8").lstrip(" \t\r\n")
        )[0]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if payload is None:
        payload = _Pairs()
    if not isinstance(payload, _Pairs):
        return None  # an array or a scalar
    repo_url, number = "", 0
    for key, value in payload:
        name = key.lower()
        if value is None or name not in ("repo_url", "pr_number"):
            continue
        if name == "repo_url":
            if not isinstance(value, str):
                return None
            repo_url = value
        else:
            if not isinstance(value, int) or isinstance(value, bool) or abs(value) > _GO_INT_MAX:
                return None
            number = value
    return repo_url, number


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@blueprint.get("/api/prs")
@endpoint(Access.READ, tags=TAGS)
def prs():
    """The cached pull requests, when they were fetched (``null``: never) and the last refresh's error."""
    return jsonify(runtime().pull_requests.listing())


@blueprint.post("/api/prs/refresh")
@endpoint(Access.ADMIN, tags=TAGS)
def refresh_prs():
    """Ask GitHub for the open pull requests of the public configured repos; always 200, ``error`` when it failed."""
    return jsonify(runtime().pull_requests.refresh())


@blueprint.post("/api/prs/checkout")
@endpoint(Access.ADMIN, tags=TAGS)
def checkout_pr():
    """Check a cached pull request out on ``pr/<n>`` and start a ``pr_review.target`` session reviewing it."""
    body = _checkout_body()
    if body is None:
        raise MisoError(400, "invalid_request", "Invalid request body")
    repo_url, number = body
    if not repo_url or number <= 0:
        raise MisoError(400, "invalid_request", "repo_url and pr_number are required")
    return jsonify(runtime().pull_requests.checkout(repo_url, number))

"""schmux (seeds/004): pull requests of the configured GitHub repositories.

No GitHub discovery yet: the routes answer what schmux answers with an empty cache. Errors are
``{"error": "..."}`` as schmux writes them for these routes.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict

from ...auth import Access
from ...errors import MisoError
from ...fields import CInt, Printable
from ..endpoint import endpoint

blueprint = Blueprint("schmux_prs", __name__)
TAGS = ("schmux",)

#: ``POST /api/prs/refresh``'s ``error``: said every time, so the dashboard shows why the list stays empty.
PR_DISCOVERY_OFF = "pull request discovery is not available in this runtime: no GitHub repositories are queried"


class PrCheckoutBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_url: Printable = ""
    pr_number: CInt = 0


@blueprint.get("/api/prs")
@endpoint(Access.READ, tags=TAGS)
def prs():
    """The cached pull requests: none, never fetched."""
    return jsonify(prs=[], last_fetched_at=None)


@blueprint.post("/api/prs/refresh")
@endpoint(Access.ADMIN, tags=TAGS)
def refresh_prs():
    """200 with no pull requests and an ``error`` saying why: this runtime queries no GitHub repositories."""
    return jsonify(prs=[], fetched_count=0, error=PR_DISCOVERY_OFF, retry_after_sec=None)


@blueprint.post("/api/prs/checkout")
@endpoint(Access.ADMIN, body=PrCheckoutBody, tags=TAGS)
def checkout_pr(body: PrCheckoutBody):
    """400 without ``repo_url`` and a positive ``pr_number``; else 404: the pull-request cache is empty."""
    if not body.repo_url or body.pr_number <= 0:
        raise MisoError(400, "invalid_request", "repo_url and pr_number are required")
    raise MisoError(404, "pr_not_found", f"PR #{body.pr_number} not found for {body.repo_url}")

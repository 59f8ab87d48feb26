"""schmux branch routes: recent branches, a branch name suggested by a model, a spawn on a branch.

``recent-branches`` answers errors in plain text (``text_blueprint``, ``SCHMUX_TEXT``), the two
others ``{"error": "..."}`` (``blueprint``, ``SCHMUX``), as schmux does. Git runs in the
``agents`` worker, the model calls here (:mod:`~miso_runtime.agents.branches`).
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, Field

from ...auth import Access
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_branches", __name__)
text_blueprint = Blueprint("schmux_branches_text", __name__)
TAGS = ("schmux",)


class RecentBranchesQuery(BaseModel):
    #: Taken as schmux takes it: a positive integer (capped at 50), anything else means 10.
    limit: str | None = Field(default=None, max_length=100)


class SuggestBranchBody(BaseModel):
    prompt: str = Field(description="the task the branch is for")


class PrepareBranchSpawnBody(BaseModel):
    repo_name: str = Field(default="", description="a repo's name in the config")
    branch: str = ""


@text_blueprint.get("/api/recent-branches")
@endpoint(Access.READ, query=RecentBranchesQuery, tags=TAGS)
def recent_branches(query: RecentBranchesQuery):
    """Origin's branches of the configured repos, newest commit first (``null`` when there are none)."""
    return jsonify(runtime().branches.recent(query.limit))


@blueprint.post("/api/suggest-branch")
@endpoint(Access.READ, body=SuggestBranchBody, tags=TAGS)
def suggest_branch(body: SuggestBranchBody):
    """A branch name and a nickname for a task, from the ``branch_suggest.target`` model."""
    return jsonify(runtime().branches.suggest(body.prompt))


@blueprint.post("/api/prepare-branch-spawn")
@endpoint(Access.READ, body=PrepareBranchSpawnBody, tags=TAGS)
def prepare_branch_spawn(body: PrepareBranchSpawnBody):
    """The prompt (with the branch's commit history) and a nickname to resume work on a branch."""
    return jsonify(runtime().branches.prepare_spawn(body.repo_name, body.branch))

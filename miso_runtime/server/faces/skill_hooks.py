"""skill-daemon section 4.11: hook rules, their statuses and log, and the editor's suggestions.

Where this answers differently from the daemon, on purpose: ``POST /v1/hooks`` saves as ``PUT``
does, and both take the raw array or ``{"hooks": [...]}`` (the frontend posts the wrapped form
and the daemon routes only ``PUT``); the save names rules that cannot fire (``warnings``);
``statuses`` gives each rule's last firing (the daemon's is always null); ``suggest-distances``
compares the recent EEG with the keywords' labels (the daemon reads its own past firings, which
is its fallback here). A fired rule's command is run, with a timeout, its outcome in the log row.
"""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from ... import constants
from ...auth import Access
from ...hooks.rules import HookRules
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("skill_hooks", __name__)
TAGS = ("skill", "hooks")


class HookLogBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=constants.HOOK_LOG_DEFAULT_LIMIT, description="clamped to 1..500, as the daemon")
    offset: int = Field(default=0, description="rows skipped, newest first (negative: 0)")


class SuggestKeywordsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    draft: str = Field(max_length=1000)
    limit: int = Field(default=constants.HOOK_SUGGEST_DEFAULT, description="clamped to 1..20, as the daemon")


class SuggestDistancesBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    keywords: list[str] = Field(max_length=constants.HOOK_MAX_KEYWORDS)


@blueprint.get("/v1/hooks")
@endpoint(Access.ADMIN, tags=TAGS)
def list_hooks():
    """Every hook rule, as saved (a JSON array)."""
    return jsonify([rule.model_dump() for rule in runtime().hooks.rules()])


@blueprint.route("/v1/hooks", methods=["PUT", "POST"])
@endpoint(Access.ADMIN, body=HookRules, tags=TAGS)
def save_hooks(body: HookRules):
    """Replace every rule; live epochs are checked against them from the next one."""
    return jsonify(runtime().hooks.set_rules(body.root))


@blueprint.get("/v1/hooks/statuses")
@endpoint(Access.ADMIN, tags=TAGS)
def hook_statuses():
    """Each rule with its last firing (``last_trigger``, null before the first)."""
    return jsonify(run_blocking(runtime().hooks.statuses))


@blueprint.post("/v1/hooks/log")
@endpoint(Access.ADMIN, body=HookLogBody, tags=TAGS)
def hook_log(body: HookLogBody):
    """Fired hooks, newest first; ``hook_json``, ``trigger_json`` and ``payload_json`` are JSON strings."""
    limit = min(max(body.limit, 1), constants.HOOK_LOG_MAX_LIMIT)
    return jsonify(run_blocking(runtime().hooks.log_page, limit, max(body.offset, 0)))


@blueprint.get("/v1/hooks/log-count")
@endpoint(Access.ADMIN, tags=TAGS)
def hook_log_count():
    """``{"count": n}``: rows in the log."""
    return jsonify(run_blocking(runtime().hooks.log_count))


@blueprint.post("/v1/hooks/suggest-keywords")
@endpoint(Access.ADMIN, body=SuggestKeywordsBody, tags=TAGS)
def suggest_keywords(body: SuggestKeywordsBody):
    """Label texts containing the draft (2 characters at least), newest first."""
    limit = min(max(body.limit, 1), constants.HOOK_SUGGEST_MAX)
    return jsonify(run_blocking(runtime().hooks.suggest_keywords, body.draft, limit))


@blueprint.post("/v1/hooks/suggest-distances")
@endpoint(Access.ADMIN, body=SuggestDistancesBody, tags=TAGS)
def suggest_distances(body: SuggestDistancesBody):
    """Percentiles of how near the recent EEG came to the keywords' labels, and a threshold."""
    rt = runtime()
    rt.labels.text_model()  # loaded here on the hub: an import in a threadpool thread can deadlock
    return jsonify(run_blocking(rt.hooks.suggest_distances, body.keywords, rt.embeddings.encoder))

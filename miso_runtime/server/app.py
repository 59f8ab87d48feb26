"""The app factory: one Flask app serving every contract's face over one runtime.

Importing this module starts nothing and patches nothing; the caller (``serve`` or the
gunicorn config) owns the process.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ..errors import MisoError
from ..runtime import Runtime
from .envelopes import (
    CACO,
    CACO_TEXT,
    MARIA,
    MISO,
    OPENAI,
    SCHMUX,
    SCHMUX_RESULT,
    SCHMUX_TEXT,
    SKILL,
    Envelope,
    envelope_for,
)
from .faces import (
    caco,
    caco_applets,
    caco_files,
    caco_outputs,
    events,
    maria,
    meta,
    miso,
    openai_compat,
    schmux,
    schmux_auth,
    schmux_branches,
    schmux_git,
    schmux_nudgenik,
    schmux_previews,
    schmux_prs,
    schmux_remote,
    schmux_settings,
    schmux_sync,
    schmux_ws,
    skill_auth,
    skill_dnd,
    skill_embeddings,
    skill_history,
    skill_hooks,
    skill_iroh,
    skill_labels,
    skill_llm,
    skill_lsl,
    skill_nebula,
    skill_neuro,
    skill_screenshots,
    skill_search,
    skill_settings,
    skill_sleep,
)
from .guard import RequestGuard
from .request_ids import install_request_ids, request_id
from .sse import StreamRegistry
from .websocket import install as install_whole_frame_websockets

logger = logging.getLogger(__name__)

#: Each face's blueprint and the envelope its errors use.
FACES: list[tuple[object, Envelope]] = [
    (miso.blueprint, MISO),
    (skill_auth.blueprint, SKILL),
    (events.blueprint, SKILL),
    (meta.blueprint, MISO),
    (openai_compat.blueprint, OPENAI),
    (skill_llm.blueprint, SKILL),
    (skill_neuro.blueprint, SKILL),
    (skill_history.blueprint, SKILL),
    (skill_settings.blueprint, SKILL),
    (skill_dnd.blueprint, SKILL),
    (skill_embeddings.blueprint, SKILL),
    (skill_search.blueprint, SKILL),
    (skill_labels.blueprint, SKILL),
    (skill_hooks.blueprint, SKILL),
    (skill_lsl.blueprint, SKILL),
    (skill_screenshots.blueprint, SKILL),
    (skill_iroh.blueprint, SKILL),
    (skill_nebula.blueprint, SKILL),
    (skill_sleep.blueprint, SKILL),
    (schmux.blueprint, SCHMUX),
    (schmux.config_blueprint, SCHMUX_TEXT),
    (schmux_ws.blueprint, SCHMUX),
    (schmux_nudgenik.blueprint, SCHMUX_TEXT),
    (schmux_branches.blueprint, SCHMUX),
    (schmux_branches.text_blueprint, SCHMUX_TEXT),
    (schmux_git.blueprint, SCHMUX),
    (schmux_git.tools_blueprint, SCHMUX_RESULT),
    (schmux_previews.blueprint, SCHMUX_TEXT),
    (schmux_sync.blueprint, SCHMUX_RESULT),
    (schmux_settings.blueprint, SCHMUX_TEXT),
    (schmux_settings.update_blueprint, SCHMUX),
    (schmux_auth.blueprint, SCHMUX_TEXT),
    (schmux_remote.blueprint, SCHMUX_TEXT),
    (schmux_prs.blueprint, SCHMUX),
    (maria.blueprint, MARIA),
    (caco.blueprint, CACO),
    (caco_applets.blueprint, CACO),
    (caco_outputs.blueprint, CACO),
    (caco_files.blueprint, CACO),
    (caco_files.raw_blueprint, CACO_TEXT),
]

_CODE_BY_STATUS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def create_app(runtime: Runtime) -> Flask:
    """Build the app for ``runtime``; every route of every face is registered here."""
    app = Flask("miso_runtime", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = runtime.settings.max_body_bytes
    app.json.sort_keys = False
    envelopes = {blueprint.name: envelope for blueprint, envelope in FACES}

    def envelope_of(req) -> Envelope:
        return envelope_for(req, envelopes)

    app.extensions["miso.runtime"] = runtime
    app.extensions["miso.streams"] = StreamRegistry()
    app.extensions["miso.envelope_for"] = envelope_of
    app.extensions["miso.envelopes"] = envelopes

    install_request_ids(app)
    RequestGuard(runtime.settings, runtime.tokens, runtime.iroh).install(app)
    install_whole_frame_websockets()
    for blueprint, _envelope in FACES:
        app.register_blueprint(blueprint)

    @app.errorhandler(MisoError)
    def render_miso_error(error: MisoError) -> Response:
        # An expected error: one line at most (a 5xx names the request), never a traceback.
        if error.status >= 500:
            logger.error("%s %s failed (request %s): %s", request.method, request.path, request_id(), error.message)
        return envelope_of(request).render(error.status, error.code, error.message, error.headers)

    @app.errorhandler(HTTPException)
    def render_http_error(error: HTTPException) -> Response:
        status = error.code or 500
        code = _CODE_BY_STATUS.get(status, (error.name or "error").lower().replace(" ", "_"))
        headers = {"Allow": ", ".join(error.valid_methods)} if getattr(error, "valid_methods", None) else None
        return envelope_of(request).render(status, code, error.description or error.name, headers)

    @app.errorhandler(Exception)
    def render_unexpected(error: Exception) -> Response:
        rid = request_id()
        logger.exception("%s %s raised (request %s)", request.method, request.path, rid)
        message = f"the runtime hit an unexpected error; its log names request {rid}"
        return envelope_of(request).render(500, "internal_error", message)

    return app

"""The Miso contract: ``GET /health``, ``GET /models/catalog``, ``POST /chat/stream`` (SSE)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from ...auth import Access
from ...chat.events import Error
from ...chat.selection import ModelSelector
from ...chat.service import ChatRequest, RequestKeys
from ...chat.types import ChatTurn, GenerationOptions
from ..endpoint import endpoint
from ..sse import sse_response
from . import runtime, streams
from .miso_models import CatalogResponse, ChatStreamBody, HealthResponse

blueprint = Blueprint("miso", __name__)

SHUTDOWN_EVENT = Error("server_shutdown", "the runtime is shutting down; the reply was cut off")


@blueprint.get("/health")
@endpoint(public=True, response=HealthResponse, tags=("miso",))
def health():
    """Liveness and readiness of the sidecar; reveals nothing secret."""
    return jsonify(
        status="ok",
        version=runtime().version,
        model=runtime().chat.default_model().id,
        threaded=True,
        workers=runtime().supervisor.status(),
    )


@blueprint.get("/models/catalog")
@endpoint(Access.READ, response=CatalogResponse, tags=("miso",))
def models_catalog():
    """The active provider and model, and the models each provider offers."""
    return jsonify(runtime().catalog.snapshot())


def _chat_request(body: ChatStreamBody) -> ChatRequest:
    options = body.options
    return ChatRequest(
        message=body.message,
        thread_id=body.thread_id,
        history=[ChatTurn(item.role, item.content) for item in body.history] if body.history else None,
        selector=ModelSelector(options.model_id, options.provider, options.model),
        options=GenerationOptions(options.temperature, options.max_tokens),
        keys=RequestKeys(
            any_provider=options.api_key or options.miso_api_key,
            openai=options.openai_api_key,
            anthropic=options.anthropic_api_key,
        ),
    )


@blueprint.post("/chat/stream")
@endpoint(Access.DATA, body=ChatStreamBody, tags=("miso",))
def chat_stream(body: ChatStreamBody):
    """Stream a reply as SSE events ``meta``, ``token``..., then ``done`` or ``error``."""
    prepared = runtime().chat.prepare(_chat_request(body))
    return sse_response(
        prepared.events(),
        registry=streams(),
        environ=request.environ,
        final_on_shutdown=SHUTDOWN_EVENT,
    )

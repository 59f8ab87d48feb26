"""skill-daemon section 4.8: the local LLM server, its model catalog, downloads and settings."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ..endpoint import endpoint
from . import runtime
from .skill_llm_models import (
    AbortBody,
    DownloadIdBody,
    DownloadStartBody,
    LlmConfigBody,
    LogsQuery,
    StartBody,
    SwitchMmprojBody,
    SwitchModelBody,
)

blueprint = Blueprint("skill_llm", __name__)
TAGS = ("skill", "llm")


@blueprint.get("/v1/llm/server/status")
@endpoint(Access.READ, tags=TAGS)
def server_status():
    """State (``stopped|loading|ready|error``), model, context size, queue length, last tokens/s."""
    return jsonify(runtime().llm.engine.status())


@blueprint.post("/v1/llm/server/start")
@endpoint(Access.ADMIN, body=StartBody, tags=TAGS)
def server_start(body: StartBody):
    """Load a model (the configured or default one when none is named)."""
    return jsonify(runtime().llm.start(body.model))


@blueprint.post("/v1/llm/server/stop")
@endpoint(Access.ADMIN, tags=TAGS)
def server_stop():
    """Abort the running generation, fail the queued ones and free the model."""
    return jsonify(runtime().llm.engine.stop())


@blueprint.get("/v1/llm/server/logs")
@endpoint(Access.ADMIN, query=LogsQuery, tags=TAGS)
def server_logs(query: LogsQuery):
    """Recent log lines of the LLM worker."""
    return jsonify(lines=runtime().llm.engine.logs(query.limit))


@blueprint.post("/v1/llm/server/switch-model")
@endpoint(Access.ADMIN, body=SwitchModelBody, tags=TAGS)
def switch_model(body: SwitchModelBody):
    """Hot swap after the requests in flight; on failure the old model stays and the answer says why."""
    return jsonify(runtime().llm.switch_model(body.model))


@blueprint.post("/v1/llm/server/switch-mmproj")
@endpoint(Access.ADMIN, body=SwitchMmprojBody, tags=TAGS)
def switch_mmproj(body: SwitchMmprojBody):
    """Store a multimodal projector and load it where the loaded model's chat format supports one."""
    return jsonify(runtime().llm.switch_mmproj(body.path))


@blueprint.post("/v1/llm/abort-stream")
@endpoint(Access.DATA, body=AbortBody, tags=TAGS)
def abort_stream(body: AbortBody):
    """Stop a generation by request id, or the running one."""
    return jsonify(aborted=runtime().llm.engine.abort(body.request_id))


@blueprint.get("/v1/llm/catalog")
@endpoint(Access.READ, tags=TAGS)
def catalog():
    """GGUF files in the models dir with the metadata read from each file, and the embedded models."""
    return jsonify(runtime().llm.catalog_listing())


@blueprint.post("/v1/llm/catalog/refresh")
@endpoint(Access.ADMIN, tags=TAGS)
def catalog_refresh():
    """Scan the models dir again."""
    runtime().llm.catalog.refresh()
    return jsonify(runtime().llm.catalog_listing())


@blueprint.post("/v1/llm/download/start")
@endpoint(Access.ADMIN, body=DownloadStartBody, status=202, tags=TAGS)
def download_start(body: DownloadStartBody):
    """Download a GGUF file into the models dir (resumable; optional sha256 check)."""
    return jsonify(runtime().downloads.start(body.url, body.file_name, body.sha256).to_dict()), 202


@blueprint.post("/v1/llm/download/pause")
@endpoint(Access.ADMIN, body=DownloadIdBody, tags=TAGS)
def download_pause(body: DownloadIdBody):
    """Pause a download, keeping what has arrived."""
    return jsonify(runtime().downloads.pause(body.id).to_dict())


@blueprint.post("/v1/llm/download/resume")
@endpoint(Access.ADMIN, body=DownloadIdBody, tags=TAGS)
def download_resume(body: DownloadIdBody):
    """Resume a paused or failed download where it stopped."""
    return jsonify(runtime().downloads.resume(body.id).to_dict())


@blueprint.post("/v1/llm/download/cancel")
@endpoint(Access.ADMIN, body=DownloadIdBody, tags=TAGS)
def download_cancel(body: DownloadIdBody):
    """Stop a download and delete its partial file."""
    return jsonify(runtime().downloads.cancel(body.id).to_dict())


@blueprint.post("/v1/llm/download/delete")
@endpoint(Access.ADMIN, body=DownloadIdBody, tags=TAGS)
def download_delete(body: DownloadIdBody):
    """Delete a downloaded (or partial) model file."""
    runtime().downloads.delete(body.id)
    runtime().llm.catalog.refresh()
    return jsonify(ok=True)


@blueprint.get("/v1/llm/downloads")
@endpoint(Access.READ, tags=TAGS)
def downloads():
    """Every download of this run with its progress."""
    return jsonify(downloads=[info.to_dict() for info in runtime().downloads.list()])


@blueprint.get("/v1/settings/llm-config")
@endpoint(Access.ADMIN, tags=("skill", "settings"))
def get_llm_config():
    """The LLM server settings."""
    return jsonify(runtime().llm.config.get().model_dump())


@blueprint.post("/v1/settings/llm-config")
@endpoint(Access.ADMIN, body=LlmConfigBody, tags=("skill", "settings"))
def set_llm_config(body: LlmConfigBody):
    """Change the settings given (others stay); they apply at the next model load."""
    config = runtime().llm.config.update(body.model_dump(exclude_unset=True))
    runtime().llm.engine.max_queue = config.max_queue
    return jsonify(config.model_dump())

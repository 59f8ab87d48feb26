"""skill-daemon section 4.7 and two of 4.9: the EEG encoder, its weights, re-embedding, and their settings."""

from __future__ import annotations

from flask import Blueprint, jsonify

from ...auth import Access
from ..blocking import run_blocking
from ..endpoint import endpoint
from . import runtime
from .skill_embedding_models import DeviceBody, ModelConfigBody, ReembedConfigBody

blueprint = Blueprint("skill_embeddings", __name__)
MODELS = ("skill", "models")
SETTINGS = ("skill", "settings")


@blueprint.get("/v1/models/config")
@endpoint(Access.READ, tags=MODELS)
def get_model_config():
    """Which encoder family embeds (``model_backend``), with the daemon's other fields."""
    return jsonify(runtime().embeddings.model_config.get().model_dump())


@blueprint.route("/v1/models/config", methods=["POST", "PUT"])
@endpoint(Access.ADMIN, body=ModelConfigBody, tags=MODELS)
def set_model_config(body: ModelConfigBody):
    """Replace the configuration (raw or as ``{"config": ...}``); an unknown family is a 422."""
    runtime().embeddings.set_model_config(body.model_dump(exclude_none=True))
    return jsonify(ok=True)


@blueprint.get("/v1/models/status")
@endpoint(Access.READ, tags=MODELS)
def model_status():
    """Encoder loaded, worker, weights and download state, embedding times (``EegModelStatus``)."""
    embeddings = runtime().embeddings
    return jsonify(embeddings.status(run_blocking(embeddings.embeddings_today, embeddings.encoder)))


@blueprint.get("/v1/models/exg-catalog")
@endpoint(Access.READ, tags=MODELS)
def exg_catalog():
    """The encoder families this runtime can embed with (built in, and ONNX ones the user added)."""
    embeddings = runtime().embeddings
    return jsonify(embeddings.catalog.document(embeddings.family().id))


@blueprint.post("/v1/models/trigger-weights-download")
@endpoint(Access.ADMIN, tags=MODELS)
def trigger_weights_download():
    """Download the configured family's weights (resumable, checked against its sha256)."""
    return jsonify(runtime().embeddings.trigger_download())


@blueprint.post("/v1/models/cancel-weights-download")
@endpoint(Access.ADMIN, tags=MODELS)
def cancel_weights_download():
    """Stop the weights download; its partial file is removed."""
    return jsonify(runtime().embeddings.cancel_download())


@blueprint.post("/v1/models/trigger-reembed")
@endpoint(Access.ADMIN, tags=MODELS)
def trigger_reembed():
    """Embed now every epoch without a vector of the current encoder (progress: ``reembed-progress``)."""
    return jsonify(runtime().embeddings.trigger_reembed())


@blueprint.get("/v1/models/estimate-reembed")
@endpoint(Access.READ, tags=MODELS)
def estimate_reembed():
    """Epochs with and without a vector of the current encoder, per UTC day, and the time left."""
    embeddings = runtime().embeddings
    return jsonify(embeddings.estimate(run_blocking(embeddings.coverage, embeddings.encoder)))


@blueprint.get("/v1/settings/reembed-config")
@endpoint(Access.ADMIN, tags=SETTINGS)
def get_reembed_config():
    """Batching of re-embedding and the idle background run."""
    return jsonify(runtime().embeddings.reembed_config.get().model_dump())


@blueprint.post("/v1/settings/reembed-config")
@endpoint(Access.ADMIN, body=ReembedConfigBody, tags=SETTINGS)
def set_reembed_config(body: ReembedConfigBody):
    """Replace the settings (missing fields: their defaults), raw or as ``{"config": ...}``."""
    runtime().embeddings.reembed_config.replace(body.model_dump(exclude_none=True))
    return jsonify(ok=True)


@blueprint.get("/v1/settings/exg-inference-device")
@endpoint(Access.ADMIN, tags=SETTINGS)
def get_inference_device():
    """The device preference and the execution providers onnxruntime really offers here."""
    embeddings = runtime().embeddings
    return jsonify(value=embeddings.device.get().value, available=embeddings.offered_devices())


@blueprint.post("/v1/settings/exg-inference-device")
@endpoint(Access.ADMIN, body=DeviceBody, tags=SETTINGS)
def set_inference_device(body: DeviceBody):
    """``auto``, ``mlx``, ``gpu`` or ``cpu`` (anything else is stored as ``auto``); the encoder reloads."""
    stored = runtime().embeddings.set_device(body.value)
    return jsonify(ok=True, value=stored.value)

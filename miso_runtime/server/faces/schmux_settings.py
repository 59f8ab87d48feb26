"""schmux (seeds/004): the built-in models and their secrets, the GitHub auth secrets, update, dev mode.

Secrets go in and never come out: a model's answers say ``configured`` and the auth answers
``client_id_set``/``client_secret_set``; the values stay in the secrets file (mode 0600,
``agents/secrets.py``). These routes answer errors in plain text as schmux's ``http.Error``
does, except ``POST /api/update``, whose errors are ``{"error": "..."}``.

Dev mode (schmux's ``--dev-mode``: rebuild and restart from a workspace) does not exist in this
runtime, so its routes answer what schmux answers with dev mode off: ``404 page not found``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from ... import constants
from ...agents import builtin_models
from ...agents.builtin_models import BuiltinModel
from ...agents.secrets import SecretsError
from ...auth import Access
from ...errors import MisoError
from ...fields import PRINTABLE
from ..endpoint import endpoint
from . import runtime

blueprint = Blueprint("schmux_settings", __name__)
update_blueprint = Blueprint("schmux_update", __name__)
TAGS = ("schmux",)

#: An environment variable's name: what a model's secret becomes in its agent's environment.
SecretKey = Annotated[
    str, StringConstraints(min_length=1, max_length=constants.AGENTS_SECRET_KEY_MAX_CHARS, pattern=r"^[A-Za-z_]\w*$")
]
SecretValue = Annotated[str, StringConstraints(max_length=constants.AGENTS_SECRET_VALUE_MAX_CHARS, pattern=PRINTABLE)]


class ModelSecretsBody(BaseModel):
    """``POST /api/models/{id}/secrets``: the model's whole secrets map (it replaces the stored one)."""

    model_config = ConfigDict(extra="forbid")

    secrets: dict[SecretKey, SecretValue] = Field(default_factory=dict, max_length=constants.AGENTS_SECRETS_MAX_KEYS)


class AuthSecretsBody(BaseModel):
    """``POST /api/auth/secrets``: the GitHub OAuth app's client id and secret (both required)."""

    model_config = ConfigDict(extra="forbid")

    client_id: SecretValue = ""
    client_secret: SecretValue = ""


def _model(model_id: str) -> BuiltinModel:
    model = builtin_models.find_model(model_id)
    if model is None:
        raise MisoError(404, "model_not_found", "model not found")
    return model


def _stored_model_secrets() -> dict[str, dict[str, str]]:
    try:
        return runtime().agents_config.secrets.model_secrets()
    except SecretsError as exc:
        raise MisoError(500, "secrets_unreadable", f"Failed to read secrets: {exc}") from None


@blueprint.get("/api/models")
@endpoint(Access.READ, tags=TAGS)
def models():
    """The built-in models whose base tool is on PATH, by id, each with ``configured``."""
    return jsonify(models=runtime().agents_config.models())


@blueprint.get("/api/models/<model_id>/configured")
@endpoint(Access.READ, tags=TAGS)
def model_configured(model_id: str):
    """Whether every secret the model (an id or an alias) requires is set; native models always are."""
    model = _model(model_id)
    return jsonify(configured=builtin_models.is_configured(model, _stored_model_secrets()))


@blueprint.post("/api/models/<model_id>/secrets")
@endpoint(Access.ADMIN, body=ModelSecretsBody, tags=TAGS)
def save_model_secrets(model_id: str, body: ModelSecretsBody):
    """Replace the model's secrets; 400 ``missing required secret KEY`` when a required one is blank."""
    model = _model(model_id)
    missing = builtin_models.missing_secret(model, body.secrets)
    if missing:
        raise MisoError(400, "missing_secret", f"missing required secret {missing}")
    try:
        runtime().agents_config.secrets.save_model(model.id, body.secrets)
    except SecretsError as exc:
        raise MisoError(500, "secrets_unwritable", f"Failed to save secrets: {exc}") from None
    return jsonify(status="ok")


@blueprint.delete("/api/models/<model_id>/secrets")
@endpoint(Access.ADMIN, tags=TAGS)
def delete_model_secrets(model_id: str):
    """Forget the model's secrets (a third-party provider's: all its models'); 400 while a feature uses it."""
    model = _model(model_id)
    config = runtime().agents_config.get()
    in_use = [config.nudgenik.target or "", *(preset.target for preset in config.quick_launch)]
    if any(target and builtin_models.canonical_target(target) == model.id for target in in_use):
        raise MisoError(400, "model_in_use", "model is in use by nudgenik or quick launch")
    try:
        runtime().agents_config.secrets.delete_models(builtin_models.provider_models(model))
    except SecretsError as exc:
        raise MisoError(500, "secrets_unwritable", f"Failed to delete secrets: {exc}") from None
    return jsonify(status="ok")


@blueprint.get("/api/auth/secrets")
@endpoint(Access.READ, tags=TAGS)
def auth_secrets():
    """Whether the GitHub OAuth client id and secret are set (never their values)."""
    try:
        client_id, client_secret = runtime().agents_config.secrets.github()
    except SecretsError as exc:
        raise MisoError(500, "secrets_unreadable", f"Failed to read secrets: {exc}") from None
    return jsonify(client_id_set=bool(client_id.strip()), client_secret_set=bool(client_secret.strip()))


@blueprint.post("/api/auth/secrets")
@endpoint(Access.ADMIN, body=AuthSecretsBody, tags=TAGS)
def save_auth_secrets(body: AuthSecretsBody):
    """Save the GitHub OAuth client id and secret; 400 when either is blank."""
    if not body.client_id.strip() or not body.client_secret.strip():
        raise MisoError(400, "invalid_request", "client_id and client_secret are required")
    try:
        runtime().agents_config.secrets.save_github(body.client_id, body.client_secret)
    except SecretsError as exc:
        raise MisoError(500, "secrets_unwritable", f"Failed to save secrets: {exc}") from None
    return jsonify(status="ok")


@update_blueprint.post("/api/update")
@endpoint(Access.ADMIN, tags=TAGS)
def update():
    """Always 500 ``update failed: ...``: a pip install from source cannot replace itself; the message says how."""
    source = Path(__file__).resolve().parents[3]
    raise MisoError(
        500,
        "update_unsupported",
        f"update failed: miso-runtime {runtime().version} is installed from its source ({source}) with pip and "
        "cannot replace itself; update that source (git pull), run `make install`, then restart the runtime",
    )


def _no_dev_mode() -> MisoError:
    return MisoError(404, "not_found", "404 page not found")


@blueprint.get("/api/dev/status")
@endpoint(Access.READ, tags=TAGS)
def dev_status():
    """404: this runtime has no dev mode (schmux without ``--dev-mode`` has no such route)."""
    raise _no_dev_mode()


@blueprint.post("/api/dev/rebuild")
@endpoint(Access.ADMIN, tags=TAGS)
def dev_rebuild():
    """404: this runtime has no dev mode, so nothing rebuilds or restarts from a workspace."""
    raise _no_dev_mode()

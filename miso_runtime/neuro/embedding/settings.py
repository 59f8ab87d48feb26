"""Settings of the embedding routes, in the daemon's shapes (``model_config.json`` and friends).

Each model takes a partial body (missing keys are the defaults) and, like the daemon, a POST
replaces the whole struct. Unknown keys are ignored, as the daemon's serde structs do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ... import constants


class ExgModelConfig(BaseModel):
    """``/v1/models/config``: which encoder embeds (``model_backend`` names a catalog family).

    The daemon's HNSW and ZUNA fields are kept so its clients read what they wrote; only
    ``model_backend`` chooses anything here (the index is Annoy, with its own constants).
    """

    model_config = ConfigDict(extra="ignore")

    hf_repo: str = Field(default="", max_length=500, description="kept for the daemon's clients; unused")
    hnsw_m: int = Field(default=16, ge=2, le=256, description="kept for the daemon's clients; unused")
    hnsw_ef_construction: int = Field(default=200, ge=8, le=10_000, description="kept; unused")
    data_norm: float = Field(default=10.0, gt=0, le=1e6, description="kept; unused")
    model_backend: str = Field(
        default=constants.DEFAULT_EXG_FAMILY,
        min_length=1,
        max_length=64,
        description="encoder family id of /v1/models/exg-catalog",
    )
    luna_variant: Literal["base", "large", "huge"] = "base"
    luna_hf_repo: str = Field(default="", max_length=500)


class ReembedConfig(BaseModel):
    """``/v1/settings/reembed-config``: batching and the idle background run (contract section 5)."""

    model_config = ConfigDict(extra="ignore")

    auto_labels: bool = False
    auto_eeg: bool = False
    auto_screenshots: bool = False
    batch_size: int = Field(default=10, ge=1, le=10_000, description="epochs per SQLite commit")
    batch_delay_ms: int = Field(default=50, ge=0, le=60_000, description="sleep after each batch, ms")
    idle_reembed_enabled: bool = True
    idle_reembed_delay_secs: int = Field(default=1800, ge=0, le=7 * 86_400, description="idle seconds before a run")
    idle_reembed_gpu: bool = True
    gpu_precision: Literal["f16", "f32"] = "f16"
    idle_reembed_throttle_ms: int = Field(default=10, ge=0, le=60_000, description="extra sleep per batch, ms")


class InferenceDevice(BaseModel):
    """``/v1/settings/exg-inference-device``: ``auto`` uses an accelerator onnxruntime offers, else CPU."""

    model_config = ConfigDict(extra="ignore")

    value: str = "auto"

    @field_validator("value", mode="before")
    @classmethod
    def _known(cls, value: object) -> str:
        # The daemon stores anything it does not know as "auto"; so do we.
        return value if value in ("auto", "mlx", "gpu", "cpu") else "auto"

"""``/v1/settings/umap-config``: the daemon's ``UmapUserConfig`` (stored raw; clamped when used)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Fields whose change makes cached projections stale (the daemon keeps the cache on a backend change).
RESULT_FIELDS = (
    "precision",
    "repulsion_strength",
    "neg_sample_rate",
    "n_epochs",
    "n_neighbors",
    "cooldown_ms",
    "timeout_secs",
)


class UmapUserConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    repulsion_strength: float = Field(default=3.0, ge=0, le=1000, description="clamped to 0.1-10 when used")
    neg_sample_rate: int = Field(default=15, ge=0, le=1000, description="clamped to 1-30")
    timeout_secs: int = Field(default=120, ge=0, le=86_400, description="clamped to 10-600 s")
    n_epochs: int = Field(default=500, ge=0, le=100_000, description="clamped to 50-2000")
    n_neighbors: int = Field(default=15, ge=0, le=10_000, description="clamped to 2-50, and to n-1 and n/2")
    cooldown_ms: int = Field(default=0, ge=0, le=600_000, description="clamped to 0-10000 ms")
    backend: Literal["auto", "mlx", "gpu"] = "auto"
    precision: Literal["f32", "f16"] = "f32"

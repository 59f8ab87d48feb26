"""Request bodies of the schmux routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.fields import FieldInfo

from ...agents.config import AgentsConfig
from ...fields import Printable


def _partial(model: type[BaseModel], name: str) -> type[BaseModel]:
    """``model`` with every top-level field optional: a section given merges, an omitted one stays."""
    fields: dict[str, Any] = {
        # Each field keeps its bounds (and so its schema in /openapi.json); only its default changes.
        key: (info.annotation | None, FieldInfo.merge_field_infos(info, default=None, default_factory=None))
        for key, info in model.model_fields.items()
    }
    fields["needs_restart"] = (bool | None, None)  # echoed back by clients that PUT what they GET; ignored
    return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)


#: ``POST/PUT /api/config``: any subset of the config's fields.
ConfigUpdateBody = _partial(AgentsConfig, "ConfigUpdateBody")


class SpawnBody(BaseModel):
    """``POST /api/spawn``; the rules between fields are checked by the spawn plan."""

    model_config = ConfigDict(extra="forbid")

    repo: Printable = ""
    branch: Printable = ""
    prompt: str = ""
    nickname: Printable = ""
    targets: dict[str, int] = {}
    workspace_id: Printable = ""
    resume: bool = False
    #: Spawn on the remote host of this flavor (connected first when it is not yet).
    remote_flavor_id: Printable = ""


class BranchConflictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo: Printable = Field(min_length=1)
    branch: Printable = Field(min_length=1)


class NicknameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nickname: Printable = Field(max_length=200)

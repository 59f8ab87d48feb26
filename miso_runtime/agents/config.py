"""The coding-agents config of the schmux contract (``GET/POST/PUT /api/config``).

One pydantic model mirrors the contract's shape; the file lives in the data dir and is
written atomically (temp file, fsync, rename), so a crash leaves the old config or the new
one. An update changes only what it names: a section given as an object merges into the
current section field by field, a list replaces the list. Secrets (model API keys, OAuth
client secrets) are never part of this model: they are kept apart and only reported as
set or not, so no response can leak one.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import constants
from ..settings_files import write_atomic

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """An update that does not validate; the message names the field (the face answers 400 in plain text)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Repo(_Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    url: str = Field(min_length=1, description="URL, file:// URL or local path of the repository")


class RunTarget(_Section):
    """A command to run in a session: ``promptable`` ones take the user's prompt, ``command`` ones do not."""

    name: str = Field(min_length=1, max_length=100)
    type: Literal["promptable", "command"]
    command: str = Field(min_length=1)
    source: Literal["user", "detected", "builtin"] = "user"


class QuickLaunch(_Section):
    name: str = Field(min_length=1, max_length=100)
    target: str = Field(min_length=1)
    prompt: str | None = None


class ModelEntry(_Section):
    id: str = Field(min_length=1)
    display_name: str = ""
    base_tool: str = ""
    provider: str = ""
    category: str = ""
    required_secrets: list[str] = Field(default_factory=list)
    usage_url: str = ""
    configured: bool = False


class Nudgenik(_Section):
    target: str | None = None
    viewed_buffer_ms: int = Field(default=0, ge=0)
    seen_interval_ms: int = Field(default=0, ge=0)


class TerminalConfig(_Section):
    width: int = Field(default=constants.AGENTS_TERMINAL_WIDTH, ge=10, le=1000)
    height: int = Field(default=constants.AGENTS_TERMINAL_HEIGHT, ge=5, le=500)
    seed_lines: int = Field(default=constants.AGENTS_TERMINAL_SEED_LINES, ge=0, le=100_000)
    bootstrap_lines: int = Field(default=constants.AGENTS_TERMINAL_BOOTSTRAP_LINES, ge=0, le=100_000)
    #: Scrollback tmux keeps per session, lines (an addition to the contract's shape).
    history_limit: int = Field(default=constants.TMUX_HISTORY_LIMIT, ge=100, le=1_000_000)


class SessionsConfig(_Section):
    dashboard_poll_interval_ms: int = Field(default=constants.AGENTS_DASHBOARD_POLL_MS, ge=0)
    git_status_poll_interval_ms: int = Field(default=constants.AGENTS_GIT_STATUS_POLL_MS, ge=0)
    git_clone_timeout_ms: int = Field(default=constants.AGENTS_GIT_CLONE_TIMEOUT_MS, ge=0)
    git_status_timeout_ms: int = Field(default=constants.AGENTS_GIT_STATUS_TIMEOUT_MS, ge=0)


class XtermConfig(_Section):
    mtime_poll_interval_ms: int = Field(default=5000, ge=0)
    query_timeout_ms: int = Field(default=5000, ge=0)
    operation_timeout_ms: int = Field(default=10_000, ge=0)
    max_log_size_mb: int = Field(default=50, ge=0)
    rotated_log_size_mb: int = Field(default=10, ge=0)


class TlsConfig(_Section):
    cert_path: str = ""
    key_path: str = ""


class NetworkConfig(_Section):
    bind_address: str = "127.0.0.1"
    port: int = Field(default=constants.DEFAULT_PORT, ge=0, le=65535)
    public_base_url: str = ""
    tls: TlsConfig = Field(default_factory=TlsConfig)


class AccessControl(_Section):
    enabled: bool = False
    provider: str = "github"
    session_ttl_minutes: int = Field(default=1440, ge=1)


class AgentsConfig(_Section):
    """The whole config, as ``GET /api/config`` returns it (less ``needs_restart``, added by the face)."""

    workspace_path: str = ""
    source_code_management: Literal["git-worktree", "git"] = "git-worktree"
    repos: list[Repo] = Field(default_factory=list)
    run_targets: list[RunTarget] = Field(default_factory=list)
    quick_launch: list[QuickLaunch] = Field(default_factory=list)
    models: list[ModelEntry] = Field(default_factory=list)
    nudgenik: Nudgenik = Field(default_factory=Nudgenik)
    terminal: TerminalConfig = Field(default_factory=TerminalConfig)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    xterm: XtermConfig = Field(default_factory=XtermConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    access_control: AccessControl = Field(default_factory=AccessControl)

    @field_validator("workspace_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if value and not Path(value).expanduser().is_absolute():
            raise ValueError(f"must be an absolute path, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "AgentsConfig":
        for kind, names in (
            ("repos", [r.name for r in self.repos]),
            ("run_targets", [t.name for t in self.run_targets]),
            ("quick_launch", [q.name for q in self.quick_launch]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name {', '.join(duplicates)}")
        known = {t.name for t in self.run_targets} | {m.id for m in self.models}
        for preset in self.quick_launch:
            if preset.target not in known:
                raise ValueError(f"quick_launch {preset.name!r}: unknown target {preset.target!r}")
        return self


def _merge(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` over ``current``: objects merge key by key, anything else replaces."""
    merged = dict(current)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "config"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


@dataclass
class UpdateResult:
    """What ``POST /api/config`` answers: saved, or saved with the workspace-path warning."""

    config: AgentsConfig
    workspace_path_changed: bool
    warnings: list[str] = field(default_factory=list)

    def response(self, session_count: int, workspace_count: int) -> dict[str, Any]:
        if self.workspace_path_changed and (session_count or workspace_count):
            return {
                "warning": (
                    f"workspace_path changed while {workspace_count} workspace(s) and {session_count} session(s) "
                    "exist; they stay where they are, new workspaces go to the new path after a restart"
                ),
                "session_count": session_count,
                "workspace_count": workspace_count,
                "requires_restart": True,
                "warnings": self.warnings,
            }
        return {
            "status": "ok",
            "message": "Config saved and reloaded. Changes are now in effect.",
            "warnings": self.warnings,
        }


class AgentsConfigStore:
    """The config file of the coding agents, read once and replaced atomically on every update."""

    def __init__(self, path: Path, default_workspace_path: Path) -> None:
        self._path = path
        self._default_workspace_path = default_workspace_path
        self._lock = threading.Lock()
        self._config = self._read()
        self.needs_restart = False

    def _read(self) -> AgentsConfig:
        defaults = AgentsConfig(workspace_path=str(self._default_workspace_path))
        if not self._path.is_file():
            return defaults
        try:
            stored = json.loads(self._path.read_text(encoding="utf-8"))
            return AgentsConfig.model_validate(_merge(defaults.model_dump(), stored))
        except (ValueError, ValidationError) as exc:
            logger.warning("ignoring unreadable %s (using defaults): %s", self._path, exc)
            return defaults

    def get(self) -> AgentsConfig:
        with self._lock:
            return self._config

    def update(self, changes: dict[str, Any]) -> UpdateResult:
        """Apply ``changes`` (any subset of the contract's fields) and save; ConfigError if invalid."""
        if not isinstance(changes, dict):
            raise ConfigError("the body must be a JSON object")
        changes = {k: v for k, v in changes.items() if k != "needs_restart"}
        with self._lock:
            current = self._config
            try:
                updated = AgentsConfig.model_validate(_merge(current.model_dump(), changes))
            except ValidationError as exc:
                raise ConfigError(_describe(exc)) from None
            warnings = []
            if updated.workspace_path and not Path(updated.workspace_path).expanduser().exists():
                warnings.append(f"workspace_path {updated.workspace_path} does not exist yet; it is created on use")
            write_atomic(self._path, updated.model_dump_json(indent=2))
            self._config = updated
            moved = updated.workspace_path != current.workspace_path
            if moved:
                self.needs_restart = True
            return UpdateResult(updated, moved, warnings)

"""The coding-agents config of the schmux contract (``GET/POST/PUT /api/config``).

One pydantic model mirrors the contract's shape; the file lives in the data dir and is
written atomically (temp file, fsync, rename), so a crash leaves the old config or the new
one. An update changes only what it names: a section given as an object merges into the
current section field by field, a list replaces the list. Secrets (model API keys, OAuth
client secrets) are never part of this model: they are kept apart and only reported as
set or not, so no response can leak one.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import constants
from ..fields import PRINTABLE, PathText, SettingMs
from ..settings_files import SettingsFile

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """An update that does not validate; the message names the field (the face answers 400 in plain text)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Repo(_Section):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    url: PathText = Field(description="URL, file:// URL or local path of the repository")


class RunTarget(_Section):
    """A command to run in a session: ``promptable`` ones take the user's prompt, ``command`` ones do not."""

    name: str = Field(min_length=1, max_length=100)
    type: Literal["promptable", "command"]
    command: str = Field(min_length=1, max_length=constants.MAX_PATH_CHARS)
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
    viewed_buffer_ms: SettingMs = 0
    seen_interval_ms: SettingMs = 0


class TerminalConfig(_Section):
    width: int = Field(default=constants.AGENTS_TERMINAL_WIDTH, ge=10, le=1000)
    height: int = Field(default=constants.AGENTS_TERMINAL_HEIGHT, ge=5, le=500)
    seed_lines: int = Field(default=constants.AGENTS_TERMINAL_SEED_LINES, ge=0, le=100_000)
    bootstrap_lines: int = Field(default=constants.AGENTS_TERMINAL_BOOTSTRAP_LINES, ge=0, le=100_000)
    #: Scrollback tmux keeps per session, lines (an addition to the contract's shape).
    history_limit: int = Field(default=constants.TMUX_HISTORY_LIMIT, ge=100, le=1_000_000)


class SessionsConfig(_Section):
    dashboard_poll_interval_ms: SettingMs = constants.AGENTS_DASHBOARD_POLL_MS
    git_status_poll_interval_ms: SettingMs = constants.AGENTS_GIT_STATUS_POLL_MS
    git_clone_timeout_ms: SettingMs = constants.AGENTS_GIT_CLONE_TIMEOUT_MS
    git_status_timeout_ms: SettingMs = constants.AGENTS_GIT_STATUS_TIMEOUT_MS


class XtermConfig(_Section):
    mtime_poll_interval_ms: SettingMs = 5000
    query_timeout_ms: SettingMs = 5000
    operation_timeout_ms: SettingMs = 10_000
    max_log_size_mb: int = Field(default=50, ge=0, le=1_000_000)
    rotated_log_size_mb: int = Field(default=10, ge=0, le=1_000_000)


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
    session_ttl_minutes: int = Field(default=1440, ge=1, le=525_600)


class AgentsConfig(_Section):
    """The whole config, as ``GET /api/config`` returns it (less ``needs_restart``, added by the face)."""

    workspace_path: str = Field(default="", max_length=constants.MAX_PATH_CHARS, pattern=PRINTABLE)
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
    """The config file of the coding agents (a :class:`SettingsFile`) and the contract's answers."""

    def __init__(self, path: Path, default_workspace_path: Path) -> None:
        self._file = SettingsFile(
            path,
            AgentsConfig,
            default=lambda: AgentsConfig(workspace_path=str(default_workspace_path)),
            invalid=ConfigError,
        )
        self._lock = threading.Lock()
        self.needs_restart = False

    def get(self) -> AgentsConfig:
        return self._file.get()

    def update(self, changes: dict[str, Any]) -> UpdateResult:
        """Apply ``changes`` (any subset of the contract's fields) and save; ConfigError if invalid."""
        if not isinstance(changes, dict):
            raise ConfigError("the body must be a JSON object")
        changes = {k: v for k, v in changes.items() if k != "needs_restart"}
        with self._lock:
            previous = self._file.get()
            updated = self._file.update(changes)
        warnings = []
        if updated.workspace_path and not Path(updated.workspace_path).expanduser().exists():
            warnings.append(f"workspace_path {updated.workspace_path} does not exist yet; it is created on use")
        moved = updated.workspace_path != previous.workspace_path
        if moved:
            self.needs_restart = True
        return UpdateResult(updated, moved, warnings)

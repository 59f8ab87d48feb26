"""The coding-agents config of the schmux contract (``GET/POST/PUT /api/config``).

One pydantic model mirrors the contract's shape; the file lives in the data dir and is
written atomically (temp file, fsync, rename), so a crash leaves the old config or the new
one. An update changes only what it names: a section given as an object merges into the
current section field by field, a list replaces the list. Secrets (model API keys, OAuth
client secrets) are never part of this model: they are kept apart and only reported as
set or not, so no response can leak one.

``models`` and the derived run targets are not settings: the built-in models of the detected
tools (``builtin_models.py``) with ``configured`` from the secrets (``secrets.py``), and the agent
CLIs found on PATH. :meth:`AgentsConfigStore.view` adds them to ``GET /api/config``'s answer; an
update that echoes them back (a client that PUTs what it got) changes nothing by them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from .. import constants
from ..errors import MisoError
from ..fields import PRINTABLE, PathText, SettingMs
from ..settings_files import SettingsFile, merge_settings
from . import builtin_models
from . import remote_flavors as flavor_rules
from .remote_flavors import RemoteFlavor
from .secrets import SecretsError, SecretsStore

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    """An update that does not validate; the message names the field (the face answers 400 in plain text)."""


#: The name of a run target, model or tool that a feature runs (``nudgenik.target``...); blanks trimmed.
TargetName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200, pattern=PRINTABLE)]
#: A positive duration in milliseconds, up to a day (schmux keeps its default for zero).
PositiveMs = Annotated[int, Field(ge=1, le=constants.MAX_SETTING_MS)]
#: Run-target sources the runtime derives (tools on PATH, configured models), never stored.
DERIVED_SOURCES = ("detected", "model")


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
    source: Literal["user", "detected", "builtin", "model"] = "user"


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
    default_value: str = ""
    pinned_version: str = ""


class Nudgenik(_Section):
    target: TargetName | None = None
    viewed_buffer_ms: SettingMs = 0
    seen_interval_ms: SettingMs = 0


class ExternalDiffCommand(_Section):
    """A diff tool ``POST /api/diff-external`` can open (``command`` gets the two files' paths)."""

    name: str = Field(min_length=1, max_length=100, pattern=PRINTABLE)
    command: str = Field(min_length=1, max_length=constants.MAX_PATH_CHARS, pattern=PRINTABLE)


class BranchSuggest(_Section):
    """The target that names a branch from a prompt (``POST /api/suggest-branch``); empty: off."""

    target: TargetName = ""


class ConflictResolve(_Section):
    """The target that resolves a linear sync's conflicts, and how long one call may take."""

    target: TargetName = ""
    timeout_ms: PositiveMs = constants.AGENTS_CONFLICT_RESOLVE_TIMEOUT_MS


class PrReview(_Section):
    """The target a pull-request checkout starts its review session with; empty: none."""

    target: TargetName = ""


class Notifications(_Section):
    """The dashboard's own preferences: attention sounds off, a "Leave site?" prompt on close."""

    sound_disabled: bool = False
    confirm_before_close: bool = False


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
    #: Dev-server previews: at most this many per workspace and in all; one idle this long stops.
    preview_max_per_workspace: int = Field(default=constants.AGENTS_PREVIEW_MAX_PER_WORKSPACE, ge=1, le=100)
    preview_max_global: int = Field(default=constants.AGENTS_PREVIEW_MAX_GLOBAL, ge=1, le=1000)
    preview_idle_timeout_ms: PositiveMs = constants.AGENTS_PREVIEW_IDLE_TIMEOUT_MS
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
    external_diff_commands: list[ExternalDiffCommand] = Field(default_factory=list)
    external_diff_cleanup_after_ms: PositiveMs = constants.AGENTS_EXTERNAL_DIFF_CLEANUP_MS
    #: Stored model entries of earlier versions; ``GET /api/config`` shows the built-in ones instead.
    models: list[ModelEntry] = Field(default_factory=list)
    #: Pinned versions by model id (``{"claude-opus": "claude-opus-4-1"}``); a change replaces the map.
    model_versions: dict[
        Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=PRINTABLE)],
        Annotated[str, StringConstraints(max_length=200, pattern=PRINTABLE)],
    ] = Field(default_factory=dict)
    terminal: TerminalConfig = Field(default_factory=TerminalConfig)
    nudgenik: Nudgenik = Field(default_factory=Nudgenik)
    branch_suggest: BranchSuggest = Field(default_factory=BranchSuggest)
    conflict_resolve: ConflictResolve = Field(default_factory=ConflictResolve)
    sessions: SessionsConfig = Field(default_factory=SessionsConfig)
    xterm: XtermConfig = Field(default_factory=XtermConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    access_control: AccessControl = Field(default_factory=AccessControl)
    pr_review: PrReview = Field(default_factory=PrReview)
    notifications: Notifications = Field(default_factory=Notifications)
    #: Remote flavors (``remote_flavors.RemoteFlavor`` fields), changed only through their own
    #: routes and left out of ``GET /api/config``, as in schmux.
    remote_flavors: list[dict[str, Any]] = Field(default_factory=list)

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
            ("external_diff_commands", [c.name for c in self.external_diff_commands]),
        ):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{kind}: duplicate name {', '.join(duplicates)}")
        for preset in self.quick_launch:
            if self.target_kind(preset.target) is None:
                raise ValueError(f"quick_launch {preset.name!r}: unknown target {preset.target!r}")
        return self

    def target_kind(self, name: str) -> str | None:
        """``promptable`` or ``command`` for a name a feature may run, None when nothing has it.

        As schmux: a run target, a built-in model (id or alias) or a known agent CLI, whether or
        not it is installed (a preset may name a tool installed later).
        """
        for run_target in self.run_targets:
            if run_target.name == name:
                return run_target.type
        tools = {tool for tool, _command in constants.AGENT_CLI_TOOLS}
        if builtin_models.is_model_name(name) or name in tools or any(m.id == name for m in self.models):
            return "promptable"
        return None


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

    def __init__(self, path: Path, default_workspace_path: Path, secrets_path: Path | None = None) -> None:
        #: Model and auth secrets, beside the config file unless named (never inside it).
        self.secrets = SecretsStore(secrets_path or path.with_name(constants.AGENTS_SECRETS_FILE_NAME))
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
        """Apply ``changes`` (any subset of the contract's fields) and save; ConfigError if invalid.

        Sections merge field by field, except ``model_versions``, which replaces the map (a
        version cleared in the dashboard is a key left out). What :meth:`view` derives
        (``models``, run targets of source ``detected`` or ``model``, ``needs_restart``) is
        dropped from ``changes``, so writing back what was read changes nothing.
        """
        if not isinstance(changes, dict):
            raise ConfigError("the body must be a JSON object")
        changes = {k: v for k, v in changes.items() if k not in ("needs_restart", "models", "remote_flavors")}
        if isinstance(changes.get("run_targets"), list):
            changes["run_targets"] = [
                t for t in changes["run_targets"] if not (isinstance(t, dict) and t.get("source") in DERIVED_SOURCES)
            ]
        replaced = {k: changes.pop(k) for k in ("model_versions",) if k in changes}
        with self._lock:
            previous = self._file.get()
            if replaced:
                updated = self._file.replace({**merge_settings(previous.model_dump(), changes), **replaced})
            else:
                updated = self._file.update(changes)
        warnings = []
        if updated.workspace_path and not Path(updated.workspace_path).expanduser().exists():
            warnings.append(f"workspace_path {updated.workspace_path} does not exist yet; it is created on use")
        moved = updated.workspace_path != previous.workspace_path
        if moved:
            self.needs_restart = True
        return UpdateResult(updated, moved, warnings)

    # --- what GET /api/config shows beyond the stored settings --------------------------------

    def models(self, path: str | None = None) -> list[dict[str, Any]]:
        """The built-in models whose tool is on ``path`` (default PATH), with ``configured`` from the secrets.

        500 ``Failed to read models: ...`` when the secrets file cannot be read.
        """
        try:
            stored = self.secrets.model_secrets()
        except SecretsError as exc:
            raise MisoError(500, "secrets_unreadable", f"Failed to read models: {exc}") from None
        detected = builtin_models.detected_tools(path)
        return builtin_models.model_list(stored, self.get().model_versions, detected)

    def view(self, path: str | None = None) -> dict[str, Any]:
        """``GET /api/config``'s answer: the settings, the detected tools and configured models as
        run targets, the built-in models, and ``needs_restart``. Never a secret."""
        config = self.get()
        models = self.models(path)
        detected = builtin_models.detected_tools(path)
        run_targets = [t.model_dump() for t in config.run_targets if t.source not in DERIVED_SOURCES]
        seen = {t["name"] for t in run_targets}
        for name, command in detected.items():
            if name not in seen:
                run_targets.append({"name": name, "type": "promptable", "command": command, "source": "detected"})
                seen.add(name)
        for model in models:
            if model["configured"] and model["id"] not in seen and model["base_tool"] in detected:
                command = detected[model["base_tool"]]
                run_targets.append({"name": model["id"], "type": "promptable", "command": command, "source": "model"})
                seen.add(model["id"])
        view = {**config.model_dump(exclude={"remote_flavors"}), "run_targets": run_targets, "models": models}
        return {**view, "needs_restart": self.needs_restart}

    # --- remote flavors (their own routes; validated by remote_flavors.py) ---------------------

    def remote_flavors(self) -> list[RemoteFlavor]:
        return [RemoteFlavor.from_stored(entry) for entry in self.get().remote_flavors]

    def remote_flavor(self, flavor_id: str) -> RemoteFlavor | None:
        return next((flavor for flavor in self.remote_flavors() if flavor.id == flavor_id), None)

    def add_remote_flavor(self, request: dict[str, str]) -> RemoteFlavor:
        """Validate and save a new flavor (:class:`FlavorError` for a broken rule)."""
        with self._lock:
            flavors = self.remote_flavors()
            flavor = flavor_rules.created(request, flavors)
            self._save_flavors([*flavors, flavor])
        return flavor

    def update_remote_flavor(self, flavor_id: str, request: dict[str, str]) -> RemoteFlavor | None:
        """Replace a flavor's fields (``None`` when there is no such flavor)."""
        with self._lock:
            flavors = self.remote_flavors()
            index = next((i for i, flavor in enumerate(flavors) if flavor.id == flavor_id), None)
            if index is None:
                return None
            flavors[index] = flavor_rules.updated(flavors[index], request)
            self._save_flavors(flavors)
            return flavors[index]

    def remove_remote_flavor(self, flavor_id: str) -> bool:
        """Delete a flavor; ``False`` when there was none of that id."""
        with self._lock:
            flavors = self.remote_flavors()
            kept = [flavor for flavor in flavors if flavor.id != flavor_id]
            if len(kept) == len(flavors):
                return False
            self._save_flavors(kept)
            return True

    def _save_flavors(self, flavors: list[RemoteFlavor]) -> None:
        try:
            self._file.update({"remote_flavors": [flavor.stored() for flavor in flavors]})
        except OSError:
            logger.exception("the remote flavors could not be saved")
            raise MisoError(500, "config_unsaved", "Failed to save config") from None

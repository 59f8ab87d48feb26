"""Settings: one object for every option of the runtime.

Layers, lowest to highest: built-in defaults < ``config.toml`` in the data dir < ``MISO_*``
environment variables < command-line options. The data dir itself can only come from the
command line, the environment or the platform default, since the file lives inside it.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import constants

ENV_PREFIX = "MISO_"


def default_data_dir() -> Path:
    """The platform's per-user data dir for the runtime (e.g. ``~/.local/share/miso-runtime``)."""
    return Path(platformdirs.user_data_dir(constants.APP_DIR_NAME, appauthor=False))


class Settings(BaseSettings):
    """Every option of the runtime; each field is also ``MISO_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=constants.DEFAULT_PORT, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    auth_token: SecretStr | None = None
    log_level: str = "INFO"
    parent_pid: int | None = None
    exit_on_stdin_close: bool = False

    cors_origins: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(default=constants.DEFAULT_MAX_BODY_BYTES, gt=0)

    provider: str | None = None
    model: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    ollama_host: str = constants.DEFAULT_OLLAMA_HOST

    #: Caco's workspace: the file browser's root and a new session's default cwd (Caco uses the
    #: server's own cwd; None: the runtime's cwd when it starts).
    caco_root: Path | None = None

    #: Private tmux socket (``tmux -L``) of the coding-agent sessions; tests use their own.
    tmux_socket: str = Field(default=constants.TMUX_SOCKET_NAME, pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    #: Seconds a remote flavor's connect command has to bring up tmux control mode (a login that
    #: waits for a key touch needs them); past it, the attempt fails and its process is killed.
    remote_ready_timeout_s: float = Field(default=constants.REMOTE_READY_TIMEOUT_S, gt=0, le=3600)
    #: Seconds a fired hook's command may run before its process group is killed.
    hook_command_timeout_s: float = Field(default=constants.HOOK_COMMAND_TIMEOUT_S, gt=0, le=24 * 3600)
    #: Seconds between the automatic pull-request discoveries while ``pr_review.target`` is set;
    #: 0: discovery only when asked (``POST /api/prs/refresh``).
    pr_poll_interval_s: float = Field(default=constants.PR_POLL_INTERVAL_S, ge=0, le=7 * 24 * 3600)

    #: The users' own builds of the schmux, Maria and Caco web pages (a folder with
    #: ``index.html``), each served on a loopback port of its own (``server/pages.py``);
    #: None: not served. Port 0: any free port, printed in the ready line.
    pages_schmux: Path | None = None
    pages_schmux_port: int = Field(default=0, ge=0, le=65535)
    pages_maria: Path | None = None
    pages_maria_port: int = Field(default=0, ge=0, le=65535)
    pages_caco: Path | None = None
    pages_caco_port: int = Field(default=0, ge=0, le=65535)

    #: GitHub's web site and REST API (a GitHub Enterprise server's ``https://HOST`` and
    #: ``https://HOST/api/v3``, or a test's stand-in): the dashboard's login (``access_control``)
    #: authorizes at the first and reads the user from the second.
    github_web_url: str = constants.GITHUB_WEB_URL
    github_api_url: str = constants.GITHUB_API_URL

    #: Remote access through iroh (``/v1/iroh/*``): off unless asked for, since it opens a UDP
    #: socket and lets registered phones reach the API from anywhere. The relay: ``default``
    #: (n0's public relays, which need internet), ``staging``, ``disabled`` (direct addresses
    #: only), or a comma-separated list of the user's own relay URLs. The endpoint's UDP bind
    #: address (``127.0.0.1:0`` keeps it on this machine).
    iroh_enabled: bool = False
    iroh_relay: str = Field(default=constants.IROH_RELAY_DEFAULT, min_length=1, max_length=2000)
    iroh_bind_addr: str = Field(default=constants.IROH_DEFAULT_BIND_ADDR, min_length=3, max_length=100)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        return level

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, value: str | None) -> str | None:
        if value and value not in constants.CHAT_PROVIDERS:
            raise ValueError(f"provider must be one of {', '.join(constants.CHAT_PROVIDERS)}")
        return value or None

    @field_validator("pages_schmux", "pages_maria", "pages_caco", mode="before")
    @classmethod
    def _empty_folder_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("pages_schmux", "pages_maria", "pages_caco")
    @classmethod
    def _page_folder(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        folder = value.expanduser()
        if not folder.is_dir():
            raise ValueError(f"a page's build folder must be a directory: {folder} is not")
        return folder.resolve()

    @model_validator(mode="after")
    def _page_ports_differ(self) -> "Settings":
        fixed = [port for _name, _folder, port in self.pages if port] + ([self.port] if self.port else [])
        if len(fixed) != len(set(fixed)):
            raise ValueError(f"the pages' ports and the API's port must differ (fixed ports: {fixed})")
        return self

    @field_validator("auth_token", "openai_api_key", "anthropic_api_key", mode="before")
    @classmethod
    def _empty_secret_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @property
    def pages(self) -> list[tuple[str, Path, int]]:
        """The pages to serve: ``(name, build folder, port)`` for each one whose folder is set."""
        configured = (
            (name, getattr(self, f"pages_{name}"), getattr(self, f"pages_{name}_port")) for name in constants.PAGE_NAMES
        )
        return [(name, folder, port) for name, folder, port in configured if folder is not None]

    @property
    def database_path(self) -> Path:
        return self.data_dir / constants.DATABASE_FILE_NAME

    @property
    def models_dir(self) -> Path:
        return self.data_dir / constants.MODELS_DIR_NAME

    @property
    def log_dir(self) -> Path:
        return self.data_dir / constants.LOG_DIR_NAME


def secret_text(value: SecretStr | None) -> str | None:
    """The text of a secret setting (None when it is not set)."""
    return value.get_secret_value() if value is not None else None


def read_config_file(data_dir: Path) -> dict[str, Any]:
    """Options from ``config.toml`` in ``data_dir``; an absent file means no options."""
    path = data_dir / constants.CONFIG_FILE_NAME
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _from_environment() -> dict[str, Any]:
    """The options set in ``MISO_*`` variables, and only those."""
    explicit = Settings()
    return {name: getattr(explicit, name) for name in explicit.model_fields_set}


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the settings from all layers; ``overrides`` are the command-line options.

    Options whose value is ``None`` in ``overrides`` were not given and do not override.
    """
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    data_dir = Path(given.get("data_dir") or os.environ.get(f"{ENV_PREFIX}DATA_DIR") or default_data_dir())
    layered: dict[str, Any] = {**read_config_file(data_dir), **_from_environment(), **given}
    layered["data_dir"] = data_dir
    return Settings(**layered)

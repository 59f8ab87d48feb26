"""``/v1/settings/agent-tasks``: which model a task's model name runs on, and when idle tasks stop.

Maria's web UI always asks for ``anthropic/claude-sonnet-4.5``; ``model_map`` says what that
name (or any other) means here, as ``provider:model``. A name that is not in the map and has a
known provider prefix (``openai/gpt-5``, ``ollama/qwen3``, ``local/...``) maps to that
provider; where the provider cannot run (no key, Ollama not listening), the task runs on the
runtime's default chat model, and its ``ModelLoaded`` event says so.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import constants


class TasksConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_map: dict[str, str] = Field(
        default_factory=lambda: dict(constants.TASK_DEFAULT_MODEL_MAP),
        description="model name a client sends -> provider:model that runs it",
    )
    idle_stop_secs: float = Field(
        default=constants.TASK_IDLE_STOP_S,
        ge=5,
        le=7 * 86_400,
        description="an idle task gives its process back after this many seconds (it resumes on its next message)",
    )

    @field_validator("model_map")
    @classmethod
    def _targets_name_a_provider(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            provider, sep, model = target.partition(":")
            if not name.strip() or len(name) > constants.MAX_ID_CHARS:
                raise ValueError("model names must be 1-256 characters")
            if provider not in constants.CHAT_PROVIDERS or (not sep and provider != "local"):
                raise ValueError(
                    f"{name!r} maps to {target!r}; a target is provider:model with provider one of "
                    + ", ".join(constants.CHAT_PROVIDERS)
                )
            if sep and not model.strip():
                raise ValueError(f"{name!r} maps to {target!r}, which names no model")
        return value

"""schmux's built-in models: which model each agent CLI can run, and whether its secrets are set.

A model is not a tool of its own: it is a base tool (``claude`` or ``codex``) told which model
to use, through a flag (``--model opus``) or, for the third-party models served behind an
Anthropic-compatible endpoint, through environment variables and an API key. The table is a
fact of the contract (schmux ``internal/detect/models.go`` at ``b21137fd``), not a setting, so
it lives here rather than in the config; the config only pins versions (``model_versions``).

A model is *configured* when every secret it requires is non-blank. Secrets are looked up per
provider first (the first model of the same provider that has any), then overlaid with the
model's own, so one Moonshot key serves both Kimi models.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .. import constants

#: The secret every third-party model needs: the key the Anthropic-compatible endpoint takes.
AUTH_TOKEN = "ANTHROPIC_AUTH_TOKEN"


@dataclass(frozen=True)
class BuiltinModel:
    id: str
    display_name: str
    base_tool: str
    provider: str
    category: str  # "native" or "third-party" (how the dashboard groups them)
    #: What the tool is told to use: ``--model <value>`` or ``ANTHROPIC_MODEL=<value>``.
    model_value: str
    #: The tool's model flag (``--model``, ``-m``); empty for models chosen by environment.
    model_flag: str = ""
    #: The Anthropic-compatible endpoint of a third-party model (``ANTHROPIC_BASE_URL``).
    endpoint: str = ""
    required_secrets: tuple[str, ...] = ()
    usage_url: str = ""


def _native_claude(tier: str) -> BuiltinModel:
    return BuiltinModel(f"claude-{tier}", f"claude {tier}", "claude", "anthropic", "native", tier, "--model")


def _codex(model_id: str, display_name: str) -> BuiltinModel:
    return BuiltinModel(model_id, display_name, "codex", "openai", "native", model_id, "-m")


def _third_party(
    model_id: str, display_name: str, provider: str, endpoint: str, usage_url: str, model_value: str = ""
) -> BuiltinModel:
    return BuiltinModel(
        model_id,
        display_name,
        "claude",
        provider,
        "third-party",
        model_value or model_id,
        endpoint=endpoint,
        required_secrets=(AUTH_TOKEN,),
        usage_url=usage_url,
    )


_MOONSHOT = ("moonshot", "https://api.moonshot.ai/anthropic", "https://platform.moonshot.ai/console/account")
_ZAI = ("zai", "https://api.z.ai/api/anthropic", "https://z.ai/manage-apikey/subscription")
_MINIMAX = (
    "minimax",
    "https://api.minimax.io/anthropic",
    "https://platform.minimax.io/user-center/payment/coding-plan",
)

#: In schmux's order (the order providers' secrets are looked up in).
BUILTIN_MODELS: tuple[BuiltinModel, ...] = (
    _native_claude("opus"),
    _native_claude("sonnet"),
    _native_claude("haiku"),
    _third_party("kimi-thinking", "kimi k2 thinking", *_MOONSHOT),
    _third_party("kimi-k2.5", "kimi k2.5", *_MOONSHOT),
    _third_party("glm-4.7", "glm 4.7", *_ZAI),
    _third_party("glm-4.5-air", "glm 4.5 air", *_ZAI),
    _third_party("glm-5", "glm 5", *_ZAI),
    _third_party("minimax", "minimax m2.1", *_MINIMAX, model_value="minimax-m2.1"),
    _third_party("minimax-2.5", "minimax m2.5", *_MINIMAX),
    _third_party(
        "qwen3-coder-plus",
        "qwen 3 coder plus",
        "dashscope",
        "https://dashscope-intl.aliyuncs.com/api/v2/apps/claude-code-proxy",
        "https://dashscope-intl.aliyuncs.com",
    ),
    _codex("gpt-5.2-codex", "gpt 5.2 codex"),
    _codex("gpt-5.3-codex", "gpt 5.3 codex"),
    _codex("gpt-5.1-codex-max", "gpt 5.1 codex max"),
    _codex("gpt-5.1-codex-mini", "gpt 5.1 codex mini"),
)

#: Short names and old ids that name a model too.
MODEL_ALIASES: Mapping[str, str] = {
    "opus": "claude-opus",
    "sonnet": "claude-sonnet",
    "haiku": "claude-haiku",
    "minimax-m2.1": "minimax",
}

_BY_ID = {model.id: model for model in BUILTIN_MODELS}


def find_model(name: str) -> BuiltinModel | None:
    """The model ``name`` (an id or an alias) names, else None."""
    return _BY_ID.get(MODEL_ALIASES.get(name, name))


def is_model_name(name: str) -> bool:
    return find_model(name) is not None


def canonical_target(name: str) -> str:
    """``name`` with a model alias replaced by the model's id (any other name unchanged)."""
    model = find_model(name)
    return model.id if model else name


def detected_tools(path: str | None = None) -> dict[str, str]:
    """The known agent CLIs on ``path`` (default: this process's PATH), ``{name: command}``.

    A PATH look-up per tool, as ``GET /api/detect-tools`` does: cheap, and current right after
    the user installs a tool.
    """
    return {name: command for name, command in constants.AGENT_CLI_TOOLS if shutil.which(command, path=path)}


def available_models(detected_tools: Iterable[str]) -> list[BuiltinModel]:
    """The models whose base tool is detected, by id (schmux's ``GetAvailableModels``)."""
    detected = set(detected_tools)
    return sorted((m for m in BUILTIN_MODELS if m.base_tool in detected), key=lambda m: m.id)


def effective_secrets(model: BuiltinModel, stored: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """The model's secrets: its provider's (the first model of that provider with an entry), then its own."""
    merged: dict[str, str] = {}
    if model.provider:
        for other in BUILTIN_MODELS:
            if other.provider == model.provider and stored.get(other.id) is not None:
                merged.update(stored[other.id])
                break
    merged.update(stored.get(model.id) or {})
    return merged


def is_configured(model: BuiltinModel, stored: Mapping[str, Mapping[str, str]]) -> bool:
    """Whether every secret the model requires is set and not blank (native models: always)."""
    secrets = effective_secrets(model, stored)
    return all(str(secrets.get(key, "")).strip() for key in model.required_secrets)


def missing_secret(model: BuiltinModel, secrets: Mapping[str, str]) -> str | None:
    """The first required key that ``secrets`` leaves missing or blank, else None."""
    for key in model.required_secrets:
        if not str(secrets.get(key, "")).strip():
            return key
    return None


def provider_models(model: BuiltinModel) -> list[str]:
    """The ids whose secrets a delete of ``model``'s removes: its provider's for third-party providers.

    Anthropic's (and provider-less) models share nothing, so only the model's own entry goes.
    """
    if model.provider and model.provider != "anthropic":
        return [other.id for other in BUILTIN_MODELS if other.provider == model.provider]
    return [model.id]


def model_entry(model: BuiltinModel, configured: bool, pinned_version: str = "") -> dict[str, Any]:
    """The contract's ``Model`` object (``required_secrets``, ``usage_url``, ``pinned_version`` omitted when empty)."""
    entry: dict[str, Any] = {
        "id": model.id,
        "display_name": model.display_name,
        "base_tool": model.base_tool,
        "provider": model.provider,
        "category": model.category,
    }
    if model.required_secrets:
        entry["required_secrets"] = list(model.required_secrets)
    if model.usage_url:
        entry["usage_url"] = model.usage_url
    entry["configured"] = configured
    if pinned_version:
        entry["pinned_version"] = pinned_version
    entry["default_value"] = model.model_value
    return entry


def model_list(
    stored: Mapping[str, Mapping[str, str]], versions: Mapping[str, str], detected_tools: Iterable[str]
) -> list[dict[str, Any]]:
    """``GET /api/models``' list: the available models with ``configured`` and their pinned version."""
    return [
        model_entry(model, is_configured(model, stored), versions.get(model.id, ""))
        for model in available_models(detected_tools)
    ]

"""One-shot structured answers: one prompt in, one JSON object out, from a target the config names.

NudgeNik and the branch suggestion each ask one question whose answer must be a JSON object of
a given schema. The config names who answers (``nudgenik.target``, ``branch_suggest.target``),
looked up in this order:

1. a chat model of this runtime: ``provider:model`` (``openai:gpt-4o-mini``,
   ``local:<GGUF name>``), or a provider's name alone for its default model. The answer is held
   to the schema where the provider can do it: OpenAI's ``json_schema`` response format,
   Ollama's ``format``, a forced tool on Anthropic, a grammar made from the schema on the local
   llama.cpp model (so even a tiny model answers with the schema's fields and ``enum`` values);
2. an agent CLI, run as schmux runs it (:mod:`.oneshot_cli`): a built-in model (``claude-sonnet``,
   ``sonnet``, ``kimi-thinking``: its base tool told which model, with the model's secrets in
   its environment), a model entry of the config, a promptable run target of the config, or a
   detected tool (``claude``, ``codex``).

Whatever answers, its text is read as schmux reads it (:func:`parse_object`), so an answer
wrapped in a code fence or in prose still counts.

This runs in the server, which holds the chat models, on the calling greenlet: the providers'
clients are cooperative there, and so is ``subprocess`` (gevent patches it). A command cannot
go through the hub's threadpool instead: gevent's patched ``subprocess`` watches children only
from the main loop and fails in a pool thread. Nothing here imports Flask or gevent.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .. import constants
from ..chat.selection import ModelSelector, select_model
from ..chat.types import ChatTurn, GenerationOptions, ModelRef, ProviderCall, ProviderError, ResponseSchema, TextDelta
from . import builtin_models
from .config import AgentsConfig
from .secrets import SecretsError
from .tools import detect_tools

if TYPE_CHECKING:  # the providers import their client libraries: not in the agents worker, which imports this
    from ..chat.providers.registry import ProviderRegistry

logger = logging.getLogger(__name__)

#: Agent CLIs that can be held to a JSON schema (``gemini`` and the rest cannot).
SCHEMA_TOOLS = ("claude", "codex")


class OneShotError(Exception):
    """A one-shot call failed; ``message`` says why in words a client can be shown."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TargetNotFound(OneShotError):
    """The name is no chat model, model entry, run target or detected tool."""


class TargetMissingSecrets(OneShotError):
    """The target needs a key (a provider's API key, a model entry's secrets) that is not set."""


class InvalidAnswer(OneShotError):
    """The answer holds no JSON object."""


@dataclass(frozen=True)
class CliTarget:
    """A command that answers on stdout: an agent CLI (``tool``) or a user's promptable target."""

    name: str
    #: ``claude`` or ``codex`` for an agent CLI (its schema flags, its envelope); ``""`` for a user's command.
    tool: str
    command: str
    #: The model a model entry asks its base tool for (``ANTHROPIC_MODEL`` / ``--model``).
    model: str | None = None
    #: Arguments that choose a built-in model (``--model opus``), put before the one-shot flags.
    model_args: tuple[str, ...] = ()
    #: Environment a built-in model needs (a third-party endpoint, its key).
    env: dict[str, str] = field(default_factory=dict, repr=False)


class OneShot:
    """Answers one-shot questions from chat models and agent CLIs.

    Parameters
    ----------
    registry : ProviderRegistry
        The chat providers (cloud stand-ins in tests, and the local llama.cpp model).
    default_model : callable
        The runtime's default chat model, for a target that names a provider alone.
    config : callable
        The current coding-agents config (model entries, run targets).
    secrets : callable
        The built-in models' stored secrets, ``{model id: {KEY: VALUE}}``.
    """

    def __init__(
        self,
        registry: ProviderRegistry,
        default_model: Callable[[], ModelRef],
        config: Callable[[], AgentsConfig],
        secrets: Callable[[], Mapping[str, Mapping[str, str]]] = dict,
    ) -> None:
        self._registry = registry
        self._default_model = default_model
        self._config = config
        self._secrets = secrets

    def ask(self, target: str, prompt: str, schema: ResponseSchema, timeout_s: float) -> dict[str, Any]:
        """The answer of ``target`` to ``prompt`` as a JSON object; raises :class:`OneShotError`."""
        return parse_object(self.answer_text(target, prompt, schema, timeout_s))

    def answer_text(self, target: str, prompt: str, schema: ResponseSchema, timeout_s: float) -> str:
        """The raw answer text (an envelope already opened for agent CLIs)."""
        if not prompt:
            raise OneShotError("prompt cannot be empty")
        resolved = self.resolve(target)
        if isinstance(resolved, ModelRef):
            return self._ask_model(resolved, prompt, schema, timeout_s)
        from .oneshot_cli import run_target

        return run_target(resolved, prompt, schema, timeout_s)

    # --- targets ----------------------------------------------------------------------------

    def resolve(self, target: str) -> ModelRef | CliTarget:
        """What ``target`` names; :class:`TargetNotFound` or :class:`TargetMissingSecrets` otherwise."""
        name = target.strip()
        if not name:
            raise TargetNotFound(f"target not found: {target!r}")
        ref = self._chat_model(name)
        if ref is not None:
            provider = self._registry.get(ref.provider)
            if provider is not None and provider.requires_key and not provider.configured_key():
                raise TargetMissingSecrets(
                    f"no API key for provider {ref.provider!r} (set MISO_{ref.provider.upper()}_API_KEY)"
                )
            return ref
        config = self._config()
        detected = {tool["name"]: tool["command"] for tool in detect_tools(config) if tool["source"] == "detected"}
        builtin = builtin_models.find_model(name)
        if builtin is not None:
            return self._builtin_target(builtin, detected)
        for model in config.models:
            if model.id == name:
                base = detected.get(model.base_tool)
                if not base:
                    raise TargetNotFound(f"target not found: {name} (its tool {model.base_tool!r} is not installed)")
                if model.required_secrets and not model.configured:
                    raise TargetMissingSecrets(f"model {name} needs {', '.join(model.required_secrets)}")
                return CliTarget(name, model.base_tool, base, model.id)
        for run_target in config.run_targets:
            if run_target.name == name:
                if run_target.type != "promptable":
                    raise OneShotError(f"target {name} must be promptable")
                tool = run_target.name if run_target.source == "detected" else ""
                return CliTarget(name, tool, run_target.command)
        if name in detected:
            return CliTarget(name, name, detected[name])
        raise TargetNotFound(f"target not found: {name}")

    def _builtin_target(self, model: builtin_models.BuiltinModel, detected: dict[str, str]) -> CliTarget:
        """A built-in model as its base tool runs it: a flag for the tool's own models, else the
        third-party endpoint and key in the environment (schmux's ``BuildEnv``)."""
        base = detected.get(model.base_tool)
        if not base:
            raise TargetNotFound(f"target not found: {model.id} (its tool {model.base_tool!r} is not installed)")
        try:
            stored = self._secrets()
        except SecretsError as exc:
            raise OneShotError(f"failed to load secrets for model {model.id}: {exc}") from None
        secrets = builtin_models.effective_secrets(model, stored)
        missing = builtin_models.missing_secret(model, secrets)
        if missing:
            raise TargetMissingSecrets(f"model {model.id} needs {missing}")
        if model.model_flag:
            return CliTarget(model.id, model.base_tool, base, model_args=(model.model_flag, model.model_value))
        env = {"ANTHROPIC_MODEL": model.model_value, **{key: str(value) for key, value in secrets.items()}}
        if model.endpoint:
            env["ANTHROPIC_BASE_URL"] = model.endpoint
        return CliTarget(model.id, model.base_tool, base, env=env)

    def _chat_model(self, name: str) -> ModelRef | None:
        """``provider:model`` or a provider's name alone; None when ``name`` is neither."""
        known = self._registry.names()
        prefix, sep, rest = name.partition(":")
        if sep and prefix in known and rest:
            return ModelRef(prefix, rest)
        if name not in known:
            return None
        from ..chat.providers.local_chat import LocalProvider

        provider = self._registry.get(name)
        if isinstance(provider, LocalProvider):
            return ModelRef(name, "local")  # whatever model is loaded, else the default one
        return select_model(ModelSelector(provider=name), self._default_model(), known)

    # --- chat models ------------------------------------------------------------------------

    def _ask_model(self, ref: ModelRef, prompt: str, schema: ResponseSchema, timeout_s: float) -> str:
        provider = self._registry.get(ref.provider)
        assert provider is not None  # resolve() only returns known providers
        call = ProviderCall(
            ref.model,
            [ChatTurn("user", prompt)],
            GenerationOptions(max_tokens=constants.ONESHOT_MAX_TOKENS),
            response_schema=schema,
        )
        provider.warm_up()  # a client library's first import is not the model's time to answer
        deadline = time.monotonic() + timeout_s
        pieces: list[str] = []
        stream = provider.stream(call)
        try:
            for item in stream:
                if isinstance(item, TextDelta):
                    pieces.append(item.text)
                if time.monotonic() > deadline:
                    raise OneShotError(f"{ref.id} did not answer within {timeout_s:g} s")
        except ProviderError as exc:
            raise OneShotError(f"{ref.id}: {exc.message}") from None
        except OneShotError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken provider is this call's error, not a crash
            logger.exception("one-shot call to %s failed", ref.id)
            raise OneShotError(f"{ref.id} failed: {exc}") from None
        finally:
            stream.close()
        return "".join(pieces)


# --- reading answers ------------------------------------------------------------------------


def normalize_json_text(text: str) -> str:
    """``text`` with what models get wrong in JSON made plain: curly double quotes, tabs, runs of spaces."""
    fixed = text.strip().replace("\u201c", '"').replace("\u201d", '"').replace("\t", " ")
    while "  " in fixed:
        fixed = fixed.replace("  ", " ")
    return fixed.strip()


def parse_object(raw: str) -> dict[str, Any]:
    """The JSON object in a model's answer, read as schmux reads it.

    A code fence around the answer is dropped, then the text from the first ``{`` to the last
    ``}`` is parsed; if that fails, once more after :func:`normalize_json_text`. Raises
    :class:`InvalidAnswer` when there is no object.
    """
    text = raw.strip()
    if not text:
        raise InvalidAnswer("the answer is empty")
    if text.startswith("```"):
        text = text.removeprefix("```json").strip().removeprefix("```").strip().removesuffix("```").strip()
    start, end = text.find("{"), text.rfind("}")
    if start == -1 or end <= start:
        raise InvalidAnswer("the answer holds no JSON object")
    payload = text[start : end + 1]
    try:
        value = json.loads(payload)
    except ValueError as first:
        fixed = normalize_json_text(payload)
        if not fixed:
            raise InvalidAnswer(str(first)) from None
        try:
            value = json.loads(fixed)
        except ValueError as exc:
            raise InvalidAnswer(str(exc)) from None
    if not isinstance(value, dict):
        raise InvalidAnswer("the answer is not a JSON object")
    return value


def string_field(answer: dict[str, Any], name: str) -> str:
    """A string field of an answer (``""`` when absent or null); :class:`InvalidAnswer` for another type."""
    value = answer.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidAnswer(f"{name} must be a string, got {type(value).__name__}")
    return value


def string_list_field(answer: dict[str, Any], name: str) -> list[str]:
    """A list-of-strings field of an answer (``[]`` when absent or null)."""
    value = answer.get(name)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidAnswer(f"{name} must be a list of strings")
    return value

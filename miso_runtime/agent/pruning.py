"""Keeping a conversation under its model's safe zone by clearing old tool outputs (Maria's pruner).

Tool outputs are the bulk of an agent's context and the one part the model can get back by
calling the tool again, so they are what goes: the oldest first, each replaced by a placeholder
the model understands, until the estimate is under the safe zone. The conversation keeps the
placeholder from then on (Maria emits ``Pruned{id}`` for each, which makes it stick on resume).

:func:`calculate_pruning` only decides; the loop emits the events and then builds the request
from :func:`apply_pruning`. Each tool message is paired with the id of the ``PostToolCall``
event it came from (:class:`ConversationEntry`), since that id is what ``Pruned`` names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Iterable, Sequence

from ..constants import (
    PRUNED_TOOL_OUTPUT,
    SAFE_ZONE_ANTHROPIC_TOKENS,
    SAFE_ZONE_DEFAULT_TOKENS,
    SAFE_ZONE_GPT5_TOKENS,
    SAFE_ZONE_RESERVE_FRACTION,
    SAFE_ZONE_RESERVE_MAX_TOKENS,
)
from .messages import AgentMessage, ToolSpec
from .tokens import TokenCounter


@dataclass(frozen=True)
class ConversationEntry:
    """One message of the conversation; a tool message carries its ``PostToolCall`` event id."""

    message: AgentMessage
    event_id: str | None = None


@dataclass(frozen=True)
class PruneResult:
    """What :func:`calculate_pruning` decided.

    ``origin_token_count`` and ``pruned_token_count`` are the calibrated estimates before and
    after (``ContextPruned``'s fields; ``TokenCounted`` carries the first). ``raw_token_count``
    is the uncalibrated estimate after pruning: what :meth:`TokenCounter.calibrate` must be
    given with the reply's ``usage.prompt_tokens``.
    """

    pruned_ids: list[str]
    origin_token_count: int
    pruned_token_count: int
    raw_token_count: int


def is_pruned(message: AgentMessage) -> bool:
    return message.role == "tool" and message.content == PRUNED_TOOL_OUTPUT


def calculate_pruning(
    entries: Sequence[ConversationEntry],
    *,
    counter: TokenCounter,
    safe_zone: int,
    model_name: str,
    tools: Iterable[ToolSpec] = (),
    already_pruned: Iterable[str] = (),
) -> PruneResult:
    """Which tool outputs to clear, oldest first, to bring the request under ``safe_zone`` tokens.

    Only tool messages with an event id are candidates, and not those already cleared (their
    content is the placeholder, or their id is in ``already_pruned``). When clearing every
    candidate is not enough, all are cleared and the result says how far it got.
    """
    tools = list(tools)
    skip = set(already_pruned)
    factor = counter.factor(model_name)
    raw = counter.count_request((entry.message for entry in entries), tools)
    origin = int(raw * factor)
    pruned_ids: list[str] = []
    if origin > safe_zone:
        placeholder_tokens = None
        for entry in entries:
            if int(raw * factor) <= safe_zone:
                break
            message = entry.message
            if message.role != "tool" or entry.event_id is None or entry.event_id in skip or is_pruned(message):
                continue
            if placeholder_tokens is None:
                placeholder_tokens = counter.count_message(replace(message, content=PRUNED_TOOL_OUTPUT))
            saving = counter.count_message(message) - placeholder_tokens
            pruned_ids.append(entry.event_id)
            raw -= saving
    return PruneResult(
        pruned_ids=pruned_ids, origin_token_count=origin, pruned_token_count=int(raw * factor), raw_token_count=raw
    )


def apply_pruning(entries: Sequence[ConversationEntry], pruned_ids: Iterable[str]) -> list[ConversationEntry]:
    """The entries with the outputs of ``pruned_ids`` replaced by the placeholder."""
    ids = set(pruned_ids)
    return [
        replace(entry, message=replace(entry.message, content=PRUNED_TOOL_OUTPUT))
        if entry.event_id in ids and entry.message.role == "tool"
        else entry
        for entry in entries
    ]


def messages_of(entries: Iterable[ConversationEntry]) -> list[AgentMessage]:
    return [entry.message for entry in entries]


def named_safe_zone(model_name: str) -> int:
    """Maria's safe zone for a model name: Anthropic 200k, GPT-5 400k, anything else 128k.

    Names come as ``provider:model`` (``anthropic:claude-sonnet-4-5``, ``openai:gpt-5``) or in
    OpenRouter's form (``anthropic/claude-sonnet-4.5``, ``openai/gpt-5``); both are understood.
    """
    name = model_name.strip().lower()
    provider, _, rest = name.partition(":") if ":" in name else ("", "", name)
    model = rest.rsplit("/", 1)[-1]
    if provider == "anthropic" or rest.startswith("anthropic/") or model.startswith("claude"):
        return SAFE_ZONE_ANTHROPIC_TOKENS
    if model.startswith("gpt-5"):
        return SAFE_ZONE_GPT5_TOKENS
    return SAFE_ZONE_DEFAULT_TOKENS


def safe_zone_tokens(model_name: str, context_tokens: int | None) -> int:
    """The prompt budget for a model: its named zone, but always leaving room in its real context.

    A quarter of ``context_tokens`` (at most 32768 tokens) is kept free for the reply and for
    the error of counting another tokenizer's tokens with cl100k, so a local model with 4096
    tokens of context gets 3072. ``context_tokens`` of None or 0 means unknown: the named zone.
    """
    zone = named_safe_zone(model_name)
    if context_tokens and context_tokens > 0:
        reserve = min(math.ceil(context_tokens * SAFE_ZONE_RESERVE_FRACTION), SAFE_ZONE_RESERVE_MAX_TOKENS)
        zone = min(zone, max(1, context_tokens - reserve))
    return zone

"""Maria's token counting and pruning, run before each model request of a loop.

The loop asks :meth:`TokenBudget.fit` for the request it is about to send: the estimate, and
which old tool outputs to clear so that it fits the model's safe zone (the conversation keeps
their placeholders from then on). After the reply, :meth:`TokenBudget.observe` folds the
provider's ``usage.prompt_tokens`` into the model's calibration.
"""

from __future__ import annotations

from typing import Any

from .conversation import Conversation
from .loop import BudgetFit
from .messages import AgentMessage, ToolSpec
from .pruning import ConversationEntry, calculate_pruning, safe_zone_tokens
from .tokens import TokenCounter


class TokenBudget:
    """The counter and safe zone of one model, for one agent."""

    def __init__(self, model_name: str, context_tokens: int | None) -> None:
        self.model_name = model_name
        self.safe_zone = safe_zone_tokens(model_name, context_tokens)
        self.counter = TokenCounter()

    def fit(self, conversation: Conversation, system_prompt: str | None, tools: list[ToolSpec]) -> BudgetFit:
        head = [ConversationEntry(AgentMessage("system", system_prompt))] if system_prompt else []
        entries = head + [
            ConversationEntry(entry.message, None if entry.pruned else entry.event_id) for entry in conversation.entries
        ]
        result = calculate_pruning(
            entries, counter=self.counter, safe_zone=self.safe_zone, model_name=self.model_name, tools=tools
        )
        for event_id in result.pruned_ids:
            conversation.prune(event_id)
        return BudgetFit(
            token_count=result.raw_token_count,
            pruned_event_ids=tuple(result.pruned_ids),
            origin_token_count=result.origin_token_count,
            pruned_token_count=result.pruned_token_count,
        )

    def observe(self, estimated: int, usage: dict[str, Any] | None) -> None:
        prompt_tokens = (usage or {}).get("prompt_tokens")
        if isinstance(prompt_tokens, int) and prompt_tokens > 0:
            self.counter.calibrate(self.model_name, estimated, prompt_tokens)

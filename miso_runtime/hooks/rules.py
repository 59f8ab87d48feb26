"""A hook rule, with the daemon's fields and defaults (``HookRule`` of its settings).

The daemon's frontend adds a rule with an empty name, no keywords and no command, and saves
every rule at once; so a rule that cannot fire is kept as written and reported (:func:`problems`)
rather than refused, or the user could not save while editing. What can never be right (a wrong
type, an unknown scenario, a threshold outside 0..1) is refused with the field named.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from .. import constants

Scenario = Literal["any", "cognitive", "emotional", "physical"]


class HookRule(BaseModel):
    """One rule: when the live EEG is within ``distance_threshold`` (cosine distance, 0..1) of
    the EEG of labels whose text is near ``keywords``, and ``scenario``'s gate passes, fire."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(default="", max_length=200)
    enabled: bool = True
    keywords: list[str] = Field(default_factory=list, max_length=constants.HOOK_MAX_KEYWORDS)
    scenario: Scenario = "any"
    #: Run when the hook fires (without a shell unless it needs one); empty: the event only.
    command: str = Field(default="", max_length=4000)
    #: Free text carried in the ``hook`` event (the daemon's frontend shows it).
    text: str = Field(default="", max_length=4000)
    distance_threshold: float = Field(default=constants.HOOK_DEFAULT_DISTANCE, ge=0.0, le=1.0)
    #: How many reference EEG vectors the keywords' labels give (the daemon clamps it to 10..20).
    recent_limit: int = Field(default=constants.HOOK_DEFAULT_RECENT_LIMIT, ge=0, le=1000)

    @field_validator("scenario", mode="before")
    @classmethod
    def _scenario_case(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() or "any"
        return value

    @field_validator("keywords")
    @classmethod
    def _keyword_lengths(cls, keywords: list[str]) -> list[str]:
        for keyword in keywords:
            if len(keyword) > constants.HOOK_MAX_KEYWORD_CHARS:
                raise ValueError(f"a keyword is longer than {constants.HOOK_MAX_KEYWORD_CHARS} characters")
        return keywords

    def queries(self) -> list[str]:
        """The keywords that say something (trimmed, empty ones left out)."""
        return [keyword.strip() for keyword in self.keywords if keyword.strip()]

    def threshold(self) -> float:
        """The threshold as the daemon applies it (at least 0.01)."""
        return min(max(self.distance_threshold, 0.01), 1.0)

    def reference_limit(self) -> int:
        return min(max(self.recent_limit, 10), 20)


class HookRules(RootModel[list[HookRule]]):
    """``PUT``/``POST /v1/hooks``: the raw array (the daemon) or ``{"hooks": [...]}`` (its frontend)."""

    root: list[HookRule] = Field(max_length=constants.HOOK_MAX_RULES)

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and set(data) == {"hooks"}:
            return data["hooks"]
        return data


class SavedHooks(BaseModel):
    """The rules file (``hooks.json`` in the data dir)."""

    hooks: list[HookRule] = Field(default_factory=list)


def rule_problems(rule: HookRule) -> list[str]:
    """Why an enabled rule will not fire as written (empty: none, or the rule is disabled)."""
    if not rule.enabled:
        return []
    found = []
    if not rule.queries():
        found.append("no keywords: it never fires")
    if rule.scenario == "physical":
        found.append("the 'physical' scenario needs drowsiness and heart-rate scores, not computed here")
    return found


def problems(rules: list[HookRule]) -> list[str]:
    """:func:`rule_problems` of every rule, each sentence naming its rule."""
    found = []
    for index, rule in enumerate(rules, start=1):
        named = f"hook {index} ({rule.name!r})" if rule.name else f"hook {index}"
        found.extend(f"{named}: {problem}" for problem in rule_problems(rule))
    return found

"""What a task process needs to run its agent, handed over when the process starts.

Keys travel in this object over the worker's pipe (never in argv or the environment, which
other users and the commands the agent runs could read).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """The model a task really runs on.

    ``provider`` is one of the chat providers; ``local`` runs through this runtime's own
    OpenAI-compatible API at ``base_url`` with ``api_key`` (a token of this runtime).
    """

    provider: str
    model: str
    context_tokens: int
    api_key: str | None = field(default=None, repr=False)
    base_url: str | None = None

    @property
    def name(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True)
class TaskLaunch:
    task_id: str
    cwd: str
    model: ModelSpec
    #: The model name the client asked for (decides Maria's tool set: apply_patch for gpt-5.1/5.2).
    requested_model: str
    #: The task's log so far (``{id, created, desc}`` events), from which the agent is rebuilt.
    history: list[dict[str, Any]] = field(default_factory=list)
    #: Tools switched on (None: all).
    enabled_tools: list[str] | None = None
    #: Whose agent this is: ``maria`` (a task: Maria's tools and prompt) or ``caco`` (a chat
    #: session: Caco's tools and prompt, its reply streamed as it comes).
    profile: str = "maria"
    #: For ``caco``: where the workbench lives and how to reach this runtime
    #: (``database_path``, ``applets_dir``, ``outputs_dir``, ``server_url``, ``token``).
    workbench: dict[str, Any] | None = field(default=None, repr=False)

    def to_options(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "TaskLaunch":
        values = dict(options)
        values["model"] = ModelSpec(**values["model"])
        return cls(**values)

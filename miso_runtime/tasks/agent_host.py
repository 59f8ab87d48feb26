"""The agent of one task, as its worker process holds it, and the methods the server calls on it.

Built from a :class:`TaskLaunch`: the conversation, the system prompt and the todo list come
back from the task's log, so a resumed task goes on where it stopped, in the same cwd.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ..agent import events
from ..agent.budget import TokenBudget
from ..agent.conversation import restore
from ..agent.loop import AgentLoop
from ..agent.messages import CancelToken, ToolCall, ToolCallingModel
from ..agent.prompts import caco_system_prompt, maria_system_prompt
from ..agent.tokens import encoding
from ..agent.tools.base import ToolContext
from ..agent.tools.caco.env import CacoToolEnv
from ..agent.tools.registry import maria_tools, run_tool_call
from ..agent.tools.todo_list import TodoList
from ..constants import AGENT_LOCAL_MAX_TOKENS
from ..errors import MisoError
from .launch import ModelSpec, TaskLaunch

logger = logging.getLogger(__name__)


def build_model(spec: ModelSpec) -> ToolCallingModel:
    """The provider adapter for ``spec`` (the local model goes through this runtime's own OpenAI API)."""
    if spec.provider == "anthropic":
        from ..agent.models.anthropic_tools import AnthropicToolModel

        return AnthropicToolModel(spec.model, spec.api_key, spec.base_url, spec.context_tokens)
    if spec.provider == "ollama":
        from ..agent.models.ollama_tools import OllamaToolModel

        return OllamaToolModel(spec.model, spec.base_url or "", spec.context_tokens)
    from ..agent.models.openai_tools import OpenAIToolModel

    if spec.provider != "local":
        return OpenAIToolModel(spec.model, spec.api_key, spec.base_url, spec.context_tokens)
    model = OpenAIToolModel(spec.model, spec.api_key, spec.base_url, spec.context_tokens, AGENT_LOCAL_MAX_TOKENS)
    model.name = spec.name
    return model


#: The client library each provider's adapter imports on its first request.
_CLIENT_LIBRARY = {"openai": "openai", "local": "openai", "anthropic": "anthropic", "ollama": "ollama"}


def _warm_up(provider: str) -> None:
    """Load the tokenizer and the provider's client library while the task waits for its message.

    Both take a few tenths of a second of CPU; done on the first request they would delay the
    first answer of every new or resumed task by that much.
    """
    try:
        encoding()
        importlib.import_module(_CLIENT_LIBRARY.get(provider, "openai"))
    except Exception:  # noqa: BLE001 - the first request will do it and report what fails
        logger.debug("warm-up of the task process failed", exc_info=True)


def _todos(saved: list[dict[str, Any]] | None) -> TodoList:
    """The todo list of the task's last ``todo`` result (an empty one when there is none or it is unreadable)."""
    try:
        return TodoList.from_json({"todos": saved or []})
    except (ValueError, TypeError, KeyError):
        logger.warning("the task's saved todo list is unreadable; it starts empty")
        return TodoList()


def _caco_env(launch: TaskLaunch) -> CacoToolEnv:
    """The workbench of a Caco session's tools: its folders, and the shared store for the applet state."""
    from ..workbench.applet_state import AppletState
    from ..workbench.applets import AppletStore
    from ..workbench.outputs import OutputStore

    where = launch.workbench or {}
    return CacoToolEnv(
        session_id=launch.task_id,
        applets=AppletStore(Path(where["applets_dir"])),
        state=AppletState(Path(where["database_path"])),
        outputs=OutputStore(Path(where["outputs_dir"])),
        server_url=where.get("server_url"),
        token=where.get("token"),
    )


class AgentHost:
    """One task's agent loop plus the RPC methods the server publishes on it."""

    def __init__(
        self,
        launch: TaskLaunch,
        emit_event: Callable[[dict[str, Any]], None],
        emit_queue: Callable[[list[dict[str, Any]]], None],
        report_group: Callable[[int, bool], None] | None = None,
        emit_text: Callable[[str], None] | None = None,
    ) -> None:
        self._launch = launch
        self._emit_event = emit_event
        restored = restore(launch.history)
        self._context = ToolContext(
            cwd=Path(launch.cwd).resolve(),
            cancel=CancelToken(),
            todos=_todos(restored.todos),
            on_process_group=report_group,
        )
        if launch.profile == "caco":
            from ..agent.tools.caco.registry import caco_tools  # only a Caco session's process needs them

            tools = caco_tools(_caco_env(launch))
            default_prompt = caco_system_prompt(str(self._context.cwd))
        else:
            tools = maria_tools(launch.requested_model)
            default_prompt = maria_system_prompt(launch.requested_model)
        prompt = restored.system_prompt if restored.has_prompt else default_prompt
        self.loop = AgentLoop(
            model=build_model(launch.model),
            tools=tools,
            run_tool=self._run_tool,
            emit=self._emit,
            queue_changed=lambda queued: emit_queue([message.wire() for message in queued]),
            conversation=restored.conversation,
            system_prompt=prompt,
            budget=TokenBudget(launch.model.name, launch.model.context_tokens),
            enabled_tools=None if launch.enabled_tools is None else set(launch.enabled_tools),
            on_text=emit_text if launch.profile == "caco" else None,
        )
        threading.Thread(target=_warm_up, args=(launch.model.provider,), name="warm-up", daemon=True).start()

    def _emit(self, desc: dict[str, Any]) -> str:
        envelope = events.envelope(desc)
        self._emit_event(envelope)
        return envelope["id"]

    def _run_tool(self, tool: Any, call: ToolCall, cancel: CancelToken) -> Any:
        outcome = run_tool_call([tool], call, replace(self._context, cancel=cancel))
        assert outcome is not None  # the loop only hands over known tools
        return outcome

    # --- published methods ------------------------------------------------------------------

    def methods(self) -> dict[str, Callable[..., Any]]:
        return {
            "post_message": self.post_message,
            "cancel": self.cancel,
            "stop_soon": self.stop_soon,
            "immediate_message": self.immediate_message,
            "set_enabled_tools": self.set_enabled_tools,
            "set_system_prompt": self.set_system_prompt,
        }

    def post_message(
        self, content: str, web_search: bool = False, message_id: str | None = None, images: list[str] | None = None
    ) -> dict[str, Any]:
        message_id, queued = self.loop.post_message(content, web_search, message_id, tuple(images or ()))
        return {"id": message_id, "queued": queued}

    def cancel(self) -> dict[str, Any]:
        dropped = self.loop.cancel()
        if dropped is None:
            raise MisoError(404, "nothing_running", "No running task to cancel.")
        return {"pending_messages": [message.wire() for message in dropped]}

    def stop_soon(self) -> dict[str, Any]:
        self.loop.stop_soon()
        return {"success": True}

    def immediate_message(self, content: str) -> dict[str, Any]:
        self.loop.immediate_message(content)
        return {"success": True}

    def set_enabled_tools(self, names: list[str]) -> dict[str, Any]:
        self.loop.set_enabled_tools(names)
        return {"success": True}

    def set_system_prompt(self, prompt: str | None) -> dict[str, Any]:
        self.loop.set_system_prompt(prompt)
        return {"success": True}

    def close(self) -> None:
        """Stop a run in progress (its commands' process groups are killed)."""
        self.loop.cancel()

"""The ``local`` provider: the llama.cpp model of this runtime's ``llm`` worker.

``local:<name>`` loads that catalog model on demand (after the requests already admitted);
``local`` alone uses whatever model is loaded, or the default one.
"""

from __future__ import annotations

from typing import Iterator

from ...errors import MisoError
from ...llm.engine import Finished, GenerationError, GenerationParams, Text
from ...llm.service import LlmService
from ..types import ProviderCall, ProviderError, ProviderItem, TextDelta, UsageReport

_CODE_BY_ERROR = {
    "worker_crashed": "provider_unavailable",
    "worker_unavailable": "provider_unavailable",
    "queue_full": "rate_limited",
    "server_stopped": "provider_unavailable",
    "load_timeout": "provider_unavailable",
}


def _provider_error(code: str, message: str) -> ProviderError:
    return ProviderError(_CODE_BY_ERROR.get(code, "provider_error"), f"local model: {message}")


class LocalProvider:
    name = "local"
    requires_key = False

    def __init__(self, llm: LlmService) -> None:
        self._llm = llm

    def warm_up(self) -> None:
        """Nothing to import: the model lives in the worker process."""

    def configured_key(self) -> str | None:
        return None

    def stream(self, call: ProviderCall) -> Iterator[ProviderItem]:
        messages = [{"role": turn.role, "content": turn.content} for turn in call.messages]
        params = GenerationParams(
            max_tokens=call.options.max_tokens,
            temperature=call.options.temperature,
            json_schema=call.response_schema.schema if call.response_schema is not None else None,
        )
        try:
            _name, events = self._llm.chat(call.model, messages, params)
        except MisoError as exc:
            raise _provider_error(exc.code, exc.message) from exc
        try:
            for event in events:
                if isinstance(event, Text):
                    yield TextDelta(event.text)
                elif isinstance(event, Finished):
                    yield UsageReport(event.prompt_tokens, event.completion_tokens)
        except GenerationError as exc:
            raise _provider_error(exc.code, exc.message) from exc
        finally:
            events.close()

    def list_models(self) -> list[str]:
        return [entry.id for entry in self._llm.catalog.entries() if not entry.error]

    def default_model(self) -> str | None:
        """The model ``local`` means when none is named (None: no usable model on disk)."""
        return self._llm.default_model_name()

"""The chat service: one request in, one stream of events out, the conversation stored.

:meth:`ChatService.prepare` does everything that can fail before a stream starts (unknown
provider, missing key, empty message) and raises :class:`~miso_runtime.errors.MisoError`, so
that those failures are plain HTTP errors. :meth:`PreparedChat.events` then streams; every
failure from there on is an ``Error`` event with a contract code. Closing the event iterator
closes the upstream request, and the reply is stored whatever happened: ``complete``,
``cancelled`` (the client left or the server stopped) or ``error``.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from ..bus import EventBus
from ..errors import MisoError
from ..store.conversations import ConversationStore, now_ms
from .events import ChatEvent, Done, Error, Meta, Token
from .providers.base import ChatProvider
from .providers.local_chat import LocalProvider
from .providers.registry import ProviderRegistry
from .selection import ModelSelector, default_model, select_model
from .types import ChatTurn, GenerationOptions, ModelRef, ProviderCall, ProviderError, TextDelta, UsageReport

logger = logging.getLogger(__name__)

FACE = "miso"
#: Stored messages that make up a thread's history: whole ones, and replies cut off after
#: the user saw part of them.
HISTORY_STATUSES = ("complete", "cancelled")


@dataclass(frozen=True)
class RequestKeys:
    """API keys given with one request; they override configured keys for that request only."""

    any_provider: str | None = field(default=None, repr=False)
    openai: str | None = field(default=None, repr=False)
    anthropic: str | None = field(default=None, repr=False)

    def for_provider(self, name: str) -> str | None:
        specific = {"openai": self.openai, "anthropic": self.anthropic}.get(name)
        return specific or self.any_provider


@dataclass(frozen=True)
class ChatRequest:
    message: str
    thread_id: str | None = None
    history: list[ChatTurn] | None = None
    selector: ModelSelector = field(default_factory=ModelSelector)
    options: GenerationOptions = field(default_factory=GenerationOptions)
    keys: RequestKeys = field(default_factory=RequestKeys)


class ChatService:
    """Chat with any configured provider, keeping threads in the conversation store."""

    def __init__(
        self,
        conversations: ConversationStore,
        registry: ProviderRegistry,
        bus: EventBus,
        configured_provider: str | None = None,
        configured_model: str | None = None,
    ) -> None:
        self._conversations = conversations
        self._bus = bus
        self._registry = registry
        self._configured_provider = configured_provider
        self._configured_model = configured_model

    @property
    def registry(self) -> ProviderRegistry:
        return self._registry

    def default_model(self) -> ModelRef:
        """The model a request without model fields runs on."""
        keyed = [
            name
            for name in self._registry.names()
            if (provider := self._registry.get(name)) and provider.requires_key and provider.configured_key()
        ]
        local = self._registry.get("local")
        local_model = local.default_model() if isinstance(local, LocalProvider) else None
        return default_model(
            self._configured_provider, self._configured_model, keyed, self._registry.names(), local_model
        )

    def prepare(self, request: ChatRequest) -> "PreparedChat":
        """Validate a request, pick its model, load and extend its thread; raises MisoError."""
        message = request.message.strip()
        if not message:
            raise MisoError(400, "invalid_request", "message is required")
        ref = select_model(request.selector, self.default_model(), self._registry.names())
        provider = self._registry.get(ref.provider)
        assert provider is not None  # select_model only returns known providers
        if not ref.model:
            raise MisoError(400, "invalid_request", f"no model given for provider {ref.provider!r} and none configured")
        api_key = request.keys.for_provider(ref.provider) or provider.configured_key()
        if provider.requires_key and not api_key:
            raise MisoError(
                400,
                "missing_api_key",
                f"no API key for provider {ref.provider!r}: set MISO_{ref.provider.upper()}_API_KEY "
                f"or pass options.{ref.provider}ApiKey",
            )
        existing = self._conversations.get_thread(request.thread_id) if request.thread_id else None
        thread_id = existing.id if existing else (request.thread_id or str(uuid.uuid4()))
        if request.history:
            history = list(request.history)
        elif existing is None:
            history = []
        else:
            history = [
                ChatTurn(stored.role, stored.content)
                for stored in self._conversations.messages(thread_id, HISTORY_STATUSES)
                if stored.content
            ]
        call = ProviderCall(ref.model, [*history, ChatTurn("user", request.message)], request.options, api_key)
        return PreparedChat(self._conversations, self._bus, provider, ref, thread_id, call, request.message)


class PreparedChat:
    """A validated request, ready to stream."""

    def __init__(
        self,
        conversations: ConversationStore,
        bus: EventBus,
        provider: ChatProvider,
        ref: ModelRef,
        thread_id: str,
        call: ProviderCall,
        user_message: str,
    ) -> None:
        self._conversations = conversations
        self._bus = bus
        self._user_message = user_message
        self._request_stored = False
        self._provider = provider
        self.model = ref
        self.thread_id = thread_id
        self._call = call

    def events(self) -> Iterator[ChatEvent]:
        """Stream the reply as contract events; closing this iterator closes the upstream request.

        ``done.usage`` has the provider's token counts where it reports them (None where not),
        ``completion_chars``, ``ttft_ms`` (request start to first text, ms) and
        ``tokens_per_s`` (completion tokens over the time from request start to the last
        token, so that it is defined for a one-token reply).
        """
        started_ms = now_ms()
        started = time.perf_counter()
        self._publish("started")
        yield Meta(self.thread_id, self.model.id, started_ms)
        pieces: list[str] = []
        usage = UsageReport()
        first_token_at: float | None = None
        status = "cancelled"
        error: Error | None = None
        upstream = self._provider.stream(self._call)
        try:
            try:
                for item in upstream:
                    if isinstance(item, TextDelta):
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        pieces.append(item.text)
                        yield Token(item.text)
                        self._store_request()
                    else:
                        usage = item
            except ProviderError as exc:
                error = Error(exc.code, exc.message)
            except Exception as exc:  # noqa: BLE001 - a broken stream is an event, not a crash
                logger.exception("chat stream on %s failed", self.model.id)
                error = Error("stream_failed", f"the stream from {self.model.provider} failed: {exc}")
            if error is not None:
                status = "error"
                yield error
                return
            finished = time.perf_counter()
            status = "complete"
            yield Done(self.thread_id, now_ms(), self._usage(usage, pieces, started, first_token_at, finished))
        finally:
            upstream.close()
            self._store_request()
            self._store_reply("".join(pieces), status, usage, error)
            self._publish(status)

    def _publish(self, state: str) -> None:
        """Tell other windows of the app that a chat stream started or ended (``chat:stream``)."""
        self._bus.publish("chat:stream", {"thread_id": self.thread_id, "model": self.model.id, "state": state})

    def _usage(
        self, usage: UsageReport, pieces: list[str], started: float, first: float | None, finished: float
    ) -> dict:
        completion_tokens = usage.completion_tokens
        elapsed = finished - started
        rate = (completion_tokens / elapsed) if completion_tokens and elapsed > 0 else 0.0
        return {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": completion_tokens,
            "completion_chars": sum(len(piece) for piece in pieces),
            "ttft_ms": None if first is None else round((first - started) * 1000, 2),
            "tokens_per_s": round(rate, 2),
        }

    def _store_request(self) -> None:
        """Store the thread and the user's message, once.

        This happens after the first token went out rather than before the upstream call, so
        that the writes are not on the path to the first token.
        """
        if self._request_stored:
            return
        self._request_stored = True
        try:
            self._conversations.ensure_thread(self.thread_id, FACE, title=self._user_message.strip()[:80])
            self._conversations.append_message(self.thread_id, "user", self._user_message)
        except Exception:  # noqa: BLE001 - a failed write must not break the stream the user sees
            logger.exception("could not store the request of thread %s", self.thread_id)

    def _store_reply(self, content: str, status: str, usage: UsageReport, error: Error | None) -> None:
        usage_record = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
        try:
            self._conversations.append_message(
                self.thread_id,
                "assistant",
                content,
                status=status,
                provider=self.model.provider,
                model=self.model.model,
                usage=usage_record,
            )
            payload = {"status": status, "model": self.model.id, "usage": usage_record}
            if error is not None:
                payload["error"] = error.payload
            self._conversations.append_event(self.thread_id, "reply", payload)
        except Exception:  # noqa: BLE001 - storing must never turn a finished stream into a crash
            logger.exception("could not store the reply of thread %s", self.thread_id)

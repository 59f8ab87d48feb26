"""EventBus: in-process publish/subscribe that feeds every SSE and WebSocket subscriber.

Publishers never wait for subscribers. Each subscriber has a bounded queue; when it is full
the oldest *droppable* event (a live frame such as ``EegBands``) is discarded first, and only
when none is droppable the oldest event of any kind, counted in ``dropped``. So a slow
client loses stale frames, never slows the publisher or other subscribers, and keeps the
events it needs to stay consistent for as long as possible.

Built on :mod:`threading`, so it works in worker threads and, once gevent has patched the
server process, between greenlets.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import constants

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BusEvent:
    """One event: ``{type, ts_unix_ms, correlation_id, payload}`` on the wire."""

    type: str
    payload: dict[str, Any]
    ts_unix_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    correlation_id: str | None = None
    droppable: bool = False
    seq: int = 0

    def envelope(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "ts_unix_ms": self.ts_unix_ms,
            "correlation_id": self.correlation_id,
            "payload": self.payload,
        }


class Subscription:
    """A subscriber's bounded queue; read it with :meth:`get`, end it with :meth:`close`."""

    def __init__(
        self, bus: "EventBus", types: frozenset[str] | None, capacity: int, info: dict[str, Any] | None = None
    ) -> None:
        self._bus = bus
        #: What the subscriber is (e.g. a WebSocket client's id and address), for listings.
        self.info = dict(info or {})
        self.capacity = capacity
        self._types = types
        self._capacity = capacity
        self._events: deque[BusEvent] = deque()
        self._ready = threading.Condition()
        self.closed = False
        self.dropped = 0

    @property
    def queued(self) -> int:
        """Events waiting to be read."""
        with self._ready:
            return len(self._events)

    def wants(self, event: BusEvent) -> bool:
        return self._types is None or event.type in self._types

    def offer(self, event: BusEvent) -> None:
        with self._ready:
            if self.closed:
                return
            if len(self._events) >= self._capacity:
                self._drop_one()
            self._events.append(event)
            self._ready.notify()

    def _drop_one(self) -> None:
        for index, queued in enumerate(self._events):
            if queued.droppable:
                del self._events[index]
                break
        else:
            self._events.popleft()
        self.dropped += 1

    def get(self, timeout: float | None = None) -> BusEvent | None:
        """The next event, or None after ``timeout`` seconds or once closed."""
        with self._ready:
            if not self._events and not self.closed:
                self._ready.wait(timeout)
            if self._events:
                return self._events.popleft()
            return None

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        self._bus._remove(self)

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class EventBus:
    """Fan-out of events to subscribers, each with its own bounded queue."""

    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)

    def subscribe(
        self,
        types: Iterable[str] | None = None,
        capacity: int = constants.BUS_SUBSCRIBER_QUEUE,
        info: dict[str, Any] | None = None,
    ) -> Subscription:
        subscription = Subscription(self, frozenset(types) if types is not None else None, capacity, info)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def publish(
        self, event_type: str, payload: dict[str, Any], *, correlation_id: str | None = None, droppable: bool = False
    ) -> BusEvent:
        event = BusEvent(event_type, payload, correlation_id=correlation_id, droppable=droppable, seq=next(self._seq))
        with self._lock:
            subscribers = [s for s in self._subscriptions if s.wants(event)]
        for subscription in subscribers:
            subscription.offer(event)
        return event

    def close_all(self) -> None:
        """End every subscription (shutdown): readers see None and finish."""
        with self._lock:
            subscribers = list(self._subscriptions)
        for subscription in subscribers:
            subscription.close()

    def subscriptions(self) -> list[Subscription]:
        """The open subscriptions, oldest first."""
        with self._lock:
            return list(self._subscriptions)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

"""EventBus: fan-out with bounded queues that drop stale live frames first."""

from __future__ import annotations

import threading

from miso_runtime.bus import EventBus


def test_every_subscriber_gets_every_event_in_order():
    bus = EventBus()
    first, second = bus.subscribe(), bus.subscribe()
    for n in range(5):
        bus.publish("tick", {"n": n})
    assert [first.get(0).payload["n"] for _ in range(5)] == list(range(5))
    assert [second.get(0).payload["n"] for _ in range(5)] == list(range(5))
    assert first.get(0.01) is None


def test_type_filter():
    bus = EventBus()
    only_status = bus.subscribe(types=["status"])
    bus.publish("EegBands", {}, droppable=True)
    bus.publish("status", {"ok": True})
    assert only_status.get(0).type == "status"
    assert only_status.get(0.01) is None


def test_full_queue_drops_droppable_events_first():
    bus = EventBus()
    slow = bus.subscribe(capacity=3)
    bus.publish("status", {"n": 0})
    bus.publish("EegBands", {"n": 1}, droppable=True)
    bus.publish("EegBands", {"n": 2}, droppable=True)
    bus.publish("status", {"n": 3})
    bus.publish("status", {"n": 4})
    kept = [slow.get(0).payload["n"] for _ in range(3)]
    assert kept == [0, 3, 4]
    assert slow.dropped == 2


def test_publishing_never_waits_for_a_slow_subscriber():
    bus = EventBus()
    bus.subscribe(capacity=2)  # never read
    fast = bus.subscribe(capacity=1000)
    for n in range(500):
        bus.publish("EegBands", {"n": n}, droppable=True)
    assert [fast.get(0).payload["n"] for _ in range(500)] == list(range(500))


def test_close_wakes_a_waiting_reader():
    bus = EventBus()
    subscription = bus.subscribe()
    results = []
    reader = threading.Thread(target=lambda: results.append(subscription.get(10)))
    reader.start()
    subscription.close()
    reader.join(5)
    assert results == [None] and bus.subscriber_count == 0

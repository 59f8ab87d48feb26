"""A client of the Maria face for tests: requests as the web UI sends them, and stream readers.

The UI sends JSON bodies as ``text/plain`` (a string body in RTK Query), so every helper here
does too. :class:`EventReader` keeps one SSE connection open in a thread and collects what it
receives, with its ``id:`` lines, so a test can wait for an event and then look at the order.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx

from tests.sidecar import Sidecar

UI_MODEL = "anthropic/claude-sonnet-4.5"
PLAIN = {"content-type": "text/plain;charset=UTF-8"}


@dataclass(frozen=True)
class SseEvent:
    name: str
    data: Any
    id: str | None


def post_json(side: Sidecar, path: str, body: Any, **headers: str) -> httpx.Response:
    return side.http.post(path, content=json.dumps(body), headers={**side.auth, **PLAIN, **headers})


def create_task(side: Sidecar, message: str | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": message, "model": UI_MODEL, "web_search": False, **fields}
    if message is not None:
        body["message"] = {"role": "user", "content": message}
    response = post_json(side, "/v1/task", body)
    assert response.status_code == 201, response.text
    return response.json()


def send_message(side: Sidecar, task_id: str, content: str) -> dict[str, Any]:
    response = post_json(side, f"/v1/task/{task_id}/message", {"message": {"role": "user", "content": content}})
    assert response.status_code == 200, response.text
    return response.json()


class EventReader:
    """One open SSE connection read by a thread; ``events`` grows as they arrive."""

    def __init__(self, side: Sidecar, path: str, last_event_id: str | None = None) -> None:
        headers = dict(side.auth)
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.events: list[SseEvent] = []
        self.comments = 0
        self._changed = threading.Condition()
        self._client = httpx.Client(base_url=side.base_url, timeout=httpx.Timeout(60.0, read=None))
        self._response = self._client.send(self._client.build_request("GET", path, headers=headers), stream=True)
        self.status_code = self._response.status_code
        self.headers = self._response.headers
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name, data, event_id = "message", [], None
        try:
            for line in self._response.iter_lines():
                if line == "":
                    if data:
                        event = SseEvent(name, json.loads("\n".join(data)), event_id)
                        with self._changed:
                            self.events.append(event)
                            self._changed.notify_all()
                    name, data, event_id = "message", [], None
                elif line.startswith(":"):
                    self.comments += 1
                elif line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
        except (httpx.HTTPError, ValueError):
            pass

    def wait_for(self, predicate: Callable[[SseEvent], bool], timeout: float = 20.0, count: int = 1) -> list[SseEvent]:
        """Wait until ``count`` events match; returns every event so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(1 for event in self.events if predicate(event)) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for events; got {[describe(e) for e in self.events]}")
                self._changed.wait(left)
            return list(self.events)

    def wait_more(self, seen: int, timeout: float = 60.0) -> list[SseEvent]:
        """Wait until there are more than ``seen`` events; returns every event so far."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.events) <= seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no event after {[describe(e) for e in self.events]}")
                self._changed.wait(left)
            return list(self.events)

    def close(self) -> None:
        self._response.close()
        self._client.close()

    def __enter__(self) -> "EventReader":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def msg(event: SseEvent) -> str | None:
    """The ``desc.msg`` of a ``maria`` event (None for other events)."""
    if event.name != "maria":
        return None
    return event.data["desc"]["msg"]


def is_msg(name: str) -> Callable[[SseEvent], bool]:
    return lambda event: msg(event) == name


def describe(event: SseEvent) -> str:
    return msg(event) or event.name


def msgs(events: list[SseEvent]) -> list[str]:
    return [name for name in (msg(event) for event in events) if name]


def descs(events: list[SseEvent], name: str) -> list[dict[str, Any]]:
    return [event.data["desc"] for event in events if msg(event) == name]

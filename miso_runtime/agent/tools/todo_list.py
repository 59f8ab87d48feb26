"""A task's todo list: the state behind the ``todo`` tool, kept for the task's life and saved as JSON.

Items have Maria's JSON shape (``content, created_at, id, notes?, priority, status,
updated_at``; priority ``High|Medium|Low``, status ``Pending|InProgress|Completed``), because
Maria's UI takes ``result[1].todos`` of each ``todo`` call as the list it shows.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

PRIORITIES = ("High", "Medium", "Low")
STATUSES = ("Pending", "InProgress", "Completed")

_TASK_TAG = re.compile(r"<task>(.*?)</task>", re.DOTALL)
_LIST_PREFIX = re.compile(r"^(?:\d+\.\s*|[-*]\s*)")


def now_text() -> str:
    """UTC time to the second, ISO 8601 (``2026-03-27T16:14:50Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """Eight hex digits: short enough for a model to copy, unique within one list."""
    return uuid.uuid4().hex[:8]


@dataclass(frozen=True)
class TodoItem:
    content: str
    id: str
    priority: str = "Medium"
    status: str = "Pending"
    notes: str | None = None
    created_at: str = ""
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        item: dict[str, Any] = {"content": self.content, "created_at": self.created_at, "id": self.id}
        if self.notes is not None:
            item["notes"] = self.notes
        item.update(priority=self.priority, status=self.status, updated_at=self.updated_at)
        return item

    @classmethod
    def from_json(cls, data: Any) -> TodoItem:
        if not isinstance(data, dict):
            raise ValueError("a todo item must be an object")
        content, item_id = data.get("content"), data.get("id")
        priority, status = data.get("priority", "Medium"), data.get("status", "Pending")
        notes = data.get("notes")
        if not isinstance(content, str) or not isinstance(item_id, str):
            raise ValueError("a todo item needs string 'content' and 'id'")
        if priority not in PRIORITIES or status not in STATUSES:
            raise ValueError(f"bad priority {priority!r} or status {status!r}")
        if notes is not None and not isinstance(notes, str):
            raise ValueError("'notes' must be a string")
        created, updated = str(data.get("created_at", "")), str(data.get("updated_at", ""))
        return cls(content, item_id, priority, status, notes, created, updated or created)


def task_texts(content: str) -> list[str]:
    """The tasks written in ``content``: each ``<task>...</task>``, else each non-empty line.

    List markers (``1.``, ``-``, ``*``) at the start of a line are dropped.
    """
    tagged = [text.strip() for text in _TASK_TAG.findall(content)]
    if tagged:
        return [text for text in tagged if text]
    tasks = []
    for line in content.strip().splitlines():
        text = _LIST_PREFIX.sub("", line.strip()).strip()
        if text:
            tasks.append(text)
    return tasks


class TodoList:
    """The ordered items of one task. Used by one agent loop at a time (tools run one by one)."""

    def __init__(self, items: list[TodoItem] | None = None, created_at: str | None = None) -> None:
        self.items: list[TodoItem] = list(items or [])
        self.created_at = created_at or now_text()
        self.updated_at = self.created_at

    def replace_all(self, contents: list[str], *, priority: str, notes: str | None) -> list[TodoItem]:
        stamp = now_text()
        self.items = []
        for text in contents:
            self.items.append(TodoItem(text, self._fresh_id(), priority, "Pending", notes, stamp, stamp))
        self.updated_at = stamp
        return list(self.items)

    def add(self, content: str, *, priority: str, status: str, notes: str | None) -> TodoItem:
        stamp = now_text()
        item = TodoItem(content, self._fresh_id(), priority, status, notes, stamp, stamp)
        self.items.append(item)
        self.updated_at = stamp
        return item

    def find(self, item_id: str) -> TodoItem | None:
        return next((item for item in self.items if item.id == item_id), None)

    def update(self, item_id: str, **changes: Any) -> TodoItem:
        """Change the fields given (None values are left as they are); KeyError for an unknown id."""
        for index, item in enumerate(self.items):
            if item.id == item_id:
                stamp = now_text()
                fields = {key: value for key, value in changes.items() if value is not None}
                updated = replace(item, **fields, updated_at=stamp)
                self.items[index] = updated
                self.updated_at = stamp
                return updated
        raise KeyError(item_id)

    def _fresh_id(self) -> str:
        taken = {item.id for item in self.items}
        while True:
            candidate = new_id()
            if candidate not in taken:
                return candidate

    def to_json(self) -> dict[str, Any]:
        return {
            "todos": [item.to_json() for item in self.items],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_json(cls, data: Any) -> TodoList:
        """Rebuild a list saved by :meth:`to_json`; ValueError when it is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("todos"), list):
            raise ValueError("a todo list must be an object with a 'todos' array")
        todos = cls([TodoItem.from_json(item) for item in data["todos"]], str(data.get("created_at") or "") or None)
        todos.updated_at = str(data.get("updated_at") or todos.created_at)
        return todos

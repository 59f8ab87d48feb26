"""``todo``: the model's plan for the task, kept in :class:`TodoList` and shown by Maria's UI.

Results are ``["Read", {todos}]`` or ``["Write", {todos, message, updated_todos,
is_new_creation}]`` (Maria's enum as JSON); the UI takes ``result[1].todos`` as the list.
``update`` changes only the fields it is given (Maria's resets status and priority to their
defaults when they are left out, which loses a task's progress).
"""

from __future__ import annotations

from typing import Any

from ..messages import ToolSpec
from .base import ToolContext, ToolError, ToolOutcome, failure, success
from .todo_list import TodoItem, TodoList, task_texts

ACTIONS = ("read", "create", "add_task", "update", "mark_progress", "mark_completed")
_PRIORITY = {"high": "High", "medium": "Medium", "low": "Low"}
_STATUS = {"pending": "Pending", "in_progress": "InProgress", "in-progress": "InProgress", "completed": "Completed"}
_STATUS_WORDS = {"Pending": "pending", "InProgress": "in progress", "Completed": "completed"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {
            "type": "string",
            "description": "'read' shows the list; 'create' replaces it with the tasks in `content`; 'add_task' "
            "appends one task; 'update' changes a task's content, priority, status or notes; 'mark_progress' and "
            "'mark_completed' set a task's status.",
        },
        "content": {
            "type": "string",
            "description": "For 'create': the tasks, one per line (list markers are dropped) or each in "
            "<task>...</task>. For 'add_task': the task. For 'update': the new text.",
        },
        "task_id": {
            "type": "string",
            "description": "The id of the task, for 'update', 'mark_progress' and 'mark_completed'.",
        },
        "priority": {"type": "string", "description": "'high', 'medium' or 'low'. Defaults to 'medium'."},
        "status": {"type": "string", "description": "'pending', 'in_progress' or 'completed'. Defaults to 'pending'."},
        "notes": {"type": "string", "description": "Details worth keeping with the task."},
    },
    "required": ["action"],
}

DESCRIPTION = (
    "Keep the plan of a multi-step task as a todo list that lasts for the whole task: create it, mark each "
    "task in progress when you start it and completed as soon as it is done, add tasks you discover, and read "
    "the list when you are unsure what is next."
)


def _choice(args: dict[str, Any], name: str, table: dict[str, str]) -> str | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or value.strip().lower() not in table:
        allowed = ", ".join(f"'{key}'" for key in table if key != "in-progress")
        raise ToolError(f"Error: invalid {name} {value!r}; use {allowed}.")
    return table[value.strip().lower()]


def _optional_text(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise ToolError(f"Error: '{name}' must be a string")
    return value


def _item_line(item: TodoItem) -> str:
    return f"[{_STATUS_WORDS[item.status]}] ({item.priority.lower()}) [{item.id}] {item.content}"


def _summary(todos: list[TodoItem]) -> str:
    counts = {status: sum(item.status == status for item in todos) for status in _STATUS_WORDS}
    return (
        f"Total {len(todos)}: {counts['Completed']} completed, {counts['InProgress']} in progress, "
        f"{counts['Pending']} pending"
    )


def render_read(todos: list[TodoItem]) -> str:
    if not todos:
        return "The todo list is empty."
    lines = ["Todo list:"]
    for number, item in enumerate(todos, 1):
        lines.append(f"{number}. {_item_line(item)}")
        if item.notes:
            lines.append(f"   notes: {item.notes}")
    lines.append("")
    lines.append(_summary(todos))
    return "\n".join(lines)


def render_write(todos: list[TodoItem], message: str, updated: list[TodoItem], created: bool) -> str:
    lines = [f"Done: {message}."]
    if created:
        lines.append("New tasks:")
        lines.extend(f"  {_item_line(item)}" for item in updated)
    else:
        lines.append("Todo list:")
        lines.extend(f"  {_item_line(item)}" for item in todos)
        if updated:
            lines.append("Changed:")
            lines.extend(f"  {_item_line(item)}" for item in updated)
    lines.append("")
    lines.append(_summary(todos))
    return "\n".join(lines)


class Todo:
    spec = ToolSpec(name="todo", description=DESCRIPTION, schema=SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        try:
            return self._run(args, ctx.todos)
        except ToolError as exc:
            return failure(str(exc))

    def _run(self, args: dict[str, Any], todos: TodoList) -> ToolOutcome:
        action = args["action"].strip().lower()
        if action not in ACTIONS:
            raise ToolError(f"Error: invalid action '{args['action']}'; use one of {', '.join(ACTIONS)}.")
        content = _optional_text(args, "content")
        task_id = _optional_text(args, "task_id")
        notes = _optional_text(args, "notes")
        priority = _choice(args, "priority", _PRIORITY)
        status = _choice(args, "status", _STATUS)
        if action == "read":
            items = list(todos.items)
            return success(render_read(items), ["Read", {"todos": [item.to_json() for item in items]}])
        if action == "create":
            texts = task_texts(content or "")
            if not texts:
                raise ToolError("Error: 'content' with at least one task is required to create a todo list.")
            updated = todos.replace_all(texts, priority=priority or "Medium", notes=notes)
            return self._written(todos, f"Created {len(updated)} new todo items", updated, created=True)
        if action == "add_task":
            texts = task_texts(content or "")
            if not texts:
                raise ToolError("Error: 'content' is required to add a task.")
            item = todos.add(texts[0], priority=priority or "Medium", status=status or "Pending", notes=notes)
            return self._written(todos, f"Added new task: {item.content}", [item])
        if not task_id:
            raise ToolError(f"Error: 'task_id' is required for '{action}'.")
        if todos.find(task_id) is None:
            known = ", ".join(item.id for item in todos.items) or "none"
            raise ToolError(f"Error: no task with id '{task_id}' (ids: {known}).")
        if action == "mark_progress":
            item = todos.update(task_id, status="InProgress")
            return self._written(todos, f"Marked task as in progress: {item.content}", [item])
        if action == "mark_completed":
            item = todos.update(task_id, status="Completed")
            return self._written(todos, f"Marked task as completed: {item.content}", [item])
        text = content.strip() if content is not None else None
        if text == "":
            raise ToolError("Error: 'content' must not be empty.")
        item = todos.update(task_id, content=text, priority=priority, status=status, notes=notes)
        return self._written(todos, f"Updated task: {item.content}", [item])

    @staticmethod
    def _written(todos: TodoList, message: str, updated: list[TodoItem], created: bool = False) -> ToolOutcome:
        items = list(todos.items)
        result = [
            "Write",
            {
                "todos": [item.to_json() for item in items],
                "message": message,
                "updated_todos": [item.to_json() for item in updated],
                "is_new_creation": created,
            },
        ]
        return success(render_write(items, message, updated, created), result)

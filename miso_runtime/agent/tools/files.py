"""``read_file``, ``list_files`` and ``write_to_file``: the model's view of the working directory.

Results keep the shapes Maria's UI draws: ``read_file`` gives ``{path, content, start_line,
end_line}`` (``content`` is the lines read, which the UI shows as code) and ``list_files``
gives ``{path, entries: [{name, kind, size, is_hidden}], total_count, file_count,
directory_count}``.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from ...constants import AGENT_LIST_FILES_MAX_ENTRIES, AGENT_READ_FILE_MAX_BYTES, AGENT_READ_FILE_MAX_TOKENS
from ..messages import ToolSpec
from ..tokens import count_text
from .base import ToolContext, ToolError, ToolOutcome, failure, success
from .paths import resolve_inside

READ_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "The file to read, relative to the working directory."},
        "start_line": {
            "type": "number",
            "description": "First line to read (1-based, inclusive). Defaults to 1.",
        },
        "end_line": {
            "type": "number",
            "description": "Last line to read (1-based, inclusive). Defaults to the end of the file.",
        },
    },
    "required": ["path"],
}

READ_DESCRIPTION = (
    "Read a text file, or the lines start_line..end_line of it (1-based, both inclusive). Each line comes "
    f"back numbered as ` L<n> | <text>`. A selection over {AGENT_READ_FILE_MAX_TOKENS} tokens is refused: "
    "read a smaller range then, or find the part you need with search_files first."
)

LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "The directory to list, relative to the working directory."}
    },
    "required": ["path"],
}

LIST_DESCRIPTION = (
    "List the entries of one directory (not recursive): files with their sizes, subdirectories and "
    "symlinks, with counts. Use '.' for the working directory."
)

WRITE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "The file to write, relative to the working directory."},
        "content": {"type": "string", "description": "The text to write."},
        "separator": {
            "type": "string",
            "description": "Put between the file's existing text and the new text when the file is not empty. "
            "Defaults to a newline.",
            "default": "\n",
        },
    },
    "required": ["path", "content"],
}

WRITE_DESCRIPTION = (
    "Write text to a file. A new file is created, with any missing directories. An existing file is NOT "
    "replaced: the text is appended after its content (with `separator` between). To change existing text, "
    "write a new file and move it over the old one with execute_command, or edit it there with a command."
)


def _line_number(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ToolError(f"Error: '{name}' must be a number")
    return int(value)


def split_lines(text: str) -> list[str]:
    """The file's lines; a final newline ends the last line rather than starting an empty one."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


class ReadFile:
    spec = ToolSpec(name="read_file", description=READ_DESCRIPTION, schema=READ_SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        path = args["path"]
        try:
            start = _line_number(args, "start_line")
            end = _line_number(args, "end_line")
            target = resolve_inside(ctx.cwd, path)
            if not target.exists():
                raise ToolError(f"Error reading file: File not found: {path}")
            if target.is_dir():
                raise ToolError(f"Error reading file: Path is a directory: {path}")
            if not target.is_file():
                raise ToolError(f"Error reading file: not a regular file: {path}")
            size = target.stat().st_size
            if size > AGENT_READ_FILE_MAX_BYTES:
                raise ToolError(
                    f"Error: {path} is {size} bytes, too large to read. Find the part you need with search_files, "
                    "or print a slice of it with execute_command (for example `sed -n '100,200p' FILE`)."
                )
            data = target.read_bytes()
        except ToolError as exc:
            return failure(str(exc))
        except OSError as exc:
            return failure(f"Error reading file: {path}: {exc.strerror or exc}")
        if b"\x00" in data[:8192]:
            return failure(f"Error reading file: {path} is a binary file, not text.")
        lines = split_lines(data.decode("utf-8", errors="replace"))
        total = len(lines)
        has_range = start is not None or end is not None
        start = 1 if start is None else start
        if start < 1:
            return failure(f"Error: start_line must be >= 1, got {start}")
        if total == 0:
            if start > 1:
                return failure(f"Error: start_line ({start}) is past the end of the file: {path} is empty")
            return success(f"File: {path} (empty)", {"path": path, "content": "", "start_line": 1, "end_line": 0})
        if start > total:
            return failure(f"Error: start_line ({start}) is past the end of the file ({total} lines)")
        if end is not None and end < start:
            return failure(f"Error: end_line ({end}) must not be before start_line ({start})")
        end = total if end is None else min(end, total)
        selected = lines[start - 1 : end]
        content = "\n".join(selected)
        if count_text(content) > AGENT_READ_FILE_MAX_TOKENS:
            if has_range:
                return failure(
                    f"Error: lines {start}-{end} are still over {AGENT_READ_FILE_MAX_TOKENS} tokens. Read a smaller "
                    "range, or use search_files to find the part you need."
                )
            return failure(
                f"Error: {path} is over {AGENT_READ_FILE_MAX_TOKENS} tokens ({total} lines). Read it in parts with "
                "start_line and end_line, or use search_files to find the part you need."
            )
        width = len(str(end))
        numbered = "\n".join(f" L{number:0{width}d} | {line}" for number, line in enumerate(selected, start))
        text = f"File: {path} (lines {start}-{end} ({len(selected)} lines))\n{numbered}"
        return success(text, {"path": path, "content": content, "start_line": start, "end_line": end})


def _entry_kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


class ListFiles:
    spec = ToolSpec(name="list_files", description=LIST_DESCRIPTION, schema=LIST_SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        path = args["path"]
        try:
            target = resolve_inside(ctx.cwd, path)
            if not target.exists():
                raise ToolError(f"Error listing files: directory not found: {path}")
            if not target.is_dir():
                raise ToolError(f"Error listing files: not a directory: {path}")
            with os.scandir(target) as scan:
                found = sorted(scan, key=lambda entry: entry.name)
        except ToolError as exc:
            return failure(str(exc))
        except OSError as exc:
            return failure(f"Error listing files: {path}: {exc.strerror or exc}")
        entries: list[dict[str, Any]] = []
        lines: list[str] = []
        file_count = directory_count = 0
        for item in found:
            try:
                info = item.stat(follow_symlinks=False)
            except OSError:
                continue
            kind = _entry_kind(info.st_mode)
            file_count += kind == "file"
            directory_count += kind == "directory"
            if len(entries) >= AGENT_LIST_FILES_MAX_ENTRIES:
                continue
            size = info.st_size if kind == "file" else None
            hidden = item.name.startswith(".")
            entries.append({"name": item.name, "kind": kind, "size": size, "is_hidden": hidden})
            lines.append(_entry_line(item, kind, size, hidden))
        total = len(found)
        result = {
            "path": path,
            "entries": entries,
            "total_count": total,
            "file_count": file_count,
            "directory_count": directory_count,
        }
        if total == 0:
            return success(f"Directory: {path} is empty.", result)
        head = (
            f"Directory: {path}\nTotal: {total} items ({file_count} files, {directory_count} directories, "
            f"{total - file_count - directory_count} other)"
        )
        if total > len(entries):
            head += f"; the first {len(entries)} by name are shown"
        return success(head + "\n\n" + "\n".join(lines), result)


def _entry_line(item: os.DirEntry, kind: str, size: int | None, hidden: bool) -> str:
    mark = " [hidden]" if hidden else ""
    if kind == "directory":
        return f"{item.name}/{mark}"
    if kind == "file":
        return f"{item.name} ({size} bytes){mark}"
    if kind == "symlink":
        try:
            target = os.readlink(item.path)
        except OSError:
            target = "?"
        return f"{item.name} -> {target} (symlink){mark}"
    return f"{item.name} (special file){mark}"


class WriteToFile:
    spec = ToolSpec(name="write_to_file", description=WRITE_DESCRIPTION, schema=WRITE_SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        path, content = args["path"], args["content"]
        separator = args.get("separator", "\n")
        if not isinstance(separator, str):
            return failure("Error: 'separator' must be a string")
        try:
            target = resolve_inside(ctx.cwd, path)
            if target.is_dir():
                raise ToolError(f"Error: {path} is a directory")
            if target.exists() and not target.is_file():
                raise ToolError(f"Error: {path} is not a regular file")
            target.parent.mkdir(parents=True, exist_ok=True)
            existing = target.stat().st_size if target.exists() else 0
            with open(target, "a", encoding="utf-8", newline="") as handle:
                handle.write(separator + content if existing else content)
        except ToolError as exc:
            return failure(str(exc))
        except PermissionError:
            return failure(f"Permission denied: cannot write to {target}: the file or its directory is not writable.")
        except OSError as exc:
            return failure(f"Failed to write to file {path}: {exc.strerror or exc}")
        return success(f"Content written to file at path: {target}", {"path": str(target)})

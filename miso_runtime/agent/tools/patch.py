"""``apply_patch``: file edits in the V4A patch format GPT-5.1 and later models are trained to write.

::

    *** Begin Patch
    *** Add File: path          (every following line starts with +)
    *** Delete File: path
    *** Update File: path
    *** Move to: new/path       (optional)
    @@ some line above the change
     context line
    -removed line
    +added line
    *** End of File             (optional: the chunk is at the end of the file)
    *** End Patch

The whole patch is parsed, every path checked (inside the working directory) and every new file
content computed before anything is written, so a patch with one bad hunk changes nothing.
Lines of a chunk are found exactly first, then ignoring trailing whitespace, then ignoring
surrounding whitespace and typographic punctuation (models turn ``-`` into an en dash).
The text the model gets is Maria's JSON: ``{success, message, added, modified, deleted}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..messages import ToolSpec
from .base import ToolContext, ToolError, ToolOutcome, failure, success
from .files import split_lines
from .paths import resolve_inside

BEGIN, END = "*** Begin Patch", "*** End Patch"
ADD, DELETE, UPDATE, MOVE = "*** Add File: ", "*** Delete File: ", "*** Update File: ", "*** Move to: "
END_OF_FILE = "*** End of File"

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "patch": {
            "type": "string",
            "description": "The whole patch, from '*** Begin Patch' to '*** End Patch'.",
        }
    },
    "required": ["patch"],
}

DESCRIPTION = """Edit files with a patch in the V4A format:

*** Begin Patch
*** Add File: <path>        then the new file's lines, each starting with +
*** Delete File: <path>
*** Update File: <path>     optionally followed by: *** Move to: <new path>
@@ <a line just above the change, to place it>
 <unchanged line>
-<removed line>
+<added line>
*** End Patch

An Update File section has one or more chunks, each starting with @@. Give about three unchanged lines
before and after each change so that it is found without doubt. Paths are relative to the working
directory. A patch is applied whole or not at all."""


class PatchError(Exception):
    """The patch is malformed or does not apply; the message tells the model which part."""


@dataclass
class Chunk:
    """One ``@@`` chunk: its lines in order as (kind, text), kind ' ' (kept), '-' or '+'."""

    context: str | None
    ops: list[tuple[str, str]] = field(default_factory=list)
    end_of_file: bool = False

    @property
    def old(self) -> list[str]:
        return [text for kind, text in self.ops if kind != "+"]

    @property
    def new(self) -> list[str]:
        return [text for kind, text in self.ops if kind != "-"]


@dataclass
class Hunk:
    """One file operation: ``add`` (with ``contents``), ``delete``, or ``update`` (with chunks)."""

    action: str
    path: str
    contents: str = ""
    move_to: str | None = None
    chunks: list[Chunk] = field(default_factory=list)


def parse_patch(text: str) -> list[Hunk]:
    lines = [line[:-1] if line.endswith("\r") else line for line in text.strip().split("\n")]
    if len(lines) < 2 or lines[0].strip() != BEGIN:
        raise PatchError(f"Invalid patch: the first line must be '{BEGIN}'")
    if lines[-1].strip() != END:
        raise PatchError(f"Invalid patch: the last line must be '{END}'")
    hunks: list[Hunk] = []
    index, end = 1, len(lines) - 1
    while index < end:
        header = lines[index].strip()
        number = index + 1
        index += 1
        if not header:
            continue
        if header.startswith(ADD):
            body = []
            while index < end and lines[index].startswith("+"):
                body.append(lines[index][1:])
                index += 1
            hunks.append(Hunk("add", _header_path(header, ADD, number), contents="".join(f"{b}\n" for b in body)))
        elif header.startswith(DELETE):
            hunks.append(Hunk("delete", _header_path(header, DELETE, number)))
        elif header.startswith(UPDATE):
            hunk = Hunk("update", _header_path(header, UPDATE, number))
            if index < end and lines[index].strip().startswith(MOVE):
                hunk.move_to = _header_path(lines[index].strip(), MOVE, index + 1)
                index += 1
            index = _parse_chunks(lines, index, end, hunk)
            hunks.append(hunk)
        else:
            raise PatchError(
                f"Invalid hunk at line {number}: '{header}' is not a file header "
                f"('{ADD}<path>', '{DELETE}<path>' or '{UPDATE}<path>')"
            )
    if not hunks:
        raise PatchError("Invalid patch: it changes no file")
    return hunks


def _header_path(header: str, marker: str, number: int) -> str:
    path = header[len(marker) :].strip()
    if not path:
        raise PatchError(f"Invalid hunk at line {number}: '{header}' names no path")
    return path


def _parse_chunks(lines: list[str], index: int, end: int, hunk: Hunk) -> int:
    """Read ``hunk``'s chunks from ``index``; returns where the next file header starts."""
    chunk: Chunk | None = None
    while index < end:
        line = lines[index]
        stripped = line.strip()
        if stripped.startswith("***") and stripped != END_OF_FILE:
            break
        if stripped == END_OF_FILE:
            if chunk is not None:
                chunk.end_of_file = True
            chunk = None
        elif stripped == "@@" or stripped.startswith("@@ "):
            chunk = Chunk(None if stripped == "@@" else (stripped[3:].strip() or None))
            hunk.chunks.append(chunk)
        elif line == "" or line[0] in " +-":
            if chunk is None:
                if not stripped:
                    index += 1
                    continue
                if hunk.chunks:
                    raise PatchError(f"Invalid hunk at line {index + 1}: a chunk must start with '@@'")
                chunk = Chunk(None)
                hunk.chunks.append(chunk)
            chunk.ops.append((line[0], line[1:]) if line else (" ", ""))
        else:
            raise PatchError(
                f"Invalid hunk at line {index + 1}: '{line}' should start with ' ' (unchanged), '-' (removed) "
                "or '+' (added)"
            )
        index += 1
    if not any(chunk.ops for chunk in hunk.chunks):
        raise PatchError(f"Invalid hunk: the update of '{hunk.path}' has no changes")
    return index


_PUNCTUATION = str.maketrans(
    {"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
     "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "}
)  # fmt: skip

_LOOSENESS: tuple[Callable[[str], str], ...] = (
    lambda line: line,
    str.rstrip,
    lambda line: line.strip().translate(_PUNCTUATION),
)


def _find(lines: list[str], wanted: list[str], start: int, at_end: bool) -> int | None:
    """Where ``wanted`` occurs in ``lines`` from ``start`` (at the very end first when ``at_end``)."""
    last = len(lines) - len(wanted)
    if last < 0:
        return None
    for loosen in _LOOSENESS:
        target = [loosen(line) for line in wanted]
        order = [last, *range(start, last + 1)] if at_end else range(start, last + 1)
        for position in order:
            if position >= start and all(loosen(lines[position + k]) == target[k] for k in range(len(wanted))):
                return position
    return None


def _find_context(lines: list[str], context: str, start: int) -> int | None:
    for test in (lambda line: line == context, lambda line: line.strip() == context.strip()):
        for position in range(start, len(lines)):
            if test(lines[position]):
                return position
    stripped = context.strip()
    return next((position for position in range(start, len(lines)) if stripped in lines[position]), None)


def apply_chunks(text: str, chunks: list[Chunk], path: str) -> str:
    """``text`` with ``chunks`` applied in order; PatchError for a chunk whose lines are not there."""
    lines = split_lines(text)
    edits: list[tuple[int, int, list[str]]] = []
    position = 0
    for chunk in chunks:
        anchor = None
        if chunk.context is not None:
            anchor = _find_context(lines, chunk.context, position)
            if anchor is None:
                raise PatchError(f"Failed to apply patch: cannot find the line '{chunk.context}' in {path}")
            position = anchor  # the chunk's own lines may start with the context line itself
        if not chunk.old:
            at = anchor + 1 if anchor is not None else len(lines)
            edits.append((at, 0, chunk.new))
            continue
        ops = chunk.ops
        found = _find(lines, chunk.old, position, chunk.end_of_file)
        if found is None and ops[-1] == (" ", ""):  # a blank line the model added after the chunk
            ops = ops[:-1]
            old = [text for kind, text in ops if kind != "+"]
            if not old:
                edits.append((anchor + 1 if anchor is not None else len(lines), 0, [text for _, text in ops]))
                continue
            found = _find(lines, old, position, chunk.end_of_file)
        if found is None:
            shown = "\n".join(chunk.old)
            raise PatchError(f"Failed to apply patch: these lines are not in {path}:\n{shown}")
        removed = sum(kind != "+" for kind, _ in ops)
        edits.append((found, removed, _replacement(ops, lines[found : found + removed])))
        position = found + removed
    for at, removed, added in sorted(edits, key=lambda edit: edit[0], reverse=True):
        lines[at : at + removed] = added
    return "".join(f"{line}\n" for line in lines)


def _replacement(ops: list[tuple[str, str]], matched: list[str]) -> list[str]:
    """The chunk's new lines, with kept lines taken from the file as it is (they matched loosely)."""
    original = iter(matched)
    result = []
    for kind, text in ops:
        if kind == "+":
            result.append(text)
        else:
            line = next(original)
            if kind == " ":
                result.append(line)
    return result


def _read_text(target: Path, path: str) -> str:
    try:
        return target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PatchError(f"Failed to apply patch: {path} is not UTF-8 text") from exc
    except OSError as exc:
        raise PatchError(f"Failed to apply patch: cannot read {path}: {exc.strerror or exc}") from exc


def plan_patch(hunks: list[Hunk], cwd: Path) -> tuple[dict[Path, str | None], dict[str, list[str]]]:
    """The new content of every file the patch touches (None: deleted), and the summary lists."""
    planned: dict[Path, str | None] = {}
    summary: dict[str, list[str]] = {"added": [], "modified": [], "deleted": []}

    def current(target: Path, path: str) -> str:
        if target in planned:
            content = planned[target]
            if content is None:
                raise PatchError(f"Failed to apply patch: {path} was deleted earlier in this patch")
            return content
        if not target.is_file():
            raise PatchError(f"Failed to apply patch: file not found: {path}")
        return _read_text(target, path)

    for hunk in hunks:
        try:
            target = resolve_inside(cwd, hunk.path)
            destination = resolve_inside(cwd, hunk.move_to) if hunk.move_to else target
        except ToolError as exc:
            raise PatchError(str(exc)) from exc
        for checked, named in ((target, hunk.path), (destination, hunk.move_to or hunk.path)):
            if checked.exists() and not checked.is_file():
                raise PatchError(f"Failed to apply patch: {named} is a directory or special file, not a file")
        if hunk.action == "add":
            planned[target] = hunk.contents
            summary["added"].append(hunk.path)
        elif hunk.action == "delete":
            current(target, hunk.path)
            planned[target] = None
            summary["deleted"].append(hunk.path)
        else:
            updated = apply_chunks(current(target, hunk.path), hunk.chunks, hunk.path)
            if destination != target:
                planned[target] = None
            planned[destination] = updated
            summary["modified"].append(hunk.move_to or hunk.path)
    return planned, summary


def write_planned(planned: dict[Path, str | None]) -> None:
    for target, content in planned.items():
        if content is None:
            target.unlink(missing_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8", newline="")


class ApplyPatch:
    spec = ToolSpec(name="apply_patch", description=DESCRIPTION, schema=SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        try:
            planned, summary = plan_patch(parse_patch(args["patch"]), ctx.cwd)
            write_planned(planned)
        except PatchError as exc:
            return failure(str(exc))
        except OSError as exc:
            return failure(f"Failed to apply patch: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
        lines = ["Success. Updated the following files:"]
        for key, letter in (("added", "A"), ("modified", "M"), ("deleted", "D")):
            lines.extend(f"{letter} {path}" for path in summary[key])
        result = {"success": True, "message": "\n".join(lines), **summary}
        return success(json.dumps(result, indent=2, ensure_ascii=False), result)

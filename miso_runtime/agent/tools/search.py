"""``search_files``: a regular-expression search over the working directory's text files.

Pure Python: files are walked and read here, binary files (a NUL byte, or not UTF-8) and files
over :data:`AGENT_SEARCH_MAX_FILE_BYTES` are skipped, and at most
:data:`AGENT_SEARCH_MAX_RESULTS` matches come back. Patterns run on the ``regex`` module (a
dependency of tiktoken, compatible with ``re``) because it can stop a single match after a
time: a pattern that backtracks without end then costs one second, not the task.

``.gitignore`` is honoured through git itself (``git ls-files --cached --others
--exclude-standard``, which lists exactly the files git does not ignore) when the directory is
in a git work tree; elsewhere every file is searched and the result says so. ``.git`` is never
searched. Maria's MoonBit symbol kinds need MoonBit's IDE and are refused with a clear error.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import regex

from ...constants import (
    AGENT_SEARCH_CONTEXT_LINES,
    AGENT_SEARCH_MATCH_TIMEOUT_S,
    AGENT_SEARCH_MAX_CONTEXT_LINES,
    AGENT_SEARCH_MAX_FILE_BYTES,
    AGENT_SEARCH_MAX_FILES,
    AGENT_SEARCH_MAX_LINE_CHARS,
    AGENT_SEARCH_MAX_RESULTS,
    AGENT_SEARCH_TIMEOUT_S,
)
from ..messages import Cancelled, ToolSpec
from .base import ToolContext, ToolError, ToolOutcome, failure, success
from .files import split_lines
from .paths import resolve_inside

KINDS = ("regex", "moonbit_definition", "moonbit_references")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "path": {
            "type": "string",
            "description": "The directory (searched recursively) or file to search, relative to the working directory.",
        },
        "regex": {"type": "string", "description": "The pattern, in Python regular-expression syntax."},
        "kind": {
            "type": "string",
            "enum": list(KINDS),
            "description": "Use 'regex'. The MoonBit symbol searches are not available here.",
        },
        "file_pattern": {
            "type": "string",
            "description": "Glob on file names, such as '*.py' or '*.{ts,tsx}'. Defaults to '*' (every file).",
            "default": "*",
        },
        "context_lines": {
            "type": "number",
            "description": "Lines shown before and after each match. Defaults to 2.",
            "default": AGENT_SEARCH_CONTEXT_LINES,
        },
        "respect_gitignore": {
            "type": "boolean",
            "description": "Skip the files git ignores (.gitignore and the like). Defaults to true.",
            "default": True,
        },
    },
    "required": ["path", "regex", "kind"],
}

DESCRIPTION = (
    "Search text files for a regular expression: a whole directory tree or one file. Each match comes back "
    "as `path:line` followed by the numbered lines around it. Binary files, the .git directory and, by "
    f"default, files git ignores are skipped; at most {AGENT_SEARCH_MAX_RESULTS} matches are shown. Narrow a "
    "search with `path` and `file_pattern`."
)


@dataclass
class _Scan:
    """What one search went through, for the summary line."""

    files: int = 0
    skipped: int = 0
    stopped: str | None = None
    notes: list[str] = field(default_factory=list)


def expand_braces(pattern: str) -> list[str]:
    """``*.{ts,tsx}`` -> ``*.ts``, ``*.tsx`` (one level, as models write it; fnmatch has no braces)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for choice in match.group(1).split(",") for expanded in expand_braces(head + choice + tail)]


def _matches_pattern(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        if pattern in ("", "*"):
            return True
        if fnmatch.fnmatchcase(name, pattern) or ("/" in pattern and fnmatch.fnmatchcase(relative, pattern)):
            return True
    return False


def _git_listing(directory: Path) -> list[str] | None:
    """The files under ``directory`` git does not ignore, relative to it; None outside a work tree."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=AGENT_SEARCH_TIMEOUT_S,
            env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    names = done.stdout.decode("utf-8", errors="surrogateescape").split("\0")
    return sorted({name for name in names if name})


def _walk(directory: Path) -> Iterator[str]:
    """Every file under ``directory`` (relative paths, sorted), not entering .git or symlinked dirs."""
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(name for name in dirs if name != ".git")
        base = Path(root).relative_to(directory)
        for name in sorted(files):
            yield (base / name).as_posix()


class SearchFiles:
    spec = ToolSpec(name="search_files", description=DESCRIPTION, schema=SCHEMA)

    def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolOutcome:
        path, pattern, kind = args["path"], args["regex"], args["kind"]
        if kind != "regex":
            return failure(
                f"Error: kind '{kind}' needs MoonBit's IDE, which is not available here. Search with kind 'regex'."
            )
        file_pattern = args.get("file_pattern", "*")
        context = args.get("context_lines", AGENT_SEARCH_CONTEXT_LINES)
        respect = args.get("respect_gitignore", True)
        try:
            if not isinstance(file_pattern, str):
                raise ToolError("Error: 'file_pattern' must be a string")
            if isinstance(context, bool) or not isinstance(context, (int, float)):
                raise ToolError("Error: 'context_lines' must be a number")
            if not isinstance(respect, bool):
                raise ToolError("Error: 'respect_gitignore' must be a boolean")
            context = min(max(0, int(context)), AGENT_SEARCH_MAX_CONTEXT_LINES)
            target = resolve_inside(ctx.cwd, path)
            if not target.exists():
                raise ToolError(f"Error: search path not found: {path}")
            try:
                compiled = regex.compile(pattern)
                whole = regex.compile(pattern, regex.MULTILINE) if _prefilter_safe(pattern) else None
            except regex.error as exc:
                raise ToolError(f"Invalid regex pattern: {exc}") from exc
        except ToolError as exc:
            return failure(str(exc))

        scan = _Scan()
        root = ctx.cwd.resolve()
        if target.is_file():
            candidates: list[Path] = [target]
        else:
            candidates = self._candidates(target, root, expand_braces(file_pattern), respect, scan)
        results: list[dict[str, Any]] = []
        total = 0
        deadline = time.monotonic() + AGENT_SEARCH_TIMEOUT_S
        for file in candidates:
            if ctx.cancel.cancelled:
                raise Cancelled()
            if time.monotonic() > deadline:
                scan.stopped = f"the search stopped after {AGENT_SEARCH_TIMEOUT_S:g} s"
                break
            text = self._text(file, scan)
            if text is None:
                continue
            scan.files += 1
            relative = file.relative_to(root).as_posix()
            try:
                if whole is not None and not whole.search(text, timeout=AGENT_SEARCH_MATCH_TIMEOUT_S):
                    continue
            except TimeoutError:
                pass  # look line by line, each line with its own time limit
            lines = split_lines(text)
            for index, line in enumerate(lines):
                try:
                    found = compiled.search(line, timeout=AGENT_SEARCH_MATCH_TIMEOUT_S)
                except TimeoutError:
                    scan.notes.append(f"the pattern took too long on {relative}:{index + 1}; that file was cut short")
                    break
                if not found:
                    continue
                total += 1
                if len(results) < AGENT_SEARCH_MAX_RESULTS:
                    results.append(_match(relative, lines, index, context))
        return self._outcome(path, pattern, file_pattern, context, respect, results, total, scan)

    def _candidates(self, target: Path, root: Path, patterns: list[str], respect: bool, scan: _Scan) -> list[Path]:
        listing = _git_listing(target) if respect else None
        if respect and listing is None:
            scan.notes.append("not in a git work tree, so .gitignore rules were not applied")
        elif respect:
            scan.notes.append("files ignored by git were skipped")
        names = listing if listing is not None else _walk(target)
        chosen: list[Path] = []
        for relative in names:
            if "/.git/" in f"/{relative}":
                continue
            if not _matches_pattern(relative, patterns):
                continue
            if len(chosen) >= AGENT_SEARCH_MAX_FILES:
                scan.stopped = f"only the first {AGENT_SEARCH_MAX_FILES} files were searched"
                break
            file = target / relative
            if file.is_symlink():
                try:
                    resolve_inside(root, str(file))
                except ToolError:
                    continue
            if file.is_file():
                chosen.append(file)
        return chosen

    @staticmethod
    def _text(file: Path, scan: _Scan) -> str | None:
        try:
            if file.stat().st_size > AGENT_SEARCH_MAX_FILE_BYTES:
                scan.skipped += 1
                return None
            data = file.read_bytes()
        except OSError:
            scan.skipped += 1
            return None
        if b"\x00" in data:
            return None
        try:
            return data.decode("utf-8").replace("\r\n", "\n")
        except UnicodeDecodeError:
            return None

    @staticmethod
    def _outcome(
        path: str,
        pattern: str,
        file_pattern: str,
        context: int,
        respect: bool,
        results: list[dict[str, Any]],
        total: int,
        scan: _Scan,
    ) -> ToolOutcome:
        files_with = len({result["path"] for result in results})
        if total == 0:
            message = f"No matches found in {scan.files} files."
        elif total > len(results):
            message = f"Found {total} matches; showing the first {len(results)} (in {files_with} files)."
        else:
            message = f"Found {total} matches in {files_with} files."
        notes = list(scan.notes)
        if scan.skipped:
            notes.append(f"{scan.skipped} files too large or unreadable were skipped")
        if scan.stopped:
            notes.append(scan.stopped)
        if notes:
            message += " Note: " + "; ".join(notes) + "."
        blocks = [message]
        for result in results:
            blocks.append(f"{result['path']}:{result['line_number']}\n{result['context']}")
        data = {
            "kind": "regex",
            "query": pattern,
            "path": path,
            "file_pattern": file_pattern,
            "context_lines": context,
            "respect_gitignore": respect,
            "total_matches": total,
            "results": results,
            "truncated": total > len(results) or scan.stopped is not None,
            "message": message,
        }
        return success("\n\n".join(blocks), data)


def _prefilter_safe(pattern: str) -> bool:
    """Whether a file with no match of ``pattern`` over its whole text can have no matching line.

    With MULTILINE, ``^``/``$`` match at line ends, so a line's match is also a match in the
    whole text, except for anchors that mean "start/end of the string" (``\\A``, ``\\Z``, ``\\z``).
    Files that pass are searched line by line, so matches that span lines are never reported.
    """
    return not re.search(r"\\[AZz]", pattern)


def _clip(line: str) -> str:
    if len(line) <= AGENT_SEARCH_MAX_LINE_CHARS:
        return line
    return line[:AGENT_SEARCH_MAX_LINE_CHARS] + f" ... ({len(line) - AGENT_SEARCH_MAX_LINE_CHARS} more characters)"


def _match(relative: str, lines: list[str], index: int, context: int) -> dict[str, Any]:
    first, last = max(0, index - context), min(len(lines), index + context + 1)
    shown = "\n".join(f"{number + 1}: {_clip(lines[number])}" for number in range(first, last))
    return {"path": relative, "line_number": index + 1, "match_line": _clip(lines[index]), "context": shown}

"""What a workspace changed, for the dashboard's diff page and for the tools it opens.

Three answers of the schmux contract live here (the agents worker runs them; no HTTP):

- :func:`diff_files`: the ``files`` of ``GET /api/diff/{id}``, every change of the worktree
  against ``HEAD`` (staged and unstaged together) plus the untracked files, with the old and new
  text of each capped at :data:`~miso_runtime.constants.GITOPS_DIFF_CONTENT_MAX_BYTES`.
- :class:`ExternalDiffRunner`: ``POST /api/diff-external/{id}``, which writes each changed
  file's ``HEAD`` version to a temp folder and starts the user's diff command on it.
- :func:`find_vscode` and :func:`launch_detached`: ``POST /api/open-vscode/{id}``.

The statuses follow schmux's code (``internal/dashboard/handlers.go`` at ``b21137fd``), quirks
included, because its dashboard was built against them: a file whose ``HEAD`` text is empty is
``added``, and a deleted text file is ``modified`` with only ``old_content`` (git's numstat
counts its lines as removed; schmux's ``deleted`` branch needs a ``-`` that text never has).
One difference: schmux asks for ``--diff-filter=ADM``, which drops renamed files from the
answer altogether; here a rename is one entry with ``old_path``, ``new_path``, both texts and
status ``renamed``, which the diff page shows under its new name.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Iterable, Sequence

import git

from .. import constants
from .workspaces import run_git

logger = logging.getLogger(__name__)

#: The read commands run with ``--no-optional-locks``: a diff never takes ``index.lock`` from
#: under the agent working in the same checkout.
_READ = ("--no-optional-locks",)
#: Paths handed to one ``git check-attr`` (a command line has a length limit).
_CHECK_ATTR_BATCH = 500
#: Escape sequences an interactive shell may print around ``command -v`` (prompt integrations).
_ESCAPES = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b\[[0-9;]*[A-Za-z]")


class Deadline:
    """One time budget shared by several git commands: each gets what is left of it.

    ``None`` means no limit (the config's timeout of 0). When the budget is spent the next
    command still gets a moment, and fails on its own timeout.
    """

    def __init__(self, total_s: float | None) -> None:
        self._end = None if total_s is None else time.monotonic() + total_s

    def left(self) -> float | None:
        if self._end is None:
            return None
        return max(0.1, self._end - time.monotonic())


def git_read(args: Sequence[str], root: Path, deadline: Deadline) -> str | None:
    """Stdout of a read-only git command in ``root``, ``None`` when it fails (schmux treats a
    failed diff as no changes)."""
    return run_git([*_READ, *args], root, timeout_s=deadline.left(), check=False)


def as_text(data: bytes | None) -> str:
    """Bytes as the contract's text: invalid UTF-8 becomes U+FFFD, as Go's JSON encoder does."""
    return data.decode("utf-8", "replace") if data else ""


# --- reading both sides ---------------------------------------------------------------------


class HeadFiles:
    """The files of ``HEAD``, read through GitPython's one ``git cat-file`` process.

    One process for every file of a diff, where ``git show HEAD:<path>`` per file would start
    hundreds. A workspace without commits has no ``HEAD``: every read answers ``None``.
    """

    def __init__(self, root: Path) -> None:
        self._repo: git.Repo | None = None
        self._tree: Any = None
        try:
            self._repo = git.Repo(root)
            self._tree = self._repo.head.commit.tree
        except Exception as exc:  # noqa: BLE001 - no HEAD yet, or not a checkout: nothing to read
            logger.debug("no HEAD tree in %s: %s", root, exc)

    def __enter__(self) -> "HeadFiles":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
            self._repo = None

    def _blob(self, path: str) -> Any:
        if self._tree is None:
            return None
        try:
            item = self._tree / path
        except (KeyError, TypeError, ValueError):
            return None
        return item if getattr(item, "type", None) == "blob" else None

    def read(self, path: str, limit: int) -> bytes | None:
        """The first ``limit`` bytes of ``HEAD:<path>``; ``None`` when ``HEAD`` has no such file."""
        blob = self._blob(path)
        if blob is None:
            return None
        try:
            return blob.data_stream.read(limit)
        except Exception as exc:  # noqa: BLE001 - a broken object reads as no file, as git show failing
            logger.warning("could not read HEAD:%s: %s", path, exc)
            return None

    def copy_to(self, path: str, target: BinaryIO) -> bool:
        """Write the whole of ``HEAD:<path>`` to ``target``; ``False`` when there is no such file."""
        blob = self._blob(path)
        if blob is None:
            return False
        try:
            shutil.copyfileobj(blob.data_stream, target)
        except Exception as exc:  # noqa: BLE001 - a broken object is a file the tool cannot show
            logger.warning("could not copy HEAD:%s: %s", path, exc)
            return False
        return True


def read_worktree(root: Path, path: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of a worktree file as git sees it; ``None`` when there is none.

    A symbolic link is its target's name (what git stores for it), never the file it points
    to, so a link to ``/etc/passwd`` does not put that file in an answer; a path whose folder
    leads out of the worktree through a link is not read at all.
    """
    full = root / path
    try:
        if full.is_symlink():
            return os.fsencode(os.readlink(full))[:limit]
        base = root.resolve()
        parent = full.parent.resolve()
        if parent != base and base not in parent.parents:
            return None
        with open(full, "rb") as handle:
            return handle.read(limit)
    except (OSError, ValueError):
        return None


def _count_lines(text: str) -> int:
    """Lines of an untracked file as schmux counts them: newlines, plus one for a last unended line."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


# --- the diff -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumstatEntry:
    """One line of ``git diff --numstat -z``: counts (``-`` for binary) and the path(s)."""

    added: str
    removed: str
    path: str
    #: The path in ``HEAD`` of a renamed file.
    old_path: str | None = None

    @property
    def binary(self) -> bool:
        return self.added == "-" and self.removed == "-"

    @property
    def lines_added(self) -> int:
        return int(self.added) if self.added.isdigit() else 0

    @property
    def lines_removed(self) -> int:
        return int(self.removed) if self.removed.isdigit() else 0


def parse_numstat_z(text: str) -> list[NumstatEntry]:
    """Entries of ``git diff --numstat -z``; a rename is ``A\\tR\\t\\0old\\0new\\0``."""
    fields = text.split("\0")
    entries: list[NumstatEntry] = []
    i = 0
    while i < len(fields):
        parts = fields[i].split("\t", 2)
        i += 1
        if len(parts) < 3:
            continue
        added, removed, path = parts
        if path:
            entries.append(NumstatEntry(added, removed, path))
        elif i + 1 < len(fields):
            entries.append(NumstatEntry(added, removed, fields[i + 1], old_path=fields[i]))
            i += 2
    return entries


def _file(
    *,
    new_path: str,
    old_path: str | None = None,
    old_content: str = "",
    new_content: str = "",
    status: str,
    lines_added: int = 0,
    lines_removed: int = 0,
    is_binary: bool = False,
) -> dict[str, Any]:
    """A ``files`` item with schmux's key order; empty strings are left out (``omitempty``)."""
    item: dict[str, Any] = {}
    for key, value in (
        ("old_path", old_path),
        ("new_path", new_path),
        ("old_content", old_content),
        ("new_content", new_content),
        ("status", status),
    ):
        if value:
            item[key] = value
    item.update(lines_added=lines_added, lines_removed=lines_removed, is_binary=is_binary)
    return item


def _tracked_item(entry: NumstatEntry, root: Path, head: HeadFiles, limit: int) -> dict[str, Any]:
    if entry.binary:
        if entry.old_path is not None:
            return _file(old_path=entry.old_path, new_path=entry.path, status="renamed", is_binary=True)
        status = "modified" if head.read(entry.path, limit) else "added"
        return _file(new_path=entry.path, status=status, is_binary=True)
    counts = {"lines_added": entry.lines_added, "lines_removed": entry.lines_removed}
    if entry.added == "-":  # schmux's "deleted" branch; git prints "-" only with a binary side
        return _file(new_path=entry.path, old_content=as_text(head.read(entry.path, limit)), status="deleted", **counts)
    old = as_text(head.read(entry.old_path or entry.path, limit))
    new = as_text(read_worktree(root, entry.path, limit))
    if entry.old_path is not None:
        status = "renamed"
    else:
        status = "modified" if old else "added"
    return _file(
        old_path=entry.old_path, new_path=entry.path, old_content=old, new_content=new, status=status, **counts
    )


def _diff_unset(root: Path, paths: Sequence[str], deadline: Deadline) -> set[str]:
    """Paths whose ``.gitattributes`` turn text diffs off (``-diff``, ``binary``): git calls them binary."""
    unset: set[str] = set()
    for start in range(0, len(paths), _CHECK_ATTR_BATCH):
        batch = paths[start : start + _CHECK_ATTR_BATCH]
        out = git_read(["check-attr", "-z", "diff", "--", *batch], root, deadline) or ""
        fields = out.split("\0")
        for i in range(0, len(fields) - 2, 3):
            if fields[i + 2] == "unset":
                unset.add(fields[i])
    return unset


def _looks_binary(root: Path, path: str) -> bool:
    """Git's own test: a NUL among the first 8000 bytes."""
    head = read_worktree(root, path, constants.GITOPS_BINARY_SNIFF_BYTES)
    return bool(head) and b"\0" in head


def diff_files(
    root: Path, deadline: Deadline, limit: int = constants.GITOPS_DIFF_CONTENT_MAX_BYTES
) -> list[dict[str, Any]]:
    """The ``files`` of ``GET /api/diff``: changes against ``HEAD``, then untracked files."""
    numstat = git_read(["diff", "HEAD", "--numstat", "-z", "--find-renames", "--diff-filter=ADMR"], root, deadline)
    files: list[dict[str, Any]] = []
    with HeadFiles(root) as head:
        for entry in parse_numstat_z(numstat or ""):
            files.append(_tracked_item(entry, root, head, limit))
    listed = git_read(["ls-files", "--others", "--exclude-standard", "-z"], root, deadline)
    untracked = [path for path in (listed or "").split("\0") if path]
    binary_by_attributes = _diff_unset(root, untracked, deadline) if untracked else set()
    for path in untracked:
        if path in binary_by_attributes or _looks_binary(root, path):
            files.append(_file(new_path=path, status="untracked", is_binary=True))
            continue
        text = as_text(read_worktree(root, path, limit))
        files.append(_file(new_path=path, new_content=text, status="untracked", lines_added=_count_lines(text)))
    return files


# --- the external diff tool -----------------------------------------------------------------


@dataclass(frozen=True)
class ToolFile:
    """A change the diff tool is started on: ``modified``, ``deleted``, ``renamed`` or ``added``."""

    path: str
    status: str
    old_path: str | None = None


_NAME_STATUS = {"M": "modified", "D": "deleted", "A": "added", "R": "renamed"}


def parse_name_status_z(text: str) -> list[ToolFile]:
    """Entries of ``git diff --name-status -z``: ``M\\0path\\0``, renames ``R100\\0old\\0new\\0``."""
    fields = text.split("\0")
    changes: list[ToolFile] = []
    i = 0
    while i + 1 < len(fields):
        code, i = fields[i], i + 1
        status = _NAME_STATUS.get(code[:1])
        if status is None:
            continue
        if status == "renamed":
            if i + 1 >= len(fields):
                break
            changes.append(ToolFile(fields[i + 1], status, old_path=fields[i]))
            i += 2
        else:
            changes.append(ToolFile(fields[i], status))
            i += 1
    return changes


def launch_detached(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    """Start ``argv`` in a process group of its own and do not wait for it.

    A GUI tool runs for as long as its window is open, and must outlive a worker restart; a
    thread reaps it when it exits, so it never lingers as a zombie. ``OSError`` when it cannot
    start.
    """
    process = subprocess.Popen(
        list(argv),
        cwd=str(cwd),
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    threading.Thread(target=process.wait, name=f"reap-{process.pid}", daemon=True).start()


def _placeholders(command: str, old_file: str, new_file: str, file: str) -> str:
    return command.replace("{old_file}", old_file).replace("{new_file}", new_file).replace("{file}", file)


class ExternalDiffRunner:
    """Starts a diff tool per changed file on a ``HEAD`` copy, and removes the copies later.

    Each call gets its own temp folder ``<tmp>/miso-difftool-<workspace>-XXXX``; a timer removes
    it after the cleanup delay (the tool has read the files by then). Timers die with the worker,
    so :meth:`sweep` at start removes folders whose time is up and schedules the rest.
    """

    def __init__(self, temp_dir: Path | None = None) -> None:
        self._temp_dir = Path(temp_dir or tempfile.gettempdir())

    def sweep(self, cleanup_after_s: float) -> None:
        """Remove the temp folders older than ``cleanup_after_s``; schedule the others' removal."""
        now = time.time()
        for folder in self._temp_dir.glob(f"{constants.GITOPS_DIFFTOOL_TEMP_PREFIX}*"):
            try:
                age = now - folder.stat().st_mtime
            except OSError:
                continue
            self._remove_after(folder, max(0.0, cleanup_after_s - age))

    @staticmethod
    def _remove_after(folder: Path, delay_s: float) -> None:
        timer = threading.Timer(delay_s, shutil.rmtree, args=(folder,), kwargs={"ignore_errors": True})
        timer.daemon = True
        timer.start()

    def open(
        self, workspace_id: str, root: Path, command: str, cleanup_after_s: float, deadline: Deadline
    ) -> dict[str, Any]:
        """Start ``command`` (``sh -c``) for each modified, deleted or renamed file; the route's answer.

        Added files are skipped, as schmux does (a tool has nothing to compare them with). The
        command sees ``LOCAL`` (the ``HEAD`` copy), ``REMOTE`` (the worktree file, empty for a
        deleted one), ``MERGED`` and ``BASE`` (the worktree path), and the placeholders
        ``{old_file}``, ``{new_file}`` and ``{file}`` are replaced by the same paths.
        """
        listed = git_read(
            ["diff", "HEAD", "--name-status", "-z", "--find-renames", "--diff-filter=ADMR"], root, deadline
        )
        changes = parse_name_status_z(listed or "")
        if not changes:
            return {"success": False, "message": "No changes to diff"}
        if not command.strip():
            return {"success": False, "message": "Invalid command"}
        try:
            folder = Path(
                tempfile.mkdtemp(prefix=f"{constants.GITOPS_DIFFTOOL_TEMP_PREFIX}{workspace_id}-", dir=self._temp_dir)
            )
        except OSError as exc:
            logger.warning("diff-external: no temp folder: %s", exc)
            return {"success": False, "message": "Failed to create temp dir for diff"}
        opened = 0
        with HeadFiles(root) as head:
            for change in changes:
                if change.status != "added" and self._start_one(change, root, folder, command, head):
                    opened += 1
        if opened == 0:
            shutil.rmtree(folder, ignore_errors=True)
            return {"success": False, "message": "No modified or deleted files to diff"}
        self._remove_after(folder, cleanup_after_s)
        logger.info("diff-external: started %d diff(s) for workspace %s", opened, workspace_id)
        return {"success": True, "message": f"Opened {opened} files in external diff tool"}

    @staticmethod
    def _start_one(change: ToolFile, root: Path, folder: Path, command: str, head: HeadFiles) -> bool:
        old_path = change.old_path or change.path
        copy = folder / old_path
        try:
            copy.parent.mkdir(parents=True, exist_ok=True)
            with open(copy, "wb") as target:
                written = head.copy_to(old_path, target)
        except OSError as exc:
            logger.warning("diff-external: could not write the HEAD copy of %s: %s", old_path, exc)
            return False
        if not written:
            copy.unlink(missing_ok=True)
            return False
        merged = str(root / change.path)
        remote = "" if change.status == "deleted" else merged
        env = {"LOCAL": str(copy), "REMOTE": remote, "MERGED": merged, "BASE": merged}
        try:
            launch_detached(["sh", "-c", _placeholders(command, str(copy), remote, merged)], root, env)
        except OSError as exc:
            logger.warning("diff-external: could not start the diff tool: %s", exc)
            return False
        return True


# --- VS Code --------------------------------------------------------------------------------


def vscode_missing_message() -> str:
    """schmux's 404 text when ``code`` cannot be found (the shortcut of this platform)."""
    shortcut = "Cmd+Shift+P" if sys.platform == "darwin" else "Ctrl+Shift+P"
    return (
        "VS Code command not found\n\nTo fix this:\n"
        f"Open VS Code, press {shortcut}, then run: Shell Command: Install 'code' command in PATH"
    )


def _from_shell_output(output: str, name: str) -> str | None:
    """A command's path from ``command -v`` output: a path, or the target of an alias."""
    result = _ESCAPES.sub("", output).strip()
    if not result or result == name:
        return None
    if result.startswith("alias "):
        result = result.partition("=")[2].strip("'\"") or result
    elif ": aliased to " in result:
        result = result.split(": aliased to ", 1)[1].strip()
    if not os.path.isabs(result):
        return shutil.which(result)
    return result if os.path.isfile(result) else None


def find_vscode(
    timeout_s: float = constants.GITOPS_VSCODE_LOOKUP_TIMEOUT_S, known: Iterable[str] | None = None
) -> str | None:
    """VS Code's ``code``: on PATH, else as the user's shells know it (aliases too), else where
    it is usually installed; ``None`` when it is nowhere."""
    found = shutil.which("code")
    if found:
        return found
    end = time.monotonic() + timeout_s
    for shell in ("zsh", "bash", "sh"):
        left = end - time.monotonic()
        if left <= 0:
            break
        if shutil.which(shell) is None:
            continue
        # -i loads the rc files where aliases are defined; plain sh has none to load.
        argv = [shell, "-c", "command -v code"] if shell == "sh" else [shell, "-i", "-c", "command -v code"]
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=left,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            path = _from_shell_output(done.stdout, "code")
            if path:
                return path
    locations = known if known is not None else constants.GITOPS_VSCODE_KNOWN_LOCATIONS.get(sys.platform, ())
    for location in locations:
        candidate = os.path.expanduser(location)
        if os.path.isfile(candidate):
            return candidate
    return None

"""Overlays: files a user keeps outside git (``.env``, local settings) and wants in every workspace.

Each configured repo has an overlay folder, ``<data dir>/overlays/<repo name>``. Its files are
copied into a workspace of that repo (``POST /api/workspaces/{id}/refresh-overlay``), but only the
ones git ignores at their place in the workspace: an overlay must never change a tracked file or
add something a commit would pick up. Those are skipped with a warning in the log. Directories are
made as the overlay has them; symlinks are copied as symlinks; a repo without an overlay folder
has nothing to copy. ``GET /api/overlays`` lists the folders and how many files each holds.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any, Callable

from ..errors import MisoError
from .linear_sync import run_git_command
from .workspaces import WorkspaceError, normalize_repo

logger = logging.getLogger(__name__)


class OverlayError(Exception):
    """A refresh that could not be done; the message is the route's ``{"error"}``."""


def count_files(root: Path) -> int:
    """Entries that are not directories under ``root`` (symlinks count; links to folders are not followed)."""
    total = 0
    for _dirpath, dirnames, filenames in os.walk(root):
        # os.walk lists a symlink to a directory among dirnames but does not enter it: count it.
        total += len(filenames) + sum(1 for d in dirnames if os.path.islink(os.path.join(_dirpath, d)))
    return total


def _overlay_entries(root: Path) -> tuple[list[str], list[str]]:
    """``(directories, files)`` under ``root`` as relative POSIX paths; symlinks are files."""
    directories: list[str] = []
    files: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        for name in sorted(dirnames):
            rel = (base / name).as_posix()
            (files if os.path.islink(os.path.join(dirpath, name)) else directories).append(rel)
        files.extend((base / name).as_posix() for name in sorted(filenames))
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
    return directories, files


def ignored_paths(workspace: Path, paths: list[str], timeout_s: float | None) -> set[str]:
    """Which of ``paths`` (relative to ``workspace``) git ignores there (``git check-ignore``).

    A tracked file is never "ignored", whatever ``.gitignore`` says, so it is never overwritten.
    """
    if not paths:
        return set()
    result = run_git_command(
        ["check-ignore", "-z", "--stdin"], workspace, timeout_s, input_text="\0".join(paths) + "\0"
    )
    if result.code not in (0, 1):  # 1: none of them is ignored
        raise OverlayError(f"git check-ignore failed: {result.output or f'exit status {result.code}'}")
    return {name for name in result.out.split("\0") if name}


def copy_overlay(source: Path, workspace: Path, timeout_s: float | None) -> tuple[list[str], list[str]]:
    """Copy the ignored files of ``source`` into ``workspace``; ``(copied, skipped)`` relative paths."""
    directories, files = _overlay_entries(source)
    ignored = ignored_paths(workspace, files, timeout_s)
    root = workspace.resolve()
    for rel in directories:
        try:
            (workspace / rel).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OverlayError(f"failed to create directory {workspace / rel}: {exc}") from None
    copied: list[str] = []
    skipped: list[str] = []
    for rel in files:
        if rel not in ignored:
            logger.warning("overlay: skipping %s (not ignored by git in %s)", rel, workspace)
            skipped.append(rel)
            continue
        src, dest = source / rel, workspace / rel
        if not dest.parent.resolve().is_relative_to(root):
            logger.warning("overlay: skipping %s (its folder leads out of the workspace)", rel)
            skipped.append(rel)
            continue
        try:
            if dest.is_symlink() or (src.is_symlink() and dest.exists() and not dest.is_dir()):
                dest.unlink()  # never write through a link, and replace a file by a link
            if src.is_symlink():
                os.symlink(os.readlink(src), dest)
            else:
                shutil.copyfile(src, dest)
                shutil.copymode(src, dest)
        except OSError as exc:
            raise OverlayError(f"failed to copy {src} to {dest}: {exc}") from None
        copied.append(rel)
    return copied, skipped


class Overlays:
    """The overlay routes' work: folders under ``root``, one per configured repo name."""

    def __init__(self, backend: Any, root: Path) -> None:
        self.backend = backend
        self.root = Path(root).expanduser().resolve()

    def dir_for(self, repo_name: str) -> Path:
        return self.root / repo_name

    def list(self) -> dict[str, Any]:
        """``GET /api/overlays``: one entry per configured repo."""
        overlays = []
        for repo in self.backend.config.repos:
            folder = self.dir_for(repo.name)
            exists = folder.is_dir()
            overlays.append(
                {
                    "repo_name": repo.name,
                    "path": str(folder),
                    "exists": exists,
                    "file_count": count_files(folder) if exists else 0,
                }
            )
        return {"overlays": overlays}

    def _repo_name(self, repo_url: str) -> str:
        try:
            wanted = normalize_repo(repo_url)
        except WorkspaceError:
            wanted = repo_url
        for repo in self.backend.config.repos:
            try:
                if normalize_repo(repo.url) == wanted:
                    return repo.name
            except WorkspaceError:
                continue
        raise OverlayError(f"repo URL not found in config: {repo_url}")

    def refresh(self, workspace_id: str) -> dict[str, Any]:
        """``POST .../refresh-overlay``: copy the repo's overlay into the workspace again; 400 ``{"error"}``."""
        try:
            ws = self.backend.workspaces.get(workspace_id)
        except MisoError:
            return {"status": 400, "body": {"error": f"workspace not found: {workspace_id}"}}
        try:
            folder = self.dir_for(self._repo_name(ws.repo))
        except OverlayError as exc:
            return {"status": 400, "body": {"error": str(exc)}}
        try:
            if not folder.is_dir():
                logger.info("no overlay folder %s for workspace %s; nothing to copy", folder, workspace_id)
                return {"status": 200, "body": {"status": "ok"}}
            timeout_s = self.backend.config.xterm.operation_timeout_ms / 1000 or None
            with self.backend.locks.hold(workspace_id):
                copied, skipped = copy_overlay(folder, Path(ws.path), timeout_s)
        except OverlayError as exc:
            logger.warning("refresh-overlay of %s failed: %s", workspace_id, exc)
            return {"status": 400, "body": {"error": f"failed to copy overlay files: {exc}"}}
        self.backend.changed(workspace_id)
        logger.info("overlay of %s refreshed: %d copied, %d skipped", workspace_id, len(copied), len(skipped))
        return {"status": 200, "body": {"status": "ok"}}

    def methods(self) -> dict[str, Callable[..., Any]]:
        return {"overlays_list": self.list, "overlays_refresh": self.refresh}

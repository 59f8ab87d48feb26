"""The one rule for every path a tool is given: it must stay inside the task's working directory.

A relative path is taken from the cwd; an absolute one is accepted when it lies inside it. The
path is resolved (``..`` folded, every symlink on the way followed, the last one too) before the
check, so neither ``../x``, nor ``/etc/passwd``, nor a link inside the cwd whose target is
outside, nor a file under a linked directory that points out, gets through. The check runs
before the tool reads or writes anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import ToolError


def resolve_inside(cwd: Path, raw: str, *, what: str = "path") -> Path:
    """The resolved absolute path of ``raw``, or :class:`ToolError` when it leaves ``cwd``.

    ``~`` at the start means the home directory (models write it), which is then refused
    unless the cwd contains it. The returned path may not exist.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError(f"Error: '{what}' must be a non-empty path")
    if "\x00" in raw:
        raise ToolError(f"Error: '{what}' contains a NUL character")
    root = cwd.resolve()
    text = os.path.expanduser(raw) if raw.startswith("~") else raw
    candidate = Path(text)
    if not candidate.is_absolute():
        candidate = root / candidate
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise ToolError(f"Error: cannot resolve {what} '{raw}': {exc}") from exc
    if resolved != root and not resolved.is_relative_to(root):
        raise ToolError(
            f"Error: {what} '{raw}' is outside the working directory {root}; "
            "only files inside it can be used (symlinks are followed before this check)"
        )
    return resolved

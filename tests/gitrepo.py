"""Real git repositories for the agents tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: An author for commits made by tests (CI machines have no global git identity).
GIT_ID = ["-c", "user.email=test@example.com", "-c", "user.name=Test"]


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *GIT_ID, *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def bare_remote(root: Path, name: str) -> Path:
    """``root/<name>.git``: a bare repository with one commit (README.md) on ``main``."""
    source = root / "source"
    git("init", "-q", "-b", "main", str(source))
    (source / "README.md").write_text("hello\n")
    git("add", ".", cwd=source)
    git("commit", "-qm", "first", cwd=source)
    bare = root / f"{name}.git"
    git("clone", "-q", "--bare", str(source), str(bare))
    return bare

"""Git status of one workspace, and a cache that keeps it off the request path.

Computing a status runs up to seven git commands (the two worktree walks side by side) and reads
untracked files: tens of milliseconds on a small repo, seconds on a big one. ``GET /api/sessions``
must answer at once, so a caller asks :class:`StatusCache` for the last value and the cache
recomputes it in one background thread, at most once per poll interval per workspace.

What the numbers mean (the same in worktree and clone workspaces):

- ``base``: the default branch of origin, ``refs/remotes/origin/HEAD`` as a short name
  (``origin/main``); empty when the workspace has none (then only uncommitted work is counted).
- ``ahead`` / ``behind``: commits on ``HEAD`` not on the base, and on the base not on ``HEAD``
  (``git rev-list --left-right --count HEAD...<base>``), as of the last fetch.
- ``lines_added`` / ``lines_removed`` / ``files_changed``: everything this workspace would change
  on the base if its work were committed and merged now, i.e. ``git diff --numstat <merge-base>``
  (the merge base of ``HEAD`` and the base against the *working tree*: commits, staged and
  unstaged edits of tracked files together; a rename is one file) plus every untracked file that
  is not ignored (one file each, all its lines added). Binary files count as a file with no lines;
  untracked files over :data:`~miso_runtime.constants.GIT_STATUS_UNTRACKED_MAX_BYTES` too.
- ``dirty``: ``git status`` lists anything (uncommitted changes or untracked files).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generic, Protocol, Sequence, TypeVar

from .. import constants
from .concurrent_calls import concurrently, in_turn

logger = logging.getLogger(__name__)

V = TypeVar("V")

#: Bytes git itself inspects to decide that a file is binary (a NUL among them).
_BINARY_SNIFF_BYTES = 8000


class GitRun(Protocol):
    """Runs ``git <args>`` in ``cwd`` and returns its stdout.

    With ``check=False`` a non-zero exit returns ``None`` instead of raising, for the questions
    whose "no" is an exit status (``merge-base`` of unrelated histories, ``symbolic-ref`` of a
    missing ref).
    """

    def __call__(self, args: Sequence[str], cwd: Path, *, check: bool = True) -> str | None: ...


@dataclass(frozen=True)
class GitStatus:
    """The git state of one workspace at ``computed_at`` (Unix seconds). See the module docstring."""

    branch: str
    base: str
    ahead: int
    behind: int
    lines_added: int
    lines_removed: int
    files_changed: int
    dirty: bool
    #: Whether ``origin/<branch>`` exists (the dashboard links the branch only then).
    remote_branch_exists: bool = False
    #: Whether ``HEAD`` is exactly ``origin/<branch>`` (schmux's ``commits_synced_with_remote``).
    synced_with_remote: bool = False
    computed_at: float = field(default_factory=time.time)

    @property
    def default_branch(self) -> str:
        """The remote's default branch (``main`` of ``origin/main``), ``""`` without a remote HEAD."""
        return self.base.removeprefix("origin/")

    def to_contract(self) -> dict[str, int]:
        """The ``git_*`` fields of a workspace in ``GET /api/sessions``."""
        return {
            "git_ahead": self.ahead,
            "git_behind": self.behind,
            "git_lines_added": self.lines_added,
            "git_lines_removed": self.lines_removed,
            "git_files_changed": self.files_changed,
        }


def parse_numstat(text: str) -> tuple[int, int, int]:
    """``(added, removed, files)`` of ``git diff --numstat`` output; binary files (``-``) add no lines."""
    added = removed = files = 0
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) < 3:
            continue
        files += 1
        added += int(parts[0]) if parts[0].isdigit() else 0
        removed += int(parts[1]) if parts[1].isdigit() else 0
    return added, removed, files


def parse_porcelain_z(text: str) -> tuple[list[str], list[str]]:
    """``(changed, untracked)`` paths of ``git status --porcelain=v1 -z`` output.

    Each entry is ``XY path``; a rename or copy is followed by one more NUL-separated field,
    its original path, which is not a separate entry.
    """
    changed: list[str] = []
    untracked: list[str] = []
    fields = text.split("\0")
    i = 0
    while i < len(fields):
        entry = fields[i]
        i += 1
        if len(entry) < 4:
            continue
        code, path = entry[:2], entry[3:]
        if code == "??":
            untracked.append(path)
            continue
        changed.append(path)
        if "R" in code or "C" in code:
            i += 1
    return changed, untracked


def count_text_lines(path: Path, max_bytes: int) -> int:
    """Lines of a text file as git would count them added; 0 for binary, oversized or unreadable files."""
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return 0
        data = path.read_bytes()
    except OSError:
        return 0
    if b"\0" in data[:_BINARY_SNIFF_BYTES] or not data:
        return 0
    return data.count(b"\n") + (0 if data.endswith(b"\n") else 1)


class GitAsk(Protocol):
    """``git(*args)`` in one checkout, read-only: stdout, or ``None`` on failure with ``check=False``."""

    def __call__(self, *args: str, check: bool = True) -> str | None: ...


@dataclass(frozen=True)
class RemoteRefs:
    """What ``refs/remotes/origin/`` says about a checkout, from one ``git for-each-ref``."""

    #: ``refs/remotes/origin/HEAD``'s target (``refs/remotes/origin/main``) when it resolves, else ``""``.
    default_ref: str
    #: The commit ``default_ref`` is at (``""`` with it).
    default_commit: str
    #: Branch name -> commit, for the branches asked about that origin has.
    heads: dict[str, str]

    @property
    def default_branch(self) -> str:
        return self.default_ref.removeprefix("refs/remotes/origin/")


def read_head(git: GitAsk, *, check: bool = True) -> tuple[str, str]:
    """``(commit, branch)`` of ``HEAD`` in one command; the branch is ``"HEAD"`` when detached.

    Where ``HEAD`` has no commit yet: raises as ``git`` does with ``check``, else ``("", "")``.
    """
    out = (git("rev-parse", "HEAD", "--abbrev-ref", "HEAD", check=check) or "").split()
    return (out[0], out[1]) if len(out) == 2 else ("", "")


def remote_refs(git: GitAsk, *branches: str) -> RemoteRefs:
    """origin's default branch and the heads of ``branches`` on origin, in one command."""
    wanted = [name for name in branches if name and name != "HEAD"]
    patterns = ["refs/remotes/origin/HEAD", *(f"refs/remotes/origin/{name}" for name in wanted)]
    listed = git("for-each-ref", "--format=%(refname)%09%(objectname)%09%(symref)", *patterns, check=False)
    default_ref = default_commit = ""
    heads: dict[str, str] = {}
    for line in (listed or "").splitlines():
        refname, _, rest = line.partition("\t")
        commit, _, target = rest.partition("\t")
        if not commit:
            continue  # a dangling symbolic ref
        if refname == "refs/remotes/origin/HEAD":
            default_ref, default_commit = target, commit
        else:
            name = refname.removeprefix("refs/remotes/origin/")
            if name in wanted:  # for-each-ref also matches refs below a pattern (feature/x for feature)
                heads[name] = commit
    return RemoteRefs(default_ref, default_commit, heads)


def compute_git_status(
    path: Path,
    run: GitRun,
    *,
    side_by_side: bool = True,
    untracked_max_bytes: int = constants.GIT_STATUS_UNTRACKED_MAX_BYTES,
) -> GitStatus:
    """Compute the :class:`GitStatus` of the checkout at ``path`` (worktree or clone).

    Reads only local refs: run a fetch first for ahead/behind against the remote's newest state.
    Every command runs with ``--no-optional-locks`` so that a poll never takes ``index.lock`` from
    under the agent working in the same checkout. ``side_by_side`` runs the independent commands
    at once (a route waits on the answer); the background poll runs them in turn, so that it
    takes one core and leaves the others to the requests.
    """
    fan_out = concurrently if side_by_side else in_turn

    def git(*args: str, check: bool = True) -> str | None:
        return run(["--no-optional-locks", *args], path, check=check)

    head, branch = read_head(git)
    refs = remote_refs(git, branch)
    base_ref = refs.default_ref
    remote_head = refs.heads.get(branch, "")  # none for a detached HEAD: remote_refs skips "HEAD"

    def commits_and_lines() -> tuple[int, int, int, int, int]:
        ahead = behind = 0
        diff_from = "HEAD"
        if base_ref:
            counts, merge_base = fan_out(
                lambda: git("rev-list", "--left-right", "--count", f"HEAD...{base_ref}") or "0\t0",
                lambda: (git("merge-base", "HEAD", base_ref, check=False) or "").strip(),
            )
            ahead, behind = (int(count) for count in counts.split())
            diff_from = merge_base or "HEAD"
        added, removed, files = parse_numstat(git("diff", "--numstat", "--find-renames", diff_from, "--") or "")
        return ahead, behind, added, removed, files

    # The diff and the status each walk the whole worktree: side by side they cost one walk.
    (ahead, behind, added, removed, files), porcelain = fan_out(
        commits_and_lines, lambda: git("status", "--porcelain=v1", "-z", "--untracked-files=all") or ""
    )
    changed, untracked = parse_porcelain_z(porcelain)
    for rel in untracked:
        added += count_text_lines(path / rel, untracked_max_bytes)
    remote_exists = bool(remote_head)
    synced = remote_exists and head == remote_head
    return GitStatus(
        branch=branch,
        base=base_ref.removeprefix("refs/remotes/"),
        ahead=ahead,
        behind=behind,
        lines_added=added,
        lines_removed=removed,
        files_changed=files + len(untracked),
        dirty=bool(changed or untracked),
        remote_branch_exists=remote_exists,
        synced_with_remote=synced,
    )


class StatusCache(Generic[V]):
    """Last computed value per key, refreshed by one background thread at most once per interval.

    :meth:`get` never blocks on git: it returns what is cached (``None`` before the first
    computation) and, when the value is older than the poll interval, queues a refresh. A failed
    refresh keeps the previous value and records the error (:meth:`error`), and also waits for the
    interval, so a broken workspace is not hammered.

    Parameters
    ----------
    poll_interval_s : float
        Least seconds between the starts of two refreshes of one key (``0``: refresh on every
        :meth:`get` that finds no refresh queued).
    compute : callable
        ``compute(key) -> value``; runs in the background thread.
    compute_now : callable, optional
        What :meth:`refresh_now` runs in the caller's thread (default ``compute``): a caller that
        waits may spend more cores on the answer than the background poll should.
    """

    def __init__(
        self,
        poll_interval_s: float,
        compute: Callable[[str], V],
        *,
        compute_now: Callable[[str], V] | None = None,
        name: str = "git-status",
    ) -> None:
        self._interval = max(0.0, poll_interval_s)
        self._compute = compute
        self._compute_now = compute_now or compute
        self._name = name
        self._cond = threading.Condition()
        self._values: dict[str, V] = {}
        self._errors: dict[str, str] = {}
        self._started_at: dict[str, float] = {}
        self._pending: dict[str, None] = {}  # insertion-ordered set
        self._busy: str | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def poll_interval_s(self) -> float:
        return self._interval

    @poll_interval_s.setter
    def poll_interval_s(self, value: float) -> None:
        """The interval may follow the config (``git_status_poll_interval_ms``) while running."""
        with self._cond:
            self._interval = max(0.0, value)

    def get(self, key: str) -> V | None:
        """The cached value (``None`` if never computed); queues a refresh when it is due."""
        with self._cond:
            started = self._started_at.get(key)
            if started is None or time.monotonic() - started >= self._interval:
                self._schedule(key)
            return self._values.get(key)

    def error(self, key: str) -> str | None:
        """Message of the last failed refresh of ``key``, ``None`` after a success."""
        with self._cond:
            return self._errors.get(key)

    def invalidate(self, key: str) -> None:
        """Refresh ``key`` soon whatever its age: the caller just changed the workspace."""
        with self._cond:
            self._started_at.pop(key, None)
            self._schedule(key)

    def refresh_now(self, key: str) -> V:
        """Compute ``key`` in the caller's thread, cache and return it (errors propagate)."""
        with self._cond:
            self._started_at[key] = time.monotonic()
        value = self._compute_now(key)
        with self._cond:
            self._values[key] = value
            self._errors.pop(key, None)
        return value

    def forget(self, key: str) -> None:
        """Drop everything about ``key`` (its workspace was disposed)."""
        with self._cond:
            self._values.pop(key, None)
            self._errors.pop(key, None)
            self._started_at.pop(key, None)
            self._pending.pop(key, None)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no refresh is queued or running; ``False`` if ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._busy is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Stop the background thread after the refresh it is running, if any."""
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _schedule(self, key: str) -> None:
        # Caller holds the lock.
        if self._closed or key in self._pending or self._busy == key:
            return
        self._pending[key] = None
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                key = next(iter(self._pending))
                del self._pending[key]
                self._busy = key
                self._started_at[key] = time.monotonic()
            try:
                value = self._compute(key)
            except Exception as exc:  # noqa: BLE001 - one broken workspace must not stop the others
                logger.warning("%s refresh of %s failed: %s", self._name, key, exc)
                with self._cond:
                    if key in self._started_at:  # not forgotten meanwhile
                        self._errors[key] = str(exc)
            else:
                with self._cond:
                    if key in self._started_at:  # not forgotten meanwhile
                        self._values[key] = value
                        self._errors.pop(key, None)
            finally:
                with self._cond:
                    self._busy = None
                    self._cond.notify_all()

"""The commit graph of a workspace: ``GET /api/workspaces/{id}/git-graph``.

The dashboard draws the workspace's branch against origin's default branch, scoped to where
they diverge: the branch's own commits (up to :data:`~miso_runtime.constants.GITOPS_GRAPH_MAX_LOCAL`
read from ``HEAD``), a few of main's commits before the fork point for context, and only the
*number* of commits main has gained since (``main_ahead_count``). The rules are schmux's
(``internal/workspace/git_graph.go`` at ``b21137fd``):

- the default branch is ``refs/remotes/origin/HEAD``'s name, else the checkout's own branch;
- no ``origin/<default>``, or ``HEAD`` at it: the last ``main_context + 1`` commits of ``HEAD``;
- no merge base: ``HEAD`` and ``origin/<default>`` side by side, up to ``max_total``;
- otherwise ``main_context`` commits from the fork point plus those of ``HEAD``.

Each commit is marked with the branches that reach it (walking parents from each head), the
heads it is and the workspaces on those branches; the list is put in ISL's order (a depth-first
topological sort that follows one branch to its end before the next; drafts, older, then
higher hash first among siblings), reversed so heads come first, then cut to ``max_total``.
"""

from __future__ import annotations

import functools
import re
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from .. import constants
from ..errors import MisoError
from .concurrent_calls import concurrently
from .git_diff import Deadline, git_read
from .git_status import GitAsk, count_text_lines, parse_numstat, parse_porcelain_z, remote_refs

#: ``git log`` fields, separated by US and ended by RS: a subject may hold any printable text
#: (schmux's ``|`` separator splits a subject that contains one).
_LOG_FORMAT = "--format=%H%x1f%h%x1f%s%x1f%an%x1f%aI%x1f%P%x1e"
_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_GO_INT_MAX = 2**63 - 1
_NEVER = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Commit:
    hash: str
    short_hash: str
    message: str
    author: str
    #: ``%aI``: strict ISO 8601 with the author's offset.
    timestamp: str
    parents: tuple[str, ...] = ()


@dataclass
class GraphInput:
    """What :func:`build_graph` needs; the git side is :func:`compute_graph`."""

    nodes: list[Commit]
    local_branch: str
    default_branch: str
    local_head: str
    origin_head: str
    fork_point: str
    repo: str
    max_total: int
    main_ahead_count: int
    #: Branch name -> ids of the repo's workspaces on it.
    branch_workspaces: dict[str, list[str]] = field(default_factory=dict)


def _positive(value: str | None) -> int | None:
    """A query value as Go's ``strconv.Atoi`` reads it, when it is above zero."""
    if value is None or not _GO_INT.match(value):
        return None
    number = int(value)
    return number if 0 < number <= _GO_INT_MAX else None


def graph_limits(args: Mapping[str, str]) -> tuple[int, int]:
    """``(max_total, main_context)`` from the query, as schmux reads it.

    A value that is not a positive integer is ignored; the old names ``max_commits`` and
    ``context`` count only while the new name left the default in place. Values are capped
    at :data:`~miso_runtime.constants.GITOPS_GRAPH_LIMIT_CAP` so one request cannot make the
    worker read a whole history.
    """
    max_total = _positive(args.get("max_total")) or constants.GITOPS_GRAPH_MAX_TOTAL
    if max_total == constants.GITOPS_GRAPH_MAX_TOTAL:
        max_total = _positive(args.get("max_commits")) or max_total
    main_context = _positive(args.get("main_context")) or constants.GITOPS_GRAPH_MAIN_CONTEXT
    if main_context == constants.GITOPS_GRAPH_MAIN_CONTEXT:
        main_context = _positive(args.get("context")) or main_context
    cap = constants.GITOPS_GRAPH_LIMIT_CAP
    return min(max_total, cap), min(main_context, cap)


def parse_log(text: str) -> list[Commit]:
    """Commits of ``git log`` in :data:`_LOG_FORMAT`, each once, in git's order."""
    commits: list[Commit] = []
    seen: set[str] = set()
    for record in text.split("\x1e"):
        parts = record.strip("\n").split("\x1f")
        if len(parts) < 6 or not parts[0] or parts[0] in seen:
            continue
        seen.add(parts[0])
        commits.append(Commit(parts[0], parts[1], parts[2], parts[3], parts[4], tuple(parts[5].split())))
    return commits


def _walk(nodes: dict[str, Commit], head: str, branch: str, membership: dict[str, set[str]]) -> None:
    """Mark ``head`` and every commit its parents reach inside the graph as on ``branch``."""
    stack = [head]
    while stack:
        commit = stack.pop()
        marks = membership.setdefault(commit, set())
        if branch in marks:
            continue
        marks.add(branch)
        node = nodes.get(commit)
        if node is not None:
            stack.extend(parent for parent in node.parents if parent in nodes)


def _time(timestamp: str) -> datetime:
    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return _NEVER
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _isl_order(graph: GraphInput, membership: dict[str, set[str]]) -> list[str]:
    """ISL's ``sortAsc`` (roots first, one branch at a time), as a list of hashes."""
    local, default = graph.local_branch, graph.default_branch
    times = {node.hash: _time(node.timestamp) for node in graph.nodes}

    def draft(commit: str) -> bool:
        marks = membership.get(commit, set())
        return local != default and local in marks and default not in marks

    def compare(a: str, b: str) -> int:
        if draft(a) != draft(b):
            return -1 if draft(a) else 1
        if times[a] != times[b]:
            return -1 if times[a] < times[b] else 1
        return -1 if a > b else (1 if a < b else 0)

    descending = functools.cmp_to_key(lambda a, b: -compare(a, b))  # popped from the end: smallest first
    in_graph = {node.hash for node in graph.nodes}
    children: dict[str, list[str]] = {node.hash: [] for node in graph.nodes}
    waiting: dict[str, int] = {}
    for node in graph.nodes:
        parents = [parent for parent in node.parents if parent in in_graph]
        waiting[node.hash] = len(parents)
        for parent in parents:
            children[parent].append(node.hash)
    to_visit = deque(sorted((h for h, count in waiting.items() if count == 0), key=descending))
    visited: set[str] = set()
    order: list[str] = []
    deferred = 0
    while to_visit:
        commit = to_visit.pop()
        if commit in visited:
            continue
        if waiting[commit] > 0:
            # A merge whose other parents are not out yet: try again after the rest.
            to_visit.appendleft(commit)
            deferred += 1
            if deferred > len(to_visit) + len(graph.nodes):
                break  # cannot happen in a DAG; never loop forever on a malformed one
            continue
        deferred = 0
        order.append(commit)
        visited.add(commit)
        kids = sorted(children[commit], key=descending)
        for kid in kids:
            waiting[kid] -= 1
        to_visit.extend(kids)
    return order


def build_graph(graph: GraphInput) -> dict[str, Any]:
    """The body of ``git-graph`` (without ``dirty_state``) from the commits and the heads."""
    if not graph.nodes:
        return {"repo": graph.repo, "nodes": [], "branches": {}, "main_ahead_count": graph.main_ahead_count}
    nodes = {node.hash: node for node in graph.nodes}
    local, default = graph.local_branch, graph.default_branch
    membership: dict[str, set[str]] = {}
    _walk(nodes, graph.local_head, local, membership)
    if graph.origin_head:
        # Main's head is outside the graph when main moved on (those commits are only counted):
        # main's part of the graph then starts at the fork point.
        start = graph.origin_head
        if start not in nodes and graph.fork_point:
            start = graph.fork_point
        _walk(nodes, start, default, membership)
    names = [default] if local == default else [default, local]
    heads = {local: graph.local_head}
    if graph.origin_head:
        heads[default] = graph.origin_head
    annotated: dict[str, dict[str, Any]] = {}
    for node in graph.nodes:
        marks = membership.get(node.hash, set())
        is_head = [name for name in names if heads.get(name) == node.hash]
        annotated[node.hash] = {
            "hash": node.hash,
            "short_hash": node.short_hash,
            "message": node.message,
            "author": node.author,
            "timestamp": node.timestamp,
            "parents": list(node.parents),
            "branches": [name for name in names if name in marks],
            "is_head": is_head,
            "workspace_ids": [ws for name in is_head for ws in graph.branch_workspaces.get(name, [])],
        }
    ordered = [annotated[commit] for commit in reversed(_isl_order(graph, membership))][: graph.max_total]
    branches: dict[str, dict[str, Any]] = {}
    if graph.origin_head:
        branches[default] = {
            "head": graph.origin_head,
            "is_main": True,
            "workspace_ids": list(graph.branch_workspaces.get(default, [])),
        }
    branches[local] = {
        "head": graph.local_head,
        "is_main": local == default,
        "workspace_ids": list(graph.branch_workspaces.get(local, [])),
    }
    return {
        "repo": graph.repo,
        "nodes": ordered,
        # Go writes a map's keys in sorted order.
        "branches": dict(sorted(branches.items())),
        "main_ahead_count": graph.main_ahead_count,
    }


# --- the git side ---------------------------------------------------------------------------


def reader(root: Path, deadline: Deadline) -> GitAsk:
    """Read-only git in ``root`` within ``deadline``; ``check`` raises a 500 where the command fails."""

    def git(*args: str, check: bool = True) -> str | None:
        out = git_read(list(args), root, deadline)
        if out is None and check:
            raise MisoError(500, "git_failed", f"git {args[0]} failed in {root}")
        return out

    return git


def _log(git: GitAsk, max_count: int, *starts: str, required: bool = True) -> list[Commit]:
    """Up to ``max_count`` commits from ``starts`` in topological order; a failure is a 500 if ``required``."""
    out = git("log", _LOG_FORMAT, "--topo-order", f"--max-count={max_count}", *starts, "--", check=False)
    if out is None and required:
        raise MisoError(500, "git_failed", f"git log failed: could not read the history of {' '.join(starts)}")
    return parse_log(out or "")


def compute_graph(
    root: Path,
    workspace_id: str,
    repo: str,
    head: tuple[str, str],
    branch_workspaces: dict[str, list[str]],
    max_total: int,
    main_context: int,
    deadline: Deadline,
) -> dict[str, Any]:
    """Read the history of the checkout at ``root`` and build the ``git-graph`` body.

    ``head`` is ``(commit, branch)`` of the checkout (:func:`~.git_status.read_head`). The
    commands that do not need each other's answers run side by side. Raises a 500
    :class:`MisoError` when ``HEAD`` does not resolve (no commit yet) or ``git log`` fails.
    """
    local_head, local_branch = head
    if not local_head:
        raise MisoError(500, "git_failed", f"cannot resolve HEAD in workspace {workspace_id}")
    git = reader(root, deadline)
    refs = remote_refs(git, local_branch)
    # origin's default branch, else the checkout's own branch (and origin's copy of it).
    default = refs.default_branch or (local_branch if local_branch != "HEAD" else "")
    origin_head = refs.default_commit if refs.default_branch else refs.heads.get(default, "")
    origin_main = f"origin/{default}"
    fork_point = ""
    main_ahead = 0
    if origin_head and local_head != origin_head:
        fork_point, counted = concurrently(
            lambda: (git("merge-base", "HEAD", origin_main, check=False) or "").strip(),
            lambda: (git("rev-list", "--count", f"HEAD..{origin_main}", check=False) or "").strip(),
        )
        main_ahead = int(counted) if counted.isdigit() else 0
    if not origin_head or local_head == origin_head:
        nodes = _log(git, main_context + 1, "HEAD")
    elif not fork_point:
        nodes = _log(git, max_total, "HEAD", origin_main)
    else:
        # Main's context before the fork, then the branch's own commits (those main gained are
        # left out: only their count is shown).
        context, local = concurrently(
            lambda: _log(git, main_context, fork_point, required=False),
            lambda: _log(git, constants.GITOPS_GRAPH_MAX_LOCAL, "HEAD", required=False),
        )
        seen = {node.hash for node in context}
        nodes = context + [node for node in local if node.hash not in seen]
    return build_graph(
        GraphInput(
            nodes=nodes,
            local_branch=local_branch,
            default_branch=default,
            local_head=local_head,
            origin_head=origin_head,
            fork_point=fork_point,
            repo=repo,
            max_total=max_total,
            main_ahead_count=main_ahead,
            branch_workspaces=branch_workspaces,
        )
    )


def uncommitted_stats(root: Path, deadline: Deadline) -> tuple[int, int, int]:
    """``(files_changed, lines_added, lines_removed)`` of what is not committed, as schmux counts
    its ``git_*`` fields: ``git status`` entries, ``git diff --numstat HEAD`` plus the lines of
    untracked text files.

    The status cache counts from the merge base with main (commits included); the graph's dirty
    node is only what a commit would still take.
    """
    # The three walk the worktree each: side by side, they cost about one.
    porcelain, numstat, listed = concurrently(
        lambda: git_read(["status", "--porcelain=v1", "-z"], root, deadline) or "",
        lambda: git_read(["diff", "--numstat", "HEAD", "--"], root, deadline) or "",
        lambda: git_read(["ls-files", "--others", "--exclude-standard", "-z"], root, deadline) or "",
    )
    changed, untracked_entries = parse_porcelain_z(porcelain)
    files = len(changed) + len(untracked_entries)
    if files == 0:
        return 0, 0, 0
    added, removed, _ = parse_numstat(numstat)
    for path in filter(None, listed.split("\0")):
        added += count_text_lines(root / path, constants.GITOPS_DIFF_CONTENT_MAX_BYTES)
    return files, added, removed

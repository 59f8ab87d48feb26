"""What a pull-request review session is told, and the local branch a pull request is checked out on.

The prompt carries the same facts, in the same order, as schmux's ``BuildReviewPrompt``, because
the agent has nothing else to go on: a header (number and title, repository, ``@author``,
``source -> target``, URL), where the code is checked out, the pull request's own description,
and then what a useful review looks at. The header lines keep schmux's labels, so a person
reading a session started by either tool sees the same thing.
"""

from __future__ import annotations

from typing import Protocol


class ReviewedPullRequest(Protocol):
    """The fields of a pull request the prompt and the branch name use."""

    number: int
    title: str
    body: str
    repo_name: str
    author: str
    source_branch: str
    target_branch: str
    html_url: str
    fork_owner: str
    is_fork: bool


#: The request that ends the prompt: understand the change before judging details.
REVIEW_INSTRUCTIONS = (
    "Please review this pull request. "
    "Look at: (1) the problem it solves and what it sets out to achieve; "
    "(2) how it gets there in terms of design: what changed, and why; "
    "(3) one concrete example of how something behaves after this change, or behaves differently. "
    "Leave test coverage and small style points aside: first understand the substance of the change."
)


def pr_branch_name(pr: ReviewedPullRequest) -> str:
    """``pr/<number>``, or ``pr/<fork owner>/<number>`` for a pull request from a fork.

    The owner keeps two forks' pull requests apart in the branch list of one bare clone.
    """
    if pr.is_fork and pr.fork_owner:
        return f"pr/{pr.fork_owner}/{pr.number}"
    return f"pr/{pr.number}"


def build_review_prompt(pr: ReviewedPullRequest, workspace_path: str, branch: str) -> str:
    """The review session's prompt for ``pr`` checked out on ``branch`` at ``workspace_path``."""
    lines = [
        f"Pull Request #{pr.number}: {pr.title}",
        f"Repository: {pr.repo_name}",
        f"Author: @{pr.author}",
        f"Branch: {pr.source_branch} -> {pr.target_branch}",
        f"URL: {pr.html_url}",
        "",
        "PR code checkout location:",
        f"  Working directory: {workspace_path}",
        f"  Current branch: {branch} (PR #{pr.number} already checked out)",
        "  The PR's code is in your working directory already: read the files there.",
    ]
    if pr.body:
        lines += ["", pr.body]
    return "\n".join(lines) + "\n\n" + REVIEW_INSTRUCTIONS

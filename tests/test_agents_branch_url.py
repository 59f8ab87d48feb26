"""git_branch_url for the forges that show branches on the web, and nothing for other remotes."""

from __future__ import annotations

import pytest

from miso_runtime.agents.branch_url import branch_url


@pytest.mark.parametrize(
    "remote, branch, url",
    [
        ("https://github.com/me/app.git", "fix-login", "https://github.com/me/app/tree/fix-login"),
        ("git@github.com:me/app.git", "feat/x", "https://github.com/me/app/tree/feat/x"),
        ("ssh://git@github.com:22/me/app", "main", "https://github.com/me/app/tree/main"),
        ("https://gitlab.com/group/sub/app.git", "dev", "https://gitlab.com/group/sub/app/-/tree/dev"),
        ("https://user:secret@github.com/me/app.git", "a b", "https://github.com/me/app/tree/a%20b"),
        ("/srv/repos/app.git", "main", None),
        ("file:///srv/repos/app.git", "main", None),
        ("https://git.example.com/me/app.git", "main", None),
        ("https://github.com/me/app.git", "HEAD", None),
    ],
)
def test_branch_url(remote, branch, url):
    assert branch_url(remote, branch) == url

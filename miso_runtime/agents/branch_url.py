"""The web page of a branch on its forge (``git_branch_url`` of ``GET /api/sessions``).

GitHub, GitLab, Bitbucket and Codeberg show a branch at ``https://<host>/<owner>/<repo>/tree/<branch>``
(Bitbucket: ``/branch/``); a remote elsewhere (a local path, ``file://``, a host we do not
know) has no such page, and the field is left out.
"""

from __future__ import annotations

import re
from urllib.parse import quote

#: Forge host -> path segment before the branch name.
FORGE_BRANCH_PATHS = {
    "github.com": "tree",
    "gitlab.com": "-/tree",
    "codeberg.org": "src/branch",
    "bitbucket.org": "branch",
}

_SCP_LIKE = re.compile(r"^(?:[\w.-]+@)?(?P<host>[\w.-]+):(?P<path>[^/].*)$")
_URL = re.compile(r"^(?:https?|ssh|git)://(?:[^@/]+@)?(?P<host>[\w.-]+)(?::\d+)?/(?P<path>.+)$")


def branch_url(remote: str, branch: str) -> str | None:
    """``https://github.com/me/app/tree/fix-login`` for ``git@github.com:me/app.git``; None elsewhere."""
    match = _URL.match(remote) or _SCP_LIKE.match(remote)
    if not match or not branch or branch == "HEAD":
        return None
    host = match.group("host").lower()
    segment = FORGE_BRANCH_PATHS.get(host)
    if segment is None:
        return None
    path = match.group("path").rstrip("/")
    path = path[:-4] if path.endswith(".git") else path
    if path.count("/") < 1:
        return None
    return f"https://{host}/{path}/{segment}/{quote(branch, safe='/')}"

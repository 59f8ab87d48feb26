"""Remote flavors: the kinds of remote machine an agent can be sent to, with schmux's rules.

A flavor says how to reach a host (``connect_command``, a command template run under a
pseudo-terminal), how to read the host's name from what that command prints
(``hostname_regex``, whose first group is the name), where workspaces live there, and how to
provision one. They are kept in the agents config file (``remote_flavors``) and changed only
through the flavor routes, with schmux's validation and its messages (``invalid config: ...``),
because the dashboard shows those messages as they come.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .command_template import TemplateError, render

#: Characters a flavor string may not hold: it reaches a shell through the connect command.
FLAVOR_FORBIDDEN = ";|&$`\\\n\r\t<>(){}[]"
#: Characters a workspace path may not hold (it is used in commands on the host).
WORKSPACE_PATH_FORBIDDEN = "$`\\;|&\n\r"
VCS_KINDS = ("git", "sapling")
#: Longest display name, flavor and workspace path, in bytes (as schmux counts them).
MAX_DISPLAY_NAME = 100
MAX_FLAVOR = 200
MAX_WORKSPACE_PATH = 500
#: What each command template may name, with the sample values it is checked against.
TEMPLATE_FIELDS: dict[str, dict[str, str]] = {
    "connect_command": {"Flavor": "test-flavor"},
    "reconnect_command": {"Hostname": "test.example.com", "Flavor": "test-flavor"},
    "provision_command": {"WorkspacePath": "/workspace", "Repo": "https://github.com/test/repo"},
}
#: The fields a response leaves out when they are empty (Go's ``omitempty``).
OPTIONAL_FIELDS = (
    "connect_command",
    "reconnect_command",
    "provision_command",
    "hostname_regex",
    "vscode_command_template",
)


class FlavorError(ValueError):
    """A flavor that breaks a rule; the message is schmux's (``invalid config: ...``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid config: {reason}")


@dataclass(frozen=True)
class RemoteFlavor:
    id: str = ""
    flavor: str = ""
    display_name: str = ""
    vcs: str = ""
    workspace_path: str = ""
    connect_command: str = ""
    reconnect_command: str = ""
    provision_command: str = ""
    hostname_regex: str = ""
    vscode_command_template: str = ""

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> "RemoteFlavor":
        names = {f.name for f in fields(cls)}
        return cls(**{k: str(v) for k, v in stored.items() if k in names and v is not None})

    def stored(self) -> dict[str, str]:
        return asdict(self)

    def response(self) -> dict[str, str]:
        """``RemoteFlavorResponse``: every field, the optional ones only when set."""
        return {k: v for k, v in asdict(self).items() if v or k not in OPTIONAL_FIELDS}

    def status_view(self) -> dict[str, str]:
        """The flavor as ``flavor-statuses`` embeds it: without ``hostname_regex`` and
        ``vscode_command_template``, as schmux's."""
        return {k: v for k, v in self.response().items() if k not in ("hostname_regex", "vscode_command_template")}


#: The fields a create request may set (all but ``id``) and those an update may (all but ``flavor``).
CREATE_FIELDS = tuple(f.name for f in fields(RemoteFlavor) if f.name != "id")
UPDATE_FIELDS = tuple(name for name in CREATE_FIELDS if name != "flavor")


def flavor_id(flavor: str) -> str:
    """The id schmux makes of a flavor string: each character outside ``[A-Za-z0-9]`` becomes
    ``_``, then lower case (``gpu:ml-large`` -> ``gpu_ml_large``)."""
    return "".join(c if c.isascii() and c.isalnum() else "_" for c in flavor).lower()


def validate(flavor: RemoteFlavor) -> None:
    """Raise :class:`FlavorError` for the first rule ``flavor`` breaks, in schmux's order."""
    if not flavor.flavor:
        raise FlavorError("flavor string is required")
    if not flavor.display_name:
        raise FlavorError("display_name is required")
    if not flavor.workspace_path:
        raise FlavorError("workspace_path is required")
    if flavor.vcs and flavor.vcs not in VCS_KINDS:
        raise FlavorError("vcs must be 'git' or 'sapling'")
    if _bytes(flavor.display_name) > MAX_DISPLAY_NAME:
        raise FlavorError(f"display_name too long (max {MAX_DISPLAY_NAME} characters)")
    if _bytes(flavor.flavor) > MAX_FLAVOR:
        raise FlavorError(f"flavor too long (max {MAX_FLAVOR} characters)")
    if _bytes(flavor.workspace_path) > MAX_WORKSPACE_PATH:
        raise FlavorError(f"workspace_path too long (max {MAX_WORKSPACE_PATH} characters)")
    if any(c in FLAVOR_FORBIDDEN for c in flavor.flavor):
        raise FlavorError("flavor contains shell metacharacters")
    if any(c in WORKSPACE_PATH_FORBIDDEN for c in flavor.workspace_path):
        raise FlavorError("workspace_path contains dangerous characters")
    if not flavor.workspace_path.startswith(("~", "/")):
        raise FlavorError("workspace_path must be absolute or start with ~")
    for name, sample in TEMPLATE_FIELDS.items():
        template = getattr(flavor, name)
        if not template:
            continue
        try:
            render(template, name, sample)
        except TemplateError as exc:
            kind = "template execution failed" if "executing" in str(exc) else "has invalid template syntax"
            raise FlavorError(f"{name} {kind}: {exc}") from None
    if flavor.hostname_regex:
        try:
            pattern = re.compile(flavor.hostname_regex)
        except re.error as exc:
            raise FlavorError(f"hostname_regex is not valid regex: {exc}") from None
        if pattern.groups < 1:
            raise FlavorError("hostname_regex must contain at least one capture group")


def created(request: dict[str, str], existing: list[RemoteFlavor]) -> RemoteFlavor:
    """The flavor a create request makes: validated, ``vcs`` defaulting to ``git``, a fresh id."""
    flavor = RemoteFlavor(**{k: v for k, v in request.items() if k in CREATE_FIELDS})
    validate(flavor)
    flavor = replace(flavor, vcs=flavor.vcs or "git", id=flavor_id(flavor.flavor))
    if any(other.id == flavor.id for other in existing):
        raise FlavorError(f'remote flavor with ID "{flavor.id}" already exists')
    return flavor


def updated(current: RemoteFlavor, request: dict[str, str]) -> RemoteFlavor:
    """``current`` replaced by an update request: every field but ``id`` and ``flavor`` is taken
    from the request, and one left out becomes empty (schmux's update is a full replace)."""
    flavor = RemoteFlavor(id=current.id, flavor=current.flavor, **{k: request.get(k, "") for k in UPDATE_FIELDS})
    validate(flavor)
    return flavor


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))

"""Command groups and client scopes: the daemon's permission vocabulary, mapped onto token scopes.

The daemon names what a remote client may do as groups of its WebSocket/REST *commands*; a
client's scope is ``read`` (the safe groups), ``full`` (everything) or ``custom`` (its chosen
groups, with per-command allow and deny lists). This runtime authorises an HTTP route by the
:class:`~miso_runtime.auth.Access` level it declares, not by command name, so a tunnel request is
checked as if it carried a token of the one :class:`~miso_runtime.auth.TokenScope` that the
client's scope maps onto (:func:`token_scope`): the same table, the same guard, no second set of
rules to drift. The groups and the allow/deny lists are stored and reported as the daemon does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..auth import TokenScope
from ..errors import MisoError


@dataclass(frozen=True)
class CommandGroup:
    """A named set of the daemon's commands; ``dangerous`` ones get a warning when enabled."""

    id: str
    label: str
    description: str
    dangerous: bool
    commands: tuple[str, ...]
    #: The token scope a client needs for this group's routes here.
    needs: TokenScope


GROUPS: tuple[CommandGroup, ...] = (
    CommandGroup(
        "status", "Status & Sessions", "See the headset's state, the recorded sessions and sleep results.", False,
        ("status", "sessions", "sleep"), TokenScope.READ_ONLY,
    ),
    CommandGroup(
        "search", "Search & Browse", "Look up similar EEG moments and labels, and compare time ranges.", False,
        ("search", "search_labels", "interactive_search", "compare", "session_metrics"), TokenScope.READ_ONLY,
    ),
    CommandGroup(
        "screenshots", "Screenshots", "Find screenshots and line them up with the EEG around them.", False,
        (
            "search_screenshots", "screenshots_around", "search_screenshots_vision",
            "search_screenshots_by_image_b64", "screenshots_for_eeg", "eeg_for_screenshots",
        ),
        TokenScope.READ_ONLY,
    ),
    CommandGroup(
        "calendar", "Calendar", "Read calendar entries and whether calendar access is granted.", False,
        ("calendar_events", "calendar_status"), TokenScope.READ_ONLY,
    ),
    CommandGroup(
        "health_read", "Health (Read)", "Read the health data a phone has synced, and its summaries.", False,
        ("health_query", "health_summary", "health_metric_types"), TokenScope.READ_ONLY,
    ),
    CommandGroup(
        "iroh_view", "Remote Access (View)", "See the tunnel, the pairing credentials and the paired devices.", False,
        ("iroh_info", "iroh_totp_list", "iroh_clients_list", "iroh_scope_groups", "iroh_client_permissions"),
        TokenScope.READ_ONLY,
    ),
    CommandGroup(
        "llm_view", "LLM (View)", "See the local model's state, its catalog and its log.", False,
        ("llm_status", "llm_catalog", "llm_logs", "llm_downloads", "llm_hardware_fit"), TokenScope.READ_ONLY,
    ),
    CommandGroup("umap", "UMAP", "Start 3D UMAP projections and fetch their results.", False, ("umap", "umap_poll"),
                 TokenScope.DATA),
    CommandGroup(
        "calibration_view", "Calibrations (View)", "List calibration profiles and read one.", False,
        ("list_calibrations", "get_calibration"), TokenScope.READ_ONLY,
    ),
    CommandGroup("labels", "Labels (Write)", "Add labels to the EEG as it is recorded.", False, ("label",),
                 TokenScope.DATA),
    CommandGroup(
        "health_write", "Health (Write)", "Send health data from a phone to this computer.", False,
        ("health_sync",), TokenScope.DATA,
    ),
    CommandGroup(
        "calendar_write", "Calendar (Write)", "Ask this computer for calendar access.", False,
        ("calendar_request_permission",), TokenScope.DATA,
    ),
    CommandGroup(
        "device_control", "Device Control",
        "Run calibrations and timers, show notifications, speak, switch Do Not Disturb: "
        "this can interrupt a recording and changes how the computer behaves.",
        True,
        ("calibrate", "run_calibration", "timer", "notify", "say", "dnd", "dnd_set", "sleep_schedule",
         "sleep_schedule_set"),
        TokenScope.ADMIN,
    ),
    CommandGroup(
        "calibration_write", "Calibrations (Manage)",
        "Add, edit and remove calibration profiles; a removed profile is gone for good.", True,
        ("create_calibration", "update_calibration", "delete_calibration"), TokenScope.ADMIN,
    ),
    CommandGroup(
        "hooks", "Hooks & Automation",
        "Read and edit hooks, which run commands and scripts on this computer when they fire.",
        True, ("hooks_get", "hooks_set", "hooks_status", "hooks_suggest", "hooks_log"), TokenScope.ADMIN,
    ),
    CommandGroup(
        "llm_control", "LLM (Manage)",
        "Load and unload the local model, fetch and remove model files: heavy on CPU, GPU and disk.", True,
        (
            "llm_start", "llm_stop", "llm_download", "llm_cancel_download", "llm_delete", "llm_select_model",
            "llm_select_mmproj", "llm_pause_download", "llm_resume_download", "llm_refresh_catalog",
            "llm_set_autoload_mmproj", "llm_add_model",
        ),
        TokenScope.ADMIN,
    ),
    CommandGroup(
        "iroh_admin", "Remote Access (Admin)",
        "Issue and revoke pairing credentials and devices and change their scopes: a device with this "
        "group can raise its own rights and shut others out.",
        True,
        ("iroh_totp_create", "iroh_totp_qr", "iroh_totp_revoke", "iroh_client_register", "iroh_client_revoke",
         "iroh_client_set_scope", "iroh_phone_invite"),
        TokenScope.ADMIN,
    ),
)  # fmt: skip

#: The groups of the built-in ``read`` scope (none of them dangerous).
READ_GROUPS: tuple[str, ...] = (
    "status", "search", "screenshots", "calendar", "health_read", "iroh_view", "llm_view", "umap", "calibration_view",
)  # fmt: skip

SCOPES = ("read", "full", "custom")
_BY_ID = {group.id: group for group in GROUPS}
_COMMANDS = {command: group for group in GROUPS for command in group.commands}
#: Weakest first: a custom scope gets the first one that covers all its groups (``stream``, which
#: sees only status and events, when it enables none).
_STRENGTH = (TokenScope.STREAM, TokenScope.READ_ONLY, TokenScope.DATA, TokenScope.ADMIN)


def normalize_scope(scope: str) -> str:
    """``read`` (or ``readonly``), ``full`` or ``custom``; anything else is refused."""
    value = scope.strip().lower()
    if value == "readonly":
        value = "read"
    if value not in SCOPES:
        raise MisoError(400, "invalid_scope", f"invalid scope {scope!r}: expected 'read', 'full', or 'custom'")
    return value


def validate_groups(groups: list[str]) -> None:
    for group_id in groups:
        if group_id not in _BY_ID:
            raise MisoError(400, "invalid_scope", f"unknown group {group_id!r}")


def validate_commands(commands: list[str]) -> None:
    for command in commands:
        if command not in _COMMANDS:
            raise MisoError(400, "invalid_scope", f"unknown command {command!r}")


def effective_groups(permissions: dict[str, Any]) -> list[str]:
    """The ids of the groups a client's permissions enable."""
    scope = permissions.get("scope", "read")
    if scope == "full":
        return [group.id for group in GROUPS]
    if scope == "custom":
        return [group_id for group_id in permissions.get("groups", []) if group_id in _BY_ID]
    return list(READ_GROUPS)


def is_allowed(permissions: dict[str, Any], command: str) -> bool:
    """Whether a client's permissions allow one daemon command (deny wins, then allow, then groups)."""
    if permissions.get("scope") == "full":
        return True
    if command in permissions.get("deny", []):
        return False
    if command in permissions.get("allow", []):
        return True
    group = _COMMANDS.get(command)
    return group is not None and group.id in effective_groups(permissions)


def token_scope(permissions: dict[str, Any]) -> TokenScope:
    """The token scope a client's requests are checked with.

    ``read`` is ``read_only`` (GET routes), ``full`` is ``admin``; a ``custom`` scope gets the
    weakest scope that covers every group it enables (a dangerous group needs ``admin``; no
    group at all, ``stream``: status and events only).
    """
    scope = permissions.get("scope", "read")
    if scope == "full":
        return TokenScope.ADMIN
    if scope != "custom":
        return TokenScope.READ_ONLY
    needed = [_BY_ID[group_id].needs for group_id in effective_groups(permissions)]
    needed += [_COMMANDS[command].needs for command in permissions.get("allow", []) if command in _COMMANDS]
    return max(needed, key=_STRENGTH.index, default=TokenScope.STREAM)


def dangerous_groups(permissions: dict[str, Any]) -> list[CommandGroup]:
    enabled = set(effective_groups(permissions))
    return [group for group in GROUPS if group.dangerous and group.id in enabled]


def group_view(group: CommandGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "label": group.label,
        "description": group.description,
        "dangerous": group.dangerous,
        "commands": list(group.commands),
    }


def permission_report(permissions: dict[str, Any]) -> dict[str, Any]:
    """Every group and command, and whether the permissions allow it (and why)."""
    enabled = set(effective_groups(permissions))
    groups = []
    for group in GROUPS:
        commands = []
        for command in group.commands:
            if command in permissions.get("deny", []):
                source = "denied"
            elif command in permissions.get("allow", []):
                source = "allowed_override"
            elif group.id in enabled:
                source = "group"
            else:
                source = "not_granted"
            commands.append({"command": command, "allowed": is_allowed(permissions, command), "source": source})
        groups.append({**group_view(group), "enabled": group.id in enabled, "commands": commands})
    return {
        "scope": permissions.get("scope", "read"),
        "token_scope": str(token_scope(permissions)),
        "groups": groups,
        "total_allowed": sum(is_allowed(permissions, command) for command in _COMMANDS),
        "total_commands": len(_COMMANDS),
    }

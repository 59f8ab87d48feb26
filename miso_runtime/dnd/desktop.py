"""The desktop's Do Not Disturb on Linux: GNOME through ``gsettings``, KDE Plasma through ``kwriteconfig``.

Why commands and not a D-Bus library: both desktops document these command-line tools for
exactly this, they need no extra Python package, and each call is short. Every command runs
without a shell, by its full path as found on ``PATH``, with a timeout, so a hung desktop
service costs a few seconds, never the runtime.

Which desktop: ``XDG_CURRENT_DESKTOP`` (the session's own name for itself), then whether its
tool is installed. A machine with neither (a server, a test box, a desktop we do not know)
gets :class:`NoDesktop`, which turns nothing on and says what is missing.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Protocol

from .. import constants

logger = logging.getLogger(__name__)

#: ``XDG_CURRENT_DESKTOP`` names of desktops that show notifications through GNOME Shell's
#: settings (Ubuntu and Pop!_OS say ``ubuntu:GNOME`` and ``pop:GNOME``).
GNOME_FAMILY = frozenset({"gnome", "gnome-classic", "gnome-flashback", "unity", "budgie"})


class DesktopError(Exception):
    """A desktop command that could not run or failed; the message says which and why."""


def run_command(argv: list[str], timeout_s: float = constants.DND_COMMAND_TIMEOUT_S) -> str:
    """Run ``argv`` (no shell) and return its stdout stripped; :class:`DesktopError` if it fails."""
    name = " ".join(argv[:3])
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout_s, check=False, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise DesktopError(f"{argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DesktopError(f"{name} did not answer within {timeout_s:g} s") from None
    except OSError as exc:
        raise DesktopError(f"{name} could not run: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[: constants.DND_ERROR_DETAIL_CHARS]
        raise DesktopError(f"{name} failed (exit {done.returncode}){': ' + detail if detail else ''}")
    return done.stdout.strip()


class Desktop(Protocol):
    """One way of turning the desktop's Do Not Disturb on and off."""

    #: Short name for the status and logs ("gnome", "kde", "none").
    name: str
    #: Why there is no control, for :class:`NoDesktop`; None when there is one.
    problem: str | None

    def set(self, enabled: bool) -> None:
        """Turn DND on or off; :class:`DesktopError` if the desktop refused."""
        ...

    def query(self) -> bool:
        """Whether the desktop's DND is on now; :class:`DesktopError` if it cannot be read."""
        ...


@dataclass
class GnomeDesktop:
    """GNOME Shell: DND is ``org.gnome.desktop.notifications show-banners`` set to false."""

    gsettings: str
    name: str = "gnome"
    problem: str | None = None

    def set(self, enabled: bool) -> None:
        run_command(
            [self.gsettings, "set", constants.DND_GNOME_SCHEMA, constants.DND_GNOME_KEY, _gvariant(not enabled)]
        )

    def query(self) -> bool:
        value = run_command([self.gsettings, "get", constants.DND_GNOME_SCHEMA, constants.DND_GNOME_KEY])
        if value not in ("true", "false"):
            raise DesktopError(f"gsettings get {constants.DND_GNOME_KEY} answered {value[:40]!r}, not a boolean")
        return value == "false"


@dataclass
class KdeDesktop:
    """KDE Plasma: DND is ``[DoNotDisturb] Until`` in ``plasmanotifyrc`` (what the notifications
    applet writes), set to a far date to mean "until turned off", and deleted to end it;
    ``--notify`` makes a running Plasma apply the change at once."""

    kwriteconfig: str
    kreadconfig: str | None
    name: str = "kde"
    problem: str | None = None

    def _args(self) -> list[str]:
        return ["--file", constants.DND_KDE_FILE, "--group", constants.DND_KDE_GROUP, "--key", constants.DND_KDE_KEY]

    def set(self, enabled: bool) -> None:
        change = [constants.DND_KDE_FOREVER] if enabled else ["--delete"]
        run_command([self.kwriteconfig, *self._args(), "--notify", *change])

    def query(self) -> bool:
        if self.kreadconfig is None:
            raise DesktopError("neither kreadconfig6 nor kreadconfig5 is on PATH: the state cannot be read")
        value = run_command([self.kreadconfig, *self._args()])
        if not value:
            return False
        try:
            parts = [int(part) for part in value.split(",")[:6]]
            until = datetime(*parts)  # type: ignore[arg-type] - year, month, day, hour, minute, second
        except (TypeError, ValueError):
            raise DesktopError(
                f"{constants.DND_KDE_FILE} {constants.DND_KDE_KEY}={value[:40]!r} is not a date"
            ) from None
        return until > datetime.now()


@dataclass
class NoDesktop:
    """No control we know of: every change fails with :attr:`problem` (the runtime goes on)."""

    problem: str
    name: str = "none"

    def set(self, enabled: bool) -> None:
        raise DesktopError(self.problem)

    def query(self) -> bool:
        raise DesktopError(self.problem)


def _gvariant(value: bool) -> str:
    return "true" if value else "false"


def detect_desktop(env: Mapping[str, str]) -> Desktop:
    """The control for the session ``env`` describes (``XDG_CURRENT_DESKTOP`` and ``PATH``)."""
    raw = env.get("XDG_CURRENT_DESKTOP", "").strip()
    names = {part.strip().lower() for part in raw.split(":") if part.strip()}
    path = env.get("PATH", "")

    def which(*commands: str) -> str | None:
        for command in commands:
            found = shutil.which(command, path=path)
            if found:
                return found
        return None

    if "kde" in names:
        kwriteconfig = which("kwriteconfig6", "kwriteconfig5")
        if kwriteconfig is None:
            return NoDesktop(
                f"KDE Plasma (XDG_CURRENT_DESKTOP={raw}) but neither kwriteconfig6 nor kwriteconfig5 is on PATH"
            )
        return KdeDesktop(kwriteconfig, which("kreadconfig6", "kreadconfig5"))
    if names & GNOME_FAMILY:
        gsettings = which("gsettings")
        if gsettings is None:
            return NoDesktop(f"GNOME (XDG_CURRENT_DESKTOP={raw}) but gsettings is not on PATH")
        return GnomeDesktop(gsettings)
    if not names:
        return NoDesktop(
            "no desktop session: XDG_CURRENT_DESKTOP is not set (Do Not Disturb needs GNOME, through gsettings,"
            " or KDE Plasma, through kwriteconfig6 or kwriteconfig5)"
        )
    return NoDesktop(
        f"no Do Not Disturb control for the desktop {raw!r}:"
        " supported are GNOME (gsettings) and KDE Plasma (kwriteconfig)"
    )


def notify(env: Mapping[str, str], title: str, body: str) -> None:
    """Show a desktop notification with ``notify-send`` when it is installed; otherwise only log it."""
    sender = shutil.which("notify-send", path=env.get("PATH", ""))
    if sender is None:
        logger.info("no notify-send on PATH; not shown: %s: %s", title, body)
        return
    try:
        run_command([sender, "--app-name", constants.DND_APP_NAME, title, body])
    except DesktopError as exc:
        logger.warning("the notification %r was not shown: %s", title, exc)

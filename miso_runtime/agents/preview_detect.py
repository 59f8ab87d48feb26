"""Finding dev servers that agent sessions start, so that their previews appear without a request.

A dev server says where it listens (``Local: http://localhost:5173/``). schmux reads every
output chunk of a session for such URLs and keeps only the ports that the session's own
processes listen on, so a URL in a log line or a README never opens a proxy. Here the worker
reads a session's output only while a terminal is open on it, so the pane itself is read:
:class:`PreviewDetector` captures the screen and recent scrollback of each session whose output
moved lately (tmux's ``window_activity``), at each reconcile tick, which also covers the sessions
already running when the runtime starts.

Which process listens where comes from ``/proc`` on Linux (the process tree from each
``/proc/<pid>/stat``, the listening sockets from ``/proc/net/tcp{,6}`` matched to the socket
inodes among ``/proc/<pid>/fd``), and from ``ps`` and ``lsof`` elsewhere (macOS).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .. import constants

logger = logging.getLogger(__name__)

#: ``http(s)://host[:port]``, as schmux matches it, plus bracketed IPv6 hosts (``http://[::]:8000/``,
#: which ``python -m http.server`` prints and schmux's pattern stops at). The host is not
#: checked: a ``Network:`` URL names the same port as the ``Local:`` one.
URL_RE = re.compile(r"(https?)://(\[[0-9a-fA-F:.%]+\]|[a-zA-Z0-9.\[\]-]+)(:(\d+))?", re.IGNORECASE)
#: CSI and OSC sequences and two-character escapes: colours must not split a URL.
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_PROC = Path("/proc")
#: TCP state ``LISTEN`` in ``/proc/net/tcp``.
_TCP_LISTEN = "0A"


def strip_ansi(text: str) -> str:
    return _ANSI_RE.sub("", text)


def ports_in_text(text: str) -> list[int]:
    """The ports of every ``http(s)://`` URL in ``text`` (80 or 443 when none is written), sorted."""
    ports = set()
    for match in URL_RE.finditer(strip_ansi(text)):
        if match.group(4):
            digits = match.group(4).lstrip("0")
            port = int(digits) if 0 < len(digits) <= 5 else 0
            if not 1 <= port <= 65535:
                continue
        else:
            port = 443 if match.group(1).lower() == "https" else 80
        ports.add(port)
    return sorted(ports)


def loopback_host(address: str) -> str | None:
    """The loopback host that reaches a listener bound to ``address``: ``127.0.0.1`` for
    ``127.0.0.1`` and ``0.0.0.0``, ``::1`` for ``::1`` and ``::``; ``None`` for any other address."""
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip in (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")):
        return "127.0.0.1" if ip.version == 4 else "::1"
    return None


def _merge(ports: dict[int, str], port: int, host: str) -> None:
    """Keep one host per port, IPv4 first (as schmux prefers it)."""
    if ports.get(port) != "127.0.0.1":
        ports[port] = host


class ProcessTable:
    """One look at the machine's processes and listening sockets, shared by one detection pass."""

    def __init__(self) -> None:
        self._linux = (_PROC / "net" / "tcp").exists()
        self._children: dict[int, list[int]] | None = None
        self._listeners: dict[int, tuple[str, int]] | None = None  # socket inode -> (address, port)

    def children(self) -> dict[int, list[int]]:
        if self._children is None:
            self._children = _children_linux() if self._linux else _children_ps()
        return self._children

    def tree(self, pid: int) -> list[int]:
        """``pid`` and all its descendants."""
        children = self.children()
        found, queue = [pid], [pid]
        while queue:
            for child in children.get(queue.pop(), []):
                if child not in found:
                    found.append(child)
                    queue.append(child)
        return found

    def listening_ports(self, pid: int) -> dict[int, str]:
        """``{port: loopback host}`` of the TCP listeners of ``pid``'s process tree."""
        pids = self.tree(pid)
        if not self._linux:
            return _listening_lsof(pids)
        listeners = self._all_listeners()
        ports: dict[int, str] = {}
        for one in pids:
            for inode in _socket_inodes(one):
                if inode in listeners:
                    address, port = listeners[inode]
                    host = loopback_host(address)
                    if host:
                        _merge(ports, port, host)
        return ports

    def any_listener_on(self, port: int) -> bool:
        """Whether anything on the machine listens on ``port`` (Linux; elsewhere assume so)."""
        if not self._linux:
            return True
        return any(p == port for _address, p in self._all_listeners().values())

    def _all_listeners(self) -> dict[int, tuple[str, int]]:
        if self._listeners is None:
            self._listeners = {}
            for name, width in (("tcp", 4), ("tcp6", 16)):
                self._listeners.update(_proc_listeners(_PROC / "net" / name, width))
        return self._listeners


def _children_linux() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # it ended meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rpartition(")")[2].split()
        if len(fields) >= 2 and fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def _children_ps() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    try:
        out = subprocess.run(
            ["ps", "-Ao", "pid=,ppid="], capture_output=True, text=True, timeout=constants.PREVIEW_TOOL_TIMEOUT_S
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return children
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            children.setdefault(int(parts[1]), []).append(int(parts[0]))
    return children


def _proc_listeners(path: Path, width: int) -> dict[int, tuple[str, int]]:
    """``{inode: (address, port)}`` of the listening sockets in one ``/proc/net/tcp*`` table.

    Addresses are written as 32-bit words in host byte order, eight hex digits each.
    """
    found: dict[int, tuple[str, int]] = {}
    try:
        lines = path.read_text().splitlines()[1:]
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _TCP_LISTEN:
            continue
        address_hex, _, port_hex = fields[1].partition(":")
        try:
            words = [int(address_hex[i : i + 8], 16) for i in range(0, width * 2, 8)]
            packed = b"".join(struct.pack("=I", word) for word in words)
            address = str(ipaddress.ip_address(packed))
            found[int(fields[9])] = (address, int(port_hex, 16))
        except (ValueError, struct.error):
            continue
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    fd_dir = _PROC / str(pid) / "fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        try:
            target = os.readlink(fd_dir / name)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _listening_lsof(pids: Iterable[int]) -> dict[int, str]:
    lsof = shutil.which("lsof")
    ports: dict[int, str] = {}
    if not lsof:
        return ports
    try:
        out = subprocess.run(
            [lsof, "-Pan", "-p", ",".join(map(str, pids)), "-iTCP", "-sTCP:LISTEN", "-Fn"],
            capture_output=True,
            text=True,
            timeout=constants.PREVIEW_TOOL_TIMEOUT_S,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ports
    for line in out.splitlines():
        if not line.startswith("n"):
            continue
        address, _, port = line[1:].rpartition(":")
        host = "127.0.0.1" if address == "*" else loopback_host(address)
        if host and port.isdigit():
            _merge(ports, int(port), host)
    return ports


@dataclass
class LiveSession:
    """A running session of a workspace, as the detector needs it."""

    name: str
    workspace_id: str
    pane_pid: int
    last_output_at: datetime | None


@dataclass
class _Seen:
    activity: datetime | None = None
    changed_at: float = field(default_factory=time.monotonic)


class PreviewDetector:
    """Opens previews for the dev servers that sessions announce and listen on.

    The caller passes the preview manager's view of things as callables, so this class holds no
    preview state of its own beyond what detection needs: the 45 s cooldown per
    ``workspace:port`` (schmux's), the sessions' last seen output, and the ports whose preview a
    person deleted (not reopened while that server keeps listening).
    """

    def __init__(
        self,
        capture: Callable[[str], str],
        has_preview: Callable[[str, int], bool],
        proxy_ports: Callable[[], set[int]],
        create: Callable[[str, str, int], bool],
        cooldown_s: float = constants.PREVIEW_DETECT_COOLDOWN_S,
    ) -> None:
        self._capture = capture
        self.cooldown_s = cooldown_s
        self._has_preview = has_preview
        self._proxy_ports = proxy_ports
        self._create = create
        self._lock = threading.Lock()
        self._cooldown: dict[tuple[str, int], float] = {}
        self._seen: dict[str, _Seen] = {}
        self._dismissed: set[tuple[str, int]] = set()

    def dismiss(self, workspace_id: str, port: int) -> None:
        """A person (or the idle cleanup) removed this preview: leave it closed while its server runs."""
        with self._lock:
            self._dismissed.add((workspace_id, port))

    def forget_workspace(self, workspace_id: str) -> None:
        with self._lock:
            self._dismissed = {key for key in self._dismissed if key[0] != workspace_id}
            self._cooldown = {key: at for key, at in self._cooldown.items() if key[0] != workspace_id}

    def scan(self, sessions: list[LiveSession]) -> bool:
        """One pass over ``sessions``; True when a preview was opened."""
        now = time.monotonic()
        live = {s.name for s in sessions}
        with self._lock:
            self._seen = {name: seen for name, seen in self._seen.items() if name in live}
        table = ProcessTable()
        opened = False
        for session in sessions:
            if not self._due(session, now):
                continue
            try:
                text = self._capture(session.name)
            except Exception as exc:  # noqa: BLE001 - the session ended meanwhile, or tmux is busy
                logger.debug("preview detection could not read %s: %s", session.name, exc)
                continue
            opened |= self._scan_text(session, text, table, now)
        return opened

    def _due(self, session: LiveSession, now: float) -> bool:
        """Whether a session's pane is worth reading: its output moved since the last look, or
        lately (a URL printed just before its server listened is found once it listens)."""
        with self._lock:
            seen = self._seen.get(session.name)
            if seen is None:
                self._seen[session.name] = _Seen(session.last_output_at, now)
                return True
            if session.last_output_at != seen.activity:
                seen.activity = session.last_output_at
                seen.changed_at = now
                return True
            return now - seen.changed_at < constants.PREVIEW_DETECT_RECENT_S

    def _scan_text(self, session: LiveSession, text: str, table: ProcessTable, now: float) -> bool:
        workspace_id = session.workspace_id
        proxies = self._proxy_ports()
        candidates = [p for p in ports_in_text(text) if p not in proxies and not self._has_preview(workspace_id, p)]
        if not candidates:
            return False
        listening = table.listening_ports(session.pane_pid)
        opened = False
        for port in candidates:
            key = (workspace_id, port)
            with self._lock:
                if key in self._dismissed:
                    if not table.any_listener_on(port):
                        self._dismissed.discard(key)  # that server is gone: a new one may open again
                    continue
                if port not in listening:
                    continue
                last = self._cooldown.get(key)
                if last is not None and now - last < self.cooldown_s:
                    continue
                self._cooldown[key] = now
            if self._create(workspace_id, listening[port], port):
                logger.info("preview detected for workspace %s: %s port %d", workspace_id, listening[port], port)
                opened = True
        return opened

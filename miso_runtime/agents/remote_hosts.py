"""Remote hosts: connecting them, keeping them in a file, and what the dashboard reads of them.

schmux's model, which the dashboard is built on: a flavor names a kind of machine; connecting
it makes a *host* (``remote-<8 hex>``) with a status (``provisioning`` while the connect
command runs, ``connecting`` once it printed the hostname, ``connected`` when tmux answers in
control mode, ``disconnected`` when the command ends, ``expired`` after 12 hours,
``reconnecting`` while a reconnect runs). Connects run in the background: the route answers
202 at once and the dashboard polls ``GET /api/remote/hosts`` while it shows the provisioning
terminal. Hosts are kept in ``agents-remote-hosts.json``; after a restart a host that was
connected is ``disconnected`` (its connect command died with the old process) until the user
reconnects, as schmux does (a reconnect may need a key touch).

Sessions on a host are agent sessions like any other (:mod:`~miso_runtime.agents.remote_sessions`).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import constants
from ..errors import MisoError
from ..settings_files import write_atomic
from .command_template import TemplateError, render
from .remote_connection import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    EXPIRED,
    PROVISIONING,
    RECONNECTING,
    TMUX_CONTROL_SUFFIX,
    RemoteConnection,
    RemoteError,
    control_quote,
)
from .remote_flavors import RemoteFlavor

logger = logging.getLogger(__name__)

#: schmux's default commands when a flavor names none (``-tt``: tmux needs a remote PTY).
DEFAULT_CONNECT = "ssh -tt {{.Flavor}} --"
DEFAULT_RECONNECT = "ssh -tt {{.Hostname}} --"
#: Statuses during which a connect for the same flavor joins the running attempt.
_UNDER_WAY = (PROVISIONING, CONNECTING, RECONNECTING)


@dataclass
class RemoteHost:
    """A host as kept in the file (times in unix seconds; ``None``: never)."""

    id: str
    flavor_id: str
    hostname: str = ""
    uuid: str = ""
    status: str = PROVISIONING
    provisioned: bool = False
    connected_at: float | None = None
    expires_at: float | None = None
    #: Whether the host's workspace (``remote-<id>``) is in the state: from its first spawn
    #: until it is disposed.
    workspace: bool = False


def go_time(moment: float | None) -> str:
    """RFC 3339 as schmux writes a ``time.Time`` here: a zero time is ``0001-01-01T00:00:00Z``."""
    if moment is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def connect_command(flavor: RemoteFlavor) -> str:
    """The full connect command line: the flavor's template run with its data, then tmux."""
    return _rendered(flavor.connect_command or DEFAULT_CONNECT, "connect", {"Flavor": flavor.flavor})


def reconnect_command(flavor: RemoteFlavor, hostname: str) -> str:
    """The reconnect line: its own template, else the connect one (which may name the hostname)."""
    template = flavor.reconnect_command or flavor.connect_command or DEFAULT_RECONNECT
    return _rendered(template, "reconnect", {"Hostname": hostname, "Flavor": flavor.flavor})


def _rendered(template: str, name: str, data: dict[str, str]) -> str:
    try:
        return render(template + TMUX_CONTROL_SUFFIX, name, data)
    except TemplateError as exc:
        raise RemoteError(f"failed to execute {name} command template: {exc}") from None


class HostStore:
    """``{host id: RemoteHost}`` in a JSON file, replaced atomically on every change."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._hosts: dict[str, RemoteHost] = {}
        known = {f.name for f in fields(RemoteHost)}
        if path.is_file():
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                for item in raw.get("hosts", []):
                    host = RemoteHost(**{k: v for k, v in item.items() if k in known})
                    self._hosts[host.id] = host
            except (ValueError, TypeError, AttributeError) as exc:
                logger.warning("ignoring unreadable %s: %s", path, exc)

    def _save(self) -> None:
        write_atomic(self._path, json.dumps({"version": 1, "hosts": [asdict(h) for h in self._hosts.values()]}))

    def all(self) -> list[RemoteHost]:
        with self._lock:
            return [RemoteHost(**asdict(h)) for h in self._hosts.values()]

    def get(self, host_id: str) -> RemoteHost | None:
        with self._lock:
            host = self._hosts.get(host_id)
            return RemoteHost(**asdict(host)) if host else None

    def put(self, host: RemoteHost) -> None:
        with self._lock:
            self._hosts[host.id] = RemoteHost(**asdict(host))
            self._save()

    def update(self, host_id: str, **changes: Any) -> RemoteHost | None:
        with self._lock:
            host = self._hosts.get(host_id)
            if host is None:
                return None
            for key, value in changes.items():
                setattr(host, key, value)
            self._save()
            return RemoteHost(**asdict(host))

    def drop(self, host_id: str) -> None:
        with self._lock:
            if self._hosts.pop(host_id, None) is not None:
                self._save()


class RemoteHostManager:
    """Connections by host id, their hosts in the store, and the routes' answers.

    ``flavors()`` reads the configured flavors fresh (the flavor routes change the file);
    ``on_change()`` runs after anything the dashboard shows changed; ``on_output(host id,
    pane id, data)`` gets every remote pane's output; ``on_lost(host id)`` runs when a
    connection ends (its sessions' terminals end).
    """

    def __init__(
        self,
        store: HostStore,
        flavors: Callable[[], list[RemoteFlavor]],
        *,
        ready_timeout_s: float = constants.REMOTE_READY_TIMEOUT_S,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self._flavors = flavors
        self.ready_timeout_s = ready_timeout_s
        self._on_change = on_change
        self.on_output: Callable[[str, str, bytes], None] = lambda _host, _pane, _data: None
        self.on_window_close: Callable[[str, str], None] = lambda _host, _window: None
        self.on_lost: Callable[[str], None] = lambda _host: None
        #: Called after a connection came up (sessions are reconciled with the host's windows).
        self.on_connected: Callable[[str, RemoteConnection], None] = lambda _host, _conn: None
        self._lock = threading.Lock()
        self._connect_lock = threading.Lock()
        self._connections: dict[str, RemoteConnection] = {}
        self._stopped = threading.Event()
        self._mark_stale_hosts()
        threading.Thread(target=self._expire_loop, name="remote-expiry", daemon=True).start()

    # --- reading ----------------------------------------------------------------------------

    def flavors(self) -> list[RemoteFlavor]:
        return self._flavors()

    def flavor(self, flavor_id: str) -> RemoteFlavor | None:
        return next((f for f in self._flavors() if f.id == flavor_id), None)

    def connection(self, host_id: str) -> RemoteConnection | None:
        with self._lock:
            return self._connections.get(host_id)

    def provisioning_connection(self, provision_id: str) -> RemoteConnection | None:
        """The connection whose provisioning session is ``provision_id`` (``provision-<host id>``)."""
        if not provision_id.startswith("provision-"):
            return None
        return self.connection(provision_id[len("provision-") :])

    def live_status(self, host_id: str) -> str:
        """The status of the host's live connection; ``disconnected`` without one (state may be stale)."""
        conn = self.connection(host_id)
        return conn.status if conn else DISCONNECTED

    def hosts(self) -> list[dict[str, Any]]:
        """``GET /api/remote/hosts``: every kept host, with its flavor's name and VCS."""
        flavors = {f.id: f for f in self._flavors()}
        answer = []
        for host in self.store.all():
            answer.append(self._host_response(host, flavors.get(host.flavor_id), always_times=True))
        return answer

    def _host_response(self, host: RemoteHost, flavor: RemoteFlavor | None, *, always_times: bool) -> dict[str, Any]:
        conn = self.connection(host.id)
        item: dict[str, Any] = {"id": host.id, "flavor_id": host.flavor_id}
        if flavor and flavor.display_name:
            item["display_name"] = flavor.display_name
        item["hostname"] = host.hostname
        if host.uuid:
            item["uuid"] = host.uuid
        item.update(status=host.status, provisioned=host.provisioned)
        if flavor and flavor.vcs:
            item["vcs"] = flavor.vcs
        if always_times or host.connected_at:
            item["connected_at"] = go_time(host.connected_at)
        if always_times or host.expires_at:
            item["expires_at"] = go_time(host.expires_at)
        if conn is not None:
            item["provisioning_session_id"] = conn.provisioning_session_id
        return item

    def flavor_statuses(self) -> list[dict[str, Any]]:
        """``GET /api/remote/flavor-statuses``: each flavor with its live connection's status."""
        with self._lock:
            connections = list(self._connections.items())
        hosts = {h.id: h for h in self.store.all()}
        answer = []
        for flavor in self._flavors():
            entry: dict[str, Any] = {"flavor": flavor.status_view(), "connected": False, "status": DISCONNECTED}
            for host_id, conn in connections:
                host = hosts.get(host_id)
                if host is not None and host.flavor_id == flavor.id:
                    entry.update(connected=conn.connected, status=conn.status)
                    hostname = conn.facts.hostname or host.hostname
                    if hostname:
                        entry["hostname"] = hostname
                    entry["host_id"] = host_id
                    break
            answer.append(entry)
        return answer

    def progress(self, host_id: str, cursor: int) -> dict[str, Any]:
        """The connect command's output lines from ``cursor`` on, and where the attempt stands
        (``GET /api/remote/hosts/connect/stream`` polls it)."""
        conn = self.connection(host_id)
        if conn is None:
            return {"lines": [], "cursor": cursor, "status": DISCONNECTED, "error": "connection not found"}
        lines = list(conn.facts.progress)
        # ``progress`` keeps the last lines only: the cursor counts every line ever read.
        total = conn.facts.lines_read
        new = lines[max(0, len(lines) - (total - cursor)) :] if total > cursor else []
        return {"lines": new, "cursor": total, "status": conn.status, "error": conn.facts.error}

    # --- connecting -------------------------------------------------------------------------

    def connect(self, flavor_id: str) -> tuple[int, dict[str, Any]]:
        """``POST /api/remote/hosts/connect``: 200 with the host when it is connected, else 202
        with the provisioning session of the attempt (a new one, or the one under way)."""
        flavor = self.flavor(flavor_id)
        if flavor is None:
            raise MisoError(404, "flavor_not_found", f"Flavor not found: {flavor_id}")
        with self._connect_lock:
            existing = self.live_for_flavor(flavor_id)
            if existing is not None and existing[1].connected:
                host = self.store.get(existing[0])
                if host is not None:
                    return 200, self._host_response(host, flavor, always_times=True)
            if existing is not None and existing[1].status in _UNDER_WAY:
                return 202, self._accepted(flavor, existing[1])
            try:
                command = connect_command(flavor)
            except RemoteError as exc:
                raise MisoError(500, "connect_failed", f"Failed to start connection: {exc.message}") from None
            host = RemoteHost(f"remote-{secrets.token_hex(4)}", flavor_id)
            conn = self._new_connection(host, command, flavor, PROVISIONING)
            with self._lock:
                for other_id, other in list(self._connections.items()):
                    other_host = self.store.get(other_id)
                    if other_host and other_host.flavor_id == flavor_id and other.status in (DISCONNECTED, EXPIRED):
                        del self._connections[other_id]
                self._connections[host.id] = conn
            self.store.put(host)
            try:
                conn.start()
            except RemoteError as exc:
                self.store.update(host.id, status=DISCONNECTED)
                self._on_change()
                raise MisoError(500, "connect_failed", f"Failed to start connection: {exc.message}") from None
        self._on_change()
        threading.Thread(target=self._bring_up, args=(host.id, conn, flavor, None), daemon=True).start()
        return 202, self._accepted(flavor, conn)

    def connect_and_wait(self, flavor_id: str, timeout_s: float) -> RemoteConnection:
        """A connected connection for the flavor (a spawn on a host that is not up yet waits)."""
        _status, _body = self.connect(flavor_id)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.live_for_flavor(flavor_id)
            if found is not None and found[1].connected:
                return found[1]
            if found is None or found[1].status == DISCONNECTED:
                error = found[1].facts.error if found else "connection not found"
                raise MisoError(502, "remote_failed", f"failed to connect to remote host: {error}")
            time.sleep(0.05)
        raise MisoError(504, "remote_timeout", "failed to connect to remote host: timed out")

    def reconnect(self, host_id: str, on_fail: Callable[[str], None]) -> dict[str, Any]:
        """``POST /api/remote/hosts/{id}/reconnect`` → 202; ``on_fail(host id)`` when it fails."""
        host = self.store.get(host_id)
        if host is None:
            raise MisoError(404, "host_not_found", "Host not found")
        conn = self.connection(host_id)
        if not host.hostname and conn is not None and conn.facts.hostname:
            host = self.store.update(host_id, hostname=conn.facts.hostname) or host
        if not host.hostname:
            raise MisoError(
                500, "reconnect_failed", f"Failed to start reconnection: remote host has no hostname: {host_id}"
            )
        flavor = self.flavor(host.flavor_id)
        if flavor is None:
            raise MisoError(
                500, "reconnect_failed", f"Failed to start reconnection: remote flavor not found: {host.flavor_id}"
            )
        with self._connect_lock:
            if conn is not None and (conn.connected or conn.status in (RECONNECTING, CONNECTING)):
                return self._reconnect_accepted(host, flavor, conn)
            try:
                command = reconnect_command(flavor, host.hostname)
            except RemoteError as exc:
                raise MisoError(500, "reconnect_failed", f"Failed to start reconnection: {exc.message}") from None
            fresh = self._new_connection(host, command, flavor, RECONNECTING)
            with self._lock:
                old = self._connections.get(host_id)
                self._connections[host_id] = fresh
            if old is not None:
                old.close()
            self.store.update(host_id, status=RECONNECTING)
            try:
                fresh.start()
            except RemoteError as exc:
                self.store.update(host_id, status=DISCONNECTED)
                raise MisoError(500, "reconnect_failed", f"Failed to start reconnection: {exc.message}") from None
        self._on_change()
        threading.Thread(target=self._bring_up, args=(host_id, fresh, flavor, on_fail), daemon=True).start()
        return self._reconnect_accepted(host, flavor, fresh)

    def disconnect(self, host_id: str) -> None:
        """``DELETE /api/remote/hosts/{id}``: close the connection; the host stays, ``disconnected``."""
        with self._lock:
            conn = self._connections.pop(host_id, None)
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # noqa: BLE001 - schmux only logs a failed disconnect
                logger.warning("remote %s: disconnect failed: %s", host_id, exc)
        self.store.update(host_id, status=DISCONNECTED)
        self.on_lost(host_id)
        self._on_change()

    def forget(self, host_id: str) -> None:
        """Drop a host whose reconnect failed (its sessions and workspace are gone already)."""
        with self._lock:
            conn = self._connections.pop(host_id, None)
        if conn is not None:
            conn.close()
        self.store.drop(host_id)

    def close_all(self) -> None:
        """The worker is stopping: every connection ends (schmux's DisconnectAll)."""
        self._stopped.set()
        with self._lock:
            connections, self._connections = dict(self._connections), {}
        for host_id, conn in connections.items():
            conn.close()
            self.store.update(host_id, status=DISCONNECTED)

    # --- internals --------------------------------------------------------------------------

    def _accepted(self, flavor: RemoteFlavor, conn: RemoteConnection) -> dict[str, Any]:
        return {
            "flavor_id": flavor.id,
            "display_name": flavor.display_name,
            "status": PROVISIONING,
            "vcs": flavor.vcs,
            "provisioning_session_id": conn.provisioning_session_id,
        }

    @staticmethod
    def _reconnect_accepted(host: RemoteHost, flavor: RemoteFlavor, conn: RemoteConnection) -> dict[str, Any]:
        return {
            "id": host.id,
            "flavor_id": host.flavor_id,
            "display_name": flavor.display_name,
            "hostname": host.hostname,
            "status": RECONNECTING,
            "vcs": flavor.vcs,
            "provisioning_session_id": conn.provisioning_session_id,
        }

    def live_for_flavor(self, flavor_id: str) -> tuple[str, RemoteConnection] | None:
        with self._lock:
            connections = list(self._connections.items())
        for host_id, conn in connections:
            host = self.store.get(host_id)
            if host is not None and host.flavor_id == flavor_id:
                return host_id, conn
        return None

    def _new_connection(self, host: RemoteHost, command: str, flavor: RemoteFlavor, status: str) -> RemoteConnection:
        host_id = host.id

        def on_status(status: str) -> None:
            changes: dict[str, Any] = {"status": status, "hostname": conn.facts.hostname or host.hostname}
            if conn.facts.uuid:
                changes["uuid"] = conn.facts.uuid
            if self.connection(host_id) is conn:  # a replaced connection's end is no news
                self.store.update(host_id, **changes)
                if status == DISCONNECTED:
                    self.on_lost(host_id)
                self._on_change()

        conn = RemoteConnection(
            host_id,
            command,
            hostname_regex=flavor.hostname_regex,
            hostname=host.hostname,
            status=status,
            on_status=on_status,
            on_output=lambda pane, data: self.on_output(host_id, pane, data),
            on_window_close=lambda window: self.on_window_close(host_id, window),
        )
        return conn

    def _bring_up(
        self, host_id: str, conn: RemoteConnection, flavor: RemoteFlavor, on_fail: Callable[[str], None] | None
    ) -> None:
        """Wait for control mode; then provision once, reconcile sessions, and keep the facts."""
        try:
            conn.wait_connected(self.ready_timeout_s)
        except RemoteError as exc:
            logger.warning("remote %s: connection failed: %s", host_id, exc.message)
            self.store.update(host_id, status=DISCONNECTED)
            self._on_change()
            if on_fail is not None:
                on_fail(host_id)
            return
        now = time.time()
        # the connection starts with the kept hostname, so its facts always hold the latest one
        host = self.store.update(
            host_id,
            status=CONNECTED,
            hostname=conn.facts.hostname,
            uuid=conn.facts.uuid,
            connected_at=now,
            expires_at=now + constants.REMOTE_HOST_EXPIRY_S,
        )
        if host is not None and not host.provisioned and flavor.provision_command:
            self._provision(host, conn, flavor)
        try:
            self.on_connected(host_id, conn)
        except Exception:  # noqa: BLE001 - reconciling must not undo the connection
            logger.exception("remote %s: reconciling sessions failed", host_id)
        self._on_change()

    def _provision(self, host: RemoteHost, conn: RemoteConnection, flavor: RemoteFlavor) -> None:
        """The flavor's provision command, once per host, on the host (``run-shell`` through tmux)."""
        try:
            command = render(
                flavor.provision_command, "provision", {"WorkspacePath": flavor.workspace_path, "Repo": ""}
            )
            conn.client.call([f"run-shell {control_quote(command)}"], timeout_s=constants.REMOTE_PROVISION_TIMEOUT_S)
        except (TemplateError, MisoError) as exc:
            logger.warning("remote %s: provision failed: %s", host.id, exc)
            return
        self.store.update(host.id, provisioned=True)

    def _mark_stale_hosts(self) -> None:
        """After a restart no connection is alive: a host kept as connected is disconnected."""
        now = time.time()
        for host in self.store.all():
            if host.status in (CONNECTED, *_UNDER_WAY):
                expired = host.expires_at is not None and host.expires_at < now
                self.store.update(host.id, status=EXPIRED if expired else DISCONNECTED)

    def _expire_loop(self) -> None:
        while not self._stopped.wait(constants.REMOTE_EXPIRY_CHECK_S):
            self.expire_hosts()

    def expire_hosts(self, now: float | None = None) -> int:
        """Close and mark ``expired`` every host past its ``expires_at``; how many were."""
        now = time.time() if now is None else now
        count = 0
        for host in self.store.all():
            if host.expires_at is not None and host.expires_at < now and host.status != EXPIRED:
                with self._lock:
                    conn = self._connections.pop(host.id, None)
                if conn is not None:
                    conn.close()
                self.store.update(host.id, status=EXPIRED)
                self.on_lost(host.id)
                count += 1
        if count:
            self._on_change()
        return count


__all__ = ["HostStore", "RemoteHost", "RemoteHostManager", "connect_command", "go_time", "reconnect_command"]

"""Remote access: what the ``/v1/iroh/*`` routes call, and who a tunnel request speaks for.

The endpoint itself runs in the ``iroh`` worker (:mod:`.tunnel` says why); this service holds
the credentials and clients (:class:`~.store.IrohAuthStore`) and the tunnel's state as the
worker reports it, and answers the request guard's question for bridged requests: which
:class:`~miso_runtime.auth.Principal` is this peer, if any. Nothing here imports Flask or gevent.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from typing import Any, Callable

from workers.protocol.base import LogLine, WorkerStarted
from workers.protocol.iroh import DropPeer, PeerConnected, ServeApi, TunnelFailed, TunnelOnline
from workers.supervisor import Worker, WorkerUnavailable

from ..auth import Principal
from ..errors import MisoError
from . import scope as scopes
from .qr import png_data_uri
from .store import IrohAuthStore, normalize_endpoint_id, unix_s

logger = logging.getLogger(__name__)

#: ``last_error`` while remote access is switched off.
DISABLED_MESSAGE = "remote access is off: start the runtime with MISO_IROH_ENABLED=1 (iroh_enabled in config.toml)"


class IrohService:
    """The credentials, the clients and the tunnel's state."""

    def __init__(
        self,
        store: IrohAuthStore,
        worker: Worker | None,
        bridge_secret: str,
        serving_port: Callable[[], int | None],
    ) -> None:
        self.store = store
        self._worker = worker
        self._bridge_secret = bridge_secret.encode()
        self._serving_port = serving_port
        self._lock = threading.Lock()
        #: Where each peer connected from last (a peer that registers later is marked connected then).
        self._peer_addrs: dict[str, str] = {}
        self._state: dict[str, Any] = {
            "online": False,
            "endpoint_id": "",
            "relay_url": "",
            "direct_addrs": [],
            "local_port": 0,
            "started_at": 0,
            "last_error": None if worker is not None else DISABLED_MESSAGE,
        }

    # --- the worker's reports ---------------------------------------------------------------

    def handle_event(self, _name: str, event: object) -> None:
        if isinstance(event, WorkerStarted):
            port = self._serving_port()
            if port and self._worker is not None:
                self._send(ServeApi(port))
        elif isinstance(event, TunnelOnline):
            with self._lock:
                self._state.update(
                    online=True,
                    endpoint_id=event.endpoint_id,
                    relay_url=event.relay_url,
                    direct_addrs=list(event.direct_addrs),
                    local_port=self._serving_port() or 0,
                    started_at=event.started_at,
                    last_error=event.last_error,
                )
        elif isinstance(event, TunnelFailed):
            with self._lock:
                self._state.update(online=False, last_error=event.message)
        elif isinstance(event, LogLine):
            # The worker's own log records, in the server's log (its stderr is the server's too).
            logger.log(logging.getLevelName(event.level), "iroh worker: %s", event.message)
        elif isinstance(event, PeerConnected):
            with self._lock:
                self._peer_addrs[event.endpoint_id] = event.remote_addr
            self.store.mark_connected(event.endpoint_id, event.remote_addr)

    def handle_exit(self, _name: str, code: int | None) -> None:
        with self._lock:
            self._state.update(online=False, last_error=f"the iroh worker exited with code {code}; it is restarted")

    def _send(self, command: object) -> None:
        if self._worker is None:
            return
        try:
            self._worker.send(command)  # type: ignore[arg-type]
        except WorkerUnavailable as exc:
            logger.info("iroh: %s not delivered: %s", type(command).__name__, exc)

    def _drop(self, endpoint_ids: list[str]) -> None:
        for endpoint_id in endpoint_ids:
            self._send(DropPeer(endpoint_id))

    # --- the routes -------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        with self._lock:
            state = dict(self._state, direct_addrs=list(self._state["direct_addrs"]))
        return {**state, "auth": self.store.counts()}

    def phone_invite(self, totp_id: str | None, name: str | None) -> dict[str, Any]:
        """Everything a phone needs in one QR code: where to connect and the TOTP secret."""
        with self._lock:
            online = self._state["online"]
            endpoint_id, relay_url = self._state["endpoint_id"], self._state["relay_url"]
            direct_addrs = list(self._state["direct_addrs"])
        if not online:
            raise MisoError(409, "offline", "iroh tunnel is not online yet")
        if totp_id is None:
            if name is None:
                raise MisoError(400, "invalid_request", 'provide either "totp_id" or "name" to create a new TOTP')
            totp_id = self.store.create_totp(name)["totp"]["id"]
        credential = self.store.totp_secret(totp_id)
        payload = {
            "endpoint_id": endpoint_id,
            "relay_url": relay_url,
            "totp_id": credential["id"],
            "secret_base32": credential["secret_base32"],
            "name": credential["name"],
            "created_at": unix_s(),
            # Not in the daemon's payload: with no relay, these are the only way in.
            "direct_addrs": direct_addrs,
        }
        otpauth_url, _qr = self.store.totp_qr(totp_id)
        return {
            "payload": payload,
            "otpauth_url": otpauth_url,
            "qr_png_base64": png_data_uri(json.dumps(payload, separators=(",", ":"))),
        }

    def create_totp(self, name: str) -> dict[str, Any]:
        return self.store.create_totp(name)

    def totp_qr(self, totp_id: str) -> dict[str, Any]:
        url, qr = self.store.totp_qr(totp_id)
        return {"id": totp_id, "otpauth_url": url, "qr_png_base64": qr}

    def revoke_totp(self, totp_id: str) -> dict[str, Any]:
        self._drop(self.store.revoke_totp(totp_id))
        return {"revoked": True, "id": totp_id}

    def register_client(
        self,
        endpoint_id: str,
        otp: str,
        totp_id: str | None,
        name: str | None,
        scope: str | None,
        peer: str | None = None,
    ) -> dict[str, Any]:
        """Register a client; ``peer``: the verified endpoint id when the request came through the tunnel.

        Through the tunnel a peer registers itself only: a valid code must not let it enrol
        another device's id.
        """
        if peer is not None and normalize_endpoint_id(endpoint_id) != peer:
            raise MisoError(403, "forbidden", "through the tunnel, endpoint_id must be your own endpoint id")
        client = self.store.register_client(endpoint_id, otp, totp_id, name, scope)
        if peer is not None:
            with self._lock:
                remote_addr = self._peer_addrs.get(peer)
            if remote_addr is not None:
                self.store.mark_connected(peer, remote_addr)
                client = self.store.client(client["id"])
        return {"client": client, "registered": True}

    def revoke_client(self, client_id: str) -> dict[str, Any]:
        self._drop([self.store.revoke_client(client_id)])
        return {"revoked": True, "id": client_id}

    def set_scope(
        self,
        client_id: str,
        scope: str,
        groups: list[str] | None,
        allow: list[str] | None,
        deny: list[str] | None,
    ) -> dict[str, Any]:
        permissions = self.store.set_permissions(client_id, scope, groups, allow, deny)
        dangerous = scopes.dangerous_groups(permissions)
        warnings = []
        if dangerous:
            warnings = ["This scope enables groups that can change this computer:"]
            warnings += [f"{group.label}: {group.description}" for group in dangerous]
        return {
            "id": client_id,
            "permissions": permissions,
            "token_scope": str(scopes.token_scope(permissions)),
            "warnings": warnings,
            "dangerous_groups": [group.label for group in dangerous],
        }

    def permissions(self, client_id: str) -> dict[str, Any]:
        client = self.store.client(client_id)
        return {
            "id": client_id,
            "name": client["name"],
            "permissions": client["permissions"],
            "report": scopes.permission_report(client["permissions"]),
        }

    def scope_groups(self) -> dict[str, Any]:
        return {
            "groups": [scopes.group_view(group) for group in scopes.GROUPS],
            "builtin_scopes": {"read": list(scopes.READ_GROUPS), "full": "all groups"},
        }

    # --- the guard's questions --------------------------------------------------------------

    def bridged_peer(self, secret: str | None, peer: str | None) -> str | None:
        """The peer a loopback request speaks for, when it carries the bridge's secret; else None.

        A request that names a peer without the right secret is refused outright: only the
        iroh worker knows the secret, so anything else claiming to be a peer is forged.
        """
        if secret is None and peer is None:
            return None
        if secret is None or peer is None or not hmac.compare_digest(secret.encode(), self._bridge_secret):
            raise MisoError(401, "unauthorized", "invalid iroh bridge credentials")
        return normalize_endpoint_id(peer)

    def principal_for(self, peer: str) -> Principal | None:
        """The principal of a registered, active client; None for a peer that has not registered.

        A revoked client is refused here (also on the registration route: pairing it again
        is for the local admin, who can register its endpoint id with a fresh code).
        """
        status, client = self.store.peer_status(peer)
        if status == "revoked":
            raise MisoError(401, "unauthorized", "this iroh client was revoked")
        if client is None:
            return None
        return Principal(f"iroh:{client['id']}", scopes.token_scope(client["permissions"]))

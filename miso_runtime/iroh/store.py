"""TOTP credentials and registered remote clients, kept in one JSON file in the data dir.

Why a file and not SQLite: the daemon keeps exactly this (``iroh_auth.json``), it is small, and
it holds secrets that belong with the endpoint's key rather than in the shared database that
every worker opens. Only the server process reads and writes it; one lock serialises the
changes, and each change is written whole to a temporary file that replaces the old one (mode
0600), so a crash leaves the old file or the new one, never half of one.

A TOTP code is single use: each credential remembers the last time step a code was accepted
for, and a code of that step or an earlier one is refused, so a code seen on the wire (or over
a shoulder) cannot register a second device.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pyotp

from .. import constants
from ..errors import MisoError
from . import scope as scopes
from .qr import png_data_uri

logger = logging.getLogger(__name__)

#: Fields of a TOTP credential that leave the store (never its secret).
_TOTP_VIEW = ("id", "name", "created_at", "revoked_at", "last_used_at")
_CLIENT_VIEW = (
    "id",
    "name",
    "endpoint_id",
    "totp_id",
    "scope",
    "permissions",
    "created_at",
    "revoked_at",
    "last_connected_at",
    "last_remote_addr",
    "last_ip",
    "last_country",
    "last_city",
    "last_locale",
)


def unix_s() -> int:
    return int(time.time())


def _make_id(prefix: str, now: int) -> str:
    return f"{prefix}_{now}_{secrets.token_hex(8)}"


def normalize_endpoint_id(endpoint_id: str) -> str:
    return endpoint_id.strip().lower()


def totp_for(entry: dict[str, Any]) -> pyotp.TOTP:
    """The RFC 6238 generator of a stored credential (SHA-1, 6 digits, 30 s)."""
    return pyotp.TOTP(
        entry["secret_b32"],
        digits=constants.IROH_TOTP_DIGITS,
        interval=constants.IROH_TOTP_STEP_S,
        issuer=constants.IROH_TOTP_ISSUER,
        name=entry["name"],
    )


class IrohAuthStore:
    """TOTP credentials and clients; every method is safe to call from any thread."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._db = self._load()

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"totp": [], "clients": []}
        except (OSError, ValueError) as exc:
            # A damaged file must not lock the user out of the rest of the runtime; keep it aside.
            aside = self._path.with_suffix(".damaged")
            logger.error("cannot read %s (%s); moved it to %s and started empty", self._path, exc, aside)
            os.replace(self._path, aside)
            return {"totp": [], "clients": []}
        return {"totp": list(raw.get("totp", [])), "clients": list(raw.get("clients", []))}

    def _save(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".iroh_auth.", dir=self._path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(self._db, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, 0o600)
            os.replace(temporary, self._path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _now(self) -> int:
        return int(self._clock())

    # --- TOTP credentials -------------------------------------------------------------------

    def list_totp(self) -> list[dict[str, Any]]:
        """Every credential, newest first, without secrets."""
        with self._lock:
            rows = [{key: entry.get(key) for key in _TOTP_VIEW} for entry in self._db["totp"]]
        return sorted(rows, key=lambda row: row["created_at"], reverse=True)

    def create_totp(self, name: str) -> dict[str, Any]:
        """A new credential named ``name``: its view, otpauth URL and QR code."""
        name = name.strip()
        if not name:
            raise MisoError(400, "invalid_request", "name must not be empty")
        now = self._now()
        entry = {
            "id": _make_id("totp", now),
            "name": name,
            "secret_b32": pyotp.random_base32(),
            "created_at": now,
            "revoked_at": None,
            "last_used_at": None,
            "last_used_step": None,
        }
        with self._lock:
            self._db["totp"].append(entry)
            self._save()
        logger.info("created TOTP credential %s (%s)", entry["id"], name)
        url, qr = self.totp_qr(entry["id"])
        return {"totp": {key: entry[key] for key in _TOTP_VIEW}, "otpauth_url": url, "qr_png_base64": qr}

    def _totp(self, totp_id: str) -> dict[str, Any]:
        for entry in self._db["totp"]:
            if entry["id"] == totp_id:
                return entry
        raise MisoError(404, "not_found", f"unknown totp id: {totp_id}")

    def totp_qr(self, totp_id: str) -> tuple[str, str]:
        """The credential's ``otpauth://`` URL (it holds the secret) and a QR code of it."""
        with self._lock:
            entry = dict(self._totp(totp_id))
        url = totp_for(entry).provisioning_uri()
        return url, png_data_uri(url)

    def totp_secret(self, totp_id: str) -> dict[str, Any]:
        """A live credential's id, name and base32 secret (for the phone invite)."""
        with self._lock:
            entry = dict(self._totp(totp_id))
        if entry["revoked_at"] is not None:
            raise MisoError(409, "revoked", "that TOTP credential is revoked")
        return {"id": entry["id"], "name": entry["name"], "secret_base32": entry["secret_b32"]}

    def revoke_totp(self, totp_id: str) -> list[str]:
        """Revoke a credential and every client registered with it; returns their endpoint ids."""
        now = self._now()
        dropped: list[str] = []
        with self._lock:
            entry = self._totp(totp_id)
            if entry["revoked_at"] is not None:
                return dropped
            entry["revoked_at"] = now
            for client in self._db["clients"]:
                if client["totp_id"] == totp_id and client["revoked_at"] is None:
                    client["revoked_at"] = now
                    dropped.append(client["endpoint_id"])
            self._save()
        logger.info("revoked TOTP credential %s and its %d clients", totp_id, len(dropped))
        return dropped

    def _verify(self, otp: str, totp_id: str | None) -> dict[str, Any]:
        """The credential that ``otp`` is a fresh code of (caller holds the lock), marked used.

        Codes of the current step and one step either side are accepted, each once: a code
        whose step is not later than the credential's last accepted step is refused.
        """
        if totp_id is not None:
            entry = self._totp(totp_id)
            if entry["revoked_at"] is not None:
                raise MisoError(403, "revoked", "that TOTP credential is revoked")
            candidates = [entry]
        else:
            candidates = [entry for entry in self._db["totp"] if entry["revoked_at"] is None]
        now = self._clock()
        current = int(now) // constants.IROH_TOTP_STEP_S
        steps = range(current - constants.IROH_TOTP_SKEW_STEPS, current + constants.IROH_TOTP_SKEW_STEPS + 1)
        matched: list[tuple[dict[str, Any], int]] = []
        for entry in candidates:
            totp = totp_for(entry)
            for step in steps:
                if hmac.compare_digest(totp.at(step * constants.IROH_TOTP_STEP_S).encode(), otp.encode()):
                    matched.append((entry, step))
                    break
        if not matched:
            raise MisoError(401, "invalid_otp", "invalid otp")
        if len(matched) > 1:
            raise MisoError(409, "ambiguous_otp", "otp matched multiple active TOTP credentials; pass `totp_id`")
        entry, step = matched[0]
        last = entry.get("last_used_step")
        if last is not None and step <= last:
            raise MisoError(401, "otp_reused", "that otp was already used; wait for the next code")
        entry["last_used_step"] = step
        entry["last_used_at"] = int(now)
        return entry

    # --- clients ----------------------------------------------------------------------------

    def list_clients(self) -> list[dict[str, Any]]:
        """Every client, newest first."""
        with self._lock:
            rows = [_client_view(client) for client in self._db["clients"]]
        return sorted(rows, key=lambda row: row["created_at"], reverse=True)

    def register_client(
        self,
        endpoint_id: str,
        otp: str,
        totp_id: str | None = None,
        name: str | None = None,
        scope: str | None = None,
    ) -> dict[str, Any]:
        """Register (or update) the client of ``endpoint_id`` with a fresh code of a credential."""
        endpoint_id = normalize_endpoint_id(endpoint_id)
        if not endpoint_id:
            raise MisoError(400, "invalid_request", "endpoint_id must not be empty")
        otp = otp.strip()
        if not otp:
            raise MisoError(400, "invalid_request", "otp must not be empty")
        normalized = scopes.normalize_scope(scope) if scope is not None else None
        now = self._now()
        with self._lock:
            credential = self._verify(otp, totp_id)
            existing = self._active_client(endpoint_id)
            if existing is not None:
                if name and name.strip():
                    existing["name"] = name.strip()
                existing["totp_id"] = credential["id"]
                if normalized is not None:
                    existing["scope"] = normalized
                    existing["permissions"] = _permissions(normalized)
                self._save()
                return _client_view(existing)
            client = {
                "id": _make_id("client", now),
                "name": (name or "").strip() or f"client-{endpoint_id[:8]}",
                "endpoint_id": endpoint_id,
                "totp_id": credential["id"],
                "scope": normalized or "read",
                "permissions": _permissions(normalized or "read"),
                "created_at": now,
                "revoked_at": None,
                "last_connected_at": None,
                "last_remote_addr": None,
                "last_ip": None,
                "last_country": None,
                "last_city": None,
                "last_locale": None,
            }
            self._db["clients"].append(client)
            self._save()
        logger.info("registered iroh client %s (%s, scope %s)", client["id"], endpoint_id, client["scope"])
        return _client_view(client)

    def _client(self, client_id: str) -> dict[str, Any]:
        for client in self._db["clients"]:
            if client["id"] == client_id:
                return client
        raise MisoError(404, "not_found", f"unknown client id: {client_id}")

    def _active_client(self, endpoint_id: str) -> dict[str, Any] | None:
        for client in self._db["clients"]:
            if client["endpoint_id"] == endpoint_id and client["revoked_at"] is None:
                return client
        return None

    def client(self, client_id: str) -> dict[str, Any]:
        with self._lock:
            return _client_view(self._client(client_id))

    def revoke_client(self, client_id: str) -> str:
        """Revoke a client; returns its endpoint id (so its open connection can be closed)."""
        with self._lock:
            client = self._client(client_id)
            if client["revoked_at"] is None:
                client["revoked_at"] = self._now()
                self._save()
                logger.info("revoked iroh client %s (%s)", client_id, client["endpoint_id"])
            return client["endpoint_id"]

    def set_permissions(
        self,
        client_id: str,
        scope: str,
        groups: list[str] | None,
        allow: list[str] | None,
        deny: list[str] | None,
    ) -> dict[str, Any]:
        """Replace a client's scope; lists left out keep their values."""
        normalized = scopes.normalize_scope(scope)
        for values, check in ((groups, scopes.validate_groups), (allow, scopes.validate_commands)):
            if values is not None:
                check(values)
        if deny is not None:
            scopes.validate_commands(deny)
        with self._lock:
            client = self._client(client_id)
            permissions = dict(client.get("permissions") or _permissions(client.get("scope", "read")))
            permissions["scope"] = normalized
            for key, values in (("groups", groups), ("allow", allow), ("deny", deny)):
                if values is not None:
                    permissions[key] = list(values)
            client["scope"] = normalized
            client["permissions"] = permissions
            self._save()
            return dict(permissions)

    def peer_status(self, endpoint_id: str) -> tuple[str, dict[str, Any] | None]:
        """``("active", client)``, ``("revoked", None)`` or ``("unknown", None)`` for a peer."""
        endpoint_id = normalize_endpoint_id(endpoint_id)
        with self._lock:
            active = self._active_client(endpoint_id)
            if active is not None:
                return "active", _client_view(active)
            if any(client["endpoint_id"] == endpoint_id for client in self._db["clients"]):
                return "revoked", None
        return "unknown", None

    def mark_connected(self, endpoint_id: str, remote_addr: str) -> None:
        """Record when and from where an active client last connected."""
        with self._lock:
            client = self._active_client(normalize_endpoint_id(endpoint_id))
            if client is None:
                return
            client["last_connected_at"] = self._now()
            client["last_remote_addr"] = remote_addr
            client["last_ip"] = remote_addr.rsplit(":", 1)[0].strip("[]") if ":" in remote_addr else remote_addr
            self._save()

    def counts(self) -> dict[str, int]:
        with self._lock:
            clients = self._db["clients"]
            return {
                "totp_total": len(self._db["totp"]),
                "clients_total": len(clients),
                "clients_active": sum(client["revoked_at"] is None for client in clients),
            }


def _permissions(scope: str) -> dict[str, Any]:
    return {"scope": scope, "groups": [], "allow": [], "deny": []}


def _client_view(client: dict[str, Any]) -> dict[str, Any]:
    view = {key: client.get(key) for key in _CLIENT_VIEW}
    permissions = client.get("permissions") or _permissions(client.get("scope", "read"))
    view["permissions"] = dict(permissions)
    view["scope"] = permissions.get("scope", "read")
    return view

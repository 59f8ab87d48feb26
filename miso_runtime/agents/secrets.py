"""The coding agents' secrets: model API keys and the GitHub OAuth client, in one file of mode 0600.

Why a file and not the system keyring: the runtime runs headless as often as on a desktop, and
a keyring without a backend (no Secret Service on a server) would fail exactly where a person is
not there to unlock it. The file is the one schmux keeps (``~/.schmux/secrets.json``), in the
data dir: ``{"models": {id: {KEY: VALUE}}, "auth": {"github": {"client_id", "client_secret"},
"session_secret"}}``.

It is never readable by anyone else, not even for a moment: each save writes a temporary file
created with mode 0600 (``mkstemp``), fsyncs it and renames it over the old one, so a crash
leaves the old secrets or the new ones. A file found with wider permissions (made by hand) is
narrowed to 0600 when read, with a warning. Values never reach a log line, an error message or
the config file: callers get them only to hand them to an agent's environment, and answers only
say whether a secret is set.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets as random_secrets
import stat
import threading
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..settings_files import write_atomic

logger = logging.getLogger(__name__)

#: Permission bits of the secrets file: owner read and write, nobody else anything.
FILE_MODE = 0o600


class SecretsError(Exception):
    """The secrets file cannot be read or written; the message names the file, never a value."""


class SecretsStore:
    """One secrets file; every read sees the file as it is now (a hand edit included)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one read-modify-write at a time

    # --- reading ------------------------------------------------------------------------------

    def load(self) -> dict[str, Any]:
        """The whole file as ``{"models": {...}, "auth": {...}}`` (empty sections when it does not exist)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {"models": {}, "auth": {}}
        except OSError as exc:
            raise SecretsError(f"cannot read {self.path}: {exc.strerror}") from None
        self._narrow_permissions()
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            # The parser's message quotes no content, but say less anyway: it is a secrets file.
            raise SecretsError(f"{self.path} is not valid JSON") from None
        if not isinstance(data, dict):
            raise SecretsError(f"{self.path} does not hold a JSON object")
        models = data.get("models") or {}
        auth = data.get("auth") or {}
        if not isinstance(models, dict) or not isinstance(auth, dict):
            raise SecretsError(f"{self.path}: 'models' and 'auth' must be objects")
        clean = {
            model_id: {str(k): str(v) for k, v in entry.items()}
            for model_id, entry in models.items()
            if isinstance(entry, dict)
        }
        return {**data, "models": clean, "auth": auth}

    def model_secrets(self) -> dict[str, dict[str, str]]:
        """Every model's stored secrets, ``{model id: {KEY: VALUE}}``."""
        return self.load()["models"]

    def github(self) -> tuple[str, str]:
        """``(client_id, client_secret)`` of the GitHub OAuth app ("" for each one not set)."""
        github = self.load()["auth"].get("github") or {}
        if not isinstance(github, dict):
            return "", ""
        return str(github.get("client_id") or ""), str(github.get("client_secret") or "")

    def _narrow_permissions(self) -> None:
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
            if mode & ~FILE_MODE:
                logger.warning("%s was readable by others (mode %o); narrowing it to 0600", self.path, mode)
                os.chmod(self.path, FILE_MODE)
        except OSError as exc:
            logger.warning("cannot check the permissions of %s: %s", self.path, exc.strerror)

    # --- writing ------------------------------------------------------------------------------

    def save_model(self, model_id: str, values: Mapping[str, str]) -> None:
        """Replace ``model_id``'s secrets with ``values`` (the whole map, as schmux does)."""
        with self._lock:
            data = self.load()
            data["models"][model_id] = dict(values)
            self._write(data)

    def delete_models(self, model_ids: Iterable[str]) -> None:
        """Remove the entries of ``model_ids`` (those that exist); nothing is written when none does."""
        with self._lock:
            data = self.load()
            removed = [data["models"].pop(model_id) for model_id in model_ids if model_id in data["models"]]
            if removed:
                self._write(data)

    def save_github(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            data = self.load()
            auth = dict(data["auth"])
            auth["github"] = {"client_id": client_id, "client_secret": client_secret}
            data["auth"] = auth
            self._write(data)

    def session_secret(self) -> str:
        """The key that signs auth sessions (32 random bytes, base64 without padding), made on first use."""
        with self._lock:
            data = self.load()
            existing = data["auth"].get("session_secret")
            if isinstance(existing, str) and existing:
                return existing
            made = base64.b64encode(random_secrets.token_bytes(32)).decode().rstrip("=")
            data["auth"] = {**data["auth"], "session_secret": made}
            self._write(data)
            return made

    def _write(self, data: dict[str, Any]) -> None:
        """Atomically, through ``write_atomic``: its temp file comes from ``mkstemp``, so it is 0600
        from its creation whatever the umask, and readers see the old file or the new one."""
        try:
            write_atomic(self.path, json.dumps(data, indent=2))
        except OSError as exc:
            raise SecretsError(f"cannot write {self.path}: {exc.strerror}") from None

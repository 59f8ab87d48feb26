"""The dashboard login's configuration as the runtime starts with it, and what is wrong with it.

``access_control.enabled`` in the agents config turns GitHub login on for the schmux dashboard's
own listener, which is then served with TLS, on ``network.bind_address``. That is only safe when
every piece is there, so the runtime refuses to start with login on and any piece missing, and
names each one (schmux's own config check lists the same pieces): an https ``public_base_url``
(``http://localhost`` allowed), the ``github`` provider, readable TLS files that load as a
certificate and its key, and the OAuth app's client id and secret in the secrets file. The
session key is made on first use, as schmux does; one that is there but not base64 is refused.

Why a snapshot taken at start: the listener is bound with the TLS files and address, so a
change through ``POST /api/config`` could not take effect before a restart anyway.
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ..agents.config import AgentsConfig
    from ..agents.secrets import SecretsStore

logger = logging.getLogger(__name__)

#: ``network.bind_address`` values that open the dashboard to the network (schmux's rule: exactly this one).
NETWORK_BIND = "0.0.0.0"


@dataclass(frozen=True)
class LoginConfig:
    """Everything the login needs, resolved once; ``problems`` lists what stops the runtime."""

    enabled: bool = False
    client_id: str = ""
    client_secret: str = ""
    session_key: bytes = b""
    public_base_url: str = ""
    session_ttl_s: int = 1440 * 60
    bind_address: str = "127.0.0.1"
    cert_path: str = ""
    key_path: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def network_access(self) -> bool:
        """Whether the dashboard listens on every interface (then any origin is allowed, as in schmux)."""
        return self.bind_address == NETWORK_BIND

    @property
    def tls(self) -> tuple[str, str]:
        return self.cert_path, self.key_path


def public_url_ok(value: str) -> bool:
    """https with a host, or ``http://localhost[:port]`` (schmux's ``IsValidPublicBaseURL``)."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    if not parts.scheme or not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.netloc.split(":")[0] == "localhost")


def _readable(name: str, path: str) -> str | None:
    """None when ``path`` can be opened for reading, else the problem, naming the setting."""
    if not path:
        return f"{name} is required when access_control.enabled is true"
    try:
        with open(os.path.expanduser(path), "rb"):
            return None
    except OSError as exc:
        return f"{name} is not readable: {exc.strerror or exc}: {path}"


def _tls_problems(cert_path: str, key_path: str) -> list[str]:
    problems = [
        p for p in (_readable("network.tls.cert_path", cert_path), _readable("network.tls.key_path", key_path)) if p
    ]
    if problems:
        return problems
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            os.path.expanduser(cert_path), os.path.expanduser(key_path)
        )
    except (ssl.SSLError, OSError, ValueError) as exc:
        return [f"network.tls.cert_path and key_path do not load as a certificate and its key: {exc}"]
    return []


def load_login_config(config: "AgentsConfig", secrets: "SecretsStore") -> LoginConfig:
    """The login as ``config`` and the secrets file describe it now (off unless ``access_control.enabled``)."""
    from ..agents.secrets import SecretsError  # the agents package imports nothing of auth's
    from .github_login import from_b64raw

    access = config.access_control
    network = config.network
    if not access.enabled:
        return LoginConfig()
    problems: list[str] = []
    public_base_url = network.public_base_url.strip()
    if not public_base_url:
        problems.append("network.public_base_url is required when access_control.enabled is true")
    elif not public_url_ok(public_base_url):
        problems.append(f"network.public_base_url must be https (http://localhost is allowed), not {public_base_url!r}")
    if access.provider.strip() != "github":
        problems.append(f'access_control.provider must be "github", not {access.provider!r}')
    cert_path, key_path = network.tls.cert_path.strip(), network.tls.key_path.strip()
    problems.extend(_tls_problems(cert_path, key_path))
    client_id = client_secret = ""
    key = b""
    try:
        client_id, client_secret = (value.strip() for value in secrets.github())
        if not client_id:
            problems.append(f"auth.github.client_id is required in {secrets.path}")
        if not client_secret:
            problems.append(f"auth.github.client_secret is required in {secrets.path}")
        key = from_b64raw(secrets.session_secret())
        if not key:
            problems.append(f"auth.session_secret in {secrets.path} is empty")
    except SecretsError as exc:
        problems.append(f"the session secret and GitHub client cannot be read: {exc}")
    except ValueError:
        problems.append(f"auth.session_secret in {secrets.path} is not base64 without padding")
    return LoginConfig(
        enabled=True,
        client_id=client_id,
        client_secret=client_secret,
        session_key=key,
        public_base_url=public_base_url,
        session_ttl_s=access.session_ttl_minutes * 60,
        bind_address=network.bind_address.strip() or "127.0.0.1",
        cert_path=os.path.expanduser(cert_path),
        key_path=os.path.expanduser(key_path),
        problems=tuple(problems),
    )

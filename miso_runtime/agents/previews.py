"""Workspace previews: a loopback proxy port per dev server of a workspace (schmux's previews).

A preview maps ``(workspace, target_host, target_port)`` to a proxy listening on
``127.0.0.1:<proxy_port>`` (:mod:`.preview_proxy`); the dashboard shows
``http://localhost:<proxy_port>`` in an iframe. The manager lives in the ``agents`` worker
and owns the previews' lifecycle:

- create (or reuse the existing mapping), within the limits of ``network.preview_max_*``;
- status: ``ready`` when a TCP connection to the target succeeds, else ``degraded`` with
  ``last_error``;
- a reconcile pass every 5 s: a dead listener drops its mapping, a target that was healthy and
  has stopped answering for more than 3 s drops it too (its server was stopped), idle previews
  (``network.preview_idle_timeout_ms``) are closed, and :class:`.preview_detect.PreviewDetector`
  opens previews for the dev servers that sessions announce;
- persisted in a JSON file (written atomically) and restored at start, each listener on its
  old port when that port is still free, so an open preview tab keeps working;
- removed with their workspace.

Network probes run outside the manager's lock, so a slow target never holds up a listing or
a relayed connection.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .. import constants
from ..errors import MisoError
from ..settings_files import write_atomic
from .preview_detect import LiveSession, PreviewDetector
from .preview_proxy import PreviewProxy, probe
from .tmux_sessions import session_name_for

logger = logging.getLogger(__name__)

STATUS_READY = "ready"
STATUS_DEGRADED = "degraded"
#: The hosts a preview may target (schmux's list); each must also resolve only to loopback.
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
NOT_LOOPBACK = "target host must be loopback (127.0.0.1, ::1, or localhost)"
BAD_PORT = "target port must be between 1 and 65535"


@dataclass
class Preview:
    """One mapping; times are Unix seconds (``last_healthy_at`` ``None`` until the target answered)."""

    id: str
    workspace_id: str
    target_host: str
    target_port: int
    proxy_port: int
    status: str
    last_error: str
    created_at: float
    last_used_at: float
    last_healthy_at: float | None = None

    def to_contract(self) -> dict[str, Any]:
        """schmux's ``previewResponse``: ``url`` names ``localhost``, ``last_error`` only when set."""
        answer: dict[str, Any] = {
            "id": self.id,
            "workspace_id": self.workspace_id,
            "target_host": self.target_host,
            "target_port": self.target_port,
            "proxy_port": self.proxy_port,
            "url": f"http://localhost:{self.proxy_port}",
            "status": self.status,
        }
        if self.last_error:
            answer["last_error"] = self.last_error
        return answer

    def to_file(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("created_at", "last_used_at", "last_healthy_at"):
            record[name] = _iso(record[name])
        return record

    @classmethod
    def from_file(cls, record: dict[str, Any]) -> Preview:
        values = dict(record)
        for name in ("created_at", "last_used_at", "last_healthy_at"):
            values[name] = _unix(values.get(name))
        values["created_at"] = values["created_at"] or time.time()
        values["last_used_at"] = values["last_used_at"] or values["created_at"]
        preview = cls(**values)
        if not (isinstance(preview.id, str) and isinstance(preview.target_port, int)):
            raise TypeError("bad preview record")
        return preview


def _iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _unix(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def normalize_target_host(host: str) -> str:
    """Lowercased and trimmed, ``""`` -> ``127.0.0.1``; one of :data:`LOOPBACK_HOSTS`, resolving only
    to loopback addresses (400 otherwise)."""
    host = host.strip().lower() or "127.0.0.1"
    if host not in LOOPBACK_HOSTS:
        raise MisoError(400, "target_not_loopback", NOT_LOOPBACK)
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise MisoError(500, "target_unresolved", f"failed to resolve target host: {exc}") from None
    if not infos:
        raise MisoError(500, "target_unresolved", "target host did not resolve to any address")
    for info in infos:
        if not ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]).is_loopback:
            raise MisoError(400, "target_not_loopback", NOT_LOOPBACK)
    return host


class PreviewManager:
    """Every workspace's previews, their proxies, the reconcile loop and the auto-detection.

    Parameters
    ----------
    backend : AgentsBackend
        For the workspaces (``workspaces``), the sessions (``tmux``, ``records``), the config
        (``config.network``) and publishing (``changed``).
    path : Path
        The JSON file the previews are kept in.
    interval_s : float
        Seconds between reconcile passes (schmux: 5).
    """

    def __init__(self, backend: Any, path: Path, interval_s: float = constants.PREVIEW_RECONCILE_S) -> None:
        self._backend = backend
        self._path = path
        self.interval_s = interval_s
        self._lock = threading.RLock()
        self._previews: dict[str, Preview] = {}
        self._proxies: dict[str, PreviewProxy] = {}
        #: ``last_used_at`` moved since the last save (written at most every PREVIEW_USE_SAVE_S).
        self._use_dirty = False
        self._saved_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.detector = PreviewDetector(
            capture=lambda name: self._backend.tmux.capture(
                name, scrollback_lines=constants.PREVIEW_DETECT_SCROLLBACK_LINES, escapes=False
            ),
            has_preview=self.has_preview_on_port,
            proxy_ports=self.proxy_ports,
            create=self._create_detected,
        )
        self._load()

    @classmethod
    def attach(cls, backend: Any, path: Path) -> PreviewManager:
        """Make the manager, hook it into ``backend`` (dashboard state, workspace removal),
        re-open the saved previews and start the reconcile loop."""
        manager = cls(backend, path)
        backend.previews_of = manager.for_workspace
        backend.on_workspace_removed.append(manager.remove_workspace)
        manager.restore()
        manager.start()
        return manager

    def methods(self) -> dict[str, Callable[..., Any]]:
        """The worker's RPC methods of the preview routes."""
        return {
            "previews_check": self.check_workspace,
            "previews_list": self.list_route,
            "previews_create": self.create_route,
            "previews_delete": self.delete_route,
        }

    # --- file -------------------------------------------------------------------------------

    def _load(self) -> None:
        if not self._path.is_file():
            return
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            previews = [Preview.from_file(item) for item in raw.get("previews", [])]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            logger.warning("ignoring unreadable %s: %s", self._path, exc)
            return
        self._previews = {p.id: p for p in previews}

    def _save(self) -> None:
        """Write the file (lock held)."""
        body = {"version": 1, "previews": [p.to_file() for p in self._previews.values()]}
        try:
            write_atomic(self._path, json.dumps(body, indent=2))
        except OSError as exc:
            logger.warning("could not save %s: %s", self._path, exc)
        self._use_dirty = False
        self._saved_at = time.monotonic()

    # --- reading ----------------------------------------------------------------------------

    def for_workspace(self, workspace_id: str) -> list[dict[str, Any]]:
        """The workspace's previews for the dashboard, by target port then id (no probing)."""
        with self._lock:
            previews = [p for p in self._previews.values() if p.workspace_id == workspace_id]
            return [p.to_contract() for p in sorted(previews, key=lambda p: (p.target_port, p.id))]

    def has_preview_on_port(self, workspace_id: str, port: int) -> bool:
        with self._lock:
            return any(p.workspace_id == workspace_id and p.target_port == port for p in self._previews.values())

    def proxy_ports(self) -> set[int]:
        with self._lock:
            return {p.proxy_port for p in self._previews.values() if p.proxy_port > 0}

    def _setting(self, name: str, default: int) -> int:
        """A ``network.preview_*`` setting; missing or not positive means the default (as schmux)."""
        value = getattr(getattr(self._backend.config, "network", None), name, None)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else default

    # --- routes -----------------------------------------------------------------------------

    def check_workspace(self, workspace_id: str) -> dict[str, Any]:
        """404 ``workspace not found`` for an unknown workspace (the routes check this first)."""
        try:
            self._backend.workspaces.get(workspace_id)
        except MisoError as exc:
            if exc.status == 404:
                raise MisoError(404, "workspace_not_found", "workspace not found") from None
            raise
        return {"exists": True}

    def list_route(self, workspace_id: str) -> list[dict[str, Any]]:
        """``GET /api/workspaces/{id}/previews``: each listener re-opened if it died, each status re-checked."""
        self.check_workspace(workspace_id)
        with self._lock:
            ids = [p.id for p in self._previews.values() if p.workspace_id == workspace_id]
            try:
                for preview_id in ids:
                    self._ensure_listener(self._previews[preview_id])
            except MisoError as exc:
                raise MisoError(500, "preview_list_failed", f"failed to list previews: {exc.message}") from None
        changed = any([self._probe_and_apply(preview_id) for preview_id in ids])
        if changed:
            self._backend.changed()
        return self.for_workspace(workspace_id)

    def create_route(self, workspace_id: str, target_host: str, target_port: int) -> dict[str, Any]:
        """``POST /api/workspaces/{id}/previews``."""
        self.check_workspace(workspace_id)
        preview = self.create_or_get(workspace_id, target_host, target_port)
        self._backend.changed()
        return preview.to_contract()

    def delete_route(self, workspace_id: str, preview_id: str) -> dict[str, Any]:
        """``DELETE /api/workspaces/{id}/previews/{previewId}``: an unknown id is fine (idempotent)."""
        self.check_workspace(workspace_id)
        with self._lock:
            preview = self._previews.get(preview_id)
            if preview is None:
                return {"status": "ok"}
            if preview.workspace_id != workspace_id:
                raise MisoError(500, "preview_not_in_workspace", "preview not found in workspace")
            self._remove(preview_id)
            self._save()
        self.detector.dismiss(workspace_id, preview.target_port)
        self._backend.changed()
        return {"status": "ok"}

    # --- changing ---------------------------------------------------------------------------

    def create_or_get(self, workspace_id: str, target_host: str, target_port: int) -> Preview:
        """The workspace's preview of that target (made within the limits if there is none), probed."""
        host = normalize_target_host(target_host)
        if not 1 <= target_port <= 65535:
            raise MisoError(400, "bad_target_port", BAD_PORT)
        error = probe(host, target_port)  # before the lock, and before the preview is visible
        with self._lock:
            preview = next(
                (
                    p
                    for p in self._previews.values()
                    if p.workspace_id == workspace_id and p.target_host == host and p.target_port == target_port
                ),
                None,
            )
            if preview is None:
                self._enforce_limits(workspace_id)
                now = time.time()
                preview = Preview(
                    id=f"prev_{secrets.token_hex(4)}",
                    workspace_id=workspace_id,
                    target_host=host,
                    target_port=target_port,
                    proxy_port=0,
                    status=STATUS_DEGRADED,
                    last_error="",
                    created_at=now,
                    last_used_at=now,
                )
            self._ensure_listener(preview)
            self._record(preview, error)
            self._previews[preview.id] = preview
            self._save()
        return preview

    def _enforce_limits(self, workspace_id: str) -> None:
        """409 (the face maps any "limit" message so) when a cap is reached; global first, as schmux."""
        max_global = self._setting("preview_max_global", constants.PREVIEW_MAX_GLOBAL)
        if len(self._previews) >= max_global:
            raise MisoError(409, "preview_limit", f"global preview limit reached ({max_global})")
        max_workspace = self._setting("preview_max_per_workspace", constants.PREVIEW_MAX_PER_WORKSPACE)
        if sum(1 for p in self._previews.values() if p.workspace_id == workspace_id) >= max_workspace:
            raise MisoError(409, "preview_limit", f"workspace preview limit reached ({max_workspace})")

    def _ensure_listener(self, preview: Preview) -> None:
        """Give ``preview`` a live proxy (lock held): its old port when that is free, else a new one."""
        proxy = self._proxies.get(preview.id)
        if proxy is not None and proxy.alive:
            return
        if proxy is not None:
            proxy.close()
        try:
            proxy = PreviewProxy(
                preview.target_host,
                preview.target_port,
                lambda error, preview_id=preview.id: self._connected(preview_id, error),
                port=preview.proxy_port,
            )
        except OSError as exc:
            raise MisoError(500, "preview_listener", f"failed to allocate proxy listener: {exc}") from None
        self._proxies[preview.id] = proxy
        preview.proxy_port = proxy.port
        preview.last_used_at = time.time()

    def _probe_and_apply(self, preview_id: str, save: bool = True) -> bool:
        """Probe the target of one preview (outside the lock) and record the answer; True if its
        status or error changed."""
        with self._lock:
            preview = self._previews.get(preview_id)
        if preview is None:
            return False
        error = probe(preview.target_host, preview.target_port)
        with self._lock:
            if self._previews.get(preview_id) is not preview:
                return False
            changed = self._record(preview, error)
            if save:
                self._save()
        return changed

    @staticmethod
    def _record(preview: Preview, error: str | None) -> bool:
        before = (preview.status, preview.last_error)
        if error is None:
            preview.status, preview.last_error = STATUS_READY, ""
            preview.last_healthy_at = time.time()
        else:
            preview.status, preview.last_error = STATUS_DEGRADED, error
        return (preview.status, preview.last_error) != before

    def _connected(self, preview_id: str, error: str | None) -> None:
        """A relayed connection (on its thread): touch ``last_used_at``; a degraded preview whose
        target answered is ready again at once."""
        preview = self._previews.get(preview_id)
        if preview is None:
            return
        preview.last_used_at = time.time()
        self._use_dirty = True
        if error is None and preview.status != STATUS_READY:
            with self._lock:
                changed = self._previews.get(preview_id) is preview and self._record(preview, None)
                if changed:
                    self._save()
            if changed:
                threading.Thread(target=self._backend.changed, name="preview-publish", daemon=True).start()

    def _remove(self, preview_id: str) -> Preview | None:
        """Close and forget one preview (lock held; the caller saves)."""
        proxy = self._proxies.pop(preview_id, None)
        if proxy is not None:
            proxy.close()
        return self._previews.pop(preview_id, None)

    def remove_workspace(self, workspace_id: str) -> None:
        """The workspace is gone (disposed, or dropped by a scan): so are its previews."""
        with self._lock:
            doomed = [p.id for p in self._previews.values() if p.workspace_id == workspace_id]
            for preview_id in doomed:
                self._remove(preview_id)
            if doomed:
                self._save()
        self.detector.forget_workspace(workspace_id)

    def restore(self) -> None:
        """Re-open the saved previews of workspaces that still exist (at start)."""
        known = {w.id for w in self._backend.workspaces.list()}
        with self._lock:
            for preview in list(self._previews.values()):
                if preview.workspace_id not in known:
                    self._previews.pop(preview.id)
                    continue
                try:
                    self._ensure_listener(preview)
                except MisoError as exc:
                    logger.warning("preview %s not restored: %s", preview.id, exc.message)
                    self._previews.pop(preview.id)
            ids = list(self._previews)
            self._save()
        for preview_id in ids:
            self._probe_and_apply(preview_id, save=False)
        with self._lock:
            self._save()
        if ids:
            logger.info("restored %d preview(s)", len(ids))

    # --- the loop ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="preview-reconcile", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the loop and every listener (the saved file keeps the previews for the next start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval_s + 1)
        with self._lock:
            for proxy in self._proxies.values():
                proxy.close()
            self._proxies.clear()

    def _loop(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one failed pass must not end the loop
                logger.exception("preview reconcile pass failed")
            if self._stop.wait(self.interval_s):
                return

    def tick(self) -> None:
        """One pass: health of every preview, idle cleanup, then detection; publish if anything changed."""
        changed = self.reconcile()
        try:
            sessions = self._live_sessions()
        except MisoError as exc:  # tmux missing or busy: no detection this time
            logger.debug("preview detection skipped: %s", exc.message)
            sessions = []
        changed |= self.detector.scan(sessions)
        if changed:
            self._backend.changed()

    def reconcile(self) -> bool:
        """Check every preview's listener and target (schmux's reconcile), close idle ones."""
        known = {w.id for w in self._backend.workspaces.list()}
        with self._lock:
            snapshot = list(self._previews.values())
        changed = False
        now = time.time()
        idle_s = self._setting("preview_idle_timeout_ms", constants.PREVIEW_IDLE_TIMEOUT_MS) / 1000
        for preview in snapshot:
            proxy = self._proxies.get(preview.id)
            if preview.workspace_id not in known or proxy is None or not proxy.alive:
                reason = "its workspace is gone" if preview.workspace_id not in known else "its listener died"
                logger.info("preview %s removed: %s", preview.id, reason)
                changed |= self._drop(preview)
                continue
            if now - preview.last_used_at >= idle_s:
                logger.info("preview %s closed after %.0f s unused", preview.id, now - preview.last_used_at)
                changed |= self._drop(preview)
                self.detector.dismiss(preview.workspace_id, preview.target_port)
                continue
            error = probe(preview.target_host, preview.target_port)
            with self._lock:
                if self._previews.get(preview.id) is not preview:
                    continue
                healthy_before = preview.last_healthy_at
                if (
                    error is not None
                    and healthy_before is not None
                    and time.time() - healthy_before > constants.PREVIEW_STALE_GRACE_S
                ):
                    # Its server answered before and has stopped: the tab would only show an error.
                    logger.info("preview %s removed: %s", preview.id, error)
                    self._remove(preview.id)
                    changed = True
                    continue
                changed |= self._record(preview, error)
        with self._lock:
            if changed or (self._use_dirty and time.monotonic() - self._saved_at >= constants.PREVIEW_USE_SAVE_S):
                self._save()
        return changed

    def _drop(self, preview: Preview) -> bool:
        with self._lock:
            return self._remove(preview.id) is not None

    def _live_sessions(self) -> list[LiveSession]:
        """Running sessions of known workspaces, with their pane's process id."""
        records = {session_name_for(r.id): r for r in self._backend.records.all()}
        if not records:
            return []
        known = {w.id for w in self._backend.workspaces.list()}
        sessions = []
        for info in self._backend.tmux.list():
            record = records.get(info.name)
            if record is None or record.workspace_id not in known or not info.running or not info.pane_pid:
                continue
            sessions.append(LiveSession(info.name, record.workspace_id, info.pane_pid, info.last_output_at))
        return sessions

    def _create_detected(self, workspace_id: str, host: str, port: int) -> bool:
        try:
            self.create_or_get(workspace_id, host, port)
        except MisoError as exc:
            logger.info("no preview for detected %s:%d of %s: %s", host, port, workspace_id, exc.message)
            return False
        return True

"""One preview's proxy: a loopback listener whose connections are relayed byte for byte to a dev server.

Why a byte relay and not an HTTP reverse proxy: the dashboard shows a dev server in an iframe,
and dev servers speak more than request/response (WebSocket hot reload, server-sent events,
long polls). Copying bytes both ways carries all of them, upgrades included, without parsing
HTTP; the ``Host`` header arrives as the browser sent it (``localhost:<proxy port>``), as it
does through schmux's ``httputil`` proxy. Each connection costs two native threads, which the
worker's few previews (20 at most) and a browser's few connections per page afford easily.

A connection whose target cannot be reached is answered ``502 Bad Gateway`` in plain text, so
the iframe says why instead of showing an empty reply.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time
from typing import Callable

from .. import constants

logger = logging.getLogger(__name__)

#: ``on_connect(error)``: called once per accepted connection, with ``None`` when the target
#: answered and the reason it did not otherwise; also called (with ``None``) while a long-lived
#: connection carries data, at most every ``PREVIEW_TOUCH_INTERVAL_S``.
ConnectCallback = Callable[[str | None], None]


def host_port(host: str, port: int) -> str:
    """``host:port`` with an IPv6 address in brackets, as Go's ``net.JoinHostPort`` writes it."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def unreachable_message(host: str, port: int, exc: OSError) -> str:
    """``target unreachable: dial tcp 127.0.0.1:5173: connect: connection refused``: schmux's words."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        reason = "i/o timeout"
    elif isinstance(exc, socket.gaierror):
        reason = f"lookup {host}: {exc.strerror or exc}"
    else:
        reason = f"connect: {(exc.strerror or str(exc)).lower()}"
    return f"target unreachable: dial tcp {host_port(host, port)}: {reason}"


def probe(host: str, port: int, timeout_s: float = constants.PREVIEW_PROBE_TIMEOUT_S) -> str | None:
    """Open and close one TCP connection to the target: ``None`` when it answered, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return unreachable_message(host, port, exc)


class PreviewProxy:
    """A listener on ``127.0.0.1`` relaying every connection to ``target_host:target_port``.

    Parameters
    ----------
    target_host, target_port : str, int
        The dev server (a loopback host, checked by the caller).
    on_connect : ConnectCallback
        Told about each connection (the manager touches ``last_used_at`` and learns whether
        the target answers).
    port : int
        The port to listen on; 0 (the default) takes a free one. A port that cannot be had (it
        was taken since a restart remembered it) falls back to a free one.
    """

    def __init__(self, target_host: str, target_port: int, on_connect: ConnectCallback, port: int = 0) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self._on_connect = on_connect
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._listener = self._listen(port)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name=f"preview-{self.port}", daemon=True)
        self._thread.start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        for wanted in dict.fromkeys((port, 0)):
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # A remembered port may still have connections in TIME_WAIT from before a restart.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                listener.bind(("127.0.0.1", wanted))
                listener.listen(constants.PREVIEW_LISTEN_BACKLOG)
            except OSError:
                listener.close()
                if wanted == 0:
                    raise
                continue
            # accept() polls so that close() ends the loop on every platform (closing a socket
            # does not wake a thread blocked in accept() on Linux).
            listener.settimeout(constants.PREVIEW_ACCEPT_POLL_S)
            return listener
        raise OSError(errno.EADDRNOTAVAIL, "no port to listen on")  # not reached: port 0 raises above

    @property
    def alive(self) -> bool:
        """Whether the listener still accepts connections."""
        return not self._closed.is_set() and self._thread.is_alive()

    def close(self) -> None:
        """Stop listening and end every relayed connection (a deleted preview serves nothing more)."""
        self._closed.set()
        _close(self._listener)
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for sock in connections:
            _close(sock)
        self._thread.join(constants.PREVIEW_ACCEPT_POLL_S * 4)

    # --- relaying ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _address = self._listener.accept()
            except socket.timeout:
                continue
            except OSError as exc:
                if not self._closed.is_set():
                    logger.warning("preview listener %d stopped: %s", self.port, exc)
                return
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), name=f"preview-{self.port}-conn", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(
                (self.target_host, self.target_port), timeout=constants.PREVIEW_CONNECT_TIMEOUT_S
            )
        except OSError as exc:
            reason = unreachable_message(self.target_host, self.target_port, exc)
            self._on_connect(reason)
            _answer_bad_gateway(client, reason)
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        if not self._track(client, upstream):
            return
        self._on_connect(None)
        back = threading.Thread(target=self._pump, args=(upstream, client), name=f"preview-{self.port}-back")
        back.daemon = True
        back.start()
        self._pump(client, upstream)
        back.join()
        with self._lock:
            self._connections.discard(client)
            self._connections.discard(upstream)
        _close(client)
        _close(upstream)

    def _track(self, *socks: socket.socket) -> bool:
        with self._lock:
            if self._closed.is_set():
                for sock in socks:
                    _close(sock)
                return False
            self._connections.update(socks)
            return True

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy ``source`` to ``sink`` until end of file (then half-close ``sink``) or an error
        (then end both sides, so the other direction's thread stops too)."""
        touched = time.monotonic()
        try:
            while data := source.recv(constants.PREVIEW_RELAY_BUFFER_BYTES):
                sink.sendall(data)
                now = time.monotonic()
                if now - touched >= constants.PREVIEW_TOUCH_INTERVAL_S:
                    touched = now
                    self._on_connect(None)
        except OSError:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _answer_bad_gateway(client: socket.socket, reason: str) -> None:
    """Read the request's head (so that closing does not reset the connection first), answer 502."""
    body = f"preview target unreachable: {reason}\n".encode()
    head = (
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        client.settimeout(constants.PREVIEW_REFUSE_READ_S)
        seen = b""
        while b"\r\n\r\n" not in seen and len(seen) < constants.PREVIEW_RELAY_BUFFER_BYTES:
            chunk = client.recv(4096)
            if not chunk:
                break
            seen += chunk
    except OSError:
        pass
    try:
        client.sendall(head + body)
        client.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    _close(client)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass

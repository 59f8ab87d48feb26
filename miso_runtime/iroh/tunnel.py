"""The iroh endpoint and the request bridge, run inside the ``iroh`` worker process.

Why a worker process and not a thread of the server: the iroh bindings are asyncio code over a
Rust (tokio) library whose threads call back into Python to wake the asyncio loop. The server
process is monkey-patched by gevent, where ``threading`` makes greenlets and ``select`` and
sockets are gevent's, so an asyncio loop there would either block the hub or run on patched
primitives it was not written for. A spawned worker never imports gevent: it runs one plain
asyncio loop, and a Rust crash or a hung native call takes down only this process, which the
supervisor restarts (with a fresh endpoint of the same persisted key, so the endpoint id holds).

The bridge (ALPN :data:`~miso_runtime.constants.IROH_ALPN`): a peer opens one bi-directional
stream per request, writes one JSON object and finishes its side::

    {"method": "GET", "path": "/v1/iroh/info?x=1", "headers": {"name": "value"},
     "body": <any JSON value, sent as application/json>}      # or "body_base64": "<bytes>"

and reads one JSON object back, after which the stream ends::

    {"status": 200, "headers": {"name": "value"}, "body": <JSON>}   # or "body_base64" when
                                                                     # the answer is not JSON

Each request goes to this runtime's own API on loopback, with the peer's auth headers and
cookies dropped and two set: the bridge's secret and the peer's endpoint id, which iroh has
verified in the QUIC handshake. The server's request guard turns those into the registered
client's scope, so a tunnel request meets exactly the rules of a local one. Responses are read
whole: streaming routes (SSE, WebSocket) are not bridged by it.

The daemon's own protocol (ALPN :data:`~miso_runtime.constants.IROH_HTTP_ALPN`, what its phone
app speaks) is served too: HTTP/1.1 on each stream, WebSocket upgrades included, piped to the
same API under the same two headers (:mod:`.http_pipe`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import httpx
import iroh

from workers.protocol.base import Shutdown
from workers.protocol.iroh import DropPeer, PeerConnected, ServeApi, TunnelFailed, TunnelOnline

from .. import constants
from .http_pipe import pipe_http_stream

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TunnelOptions:
    """What the worker is started with (all plain values, pickled to the spawned process)."""

    secret_key_path: str
    relay: str
    bind_addr: str
    bridge_secret: str
    relay_wait_s: float = 10.0


def load_or_create_secret_key(path: Path) -> bytes:
    """The endpoint's 32-byte secret key, created (mode 0600) on first use.

    The endpoint id is this key's public half, and phones store it at pairing: losing or
    changing the file means every phone has to be paired again.
    """
    if path.exists():
        data = path.read_bytes()
        if len(data) != constants.IROH_SECRET_KEY_BYTES:
            raise ValueError(f"invalid iroh key file {path}: expected 32 bytes, got {len(data)}")
        return data
    data = iroh.SecretKey.generate().to_bytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    logger.info("created the iroh secret key in %s", path)
    return data


def endpoint_options(options: TunnelOptions, secret_key: bytes) -> iroh.EndpointOptions:
    """The endpoint's preset and relay mode for ``options.relay``.

    ``default`` and ``staging`` use n0's preset (its relays and address discovery);
    ``disabled`` the minimal preset with no relay (peers must reach a direct address); any
    other value is a comma-separated list of the user's own relay URLs.
    """
    relay = options.relay.strip()
    if relay == constants.IROH_RELAY_DEFAULT:
        preset, mode = iroh.preset_n0(), iroh.RelayMode.default_mode()
    elif relay == constants.IROH_RELAY_STAGING:
        preset, mode = iroh.preset_n0(), iroh.RelayMode.staging()
    elif relay == constants.IROH_RELAY_DISABLED:
        preset, mode = iroh.preset_minimal(), iroh.RelayMode.disabled()
    else:
        urls = [url.strip() for url in relay.split(",") if url.strip()]
        preset, mode = iroh.preset_minimal(), iroh.RelayMode.custom_from_urls(urls)
    return iroh.EndpointOptions(
        preset=preset,
        secret_key=secret_key,
        alpns=[constants.IROH_ALPN, constants.IROH_HTTP_ALPN],
        relay_mode=mode,
        bind_addr=options.bind_addr,
    )


def _remote_text(remote: Any) -> str:
    """``ip:port`` of a direct peer, ``relay:<url>`` of a relayed one."""
    if remote.is_ip():
        return remote.addr
    if remote.is_relay():
        return f"relay:{remote.url}"
    return str(remote)


def _error_frame(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "status": status,
        "headers": {"content-type": "application/json"},
        "body": {"code": code, "message": message},
    }


def parse_request_frame(data: bytes) -> dict[str, Any]:
    """The request of one stream, checked; ``ValueError`` says what is wrong with it."""
    try:
        frame = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"the request frame is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise ValueError("the request frame must be a JSON object")
    method = frame.get("method", "GET")
    path = frame.get("path")
    headers = frame.get("headers") or {}
    if not isinstance(method, str) or not method.isalpha():
        raise ValueError("method must be an HTTP method name")
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("//"):
        raise ValueError("path must be an absolute path on this runtime, like /v1/iroh/info")
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ValueError("headers must be an object of strings")
    if "body" in frame and "body_base64" in frame:
        raise ValueError("send body or body_base64, not both")
    return {**frame, "method": method.upper(), "path": path, "headers": headers}


class Bridge:
    """Turns a request frame into a loopback request to the API, and its answer into a frame."""

    def __init__(self, api_port: int, secret: str) -> None:
        self._client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api_port}", timeout=constants.IROH_BRIDGE_TIMEOUT_S, trust_env=False
        )
        self._secret = secret

    async def close(self) -> None:
        await self._client.aclose()

    async def serve(self, data: bytes, peer: str) -> dict[str, Any]:
        try:
            frame = parse_request_frame(data)
        except ValueError as exc:
            return _error_frame(400, "invalid_frame", str(exc))
        headers = {
            name.lower(): value
            for name, value in frame["headers"].items()
            if name.lower() not in constants.IROH_BRIDGE_DROPPED_HEADERS
        }
        headers[constants.IROH_BRIDGE_SECRET_HEADER] = self._secret
        headers[constants.IROH_BRIDGE_PEER_HEADER] = peer
        content: bytes | None = None
        if "body" in frame:
            content = json.dumps(frame["body"]).encode()
            headers.setdefault("content-type", "application/json")
        elif "body_base64" in frame:
            try:
                content = base64.b64decode(frame["body_base64"], validate=True)
            except (ValueError, TypeError):
                return _error_frame(400, "invalid_frame", "body_base64 is not base64")
        try:
            response = await self._client.request(frame["method"], frame["path"], headers=headers, content=content)
        except httpx.TimeoutException:
            return _error_frame(504, "gateway_timeout", "the runtime did not answer in time")
        except httpx.HTTPError as exc:
            return _error_frame(502, "bad_gateway", f"the runtime's API could not be reached: {exc}")
        answer: dict[str, Any] = {
            "status": response.status_code,
            "headers": {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "connection")},
        }
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                answer["body"] = response.json()
                return answer
            except ValueError:
                pass
        answer["body_base64"] = base64.b64encode(response.content).decode("ascii")
        return answer


class Tunnel:
    """The endpoint, its accept loop, and the open connections by peer."""

    def __init__(self, options: TunnelOptions, send: Callable[[Any], None]) -> None:
        self._options = options
        self._send = send
        self._endpoint: Any = None
        self._bridge: Bridge | None = None
        self._api_port = 0
        self._connections: dict[str, set[Any]] = {}
        self._tasks: set[asyncio.Task] = set()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self, api_port: int) -> None:
        """Bind the endpoint (once) and start accepting; later calls only move the API port."""
        if self._bridge is not None:
            await self._bridge.close()
        self._bridge = Bridge(api_port, self._options.bridge_secret)
        self._api_port = api_port
        if self._endpoint is not None:
            return
        try:
            key = load_or_create_secret_key(Path(self._options.secret_key_path))
            self._endpoint = await iroh.Endpoint.bind(endpoint_options(self._options, key))
        except Exception as exc:  # noqa: BLE001 - an IrohError, a bad key file, a bad address: all say why
            logger.error("the iroh endpoint did not come up: %s", exc)
            self._send(TunnelFailed(f"the iroh endpoint did not come up: {exc}"))
            return
        started_at = int(time.time())
        if self._options.relay.strip() != constants.IROH_RELAY_DISABLED:
            try:
                await asyncio.wait_for(asyncio.shield(self._endpoint.online()), self._options.relay_wait_s)
            except asyncio.TimeoutError:
                warning = f"no relay answered within {self._options.relay_wait_s:g} s; direct addresses only for now"
                logger.warning("iroh: %s", warning)
                self._report_online(started_at, warning)
                self._spawn(self._report_when_relayed(started_at))
                self._spawn(self._accept_loop())
                return
        self._report_online(started_at, None)
        self._spawn(self._accept_loop())

    def _report_online(self, started_at: int, warning: str | None) -> None:
        addr = self._endpoint.addr()
        endpoint_id = str(self._endpoint.id())
        direct = tuple(addr.direct_addresses())
        relay_url = addr.relay_url() or ""
        self._send(TunnelOnline(endpoint_id, relay_url, direct, started_at, warning))
        logger.info("iroh tunnel online: endpoint %s, relay %s, addresses %s", endpoint_id, relay_url or "-", direct)

    async def _report_when_relayed(self, started_at: int) -> None:
        """A relay that answers late (the network came up after us): report its URL then."""
        await self._endpoint.online()
        self._report_online(started_at, None)

    async def _accept_loop(self) -> None:
        try:
            while True:
                incoming = await self._endpoint.accept_next()
                if incoming is None:
                    break
                self._spawn(self._handshake(incoming))
        except Exception as exc:  # noqa: BLE001
            logger.error("the iroh accept loop stopped: %s", exc)
            self._send(TunnelFailed(f"the iroh accept loop stopped: {exc}"))

    async def _handshake(self, incoming: Any) -> None:
        try:
            remote = _remote_text(await incoming.remote_addr())
            accepting = await incoming.accept()
            alpn = await accepting.alpn()
            if alpn not in (constants.IROH_ALPN, constants.IROH_HTTP_ALPN):
                logger.info("iroh: refused a connection from %s with ALPN %r", remote, alpn)
                return
            connection = await accepting.connect()
        except Exception as exc:  # noqa: BLE001 - a failed handshake ends only that attempt
            logger.info("iroh: a handshake failed: %s", exc)
            return
        peer = str(connection.remote_id()).lower()
        self._connections.setdefault(peer, set()).add(connection)
        self._send(PeerConnected(peer, remote))
        logger.info("iroh: peer %s connected from %s", peer, remote)
        try:
            while True:
                stream = await connection.accept_bi()
                if alpn == constants.IROH_HTTP_ALPN:
                    self._spawn(self._pipe_stream(stream, peer))
                else:
                    self._spawn(self._serve_stream(stream, peer))
        except Exception as exc:  # noqa: BLE001 - the peer went away or the connection was closed
            logger.info("iroh: peer %s disconnected: %s", peer, exc)
        finally:
            self._connections.get(peer, set()).discard(connection)

    async def _serve_stream(self, stream: Any, peer: str) -> None:
        send = stream.send()
        try:
            try:
                data = await stream.recv().read_to_end(constants.IROH_MAX_REQUEST_FRAME_BYTES)
            except Exception as exc:  # noqa: BLE001 - over the limit, or the stream was reset
                answer = _error_frame(413, "frame_too_large", f"the request frame could not be read: {exc}")
            else:
                assert self._bridge is not None
                answer = await self._bridge.serve(data, peer)
            payload = json.dumps(answer).encode()
            if len(payload) > constants.IROH_MAX_RESPONSE_FRAME_BYTES:
                payload = json.dumps(_error_frame(502, "response_too_large", "the answer is too large")).encode()
            await send.write_all(payload)
            await send.finish()
        except Exception as exc:  # noqa: BLE001 - the peer reset the stream
            logger.info("iroh: a stream of %s failed: %s", peer, exc)

    async def _pipe_stream(self, stream: Any, peer: str) -> None:
        try:
            await pipe_http_stream(stream, peer, self._api_port, self._options.bridge_secret)
        except Exception as exc:  # noqa: BLE001 - the peer reset the stream, or the API went away
            logger.info("iroh: a piped stream of %s failed: %s", peer, exc)

    def drop_peer(self, endpoint_id: str) -> None:
        """Close the connections of a revoked client (it may connect again, and be refused)."""
        for connection in list(self._connections.pop(endpoint_id.lower(), set())):
            try:
                connection.close(constants.IROH_CLOSE_REVOKED_CODE, constants.IROH_CLOSE_REVOKED_REASON)
            except Exception as exc:  # noqa: BLE001
                logger.info("iroh: closing a connection of %s failed: %s", endpoint_id, exc)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._endpoint is not None:
            try:
                await asyncio.wait_for(self._endpoint.close(), 2.0)
            except Exception as exc:  # noqa: BLE001
                logger.info("iroh: closing the endpoint failed: %s", exc)
        if self._bridge is not None:
            await self._bridge.close()


async def run_tunnel(options: TunnelOptions, receive: Callable[[float], Any], send: Callable[[Any], None]) -> None:
    """The worker's loop: commands arrive on a reader thread and run on the asyncio loop."""
    iroh.set_log_level(iroh.LogLevel.WARN)
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue = asyncio.Queue()

    def read_commands() -> None:
        while True:
            try:
                command = receive(0.5)
            except (EOFError, OSError):
                command = Shutdown()
            if command is not None:
                loop.call_soon_threadsafe(commands.put_nowait, command)
                if isinstance(command, Shutdown):
                    return

    threading.Thread(target=read_commands, name="iroh-commands", daemon=True).start()
    tunnel = Tunnel(options, send)
    try:
        while True:
            command = await commands.get()
            if isinstance(command, Shutdown):
                break
            if isinstance(command, ServeApi):
                await tunnel.start(command.api_port)
            elif isinstance(command, DropPeer):
                tunnel.drop_peer(command.endpoint_id)
            else:
                logger.warning("iroh worker ignores %s", type(command).__name__)
    finally:
        await tunnel.stop()

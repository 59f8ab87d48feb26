"""The daemon's own tunnel protocol (ALPN ``skill/http-ws/1``): plain HTTP/1.1 over each stream.

The daemon's phone app opens a bi-directional stream per connection and speaks HTTP/1.1 on it
as on a TCP socket, WebSocket upgrades included (``/v1/events``). Here each such stream is piped
to this runtime's own API on loopback, byte for byte, after one change to the request's head:
the peer's own credentials (``Authorization``, ``x-miso-auth``, cookies) and any bridge headers
it sent are dropped, ``Host`` names the loopback API, and the bridge's secret and the peer's
verified endpoint id are added, so the request guard authorises it by the registered client's
scope, exactly as it does a JSON-bridged request. A plain request gets ``Connection: close``, so
each stream carries one request and every request's head is seen here; an upgrade keeps its
``Connection: Upgrade`` and then carries the WebSocket's frames both ways untouched.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .. import constants

logger = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
#: Headers of a piped request's head that are replaced or never forwarded.
_REPLACED = constants.IROH_BRIDGE_DROPPED_HEADERS - {"content-length", "transfer-encoding", "connection"}


class HeadError(ValueError):
    """A request head that is not HTTP/1.x, or too long."""


async def read_head(recv: Any) -> tuple[bytes, bytes]:
    """Read from the stream until the end of the request head: ``(head, bytes after it)``."""
    buffer = b""
    while _HEAD_END not in buffer:
        if len(buffer) > constants.IROH_MAX_HEAD_BYTES:
            raise HeadError(f"the request head is over {constants.IROH_MAX_HEAD_BYTES} bytes")
        chunk = await recv.read(constants.IROH_PIPE_CHUNK_BYTES)
        if not chunk:
            raise HeadError("the stream ended before the request head did")
        buffer += chunk
    head, _, rest = buffer.partition(_HEAD_END)
    return head, rest


def rewrite_head(head: bytes, api_port: int, secret: str, peer: str) -> bytes:
    """The head as forwarded to the loopback API (see the module docstring)."""
    text = head.decode("latin-1")  # any byte decodes: HTTP heads are bytes, names are ASCII
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise HeadError(f"not an HTTP/1.x request line: {request_line[:200]!r}")
    kept: list[str] = []
    upgrade = False
    connection = ""
    for line in header_lines:
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or name != name.strip():
            raise HeadError(f"not a header line: {line[:200]!r}")
        lowered = name.lower()
        if lowered == "upgrade":
            upgrade = True
        if lowered == "connection":
            connection = value.strip()
            continue
        if lowered in _REPLACED:
            continue
        kept.append(f"{name}:{value}")
    kept.append(f"Host: 127.0.0.1:{api_port}")
    kept.append(f"{constants.IROH_BRIDGE_SECRET_HEADER}: {secret}")
    kept.append(f"{constants.IROH_BRIDGE_PEER_HEADER}: {peer}")
    kept.append(f"Connection: {connection or 'Upgrade'}" if upgrade else "Connection: close")
    return "\r\n".join([request_line, *kept]).encode("latin-1") + _HEAD_END


def _bad_request(message: str) -> bytes:
    body = message.encode()
    head = f"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\nConnection: close"
    return head.encode() + _HEAD_END + body


async def pipe_http_stream(stream: Any, peer: str, api_port: int, secret: str) -> None:
    """Serve one ``skill/http-ws/1`` stream: its request (or WebSocket) through the loopback API."""
    recv, send = stream.recv(), stream.send()
    try:
        head, rest = await read_head(recv)
        forwarded = rewrite_head(head, api_port, secret, peer)
    except HeadError as exc:
        await send.write_all(_bad_request(str(exc)))
        await send.finish()
        return
    reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
    writer.write(forwarded + rest)
    await writer.drain()

    async def peer_to_api() -> None:
        try:
            while chunk := await recv.read(constants.IROH_PIPE_CHUNK_BYTES):
                writer.write(chunk)
                await writer.drain()
        except Exception as exc:  # noqa: BLE001 - the peer reset its side: the answer still goes out
            logger.debug("iroh: a piped stream of %s stopped sending: %s", peer, exc)

    async def api_to_peer() -> None:
        while data := await reader.read(constants.IROH_PIPE_CHUNK_BYTES):
            await send.write_all(data)
        await send.finish()

    upstream = asyncio.ensure_future(peer_to_api())
    try:
        await api_to_peer()  # the API closes after the answer (or the WebSocket's end)
    finally:
        upstream.cancel()
        writer.close()

"""Shared machinery for the loopback stand-ins of the cloud LLM providers.

The tests and benchmarks cannot reach OpenAI, Anthropic or a user's Ollama, so they talk to
small HTTP servers on 127.0.0.1 that speak each provider's exact wire format. This module holds
what the three have in common: a threaded HTTP/1.1 server on a free port, a record of every
request, a :class:`Script` that says what to answer, and one streaming loop that paces tokens,
injects errors and drops, and notices promptly when the client goes away (the property the
runtime's "a client that goes away stops the upstream call" rule is tested against).

A script answers with text tokens, or with scripted :class:`Turn` values that may call tools:
each provider renders a :class:`Reply` (the turn resolved for one request) in its own wire
format, as a list of pieces the same loop streams.
"""

from __future__ import annotations

import copy
import enum
import json
import logging
import re
import secrets
import select
import socket
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from types import TracebackType
from typing import Any, ClassVar, Self

logger = logging.getLogger(__name__)

_HOST = "127.0.0.1"
_ACCEPT_POLL_S = 0.01
"""How often the accept loop looks for a stop request; bounds how long :meth:`stop` takes."""
_STOP_JOIN_S = 2.0


_TURNS_LOCK = threading.Lock()
"""Guards popping :attr:`Script.turns`: concurrent requests each take a different turn."""
_WORDS = re.compile(r"\s*\S+|\s+")
"""A word with the spaces before it (or trailing spaces): how a turn's text is cut into pieces."""
_ARGUMENT_PIECE_CHARS = 7
"""Characters per streamed piece of a tool call's arguments: few enough that pieces cut through
JSON strings, keys and escapes, as a real model's tokens do."""


@dataclass
class ScriptedToolCall:
    """One tool call of a scripted :class:`Turn`."""

    name: str
    arguments: dict[str, Any] | str
    """An object is sent as compact JSON text; a str is sent verbatim (so a test can send
    malformed JSON). Providers that carry arguments as an object (Ollama, Anthropic's whole
    message) send a str that is a JSON object as that object, and any other str as a JSON string."""
    id: str | None = None
    """None: the stand-in makes one in its provider's form (``call_…``, ``toolu_…``)."""


@dataclass
class Turn:
    """One scripted assistant message: text, then tool calls."""

    text: str = ""
    """Streamed in pieces, one per word with the spaces before it."""
    tool_calls: list[ScriptedToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class ReplyCall:
    """A tool call resolved for one request: its id made, its arguments in both forms."""

    id: str | None
    name: str
    arguments_text: str
    """What a provider that streams arguments as text sends."""
    arguments_value: Any
    """What a provider that carries arguments as an object sends (see ScriptedToolCall)."""

    @property
    def fragments(self) -> list[str]:
        """``arguments_text`` in the pieces it is streamed in."""
        text = self.arguments_text
        return [text[i : i + _ARGUMENT_PIECE_CHARS] for i in range(0, len(text), _ARGUMENT_PIECE_CHARS)]


@dataclass(frozen=True)
class Reply:
    """What one chat request answers: the script's tokens, or the turn it took, resolved once."""

    texts: list[str]
    """The text pieces, in order."""
    calls: list[ReplyCall]
    completion_tokens: int
    """The output token count to report in usage fields."""

    @property
    def text(self) -> str:
        return "".join(self.texts)

    def pieces(self, whole_calls: bool = False) -> list[Piece]:
        """What a provider streams, one piece after each token pause.

        The text pieces, then for each tool call its opening followed by its argument fragments,
        or, with ``whole_calls`` (Ollama), only the opening. ``error_after_tokens`` and
        ``drop_after_tokens`` count these pieces.
        """
        pieces = [Piece(text) for text in self.texts]
        for index, call in enumerate(self.calls):
            pieces.append(Piece(call=index, opens=True))
            if not whole_calls:
                pieces.extend(Piece(fragment, call=index) for fragment in call.fragments)
        return pieces


@dataclass(frozen=True)
class Piece:
    """One streamed piece: a text token, a tool call's opening, or a fragment of its arguments."""

    text: str = ""
    call: int | None = None
    """The index of the tool call in :attr:`Reply.calls`; None for text."""
    opens: bool = False
    """Whether this piece opens its tool call (carries its id and name)."""


@dataclass
class Script:
    """What a stand-in answers; replace or mutate ``server.script`` between requests.

    A request reads the script once when it arrives, so changing it affects the next request,
    never one already streaming.
    """

    tokens: list[str] = field(default_factory=lambda: ["Hello", ",", " world", "!"])
    """Text pieces, one per streamed chunk/event."""
    token_delay_s: float = 0.0
    """Sleep before each token (or piece of a turn)."""
    first_token_delay_s: float = 0.0
    """Extra sleep before the first token (time to first token = this + ``token_delay_s``)."""
    prompt_tokens: int = 11
    completion_tokens: int | None = None
    """Reported output token count; None means ``len(tokens)``, or a turn's pieces as OpenAI and
    Anthropic stream them (see :meth:`Reply.pieces`)."""
    http_error: int | None = None
    """Answer this status with the provider's JSON error body instead of a completion."""
    error_after_tokens: int | None = None
    """After this many tokens (pieces of a turn, see :meth:`Reply.pieces`), send the provider's
    mid-stream error and end the response."""
    drop_after_tokens: int | None = None
    """After this many tokens (or pieces), close the TCP connection without ending the response."""
    ping_every: int = 0
    """Anthropic only: an extra ``ping`` event after every N tokens (0: only the opening ping)."""
    models: list[str] | None = None
    """What the model list returns; None means the stand-in's ``default_models``."""
    required_api_key: str | None = None
    """When set, a request with another key gets the provider's 401 (Ollama has no key)."""
    tags_delay_s: float = 0.0
    """Ollama only: sleep before answering ``GET /api/tags``."""
    turns: list[Turn] | None = None
    """Scripted answers: each chat request takes the next one (the list is popped in place, so
    copies made with ``dataclasses.replace`` share it; ``reset`` restores the list the stand-in
    was built with). Once it is empty, requests answer with ``tokens`` again."""
    responder: Callable[[Any], Turn] | None = None
    """Called with each chat request's parsed JSON body; its turn wins over ``turns``. Lets a
    script answer from what the client sent ("50 tool calls, then stop"). A closure keeps its
    state across the deep copies a stand-in makes of its script; a bound method would not."""

    @property
    def completion_token_count(self) -> int:
        """The output token count to report in usage fields."""
        return len(self.tokens) if self.completion_tokens is None else self.completion_tokens

    @property
    def text(self) -> str:
        """The whole answer, as a non-streaming response carries it."""
        return "".join(self.tokens)

    def take_turn(self, request_json: Any) -> Turn | None:
        """The turn that answers this request: the responder's, else the next scripted one."""
        if self.responder is not None:
            return self.responder(request_json)
        with _TURNS_LOCK:
            return self.turns.pop(0) if self.turns else None

    def reply(self, request_json: Any, make_id: Callable[[], str] | None) -> Reply:
        """Resolve what to answer this request; ``make_id`` makes the provider's call ids
        (None: the provider's calls carry no id)."""
        turn = self.take_turn(request_json)
        if turn is None:
            return Reply(list(self.tokens), [], self.completion_token_count)
        texts = _WORDS.findall(turn.text)
        calls = [_resolve_call(call, make_id) for call in turn.tool_calls]
        if self.completion_tokens is not None:
            return Reply(texts, calls, self.completion_tokens)
        return Reply(texts, calls, len(texts) + sum(1 + len(call.fragments) for call in calls))


def _resolve_call(call: ScriptedToolCall, make_id: Callable[[], str] | None) -> ReplyCall:
    if isinstance(call.arguments, str):
        text = call.arguments
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        value: Any = parsed if isinstance(parsed, dict) else text
    else:
        text = json.dumps(call.arguments, separators=(",", ":"), ensure_ascii=False)
        value = call.arguments
    call_id = call.id if call.id is not None or make_id is None else make_id()
    return ReplyCall(call_id, call.name, text, value)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it, for tests to assert what a client sent."""

    method: str
    path: str
    """The path without the query string."""
    query: str
    headers: dict[str, str]
    """Header names lower-cased."""
    body: bytes
    json: Any
    """The parsed JSON body, or None when the body is empty or not JSON."""
    client_port: int = 0
    """The client's TCP port: requests with the same port came over one kept-alive connection."""


class StreamOutcome(enum.Enum):
    """How a streaming response ended."""

    COMPLETED = "completed"
    """Every token and the provider's proper ending were written."""
    ABORTED = "aborted"
    """The client closed the connection before the end."""
    ERRORED = "errored"
    """The script injected the provider's mid-stream error."""
    DROPPED = "dropped"
    """The script made the server cut the connection."""


@dataclass
class _StreamRecord:
    """One streaming response; ``outcome`` stays None while it runs."""

    outcome: StreamOutcome | None = None


class ClientGone(Exception):
    """The client closed its connection; the handler stops writing and closes its side."""


@dataclass(frozen=True)
class StreamFrames:
    """How one provider frames a streaming answer on the wire.

    ``pieces`` are what the provider streams one at a time, after a token pause each (text
    tokens, or its own descriptions of tool-call parts); ``token`` renders piece ``index``.
    Each callable returns the bytes to write as one HTTP chunk; ``closing`` is called only once
    every piece is out so it can report measured durations.
    """

    content_type: str
    opening: bytes
    pieces: Sequence[Any]
    token: Callable[[int, Any], bytes]
    closing: Callable[[], bytes]
    error: bytes


class Exchange:
    """One request and its response on a connection: the writes a provider needs.

    Every write and pause raises :class:`ClientGone` once the client has closed the connection.
    """

    def __init__(self, handler: _Handler, request: RecordedRequest) -> None:
        self._handler = handler
        self.request = request

    @property
    def json(self) -> Any:
        """The parsed request body (a dict for every provider call)."""
        return self.request.json

    def send_json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        """Answer with a complete JSON body; the connection stays open for the next request."""
        self.send_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def send_bytes(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        """Answer with a complete body of any type."""
        handler = self._handler
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except ConnectionError as err:
            raise ClientGone from err

    def begin_stream(self, content_type: str, headers: dict[str, str] | None = None) -> None:
        """Send 200 headers for a chunked body, as the real APIs stream over keep-alive."""
        handler = self._handler
        try:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.send_header("Cache-Control", "no-cache")
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
        except ConnectionError as err:
            raise ClientGone from err

    def write_chunk(self, data: bytes) -> None:
        """Write one chunk of a chunked body."""
        if not data:
            return  # an empty chunk would end the body
        try:
            self._handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        except ConnectionError as err:
            raise ClientGone from err

    def end_stream(self, last: bytes = b"") -> None:
        """Write ``last`` and the terminating zero-length chunk in one go: a complete body."""
        frame = b"%X\r\n%s\r\n" % (len(last), last) if last else b""
        try:
            self._handler.wfile.write(frame + b"0\r\n\r\n")
        except ConnectionError as err:
            raise ClientGone from err

    def drop(self) -> None:
        """Cut the connection mid-body: FIN without the terminating chunk, as a crashed proxy would."""
        self._handler.close_connection = True
        try:
            self._handler.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            logger.debug("connection already gone when dropping it")

    def pause(self, seconds: float) -> None:
        """Sleep ``seconds`` while watching the socket, raising :class:`ClientGone` at once on a close.

        A write to a socket the peer has closed often succeeds (the kernel buffers it), so waiting
        for a failed write could miss a disconnect for several tokens. Instead the wait itself is
        a poll on the socket: a close makes it readable, and a peek that returns no bytes proves
        end-of-stream. This runs even for a zero pause, so every token checks once.
        """
        sock = self._handler.connection
        deadline = time.monotonic() + seconds
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            if not poller.poll(remaining * 1000):
                return
            try:
                peeked = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                peeked = b"?"
            except OSError as err:
                raise ClientGone from err
            if not peeked:
                raise ClientGone
            # The client sent bytes while we stream (it never should); they stay for the next
            # request, and polling would spin on them, so sleep out the rest plainly.
            time.sleep(max(0.0, deadline - time.monotonic()))
            return


class StandInServer(ABC):
    """A provider stand-in on a free loopback port; use as a context manager or start/stop it.

    Subclasses route requests in :meth:`handle` and build the provider's error bodies in
    :meth:`error_body`; the streaming loop, records and lifecycle live here.
    """

    default_models: ClassVar[tuple[str, ...]] = ()
    """Realistic model names for the model list when the script sets none."""

    def __init__(self, script: Script | None = None) -> None:
        self._initial_script = copy.deepcopy(script) if script is not None else Script()
        self.script = copy.deepcopy(self._initial_script)
        self._changed = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._streams: list[_StreamRecord] = []
        self._active_streams = 0
        self._peak_active_streams = 0
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1 on a free port and serve from a daemon thread; idempotent."""
        if self._httpd is None:
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": _ACCEPT_POLL_S},
                name=f"{type(self).__name__}:{self.port}",
                daemon=True,
            )
            self._thread.start()
            logger.debug("%s listening on %s", type(self).__name__, self.url)
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection (open streams included) and close; idempotent.

        Shutting the sockets down wakes handler threads blocked in a read or a token pause, so
        stopping never waits for a slow script to finish.
        """
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        httpd.shutdown()
        with self._changed:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed at stop")
        httpd.server_close()
        thread.join(_STOP_JOIN_S)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port; the server must be started."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` with no path."""
        return f"http://{_HOST}:{self.port}"

    @property
    def models(self) -> list[str]:
        """The model names the current script exposes."""
        return list(self.script.models if self.script.models is not None else self.default_models)

    # -- records ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first (a copy)."""
        with self._changed:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._changed:
            return self._requests[-1] if self._requests else None

    @property
    def last_request_json(self) -> Any:
        """The parsed body of the latest request, or None."""
        last = self.last_request
        return None if last is None else last.json

    @property
    def stream_outcomes(self) -> list[StreamOutcome]:
        """How each ended streaming response ended, in the order they started."""
        with self._changed:
            return self._ended()

    @property
    def completed_streams(self) -> int:
        return self._count(StreamOutcome.COMPLETED)

    @property
    def aborted_streams(self) -> int:
        """Streams the client closed before their end."""
        return self._count(StreamOutcome.ABORTED)

    @property
    def active_streams(self) -> int:
        """Streams being written right now."""
        with self._changed:
            return self._active_streams

    @property
    def peak_active_streams(self) -> int:
        """The most streams that were open at once since start or :meth:`reset`."""
        with self._changed:
            return self._peak_active_streams

    def wait_for_disconnect(self, timeout: float = 2.0, count: int = 1) -> bool:
        """Wait until at least ``count`` streams were aborted by their client; False on timeout."""
        return self._wait(lambda: self._ended().count(StreamOutcome.ABORTED) >= count, timeout)

    def wait_for_streams(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` streams have ended, however they ended; False on timeout."""
        return self._wait(lambda: len(self._ended()) >= count, timeout)

    def reset(self) -> None:
        """Start afresh: the script given at construction (default: ``Script()``), no records.

        A session-wide stand-in is reset between tests so no test sees another's script.
        """
        self.script = copy.deepcopy(self._initial_script)
        with self._changed:
            self._requests.clear()
            self._streams.clear()
            self._peak_active_streams = self._active_streams

    # -- provider hooks --------------------------------------------------------------------

    @abstractmethod
    def handle(self, exchange: Exchange, script: Script) -> None:
        """Route one request and answer it."""

    @abstractmethod
    def error_body(self, status: int, model: str) -> object:
        """The provider's JSON error body for an HTTP status about ``model``."""

    def response_headers(self) -> dict[str, str]:
        """Extra headers the provider puts on every answer (request ids)."""
        return {}

    # -- helpers for providers -------------------------------------------------------------

    def send_error(self, exchange: Exchange, status: int, model: str) -> None:
        """Answer ``status`` with the provider's error body."""
        exchange.send_json(status, self.error_body(status, model), self.response_headers())

    def stream(self, exchange: Exchange, script: Script, frames: StreamFrames) -> None:
        """Write a streaming answer token by token as the script says, recording how it ended.

        The outcome is recorded just before the write that lets the client see the end, so a
        test that has finished reading can assert it without waiting; a write that then fails
        still turns it into ``ABORTED``.
        """
        record = self._open_stream()
        try:
            exchange.begin_stream(frames.content_type, self.response_headers())
            exchange.pause(script.first_token_delay_s)
            exchange.write_chunk(frames.opening)
            for index in range(len(frames.pieces) + 1):  # one past the end: cut-offs there still fire
                if index == script.drop_after_tokens:
                    self._settle(record, StreamOutcome.DROPPED)
                    exchange.drop()
                    return
                if index == script.error_after_tokens:
                    self._settle(record, StreamOutcome.ERRORED)
                    exchange.end_stream(frames.error)
                    return
                if index == len(frames.pieces):
                    break
                exchange.pause(script.token_delay_s)
                exchange.write_chunk(frames.token(index, frames.pieces[index]))
            closing = frames.closing()
            self._settle(record, StreamOutcome.COMPLETED)
            exchange.end_stream(closing)
        except ClientGone:
            self._settle(record, StreamOutcome.ABORTED)
            raise
        finally:
            self._close_stream()

    def generate_blocking(self, exchange: Exchange, script: Script, model: str, pieces: int) -> bool:
        """Spend the script's generation time for a non-streaming answer of ``pieces`` pieces.

        Returns True when the caller should send the full answer. A drop cuts the connection
        with no response; an injected error becomes the provider's 500, which is how a failure
        during generation reaches a non-streaming client.
        """
        steps = pieces
        for limit in (script.drop_after_tokens, script.error_after_tokens):
            if limit is not None:
                steps = min(steps, limit)
        exchange.pause(script.first_token_delay_s + script.token_delay_s * steps)
        if script.drop_after_tokens is not None and script.drop_after_tokens <= pieces:
            exchange.drop()
            return False
        if script.error_after_tokens is not None and script.error_after_tokens <= pieces:
            self.send_error(exchange, 500, model)
            return False
        return True

    def api_key_ok(self, script: Script, presented: str | None) -> bool:
        """Whether the presented key satisfies the script (always, when it requires none)."""
        return script.required_api_key is None or presented == script.required_api_key

    # -- internals -------------------------------------------------------------------------

    def _ended(self) -> list[StreamOutcome]:
        """Outcomes of the streams that ended; the caller holds the lock."""
        return [record.outcome for record in self._streams if record.outcome is not None]

    def _count(self, outcome: StreamOutcome) -> int:
        with self._changed:
            return self._ended().count(outcome)

    def _wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _open_stream(self) -> _StreamRecord:
        record = _StreamRecord()
        with self._changed:
            self._streams.append(record)
            self._active_streams += 1
            self._peak_active_streams = max(self._peak_active_streams, self._active_streams)
        return record

    def _settle(self, record: _StreamRecord, outcome: StreamOutcome) -> None:
        logger.debug("%s stream %s", type(self).__name__, outcome.value)
        with self._changed:
            record.outcome = outcome
            self._changed.notify_all()

    def _close_stream(self) -> None:
        with self._changed:
            self._active_streams -= 1

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)

    def _track(self, conn: socket.socket, open_: bool) -> None:
        with self._changed:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


def bearer_token(request: RecordedRequest) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    authorization = request.headers.get("authorization", "")
    return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None


def new_id(prefix: str, length: int = 24) -> str:
    """A random id in the style providers use (``chatcmpl-…``, ``msg_…``)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


class _HTTPServer(ThreadingHTTPServer):
    """Threaded HTTP server that knows its stand-in and keeps quiet on stderr."""

    daemon_threads = True
    request_queue_size = 256

    def __init__(self, standin: StandInServer) -> None:
        self.standin = standin
        super().__init__((_HOST, 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name with getfqdn, a reverse DNS lookup that
        # can stall for seconds in a sandbox; loopback needs no name.
        TCPServer.server_bind(self)
        self.server_name = _HOST
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client resetting a kept-alive connection is routine; anything else is a stand-in bug
        # that a test would otherwise only see as a dropped connection.
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("connection from %s reset", client_address)
        else:
            logger.exception("stand-in failed while serving %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    """Reads a request, records it and hands it to the stand-in; keeps connections alive."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.standin._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.standin._track(self.connection, False)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            json=parsed,
            client_port=self.client_address[1],
        )
        standin = self.server.standin
        standin._record(request)
        try:
            standin.handle(Exchange(self, request), standin.script)
        except ClientGone:
            logger.debug("client closed the connection during %s %s", self.command, path)
            self.close_connection = True

"""What the tool-calling model adapters share: argument text, call ids, usage, and cancelling.

The agent's messages keep a tool call's arguments as the JSON *text* the model produced
(OpenAI's form); Anthropic and Ollama carry them as objects, so the adapters convert both ways
here. Usage is reported in OpenAI's ``CompletionUsage`` form whatever the provider.

Cancelling is the part with a trap. A model request is a blocking read of an HTTP stream, and
a provider can be silent for minutes (a long time to first token, an overloaded queue). Closing
an httpx response from another thread does not wake the thread blocked reading it: ``close(2)``
on a socket leaves a ``poll``/``recv`` that is already waiting asleep, and the provider sees
nothing either until it next writes. Shutting the socket down wakes the reader with end of
stream and tells the provider at once. :func:`run_cancellable` therefore runs the request in a
thread of its own, hands the response to an :class:`Upstream` that can cut it, and returns
:class:`~miso_runtime.agent.messages.Cancelled` to its caller within a poll interval, even
while the request still waits for the provider's headers.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from typing import Any, Callable, TypeVar

from ... import constants
from ..messages import Cancelled, CancelToken, ToolSpec

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CALL_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_call_id() -> str:
    """A tool-call id in OpenAI's form (``call_`` and 24 letters or digits), for providers that give none."""
    return "call_" + "".join(secrets.choice(_CALL_ID_ALPHABET) for _ in range(24))


def arguments_object(text: str) -> dict[str, Any]:
    """A call's JSON text as the object Anthropic's ``input`` and Ollama's ``arguments`` need.

    Text that is not a JSON object (a model's malformed JSON, cut off by ``max_tokens``, or
    ``""``) becomes ``{}``: the call must still be sent, because the tool result that answers it
    refers to its id, and a result without its call is a request the provider refuses. The tool
    result (the parse error the loop reported) tells the model what went wrong.
    """
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def arguments_text(value: Any) -> str:
    """Arguments a provider gave as an object, as compact JSON text; text stays as it came."""
    if isinstance(value, str):
        return value
    return json.dumps({} if value is None else value, separators=(",", ":"), ensure_ascii=False)


def usage(
    prompt_tokens: int | None, completion_tokens: int | None, cached_tokens: int | None = None
) -> dict[str, Any] | None:
    """Token counts in OpenAI's ``CompletionUsage`` form; None when the provider reported none."""
    if prompt_tokens is None and completion_tokens is None:
        return None
    prompt, completion = prompt_tokens or 0, completion_tokens or 0
    report: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached_tokens is not None:
        report["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
    return report


def split_data_url(url: str) -> tuple[str, str]:
    """``(media type, base64 data)`` of a ``data:<type>;base64,<data>`` URL (the faces checked its form)."""
    head, _, data = url.partition(",")
    return head.removeprefix("data:").split(";")[0] or "application/octet-stream", data


def function_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tools as OpenAI's (and Ollama's) function tools, the JSON Schema as ``parameters``."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description,
                "parameters": tool.schema or {"type": "object", "properties": {}},
            },
        }
        for tool in tools
    ]


class Upstream:
    """The HTTP response of one model request, which another thread can cut.

    The request's thread attaches the response once the headers are in and releases it before
    closing it itself; :meth:`cut` shuts the socket of whatever is attached (or is attached
    later) down, which ends the provider's stream and wakes the reader.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self._cut = False

    @property
    def is_cut(self) -> bool:
        with self._lock:
            return self._cut

    def attach(self, response: Any) -> None:
        """Make ``response`` (an httpx or httpx2 response) the one to cut; cut it now if already cancelled."""
        with self._lock:
            self._response = response
            cut = self._cut
        if cut:
            _shut(response)

    def release(self) -> None:
        """The request's thread is done reading: a later cut must not touch the connection,
        which may be back in the client's pool."""
        with self._lock:
            self._response = None

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            response = self._response
        if response is not None:
            _shut(response)


def _shut(response: Any) -> None:
    stream = (getattr(response, "extensions", None) or {}).get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        try:
            # The plain socket's shutdown even under TLS: SSLSocket.shutdown would also drop the
            # TLS object the reading thread is using.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            logger.debug("model request connection already closed when cancelled")
        return
    # A transport that exposes no socket: closing is the best left (it ends the request as
    # soon as the provider writes again).
    response.close()


class _Outcome:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


def run_cancellable(request: Callable[[Upstream], T], cancel: CancelToken, name: str) -> T:
    """Run ``request`` in a thread of its own and return what it returns, or raise what it raises.

    Once ``cancel`` is set, the response attached to the :class:`Upstream` is cut and
    :class:`Cancelled` is raised within ``AGENT_MODEL_CANCEL_POLL_S``, whether or not the request
    has ended; a request still waiting for the provider's headers ends by itself (it is cut as
    soon as it attaches its response). An error the request raises after the cancel is the
    cut's doing and is dropped.
    """
    if cancel.cancelled:
        raise Cancelled("cancelled before the model request")
    upstream = Upstream()
    outcome = _Outcome()

    def work() -> None:
        try:
            outcome.value = request(upstream)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome.error = exc
        finally:
            outcome.done.set()

    threading.Thread(target=work, name=f"model request {name}", daemon=True).start()
    while not outcome.done.wait(constants.AGENT_MODEL_CANCEL_POLL_S):
        if cancel.cancelled:
            upstream.cut()
            raise Cancelled("the model request was cancelled")
    if outcome.error is not None:
        if cancel.cancelled and not isinstance(outcome.error, Cancelled):
            raise Cancelled("the model request was cancelled") from outcome.error
        raise outcome.error
    return outcome.value

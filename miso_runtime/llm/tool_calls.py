"""Function calling on the local model: what a request may hold, and how calls look as text.

A llama.cpp model knows nothing of OpenAI's ``tools``: it reads a prompt and writes text. This
module holds the two text conventions we translate through, and nothing that needs llama.cpp,
so the server checks requests with it and the ``llm`` worker renders and parses with it:

* **The request.** :func:`tool_request` turns ``tools``, ``tool_choice`` and
  ``parallel_tool_calls`` into a :class:`~workers.protocol.llm.ToolRequest` (or None for no
  tools), and :func:`check_tool_messages` checks the conversation's calls and results; both
  raise :class:`ToolInputError` with a message naming the bad field, which the face answers
  as a 400. :func:`check_parameters` refuses a parameters schema that is not a JSON Schema
  object (its meta-schema says so), whose root is not an object, that is nested deeper than
  :data:`~miso_runtime.constants.LLM_TOOL_SCHEMA_MAX_DEPTH`, or that refers to anything
  outside itself: nothing a request holds makes the runtime fetch a URL.
* **The prompt and the answer: the Hermes format.** Tools are listed as JSON in ``<tools>``
  and a call is ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``. That is the
  format Qwen2.5 (the embedded default model) was trained on and its GGUF chat template
  renders from ``tools``, the one Hermes, Qwen3 and SmolLM3 use, and the one small ChatML models
  follow best when shown it. A model whose own template renders tools in this format gets its
  template (:func:`template_messages`); any other model gets a system-prompt section of ours
  in the same format and plain-text turns for its calls and results (:func:`hermes_messages`).
  One format means one grammar (:mod:`miso_runtime.llm.tool_grammar`) and one parser.
* **The output.** :class:`TagScanner` passes text through until ``<tool_call>`` appears;
  :class:`CallStreamParser` turns the (grammar-shaped) call text into names and argument pieces
  as they are generated, which the face streams as OpenAI ``delta.tool_calls``.
"""

from __future__ import annotations

import json
import re
import secrets
import string
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from workers.protocol.llm import ToolRequest

from .. import constants

#: What opens and closes one call in the Hermes format.
TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
#: The exact text of one call between its tags, around its name and its arguments; Qwen2.5's
#: template writes past calls this way and the model writes new ones the same way.
CALL_HEAD = '\n{"name": "'
CALL_NAME_END = '", "arguments": '
CALL_TAIL = "}\n"
#: What stands between two calls of one answer.
CALL_SEPARATOR = "\n"

#: OpenAI's rule for function names; it also keeps a name safe inside a grammar literal.
FUNCTION_NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
_FUNCTION_NAME = re.compile(FUNCTION_NAME_PATTERN)

#: The JSON Schema drafts a ``$schema`` may name (any other would be fetched to be read).
_KNOWN_DRAFTS = frozenset(
    {
        "http://json-schema.org/draft-04/schema",
        "http://json-schema.org/draft-06/schema",
        "http://json-schema.org/draft-07/schema",
        "https://json-schema.org/draft/2019-09/schema",
        "https://json-schema.org/draft/2020-12/schema",
    }
)
#: Parameters of a function declared without any.
EMPTY_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}

_ID_ALPHABET = string.ascii_letters + string.digits


class ToolInputError(ValueError):
    """A request's tools, tool choice or tool messages are wrong; the message says how."""


class MalformedCall(Exception):
    """Generated call text left the Hermes layout (only possible if the grammar did not hold)."""


# --- the request ----------------------------------------------------------------------------


def _refuse_retrieval(uri: str) -> Any:
    raise ValueError(f"{uri} is outside the schema: a tool's schema must be self-contained")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _walk(schema: Any) -> Iterator[tuple[int, Any]]:
    """Every value of ``schema`` with its depth (iterative: a deep schema must not blow the stack)."""
    stack = [(1, schema)]
    while stack:
        depth, node = stack.pop()
        yield depth, node
        if isinstance(node, dict):
            stack.extend((depth + 1, child) for child in node.values())
        elif isinstance(node, list):
            stack.extend((depth + 1, child) for child in node)


def check_parameters(schema: Any) -> dict[str, Any]:
    """``schema`` if it can describe a function's arguments; ToolInputError says why not.

    Checked here, before a worker sees it: a JSON object; no deeper than the configured depth;
    ``$schema`` (where given) a standard draft; valid against its meta-schema; every ``$ref``
    resolvable inside it (the validator is built with a retriever that refuses, so a remote
    reference is an error, never a download); and an object at the root, as OpenAI requires.
    """
    import jsonschema_rs

    if not isinstance(schema, dict):
        raise ToolInputError("must be a JSON Schema object")
    for depth, node in _walk(schema):
        if depth > constants.LLM_TOOL_SCHEMA_MAX_DEPTH:
            raise ToolInputError(f"is nested deeper than {constants.LLM_TOOL_SCHEMA_MAX_DEPTH} levels")
        if isinstance(node, dict) and isinstance(node.get("$schema"), str):
            if node["$schema"].rstrip("#") not in _KNOWN_DRAFTS:
                raise ToolInputError(f"$schema {node['$schema']!r} is not a JSON Schema draft this runtime knows")
    try:
        jsonschema_rs.meta.validate(schema)
        jsonschema_rs.validator_for(schema, retriever=_refuse_retrieval)
    except (jsonschema_rs.ValidationError, jsonschema_rs.ReferencingError, ValueError) as exc:
        raise ToolInputError(f"is not a valid JSON Schema: {_first_line(exc)}") from None
    root_type = schema.get("type", "object")
    if root_type != "object":
        raise ToolInputError(f"must describe an object (type 'object'), not {json.dumps(root_type)}")
    return schema


def function_name(tool: dict[str, Any]) -> str:
    return str(tool["function"]["name"])


def tool_request(
    tools: list[dict[str, Any]] | None, tool_choice: Any, parallel_tool_calls: bool | None
) -> ToolRequest | None:
    """What the model may do with ``tools``: None when the prompt should show no tools.

    ``tools`` are function tools whose fields were checked one by one (pydantic); here come the
    checks across them: unique names, and a ``tool_choice`` that names only tools of the list.
    ``tool_choice`` is OpenAI's: ``"auto"`` (the default), ``"none"``, ``"required"``,
    ``{"type": "function", "function": {"name": ...}}`` or ``{"type": "allowed_tools",
    "allowed_tools": {"mode": "auto"|"required", "tools": [...]}}``. An empty ``tools`` list
    means no tools, as leaving it out does.
    """
    tools = list(tools or [])
    names = [function_name(tool) for tool in tools]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ToolInputError(f"tools: function names must be unique (given more than once: {', '.join(duplicates)})")
    choice = "auto" if tool_choice is None else tool_choice
    if choice == "none":
        return None
    if not tools:
        if choice == "auto":
            return None
        raise ToolInputError("tool_choice: only allowed when tools are given")
    parallel = True if parallel_tool_calls is None else bool(parallel_tool_calls)
    if choice in ("auto", "required"):
        return ToolRequest(tuple(tools), tuple(names), choice, parallel)
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function":
        wanted = [str(choice["function"]["name"])]
        mode = "required"
    elif kind == "allowed_tools":
        allowed = choice["allowed_tools"]
        wanted = [str(item["function"]["name"]) for item in allowed["tools"]]
        mode = str(allowed["mode"])
    else:
        raise ToolInputError(f"tool_choice: {json.dumps(choice)} is not a tool choice")
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ToolInputError(f"tool_choice: no function named {unknown[0]!r} in tools (functions: {', '.join(names)})")
    return ToolRequest(tuple(tools), tuple(dict.fromkeys(wanted)), mode, parallel)


def check_tool_messages(messages: list[dict[str, Any]]) -> None:
    """Every ``tool`` message answers a call of an earlier assistant message; ToolInputError if not.

    OpenAI refuses a result without its call: the model would read an answer to a question it
    never asked, and a template that pairs them (Qwen's) could not render it.
    """
    called: set[str] = set()
    for index, message in enumerate(messages):
        role = message.get("role")
        if role == "assistant":
            called.update(str(call["id"]) for call in message.get("tool_calls") or [])
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not call_id:
                raise ToolInputError(
                    f"messages.{index}.tool_call_id: a tool message needs the id of the call it answers"
                )
            if call_id not in called:
                raise ToolInputError(
                    f"messages.{index}: a tool message must answer a call of an earlier assistant message "
                    f"(no tool_calls entry has id {call_id!r})"
                )


def has_tool_history(messages: Iterable[dict[str, Any]]) -> bool:
    """Whether the conversation holds calls or results (which plain chat formats cannot render)."""
    return any(message.get("role") == "tool" or message.get("tool_calls") for message in messages)


# --- the prompt -----------------------------------------------------------------------------


def _arguments_value(arguments: str) -> Any:
    """A call's arguments as a template expects them: parsed JSON (text that does not parse stays text)."""
    try:
        return json.loads(arguments)
    except (TypeError, ValueError):
        return arguments


def _call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {
        str(call["id"]): str(call["function"]["name"])
        for message in messages
        for call in message.get("tool_calls") or []
    }


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``messages`` for a chat template that renders tools itself (Hugging Face conventions).

    Such templates (Qwen2.5's) write ``arguments | tojson``, which is right for the parsed
    object that Hugging Face passes and wrong for OpenAI's JSON text, so arguments are parsed;
    ``content`` None becomes "" (templates concatenate it); a tool message gets the ``name``
    of the call it answers, which some templates print.
    """
    names = _call_names(messages)
    prepared = []
    for message in messages:
        item = dict(message)
        item["content"] = item.get("content") or ""
        if item.get("tool_calls"):
            item["tool_calls"] = [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": _arguments_value(call["function"]["arguments"]),
                    },
                }
                for call in item["tool_calls"]
            ]
        if item.get("role") == "tool" and not item.get("name"):
            item["name"] = names.get(str(item.get("tool_call_id")), "")
        prepared.append(item)
    return prepared


def tools_section(tools: Iterable[dict[str, Any]]) -> str:
    """The system-prompt section that teaches a model the tools and the Hermes call format."""
    listed = "\n".join(json.dumps(tool, ensure_ascii=False) for tool in tools)
    return (
        "# Tools\n\n"
        "You can call functions to help with the request. Their signatures, as JSON Schema, "
        f"are inside <tools></tools>:\n<tools>\n{listed}\n</tools>\n\n"
        "To call a function, answer with a JSON object holding its name and its arguments inside "
        f"{TOOL_CALL_OPEN}{TOOL_CALL_CLOSE} tags:\n"
        f'{TOOL_CALL_OPEN}\n{{"name": <function-name>, "arguments": <arguments-json-object>}}\n{TOOL_CALL_CLOSE}\n'
        "Each result comes back inside <tool_response></tool_response>."
    )


def format_call(name: str, arguments: str) -> str:
    """One call as the model writes it (arguments parsed, so they read as JSON, not as a string)."""
    value = json.dumps(_arguments_value(arguments), ensure_ascii=False)
    return f"{TOOL_CALL_OPEN}{CALL_HEAD}{name}{CALL_NAME_END}{value}{CALL_TAIL}{TOOL_CALL_CLOSE}"


def hermes_messages(messages: list[dict[str, Any]], tools: tuple[dict[str, Any], ...] | None) -> list[dict[str, Any]]:
    """``messages`` as plain ``{role, content}`` turns that any chat format renders.

    The tools section joins the first system message (or becomes one); an assistant turn's
    calls become its text in the Hermes format; consecutive ``tool`` messages become one user
    turn of ``<tool_response>`` blocks, as Qwen's own template renders them.
    """
    plain: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content") or ""
        if role == "assistant" and message.get("tool_calls"):
            calls = [
                format_call(call["function"]["name"], call["function"]["arguments"]) for call in message["tool_calls"]
            ]
            content = "\n".join(([content] if content else []) + calls)
            plain.append({"role": "assistant", "content": content})
        elif role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            if plain and plain[-1].get("_results"):
                plain[-1]["content"] += "\n" + block
            else:
                plain.append({"role": "user", "content": block, "_results": True})
        else:
            plain.append({"role": role, "content": content})
    for message in plain:
        message.pop("_results", None)
    if tools:
        section = tools_section(tools)
        if plain and plain[0]["role"] == "system":
            plain[0] = {"role": "system", "content": f"{plain[0]['content']}\n\n{section}".lstrip()}
        else:
            plain.insert(0, {"role": "system", "content": section})
    return plain


# --- the answer -----------------------------------------------------------------------------


def new_call_id() -> str:
    """A call id in OpenAI's form: ``call_`` and random letters and digits."""
    return "call_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(constants.LLM_TOOL_CALL_ID_CHARS))


class TagScanner:
    """Streams a model's text until ``<tool_call>`` appears, holding back what could start it.

    Text that might be the start of the tag (``<tool``) waits for the next piece, and so does
    trailing whitespace: a call right after a line break then leaves no stray "\\n" in the
    answer's content. :attr:`before` is all the text before the tag once it is found.
    """

    def __init__(self, tag: str = TOOL_CALL_OPEN) -> None:
        self._tag = tag
        self._text = ""
        self._sent = 0
        self.found = False

    @property
    def before(self) -> str:
        return self._text.split(self._tag, 1)[0]

    def feed(self, piece: str) -> str:
        """Add ``piece``; returns the text that is now safe to show (none once the tag is found)."""
        if self.found:
            return ""
        self._text += piece
        at = self._text.find(self._tag, self._sent)
        if at >= 0:
            self.found = True
            return self._release(len(self._text[:at].rstrip()))
        keep = len(self._text)
        for size in range(min(len(self._tag) - 1, len(self._text) - self._sent), 0, -1):
            if self._text.endswith(self._tag[:size]):
                keep = len(self._text) - size
                break
        return self._release(len(self._text[:keep].rstrip()))

    def flush(self) -> str:
        """The text still held back, at the end of a generation that made no call."""
        return "" if self.found else self._release(len(self._text))

    def _release(self, end: int) -> str:
        if end <= self._sent:
            return ""
        released, self._sent = self._text[self._sent : end], end
        return released


@dataclass(frozen=True)
class CallStarted:
    index: int
    name: str


@dataclass(frozen=True)
class ArgumentsPiece:
    index: int
    text: str


@dataclass(frozen=True)
class CallFinished:
    index: int
    name: str
    arguments: str


class CallStreamParser:
    """Reads calls in the Hermes layout as they are generated; :meth:`feed` returns what it learnt.

    The grammar makes the model write exactly ``<tool_call>`` + :data:`CALL_HEAD` + name +
    :data:`CALL_NAME_END` + a JSON object + optional spaces + :data:`CALL_TAIL` +
    ``</tool_call>``, calls separated by :data:`CALL_SEPARATOR`, so the parser follows that
    layout: it finds the name's end at its quote, and the arguments' end by counting braces
    outside strings. Argument text is handed on piece by piece as it arrives.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._expect = TOOL_CALL_OPEN + CALL_HEAD
        self._state = "literal"  # literal | name | arguments | tail | between
        self._after = "name"
        self._name = ""
        self._arguments: list[str] = []
        self._depth = 0
        self._in_string = False
        self._escaped = False
        self.index = -1
        self.finished = 0

    def feed(self, text: str) -> list[CallStarted | ArgumentsPiece | CallFinished]:
        events: list[CallStarted | ArgumentsPiece | CallFinished] = []
        self._pending += text
        while True:
            if self._state == "finished":
                events.append(CallFinished(self.index, self._name, "".join(self._arguments)))
                self.finished += 1
                self._start_next()
            elif not self._pending:
                break
            elif self._state == "literal":
                if not self._take_literal():
                    break
            elif self._state == "name":
                end = self._pending.find('"')
                if end < 0:
                    self._name += self._pending
                    self._pending = ""
                    break
                self._name += self._pending[:end]
                self._pending = self._pending[end:]
                self.index += 1
                events.append(CallStarted(self.index, self._name))
                self._expect, self._state, self._after = CALL_NAME_END, "literal", "arguments"
            elif self._state == "arguments":
                piece, done = self._scan_arguments()
                if piece:
                    self._arguments.append(piece)
                    events.append(ArgumentsPiece(self.index, piece))
                if not done:
                    break
                self._state = "tail"
            elif self._state == "tail":
                self._pending = self._pending.lstrip(" ")
                if self._pending:
                    self._expect, self._state, self._after = CALL_TAIL + TOOL_CALL_CLOSE, "literal", "finished"
            elif self._state == "between":
                self._expect, self._state, self._after = CALL_SEPARATOR + TOOL_CALL_OPEN + CALL_HEAD, "literal", "name"
        return events

    def _take_literal(self) -> bool:
        """Consume the expected literal; False while it is still incomplete."""
        size = min(len(self._expect), len(self._pending))
        if self._pending[:size] != self._expect[:size]:
            raise MalformedCall(f"unexpected text in a tool call: {self._pending[:40]!r}")
        self._pending = self._pending[size:]
        self._expect = self._expect[size:]
        if self._expect:
            return False
        self._state = self._after
        return True

    def _scan_arguments(self) -> tuple[str, bool]:
        for position, char in enumerate(self._pending):
            if self._in_string:
                if self._escaped:
                    self._escaped = False
                elif char == "\\":
                    self._escaped = True
                elif char == '"':
                    self._in_string = False
            elif char == '"':
                self._in_string = True
            elif char in "{[":
                self._depth += 1
            elif char in "}]":
                self._depth -= 1
                if self._depth == 0:
                    piece, self._pending = self._pending[: position + 1], self._pending[position + 1 :]
                    return piece, True
        piece, self._pending = self._pending, ""
        return piece, False

    def _start_next(self) -> None:
        self._name = ""
        self._arguments = []
        self._depth = 0
        self._in_string = self._escaped = False
        self._state = "between"

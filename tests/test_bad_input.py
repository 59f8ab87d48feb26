"""Bad input on every JSON route: a 4xx in the route's contract envelope, never a 500."""

from __future__ import annotations

import pytest

from tests.routes import app_routes
from tests.sidecar import Sidecar


@pytest.fixture(scope="module")
def json_routes(tmp_path_factory):
    routes = [r for r in app_routes(tmp_path_factory.mktemp("routes")) if r.body_model is not None and not r.public]
    assert routes, "no JSON routes found"
    return routes


def wrong_types(model) -> dict:
    """A body that gives every field of ``model`` a value of the wrong type."""
    body = {}
    for name, field in model.model_fields.items():
        key = field.validation_alias.choices[0] if getattr(field.validation_alias, "choices", None) else name
        text = str(field.annotation)
        body[key] = 12345 if ("str" in text or "Scope" in text or "Literal" in text) else {"not": "this"}
    return body


def _accepts(model, body: dict) -> bool:
    try:
        model.model_validate(body)
    except ValueError:
        return False
    return True


def assert_envelope(route, response, status_range=range(400, 500)) -> str:
    assert response.status_code in status_range, f"{route.method} {route.rule}: {response.status_code} {response.text}"
    _code, message = route.error_of(response)
    assert message and "Traceback" not in message
    return message


def test_not_json(sidecar, json_routes):
    for route in json_routes:
        for raw in (b"{not json", b"\xff\xfe\x00", b"[1, 2", b"null", b"[]", b'"a string"'):
            response = sidecar.http.request(
                route.method, route.path, content=raw, headers={**sidecar.auth, "Content-Type": "application/json"}
            )
            if raw == b"[]" and _accepts(route.body_model, []):  # a list body: [] is one (no hook rules)
                assert response.status_code < 500, f"{route.rule}: {response.status_code} {response.text}"
                continue
            assert_envelope(route, response)


def test_empty_object(sidecar, json_routes):
    checked = 0
    for route in json_routes:
        response = sidecar.http.request(route.method, route.path, json={}, headers=sidecar.auth)
        required = [name for name, field in route.body_model.model_fields.items() if field.is_required()]
        if not required or _accepts(route.body_model, {}):  # {} is a valid body, and must not fail the server
            assert response.status_code < 500, f"{route.rule}: {response.status_code} {response.text}"
            continue
        message = assert_envelope(route, response)
        for name in required:
            field = route.body_model.model_fields[name]
            spellings = [name, *getattr(field.validation_alias, "choices", ())]
            if name == "root":  # a body that is one JSON value (an array, a string) is named as the body
                spellings.append("body")
            assert any(s in message for s in spellings), f"{route.rule}: {message!r} does not name {name}"
        checked += 1
    assert checked >= 5


def test_wrong_types_name_the_field(sidecar, json_routes):
    for route in json_routes:
        body = wrong_types(route.body_model)
        if _accepts(route.body_model, body):
            continue  # a body of any keys (Caco's applet state): there is no wrong type
        response = sidecar.http.request(route.method, route.path, json=body, headers=sidecar.auth)
        message = assert_envelope(route, response)
        names = ["body"] if list(body) == ["root"] else list(body)  # a one-value body is named as the body
        assert any(key in message for key in names), f"{route.rule}: {message!r} names no field of {sorted(body)}"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"message": "hi", "history": "not a list"}, "history"),
        ({"message": "hi", "history": [{"role": "wizard", "content": "x"}]}, "history.0.role"),
        ({"message": "hi", "options": {"temperature": "hot"}}, "options.temperature"),
        ({"message": "hi", "options": {"maxTokens": -5}}, "options.maxTokens"),
        ({"message": ["hi"]}, "message"),
        ({"message": "hi", "threadId": 7}, "threadId"),
    ],
)
def test_chat_stream_field_errors(sidecar, body, field):
    response = sidecar.post("/chat/stream", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert field in response.json()["error"]["message"]


def test_api_keys_are_not_echoed_in_errors(sidecar):
    response = sidecar.post("/chat/stream", json={"message": "hi", "options": {"apiKey": 42, "temperature": "x"}})
    assert response.status_code == 400
    assert "42" not in response.text.replace("options.temperature", "")


def test_unknown_routes_and_methods(sidecar):
    missing = sidecar.get("/no/such/route")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    skill_missing = sidecar.get("/v1/no-such-thing")
    assert skill_missing.status_code == 404 and skill_missing.json()["code"] == "not_found"
    wrong_method = sidecar.http.delete("/chat/stream", headers=sidecar.auth)
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_body_over_the_limit_is_413(tmp_path):
    side = Sidecar(tmp_path, env={"MISO_MAX_BODY_BYTES": "2048"})
    try:
        response = side.post("/chat/stream", json={"message": "x" * 5000})
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        small = side.post("/chat/stream", json={"message": ""})
        assert small.status_code == 400
    finally:
        side.terminate()

"""docs/api.md documents every served route, each with a curl (or WebSocket) example."""

from __future__ import annotations

import re
from pathlib import Path

from tests.routes import app_routes

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def test_every_route_is_documented(tmp_path):
    text = API_DOC.read_text()
    headings = set(re.findall(r"^### (.+)$", text, flags=re.MULTILINE))
    documented = set()
    for heading in headings:
        for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE|WS) (/[^`]*)`", heading):
            documented.add((method, path))
    missing = []
    for route in app_routes(tmp_path):
        method = "WS" if route.websocket else route.method
        if (method, route.rule) not in documented:
            missing.append(f"{method} {route.rule}")
    assert missing == []
    assert text.count("curl ") >= len(headings) - 1

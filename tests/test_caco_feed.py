"""How a page's socket sends what waited in its queue: a run of one reply's deltas as one frame."""

from __future__ import annotations

import json

from miso_runtime.server.faces.caco import _PageSocket


class _Socket:
    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def _payload(frame: dict) -> dict:
    return {"frame": frame, "text": json.dumps(frame)}


def _delta(reply: str, text: str) -> dict:
    return _payload(
        {"type": "message", "sessionId": "s", "message": {"id": reply, "role": "assistant", "deltaContent": text}}
    )


def test_waiting_deltas_of_one_reply_go_as_one_frame_in_order():
    socket = _Socket()
    page = _PageSocket(socket, caco=None)
    activity = _payload({"type": "activity", "sessionId": "s", "item": {"type": "turn", "text": "Turn 1..."}})
    page.send_feed([_delta("a", "Hel"), _delta("a", "lo"), activity, _delta("a", " there"), _delta("b", "other")])
    assert socket.sent == [
        {"type": "message", "sessionId": "s", "message": {"id": "a", "role": "assistant", "deltaContent": "Hello"}},
        activity["frame"],
        {"type": "message", "sessionId": "s", "message": {"id": "a", "role": "assistant", "deltaContent": " there"}},
        {"type": "message", "sessionId": "s", "message": {"id": "b", "role": "assistant", "deltaContent": "other"}},
    ]


def test_a_single_delta_goes_as_it_came():
    socket = _Socket()
    _PageSocket(socket, caco=None).send_feed([_delta("a", "x")])
    assert socket.sent == [_delta("a", "x")["frame"]]

"""A small worker for RPC tests: publishes a few methods through ``workers.rpc.answer``."""

from __future__ import annotations

import os
from typing import Any

from miso_runtime.errors import MisoError
from workers.protocol.base import Shutdown
from workers.protocol.rpc import Call
from workers.rpc import answer
from workers.runner import Channel


def _refuse(message: str) -> None:
    raise MisoError(409, "taken", message)


def _crash() -> None:
    raise RuntimeError("something broke inside")


METHODS = {
    "add": lambda a, b: a + b,
    "refuse": _refuse,
    "crash": _crash,
    "die": lambda: os._exit(3),
}


def run(channel: Channel, options: dict[str, Any]) -> None:
    while True:
        command = channel.receive()
        if isinstance(command, Shutdown):
            return
        if isinstance(command, Call):
            channel.send(answer(METHODS, command))

"""Schemathesis hooks for ``tests/test_fuzz_openapi.py``: every fuzzed request stays on this machine.

The schemathesis CLI imports this module (``SCHEMATHESIS_HOOKS=tests.fuzz_hooks``) and calls
:func:`before_call` just before each request goes out, in every phase. A few routes act
outside the runtime when their input says so; for those the hook stands the outward target
in, in place, and leaves the rest of the generated request as it was, so the route's parsing,
validation and error paths are fuzzed all the same:

- ``POST /v1/control/start-session``: a BrainFlow board that would open a network socket,
  discover a device by broadcast or reach for Bluetooth or a serial port is replaced by the
  playback board (``-3``), and every IP address in ``params`` by a dead loopback port; the
  synthetic (``-1``) and playback boards, and ids BrainFlow does not know, are sent as
  generated. A discovery ``timeout`` is kept below 2 s.
- ``POST /v1/llm/download/start``: the URL's host and port become the dead loopback port,
  and its path ends in ``.gguf``, so the download starts and fails there (the scheme is kept).
- ``POST /v1/task`` and ``POST /task``: the task's ``cwd`` is moved under the sandbox (the
  agent runs no command anyway: its provider is the dead port, so each run ends ``Failed``).
- ``POST /caco/api/sessions``: as a task's, a Caco session's ``cwd`` moves under the sandbox (the
  file browser's root is the sidecar's cwd, the sandbox, already).
- ``POST``/``PUT /api/config``: an absolute ``workspace_path`` is moved under the test's sandbox, and
  every ``run_targets`` command becomes ``cat`` (a fuzzed string is never run by a shell).

What is refused before it happens, by the runtime's environment rather than this hook (see the
test): git may only use the ``file`` transport (``GIT_ALLOW_PROTOCOL``), so a fuzzed repository
URL is refused by git itself; HTTP(S) proxies point at the dead port and the cloud providers'
base URLs too, so no chat, catalog or download request can leave the loopback interface.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any

import schemathesis
from brainflow.board_shim import BoardIds

#: Where ``workspace_path`` values are moved to, and a loopback port nothing listens on.
SANDBOX = os.environ.get("MISO_FUZZ_SANDBOX", "/nonexistent-miso-fuzz-sandbox")
DEAD_PORT = int(os.environ.get("MISO_FUZZ_DEAD_PORT", "9"))
DEAD_HOST = "127.0.0.1"

#: Boards that touch no network, radio or serial device.
LOCAL_BOARDS = {BoardIds.SYNTHETIC_BOARD.value, BoardIds.PLAYBACK_FILE_BOARD.value}
KNOWN_BOARDS = {board.value for board in BoardIds}
BOARD_ID_KEYS = ("board_id", "boardId")
IP_KEYS = ("ip_address", "ip_address_aux", "ip_address_anc")
PORT_KEYS = ("ip_port", "ip_port_aux", "ip_port_anc")
MAX_DISCOVERY_TIMEOUT_S = 1


def _start_session(body: dict[str, Any]) -> None:
    for key in BOARD_ID_KEYS:
        board = body.get(key)
        if isinstance(board, int) and not isinstance(board, bool) and board in KNOWN_BOARDS - LOCAL_BOARDS:
            body[key] = BoardIds.PLAYBACK_FILE_BOARD.value
    params = body.get("params")
    if not isinstance(params, dict):
        return
    for key in IP_KEYS:
        if isinstance(params.get(key), str):
            params[key] = DEAD_HOST
    for key in PORT_KEYS:
        if isinstance(params.get(key), int) and 0 <= params[key] <= 65535:
            params[key] = DEAD_PORT
    timeout = params.get("timeout")
    if isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > MAX_DISCOVERY_TIMEOUT_S:
        params["timeout"] = MAX_DISCOVERY_TIMEOUT_S


def _download(body: dict[str, Any]) -> None:
    url = body.get("url")
    if not isinstance(url, str):
        return
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return
    if parts.netloc:
        # The file must be a .gguf for the download to start at all; then it fails at the dead port.
        path = parts.path if parts.path.lower().endswith(".gguf") else parts.path.rstrip("/") + "/fuzz.gguf"
        body["url"] = urllib.parse.urlunsplit(parts._replace(netloc=f"{DEAD_HOST}:{DEAD_PORT}", path=path))


def _agents_config(body: dict[str, Any]) -> None:
    path = body.get("workspace_path")
    if isinstance(path, str) and path.startswith("/"):
        body["workspace_path"] = SANDBOX + path
    targets = body.get("run_targets")
    if isinstance(targets, list):
        for target in targets:
            if isinstance(target, dict) and isinstance(target.get("command"), str) and target["command"]:
                target["command"] = "cat"


def _task(body: dict[str, Any]) -> None:
    """A task's ``cwd`` (the directory its agent may read, write and run commands in) moves under the sandbox."""
    cwd = body.get("cwd")
    if isinstance(cwd, str) and cwd:
        body["cwd"] = os.path.join(SANDBOX, cwd.lstrip("/")) if "\x00" not in cwd else cwd


STAND_INS = {
    ("POST", "/v1/task"): _task,
    ("POST", "/task"): _task,
    ("POST", "/caco/api/sessions"): _task,
    ("POST", "/v1/control/start-session"): _start_session,
    ("POST", "/v1/llm/download/start"): _download,
    ("POST", "/api/config"): _agents_config,
    ("PUT", "/api/config"): _agents_config,
}


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    stand_in = STAND_INS.get((case.method.upper(), case.operation.path))
    if stand_in is not None and isinstance(case.body, dict):
        stand_in(case.body)

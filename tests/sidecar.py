"""A real sidecar process for tests: started on a free loopback port, read through its ready line."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import httpx

READY_TIMEOUT_S = 20.0


class Sidecar:
    """One ``python -m miso_runtime`` process with its own data dir and admin token."""

    def __init__(
        self,
        data_dir: Path,
        *,
        token: str = "test-admin-token",
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        command: Sequence[str] | None = None,
        stdin: int | None = subprocess.DEVNULL,
        options_in_env: bool = False,
        cwd: Path | None = None,
    ) -> None:
        """``options_in_env`` passes port and data dir as MISO_PORT/MISO_DATA_DIR (for gunicorn).

        ``cwd`` is the process's working directory (default: the folder holding ``data_dir``,
        never the checkout: Caco's file browser writes under the working directory unless
        ``MISO_CACO_ROOT`` says otherwise). Where the runtime is imported from does not depend on it.
        """
        if cwd is None:
            cwd = data_dir.parent
            cwd.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.token = token
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("MISO_")}
        base_env.update({"MISO_AUTH_TOKEN": token} if token else {})
        base_env.update(env or {})
        self.command = list(command or [sys.executable, "-m", "miso_runtime"])
        if options_in_env:
            base_env.update({"MISO_PORT": "0", "MISO_DATA_DIR": str(data_dir)})
            options: list[str] = []
        else:
            options = ["--port", "0", "--data-dir", str(data_dir)]
        # stderr goes to a file: a pipe nobody reads would fill up and block the sidecar.
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [*self.command, *options, *args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=stdin,
            env=base_env,
            cwd=cwd,
        )
        self.ready = self._read_ready()
        self.port: int = self.ready["port"]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=30.0)

    def _read_ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready:
                line = self.proc.stdout.readline()
                if line:
                    return json.loads(line)
            if self.proc.poll() is not None:
                break
        self.proc.kill()
        raise RuntimeError(f"sidecar did not become ready: {self.stderr_text()}")

    def stderr_text(self) -> str:
        """Everything the sidecar wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    @property
    def auth(self) -> dict[str, str]:
        return {"x-miso-auth": self.token}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.auth)
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.auth)
        return self.http.post(path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.auth)
        return self.http.put(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.auth)
        return self.http.delete(path, **kwargs)

    def stream_chat(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> list[tuple[str, dict]]:
        """POST /chat/stream and return every (event, data) pair until the stream ends."""
        with self.http.stream("POST", "/chat/stream", json=body, headers=headers or self.auth) as response:
            assert response.status_code == 200, response.read()
            return list(parse_sse(response.iter_lines()))

    def stream_chat_then_signal(self, body: dict[str, Any], after_events: int, signum: int) -> list[tuple[str, dict]]:
        """Stream a chat, send ``signum`` to the sidecar after ``after_events`` events, read to the end."""
        events = []
        with self.http.stream("POST", "/chat/stream", json=body, headers=self.auth) as response:
            for event, data in parse_sse(response.iter_lines()):
                events.append((event, data))
                if len(events) == after_events:
                    self.proc.send_signal(signum)
        return events

    def terminate(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.http.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.http.close()


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """Parse SSE lines into (event, data) pairs; comments are skipped, data lines joined."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    if data:
        yield event, json.loads("\n".join(data))

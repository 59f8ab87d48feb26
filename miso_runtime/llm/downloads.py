"""DownloadManager: fetch model files over HTTP(S) into the models directory, resumably.

Model files are gigabytes and home connections drop, so a download is built to survive that:

* Bytes go to ``<name>.part`` beside the target and are renamed to ``<name>`` only once complete
  (and, when an expected SHA-256 is given, only once it matches). The model catalog lists
  ``*.gguf`` files, so a half-written model never appears in it.
* Each download runs in its own :class:`threading.Thread` with a blocking :mod:`httpx` client.
  In the server process gevent has patched :mod:`threading` and sockets, so these threads are
  cooperative greenlets there; elsewhere they are ordinary threads.
* A dropped connection is retried with backoff, resuming with ``Range: bytes=<have>-``; servers
  that ignore ``Range`` (200) or reject it (416) are handled by restarting or by recognising the
  part file as already complete.
* Pausing must stop the transfer promptly even while a read is blocked waiting for a slow
  server, so the worker's socket is shut down from the caller's thread: the blocked read returns
  at once and the worker sees its stop flag.

Progress goes to ``on_event("llm:download", info.to_dict())`` on every state change and at most
every :data:`DOWNLOAD_PROGRESS_INTERVAL_S` while bytes flow. Events are queued under the manager's lock
and delivered outside it, in order, by whichever thread finds the queue idle, so a callback may
call back into the manager and never sees a stale state after a newer one.

URLs may carry access tokens in their query string, so only :func:`redact_url` forms are logged
or published.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from miso_runtime.errors import MisoError

from ..constants import (
    DOWNLOAD_CONNECT_TIMEOUT_S,
    DOWNLOAD_EVENT,
    DOWNLOAD_HASH_CHUNK_BYTES,
    DOWNLOAD_PROGRESS_INTERVAL_S,
    DOWNLOAD_READ_TIMEOUT_S,
    DOWNLOAD_RETRY_BACKOFF_S,
    DOWNLOAD_RETRYABLE_HTTP_STATUSES,
    DOWNLOAD_SHUTDOWN_JOIN_S,
    DOWNLOAD_STOP_JOIN_S,
    MAX_FILE_NAME_CHARS,
    MODEL_SUFFIX,
    PART_SUFFIX,
)

logger = logging.getLogger(__name__)

# --- States -----------------------------------------------------------------------------------

QUEUED = "queued"
DOWNLOADING = "downloading"
PAUSED = "paused"
VERIFYING = "verifying"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"

#: States in which a download owns its file name (a second start of that file is a conflict).
ACTIVE_STATES = frozenset({QUEUED, DOWNLOADING, PAUSED, VERIFYING})
#: States in which a worker thread is (or is about to be) running.
RUNNING_STATES = frozenset({QUEUED, DOWNLOADING, VERIFYING})

_SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


def _now_ms() -> int:
    return int(time.time() * 1000)


def redact_url(url: str) -> str:
    """``url`` without user info, query or fragment: safe to log, since those may hold tokens."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def validate_file_name(name: str, suffix: str = MODEL_SUFFIX) -> str:
    """Return ``name`` if it is a plain file name ending in ``suffix``, else raise ``MisoError(400)``.

    The name becomes a path inside the models directory, so anything that could climb out of it
    or hide a file (separators, ``..``, a leading dot, NUL) is refused rather than cleaned up.
    """
    if (
        not name
        or len(name) > MAX_FILE_NAME_CHARS
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or ".." in name
        or name.startswith(".")
        or name.strip() != name
    ):
        raise MisoError(400, "invalid_request", f"file name {name!r} must be a plain file name, with no path")
    if not name.lower().endswith(suffix) or len(name) <= len(suffix):
        raise MisoError(400, "invalid_request", f"file name {name!r} must end in {suffix}")
    return name


def _check_url(url: str) -> None:
    """A 400 unless ``url`` is an absolute http(s) URL with a host and, if any, a valid port."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number below 65536
    except (TypeError, ValueError) as exc:  # e.g. "Invalid IPv6 URL" for a lone "["
        raise MisoError(400, "invalid_request", f"url is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise MisoError(400, "invalid_request", "url must be an absolute http:// or https:// URL")


def file_name_from_url(url: str) -> str:
    """The last segment of the URL's path, percent-decoded (the query is ignored)."""
    path = urlsplit(url).path
    return unquote(path.rsplit("/", 1)[-1])


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(first_byte, total)`` from a ``Content-Range`` header; either is None when unknown."""
    if not value:
        return None, None
    match = _CONTENT_RANGE_RE.match(value)
    if not match:
        return None, None
    first = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(3)) if match.group(3) != "*" else None
    return first, total


@dataclass
class DownloadInfo:
    """What a client sees of one download; :meth:`to_dict` is its JSON form."""

    id: str
    url: str
    file_name: str
    state: str = QUEUED
    bytes_done: int = 0
    bytes_total: int | None = None
    sha256: str | None = None
    error: str | None = None
    started_at_ms: int = dataclasses.field(default_factory=_now_ms)
    updated_at_ms: int = dataclasses.field(default_factory=_now_ms)
    speed_bytes_per_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form. The URL is redacted: events reach every subscriber and may be logged."""
        data = dataclasses.asdict(self)
        data["url"] = redact_url(self.url)
        data["speed_bytes_per_s"] = round(self.speed_bytes_per_s, 1)
        return data


class _Stopped(Exception):
    """The worker was asked to stop (pause, cancel, delete or shutdown)."""


class _Retry(Exception):
    """An attempt failed in a way another attempt may fix."""


class _Failed(Exception):
    """The download cannot succeed as asked; the message is shown to the user."""


class _Run:
    """One worker thread's stop flag and the socket to shut down to interrupt it.

    Each start or resume gets a fresh ``_Run``, so an old worker that is still winding down can
    never act on behalf of a newer one.
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.reason: str | None = None
        self.received = 0  # bytes written during the current attempt
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    def interrupt(self, reason: str) -> None:
        """Ask the worker to stop and wake it if it is blocked on the network."""
        with self._lock:
            if self.reason is None or reason == "cancel":  # cancel must win: it removes the part file
                self.reason = reason
            self.stop.set()
            sock = self._sock
        _shutdown_socket(sock)

    def attach(self, sock: Any) -> None:
        """Remember the socket in use; shut it at once if a stop came first."""
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sock = sock
            stopped = self.stop.is_set()
        if stopped:
            _shutdown_socket(sock)

    def detach(self) -> None:
        with self._lock:
            self._sock = None

    def check(self) -> None:
        if self.stop.is_set():
            raise _Stopped()


def _shutdown_socket(sock: socket.socket | None) -> None:
    # shutdown() (unlike close()) wakes a read blocked in another thread on every platform we run on.
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


@dataclass
class _Job:
    info: DownloadInfo
    target: Path
    part: Path
    run: _Run
    thread: threading.Thread | None = None
    last_emit: float = 0.0
    speed_mark: tuple[float, int] = (0.0, 0)


class DownloadManager:
    """Starts, pauses, resumes, cancels and lists model downloads into ``models_dir``.

    Parameters
    ----------
    models_dir : Path
        Where finished files land (created when needed); part files live beside them.
    on_event : Callable[[str, dict], None]
        Called with ``("llm:download", info.to_dict())``; never while the manager's lock is held.
    progress_interval_s : float
        Least time between two progress events of one download, seconds.
    suffix : str
        What every file name must end in (``.gguf`` for models, ``.onnx`` for EEG encoders).
    """

    def __init__(
        self,
        models_dir: Path,
        on_event: Callable[[str, dict], None],
        progress_interval_s: float = DOWNLOAD_PROGRESS_INTERVAL_S,
        suffix: str = MODEL_SUFFIX,
    ) -> None:
        self._dir = Path(models_dir)
        self._on_event = on_event
        self._progress_interval_s = progress_interval_s
        self._suffix = suffix
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._outbox: deque[dict[str, Any]] = deque()
        self._delivering = False
        self._closed = False

    # --- Public API ---------------------------------------------------------------------------

    def start(self, url: str, file_name: str | None = None, sha256: str | None = None) -> DownloadInfo:
        """Begin downloading ``url`` into ``models_dir/<file_name>``; returns its first state.

        An existing ``.part`` file of the same name is resumed from, e.g. after a restart.
        """
        _check_url(url)
        name = validate_file_name(file_name if file_name is not None else file_name_from_url(url), self._suffix)
        if sha256 is not None and not _SHA256_RE.match(sha256):
            raise MisoError(400, "invalid_request", "sha256 must be 64 hexadecimal characters")
        expected = sha256.lower() if sha256 else None
        self._dir.mkdir(parents=True, exist_ok=True)
        target, part = self._dir / name, self._dir / (name + PART_SUFFIX)

        with self._lock:
            if self._closed:
                raise MisoError(503, "unavailable", "downloads are shutting down")
            for job in self._jobs.values():
                if job.info.file_name == name and job.info.state in ACTIVE_STATES:
                    raise MisoError(409, "conflict", f"{name} is already being downloaded (id {job.info.id})")
            if target.exists():
                raise MisoError(409, "conflict", f"{name} already exists; delete it first to download it again")
            info = DownloadInfo(id=secrets.token_hex(8), url=url, file_name=name, sha256=expected)
            info.bytes_done = _size(part)
            job = _Job(info=info, target=target, part=part, run=_Run())
            self._jobs[info.id] = job
            self._emit_locked(job)
            self._spawn_locked(job, previous=None)
            snapshot = dataclasses.replace(info)
        logger.info("download %s: %s -> %s", info.id, redact_url(url), name)
        self._deliver()
        return snapshot

    def pause(self, download_id: str) -> DownloadInfo:
        """Stop the transfer now and keep the part file; :meth:`resume` continues from it."""
        with self._lock:
            job = self._job(download_id)
            if job.info.state == PAUSED:
                return dataclasses.replace(job.info)
            if job.info.state not in RUNNING_STATES:
                raise MisoError(409, "conflict", f"a {job.info.state} download cannot be paused")
            self._set_state_locked(job, PAUSED)
            run = job.run
            snapshot = dataclasses.replace(job.info)
        run.interrupt("pause")
        self._deliver()
        return snapshot

    def resume(self, download_id: str) -> DownloadInfo:
        """Continue a paused (or failed) download from the bytes already on disk."""
        with self._lock:
            job = self._job(download_id)
            if job.info.state in RUNNING_STATES:
                return dataclasses.replace(job.info)
            if job.info.state not in (PAUSED, FAILED):
                raise MisoError(409, "conflict", f"a {job.info.state} download cannot be resumed; start it again")
            if self._closed:
                raise MisoError(503, "unavailable", "downloads are shutting down")
            previous = job.thread
            job.run = _Run()
            job.info.error = None
            self._set_state_locked(job, QUEUED)
            self._spawn_locked(job, previous=previous)
            snapshot = dataclasses.replace(job.info)
        self._deliver()
        return snapshot

    def cancel(self, download_id: str) -> DownloadInfo:
        """Stop the download and delete its part file (the entry stays, as ``cancelled``)."""
        with self._lock:
            job = self._job(download_id)
            if job.info.state == COMPLETED:
                raise MisoError(409, "conflict", "the download is complete; delete it to remove the file")
            if job.info.state != CANCELLED:
                self._set_state_locked(job, CANCELLED)
            run, thread = job.run, job.thread
            snapshot = dataclasses.replace(job.info)
        self._stop_and_remove(job, run, thread, remove_target=False)
        self._deliver()
        return snapshot

    def delete(self, id_or_file_name: str) -> None:
        """Forget a download and remove its files: the finished model, a part file, or both.

        Accepts a download id or a file name in ``models_dir`` (a model this manager did not
        download, or a part file left from an earlier run).
        """
        with self._lock:
            job = self._jobs.get(id_or_file_name) or self._latest_job_for_name(id_or_file_name)
            if job is not None:
                name = job.info.file_name
                if any(
                    other is not job and other.info.file_name == name and other.info.state in ACTIVE_STATES
                    for other in self._jobs.values()
                ):
                    # An old entry while a newer download of the same file runs: forget only the entry.
                    del self._jobs[job.info.id]
                    return
                if job.info.state in ACTIVE_STATES:
                    self._set_state_locked(job, CANCELLED)
                for other in [j for j in self._jobs.values() if j.info.file_name == name]:
                    del self._jobs[other.info.id]  # every entry for this name describes a file now gone
        if job is not None:
            self._stop_and_remove(job, job.run, job.thread, remove_target=True)
            self._deliver()
            logger.info("download %s: deleted %s", job.info.id, job.info.file_name)
            return
        name = id_or_file_name
        try:
            validate_file_name(name)
        except MisoError:
            raise MisoError(404, "not_found", f"no download or model file named {name!r}") from None
        target, part = self._dir / name, self._dir / (name + PART_SUFFIX)
        if not target.exists() and not part.exists():
            raise MisoError(404, "not_found", f"no download or model file named {name!r}")
        _unlink(target)
        _unlink(part)
        logger.info("deleted model file %s", name)

    def list(self) -> list[DownloadInfo]:
        """Every download of this session, oldest first (copies: safe to keep)."""
        with self._lock:
            return [dataclasses.replace(job.info) for job in self._jobs.values()]

    def get(self, download_id: str) -> DownloadInfo:
        """One download's current state; ``MisoError(404)`` when unknown."""
        with self._lock:
            return dataclasses.replace(self._job(download_id).info)

    def shutdown(self) -> None:
        """Pause every running download (part files stay) and wait for the workers to end."""
        with self._lock:
            self._closed = True
            stopping: list[tuple[_Run, threading.Thread | None]] = []
            for job in self._jobs.values():
                if job.info.state in RUNNING_STATES:
                    self._set_state_locked(job, PAUSED)
                stopping.append((job.run, job.thread))
        for run, _ in stopping:
            run.interrupt("shutdown")
        self._deliver()
        deadline = time.monotonic() + DOWNLOAD_SHUTDOWN_JOIN_S
        for _, thread in stopping:
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    # --- Bookkeeping (call with the lock held where the name says so) -------------------------

    def _job(self, download_id: str) -> _Job:
        job = self._jobs.get(download_id)
        if job is None:
            raise MisoError(404, "not_found", f"no download with id {download_id!r}")
        return job

    def _latest_job_for_name(self, name: str) -> _Job | None:
        matches = [job for job in self._jobs.values() if job.info.file_name == name]
        active = [job for job in matches if job.info.state in ACTIVE_STATES]
        return (active or matches or [None])[-1]

    def _spawn_locked(self, job: _Job, previous: threading.Thread | None) -> None:
        run = job.run
        job.thread = threading.Thread(
            target=self._worker, args=(job, run, previous), name=f"download-{job.info.id}", daemon=True
        )
        job.thread.start()

    def _set_state_locked(self, job: _Job, state: str, error: str | None = None) -> None:
        job.info.state = state
        if error is not None:
            job.info.error = error
        if state != DOWNLOADING:
            job.info.speed_bytes_per_s = 0.0
        self._emit_locked(job)
        logger.info("download %s (%s): %s%s", job.info.id, job.info.file_name, state, f": {error}" if error else "")

    def _emit_locked(self, job: _Job) -> None:
        job.info.updated_at_ms = _now_ms()
        job.last_emit = time.monotonic()
        self._outbox.append(job.info.to_dict())

    def _deliver(self) -> None:
        """Hand queued events to ``on_event`` in order, outside the lock.

        Only one thread delivers at a time; the others just queue, so events of one download
        are never reordered even when a caller's thread and the worker emit at once.
        """
        with self._lock:
            if self._delivering:
                return
            self._delivering = True
        try:
            while True:
                with self._lock:
                    if not self._outbox:
                        self._delivering = False
                        return
                    payload = self._outbox.popleft()
                try:
                    self._on_event(DOWNLOAD_EVENT, payload)
                except Exception:
                    logger.exception("download event callback failed")
        except BaseException:
            with self._lock:
                self._delivering = False
            raise

    def _owns(self, job: _Job, run: _Run) -> bool:
        """True when ``run`` may still change ``job``'s state (lock held)."""
        return job.run is run and not run.stop.is_set() and self._jobs.get(job.info.id) is job

    def _update(self, job: _Job, run: _Run, state: str | None = None, **fields: Any) -> None:
        """Worker-side change of fields (and state); ignored once the run has been stopped."""
        with self._lock:
            if not self._owns(job, run):
                raise _Stopped()
            for key, value in fields.items():
                setattr(job.info, key, value)
            if state is not None and state != job.info.state:
                self._set_state_locked(job, state)
            elif fields:
                self._emit_locked(job)
        self._deliver()

    def _progress(self, job: _Job, run: _Run, done: int) -> None:
        """Record bytes on disk; emit at most every DOWNLOAD_PROGRESS_INTERVAL_S."""
        emit = False
        with self._lock:
            if not self._owns(job, run):
                return
            job.info.bytes_done = done
            now = time.monotonic()
            if now - job.last_emit >= self._progress_interval_s:
                mark_time, mark_bytes = job.speed_mark
                if mark_time and now > mark_time and done >= mark_bytes:
                    job.info.speed_bytes_per_s = (done - mark_bytes) / (now - mark_time)
                job.speed_mark = (now, done)
                self._emit_locked(job)
                emit = True
        if emit:
            self._deliver()

    def _stop_and_remove(self, job: _Job, run: _Run, thread: threading.Thread | None, remove_target: bool) -> None:
        run.interrupt("cancel")
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(DOWNLOAD_STOP_JOIN_S)
        _unlink(job.part)  # the worker also removes it on its way out, should it outlive the join
        if remove_target:
            _unlink(job.target)

    # --- Worker thread ------------------------------------------------------------------------

    def _worker(self, job: _Job, run: _Run, previous: threading.Thread | None) -> None:
        if previous is not None and previous.is_alive():
            previous.join()  # a paused worker still winding down must not write beside us
        try:
            self._download(job, run)
        except _Stopped:
            pass
        except _Failed as exc:
            self._fail(job, run, str(exc))
        except Exception as exc:  # a bug, or an error we did not foresee: fail visibly, keep the server up
            logger.exception("download %s crashed", job.info.id)
            self._fail(job, run, f"unexpected error: {type(exc).__name__}: {exc}")
        finally:
            if run.reason == "cancel":
                _unlink(job.part)

    def _fail(self, job: _Job, run: _Run, message: str) -> None:
        with self._lock:
            if not self._owns(job, run):
                return
            self._set_state_locked(job, FAILED, error=message)
        self._deliver()

    def _download(self, job: _Job, run: _Run) -> None:
        run.check()
        self._update(job, run, DOWNLOADING)
        timeout = httpx.Timeout(DOWNLOAD_READ_TIMEOUT_S, connect=DOWNLOAD_CONNECT_TIMEOUT_S)
        with httpx.Client(timeout=timeout, follow_redirects=True, headers={"Accept-Encoding": "identity"}) as client:
            failures = 0
            while True:
                run.check()
                run.received = 0
                try:
                    self._attempt(client, job, run)
                    break
                except (_Retry, httpx.TransportError) as exc:
                    run.check()  # an interrupted read is how a pause looks from here
                    failures = 1 if run.received else failures + 1
                    if failures > len(DOWNLOAD_RETRY_BACKOFF_S):
                        raise _Failed(f"download failed after {failures} attempts: {_describe(exc)}") from None
                    delay = DOWNLOAD_RETRY_BACKOFF_S[failures - 1]
                    logger.warning("download %s: %s; retrying in %.1f s", job.info.id, _describe(exc), delay)
                    if run.stop.wait(delay):
                        raise _Stopped() from None
        self._finish(job, run)

    def _attempt(self, client: httpx.Client, job: _Job, run: _Run) -> None:
        """One request: append to the part file until the body ends; raises to retry or fail."""
        have = _size(job.part)
        headers = {"Range": f"bytes={have}-"} if have else {}

        def trace(event: str, info: dict[str, Any]) -> None:
            # Catch the socket as soon as it exists, so a pause can interrupt even the wait for headers.
            if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
                stream = info.get("return_value")
                if stream is not None:
                    run.attach(stream.get_extra_info("socket"))

        with client.stream("GET", job.info.url, headers=headers, extensions={"trace": trace}) as response:
            stream = response.extensions.get("network_stream")
            if stream is not None:
                run.attach(stream.get_extra_info("socket"))
            try:
                run.check()
                self._receive(job, run, response, have)
            finally:
                run.detach()

    def _receive(self, job: _Job, run: _Run, response: httpx.Response, have: int) -> None:
        status = response.status_code
        if status == 416:
            _, total = _parse_content_range(response.headers.get("content-range"))
            if total is not None and have == total:
                self._update(job, run, bytes_done=have, bytes_total=total)
                return  # the part file already holds every byte
            _truncate(job.part)
            raise _Retry(f"server refused to resume at byte {have} (HTTP 416); starting over")
        if status == 206:
            first, total = _parse_content_range(response.headers.get("content-range"))
            if first != have:
                _truncate(job.part)
                raise _Retry(f"server resumed at byte {first} instead of {have}; starting over")
            if total is None and response.headers.get("content-length", "").isdigit():
                total = have + int(response.headers["content-length"])
            mode = "ab"
        elif status == 200:
            if have:
                logger.info("download %s: server ignored the Range request; starting over", job.info.id)
            have = 0
            length = response.headers.get("content-length", "")
            total = int(length) if length.isdigit() else None
            mode = "wb"
        elif status in DOWNLOAD_RETRYABLE_HTTP_STATUSES:
            raise _Retry(f"server answered HTTP {status}")
        else:
            reason = response.reason_phrase or ""
            raise _Failed(f"server answered HTTP {status} {reason}".rstrip() + f" for {redact_url(job.info.url)}")

        self._update(job, run, bytes_done=have, bytes_total=total)
        job.speed_mark = (time.monotonic(), have)
        try:
            with open(job.part, mode) as fh:
                for chunk in response.iter_bytes():
                    run.check()
                    fh.write(chunk)
                    have += len(chunk)
                    run.received += len(chunk)
                    if total is not None and have > total:
                        raise _Failed(f"server sent more than the {total} bytes it announced")
                    self._progress(job, run, have)
        except OSError as exc:
            raise _Failed(f"cannot write {job.part.name}: {exc.strerror or exc}") from None
        run.check()
        if total is not None and have < total:
            raise _Retry(f"connection closed at byte {have} of {total}")
        self._update(job, run, bytes_done=have, bytes_total=total if total is not None else have)

    def _finish(self, job: _Job, run: _Run) -> None:
        """Verify the hash when one was given, then publish the file under its final name."""
        expected = job.info.sha256
        if expected:
            self._update(job, run, VERIFYING)
            digest = hashlib.sha256()
            try:
                with open(job.part, "rb") as fh:
                    while block := fh.read(DOWNLOAD_HASH_CHUNK_BYTES):
                        run.check()
                        digest.update(block)
            except OSError as exc:
                raise _Failed(f"cannot read {job.part.name}: {exc.strerror or exc}") from None
            actual = digest.hexdigest()
            if actual != expected:
                _unlink(job.part)
                raise _Failed(f"SHA-256 mismatch: expected {expected}, got {actual}; the file was deleted")
        with self._lock:
            # Rename and state change together, so a concurrent cancel sees either a part file or a model.
            if not self._owns(job, run):
                raise _Stopped()
            try:
                os.replace(job.part, job.target)
            except OSError as exc:
                raise _Failed(f"cannot rename {job.part.name}: {exc.strerror or exc}") from None
            job.info.bytes_done = _size(job.target)
            job.info.bytes_total = job.info.bytes_done
            self._set_state_locked(job, COMPLETED)
        self._deliver()


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text or type(exc).__name__


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _truncate(path: Path) -> None:
    try:
        with open(path, "wb"):
            pass
    except OSError as exc:
        raise _Failed(f"cannot write {path.name}: {exc.strerror or exc}") from None


def _unlink(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("could not remove %s: %s", path.name, exc.strerror or exc)

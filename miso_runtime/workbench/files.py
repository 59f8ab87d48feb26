"""Caco's file browser: the workspace's files, listed, served, read and written, never outside its root.

Every client path goes through :meth:`WorkspaceFiles.locate`, the one place that turns it into
a place inside the root or refuses it. The rule is stricter than Caco's (which compares paths
as text): symlinks are resolved, so a link inside the workspace that points out of it is
refused like ``../x``; NUL and other control characters are refused. Paths are then opened
one directory at a time from the root (``dir_fd`` with ``O_NOFOLLOW``), so a directory that is
swapped for a symlink between the check and the use is refused too, not followed.

Writes are atomic: a temporary file in the target's own directory, fsynced, then renamed over
the target, so a reader sees the old file or the new one and a failed write leaves nothing.

Statuses follow Caco's, except that a client's mistake Caco answers with a 500 (a missing file
or directory, a path through a file) gets a 4xx here.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import constants
from ..errors import MisoError
from ..fields import is_printable

logger = logging.getLogger(__name__)

#: The longest name of one file (bytes) and of a whole path that the file systems we run on take.
NAME_MAX_BYTES = 255
PATH_MAX_BYTES = 4096

#: Caco's content types by extension (``/api/file``); anything else is ``application/octet-stream``.
CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "svg": "image/svg+xml",
    "ico": "image/x-icon",
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "css": "text/css",
    "js": "text/javascript",
    "ts": "text/typescript",
    "json": "application/json",
    "xml": "application/xml",
    "py": "text/x-python",
    "rb": "text/x-ruby",
    "go": "text/x-go",
    "rs": "text/x-rust",
    "java": "text/x-java",
    "c": "text/x-c",
    "cpp": "text/x-c++",
    "h": "text/x-c",
    "sh": "text/x-shellscript",
    "yaml": "text/yaml",
    "yml": "text/yaml",
    "toml": "text/toml",
    "pdf": "application/pdf",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"

ACCESS_DENIED = "Access denied: path outside workspace"
_TEMP_PREFIX = ".miso-write-"


def content_type_for(name: str) -> str:
    """The ``Content-Type`` Caco sends for a file called ``name``; text and JSON say ``charset=utf-8``."""
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    content_type = CONTENT_TYPES.get(extension, DEFAULT_CONTENT_TYPE)
    if content_type.startswith("text/") or content_type == "application/json":
        content_type += "; charset=utf-8"
    return content_type


def utf16_length(text: str) -> int:
    """``text.length`` in JavaScript (UTF-16 code units), which is what Caco reports as a write's ``size``."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class WorkspacePath:
    """A client path checked against the root.

    ``rel`` is the path as the client named it, relative to the root (``"."`` for the root):
    what Caco answers as ``path``. ``parts`` are the components of where it really is, every
    symlink resolved, relative to the root (empty for the root itself).
    """

    rel: str
    parts: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""


def _denied() -> MisoError:
    return MisoError(403, "forbidden", ACCESS_DENIED)


def _escapes(rel: str) -> bool:
    """Whether a path relative to the root (``os.path.relpath``'s answer) leads out of it."""
    return rel == ".." or rel.startswith(".." + os.sep)


class WorkspaceFiles:
    """The files under ``root`` (resolved), as Caco's file-browser routes see them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(os.path.realpath(root))

    # --- the one gate -------------------------------------------------------------------------

    def locate(self, client_path: str) -> WorkspacePath:
        """Where ``client_path`` (relative to the root, or absolute) is inside the root; a MisoError if not.

        Refused: NUL and control characters (400), names too long for the file system (400), and
        any path that leaves the root, by ``..``, by being absolute elsewhere, or through a
        symlink (403, Caco's message).
        """
        if not is_printable(client_path):
            raise MisoError(400, "invalid_path", "Invalid path: NUL and other control characters are not allowed")
        root = str(self.root)
        lexical = os.path.normpath(os.path.join(root, client_path))
        rel = os.path.relpath(lexical, root)
        if _escapes(rel):
            raise _denied()
        _check_length(rel)
        resolved_rel = os.path.relpath(os.path.realpath(lexical), root)
        if _escapes(resolved_rel):
            raise _denied()
        _check_length(resolved_rel)
        parts = () if resolved_rel == "." else tuple(resolved_rel.split(os.sep))
        return WorkspacePath(rel, parts)

    # --- operations ---------------------------------------------------------------------------

    def list(self, path: str = "") -> dict[str, Any]:
        """``{"path", "cwd", "files": [{"name", "type", "size"}]}`` of a directory; dot-files left out.

        Directories come first, then files, each by name without regard to case (lower case
        first among names that differ only in case, as ``localeCompare`` orders them). A symlink
        is described by what it points to when that is inside the workspace; one that points
        out of it (or nowhere) is a ``file`` of size 0, and opening it is refused.
        """
        where = self.locate(path or "")
        with _os_errors("Failed to list directory", missing="Failed to list directory: no such directory"):
            fd = self._open_dir(where.parts)
            try:
                with os.scandir(fd) as entries:
                    files = [self._describe(where, entry) for entry in entries if not entry.name.startswith(".")]
            finally:
                os.close(fd)
        files.sort(key=lambda item: (item["type"] != "directory", item["name"].casefold(), item["name"].swapcase()))
        return {"path": where.rel, "cwd": str(self.root), "files": files}

    def serve(self, path: str) -> tuple[bytes, str]:
        """A file's bytes and its content type (by extension); at most ``CACO_FILE_SERVE_MAX_BYTES``."""
        where = self.locate(path)
        data = self._read(
            where,
            limit=constants.CACO_FILE_SERVE_MAX_BYTES,
            too_large=MisoError(413, "payload_too_large", "File too large (max 10MB)"),
            directory="Cannot serve directory",
            failed="Failed to serve file",
        )
        return data, content_type_for(os.path.basename(where.rel))

    def read(self, path: str) -> dict[str, Any]:
        """``{"path", "content", "size"}`` of a UTF-8 text file of at most ``CACO_FILE_READ_MAX_BYTES`` (legacy)."""
        where = self.locate(path)
        data = self._read(
            where,
            limit=constants.CACO_FILE_READ_MAX_BYTES,
            too_large=MisoError(400, "file_too_large", "File too large (max 100KB)"),
            directory="Cannot read directory",
            failed="Failed to read file",
        )
        try:
            content = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MisoError(
                400, "not_text", "Cannot read file: it is not UTF-8 text (GET /api/file serves any file)"
            ) from None
        return {"path": where.rel, "content": content, "size": len(data)}

    def put(self, path: str, text: str) -> dict[str, Any]:
        """Write ``text`` (UTF-8) to ``path``, creating its parent directories; ``{"ok", "path", "size"}``."""
        return self._write(self.locate(path), text, create_parents=True)

    def write(self, path: str, content: str) -> dict[str, Any]:
        """Write ``content`` to ``path``, whose directory must exist (Caco's legacy write); as :meth:`put`."""
        return self._write(self.locate(path), content, create_parents=False)

    # --- helpers ------------------------------------------------------------------------------

    def _open_dir(self, parts: tuple[str, ...], *, create: bool = False) -> int:
        """A descriptor of the directory ``parts`` below the root, opened one level at a time.

        No level may be a symlink (``O_NOFOLLOW``): ``parts`` come resolved from :meth:`locate`,
        so a symlink met here was put there since, and following it could leave the root.
        ``create`` makes missing levels (``mkdir -p``).
        """
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts:
                if create:
                    try:
                        os.mkdir(part, dir_fd=fd)
                    except FileExistsError:
                        pass
                below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = below
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _describe(self, where: WorkspacePath, entry: os.DirEntry) -> dict[str, Any]:
        kind, size = "file", 0
        if entry.is_symlink():
            target = os.path.realpath(os.path.join(self.root, *where.parts, entry.name))
            if _escapes(os.path.relpath(target, self.root)):
                return {"name": entry.name, "type": kind, "size": size}
        try:
            info = entry.stat()
            kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
            size = info.st_size
        except OSError:  # a dangling link, or an entry removed while we list
            pass
        return {"name": entry.name, "type": kind, "size": size}

    def _read(self, where: WorkspacePath, *, limit: int, too_large: MisoError, directory: str, failed: str) -> bytes:
        if not where.parts:
            raise MisoError(400, "is_directory", directory)
        with _os_errors(failed, missing="File not found", through_file="File not found"):
            parent = self._open_dir(where.parts[:-1])
            try:
                # O_NONBLOCK: opening a FIFO must not wait for a writer.
                fd = os.open(where.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
            finally:
                os.close(parent)
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):  # before fdopen, which refuses a directory with its own error
                os.close(fd)
                raise MisoError(400, "is_directory", directory)
            with os.fdopen(fd, "rb") as handle:
                if not stat.S_ISREG(info.st_mode):
                    raise MisoError(400, "not_a_file", f"{failed}: not a regular file")
                if info.st_size > limit:
                    raise too_large
                data = handle.read(limit + 1)  # the file may have grown since fstat
        if len(data) > limit:
            raise too_large
        return data

    def _write(self, where: WorkspacePath, text: str, *, create_parents: bool) -> dict[str, Any]:
        if not where.parts:
            raise MisoError(400, "is_directory", "Cannot write to a directory")
        data = text.encode("utf-8")
        with _os_errors(
            "Failed to write file",
            missing="Failed to write file: parent directory does not exist",
            through_file="Failed to write file: a parent is not a directory",
        ):
            parent = self._open_dir(where.parts[:-1], create=create_parents)
            try:
                _replace(parent, where.name, data)
            finally:
                os.close(parent)
        return {"ok": True, "path": where.rel, "size": utf16_length(text)}


def _replace(parent: int, name: str, data: bytes) -> None:
    """Put ``data`` at ``name`` in the directory ``parent``: a temporary file there, renamed over it."""
    mode = None
    try:
        current = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        if stat.S_ISDIR(current.st_mode):
            raise MisoError(400, "is_directory", "Cannot write to a directory")
        if stat.S_ISREG(current.st_mode):
            mode = stat.S_IMODE(current.st_mode)  # an executable script stays executable
    # A short name of its own: the target's name may already be as long as a name can be.
    temp = f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        try:
            os.unlink(temp, dir_fd=parent)
        except FileNotFoundError:
            pass
        raise


def _check_length(rel: str) -> None:
    if rel == ".":
        return
    encoded = os.fsencode(rel)
    if len(encoded) >= PATH_MAX_BYTES or any(len(part) > NAME_MAX_BYTES for part in encoded.split(b"/")):
        raise MisoError(400, "invalid_path", "Invalid path: a name is too long")


@contextmanager
def _os_errors(failed: str, *, missing: str, through_file: str | None = None) -> Iterator[None]:
    """Turn the file system's refusals into MisoErrors: 4xx for what the client asked, 500 for the rest.

    ``missing`` is the 404's message; ``through_file`` the message for a path that goes through
    a file where a directory should be (404 when it is ``missing`` as well, else 400).
    """
    try:
        yield
    except MisoError:
        raise
    except OSError as error:
        if error.errno == errno.ENOENT:
            raise MisoError(404, "not_found", missing) from None
        if error.errno == errno.ENOTDIR:
            message = through_file or f"{failed}: not a directory"
            if message == missing:
                raise MisoError(404, "not_found", message) from None
            raise MisoError(400, "not_a_directory", message) from None
        if error.errno == errno.ELOOP:
            raise _denied() from None  # a symlink appeared since the path was checked
        if error.errno == errno.EISDIR:
            raise MisoError(400, "is_directory", f"{failed}: it is a directory") from None
        if error.errno == errno.ENAMETOOLONG:
            raise MisoError(400, "invalid_path", "Invalid path: a name is too long") from None
        if error.errno in (errno.EACCES, errno.EPERM):
            raise MisoError(403, "forbidden", f"{failed}: permission denied") from None
        logger.warning("%s: %s", failed, error)
        raise MisoError(500, "io_error", failed) from None

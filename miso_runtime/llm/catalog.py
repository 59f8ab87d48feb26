"""The local model catalog: the GGUF files in the models folder and what each one is.

A person drops files into the folder (or a download finishes there) at any time, so the
catalog is rescanned on demand rather than watched. A rescan only reads files that are new or
whose size or modification time changed, so asking for the list often stays cheap. A file
that cannot be read stays in the list with its error, because "my model is missing" is harder
to act on than "my model is truncated".
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..constants import (
    MODEL_SUFFIX,
    PARTIAL_DOWNLOAD_SUFFIXES,
)
from ..errors import MisoError
from .gguf_info import GGUFInfo, detect_chat_format, read_gguf_info

logger = logging.getLogger(__name__)

_CacheKey = tuple[Path, int, int]  # path, size in bytes, mtime in ns


@dataclass(frozen=True)
class CatalogEntry:
    """One model file: its info when it could be read, else the reason it could not."""

    #: Stable identifier: the file stem, what a client names when it picks this model.
    id: str
    path: Path
    file_name: str
    size_bytes: int
    modified_ns: int
    info: GGUFInfo | None
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for the faces; never contains the chat template text."""
        info = self.info
        return {
            "id": self.id,
            "file_name": self.file_name,
            "size_bytes": self.size_bytes,
            "modified_at": self.modified_ns // 1_000_000,  # UTC epoch ms, as elsewhere in the API
            "architecture": info.architecture if info else None,
            "name": info.name if info else None,
            "kind": info.kind if info else None,
            "parameter_count": info.parameter_count if info else None,
            "quantization": info.quantization if info else None,
            "file_type": info.file_type if info else None,
            "context_length": info.context_length if info else None,
            "has_chat_template": info.has_chat_template if info else None,
            "chat_format": detect_chat_format(info) if info else None,
            "licence": info.licence if info else None,
            "error": self.error,
        }


def _is_model_file(path: Path) -> bool:
    name = path.name.lower()
    return (
        name.endswith(MODEL_SUFFIX)
        and not name.startswith(".")  # editors' and downloaders' hidden temporaries
        and not name.endswith(PARTIAL_DOWNLOAD_SUFFIXES)
        and path.is_file()
    )


class ModelCatalog:
    """The ``*.gguf`` files directly inside ``models_dir``, rescanned by :meth:`refresh`.

    ``reader`` is the function that reads one file (tests pass a counting wrapper). All
    methods may be called from any thread.
    """

    def __init__(self, models_dir: Path, reader: Callable[[Path], GGUFInfo] = read_gguf_info) -> None:
        self._models_dir = Path(models_dir)
        self._reader = reader
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[_CacheKey, CatalogEntry]] = {}
        self._entries: list[CatalogEntry] | None = None

    @property
    def models_dir(self) -> Path:
        return self._models_dir

    def _read(self, path: Path, key: _CacheKey) -> CatalogEntry:
        _, size, mtime_ns = key
        info: GGUFInfo | None = None
        error: str | None = None
        try:
            info = self._reader(path)
        except MisoError as exc:
            error = exc.message
        except Exception as exc:  # one unreadable file must not hide the others
            logger.exception("catalog: unexpected failure reading %s", path)
            error = f"{path.name}: cannot read the file ({exc})"
        if error:
            logger.info("catalog: %s", error)
        return CatalogEntry(path.stem, path, path.name, size, mtime_ns, info, error)

    def refresh(self) -> list[CatalogEntry]:
        """Rescan the folder, reading only new or changed files; returns the entries by id.

        A missing folder is an empty catalog, not an error: nothing has been downloaded yet.
        """
        with self._lock:
            try:
                candidates = [p for p in self._models_dir.iterdir() if _is_model_file(p)]
            except FileNotFoundError:
                candidates = []
            except OSError as exc:
                logger.warning("catalog: cannot list %s: %s", self._models_dir, exc)
                candidates = []
            fresh: dict[Path, tuple[_CacheKey, CatalogEntry]] = {}
            for path in candidates:
                try:
                    stat = path.stat()
                except OSError:  # deleted between listing and stat
                    continue
                key: _CacheKey = (path, stat.st_size, stat.st_mtime_ns)
                cached = self._cache.get(path)
                fresh[path] = cached if cached and cached[0] == key else (key, self._read(path, key))
            self._cache = fresh
            self._entries = sorted((entry for _, entry in fresh.values()), key=lambda e: (e.id.lower(), e.id))
            return list(self._entries)

    def entries(self) -> list[CatalogEntry]:
        """The last scan's entries, scanning first if there has been none."""
        with self._lock:
            entries = self._entries
        return list(entries) if entries is not None else self.refresh()

    def find(self, name: str) -> CatalogEntry | None:
        """The entry a client means by ``name``, in the last scan.

        Tried in order: the id (file stem), the full file name, then ``general.name``, all
        case-insensitively; the first entry by id wins when several share a ``general.name``.
        """
        wanted = name.strip().lower()
        if not wanted:
            return None
        entries = self.entries()
        for matches in (
            lambda e: e.id.lower() == wanted,
            lambda e: e.file_name.lower() == wanted,
            lambda e: e.info is not None and e.info.name is not None and e.info.name.lower() == wanted,
        ):
            for entry in entries:
                if matches(entry):
                    return entry
        return None

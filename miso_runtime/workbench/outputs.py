"""Display outputs: what the display tools showed the person, kept as files.

Caco keeps an output in memory for 30 minutes and on disk under its session; ours are only on
disk and do not expire, because a session's history names them (``outputs`` of a replayed
reply) and a page that reconnects a day later still shows them. The task process of a session
writes them; the server reads them, so there is no index: the id names the files.

An output is ``<id>.data`` (the bytes: text as UTF-8, an image raw, an embed's HTML) and
``<id>.meta.json``, written data first and metadata last, each atomically, so a reader that finds
the metadata finds the data.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .timestamps import iso_time

#: Caco's id form: ``out_<ms since epoch>_<6 base36 characters>``. An id is checked against it
#: (whole, with ``fullmatch``) before it names a file, so no id can reach outside ``root``.
OUTPUT_ID = re.compile(r"out_[0-9]{1,16}_[0-9a-z]{6}")
_BASE36 = string.digits + string.ascii_lowercase


@dataclass(frozen=True)
class StoredOutput:
    id: str
    data: bytes
    metadata: dict[str, Any]


def _new_id() -> str:
    return f"out_{int(time.time() * 1000)}_{''.join(secrets.choice(_BASE36) for _ in range(6))}"


def _write_atomic(path: Path, data: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class OutputStore:
    """The outputs under ``root`` (``<data dir>/caco/outputs``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def store(self, data: bytes | str, metadata: dict[str, Any]) -> str:
        """Keep ``data`` (text is kept as UTF-8) with ``metadata``, which must name its ``type``; returns the new id.

        ``createdAt`` is set here, as Caco's ``toISOString()`` writes it, whatever the caller gave.
        """
        kind = metadata.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValueError("an output's metadata must name its type")
        self.root.mkdir(parents=True, exist_ok=True)
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        described = {**metadata, "type": kind, "createdAt": iso_time()}
        output_id = _new_id()
        while (self.root / f"{output_id}.meta.json").exists():  # the same millisecond and the same 31 bits
            output_id = _new_id()
        _write_atomic(self.root / f"{output_id}.data", raw)
        _write_atomic(self.root / f"{output_id}.meta.json", json.dumps(described, ensure_ascii=False).encode("utf-8"))
        return output_id

    def get(self, output_id: str) -> StoredOutput | None:
        """The output, or None for an id that is unknown or not of Caco's form."""
        if not isinstance(output_id, str) or not OUTPUT_ID.fullmatch(output_id):
            return None
        try:
            metadata = json.loads((self.root / f"{output_id}.meta.json").read_text(encoding="utf-8"))
            data = (self.root / f"{output_id}.data").read_bytes()
        except (OSError, ValueError):
            return None
        if not isinstance(metadata, dict):
            return None
        return StoredOutput(output_id, data, metadata)

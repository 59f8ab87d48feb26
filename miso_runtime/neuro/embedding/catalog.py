"""Which EEG encoders exist here: the built-in spectral one, and ONNX encoders a user adds.

``GET /v1/models/exg-catalog`` answers in the daemon's shape (``families`` by id, ``models``,
``active_model``). The daemon's families (ZUNA, LUNA...) run on its own Rust/burn code and
cannot run here, so they are not listed: a family is offered only when this runtime can
embed with it. A user adds ONNX encoders in ``<data dir>/exg_catalog.json``::

    {"families": {"my-encoder": {"name": "My encoder", "url": "https://host/enc.onnx",
                                 "sha256": "<64 hex>", "description": "...", "embed_dim": 64}}}

Their weights are fetched by ``/v1/models/trigger-weights-download`` (resumable, checked
against the sha256) into ``<data dir>/exg_models/<family>.onnx``.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ... import constants
from .spectral_encoder import SPECTRAL_ENCODER_NAME, SpectralEncoder

logger = logging.getLogger(__name__)

_FAMILY_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class EncoderFamily:
    """One encoder the catalog offers.

    ``kind`` is ``spectral`` (built in) or ``onnx``; ``encoder`` is the versioned name stored
    with each vector (the spectral encoder's name; for ONNX ``onnx:<id>:<sha256 prefix>``, so
    new weights under the same id are a new encoder and never mix with the old vectors).
    """

    id: str
    name: str
    kind: str
    description: str
    embed_dim: int | None
    url: str | None = None
    sha256: str | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder(self) -> str:
        if self.kind == "spectral":
            return SPECTRAL_ENCODER_NAME
        return f"onnx:{self.id}:{(self.sha256 or 'unpinned')[:12].lower()}"

    @property
    def weights_file(self) -> str | None:
        return None if self.kind == "spectral" else f"{self.id}.onnx"

    def weights_path(self, weights_dir: Path) -> Path | None:
        return None if self.weights_file is None else weights_dir / self.weights_file


def builtin_family() -> EncoderFamily:
    return EncoderFamily(
        id=constants.DEFAULT_EXG_FAMILY,
        name="Miso spectral v1",
        kind="spectral",
        description=(
            "Built-in encoder: standardised log and relative band powers, spectral shape and Hjorth "
            "parameters, pooled over channels; nothing to download"
        ),
        embed_dim=SpectralEncoder().dim,
        tags=("eeg", "embedding", "builtin", "default"),
    )


_BUILTIN = builtin_family()


class EncoderCatalog:
    """The families of this data dir: built in first, then the user's file (re-read on each call)."""

    def __init__(self, data_dir: Path) -> None:
        self._file = data_dir / constants.EXG_USER_CATALOG_FILE_NAME
        self.weights_dir = data_dir / constants.EXG_WEIGHTS_DIR_NAME
        self._parsed: tuple[tuple[int, int], dict[str, EncoderFamily]] | None = None

    def families(self) -> dict[str, EncoderFamily]:
        families = {constants.DEFAULT_EXG_FAMILY: _BUILTIN}
        families.update(self._user_families())
        return families

    def get(self, family_id: str) -> EncoderFamily | None:
        return self.families().get(family_id)

    def _user_families(self) -> dict[str, EncoderFamily]:
        """The user's file, parsed again only when it changed (the encoder is looked up per request)."""
        try:
            stat = self._file.stat()
        except OSError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._parsed is None or self._parsed[0] != stamp:
            self._parsed = (stamp, self._read_user_families())
        return self._parsed[1]

    def _read_user_families(self) -> dict[str, EncoderFamily]:
        try:
            document = json.loads(self._file.read_text(encoding="utf-8"))
            entries = document.get("families", {})
            if not isinstance(entries, dict):
                raise ValueError("'families' must be an object")
        except (OSError, ValueError, AttributeError) as exc:
            logger.warning("ignoring unreadable %s: %s", self._file, exc)
            return {}
        found: dict[str, EncoderFamily] = {}
        for family_id, entry in entries.items():
            if not isinstance(entry, dict) or not _FAMILY_ID.match(str(family_id)):
                logger.warning(
                    "%s: skipping family %r (ids are lowercase letters, digits, . _ -)", self._file, family_id
                )
                continue
            if family_id == constants.DEFAULT_EXG_FAMILY:
                continue
            sha256 = entry.get("sha256")
            url = entry.get("url")
            if not isinstance(url, str) or not (isinstance(sha256, str) and _SHA256.match(sha256)):
                logger.warning("%s: family %r needs a url and a 64-hex sha256", self._file, family_id)
                continue
            dim = entry.get("embed_dim")
            found[family_id] = EncoderFamily(
                id=family_id,
                name=str(entry.get("name") or family_id),
                kind="onnx",
                description=str(entry.get("description") or "ONNX encoder"),
                embed_dim=dim if isinstance(dim, int) and dim > 0 else None,
                url=url,
                sha256=sha256.lower(),
                tags=tuple(str(t) for t in entry.get("tags", ("eeg", "embedding", "onnx"))),
            )
        return found

    def document(self, active: str) -> dict[str, Any]:
        """``/v1/models/exg-catalog`` in the daemon's shape, with ``weights_cached`` per family."""
        families = self.families()
        out_families: dict[str, Any] = {}
        models: list[dict[str, Any]] = []
        for family in families.values():
            path = family.weights_path(self.weights_dir)
            cached = path is None or path.is_file()
            out_families[family.id] = {
                "name": family.name,
                "description": family.description,
                "repo": family.url,
                "tags": list(family.tags),
                "weights_file": family.weights_file,
                "config_file": None,
                "params_m": 0,
                "embed_dim": family.embed_dim,
                "paper": None,
                "doi": None,
                "weights_cached": cached,
                "backend": family.kind,
                "encoder": family.encoder,
                "sha256": family.sha256,
            }
            size_mb = round(path.stat().st_size / 1e6, 1) if path is not None and path.is_file() else 0
            models.append(
                {
                    "family": family.id,
                    "filename": family.weights_file,
                    "size_mb": size_mb,
                    "description": family.description,
                    "recommended": family.id == constants.DEFAULT_EXG_FAMILY,
                }
            )
        active_family = families.get(active) or families[constants.DEFAULT_EXG_FAMILY]
        return {"active_model": active_family.name, "families": out_families, "models": models}

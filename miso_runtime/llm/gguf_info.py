"""What a GGUF model file is, read from its header alone.

The catalog lists every model in the models folder, so reading one must be cheap even for a
multi-gigabyte file: we read the header (metadata and tensor infos) and never the tensor data,
whose size we only check against the file's. We parse the header ourselves rather than with
``gguf.GGUFReader`` because that reader builds a numpy view per array element (hundreds of
thousands for a modern vocabulary, seconds per file) and fails on truncated files with
errors a person cannot act on; the ``gguf`` package still supplies the type tables, so new
quantization types are named as soon as the package knows them.

A file that is not GGUF, or is cut short, raises ``MisoError(400, "invalid_model", ...)``
with a message that says what to do about it.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from gguf.constants import GGML_QUANT_SIZES, GGUF_DEFAULT_ALIGNMENT, GGMLQuantizationType, GGUFValueType, LlamaFileType

from ..constants import (
    ARCHITECTURE_CHAT_FORMATS,
    FALLBACK_CHAT_FORMAT,
)
from ..errors import MisoError

logger = logging.getLogger(__name__)

#: The four bytes every GGUF file starts with.
GGUF_MAGIC_BYTES = b"GGUF"
#: Header versions llama.cpp still loads (version 1 used 32-bit counts; llama.cpp no longer reads it).
SUPPORTED_GGUF_VERSIONS = frozenset({2, 3})
#: ggml tensors have at most this many dimensions; more means a corrupt header.
MAX_TENSOR_DIMS = 4
#: Bytes read at a time while walking a header (a modern vocabulary makes it a few MB).
_READ_CHUNK = 1 << 20


_DOWNLOAD_AGAIN = "an interrupted download or copy? fetch the file again"

_SCALAR_FORMATS: dict[int, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class GGUFInfo:
    """What the catalog shows about one model file.

    The chat template itself is deliberately absent: it can be kilobytes of Jinja and a
    listing only needs to know whether llama.cpp will find one.
    """

    path: Path
    file_name: str
    size_bytes: int
    gguf_version: int
    #: ``general.architecture`` (``llama``, ``qwen2``, ``gemma3``...).
    architecture: str
    #: ``general.name``, when the converter wrote one.
    name: str | None
    #: ``general.type`` (``model``, ``adapter``, ``mmproj``...); None in older files.
    kind: str | None
    tensor_count: int
    #: Sum of the element counts of all tensors.
    parameter_count: int
    #: The tensor type holding most of the parameters (``F16``, ``Q4_K``...).
    quantization: str
    #: ``general.file_type`` as llama.cpp names it without its prefix (``Q4_K_M``); None if absent.
    file_type: str | None
    #: ``<architecture>.context_length``: the context the model was trained for.
    context_length: int | None
    #: Whether ``tokenizer.chat_template`` is present (llama.cpp then formats chats itself).
    has_chat_template: bool
    #: ``general.license`` as the converter wrote it (an SPDX id such as ``apache-2.0``), if any.
    licence: str | None = None


class _Truncated(Exception):
    """The header runs past the end of the file."""


class _Corrupt(Exception):
    """The header holds something no valid GGUF writer produces."""


@dataclass(frozen=True)
class _Array:
    """Stands in for an array value: the catalog needs none of their contents."""

    item_type: int
    count: int


class _Cursor:
    """Forward-only little-endian reads from a file, refusing to run past its end.

    It reads the header through a window of :data:`_READ_CHUNK` bytes with plain file reads:
    skipped array contents are seeked over, and nothing is memory-mapped, because a mapped
    file that shrinks under us (a download being replaced) kills the process with SIGBUS.
    """

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self._size = size
        self._window = b""
        self._base = 0  # file offset of self._window[0]
        self.pos = 0

    def _need(self, n: int) -> None:
        if n < 0 or self.pos + n > self._size:
            raise _Truncated()
        start = self.pos - self._base
        if start + n <= len(self._window):
            return
        if start >= len(self._window):
            self._handle.seek(self.pos)
            self._window = b""
        else:
            self._window = self._window[start:]
        self._base = self.pos
        self._window += self._handle.read(max(n - len(self._window), _READ_CHUNK))
        if len(self._window) < n:  # the file shrank since we measured it
            raise _Truncated()

    def unpack(self, fmt: struct.Struct) -> Any:
        self._need(fmt.size)
        (value,) = fmt.unpack_from(self._window, self.pos - self._base)
        self.pos += fmt.size
        return value

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self._size:
            raise _Truncated()
        self.pos += n

    def string(self) -> str:
        length = self.unpack(_U64)
        self._need(length)
        offset = self.pos - self._base
        raw = self._window[offset : offset + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.skip(self.unpack(_U64))

    def value(self, vtype: int) -> Any:
        """One metadata value; arrays are skipped and returned as :class:`_Array`."""
        fmt = _SCALAR_FORMATS.get(vtype)
        if fmt is not None:
            return self.unpack(fmt)
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            item_type = self.unpack(_U32)
            count = self.unpack(_U64)
            item_fmt = _SCALAR_FORMATS.get(item_type)
            if item_fmt is not None:
                self.skip(count * item_fmt.size)
            elif item_type == GGUFValueType.STRING:
                self._need(count * _U64.size)  # each string has at least its length
                for _ in range(count):
                    self.skip_string()
            elif item_type == GGUFValueType.ARRAY:
                for _ in range(count):
                    self.value(item_type)
            else:
                raise _Corrupt(f"unknown array item type {item_type}")
            return _Array(item_type, count)
        raise _Corrupt(f"unknown metadata value type {vtype}")


def _invalid(path: Path, reason: str) -> MisoError:
    return MisoError(400, "invalid_model", f"{path.name}: {reason}")


def _type_name(type_id: int) -> str:
    try:
        return GGMLQuantizationType(type_id).name
    except ValueError:
        return f"TYPE_{type_id}"


def _file_type_name(value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return f"FILE_TYPE_{value}"
    for prefix in ("MOSTLY_", "ALL_"):
        name = name.removeprefix(prefix)
    return name


def _tensor_bytes(type_id: int, n_elements: int) -> int | None:
    """Bytes of a tensor's data, or None for a type the ``gguf`` package does not know yet."""
    try:
        block_size, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(type_id)]
    except (ValueError, KeyError):
        return None
    if n_elements % block_size:
        raise _Corrupt(f"a {_type_name(type_id)} tensor of {n_elements} elements is not whole blocks")
    return n_elements // block_size * type_size


def _parse(path: Path, handle: BinaryIO, size: int) -> GGUFInfo:
    cur = _Cursor(handle, size)
    if handle.read(4) != GGUF_MAGIC_BYTES:
        raise _invalid(path, "not a GGUF file (it does not start with 'GGUF'); local models must be .gguf files")
    cur.skip(4)
    version = cur.unpack(_U32)
    if version & 0xFFFF == 0 and version:
        raise _invalid(path, "big-endian GGUF files are not supported; use the little-endian build of this model")
    if version not in SUPPORTED_GGUF_VERSIONS:
        if version < min(SUPPORTED_GGUF_VERSIONS):
            raise _invalid(path, f"GGUF version {version} is too old; convert the model again with current llama.cpp")
        raise _invalid(path, f"GGUF version {version} is newer than this runtime reads; update Miso")
    tensor_count = cur.unpack(_U64)
    kv_count = cur.unpack(_U64)
    # Each key/value pair needs at least 12 bytes and each tensor info 24: a count beyond that
    # is garbage, and checking it first keeps a corrupt count from spinning a long loop.
    if kv_count * 12 > size or tensor_count * 24 > size:
        raise _Truncated()

    metadata: dict[str, Any] = {}
    for _ in range(kv_count):
        key = cur.string()
        metadata[key] = cur.value(cur.unpack(_U32))

    tensors: list[tuple[str, int, int, int]] = []  # name, type, elements, offset
    for _ in range(tensor_count):
        name = cur.string()
        n_dims = cur.unpack(_U32)
        if n_dims > MAX_TENSOR_DIMS:
            raise _Corrupt(f"tensor {name!r} claims {n_dims} dimensions")
        n_elements = 1
        for _ in range(n_dims):
            n_elements *= cur.unpack(_U64)
        type_id = cur.unpack(_U32)
        offset = cur.unpack(_U64)
        tensors.append((name, type_id, n_elements, offset))

    alignment = metadata.get("general.alignment", GGUF_DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise _Corrupt(f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-cur.pos // alignment) * alignment
    needed = data_start
    by_type: Counter[str] = Counter()
    for name, type_id, n_elements, offset in tensors:
        by_type[_type_name(type_id)] += n_elements
        n_bytes = _tensor_bytes(type_id, n_elements)
        if n_bytes is None:
            logger.debug("gguf: %s: tensor %s has type %d unknown to the gguf package", path.name, name, type_id)
            continue
        needed = max(needed, data_start + offset + n_bytes)
    if needed > size:
        raise _invalid(
            path, f"the file is truncated: its tensors need {needed} bytes but it has {size} ({_DOWNLOAD_AGAIN})"
        )

    architecture = metadata.get("general.architecture")
    if not isinstance(architecture, str) or not architecture:
        raise _invalid(path, "the file names no general.architecture, so llama.cpp cannot load it as a model")
    if not tensors:
        raise _invalid(path, "the file holds no tensors (a vocabulary-only file?), so it is not a model")
    # Most parameters first; ties broken by name so that the answer does not depend on file order.
    quantization = min(by_type.items(), key=lambda item: (-item[1], item[0]))[0]
    context_length = metadata.get(f"{architecture}.context_length")
    name = metadata.get("general.name")
    kind = metadata.get("general.type")
    template = metadata.get("tokenizer.chat_template")
    licence = metadata.get("general.license")
    return GGUFInfo(
        path=path,
        file_name=path.name,
        size_bytes=size,
        gguf_version=version,
        architecture=architecture,
        name=name if isinstance(name, str) and name else None,
        kind=kind if isinstance(kind, str) and kind else None,
        tensor_count=len(tensors),
        parameter_count=sum(by_type.values()),
        quantization=quantization,
        file_type=_file_type_name(metadata.get("general.file_type")),
        context_length=context_length if isinstance(context_length, int) and context_length > 0 else None,
        has_chat_template=isinstance(template, str) and bool(template.strip()),
        licence=licence.strip() if isinstance(licence, str) and licence.strip() else None,
    )


def read_gguf_info(path: Path) -> GGUFInfo:
    """Read what the catalog needs from ``path`` without loading any tensor data.

    Raises ``MisoError(404, "model_not_found")`` when the file does not exist and
    ``MisoError(400, "invalid_model")`` when it is not a loadable GGUF file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise _invalid(path, f"the file is empty ({_DOWNLOAD_AGAIN})")
            return _parse(path, handle, size)
    except _Truncated:
        raise _invalid(path, f"the file is truncated inside its header ({_DOWNLOAD_AGAIN})") from None
    except _Corrupt as exc:
        raise _invalid(path, f"the GGUF header is corrupt: {exc}") from None
    except FileNotFoundError:
        raise MisoError(404, "model_not_found", f"{path.name}: no such model file") from None
    except IsADirectoryError:
        raise _invalid(path, "is a folder, not a model file") from None
    except OSError as exc:
        raise _invalid(path, f"cannot read the file ({exc.strerror or exc})") from None


def detect_chat_format(info: GGUFInfo) -> str | None:
    """The llama-cpp-python ``chat_format`` to pass when loading this model, or None.

    None when the file carries its own template: llama-cpp-python then formats chats with it.
    Without one, llama-cpp-python silently falls back to ``llama-2``, which is wrong for most
    current models, so we pick a format from the architecture instead.
    """
    if info.has_chat_template:
        return None
    return ARCHITECTURE_CHAT_FORMATS.get(info.architecture, FALLBACK_CHAT_FORMAT)

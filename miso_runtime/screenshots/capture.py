"""The pixels: grab the screen (mss), shrink it (Pillow), hash it (imagehash), keep it as WebP.

mss talks to the X server (XGetImage/XShm through ctypes) with no external tool and no shell;
on a machine without a display it raises, and :func:`grab_screen` turns that into
:class:`CaptureUnavailable` with the reason, which the pipeline counts and reports instead of
stopping. Pillow does the rest: a bilinear resize of the longest side (the daemon also pads to
a square for its vision model; we keep the aspect ratio, as nothing here needs a square) and
the WebP encoding.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import imagehash
from PIL import Image

from .. import constants
from ..settings_files import write_atomic


class CaptureUnavailable(Exception):
    """The screen cannot be grabbed now (no display, no permission); the message says why."""


def grab_screen() -> Image.Image:
    """The primary monitor (all monitors when the display names none) as an RGB image."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise CaptureUnavailable("no display: DISPLAY is not set (capture needs an X11 desktop session)")
    import mss
    from mss.exception import ScreenShotError

    try:
        with mss.MSS() as screen:
            monitors = screen.monitors
            shot = screen.grab(monitors[1] if len(monitors) > 1 else monitors[0])
    except (ScreenShotError, OSError) as exc:  # no X server there, no libX11, no permission
        raise CaptureUnavailable(
            f"the screen could not be grabbed (DISPLAY={os.environ.get('DISPLAY')}): {exc}"
        ) from None
    return Image.frombytes("RGB", shot.size, shot.bgra, "raw", "BGRX")


def fit_longest(image: Image.Image, size: int) -> Image.Image:
    """``image`` shrunk so that its longest side is ``size`` pixels (never enlarged)."""
    width, height = image.size
    scale = size / max(width, height)
    if scale >= 1.0:
        return image.copy()
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(target, Image.Resampling.BILINEAR)


def perceptual_hash(image: Image.Image) -> imagehash.ImageHash:
    """The difference hash of ``image`` (:data:`~miso_runtime.constants.SCREENSHOT_HASH_SIZE`² bits)."""
    return imagehash.dhash(image, hash_size=constants.SCREENSHOT_HASH_SIZE)


def is_near_duplicate(current: imagehash.ImageHash, previous: imagehash.ImageHash | None) -> bool:
    """Whether two captures differ by at most :data:`~miso_runtime.constants.SCREENSHOT_DUPLICATE_BITS` bits."""
    return previous is not None and (current - previous) <= constants.SCREENSHOT_DUPLICATE_BITS


def save_webp(image: Image.Image, path: Path, quality: int) -> int:
    """Write ``image`` to ``path`` as WebP, atomically (temp file, rename); returns its size in bytes.

    A reader (``GET /screenshots/...``) sees the whole file or none: never half of one.
    """
    encoded = io.BytesIO()
    image.save(encoded, "WEBP", quality=quality)
    write_atomic(path, encoded.getvalue())
    return encoded.tell()

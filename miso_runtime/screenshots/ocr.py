"""The text of a capture: Tesseract (Debian's ``tesseract-ocr``) through pytesseract.

Chosen by measurement against RapidOCR (``rapidocr-onnxruntime``, whose wheel ships its ONNX
models) on the same 768x480 capture of five lines of text repeated three times, on the 2-core
development machine: Tesseract 5.3 took about 390 ms and read every line exactly; RapidOCR
1.4.4 took about 3500 ms (both cores), dropped lines and ran words together, and would pull in
OpenCV. ``bench/skill_extras.py`` part 2 measures capture+OCR+embed per frame against OCR alone.

pytesseract runs the ``tesseract`` program on a temporary PNG (no shell), so a crash of the
engine is a failed call here, never a crashed worker. A blank image gives empty text.
"""

from __future__ import annotations

import logging
import re

from PIL import Image

from .. import constants

logger = logging.getLogger(__name__)

_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{2,}")


class OcrUnavailable(Exception):
    """Tesseract is not installed (or does not run); the message says how to install it."""


class OcrFailed(Exception):
    """One recognition failed (the engine's error, or it ran past its timeout)."""


def engine_version() -> str:
    """``tesseract <version>``, or :class:`OcrUnavailable`."""
    import pytesseract

    try:
        return f"tesseract {pytesseract.get_tesseract_version()}"
    except (pytesseract.TesseractNotFoundError, OSError) as exc:
        raise OcrUnavailable(
            f"the OCR engine tesseract is not installed ({exc}); install it: apt-get install tesseract-ocr"
        ) from None


def normalize(text: str) -> str:
    """One space between words, one newline between lines, no blank lines; at most the kept length."""
    lines = (_SPACES.sub(" ", line).strip() for line in text.replace("\r", "\n").splitlines())
    joined = "\n".join(line for line in lines if line)
    return _BLANK_LINES.sub("\n", joined)[: constants.SCREENSHOT_OCR_MAX_CHARS]


def recognize(image: Image.Image, timeout_s: float = constants.SCREENSHOT_OCR_TIMEOUT_S) -> str:
    """The text in ``image`` (English), normalised; ``""`` where there is none."""
    import pytesseract

    try:
        raw = pytesseract.image_to_string(image.convert("RGB"), lang="eng", timeout=timeout_s)
    except pytesseract.TesseractNotFoundError:
        raise OcrUnavailable(
            "the OCR engine tesseract is not installed; install it: apt-get install tesseract-ocr"
        ) from None
    except RuntimeError as exc:  # pytesseract's timeout
        raise OcrFailed(f"OCR ran past {timeout_s:g} s: {exc}") from None
    except pytesseract.TesseractError as exc:
        raise OcrFailed(f"tesseract failed: {exc}") from None
    return normalize(raw)

"""QR codes as PNG data URIs, the form the daemon's clients put straight into an ``<img>``."""

from __future__ import annotations

import base64
import io

import segno

from .. import constants


def png_data_uri(text: str) -> str:
    """``data:image/png;base64,...`` of a QR code holding ``text``."""
    buffer = io.BytesIO()
    segno.make(text, error=constants.IROH_QR_ERROR, micro=False).save(
        buffer, kind="png", scale=constants.IROH_QR_SCALE, border=2
    )
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

"""``ScreenshotConfig``: the daemon's fields and defaults, validated.

The daemon's struct, field for field, so a settings page written for it reads and writes ours.
Fields about what this runtime does not do (image embeddings with ``fastembed``, GIF bursts,
watching user screenshots and the clipboard) are kept and answered, and change nothing here.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .. import constants

#: The daemon's names of the vision models behind ``fastembed_model`` (its ``model_id``).
_FASTEMBED_MODEL_IDS = {
    "clip-vit-b-32": "Qdrant/clip-ViT-B-32-vision",
    "nomic-embed-vision-v1.5": "nomic-ai/nomic-embed-text-v1.5",
}


class ScreenshotConfig(BaseModel):
    """What is captured, how often, and how it is kept.

    ``interval_secs`` is used as given (the daemon rounds it to a multiple of its 5 s EEG epoch:
    its captures are paired with epochs; ours are found by time, so any whole second works).
    """

    model_config = ConfigDict(extra="ignore")

    enabled: bool = False
    interval_secs: int = Field(
        default=constants.SCREENSHOT_DEFAULT_INTERVAL_S,
        ge=1,
        le=constants.SCREENSHOT_MAX_INTERVAL_S,
        description="seconds",
    )
    image_size: int = Field(
        default=constants.SCREENSHOT_DEFAULT_IMAGE_SIZE,
        ge=constants.SCREENSHOT_MIN_IMAGE_SIZE,
        le=constants.SCREENSHOT_MAX_IMAGE_SIZE,
        description="longest side of the stored image, pixels",
    )
    quality: int = Field(default=constants.SCREENSHOT_DEFAULT_QUALITY, ge=0, le=100, description="WebP quality")
    #: Capture only while an EEG session records.
    session_only: bool = True
    embed_backend: str = Field(default="fastembed", max_length=64)
    fastembed_model: str = Field(default="nomic-embed-vision-v1.5", max_length=200)
    ocr_enabled: bool = True
    ocr_engine: str = Field(default=constants.SCREENSHOT_OCR_ENGINE, max_length=64)
    use_gpu: bool = True
    gif_enabled: bool = False
    gif_frame_count: int = Field(default=15, ge=1, le=1000)
    gif_frame_delay_ms: int = Field(default=100, ge=1, le=60_000)
    gif_motion_threshold: float = Field(default=0.05, ge=0.0, le=1.0)
    gif_max_size_kb: int = Field(default=2048, ge=1, le=1_048_576)
    user_screenshot_enabled: bool = False
    clipboard_image_enabled: bool = False

    def model_id(self) -> str:
        """The image model a vision backend would embed with (the daemon's ``model_id``)."""
        if self.embed_backend == "fastembed":
            return _FASTEMBED_MODEL_IDS.get(self.fastembed_model, self.fastembed_model)
        return self.embed_backend

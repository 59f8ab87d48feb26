"""Tiny GGUF files for tests: a random-weight llama model llama.cpp really loads, and broken ones.

No model can be downloaded in tests, so we write our own: a two-layer llama with a byte-level
SentencePiece ("llama") vocabulary, about 220 KB, that llama-cpp-python loads in milliseconds.
Its weights are random, so its text is noise, but the plumbing around it (loading, chat
templates, streaming, context limits) is exercised for real.

Two choices keep the noise useful:

* Only the output rows of printable ASCII bytes are random; every other row (BOS, EOS, UNK,
  control tokens, other bytes) is zero. Their logits are therefore 0 while the best printable
  logit is around +20, so the model practically never ends at once and its pieces always
  decode as text (a lone byte >= 0x80 would be swallowed as broken UTF-8).
* Weights come from ``numpy.random.default_rng(seed)``, so a given ``seed`` always writes the
  same file; with the same prompt, sampler settings and sampler ``seed`` (or temperature 0)
  llama.cpp then generates the same text. Different sampler seeds may give different text.

Measured with llama-cpp-python 0.3.36 on 2 CPU cores: loading takes under 10 ms, 8 streamed
tokens about 3 ms, and in 180 sampled answers at temperature 1 none ended early or was empty.
"""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np

#: A ChatML template as converters embed it in ``tokenizer.chat_template``.
DEFAULT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
#: ``general.name`` written into every tiny model.
TINY_MODEL_NAME = "Tiny Llama Test"

N_EMBD = 64
N_LAYERS = 2
N_HEAD = 4
N_HEAD_KV = 2
N_FF = 128
HEAD_DIM = N_EMBD // N_HEAD

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
_SPECIALS = ["<unk>", "<s>", "</s>"]
_CHATML = ["<|im_start|>", "<|im_end|>"]
_BYTE_BASE = len(_SPECIALS)
TOKENS: list[str] = _SPECIALS + [f"<0x{b:02X}>" for b in range(256)] + _CHATML
VOCAB_SIZE = len(TOKENS)
_TYPES: list[int] = (
    [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    + [gguf.TokenType.BYTE] * 256
    + [gguf.TokenType.CONTROL] * len(_CHATML)
)
#: Token ids the model is allowed to produce: the bytes of printable ASCII, space included.
PRINTABLE_IDS = np.arange(_BYTE_BASE + 0x20, _BYTE_BASE + 0x7F)


def tensor_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the tiny model with its numpy shape (GGUF stores the dims reversed)."""
    shapes: dict[str, tuple[int, ...]] = {
        "token_embd.weight": (VOCAB_SIZE, N_EMBD),
        "output_norm.weight": (N_EMBD,),
        "output.weight": (VOCAB_SIZE, N_EMBD),
    }
    for i in range(N_LAYERS):
        shapes.update(
            {
                f"blk.{i}.attn_norm.weight": (N_EMBD,),
                f"blk.{i}.attn_q.weight": (N_HEAD * HEAD_DIM, N_EMBD),
                f"blk.{i}.attn_k.weight": (N_HEAD_KV * HEAD_DIM, N_EMBD),
                f"blk.{i}.attn_v.weight": (N_HEAD_KV * HEAD_DIM, N_EMBD),
                f"blk.{i}.attn_output.weight": (N_EMBD, N_HEAD * HEAD_DIM),
                f"blk.{i}.ffn_norm.weight": (N_EMBD,),
                f"blk.{i}.ffn_gate.weight": (N_FF, N_EMBD),
                f"blk.{i}.ffn_up.weight": (N_FF, N_EMBD),
                f"blk.{i}.ffn_down.weight": (N_EMBD, N_FF),
            }
        )
    return shapes


#: What ``read_gguf_info`` must report as the parameter count of every tiny model.
TINY_PARAMETER_COUNT = sum(int(np.prod(shape)) for shape in tensor_shapes().values())


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for name, shape in tensor_shapes().items():
        if len(shape) == 1:  # norm weights: plain RMS norm, kept F32 as converters do
            arrays[name] = np.ones(shape, dtype=np.float32)
            continue
        if name == "output.weight":
            weight = np.zeros(shape, dtype=np.float32)
            weight[PRINTABLE_IDS] = rng.normal(0.0, 1.0, size=(len(PRINTABLE_IDS), shape[1]))
        elif name == "token_embd.weight":
            weight = rng.normal(0.0, 1.0, size=shape)
        else:  # scaled by fan-in so that the layers neither vanish nor blow up
            weight = rng.normal(0.0, 1.0 / np.sqrt(shape[1]), size=shape)
        arrays[name] = weight.astype(np.float16)
    return arrays


def write_tiny_llama_gguf(
    path: Path,
    *,
    chat_template: str | None = DEFAULT_TEMPLATE,
    context_length: int = 512,
    seed: int = 0,
) -> Path:
    """Write a tiny random llama model to ``path`` and return it.

    ``chat_template=None`` leaves ``tokenizer.chat_template`` out, as in old conversions:
    llama-cpp-python then needs an explicit ``chat_format``. ``context_length`` is the
    trained context (``llama.context_length``); ``seed`` picks the weights.
    """
    path = Path(path)
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(TINY_MODEL_NAME)
    writer.add_type("model")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(context_length)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYERS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD_KV)
    writer.add_rope_dimension_count(HEAD_DIM)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(VOCAB_SIZE)

    writer.add_tokenizer_model("llama")
    writer.add_token_list(TOKENS)
    writer.add_token_scores([0.0] * VOCAB_SIZE)
    writer.add_token_types(_TYPES)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_unk_token_id(UNK_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    for name, array in _weights(seed).items():
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_not_gguf(path: Path, size: int = 4096) -> Path:
    """Random bytes under a ``.gguf`` name, as a mislabelled or corrupted download would be."""
    path = Path(path)
    path.write_bytes(b"\x00\x01" + os.urandom(size - 2))  # never starts with b"GGUF"
    return path


def write_truncated_gguf(path: Path) -> Path:
    """A valid tiny model cut in the middle of its tensor data, like an interrupted download."""
    path = Path(path)
    write_tiny_llama_gguf(path)
    header_end = int(gguf.GGUFReader(path).data_offset)
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(header_end + (size - header_end) // 2)
    return path

"""Tiny GGUF models written by the tests with the `gguf` package.

f32 weights drawn from a seeded normal, a small SentencePiece-style vocab (the
256 byte tokens llama.cpp's SPM loader needs, plus a few words). The weights are
returned so that a PyTorch reference can run the same model.

`write_arch` writes the attention shapes of the reasoning models users run
(qwen2, qwen3, llama 3, mistral, phi3): what matters to the KV cache is each
shape's attention, not the tokenizer, so all share the same small vocab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np

WORDS = ["▁the", "▁a", "▁cat", "▁dog", "▁sat", "▁on", "▁mat", "▁and", "▁ran", "▁far", "▁1", "▁2", "▁+", "▁="]


@dataclass
class TinyConfig:
    n_layer: int = 2
    n_embd: int = 32
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 64
    n_ctx_train: int = 4096
    rope_base: float = 10000.0
    eps: float = 1e-5
    seed: int = 0
    attn_out_scale: float = 0.2
    qk_scale: float = 0.4  # the Q and K projections' weight scale (wider models want less)
    weights: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def _vocab(special: tuple[str, ...] = ()):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + WORDS + list(special)
    types = [2, 3, 3] + [6] * 256 + [1] * len(WORDS) + [4] * len(special)  # 4: user-defined, matched whole
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(WORDS))] + [0.0] * len(special)
    return tokens, scores, types


def _tokenizer(w: gguf.GGUFWriter, chat_template: str | None = None, special: tuple[str, ...] = ()) -> int:
    tokens, scores, types = _vocab(special)
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    if special:
        w.add_add_space_prefix(False)  # "<think>\n" tokenizes as "<think>", "\n", as in BPE vocabs
    if chat_template:
        w.add_chat_template(chat_template)
    return len(tokens)


def write_llama(path: Path, cfg: TinyConfig | None = None, chat_template: str | None = None) -> TinyConfig:
    """A llama-architecture model; returns the config with its weights (numpy, (out, in))."""
    cfg = cfg or TinyConfig()
    rng = np.random.default_rng(cfg.seed)
    w = gguf.GGUFWriter(str(path), "llama")
    n_vocab = _tokenizer(w, chat_template)
    hd = cfg.head_dim
    w.add_context_length(cfg.n_ctx_train)
    w.add_embedding_length(cfg.n_embd)
    w.add_block_count(cfg.n_layer)
    w.add_feed_forward_length(cfg.n_ff)
    w.add_head_count(cfg.n_head)
    w.add_head_count_kv(cfg.n_head_kv)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(cfg.rope_base)
    w.add_layer_norm_rms_eps(cfg.eps)
    w.add_file_type(0)

    def t(name, shape, scale=0.4):
        a = (rng.standard_normal(shape) * scale).astype(np.float32)
        cfg.weights[name] = a
        w.add_tensor(name, a)

    def ones(name, n):
        a = (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)
        cfg.weights[name] = a
        w.add_tensor(name, a)

    t("token_embd.weight", (n_vocab, cfg.n_embd), 1.0)
    for i in range(cfg.n_layer):
        ones(f"blk.{i}.attn_norm.weight", cfg.n_embd)
        t(f"blk.{i}.attn_q.weight", (cfg.n_head * hd, cfg.n_embd), cfg.qk_scale)
        t(f"blk.{i}.attn_k.weight", (cfg.n_head_kv * hd, cfg.n_embd), cfg.qk_scale)
        t(f"blk.{i}.attn_v.weight", (cfg.n_head_kv * hd, cfg.n_embd))
        t(f"blk.{i}.attn_output.weight", (cfg.n_embd, cfg.n_head * hd), cfg.attn_out_scale)
        ones(f"blk.{i}.ffn_norm.weight", cfg.n_embd)
        t(f"blk.{i}.ffn_gate.weight", (cfg.n_ff, cfg.n_embd), 0.2)
        t(f"blk.{i}.ffn_up.weight", (cfg.n_ff, cfg.n_embd), 0.2)
        t(f"blk.{i}.ffn_down.weight", (cfg.n_embd, cfg.n_ff), 0.2)
    ones("output_norm.weight", cfg.n_embd)
    t("output.weight", (n_vocab, cfg.n_embd), 0.5)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return cfg


def write_gemma3(path: Path, n_layer: int = 2, n_embd: int = 32, n_head: int = 4, n_ff: int = 64, window: int = 16) -> None:
    """A Gemma 3 model with sliding-window attention: llama.cpp gives it an iSWA cache."""
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(str(path), "gemma3")
    n_vocab = _tokenizer(w)
    hd = n_embd // n_head
    w.add_context_length(4096)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(1)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(1e-6)
    w.add_sliding_window(window)
    w.add_rope_freq_base(10000.0)
    w.add_file_type(0)

    def t(name, shape, scale=0.3):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    t("token_embd.weight", (n_vocab, n_embd), 1.0)
    for i in range(n_layer):
        for norm in ("attn_norm", "post_attention_norm", "ffn_norm", "post_ffw_norm"):
            t(f"blk.{i}.{norm}.weight", (n_embd,), 0.1)
        t(f"blk.{i}.attn_q_norm.weight", (hd,), 0.1)
        t(f"blk.{i}.attn_k_norm.weight", (hd,), 0.1)
        t(f"blk.{i}.attn_q.weight", (n_head * hd, n_embd))
        t(f"blk.{i}.attn_k.weight", (hd, n_embd))
        t(f"blk.{i}.attn_v.weight", (hd, n_embd))
        t(f"blk.{i}.attn_output.weight", (n_embd, n_head * hd))
        t(f"blk.{i}.ffn_gate.weight", (n_ff, n_embd))
        t(f"blk.{i}.ffn_up.weight", (n_ff, n_embd))
        t(f"blk.{i}.ffn_down.weight", (n_embd, n_ff))
    t("output_norm.weight", (n_embd,), 0.1)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@dataclass(frozen=True)
class ArchShape:
    """The attention of one model family, scaled down."""

    arch: str                    # GGUF general.architecture
    n_head: int
    n_head_kv: int
    head_dim: int                # may differ from n_embd / n_head (mistral nemo)
    n_embd: int = 48
    n_layer: int = 3
    n_ff: int = 64
    rope_base: float = 10000.0
    qkv_bias: bool = False       # qwen2
    qk_norm: bool = False        # qwen3
    fused_qkv: bool = False      # phi3: one attn_qkv and one ffn_up holding gate and up
    rope_freqs: bool = False     # llama 3.1: per-dimension rope frequency factors
    long_rope: bool = False      # phi3: LongRoPE long and short factors
    n_ctx_train: int = 4096
    n_ctx_orig: int = 0          # LongRoPE: the original (short) context
    special: tuple = ()          # extra whole tokens (e.g. "<think>", "</think>")
    favour: str | None = None    # an output bias makes greedy decoding emit this token (qwen2: output.bias)


ARCH_SHAPES = {
    "qwen2": ArchShape("qwen2", n_head=12, n_head_kv=2, head_dim=4, rope_base=1e6, qkv_bias=True),  # GQA 6:1
    "qwen3": ArchShape("qwen3", n_head=8, n_head_kv=4, head_dim=8, rope_base=1e6, qk_norm=True),
    "llama3": ArchShape("llama", n_head=8, n_head_kv=2, head_dim=6, rope_base=500000.0, rope_freqs=True),  # GQA 4:1
    "mistral": ArchShape("llama", n_head=8, n_head_kv=2, head_dim=8, rope_base=1e6),  # head_dim * n_head != n_embd
    "phi3": ArchShape("phi3", n_head=6, n_head_kv=6, head_dim=8, fused_qkv=True, long_rope=True,
                      n_ctx_train=8192, n_ctx_orig=512),
}


def write_arch(path: Path, shape: ArchShape | str, seed: int = 0, chat_template: str | None = None) -> ArchShape:
    """A model with the given family's attention shape (see ARCH_SHAPES)."""
    s = ARCH_SHAPES[shape] if isinstance(shape, str) else shape
    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), s.arch)
    n_vocab = _tokenizer(w, chat_template, s.special)
    hd, nq, nkv = s.head_dim, s.n_head * s.head_dim, s.n_head_kv * s.head_dim
    w.add_context_length(s.n_ctx_train)
    w.add_embedding_length(s.n_embd)
    w.add_block_count(s.n_layer)
    w.add_feed_forward_length(s.n_ff)
    w.add_head_count(s.n_head)
    w.add_head_count_kv(s.n_head_kv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(s.rope_base)
    w.add_layer_norm_rms_eps(1e-5)
    if s.long_rope:
        w.add_rope_scaling_orig_ctx_len(s.n_ctx_orig)
    w.add_file_type(0)

    def t(name, shape, scale=0.4):
        w.add_tensor(name, (rng.standard_normal(shape) * scale).astype(np.float32))

    def ones(name, n):
        w.add_tensor(name, (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32))

    t("token_embd.weight", (n_vocab, s.n_embd), 1.0)
    if s.rope_freqs:
        w.add_tensor("rope_freqs.weight", rng.uniform(1.0, 8.0, hd // 2).astype(np.float32))
    if s.long_rope:
        # far apart, so that picking the wrong set moves the logits
        w.add_tensor("rope_factors_long.weight", rng.uniform(4.0, 16.0, hd // 2).astype(np.float32))
        w.add_tensor("rope_factors_short.weight", rng.uniform(1.0, 1.5, hd // 2).astype(np.float32))
    for i in range(s.n_layer):
        ones(f"blk.{i}.attn_norm.weight", s.n_embd)
        if s.fused_qkv:
            t(f"blk.{i}.attn_qkv.weight", (nq + 2 * nkv, s.n_embd))
        else:
            t(f"blk.{i}.attn_q.weight", (nq, s.n_embd))
            t(f"blk.{i}.attn_k.weight", (nkv, s.n_embd))
            t(f"blk.{i}.attn_v.weight", (nkv, s.n_embd))
        if s.qkv_bias:
            t(f"blk.{i}.attn_q.bias", (nq,), 0.2)
            t(f"blk.{i}.attn_k.bias", (nkv,), 0.2)
            t(f"blk.{i}.attn_v.bias", (nkv,), 0.2)
        if s.qk_norm:
            ones(f"blk.{i}.attn_q_norm.weight", hd)
            ones(f"blk.{i}.attn_k_norm.weight", hd)
        t(f"blk.{i}.attn_output.weight", (s.n_embd, nq), 0.2)
        ones(f"blk.{i}.ffn_norm.weight", s.n_embd)
        if s.fused_qkv:
            t(f"blk.{i}.ffn_up.weight", (2 * s.n_ff, s.n_embd), 0.2)
        else:
            t(f"blk.{i}.ffn_gate.weight", (s.n_ff, s.n_embd), 0.2)
            t(f"blk.{i}.ffn_up.weight", (s.n_ff, s.n_embd), 0.2)
        t(f"blk.{i}.ffn_down.weight", (s.n_embd, s.n_ff), 0.2)
    ones("output_norm.weight", s.n_embd)
    t("output.weight", (n_vocab, s.n_embd), 0.5)
    if s.favour is not None:
        bias = np.zeros(n_vocab, dtype=np.float32)
        bias[_vocab(s.special)[0].index(s.favour)] = 100.0
        w.add_tensor("output.bias", bias)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return s

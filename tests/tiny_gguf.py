"""Tiny GGUF models written by the tests with the `gguf` package.

f32 weights drawn from a seeded normal, a small SentencePiece-style vocab (the
256 byte tokens llama.cpp's SPM loader needs, plus a few words). The weights are
returned so that a PyTorch reference can run the same model.
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


def _vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + WORDS
    types = [2, 3, 3] + [6] * 256 + [1] * len(WORDS)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(i) for i in range(len(WORDS))]
    return tokens, scores, types


def _tokenizer(w: gguf.GGUFWriter) -> int:
    tokens, scores, types = _vocab()
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    return len(tokens)


def write_llama(path: Path, cfg: TinyConfig | None = None) -> TinyConfig:
    """A llama-architecture model; returns the config with its weights (numpy, (out, in))."""
    cfg = cfg or TinyConfig()
    rng = np.random.default_rng(cfg.seed)
    w = gguf.GGUFWriter(str(path), "llama")
    n_vocab = _tokenizer(w)
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

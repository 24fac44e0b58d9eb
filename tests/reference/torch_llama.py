"""A PyTorch forward pass of the tiny llama model, token by token, over an explicit cache.

Independent of llama.cpp: it reads the numpy weights the test wrote into the
GGUF and implements RMSNorm, llama.cpp's "normal" RoPE (adjacent pairs), GQA,
softmax attention and SwiGLU. `step` attends to exactly the cached positions
it is given, so it can follow a cache that evicts, and returns the logits and
the attention probabilities of the token summed over heads and layers.
"""

from __future__ import annotations

import math

import torch


class TorchLlama:
    def __init__(self, cfg):
        self.cfg = cfg
        self.w = {k: torch.tensor(v, dtype=torch.float64) for k, v in cfg.weights.items()}
        self.k: list[dict[int, torch.Tensor]] = [{} for _ in range(cfg.n_layer)]
        self.v: list[dict[int, torch.Tensor]] = [{} for _ in range(cfg.n_layer)]

    def rms(self, x, w):
        return x / torch.sqrt((x * x).mean() + self.cfg.eps) * w

    def rope(self, x, pos):  # x: [heads, hd]
        hd = x.shape[-1]
        out = x.clone()
        for i in range(0, hd, 2):
            theta = pos * self.cfg.rope_base ** (-i / hd)
            c, s = math.cos(theta), math.sin(theta)
            out[:, i] = x[:, i] * c - x[:, i + 1] * s
            out[:, i + 1] = x[:, i] * s + x[:, i + 1] * c
        return out

    def step(self, token: int, pos: int, cached: list[int], narrow=None, head_agg: str = "sum",
             skip_layers: int = 0) -> tuple[torch.Tensor, dict[int, float]]:
        """Process one token at `pos`; it attends to `cached` (which must include pos).

        `narrow(il, head, q, keys)`, if given, returns the positions a head of
        layer il attends among `keys` ({position: key}); the others get no attention.
        The scores are each head's attention summed over the layers from `skip_layers` on,
        then summed (or maxed, `head_agg`) over heads."""
        c, w = self.cfg, self.w
        hd, group = c.head_dim, c.n_head // c.n_head_kv
        h = w["token_embd.weight"][token]
        per_head = {p: [0.0] * c.n_head for p in cached}
        for il in range(c.n_layer):
            x = self.rms(h, w[f"blk.{il}.attn_norm.weight"])
            q = self.rope((w[f"blk.{il}.attn_q.weight"] @ x).view(c.n_head, hd), pos)
            self.k[il][pos] = self.rope((w[f"blk.{il}.attn_k.weight"] @ x).view(c.n_head_kv, hd), pos)
            self.v[il][pos] = (w[f"blk.{il}.attn_v.weight"] @ x).view(c.n_head_kv, hd)
            K = torch.stack([self.k[il][p] for p in cached])  # [n, n_head_kv, hd]
            V = torch.stack([self.v[il][p] for p in cached])
            heads = []
            for hh in range(c.n_head):
                logit = K[:, hh // group] @ q[hh] / math.sqrt(hd)
                if narrow is not None:
                    keep = set(narrow(il, hh, q[hh], {p: self.k[il][p][hh // group] for p in cached}))
                    logit = torch.where(torch.tensor([p in keep for p in cached]), logit, torch.tensor(-math.inf, dtype=logit.dtype))
                att = torch.softmax(logit, dim=0)
                for j, p in enumerate(cached):
                    if il >= skip_layers:
                        per_head[p][hh] += float(att[j])
                heads.append(att @ V[:, hh // group])
            h = h + w[f"blk.{il}.attn_output.weight"] @ torch.cat(heads)
            x = self.rms(h, w[f"blk.{il}.ffn_norm.weight"])
            gate = torch.nn.functional.silu(w[f"blk.{il}.ffn_gate.weight"] @ x)
            h = h + w[f"blk.{il}.ffn_down.weight"] @ (gate * (w[f"blk.{il}.ffn_up.weight"] @ x))
        logits = w["output.weight"] @ self.rms(h, w["output_norm.weight"])
        return logits, {p: (max if head_agg == "max" else sum)(v) for p, v in per_head.items()}

"""Sampling: how the next token is picked, one small dataclass for every caller.

The engine builds its llama.cpp sampler chain from it; `run`, `chat`, `solve`,
`bench` and the TUI fill it from the same flags (raas_local/flags.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from raas_local.errors import InputError


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 2048
    temperature: float = 0.6     # 0: greedy
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None      # None: the engine's seed
    ignore_eos: bool = False     # keep generating past end-of-sequence

    def __post_init__(self):
        if self.max_tokens < 0:
            raise InputError(f"max tokens must be 0 or more, got {self.max_tokens}")
        if not self.temperature >= 0:
            raise InputError(f"temperature must be 0 or more, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise InputError(f"top-k must be 0 or more, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def record(self) -> dict:
        """The settings as solve's records and metrics name them."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature, "top_p": self.top_p,
                "top_k": self.top_k, "seed": self.seed}

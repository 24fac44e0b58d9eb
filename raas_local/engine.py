"""The decode engine: prefill, decode_one_token, generate.

llama-cpp-python's ``Llama`` assumes KV position == tokens seen and stops at
n_ctx; both break once pages are evicted. So ``Llama`` only loads the model,
tokenizes and renders chat templates; the engine runs its own loop on the
low-level API with its own position counter, samples with a llama.cpp sampler
chain, and talks to the cache policy through raas_local.native.

Multi-turn: each turn's new prompt tokens are prefilled and pinned. The engine
remembers the text its cache holds; when the next rendered conversation starts
with that text only the rest is prefilled, otherwise the cache is cleared and
the whole conversation is prefilled again. A finished turn's thinking block is
removed from the cache (llama_memory_seq_rm), as reasoning models' templates
drop it from history.
"""

from __future__ import annotations

import codecs
import ctypes
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from raas_local import native
from raas_local.errors import ModelError, PolicyError, RaasError
from raas_local.policies import CachePolicy

import llama_cpp
from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

Messages = Sequence[dict]
# cache element type -> (ggml type id, bytes per element)
KV_TYPES = {"f16": (1, 2), "f32": (0, 4)}


@dataclass(frozen=True)
class CacheStats:
    used: int
    pinned: int
    decode_cells: int
    pages: int
    evictions: int        # pages freed so far
    evicted_cells: int
    budget: int
    newest_pos: int
    n_cells: int          # cells allocated by the context
    step: int
    bytes_per_cell: int
    seq_tokens: int       # tokens of the sequence so far: what a dense cache would hold

    @property
    def free(self) -> int:
        return max(self.budget - self.used, 0)

    @property
    def kv_bytes(self) -> int:
        return self.used * self.bytes_per_cell

    @property
    def kv_bytes_dense(self) -> int:
        return self.seq_tokens * self.bytes_per_cell


@dataclass(frozen=True)
class GenStats:
    prompt_tokens: int
    generated_tokens: int
    prefill_s: float
    decode_s: float
    peak_kv_cells: int
    cache: CacheStats

    @property
    def tok_per_s(self) -> float:
        return self.generated_tokens / self.decode_s if self.decode_s > 0 else 0.0

    @property
    def evictions(self) -> int:
        return self.cache.evictions


@dataclass(frozen=True)
class GenerationEvent:
    text: str                   # new text since the last event
    token: int | None
    stats: GenStats
    done: bool = False
    finish_reason: str | None = None  # "stop", "length" or "cancelled" on the last event


@dataclass
class _Turn:
    text: list[str] = field(default_factory=list)
    think_first: int | None = None   # position of the first thinking token
    think_last: int | None = None


class Engine:
    def __init__(
        self,
        model: str | os.PathLike | None = None,
        policy: CachePolicy | None = None,
        n_gpu_layers: int = 0,
        flash_attn: bool = False,
        seed: int = 0,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        kv_type: str = "f16",
        verbose: bool = False,
    ):
        from raas_local.models import resolve_model, validate_gguf

        self.model_path, self.spec = resolve_model(str(model) if model is not None else None)
        validate_gguf(self.model_path)
        self.policy = policy or CachePolicy()
        self.n_gpu_layers, self.flash_attn, self.seed = n_gpu_layers, flash_attn, seed
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_batch, self.verbose = n_batch, verbose
        if kv_type not in KV_TYPES:
            raise PolicyError(f"KV type must be one of {', '.join(KV_TYPES)}, got {kv_type!r}")
        self.kv_type = kv_type
        self._n_ctx_arg = n_ctx
        self.llm: Llama | None = None
        self._load()

    # -- set-up ---------------------------------------------------------------

    def _context_cells(self) -> int:
        if self._n_ctx_arg:
            return max(self._n_ctx_arg, self.policy.budget if self.policy.evicts else 0)
        if self.policy.evicts:
            return self.policy.budget
        return 0  # dense: the model's training context

    def _load(self) -> None:
        if self.llm is not None:
            self.llm.close()
        n_ctx = self._context_cells()
        try:
            self.llm = Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_batch=self.n_batch if n_ctx == 0 else min(self.n_batch, n_ctx),
                n_gpu_layers=self.n_gpu_layers,
                flash_attn=self.flash_attn,
                seed=self.seed,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                type_k=KV_TYPES[self.kv_type][0],
                type_v=KV_TYPES[self.kv_type][0],
                verbose=self.verbose,
            )
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"could not load {self.model_path}: {e}") from None
        self.ctx = self.llm.ctx
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_cells = llama_cpp.llama_n_ctx(self.ctx)
        self.n_batch_eff = self.llm.n_batch
        self.bytes_per_cell = self._bytes_per_cell()
        self._batch = llama_cpp.llama_batch_init(self.n_batch_eff, 0, 1)
        self._eog = {t for t in range(llama_cpp.llama_vocab_n_tokens(self.vocab)) if llama_cpp.llama_vocab_is_eog(self.vocab, t)}
        self._formatter = self._make_formatter()
        self._apply_policy()
        self.reset()

    def _bytes_per_cell(self) -> int:
        md = self.llm.metadata
        arch = md.get("general.architecture", "llama")
        n_layer = llama_cpp.llama_model_n_layer(self.llm.model)
        n_head = int(md.get(f"{arch}.attention.head_count", 1) or 1)
        n_head_kv = int(md.get(f"{arch}.attention.head_count_kv", n_head) or n_head)
        n_embd = llama_cpp.llama_model_n_embd(self.llm.model)
        k_len = int(md.get(f"{arch}.attention.key_length", n_embd // n_head))
        v_len = int(md.get(f"{arch}.attention.value_length", k_len))
        return n_layer * n_head_kv * (k_len + v_len) * KV_TYPES[self.kv_type][1]

    def _make_formatter(self) -> Jinja2ChatFormatter | None:
        template = (self.spec.chat_template if self.spec is not None and getattr(self.spec, "chat_template", None) else None) or self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None

        def piece(tid: int) -> str:
            return self.llm.detokenize([tid], special=True).decode("utf-8", "replace") if tid >= 0 else ""

        return Jinja2ChatFormatter(
            template=template,
            eos_token=piece(llama_cpp.llama_vocab_eos(self.vocab)),
            bos_token=piece(llama_cpp.llama_vocab_bos(self.vocab)),
        )

    def _apply_policy(self) -> None:
        spec = self.policy.spec()
        native.set_policy(self.ctx, **spec.native_params(self.policy))

    def set_policy(self, policy: CachePolicy) -> None:
        """Switch policy or budget; clears the conversation. Reloads the context if it needs more cells."""
        old = self.policy
        self.policy = policy
        if policy.evicts and policy.budget > self.n_cells or (old.evicts != policy.evicts and not self._n_ctx_arg):
            self._load()
        else:
            self._apply_policy()
            self.reset()

    def reset(self) -> None:
        """Forget the conversation: empty cache, no pins, position 0."""
        llama_cpp.llama_memory_clear(self.memory, True)
        native.reset(self.ctx)
        self._pos = 0
        self._seq_tokens = 0
        self._cached_text: str | None = None
        self._peak = 0
        self._last_stats = self.cache_stats()

    def close(self) -> None:
        if self.llm is not None:
            llama_cpp.llama_batch_free(self._batch)
            self.llm.close()
            self.llm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- readers --------------------------------------------------------------

    @property
    def think_tags(self) -> tuple[str, str] | None:
        tags = getattr(self.spec, "think_tags", None) if self.spec is not None else ("<think>", "</think>")
        return tuple(tags) if tags and len(tags) == 2 else None

    def cache_stats(self) -> CacheStats:
        s = native.get_stats(self.ctx)
        if s is None:  # dense on a memory that is not one KV cache: nothing to report but counts
            used = self._seq_tokens
            return CacheStats(used, 0, used, 0, 0, 0, self.n_cells, self._pos - 1, self.n_cells, 0, self.bytes_per_cell, self._seq_tokens)
        return CacheStats(
            used=s.used, pinned=s.pinned, decode_cells=s.decode_cells, pages=s.pages,
            evictions=s.evictions, evicted_cells=s.evicted_cells, budget=s.budget,
            newest_pos=s.newest_pos, n_cells=s.n_cells, step=s.step,
            bytes_per_cell=self.bytes_per_cell, seq_tokens=self._seq_tokens,
        )

    def page_table(self) -> list[native.PageInfo]:
        return native.get_pages(self.ctx)

    def last_scores(self) -> dict[int, float]:
        return native.get_scores(self.ctx)

    def last_evicted(self) -> list[int]:
        return native.get_evicted(self.ctx)

    def logits(self) -> np.ndarray:
        """Logits of the last decoded token (a copy)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        n = llama_cpp.llama_vocab_n_tokens(self.vocab)
        return np.ctypeslib.as_array(ptr, shape=(n,)).copy()

    @property
    def position(self) -> int:
        return self._pos

    # -- tokens ---------------------------------------------------------------

    def tokenize(self, text: str, add_bos: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def render(self, messages: Messages) -> str:
        if self._formatter is None:
            # no chat template (tiny test models): plain concatenation of the turns
            return "".join(m["content"] for m in messages)
        return self._formatter(messages=list(messages)).prompt

    def piece(self, token: int) -> bytes:
        buf = ctypes.create_string_buffer(64)
        n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, len(buf), 0, True)
        return buf.raw[:n]

    # -- the verbs --------------------------------------------------------------

    def _decode(self, tokens: Sequence[int], logits_last: bool) -> None:
        b = self._batch
        b.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            b.token[i] = t
            b.pos[i] = self._pos + i
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = 0
            b.logits[i] = 1 if (logits_last and i == len(tokens) - 1) else 0
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            why = native.last_error() if rc == -1 else ""
            if rc == 1:
                why = f"the KV cache is full ({self.n_cells} cells); raise -c/--ctx-size or use an evicting policy"
            raise RaasError(f"llama_decode failed ({rc}) at position {self._pos}: {why}".rstrip(": "))
        self._pos += len(tokens)
        self._seq_tokens += len(tokens)
        # read once per decode: generate's events reuse it instead of scanning the cells again
        self._last_stats = self.cache_stats()
        self._peak = max(self._peak, self._last_stats.used)

    def check_prompt_fits(self, n_new: int) -> None:
        """Refuse a prompt that leaves fewer than two pages of room (DESIGN.md)."""
        if self.policy.evicts:
            pinned = self.cache_stats().pinned + n_new
            need = self.policy.min_budget(pinned)
            if need > self.policy.budget:
                raise PolicyError(
                    f"the prompt needs {pinned} pinned KV cells and budget {self.policy.budget} leaves fewer than two "
                    f"pages ({need - pinned} cells) to decode in; use --budget {need} or more, or --policy dense"
                )
        elif self.cache_stats().used + n_new > self.n_cells:
            raise PolicyError(f"the prompt of {n_new} tokens does not fit the dense context of {self.n_cells} cells; raise -c/--ctx-size")

    def prefill(self, tokens: Sequence[int], pin: bool = True, chunk: int | None = None) -> None:
        """Decode prompt tokens in batches; pinned so the policy never frees them.

        With pin=False the tokens become decode pages, placed a batch at a time
        (the bench fills long contexts this way); `chunk` caps the batch."""
        if not tokens:
            return
        if pin:
            self.check_prompt_fits(len(tokens))
            if native.get_stats(self.ctx) is not None:
                native.pin(self.ctx, self._pos, self._pos + len(tokens))
        step = min(chunk or self.n_batch_eff, self.n_batch_eff)
        for i in range(0, len(tokens), step):
            part = tokens[i : i + step]
            self._decode(part, logits_last=i + len(part) == len(tokens))

    def decode_one_token(self, token: int) -> None:
        self._decode([token], logits_last=True)

    def truncate(self, pos: int) -> None:
        """Drop positions >= pos from the cache and continue from pos (llama_memory_seq_rm(.., pos, -1))."""
        if not 0 <= pos <= self._pos:
            raise PolicyError(f"cannot truncate to position {pos}: the sequence is at {self._pos}")
        llama_cpp.llama_memory_seq_rm(self.memory, 0, pos, -1)
        self._seq_tokens -= self._pos - pos
        self._pos = pos
        self._cached_text = None  # the text no longer matches what the cache holds

    def _sampler(self, temperature: float, top_p: float, top_k: int, seed: int, ignore_eos: bool):
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if ignore_eos and self._eog:
            arr = (llama_cpp.llama_logit_bias * len(self._eog))()
            for i, t in enumerate(sorted(self._eog)):
                arr[i].token, arr[i].bias = t, float("-inf")
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_logit_bias(llama_cpp.llama_vocab_n_tokens(self.vocab), len(self._eog), arr)
            )
        if temperature <= 0:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(top_k))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(top_p, 1))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(temperature))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def _turn_tokens(self, prompt: str | Messages, raw: bool) -> list[int]:
        if raw:
            text = prompt if isinstance(prompt, str) else "".join(m["content"] for m in prompt)
            self.reset()
            self._cached_text = None
            return self.tokenize(text, add_bos=llama_cpp.llama_vocab_get_add_bos(self.vocab))
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        text = self.render(messages)
        if self._cached_text is not None and text.startswith(self._cached_text):
            delta = text[len(self._cached_text):]
        else:
            self.reset()
            delta = text
        self._cached_text = text
        bos = self._pos == 0 and llama_cpp.llama_vocab_get_add_bos(self.vocab) and not self._starts_with_bos(delta)
        return self.tokenize(delta, add_bos=bool(bos))

    def _starts_with_bos(self, text: str) -> bool:
        bos = self.piece(llama_cpp.llama_vocab_bos(self.vocab)).decode("utf-8", "replace") if llama_cpp.llama_vocab_bos(self.vocab) >= 0 else ""
        return bool(bos) and text.startswith(bos)

    def _stats(self, n_prompt: int, n_gen: int, t_prefill: float, t_decode: float, cache: CacheStats | None = None) -> GenStats:
        return GenStats(n_prompt, n_gen, t_prefill, t_decode, self._peak, cache or self._last_stats)

    def generate(
        self,
        prompt: str | Messages,
        max_tokens: int = 2048,
        temperature: float = 0.6,
        top_p: float = 0.95,
        top_k: int = 40,
        seed: int | None = None,
        ignore_eos: bool = False,
        raw: bool = False,
    ) -> Iterator[GenerationEvent]:
        """Stream a reply. ``prompt`` is a question or a list of chat messages
        (rendered with the model's chat template), or raw text with raw=True.
        Closing the generator early (the TUI's Esc) leaves the engine ready."""
        tokens = self._turn_tokens(prompt, raw)
        t0 = time.perf_counter()
        self.prefill(tokens, pin=True)
        t_prefill = time.perf_counter() - t0

        sampler = self._sampler(temperature, top_p, top_k, self.seed if seed is None else seed, ignore_eos)
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        turn = _Turn()
        open_tag, close_tag = self.think_tags or (None, None)
        if open_tag and not raw:
            turn.think_first = self._think_opened_by_prompt(tokens, open_tag)
        n_gen, t_decode, reason = 0, 0.0, "length"
        try:
            while n_gen < max_tokens:
                t1 = time.perf_counter()
                tok = llama_cpp.llama_sampler_sample(sampler, self.ctx, -1)
                if tok in self._eog and not ignore_eos:
                    t_decode += time.perf_counter() - t1
                    reason = "stop"
                    break
                pos = self._pos
                self.decode_one_token(tok)
                t_decode += time.perf_counter() - t1
                n_gen += 1
                text = utf8.decode(self.piece(tok))
                turn.text.append(text)
                if open_tag and turn.think_first is None and open_tag in "".join(turn.text[-8:]):
                    turn.think_first = pos
                elif close_tag and turn.think_first is not None and turn.think_last is None and close_tag in "".join(turn.text[-8:]):
                    turn.think_last = pos
                yield GenerationEvent(text, tok, self._stats(len(tokens), n_gen, t_prefill, t_decode))
        except GeneratorExit:
            reason = "cancelled"
            self._finish_turn(turn, open_tag, close_tag)
            llama_cpp.llama_sampler_free(sampler)
            raise
        tail = utf8.decode(b"", final=True)
        self._finish_turn(turn, open_tag, close_tag)
        llama_cpp.llama_sampler_free(sampler)
        # fresh: _finish_turn may have removed the thinking block from the cache
        yield GenerationEvent(tail, None, self._stats(len(tokens), n_gen, t_prefill, t_decode, self.cache_stats()), True, reason)

    def _think_opened_by_prompt(self, tokens: Sequence[int], open_tag: str) -> int | None:
        """Position of the open tag that ends the prompt (DeepSeek-R1 distills and QwQ render
        `<think>` into the generation prompt), or None."""
        tail = b""
        for k in range(1, min(len(tokens), 8) + 1):
            tail = self.piece(tokens[-k]) + tail
            text = tail.decode("utf-8", "replace")
            if text.strip().startswith(open_tag):
                return self._pos - k if text.rstrip().endswith(open_tag) else None
        return None

    def _finish_turn(self, turn: _Turn, open_tag: str | None, close_tag: str | None) -> None:
        """Record what the cache now holds; drop a finished thinking block from it."""
        text = "".join(turn.text)
        if turn.think_first is not None and turn.think_last is not None and close_tag:
            # the newest position stays: llama.cpp decodes the next turn at max position + 1
            end = min(turn.think_last + 1, self._pos - 1)
            if end > turn.think_first:
                llama_cpp.llama_memory_seq_rm(self.memory, 0, turn.think_first, end)
                self._seq_tokens -= end - turn.think_first
            answer = text[text.find(close_tag) + len(close_tag):]
            if open_tag in text:
                text = text[: text.find(open_tag)] + answer
            else:  # the prompt opened the block: its open tag left the cache too
                text = answer
                if self._cached_text is not None:
                    self._cached_text = self._cached_text[: self._cached_text.rfind(open_tag)]
        if self._cached_text is not None:
            self._cached_text += text


def generate_text(engine: Engine, prompt, **kw) -> tuple[str, GenStats]:
    """Run a whole generation; returns the text and the final stats."""
    parts, stats = [], None
    for ev in engine.generate(prompt, **kw):
        parts.append(ev.text)
        stats = ev.stats
    return "".join(parts), stats

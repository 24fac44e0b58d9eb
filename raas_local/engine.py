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
drop it from history (raas_local/thinking.py finds it).

``collect`` is the one loop that consumes ``generate`` into text and figures;
`run`, `solve`, `bench` and the TUI all go through it.

With ``n_seq`` > 1 the context holds that many sequences, each in its own KV
stream with its own policy state; ``generate_batch`` (raas_local/batch.py)
decodes them together. The single-sequence verbs use sequence 0.
"""

from __future__ import annotations

import bisect
import codecs
import ctypes
import itertools
import os
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

import numpy as np

from raas_local import native
from raas_local.errors import ModelError, PolicyError, RaasError
from raas_local.policies import Policy, make
from raas_local.sampling import Sampling
from raas_local.thinking import think_span

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
    first_pos: int                   # position of the turn's first generated token
    text: list[str] = field(default_factory=list)  # each token's text, in order
    opened_at: int | None = None     # position of the prompt's open think tag, if the template opened the block


def flash_attn_for(policy: Policy, asked: bool, on_gpu: bool) -> bool:
    """Flash attention as asked, unless layers are on a GPU whose flash attention cannot
    take the policy's mask (quest's per-head mask): then none, so attention stays on the GPU."""
    return asked and not (on_gpu and not policy.gpu_flash_attn)


class Engine:
    def __init__(
        self,
        model: str | os.PathLike | None = None,
        policy: Policy | None = None,
        n_gpu_layers: int = 0,
        flash_attn: bool = False,
        seed: int = 0,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_batch: int = 512,
        kv_type: str = "f16",
        verbose: bool = False,
        n_seq: int = 1,
        n_ctx_dense: int | None = None,
    ):
        from raas_local.models import resolve_model, validate_gguf

        self.model_path, self.spec = resolve_model(str(model) if model is not None else None)
        validate_gguf(self.model_path)
        self.policy = policy or make("raas")
        self.n_gpu_layers, self.flash_attn, self.seed = n_gpu_layers, flash_attn, seed
        self.n_threads = n_threads or os.cpu_count() or 1
        self.n_batch, self.verbose = n_batch, verbose
        if kv_type not in KV_TYPES:
            raise PolicyError(f"KV type must be one of {', '.join(KV_TYPES)}, got {kv_type!r}")
        self.kv_type = kv_type
        if n_seq < 1:
            raise PolicyError(f"the number of parallel sequences must be 1 or more, got {n_seq}")
        self.n_seq = n_seq
        self._n_ctx_arg = n_ctx
        # cells per sequence for a kind that keeps every token, when n_ctx is not given (None: the
        # model's training context; solve sizes it to its problems, as N sequences each get it)
        self._n_ctx_dense = n_ctx_dense
        self.llm: Llama | None = None
        self._load()

    # -- set-up ---------------------------------------------------------------

    def _context_cells(self) -> int:
        if self._n_ctx_arg:
            return max(self._n_ctx_arg, self.policy.budget if self.policy.evicts else 0)
        if self.policy.evicts:
            return self.policy.budget
        return self._n_ctx_dense or 0  # 0: the model's training context

    def _load(self) -> None:
        if self.llm is not None:
            self.llm.close()
        n_ctx = self._context_cells()
        self.flash_attn_used = self._flash_attn_for(self.policy)
        try:
            self.llm = Llama(
                model_path=str(self.model_path),
                n_ctx=n_ctx,
                n_batch=self.n_batch if n_ctx == 0 else min(self.n_batch, n_ctx),
                n_gpu_layers=self.n_gpu_layers,
                flash_attn=self.flash_attn_used,
                seed=self.seed,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                type_k=KV_TYPES[self.kv_type][0],
                type_v=KV_TYPES[self.kv_type][0],
                verbose=self.verbose,
            )
            if self.n_seq > 1:
                self._context_for_sequences()
        except (ValueError, RuntimeError) as e:
            raise ModelError(f"could not load {self.model_path}: {e}") from None
        self.ctx = self.llm.ctx
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm.model)
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.n_cells = llama_cpp.llama_n_ctx_seq(self.ctx)  # per sequence
        self.n_batch_eff = self.llm.n_batch
        self.bytes_per_cell = self._bytes_per_cell()
        self._batch = llama_cpp.llama_batch_init(max(self.n_batch_eff, self.n_seq), 0, 1)
        self._eog = {t for t in range(llama_cpp.llama_vocab_n_tokens(self.vocab)) if llama_cpp.llama_vocab_is_eog(self.vocab, t)}
        self._formatter = self._make_formatter()
        self._apply_policy()
        self.reset()

    def _context_for_sequences(self) -> None:
        """Replace Llama's one-sequence context by one of n_seq sequences with one KV stream each
        (kv_unified = false): a sequence attends only its own cells, so a step costs O(budget) per
        sequence, and each has the cells, budget and RoPE context a single sequence has."""
        from llama_cpp import _internals

        p = llama_cpp.llama_context_params.from_buffer_copy(self.llm.context_params)
        p.n_ctx = llama_cpp.llama_n_ctx_seq(self.llm.ctx) * self.n_seq
        p.n_seq_max, p.kv_unified = self.n_seq, False
        p.n_batch = max(p.n_batch, self.n_seq)  # a decode step holds one token per sequence
        self.llm._ctx.close()
        self.llm._ctx = _internals.LlamaContext(model=self.llm._model, params=p, verbose=self.verbose)

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

    def _flash_attn_for(self, policy: Policy) -> bool:
        on_gpu = self.n_gpu_layers > 0 and bool(llama_cpp.llama_supports_gpu_offload())
        return flash_attn_for(policy, self.flash_attn, on_gpu)

    def _apply_policy(self) -> None:
        native.set_policy(self.ctx, **self.policy.native_params())

    def set_policy(self, policy: Policy) -> None:
        """Switch policy or budget; clears the conversation. Reloads the context if it needs more cells."""
        old = self.policy
        self.policy = policy
        if (policy.evicts and policy.budget > self.n_cells or (old.evicts != policy.evicts and not self._n_ctx_arg)
                or self._flash_attn_for(policy) != self.flash_attn_used):
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

    def clear_seq(self, seq: int) -> None:
        """Free sequence ``seq``'s cells and forget its policy state (a finished sequence's slot)."""
        if native.get_stats(self.ctx, seq) is not None:
            native.clear_seq(self.ctx, seq)
        else:
            llama_cpp.llama_memory_seq_rm(self.memory, seq, -1, -1)

    def move_seq(self, src: int, dst: int) -> bool:
        """Move sequence ``src`` into the empty ``dst`` (cells and policy state); False where the memory
        has no policy state to move (dense on a memory that is not one KV cache)."""
        if native.get_stats(self.ctx, src) is None:
            return False
        native.move_seq(self.ctx, src, dst)
        return True

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

    def cache_stats(self, seq: int = 0, seq_tokens: int | None = None, pos: int | None = None) -> CacheStats:
        """The cache of sequence ``seq``; ``seq_tokens`` and ``pos`` default to the single-sequence engine's."""
        seq_tokens = self._seq_tokens if seq_tokens is None else seq_tokens
        s = native.get_stats(self.ctx, seq)
        if s is None:  # dense on a memory that is not one KV cache: nothing to report but counts
            used, newest = seq_tokens, (self._pos if pos is None else pos) - 1
            return CacheStats(used, 0, used, 0, 0, 0, self.n_cells, newest, self.n_cells, 0, self.bytes_per_cell, seq_tokens)
        return CacheStats(
            used=s.used, pinned=s.pinned, decode_cells=s.decode_cells, pages=s.pages,
            evictions=s.evictions, evicted_cells=s.evicted_cells, budget=s.budget,
            newest_pos=s.newest_pos, n_cells=s.n_cells, step=s.step,
            bytes_per_cell=self.bytes_per_cell, seq_tokens=seq_tokens,
        )

    def page_table(self, seq: int = 0) -> list[native.PageInfo]:
        return native.get_pages(self.ctx, seq)

    def last_scores(self, seq: int = 0) -> dict[int, float]:
        return native.get_scores(self.ctx, seq)

    def last_evicted(self, seq: int = 0) -> list[int]:
        return native.get_evicted(self.ctx, seq)

    def logits(self) -> np.ndarray:
        """Logits of the last decoded token (a copy)."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, -1)
        n = llama_cpp.llama_vocab_n_tokens(self.vocab)
        return np.ctypeslib.as_array(ptr, shape=(n,)).copy()

    @property
    def eog_tokens(self) -> set[int]:
        return self._eog

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

    def check_room(self, seq_tokens: int, n_new: int, pos: int) -> None:
        """A dense sequence of seq_tokens cells takes n_new more only below its context's cells."""
        if not self.policy.evicts and seq_tokens + n_new > self.n_cells:
            # refused here, not by llama_decode: that one also logs its failure on stderr
            raise RaasError(f"the KV cache is full ({self.n_cells} cells) at position {pos}; "
                            "raise -c/--ctx-size or use an evicting policy")

    def submit(self, entries: Sequence[tuple[int, int, int, bool]], pos: int) -> None:
        """One llama_decode of (seq, token, position, wants logits) entries; ``pos`` names the failure."""
        b = self._batch
        b.n_tokens = len(entries)
        for i, (seq, t, p, out) in enumerate(entries):
            b.token[i] = t
            b.pos[i] = p
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if out else 0
        rc = llama_cpp.llama_decode(self.ctx, b)
        if rc != 0:
            why = native.last_error() if rc == -1 else ""
            if rc == 1:
                why = f"the KV cache is full ({self.n_cells} cells); raise -c/--ctx-size or use an evicting policy"
            raise RaasError(f"llama_decode failed ({rc}) at position {pos}: {why}".rstrip(": "))

    def _decode(self, tokens: Sequence[int], logits_last: bool) -> None:
        self.check_room(self._seq_tokens, len(tokens), self._pos)
        n = len(tokens)
        self.submit([(0, t, self._pos + i, logits_last and i == n - 1) for i, t in enumerate(tokens)], self._pos)
        self._pos += len(tokens)
        self._seq_tokens += len(tokens)
        # read once per decode: generate's events reuse it instead of scanning the cells again
        self._last_stats = self.cache_stats()
        self._peak = max(self._peak, self._last_stats.used)

    def check_prompt_fits(self, n_new: int, seq: int = 0) -> None:
        """Refuse a prompt that leaves an evicting policy fewer than two pages to decode in."""
        if self.policy.evicts:
            pinned = self.cache_stats(seq).pinned + n_new
            if not self.policy.fits(pinned):
                need = self.policy.min_budget(pinned)
                raise PolicyError(
                    f"the prompt needs {pinned} pinned KV cells and budget {self.policy.budget} leaves fewer than two "
                    f"pages ({need - pinned} cells) to decode in; use --budget {need} or more, or --policy dense"
                )
        elif self.cache_stats(seq).used + n_new > self.n_cells:
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

    def sampler(self, s: Sampling):
        """A llama.cpp sampler chain for ``s`` (the caller frees it with llama_sampler_free)."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if s.ignore_eos and self._eog:
            arr = (llama_cpp.llama_logit_bias * len(self._eog))()
            for i, t in enumerate(sorted(self._eog)):
                arr[i].token, arr[i].bias = t, float("-inf")
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_logit_bias(llama_cpp.llama_vocab_n_tokens(self.vocab), len(self._eog), arr)
            )
        if s.greedy:
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            seed = self.seed if s.seed is None else s.seed
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_k(s.top_k))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_temp(s.temperature))
            llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed & 0xFFFFFFFF))
        return chain

    def prompt_tokens(self, prompt: str | Messages, raw: bool = False) -> list[int]:
        """The tokens of ``prompt`` as a fresh conversation (raw: the text as it is)."""
        if raw:
            text = prompt if isinstance(prompt, str) else "".join(m["content"] for m in prompt)
            return self.tokenize(text, add_bos=llama_cpp.llama_vocab_get_add_bos(self.vocab))
        text = self.render([{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt))
        bos = llama_cpp.llama_vocab_get_add_bos(self.vocab) and not self._starts_with_bos(text)
        return self.tokenize(text, add_bos=bool(bos))

    def _turn_tokens(self, prompt: str | Messages, raw: bool) -> list[int]:
        if raw:
            self.reset()
            self._cached_text = None
            return self.prompt_tokens(prompt, raw=True)
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

    def generate(self, prompt: str | Messages, sampling: Sampling | None = None, *, raw: bool = False,
                 **settings) -> Iterator[GenerationEvent]:
        """Stream a reply. ``prompt`` is a question or a list of chat messages
        (rendered with the model's chat template), or raw text with raw=True.
        ``settings`` override fields of ``sampling`` (``max_tokens=64, temperature=0``).
        Closing the generator early (the TUI's Esc) leaves the engine ready."""
        s = replace(sampling or Sampling(), **settings)
        tokens = self._turn_tokens(prompt, raw)
        t0 = time.perf_counter()
        self.prefill(tokens, pin=True)
        t_prefill = time.perf_counter() - t0

        sampler = self.sampler(s)
        utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        turn = _Turn(self._pos)
        if self.think_tags and not raw:
            turn.opened_at = self._think_opened_by_prompt(tokens, self.think_tags[0])
        n_gen, t_decode, reason = 0, 0.0, "length"
        try:
            while n_gen < s.max_tokens:
                t1 = time.perf_counter()
                tok = llama_cpp.llama_sampler_sample(sampler, self.ctx, -1)
                if tok in self._eog and not s.ignore_eos:
                    t_decode += time.perf_counter() - t1
                    reason = "stop"
                    break
                self.decode_one_token(tok)
                t_decode += time.perf_counter() - t1
                n_gen += 1
                text = utf8.decode(self.piece(tok))
                turn.text.append(text)
                yield GenerationEvent(text, tok, self._stats(len(tokens), n_gen, t_prefill, t_decode))
        except GeneratorExit:
            self._finish_turn(turn)
            llama_cpp.llama_sampler_free(sampler)
            raise
        tail = utf8.decode(b"", final=True)
        self._finish_turn(turn)
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

    def _finish_turn(self, turn: _Turn) -> None:
        """Record what the cache now holds; drop a finished thinking block from it."""
        text = "".join(turn.text)
        span = think_span(text, self.think_tags)
        if span is None and turn.opened_at is not None:
            # the prompt opened the block: it runs from the prompt's open tag to the reply's close tag
            close = text.find(self.think_tags[1])
            span = (0, close + len(self.think_tags[1])) if close >= 0 else None
        if span is not None:
            # the tokens whose text the block spans, from the one holding its first character to its last
            ends = list(itertools.accumulate(len(t) for t in turn.text))
            first = bisect.bisect_right(ends, span[0])
            last = bisect.bisect_left(ends, span[1])
            p0 = turn.opened_at if span[0] == 0 and turn.opened_at is not None else turn.first_pos + first
            # the newest position stays: llama.cpp decodes the next turn at max position + 1
            p1 = min(turn.first_pos + last + 1, self._pos - 1)
            if p1 > p0:
                llama_cpp.llama_memory_seq_rm(self.memory, 0, p0, p1)
                self._seq_tokens -= p1 - p0
            text = text[: span[0]] + text[span[1]:]
            if p0 == turn.opened_at and self._cached_text is not None:  # its open tag left the cache too
                self._cached_text = self._cached_text[: self._cached_text.rfind(self.think_tags[0])]
        if self._cached_text is not None:
            self._cached_text += text


@dataclass(frozen=True)
class Completion:
    """A whole generation: its text and figures."""
    text: str
    stats: GenStats | None          # None when it stopped before the first event
    finish_reason: str              # "stop", "length" or "cancelled"
    tokens: int                     # tokens generated
    wall_s: float                   # first token to last, as the caller received them

    @property
    def tok_per_s_wall(self) -> float:
        """The rate the caller saw: n tokens span n-1 intervals after the first one arrived."""
        return (self.tokens - 1) / self.wall_s if self.tokens > 1 and self.wall_s > 0 else 0.0


def collect(events: Iterator[GenerationEvent],
            on_event: Callable[[GenerationEvent], bool | None] | None = None) -> Completion:
    """Consume ``Engine.generate``'s events into a Completion. ``on_event`` sees each event as it
    arrives (to stream it); returning True stops the generation there ("cancelled")."""
    parts: list[str] = []
    stats, reason, n = None, "cancelled", 0
    t_first = t_last = None
    try:
        for ev in events:
            if ev.token is not None:
                n += 1
                t_last = time.perf_counter()
                t_first = t_first or t_last
            parts.append(ev.text)
            stats = ev.stats
            if ev.done:
                reason = ev.finish_reason or "stop"
            if on_event is not None and on_event(ev) and not ev.done:
                break
    finally:
        events.close()  # GeneratorExit inside the engine: it records the turn and stays usable
    return Completion("".join(parts), stats, reason, n, (t_last - t_first) if t_first is not None else 0.0)


def generate_text(engine: Engine, prompt, sampling: Sampling | None = None, **kw) -> tuple[str, GenStats]:
    """Run a whole generation; returns the text and the final stats."""
    c = collect(engine.generate(prompt, sampling, **kw))
    return c.text, c.stats

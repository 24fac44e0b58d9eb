"""Continuous batching: many prompts through one Engine of ``n_seq`` sequences.

Each prompt gets a free slot (a sequence id of the context, with its own KV
stream, policy state, sampler and seed). Every step decodes one token of every
live sequence in a single ``llama_decode``; when a sequence ends (end of
sequence or its token limit) its slot is cleared (its cells and policy state
freed, llama_raas_clear_seq) and the next prompt is prefilled into it while
the others wait one prefill, then they all decode on together.

llama.cpp puts one run of consecutive sequence ids in a ubatch, so a gap in
the live slots (a finished sequence with no prompt left to take its place)
would make every step read the weights once per run: the last live sequence
then moves into the gap (llama_raas_move_seq: its cells and policy state).

A prompt's prefill is its own ``llama_decode`` calls, as for a single sequence,
so its prompt is cut into the same ubatches as alone. Mixing it into the
others' decode step would gain nothing here: with one KV stream per sequence
llama.cpp splits a batch with ``split_equal``, which takes the same number of
tokens from every sequence in a ubatch, so a 30-token prompt beside seven
decoding sequences becomes one ubatch of one token each and then 29 tokens of
the prompt alone (the same calls, and the prompt cut differently than alone).

The per-token loop is Engine.generate's: sample, stop at end of sequence,
decode, count; a sequence ends after decoding its max_tokens-th token, with
that token in its cache.

Results come back per prompt, as each finishes, in ``Completion``s with the
prompt's own ``GenStats`` (its decode time is the wall time of the steps it
took part in).
"""

from __future__ import annotations

import codecs
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator

import llama_cpp

from raas_local import native
from raas_local.engine import CacheStats, Completion, Engine, GenStats, Messages
from raas_local.sampling import Sampling


@dataclass
class _Live:
    """One sequence in flight."""
    key: Any
    seq: int
    sampling: Sampling
    sampler: Any
    n_prompt: int
    pos: int = 0                     # next position; also the sequence's cells for a non-evicting policy
    token: int | None = None         # sampled, decoded at the next step
    n_gen: int = 0
    parts: list[str] = field(default_factory=list)
    utf8: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))
    t_prefill: float = 0.0
    t_decode: float = 0.0
    t_first: float | None = None
    t_last: float | None = None
    peak: int = 0
    cache: CacheStats | None = None

    def stats(self) -> GenStats:
        return GenStats(self.n_prompt, self.n_gen, self.t_prefill, self.t_decode, self.peak, self.cache)

    def completion(self, reason: str) -> Completion:
        wall = (self.t_last - self.t_first) if self.t_first is not None else 0.0
        return Completion("".join(self.parts), self.stats(), reason, self.n_gen, wall)


def generate_batch(
    engine: Engine,
    items: Iterable[tuple[Any, str | Messages, Sampling]],
    *,
    raw: bool = False,
    on_step: Callable[[int], None] | None = None,
) -> Iterator[tuple[Any, Completion]]:
    """Generate for every (key, prompt, sampling) of ``items`` on ``engine``'s sequences, at most
    ``engine.n_seq`` at once; yields (key, Completion) as each finishes, in finishing order.

    ``items`` is read lazily, one item per free slot. ``on_step(n)`` hears the tokens decoded by each
    step (n = live sequences). Closing the generator (or an exception) clears every sequence."""
    pending = iter(items)
    exhausted = False
    free = list(range(engine.n_seq))
    live: dict[int, _Live] = {}
    engine.reset()
    try:
        while True:
            # fill free slots; a prompt that ends at its first sample is done at once
            while free:
                item = next(pending, None)
                if item is None:
                    exhausted = True
                    break
                seq = free.pop(0)
                key, prompt, sampling = item
                lv = _start(engine, seq, key, prompt, sampling, raw)
                reason = _sample(engine, lv, -1)
                if reason is None:
                    live[seq] = lv
                else:
                    yield key, _finish(engine, lv, reason, free)
            if not live:
                return
            if exhausted:
                _close_gaps(engine, live, free)
            # one step: the pending token of every live sequence, in sequence order
            order = sorted(live)
            t0 = time.perf_counter()
            for seq in order:
                lv = live[seq]
                engine.check_room(lv.pos, 1, lv.pos)
            engine.submit([(seq, live[seq].token, live[seq].pos, True) for seq in order], live[order[0]].pos)
            t1 = time.perf_counter()
            finished: list[tuple[_Live, str]] = []
            for i, seq in enumerate(order):
                lv = live[seq]
                lv.pos += 1
                lv.n_gen += 1
                lv.parts.append(lv.utf8.decode(engine.piece(lv.token)))
                _observe(engine, lv)
                lv.t_first = lv.t_first or t1
                lv.t_last = t1
                reason = _sample(engine, lv, i)
                if reason is not None:
                    finished.append((lv, reason))
            dt = time.perf_counter() - t0
            for seq in order:
                live[seq].t_decode += dt
            if on_step is not None:
                on_step(len(order))
            for lv, reason in finished:
                del live[lv.seq]
                yield lv.key, _finish(engine, lv, reason, free)
    finally:
        for lv in live.values():
            llama_cpp.llama_sampler_free(lv.sampler)
        engine.reset()


def _close_gaps(engine: Engine, live: dict[int, "_Live"], free: list[int]) -> None:
    """Move the highest live sequences into the free slots below them: one run of ids, one ubatch a step."""
    while free and free[0] < max(live):
        src, dst = max(live), free[0]
        if not engine.move_seq(src, dst):
            return
        lv = live.pop(src)
        lv.seq = dst
        live[dst] = lv
        free.pop(0)
        free.append(src)
        free.sort()


def _start(engine: Engine, seq: int, key, prompt, sampling: Sampling, raw: bool) -> _Live:
    """Prefill ``prompt`` into the free slot ``seq``, pinned, in chunks of the engine's batch."""
    tokens = engine.prompt_tokens(prompt, raw)
    engine.check_prompt_fits(len(tokens), seq)
    lv = _Live(key, seq, sampling, engine.sampler(sampling), len(tokens))
    t0 = time.perf_counter()
    if tokens and native.get_stats(engine.ctx, seq) is not None:
        native.pin(engine.ctx, 0, len(tokens), seq)
    step = engine.n_batch_eff
    for i in range(0, len(tokens), step):
        part = tokens[i : i + step]
        engine.check_room(lv.pos, len(part), lv.pos)
        last = i + len(part) == len(tokens)
        engine.submit([(seq, t, lv.pos + j, last and j == len(part) - 1) for j, t in enumerate(part)], lv.pos)
        lv.pos += len(part)
        _observe(engine, lv)
    lv.t_prefill = time.perf_counter() - t0
    return lv


def _observe(engine: Engine, lv: _Live) -> None:
    lv.cache = engine.cache_stats(lv.seq, lv.pos, lv.pos)
    lv.peak = max(lv.peak, lv.cache.used)


def _sample(engine: Engine, lv: _Live, idx: int) -> str | None:
    """Sample the sequence's next token from the logits at batch index ``idx``; "stop" at end of sequence."""
    if lv.n_gen >= lv.sampling.max_tokens:
        return "length"
    t0 = time.perf_counter()
    tok = llama_cpp.llama_sampler_sample(lv.sampler, engine.ctx, idx)
    if tok in engine.eog_tokens and not lv.sampling.ignore_eos:
        lv.t_decode += time.perf_counter() - t0
        return "stop"
    lv.token = tok
    return None


def _finish(engine: Engine, lv: _Live, reason: str, free: list[int]) -> Completion:
    """The sequence's Completion; its slot is cleared and freed for the next prompt."""
    lv.parts.append(lv.utf8.decode(b"", final=True))
    llama_cpp.llama_sampler_free(lv.sampler)
    done = lv.completion(reason)
    if lv.cache is None:
        done = replace(done, stats=None)
    engine.clear_seq(lv.seq)
    free.append(lv.seq)
    free.sort()
    return done

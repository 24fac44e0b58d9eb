"""The worker-side loop: stream one reply from the engine in batches.

Decisions:
- Runs in the worker thread and is the only code that calls the engine while
  generating; it hands the UI finished batches (``Chunk``) at the rates a
  Throttle sets (throttle.py: text <= 10/s, cache snapshot <= 4/s), so the UI
  re-renders a bounded number of times whatever the token rate, and the
  model never waits on the UI.
- Stopping: the UI sets ``stop``; the loop sees it at the next token and
  closes the generator, which is the engine's clean way to stop (the cache
  keeps what was generated and the engine stays ready).
- tok/s samples are wall-clock over each batch, so they include any cost the
  TUI adds; the engine's own figure (decode time only) is reported beside it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

from raas_local.tui.messages import Chunk, Reply, ReplyDone
from raas_local.tui.state import PanelState
from raas_local.tui.thinking import ThinkSplitter, strip_thinking
from raas_local.tui.throttle import Throttle


@dataclass(frozen=True)
class GenOptions:
    max_tokens: int = 2048
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 40
    ignore_eos: bool = False

    @classmethod
    def from_args(cls, args) -> "GenOptions":
        return cls(
            max_tokens=args.max_tokens, temperature=args.temp, top_p=args.top_p, top_k=args.top_k,
            ignore_eos=bool(getattr(args, "ignore_eos", False)),
        )


def starts_in_thinking(engine, messages) -> bool:
    """Whether the chat template already opened the thinking block in the prompt."""
    tags = engine.think_tags
    if not tags:
        return False
    try:
        return engine.render(messages).rstrip().endswith(tags[0])
    except Exception:  # a template that cannot render is the engine's error to raise
        return False


def stream_reply(
    engine,
    messages: list[dict],
    opts: GenOptions,
    emit: Callable[[object], object],
    stop: threading.Event,
    throttle: Throttle | None = None,
) -> Reply:
    """Generate a reply to ``messages``, emitting Chunk messages and a final ReplyDone.

    Raises what ``engine.generate`` raises (RaasError for user errors) before
    any text when the prompt cannot be served."""
    throttle = throttle or Throttle()
    tags = engine.think_tags
    splitter = ThinkSplitter(tags, starts_in_thinking(engine, messages))
    gen = engine.generate(
        messages, max_tokens=opts.max_tokens, temperature=opts.temperature, top_p=opts.top_p,
        top_k=opts.top_k, ignore_eos=opts.ignore_eos,
    )
    parts: list[str] = []
    think_buf: list[str] = []
    answer_buf: list[str] = []
    stats, reason = None, "cancelled"
    t_first = t_last = None
    last_emit = last_panel = 0.0
    n_at_panel = 0
    n = 0
    try:
        for ev in gen:
            now = time.perf_counter()
            stats = ev.stats
            if ev.token is not None:
                n += 1
                t_last = now
                if t_first is None:
                    t_first = last_emit = last_panel = now
            parts.append(ev.text)
            th, an = splitter.feed(ev.text)
            think_buf.append(th)
            answer_buf.append(an)
            if ev.done:
                reason = ev.finish_reason or "stop"
                break
            if stop.is_set():
                break  # reason stays "cancelled"; the finally closes the generator
            if now - last_emit >= throttle.text_interval:
                last_emit = now
                state = None
                if now - last_panel >= throttle.panel_interval:
                    rate = (n - n_at_panel) / (now - last_panel) if now > last_panel and n > n_at_panel else None
                    last_panel, n_at_panel = now, n
                    state = PanelState.from_engine(engine, stats, generated=n, tok_per_s=rate, status="generating")
                emit(Chunk("".join(think_buf), "".join(answer_buf), state))
                think_buf.clear()
                answer_buf.clear()
    finally:
        gen.close()  # GeneratorExit inside the engine: it records the turn and stays usable
    th, an = splitter.flush()
    think_buf.append(th)
    answer_buf.append(an)
    text = "".join(parts)
    wall = (t_last - t_first) if t_first is not None else 0.0
    reply = Reply(
        text=text, answer=strip_thinking(text, tags), finish_reason=reason, generated=n, wall_s=wall,
        tok_per_s_engine=stats.tok_per_s if stats is not None else 0.0,
        evictions=stats.cache.evictions if stats is not None else 0,
    )
    status = "stopped" if reason == "cancelled" else "idle"
    state = PanelState.from_engine(engine, None, generated=n, status=status)
    if any(think_buf) or any(answer_buf):
        emit(Chunk("".join(think_buf), "".join(answer_buf), state))
    emit(ReplyDone(reply, state))
    return reply

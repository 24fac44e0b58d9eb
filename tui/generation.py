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
from typing import Callable

from raas_local.engine import collect
from raas_local.sampling import Sampling
from raas_local.thinking import ThinkSplitter, starts_in_thinking, strip_thinking
from raas_local.tui.messages import Chunk, Reply, ReplyDone
from raas_local.tui.state import PanelState
from raas_local.tui.throttle import Throttle


def stream_reply(
    engine,
    messages: list[dict],
    sampling: Sampling,
    emit: Callable[[object], object],
    stop: threading.Event,
    throttle: Throttle | None = None,
) -> Reply:
    """Generate a reply to ``messages``, emitting Chunk messages and a final ReplyDone.

    Raises what ``engine.generate`` raises (RaasError for user errors) before
    any text when the prompt cannot be served."""
    throttle = throttle or Throttle()
    tags = engine.think_tags
    splitter = ThinkSplitter(tags, starts_in_thinking(engine.render(messages), tags))
    think_buf: list[str] = []
    answer_buf: list[str] = []
    last_emit = last_panel = None
    n_at_panel = n = 0

    def on_event(ev) -> bool:
        nonlocal last_emit, last_panel, n_at_panel, n
        now = time.perf_counter()
        if ev.token is not None:
            n += 1
            if last_emit is None:
                last_emit = last_panel = now
        th, an = splitter.feed(ev.text)
        think_buf.append(th)
        answer_buf.append(an)
        if ev.done or stop.is_set():
            return True  # a stop closes the generator here: the reason is "cancelled"
        if last_emit is not None and now - last_emit >= throttle.text_interval:
            last_emit = now
            state = None
            if now - last_panel >= throttle.panel_interval:
                rate = (n - n_at_panel) / (now - last_panel) if now > last_panel and n > n_at_panel else None
                last_panel, n_at_panel = now, n
                state = PanelState.from_engine(engine, ev.stats, generated=n, tok_per_s=rate, status="generating")
            emit(Chunk("".join(think_buf), "".join(answer_buf), state))
            think_buf.clear()
            answer_buf.clear()
        return False

    done = collect(engine.generate(messages, sampling), on_event)
    th, an = splitter.flush()
    think_buf.append(th)
    answer_buf.append(an)
    reply = Reply(
        text=done.text, answer=strip_thinking(done.text, tags), finish_reason=done.finish_reason,
        generated=done.tokens, tok_per_s_wall=done.tok_per_s_wall,
        tok_per_s_engine=done.stats.tok_per_s if done.stats is not None else 0.0,
        evictions=done.stats.cache.evictions if done.stats is not None else 0,
    )
    status = "stopped" if done.finish_reason == "cancelled" else "idle"
    state = PanelState.from_engine(engine, None, generated=done.tokens, status=status)
    if any(think_buf) or any(answer_buf):
        emit(Chunk("".join(think_buf), "".join(answer_buf), state))
    emit(ReplyDone(reply, state))
    return reply

"""Messages the engine's worker thread posts to the app.

Decision: the worker never touches widgets; it posts these (``post_message``
is thread-safe and does not wait), and the app's handlers update the UI.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from raas_local.tui.state import PanelState


class EngineReady(Message):
    """The model is loaded (or reconfigured) and idle."""

    def __init__(self, state: PanelState, note: str | None = None) -> None:
        super().__init__()
        self.state, self.note = state, note


class EngineFailed(Message):
    """An engine operation failed; ``message`` is one line for a notification."""

    def __init__(self, message: str, during: str) -> None:
        super().__init__()
        self.message, self.during = message, during


class Chunk(Message):
    """A batch of streamed text and, when the panel is due, the cache as it is after it."""

    def __init__(self, thinking: str, answer: str, state: PanelState | None) -> None:
        super().__init__()
        self.thinking, self.answer, self.state = thinking, answer, state


@dataclass(frozen=True)
class Reply:
    text: str             # everything generated, thinking included
    answer: str           # what history keeps (thinking removed)
    finish_reason: str    # "stop", "length" or "cancelled"
    generated: int
    tok_per_s_wall: float  # first token to last, as the user waited for it
    tok_per_s_engine: float
    evictions: int


class ReplyDone(Message):
    def __init__(self, reply: Reply, state: PanelState) -> None:
        super().__init__()
        self.reply, self.state = reply, state

"""Thinking blocks: the one place that knows where a reply's thinking is.

The engine drops a finished block from its cache (``think_span``), the chat
shows thinking and answer apart as they stream (``ThinkSplitter``) and keeps
replies without it (``strip_thinking``), and solve looks for the answer after
it (``answer_region``).

Decisions:
- Tags may arrive split across tokens ("<thi" + "nk>"), so the splitter holds
  back any tail that could be the start of the tag it is waiting for and
  releases it once the next text shows it is not.
- Reasoning templates (DeepSeek-R1 distills, QwQ) often put the opening tag in
  the generation prompt, so the reply starts inside the thinking block with no
  opening tag; ``start_in_thinking=True`` covers that.
- Only the first thinking block is special (as the engine treats it); a second
  opening tag after the answer began is shown as answer text.
"""

from __future__ import annotations

DEFAULT_THINK_TAGS = ("<think>", "</think>")


def think_span(text: str, tags: tuple[str, str] | None) -> tuple[int, int] | None:
    """(start, end) of the first complete thinking block in ``text``, tags included, or None."""
    if not tags:
        return None
    open_tag, close_tag = tags
    i = text.find(open_tag)
    j = text.find(close_tag, i + len(open_tag)) if i >= 0 else -1
    return (i, j + len(close_tag)) if j >= 0 else None


def starts_in_thinking(prompt: str, tags: tuple[str, str] | None) -> bool:
    """Whether the rendered prompt already opened the thinking block (the reply starts inside it)."""
    return bool(tags) and prompt.rstrip().endswith(tags[0])


def answer_region(text: str, think_tags: tuple[str, str] = DEFAULT_THINK_TAGS) -> str:
    """The part of a reply that may hold its final answer: what follows the last closing tag when
    anything does, else the whole text (no thinking, thinking never closed, or nothing after it).
    A closing tag without an opening one counts (the template may open the block)."""
    close_tag = think_tags[1]
    idx = text.rfind(close_tag)
    if idx < 0:
        return text
    after = text[idx + len(close_tag):]
    return after if after.strip() else text


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Feed streamed text; get back (thinking, answer) deltas."""

    def __init__(self, tags: tuple[str, str] | None, start_in_thinking: bool = False):
        self.open_tag, self.close_tag = tags or (None, None)
        # state: "before" (may still open a block), "think", "answer" (no more tags)
        if not tags:
            self.state = "answer"
        else:
            self.state = "think" if start_in_thinking else "before"
        self._held = ""
        self._trim = False  # drop the newlines between the close tag and the answer

    @property
    def thinking(self) -> bool:
        return self.state == "think"

    def feed(self, text: str) -> tuple[str, str]:
        buf, self._held = self._held + text, ""
        think, answer = [], []
        while buf:
            if self.state == "answer":
                if self._trim:
                    buf = buf.lstrip("\n")
                    self._trim = not buf
                answer.append(buf)
                buf = ""
            elif self.state == "before":
                # whitespace before the tag is not an answer yet
                stripped = buf.lstrip()
                if not stripped:
                    self._held = buf
                    buf = ""
                elif stripped.startswith(self.open_tag):
                    self.state = "think"
                    buf = stripped[len(self.open_tag):]
                elif self.open_tag.startswith(stripped):
                    self._held = buf  # could still become the tag
                    buf = ""
                else:
                    self.state = "answer"
            else:  # think
                i = buf.find(self.close_tag)
                if i >= 0:
                    think.append(buf[:i])
                    buf = buf[i + len(self.close_tag):]
                    self.state, self._trim = "answer", True
                else:
                    keep = _partial_suffix(buf, self.close_tag)
                    think.append(buf[: len(buf) - keep])
                    self._held = buf[len(buf) - keep:]
                    buf = ""
        return "".join(think), "".join(answer)

    def flush(self) -> tuple[str, str]:
        """End of stream: release whatever was held back as what it would have been."""
        held, self._held = self._held, ""
        if self.state == "think":
            return held, ""
        return "", held.strip() if self.state == "before" else held


def strip_thinking(text: str, tags: tuple[str, str] | None) -> str:
    """The reply as history keeps it: the first complete thinking block removed,
    exactly as the engine removes it from its cached text (so the next turn's
    rendered prompt still starts with what the cache holds). An unfinished
    block (generation stopped while thinking) is dropped with everything after
    it; a lone closing tag (the template opened the block) drops all before it.
    In those two cases the text differs from the cache and the engine simply
    prefills the conversation again."""
    if not tags:
        return text
    span = think_span(text, tags)
    if span is not None:
        return text[: span[0]] + text[span[1]:]
    open_tag, close_tag = tags
    i, j = text.find(open_tag), text.find(close_tag)
    if i >= 0:
        return text[:i]
    if j >= 0:  # the template opened the block in the prompt
        return text[j + len(close_tag):]
    return text

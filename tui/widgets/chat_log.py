"""The conversation: user turns, streamed assistant turns, notes.

Decisions:
- Answers are Markdown fed through Textual's MarkdownStream: appends only
  re-parse the last block, and fragments that arrive while one is rendering
  are coalesced, so a long answer costs the same per update as a short one.
- Thinking goes in a Collapsible that is open while the model thinks and
  folds itself when the answer starts (the user can reopen it).
- Auto-scroll uses Textual's anchor: the log follows new text until the user
  scrolls up, and follows again once they scroll back to the bottom.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Collapsible, Markdown, Static


class UserTurn(Static):
    DEFAULT_CSS = """
    UserTurn {
        background: $primary 15%;
        border-left: tall $primary;
        padding: 0 1;
        margin: 1 0 0 0;
    }
    UserTurn.failed { border-left: tall $error; color: $text-muted; }
    """

    def __init__(self, text: str, **kw) -> None:
        super().__init__(Text(text), **kw)  # Text: user input is never markup
        self.text = text


class Note(Markdown):
    """Help and system notes, set apart from the conversation."""

    DEFAULT_CSS = """
    Note { margin: 1 0 0 0; padding: 0 1; border-left: tall $secondary; background: $secondary 10%; }
    """


class AssistantTurn(Vertical):
    DEFAULT_CSS = """
    AssistantTurn { height: auto; margin: 1 0 0 0; padding: 0 0 0 1; border-left: tall $success 60%; }
    AssistantTurn Collapsible { margin: 0; padding: 0; border-top: none; background: transparent; }
    AssistantTurn #thinking-md { color: $text-muted; margin: 0; padding: 0 1 0 0; }
    AssistantTurn #answer-md { margin: 0; padding: 0 1 0 0; }
    AssistantTurn .turn-footer { color: $text-muted; }
    """

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.thinking_text = ""
        self.answer_text = ""
        self._think_stream = None
        self._answer_stream = None
        self.finished = False

    def compose(self) -> ComposeResult:
        with Collapsible(title="Thinking…", collapsed=False, id="thinking"):
            yield Markdown(id="thinking-md")
        yield Markdown(id="answer-md")
        yield Static(Text("…"), classes="turn-footer", id="turn-footer")

    def on_mount(self) -> None:
        self.query_one("#thinking", Collapsible).display = False
        self._think_stream = Markdown.get_stream(self.query_one("#thinking-md", Markdown))
        self._answer_stream = Markdown.get_stream(self.query_one("#answer-md", Markdown))

    async def add(self, thinking: str, answer: str) -> None:
        if thinking:
            box = self.query_one("#thinking", Collapsible)
            if not box.display:
                box.display = True
            self.thinking_text += thinking
            await self._think_stream.write(thinking)
        if answer:
            if not self.answer_text and self.thinking_text:
                self.query_one("#thinking", Collapsible).collapsed = True
            self.answer_text += answer
            await self._answer_stream.write(answer)

    async def finish(self, footer: str) -> None:
        """Flush the streams and show the turn's figures."""
        self.finished = True
        for stream in (self._think_stream, self._answer_stream):
            if stream is not None:
                await stream.stop()
        if self.thinking_text:
            words = len(self.thinking_text.split())
            self.query_one("#thinking", Collapsible).title = f"Thought ({words} words)"
        self.query_one("#turn-footer", Static).update(Text(footer))


class ChatLog(VerticalScroll):
    DEFAULT_CSS = """
    ChatLog { padding: 0 1; }
    """

    def on_mount(self) -> None:
        self.anchor()

    async def add_user(self, text: str) -> UserTurn:
        turn = UserTurn(text)
        await self.mount(turn)
        self.scroll_end(animate=False)  # a new question re-anchors the log
        return turn

    async def add_assistant(self) -> AssistantTurn:
        turn = AssistantTurn()
        await self.mount(turn)
        self.scroll_end(animate=False)
        return turn

    async def add_note(self, markdown: str) -> Note:
        note = Note(markdown)
        await self.mount(note)
        self.scroll_end(animate=False)
        return note

    async def clear(self) -> None:
        await self.remove_children()

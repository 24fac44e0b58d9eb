"""The conversation widgets without the engine: streaming, thinking, auto-scroll."""

from __future__ import annotations

import asyncio

from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Collapsible

from raas_local.tui.widgets.chat_log import AssistantTurn, ChatLog

from tui_testutil import wait_until


class LogApp(App):
    def compose(self) -> ComposeResult:
        yield ChatLog(id="log")


async def stream(pilot, turn: AssistantTurn, lines: range) -> None:
    """Stream one paragraph per line, then wait until the last one is in the widget and laid out."""
    for i in lines:
        await turn.add("", f"line {i}\n\n")
        await pilot.pause()
    md = turn.query_one("#answer-md")
    await wait_until(pilot, lambda: f"line {lines[-1]}\n" in md.source, 10, what=f"line {lines[-1]} in the widget")
    await pilot.pause()


def test_thinking_block_streams_open_then_folds_when_the_answer_starts():
    async def go():
        app = LogApp()
        async with app.run_test(size=(80, 24)) as pilot:
            turn = await app.query_one(ChatLog).add_assistant()
            box = turn.query_one("#thinking", Collapsible)
            assert not box.display  # no thinking yet: no block
            await turn.add("First, 17*20 = 340.", "")
            await wait_until(pilot, lambda: box.display, 10, what="the thinking block")
            assert not box.collapsed
            await turn.add(" Then 17*3 = 51.", "")
            await turn.add("", "**391**")
            await wait_until(pilot, lambda: box.collapsed, 10, what="the block folded once the answer began")
            await turn.finish("done")
            assert turn.thinking_text == "First, 17*20 = 340. Then 17*3 = 51."
            assert turn.answer_text == "**391**"
            assert box.title == "Thought (8 words)"
            assert turn.query_one("#answer-md").source == "**391**"

    asyncio.run(go())


def test_auto_scroll_follows_stops_when_scrolled_up_and_resumes_at_the_bottom():
    async def go():
        app = LogApp()
        async with app.run_test(size=(80, 24)) as pilot:
            log = app.query_one(ChatLog)
            turn = await log.add_assistant()
            await stream(pilot, turn, range(30))
            await wait_until(pilot, lambda: log.max_scroll_y > 0 and log.scroll_y == log.max_scroll_y, 10,
                             what="the log following the stream")

            # the user scrolls up with the wheel: the log stays where they put it
            for _ in range(5):
                log.post_message(events.MouseScrollUp(log, 0, 0, 0, 0, 0, False, False, False))
            await wait_until(pilot, lambda: log.scroll_y < log.max_scroll_y, 10, what="the scroll up")
            await pilot.pause()  # the rest of the wheel events
            held, bottom = log.scroll_y, log.max_scroll_y
            await stream(pilot, turn, range(30, 40))
            await wait_until(pilot, lambda: log.max_scroll_y > bottom, 10, what="the new lines laid out")
            assert log.scroll_y == held

            # back at the bottom (End key): following again
            log.focus()
            await pilot.press("end")
            await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y, 10, what="the bottom")
            await stream(pilot, turn, range(40, 50))
            await wait_until(pilot, lambda: log.scroll_y == log.max_scroll_y, 5, what="following again")

    asyncio.run(go())

"""Pilot tests of the chat app with the real engine on the embedded model.

Each test drives ChatApp headless (run_test) and waits on the app's own state
(phase, replies, panel state) with bounded waits; generation lengths are kept
small so a test takes a few seconds at ~50 tok/s.
"""

from __future__ import annotations

import asyncio

import pytest

from raas_local.tui.app import ChatApp
from raas_local.sampling import Sampling
from raas_local.tui.widgets.chat_log import AssistantTurn, Note, UserTurn

from tui_testutil import record_notifications, wait_until, widget_text

SIZE = (120, 40)


def make_app(engine, **opts) -> ChatApp:
    o = dict(max_tokens=300, temperature=0.0, ignore_eos=True) | opts
    return ChatApp(engine=engine, options=Sampling(**o), model_label="test model")


async def submit(pilot, text: str) -> None:
    inp = pilot.app.query_one("#prompt")
    inp.value = text
    await pilot.press("enter")


async def ready(pilot):
    await wait_until(pilot, lambda: pilot.app.phase == "idle", 30, what="engine idle")


def test_answer_streams_and_panel_follows_the_cache(engine):
    """Budget 128 and 300 tokens: pages get evicted, and the panel shows it while streaming."""

    async def go():
        app = make_app(engine, max_tokens=300)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            seen = []  # panel states observed while generating
            await submit(pilot, "What is 2+2?")
            await wait_until(pilot, lambda: app.phase == "generating", 5, what="generation start")
            while app.phase == "generating":
                seen.append(app.panel.state)
                await pilot.pause(0.05)
            await ready(pilot)

            reply = app.replies[-1]
            assert reply.finish_reason == "length" and reply.generated == 300
            turn = app.query_one(AssistantTurn)
            assert turn.answer_text.strip() and turn.answer_text == reply.answer
            assert app.history == [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": reply.answer}]

            s = app.panel.state
            assert s.evictions > 0 and reply.evictions == s.evictions
            assert 0 < s.used <= 128 and s.pinned > 0 and s.pages
            assert s.newest_pos >= 300 and s.step == 300
            # live: the panel moved during the run, not only at the end (300 tokens: long enough for
            # several throttled snapshots on a busy machine; 160 saw only two)
            positions = {st.newest_pos for st in seen if st.status == "generating"}
            assert len(positions) >= 3, positions
            assert any(0 < st.evictions < s.evictions for st in seen)
            # the widgets show the numbers
            panel_text = widget_text(app.query_one("#panel-pages"))
            assert f"Pages {len(s.pages)} · evicted {s.evictions}" in panel_text
            assert f"position {s.newest_pos}" in widget_text(app.query_one("#panel-pos"))
            assert f"{reply.generated} tokens" in widget_text(turn.query_one("#turn-footer"))

    asyncio.run(go())


def test_budget_command_changes_the_panel(engine):
    async def go():
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            assert "budget 128" in widget_text(app.query_one("#panel-config"))
            await submit(pilot, "/budget 64")
            await wait_until(pilot, lambda: app.phase == "idle" and app.panel.state.budget == 64, 30, what="budget 64")
            assert engine.policy.budget == 64 and engine.policy.kind == "raas"
            assert "budget 64" in widget_text(app.query_one("#panel-config"))
            assert "free 64" in widget_text(app.query_one("#budget-bar"))
            assert app.query_one("#prompt").value == ""

    asyncio.run(go())


def test_policy_command_and_bad_values(engine):
    async def go():
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            notes = record_notifications(app)
            await ready(pilot)
            await submit(pilot, "/policy bogus")
            await submit(pilot, "/budget 8")      # below two pages
            await submit(pilot, "/budget x")
            await wait_until(pilot, lambda: sum(sev == "error" for sev, _ in notes) >= 3, 10, what="three errors")
            errors = [m for sev, m in notes if sev == "error"]
            assert any("unknown policy 'bogus'" in m for m in errors)
            assert any("below two pages" in m for m in errors)
            assert any("whole number" in m for m in errors)
            assert engine.policy.budget == 128
            await submit(pilot, "/policy dense")
            await wait_until(pilot, lambda: app.phase == "idle" and app.panel.state.policy == "dense", 30, what="dense")
            assert "KV cache · dense" in widget_text(app.query_one("#panel-title"))
            assert "no pages" in widget_text(app.query_one("#page-map"))

    asyncio.run(go())


def test_help_command_shows_help(engine):
    async def go():
        app = make_app(engine)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await submit(pilot, "/help")
            await wait_until(pilot, lambda: app.query(Note), 10, what="the help note")
            note = app.query_one(Note)
            assert "/budget N" in note.source and "/policy NAME" in note.source
            await pilot.press("f1")
            await wait_until(pilot, lambda: len(app.query(Note)) == 2, 10, what="a second help note")

    asyncio.run(go())


def test_escape_stops_and_the_next_question_works(engine):
    async def go():
        app = make_app(engine, max_tokens=5000)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await submit(pilot, "Tell me a story.")
            await wait_until(pilot, lambda: app.panel.state.generated >= 20, 30, what="20 tokens")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.phase == "idle" and app.replies, 30, what="stop")
            first = app.replies[-1]
            assert first.finish_reason == "cancelled" and 20 <= first.generated < 5000
            assert "stopped" in widget_text(app.query(AssistantTurn).last().query_one("#turn-footer"))
            pinned_before = app.panel.state.pinned

            # a second turn: the engine is ready, only the new turn is prefilled and pinned
            app.options = Sampling(max_tokens=30, temperature=0.0, ignore_eos=True)
            await submit(pilot, "And then?")
            await wait_until(pilot, lambda: app.phase == "idle" and len(app.replies) == 2, 60, what="second reply")
            second = app.replies[-1]
            assert second.finish_reason == "length" and second.generated == 30
            assert [m["role"] for m in app.history] == ["user", "assistant", "user", "assistant"]
            assert app.panel.state.pinned > pinned_before
            assert len(app.query(UserTurn)) == 2

    asyncio.run(go())


def test_budget_too_small_for_the_prompt_is_an_error_and_the_app_stays_up(engine):
    async def go():
        app = make_app(engine, max_tokens=20)
        async with app.run_test(size=SIZE) as pilot:
            notes = record_notifications(app)
            await ready(pilot)
            await submit(pilot, "/budget 40")  # valid for raas (two pages) but the prompt needs 37 pinned cells
            await wait_until(pilot, lambda: app.phase == "idle" and app.panel.state.budget == 40, 30, what="budget 40")
            await submit(pilot, "What is 2+2?")
            await wait_until(pilot, lambda: any(s == "error" for s, _ in notes), 30, what="error notification")
            await ready(pilot)
            msg = next(m for s, m in notes if s == "error")
            assert "pinned KV cells" in msg and "--budget" in msg
            assert app.is_running and app.history == [] and not app.query(AssistantTurn)
            assert app.query_one(UserTurn).has_class("failed")

            await submit(pilot, "/budget 128")
            await wait_until(pilot, lambda: app.phase == "idle" and app.panel.state.budget == 128, 30, what="budget 128")
            await submit(pilot, "What is 2+2?")
            await wait_until(pilot, lambda: app.phase == "idle" and app.replies, 60, what="reply")
            assert app.replies[-1].generated == 20

    asyncio.run(go())


def test_new_chat_clears_log_history_and_cache(engine):
    async def go():
        app = make_app(engine, max_tokens=20)
        async with app.run_test(size=SIZE) as pilot:
            await ready(pilot)
            await submit(pilot, "Hi")
            await wait_until(pilot, lambda: app.phase == "idle" and app.replies, 60, what="reply")
            assert app.panel.state.used > 0
            await pilot.press("ctrl+n")
            await wait_until(pilot, lambda: app.phase == "idle" and app.panel.state.used == 0, 30, what="reset")
            assert app.history == [] and not app.query(UserTurn) and not app.query(AssistantTurn)
            assert app.panel.state.newest_pos == -1

    asyncio.run(go())


def test_model_that_fails_to_load_is_a_notification(tmp_path):
    from raas_local.engine import Engine

    bad = tmp_path / "nope.gguf"
    bad.write_bytes(b"not a gguf file at all")

    async def go():
        app = ChatApp(engine_factory=lambda: Engine(model=str(bad), n_threads=1), options=Sampling(max_tokens=5))
        notes = record_notifications(app)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: app.phase == "nomodel", 30, what="load failure")
            sev, msg = notes[-1]
            assert sev == "error" and "nope.gguf" in msg
            await submit(pilot, "Hello?")
            await wait_until(pilot, lambda: len(notes) >= 2, 10, what="a second notification")
            assert notes[-1] == ("error", "no model is loaded; restart with a valid MODEL")
            assert app.is_running and app.panel.state.status == "error"

    asyncio.run(go())

"""Layout snapshots (pytest-textual-snapshot). Deterministic by construction:
the app before any generation, and widgets fed fixed PanelState / turns, so
nothing depends on timing or on what the model writes.

Update after an intended layout change with:
    .venv/bin/python -m pytest -q tests/tui/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

from textual.app import App, ComposeResult

from raas_local.tui.app import ChatApp
from raas_local.sampling import Sampling
from raas_local.tui.state import PageView, PanelState
from raas_local.tui.widgets.cache_panel import CachePanel

from tui_testutil import wait_until

SIZE = (120, 40)

# a raas cache at budget 128 mid-chain: 37 pinned prompt cells, 6 decode pages
MID_CHAIN = PanelState(
    policy="raas", budget=128, page_size=16, refresh_ratio=0.5, evicts=True,
    used=125, pinned=37, decode_cells=88,
    pages=(PageView(53, 0, True), PageView(85, 3, True), PageView(165, 20, True),
           PageView(197, 70, True), PageView(213, 300, True), PageView(229, 0, False)),
    evictions=7, evicted_cells=112, newest_pos=236, step=200,
    kv_bytes=125 * 23040, kv_bytes_dense=237 * 23040, generated=200, tok_per_s=97.5, status="generating",
)
RATES = [88.0, 92.5, 101.0, 99.0, 60.0, 95.0, 97.0, 98.5, 94.0, 97.5]


class PanelOnly(App):
    CSS = "CachePanel { width: 40; height: 1fr; }"

    def compose(self) -> ComposeResult:
        yield CachePanel(id="cache-panel")

    def on_mount(self) -> None:
        panel = self.query_one(CachePanel)
        for r in RATES:
            panel.show(PanelState(tok_per_s=r))
        panel.show(MID_CHAIN)


async def _idle(pilot):
    # a blinking cursor makes the picture depend on the moment it is taken
    pilot.app.query_one("#prompt").cursor_blink = False
    await wait_until(pilot, lambda: pilot.app.phase == "idle", 30, what="engine idle")
    await pilot.pause()


def test_snapshot_chat_before_generation(snap_compare, engine):
    app = ChatApp(engine=engine, options=Sampling(max_tokens=8), model_label="SmolLM2-135M-Instruct (embedded)")
    assert snap_compare(app, terminal_size=SIZE, run_before=_idle)


def test_snapshot_cache_panel_mid_chain(snap_compare):
    assert snap_compare(PanelOnly(), terminal_size=(40, 30))


def test_snapshot_conversation_with_thinking(snap_compare, engine):
    """A finished turn (thinking folded, Markdown answer) and one still thinking (block open)."""
    app = ChatApp(engine=engine, options=Sampling(max_tokens=8), model_label="a reasoning model")

    async def run_before(pilot):
        await _idle(pilot)
        log = app.log_view
        await log.add_user("What is 17*23?")
        turn = await log.add_assistant()
        await turn.add("17*23 = 17*20 + 17*3 = 340 + 51.", "")
        await turn.add("", "17 × 23 = **391**.\n\n- 17·20 = 340\n- 17·3 = 51")
        await turn.finish("412 tokens · 97.5 tok/s · evicted 7 pages · done")
        await log.add_user("And 17*24?")
        turn2 = await log.add_assistant()
        await turn2.add("That is 391 + 17, so", "")
        for r in RATES:
            app.panel.show(PanelState(tok_per_s=r))
        app.panel.show(MID_CHAIN)
        md = turn2.query_one("#thinking-md")
        await wait_until(pilot, lambda: "That is 391 + 17" in md.source, 10, what="the second turn's thinking shown")
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)

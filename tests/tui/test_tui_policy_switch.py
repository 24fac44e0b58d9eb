"""/policy and /budget build the next policy object from the settings given so far."""

from __future__ import annotations

import asyncio

from raas_local.sampling import Sampling
from raas_local.tui.app import ChatApp

from tui_testutil import record_notifications, wait_until

SIZE = (120, 40)


async def submit(pilot, text: str) -> None:
    pilot.app.query_one("#prompt").value = text
    await pilot.press("enter")


def test_switching_kinds_keeps_the_budget_and_refuses_settings_a_kind_lacks(engine):
    async def go():
        app = ChatApp(engine=engine, options=Sampling(max_tokens=8), model_label="test model")
        async with app.run_test(size=SIZE) as pilot:
            notes = record_notifications(app)
            idle = lambda: app.phase == "idle"  # noqa: E731
            await wait_until(pilot, idle, 30, what="engine idle")
            await submit(pilot, "/budget 64")
            await wait_until(pilot, lambda: idle() and engine.policy.budget == 64, 30, what="budget 64")
            await submit(pilot, "/policy dense")
            await wait_until(pilot, lambda: idle() and engine.policy.kind == "dense", 30, what="dense")
            await submit(pilot, "/budget 32")  # dense has no budget: refused, nothing changes
            await pilot.pause(0.1)
            assert any("policy dense has no budget setting" in m for sev, m in notes if sev == "error")
            assert engine.policy.kind == "dense"
            await submit(pilot, "/policy h2o")  # the budget given before dense comes back
            await wait_until(pilot, lambda: idle() and engine.policy.kind == "h2o", 30, what="h2o")
            assert engine.policy.as_dict() == {"policy": "h2o", "budget": 64, "heavy_ratio": 0.5}
            assert app.panel.state.policy == "h2o" and app.panel.state.budget == 64

    asyncio.run(go())

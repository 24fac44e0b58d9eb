"""Helpers for tests/tui (a uniquely named module: tests/ has no packages)."""

from __future__ import annotations

import time


async def wait_until(pilot, pred, timeout: float = 60.0, step: float = 0.05, what: str = "condition"):
    """Let the app run until ``pred()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await pilot.pause(step)


def record_notifications(app) -> list[tuple[str, str]]:
    """Record (severity, message) of every notification the app raises."""
    seen: list[tuple[str, str]] = []
    original = app.notify

    def notify(message, *args, **kw):
        seen.append((kw.get("severity", "information"), str(message)))
        return original(message, *args, **kw)

    app.notify = notify  # instance attribute: the app's own self.notify calls land here
    return seen


def widget_text(widget) -> str:
    """Plain text a Static-like widget shows now."""
    r = widget.render()
    return getattr(r, "plain", None) or str(r)

"""The chat in a real terminal: tmux runs `raas-local chat`, we type, read the screen.

Bounded waits everywhere; the tmux session is killed in a finally. One CPU
thread (-t 1) for the same reason as conftest.py: steady speed on a small
shared machine.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

RAAS_LOCAL = Path(sys.executable).with_name("raas-local")


def tmux(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=10)


def capture(name: str) -> str:
    return tmux("capture-pane", "-p", "-t", name).stdout


def wait_for(name: str, pred, timeout: float, what: str) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(name)
        if pred(screen):
            return screen
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; screen:\n{screen}")


def test_chat_in_tmux(tmp_path):
    if not RAAS_LOCAL.exists():
        pytest.skip(f"{RAAS_LOCAL} not installed")
    name = f"raas-tui-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit"
    cmd = f"{shlex.quote(str(RAAS_LOCAL))} chat --budget 128 -n 200 --temp 0 -t 1"
    # no 2> redirect: Textual draws on stderr
    shell = f"{cmd}; echo $? > {shlex.quote(str(exit_file))}"
    r = tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40", "sh", "-c", shell)
    assert r.returncode == 0, r.stderr
    try:
        wait_for(name, lambda s: "KV cache · raas" in s and "idle" in s, 60, "the app and a loaded model")
        tmux("send-keys", "-t", name, "What is 2+2?", "Enter")
        screen = wait_for(name, lambda s: "tokens ·" in s and "tok/s" in s, 60, "the answer's footer")
        assert "What is 2+2?" in screen
        assert "budget 128 · page 16" in screen
        assert "pinned 0" not in screen  # the prompt got pinned
        assert "position –" not in screen and "step 0" not in screen
        assert "KV memory" in screen and "of dense)" in screen
        assert "Esc" in screen or "esc" in screen  # the footer's key bindings
        # the answer's text is on screen above its footer line
        lines = screen.splitlines()
        footer_at = next(i for i, l in enumerate(lines) if "tokens ·" in l)
        question_at = next(i for i, l in enumerate(lines) if "What is 2+2?" in l)
        assert any(l[:80].strip(" ▊▏") for l in lines[question_at + 1 : footer_at]), screen

        tmux("send-keys", "-t", name, "C-q")
        deadline = time.monotonic() + 20
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exit_file.exists(), "the app did not quit on Ctrl+Q"
        assert exit_file.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", name)


def test_run_without_a_prompt_on_a_terminal_opens_the_chat(tmp_path):
    """`raas-local run` with no -p, stdin and stdout a terminal: the chat app, not a wait on stdin."""
    if not RAAS_LOCAL.exists():
        pytest.skip(f"{RAAS_LOCAL} not installed")
    name = f"raas-run-{uuid.uuid4().hex[:8]}"
    exit_file = tmp_path / "exit"
    shell = f"{shlex.quote(str(RAAS_LOCAL))} run --budget 96 -t 1; echo $? > {shlex.quote(str(exit_file))}"
    r = tmux("new-session", "-d", "-s", name, "-x", "120", "-y", "40", "sh", "-c", shell)
    assert r.returncode == 0, r.stderr
    try:
        screen = wait_for(name, lambda s: "KV cache · raas" in s and "idle" in s, 60, "the chat app and a loaded model")
        assert "budget 96" in screen  # run's own flags reach the chat
        tmux("send-keys", "-t", name, "C-q")
        deadline = time.monotonic() + 20
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exit_file.exists() and exit_file.read_text().strip() == "0"
    finally:
        tmux("kill-session", "-t", name)

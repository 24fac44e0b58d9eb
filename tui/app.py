"""ChatApp: the chat TUI (``raas-local chat``).

Decisions:
- Every engine call (load, generate, set_policy, reset) runs in a thread
  worker, one at a time: the engine is not thread-safe, and the UI must never
  wait on the model. ``phase`` (loading / idle / generating / busy / nomodel)
  is changed only on the UI thread, when a job starts or when its result
  message arrives, so two engine jobs never overlap.
- The worker posts messages (messages.py); the UI never reads the engine.
- History holds the turns as the engine's template should see them: the
  user's text and each reply with its thinking removed. The engine prefills
  only the new part and pins it. Changing the policy or budget clears the
  cache but keeps the conversation; the next turn re-reads it (and a budget
  too small for it is reported like any other policy error).
- Errors the user can cause (RaasError: model fails to load, budget too small)
  become error notifications; the app stays up.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import replace
from typing import Awaitable, Callable

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input

from raas_local.errors import RaasError
from raas_local.tui.commands import CommandError, help_text, is_command, parse_command
from raas_local.sampling import Sampling
from raas_local.tui.generation import stream_reply
from raas_local.tui.messages import Chunk, EngineFailed, EngineReady, Reply, ReplyDone
from raas_local.tui.state import PanelState
from raas_local.tui.throttle import Throttle
from raas_local.tui.widgets.cache_panel import CachePanel
from raas_local.tui.widgets.chat_log import AssistantTurn, ChatLog, UserTurn


class ChatApp(App):
    TITLE = "raas-local chat"
    CSS_PATH = "app.tcss"
    BINDINGS = [
        Binding("escape", "stop", "Stop"),
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        engine=None,
        engine_factory: Callable[[], object] | None = None,
        options: Sampling | None = None,
        model_label: str | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        """Pass a ready ``engine`` (it stays the caller's to close) or an
        ``engine_factory`` run in a worker at start-up (its engine is closed
        by ``close_engine``)."""
        super().__init__()
        if engine is None and engine_factory is None:
            raise ValueError("ChatApp needs an engine or an engine_factory")
        self.engine = engine
        self._factory = engine_factory
        self.owns_engine = engine is None
        self.options = options or Sampling()
        # every policy setting seen so far (flags, /budget): /policy carries them to the next kind
        self.settings: dict = {}
        if engine is not None:
            self._remember(engine.policy)
        self.model_label = model_label
        self.throttle = throttle or Throttle()
        self.history: list[dict] = []
        self.phase = "loading" if engine is None else "busy"
        self.replies: list[Reply] = []
        self.current_turn: AssistantTurn | None = None
        self._current_user: UserTurn | None = None
        self._stop = threading.Event()
        self._idle = threading.Event()   # set while no engine job runs (shutdown waits on it)
        self._idle.set()
        self._after_reply: list[Callable[[], Awaitable[None]]] = []

    # -- layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="◆")
        with Horizontal(id="main"):
            with Vertical(id="chat-column"):
                yield ChatLog(id="log")
                yield Input(placeholder="Ask something…  (/help for commands)", id="prompt")
            yield CachePanel(id="cache-panel")
        yield Footer()

    @property
    def log_view(self) -> ChatLog:
        return self.query_one("#log", ChatLog)

    @property
    def panel(self) -> CachePanel:
        return self.query_one("#cache-panel", CachePanel)

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()
        if self.engine is None:
            self.sub_title = f"loading {self.model_label or 'model'}…"
            self.panel.show(replace(self.panel.state, status="loading"))
            self._run_job(self._load_job, "load", phase="loading")
        else:
            self.sub_title = self._model_name()
            self._run_job(self._state_job(None), "start", phase="busy")

    def _model_name(self) -> str:
        path = getattr(self.engine, "model_path", None)
        return self.model_label or (path.name if path is not None else "")

    # -- engine jobs (worker thread) -------------------------------------------

    def _run_job(self, job: Callable[[], None], during: str, phase: str) -> None:
        self.phase = phase
        self._idle.clear()
        self._engine_worker(job, during)

    @work(thread=True, exit_on_error=False, group="engine")
    def _engine_worker(self, job: Callable[[], None], during: str) -> None:
        try:
            job()
        except RaasError as e:
            self.post_message(EngineFailed(str(e), during))
        except Exception as e:  # a bug must not take the chat down either
            self.post_message(EngineFailed(f"{type(e).__name__}: {e}", during))
        finally:
            self._idle.set()

    def _load_job(self) -> None:
        self.engine = self._factory()
        self._remember(self.engine.policy)
        self.post_message(EngineReady(PanelState.from_engine(self.engine), note="loaded"))

    def _state_job(self, note: str | None) -> Callable[[], None]:
        def job() -> None:
            self.post_message(EngineReady(PanelState.from_engine(self.engine), note=note))
        return job

    # -- results (UI thread) ------------------------------------------------------

    @on(EngineReady)
    def _engine_ready(self, msg: EngineReady) -> None:
        self.phase = "idle"
        if msg.note == "loaded":
            self.sub_title = self._model_name()
        elif msg.note:
            self.notify(msg.note, timeout=4)
        self.panel.show(msg.state)

    @on(EngineFailed)
    async def _engine_failed(self, msg: EngineFailed) -> None:
        if msg.during == "load":
            self.phase = "nomodel"
            self.sub_title = "no model"
            self.panel.show(replace(self.panel.state, status="error"))
            self.notify(msg.message, title="Model failed to load", severity="error", timeout=10)
            return
        self.phase = "idle"
        if msg.during == "generate":
            # the turn never happened: drop it from history so the next one can go ahead
            if self.history and self.history[-1]["role"] == "user":
                self.history.pop()
            if self.current_turn is not None:
                await self.current_turn.remove()
                self.current_turn = None
            if self._current_user is not None:
                self._current_user.add_class("failed")
            self.panel.show(replace(self.panel.state, status="idle"))
        self.notify(msg.message, title="Error", severity="error", timeout=10)
        await self._run_after_reply()

    @on(Chunk)
    async def _chunk(self, msg: Chunk) -> None:
        if self.current_turn is not None and (msg.thinking or msg.answer):
            await self.current_turn.add(msg.thinking, msg.answer)
        if msg.state is not None:
            self.panel.show(msg.state)
        self.throttle.observe()

    @on(ReplyDone)
    async def _reply_done(self, msg: ReplyDone) -> None:
        r = msg.reply
        self.replies.append(r)
        self.history.append({"role": "assistant", "content": r.answer})
        self.panel.show(msg.state)
        if self.current_turn is not None:
            what = {"stop": "done", "length": "max tokens", "cancelled": "stopped"}.get(r.finish_reason, r.finish_reason)
            await self.current_turn.finish(
                f"{r.generated} tokens · {r.tok_per_s_wall:.1f} tok/s · evicted {r.evictions} pages · {what}"
            )
            self.current_turn = None
        self.phase = "idle"
        await self._run_after_reply()

    async def _run_after_reply(self) -> None:
        """Run what was asked during the reply (Ctrl+N while generating)."""
        pending, self._after_reply = self._after_reply, []
        for fn in pending:
            await fn()

    # -- input -----------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def _submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if is_command(text):
            event.input.value = ""
            await self.run_command(text)
            return
        if self.phase == "generating":
            self.notify("still answering; press Esc to stop it first", severity="warning")
            return
        if self.phase == "nomodel":
            self.notify("no model is loaded; restart with a valid MODEL", severity="error")
            return
        if self.phase != "idle":
            self.notify("the model is not ready yet", severity="warning")
            return
        event.input.value = ""
        await self.ask(text)

    async def ask(self, text: str) -> None:
        """Send a user turn and stream the reply (the app must be idle)."""
        self.history.append({"role": "user", "content": text})
        self._current_user = await self.log_view.add_user(text)
        self.current_turn = await self.log_view.add_assistant()
        messages = list(self.history)
        self._stop.clear()
        self.panel.show(replace(self.panel.state, status="generating", generated=0, tok_per_s=None))
        self.throttle.start()
        self._run_job(
            lambda: stream_reply(self.engine, messages, self.options, self.post_message, self._stop, self.throttle),
            "generate", phase="generating",
        )

    async def run_command(self, text: str) -> None:
        try:
            cmd = parse_command(text)
        except CommandError as e:
            self.notify(str(e), severity="error")
            return
        if cmd.name == "help":
            await self.action_help()
        elif cmd.name == "quit":
            await self.action_quit()
        elif cmd.name == "new":
            await self.action_new_chat()
        elif cmd.name == "budget":
            self.change_policy(budget=cmd.value)
        else:
            self.change_policy(kind=cmd.value)

    def change_policy(self, kind: str | None = None, **changes) -> None:
        """Another kind (with the settings given so far that it takes) or other settings of this one."""
        from raas_local.policies import make

        if self.phase != "idle":
            self.notify("wait for the model to be idle (Esc stops a reply)", severity="warning")
            return
        try:  # validates: PolicyError on a bad value or a setting the kind lacks
            policy = make(kind, **self.settings) if kind else self.engine.policy.with_(**changes)
        except RaasError as e:
            self.notify(str(e), severity="error")
            return
        self._remember(policy)
        note = f"policy {policy.tag}: cache cleared"
        if self.history:
            note += "; the conversation is re-read next turn"

        def job() -> None:
            self.engine.set_policy(policy)
            self.post_message(EngineReady(PanelState.from_engine(self.engine), note=note))

        self.panel.show(replace(self.panel.state, status="busy"))
        self._run_job(job, "policy", phase="busy")

    def _remember(self, policy) -> None:
        """Keep a policy's settings, so that switching kinds and back keeps them."""
        self.settings.update(dataclasses.asdict(policy))

    # -- actions -----------------------------------------------------------------

    def action_stop(self) -> None:
        """Esc: stop the reply at the next token; the engine stays ready."""
        if self.phase == "generating":
            self._stop.set()
            self.panel.show(replace(self.panel.state, status="stopping"))

    async def action_new_chat(self) -> None:
        if self.phase == "generating":
            self._stop.set()
            self._after_reply.append(self.action_new_chat)
            return
        if self.phase != "idle":
            self.notify("the model is not ready yet", severity="warning")
            return
        self.history.clear()
        await self.log_view.clear()
        self.current_turn = self._current_user = None

        def job() -> None:
            self.engine.reset()
            self.post_message(EngineReady(PanelState.from_engine(self.engine), note="new conversation"))

        self._run_job(job, "reset", phase="busy")

    async def action_help(self) -> None:
        await self.log_view.add_note(help_text())

    async def action_quit(self) -> None:
        self._stop.set()  # a running reply ends at its next token
        self.exit()

    # -- shutdown ------------------------------------------------------------------

    def close_engine(self, timeout: float = 30.0) -> None:
        """After the app exits: wait for the engine job to end, then close an engine we loaded."""
        self._stop.set()
        self._idle.wait(timeout)
        if self.owns_engine and self.engine is not None and self._idle.is_set():
            self.engine.close()
            self.engine = None

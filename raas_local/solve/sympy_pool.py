"""Run sympy checks in a child process with a hard timeout.

sympy's ``simplify`` (or merely evaluating ``9^{9^9}``) can run for minutes.
A thread cannot be stopped, and ``signal.alarm`` is Unix-only, main-thread
only and cannot interrupt C code.  So the symbolic step runs in a separate
process that we can kill:

* one worker process (the solve loop checks one answer at a time), started
  lazily on the first symbolic check and reused after that;
* it is a plain ``python -c`` subprocess (:mod:`raas_local.solve.sympy_worker`)
  talking JSON lines over pipes, not a ``multiprocessing`` pool: a spawned
  pool re-imports the caller's ``__main__`` (an unguarded script would run
  again, model loading and all), and forking a process that holds threads
  (rich's refresh thread, llama.cpp's workers) can deadlock;
* startup (launching and importing sympy) is waited for separately, with a
  generous limit, so that it never eats into a check's timeout;
* on timeout the worker is killed and the next check starts a fresh one, so
  the pool stays usable;
* the worker has its own session (terminal Ctrl-C goes to the parent only);
  it exits when its stdin closes, and caps its own CPU time per check
  (RLIMIT_CPU) so that, should the parent die mid-check, it does not run on;
* a worker found dead (killed from outside) is replaced once per check;
* :func:`shutdown` ends it; it is also registered with ``atexit``.

Calls are serialised by a lock (one worker, one check at a time).
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import subprocess
import sys
import threading

__all__ = ["SympyPool", "WorkerError", "default_pool", "shutdown"]

STARTUP_TIMEOUT = 120.0  # seconds to start the worker and import sympy

_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
    "from raas_local.solve.sympy_worker import main; main()"
)


class WorkerError(RuntimeError):
    """The worker failed to start, died, or could not evaluate a request."""


class _Worker:
    def __init__(self) -> None:
        kwargs = {"start_new_session": True} if os.name == "posix" else {}
        self.proc = subprocess.Popen(
            # The child gets the parent's sys.path (as multiprocessing's spawn
            # does), so it imports this very package and the same sympy,
            # installed or not, whatever the current directory holds.
            [sys.executable, "-c", _BOOT, json.dumps(sys.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
            **kwargs,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        # A reader thread only moves lines from the pipe to a queue, so that
        # waiting for an answer can time out portably (select() does not
        # work on pipes on Windows).  It does no sympy work.
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line)
        self.lines.put(None)  # EOF: the worker is gone

    def receive(self, timeout: float) -> dict | None:
        """The next message, or None on timeout; WorkerError if it died."""
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if line is None:
            raise WorkerError("sympy worker exited unexpectedly")
        return json.loads(line)

    def send(self, msg: dict) -> None:
        try:
            self.proc.stdin.write(json.dumps(msg) + "\n")  # type: ignore[union-attr]
            self.proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, OSError) as exc:
            raise WorkerError(f"sympy worker is gone: {exc}") from exc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass


class SympyPool:
    """A lazily started sympy worker whose checks have a hard timeout."""

    def __init__(self) -> None:
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self.restarts = 0  # how many times a hung worker was killed

    @property
    def started(self) -> bool:
        return self._worker is not None

    def _ensure(self) -> _Worker:
        if self._worker is None:
            w = _Worker()
            try:
                msg = w.receive(STARTUP_TIMEOUT)
            except BaseException:
                w.kill()
                raise
            if not (msg and msg.get("ready")):
                w.kill()
                raise WorkerError("sympy worker did not start in time")
            self._worker = w
        return self._worker

    def _kill(self) -> None:
        w, self._worker = self._worker, None
        if w is not None:
            w.kill()

    def compare(self, a: str, b: str, either_sign: bool, timeout: float) -> tuple[bool, bool]:
        """``(equal, timed_out)`` for two sympy-syntax strings.

        Raises WorkerError if sympy could not evaluate them or the worker died.
        """
        with self._lock:
            for attempt in (1, 2):
                w = self._ensure()
                try:
                    w.send({"a": a, "b": b, "either_sign": either_sign, "timeout": timeout})
                    msg = w.receive(timeout)
                    break
                except WorkerError:
                    self._kill()
                    if attempt == 2:
                        raise
                    # it died (killed from outside, out of memory): one fresh try
                except BaseException:
                    self._kill()  # Ctrl-C mid-check: leave no half-done request queued
                    raise
            if msg is None:
                self._kill()  # it may be stuck in C code: only killing stops it
                self.restarts += 1
                return False, True
            if "error" in msg:
                raise WorkerError(msg["error"])
            return bool(msg["ok"]), False

    def shutdown(self) -> None:
        with self._lock:
            self._kill()


default_pool = SympyPool()


def shutdown() -> None:
    """Stop the shared worker (a later check starts a new one)."""
    default_pool.shutdown()


atexit.register(shutdown)

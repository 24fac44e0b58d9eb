"""Never-lose-work result files, and the metrics computed from them.

``OUT`` is JSONL, one record per solved problem:
``{id, gold, pred_text, extracted, correct, generated_tokens, peak_kv_cells,
evictions, seconds}`` (extra keys allowed; the runner adds ``timed_out``).

* Each record is written with one ``write`` of its line plus ``\\n``, then
  flushed and fsynced, so a crash loses at most the problem in flight.
* Reopening ``OUT`` reads the ids already done (resume).  A torn last line
  (invalid JSON, as a crash mid-write leaves) is truncated away before
  anything is appended, so the file stays valid JSONL.  A last line that *is*
  a complete JSON object but lacks its ``\\n`` is kept and completed: it holds
  a whole record, and dropping it would lose work.
* An invalid line anywhere *but* the end cannot come from us; we refuse to
  touch such a file (InputError naming the line) rather than guess.

Metrics files are written atomically (temp file in the same folder, fsync,
``os.replace``): readers see the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

from raas_local.errors import InputError

__all__ = [
    "RECORD_KEYS",
    "ResultWriter",
    "compute_metrics",
    "write_metrics",
    "read_records",
]

RECORD_KEYS = (
    "id", "gold", "pred_text", "extracted", "correct",
    "generated_tokens", "peak_kv_cells", "evictions", "seconds",
)


def _scan(path: Path) -> tuple[list[dict], int, bool]:
    """``(records, good_bytes, needs_newline)`` of an existing results file.

    ``good_bytes`` is where the valid content ends (the file is cut there);
    ``needs_newline`` says the last kept record has no trailing ``\\n``.
    """
    data = path.read_bytes()
    records: list[dict] = []
    pos = 0
    lines = data.split(b"\n")
    for i, raw in enumerate(lines):
        last = i == len(lines) - 1  # after the final "\n" this is b""
        end = pos + len(raw) + (0 if last else 1)
        if raw.strip():
            try:
                obj = json.loads(raw.decode("utf-8"))
                if not isinstance(obj, dict) or "id" not in obj:
                    raise ValueError("not a record")
            except (ValueError, UnicodeDecodeError):
                is_tail = all(not rest.strip() for rest in lines[i + 1:])
                if is_tail:
                    return records, pos, False  # torn last line: cut it off
                raise InputError(
                    f"{path}:{i + 1}: not a valid result record; fix or remove that line"
                ) from None
            records.append(obj)
            if last:
                return records, end, True
        pos = end
    return records, len(data), False


def read_records(path: str | Path) -> list[dict]:
    """The complete records in a results file (a torn last line is ignored)."""
    path = Path(path)
    return _scan(path)[0] if path.exists() else []


@contextmanager
def _ctrl_c_deferred():
    """Hold a Ctrl-C until the line on disk and the in-memory record agree.

    Without this, a KeyboardInterrupt right after the fsync left the record on disk but not in
    ``records``, and the interrupt line counted one problem too few.  Only the main thread can
    install a handler; elsewhere Python raises no KeyboardInterrupt anyway.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple] = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            if callable(previous):
                previous(*caught[0])
            elif previous == signal.SIG_DFL:
                os.kill(os.getpid(), signal.SIGINT)


class ResultWriter:
    """Append-only JSONL writer that resumes where a previous run stopped."""

    def __init__(self, out_path: str | Path) -> None:
        self.path = Path(out_path)
        self.records: list[dict] = []
        self.repaired = False  # a torn last line was cut off on open
        if self.path.exists():
            records, good, needs_newline = _scan(self.path)
            self.records = records
            size = self.path.stat().st_size
            if good < size:
                with open(self.path, "r+b") as f:
                    f.truncate(good)
                    f.flush()
                    os.fsync(f.fileno())
                self.repaired = True
            if needs_newline:
                with open(self.path, "ab") as f:
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done_ids: set[str] = {str(r["id"]) for r in self.records}
        self._f = open(self.path, "ab")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record durably (write, flush, fsync)."""
        if "id" not in record:
            raise ValueError("a result record needs an 'id'")
        record = dict(record, id=str(record["id"]))
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with _ctrl_c_deferred():
            self._f.write(line.encode("utf-8"))  # one write: a crash tears at most this line
            self._f.flush()
            os.fsync(self._f.fileno())
            self.records.append(record)
            self.done_ids.add(record["id"])

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _num(x: Any) -> float | None:
    return x if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def compute_metrics(
    records: Iterable[dict], policy: str | None, budget: int | None, model: str | None
) -> dict[str, Any]:
    """Summary of a run.

    ``accuracy`` = correct / n; ``answered`` counts records whose ``extracted``
    is not None; ``timeouts`` counts ``timed_out`` records; ``peak_kv_cells``
    is the max over records; ``tok_per_s`` = total generated tokens / total
    seconds.  Averages and rates are None when undefined (n == 0, no time).
    """
    recs = list(records)
    n = len(recs)
    correct = sum(1 for r in recs if r.get("correct") is True)
    tokens = [v for r in recs if (v := _num(r.get("generated_tokens"))) is not None]
    seconds = [v for r in recs if (v := _num(r.get("seconds"))) is not None]
    peaks = [v for r in recs if (v := _num(r.get("peak_kv_cells"))) is not None]
    total_s = sum(seconds)
    return {
        "accuracy": correct / n if n else None,
        "correct": correct,
        "answered": sum(1 for r in recs if r.get("extracted") is not None),
        "n": n,
        "timeouts": sum(1 for r in recs if r.get("timed_out")),
        "mean_generated_tokens": sum(tokens) / len(tokens) if tokens else None,
        "peak_kv_cells": max(peaks) if peaks else None,
        "tok_per_s": sum(tokens) / total_s if total_s > 0 else None,
        "policy": policy,
        "budget": budget,
        "model": model,
    }


def write_metrics(path: str | Path, metrics: dict[str, Any]) -> Path:
    """Write ``metrics`` as JSON to ``path`` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path

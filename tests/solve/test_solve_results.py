"""Results file durability and resume, and metrics."""

from __future__ import annotations

import json

import pytest

from raas_local.errors import InputError
from raas_local.solve.results import (
    ResultWriter,
    compute_metrics,
    read_records,
    write_metrics,
)


def _rec(i, correct=True, **kw):
    r = {"id": str(i), "gold": "1", "pred_text": "1", "extracted": "1", "correct": correct,
         "generated_tokens": 10, "peak_kv_cells": 50, "evictions": 0, "seconds": 1.0}
    r.update(kw)
    return r


def _lines(path):
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_write_then_resume(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    with ResultWriter(out) as w:
        assert w.done_ids == set()
        w.write(_rec(1))
        w.write(_rec(2))
    with ResultWriter(out) as w:
        assert w.done_ids == {"1", "2"}
        assert not w.repaired
        w.write(_rec(3))
    assert [r["id"] for r in _lines(out)] == ["1", "2", "3"]


def test_ids_are_strings(tmp_path):
    out = tmp_path / "out.jsonl"
    with ResultWriter(out) as w:
        w.write(_rec(1) | {"id": 1})
    assert ResultWriter(out).done_ids == {"1"}


@pytest.mark.parametrize(
    "tail",
    [
        b'{"id": "3", "gold": "1", "corr',  # torn mid-object, no newline
        b'{"id": "3", "gold": "1", "corr\n',  # torn, with a newline after it
        b'{"id": "3", "go\n\n  \n',  # torn, then blank lines
        b"\xff\xfe garbage",  # not even UTF-8
    ],
)
def test_torn_last_line_is_cut_off(tmp_path, tail):
    out = tmp_path / "out.jsonl"
    good = (json.dumps(_rec(1)) + "\n" + json.dumps(_rec(2)) + "\n").encode()
    out.write_bytes(good + tail)
    assert [r["id"] for r in read_records(out)] == ["1", "2"]
    with ResultWriter(out) as w:
        assert w.repaired
        assert w.done_ids == {"1", "2"}
        w.write(_rec(3))
    assert [r["id"] for r in _lines(out)] == ["1", "2", "3"]


def test_complete_last_record_without_newline_is_kept(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(_rec(1)) + "\n" + json.dumps(_rec(2)), encoding="utf-8")
    with ResultWriter(out) as w:
        assert w.done_ids == {"1", "2"}
        w.write(_rec(3))
    assert [r["id"] for r in _lines(out)] == ["1", "2", "3"]


def test_corrupt_middle_line_is_refused(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(_rec(1)) + "\nbroken\n" + json.dumps(_rec(2)) + "\n")
    before = out.read_bytes()
    with pytest.raises(InputError, match=r"out.jsonl:2:"):
        ResultWriter(out)
    assert out.read_bytes() == before  # nothing touched


def test_metrics_by_hand():
    records = [
        _rec(1, correct=True, generated_tokens=100, seconds=2.0, peak_kv_cells=300),
        _rec(2, correct=False, generated_tokens=50, seconds=1.0, peak_kv_cells=512,
             timed_out=True),
        _rec(3, correct=False, extracted=None, generated_tokens=150, seconds=2.0,
             peak_kv_cells=None),
        _rec(4, correct=True, generated_tokens=100, seconds=5.0, peak_kv_cells=200),
    ]
    m = compute_metrics(records, "raas", 512, "smollm2")
    assert m["n"] == 4
    assert m["accuracy"] == 0.5
    assert m["correct"] == 2
    assert m["answered"] == 3
    assert m["timeouts"] == 1
    assert m["mean_generated_tokens"] == 100.0  # (100+50+150+100)/4
    assert m["peak_kv_cells"] == 512
    assert m["tok_per_s"] == 40.0  # 400 tokens / 10 s
    assert (m["policy"], m["budget"], m["model"]) == ("raas", 512, "smollm2")


def test_metrics_empty():
    m = compute_metrics([], "dense", None, None)
    assert m["n"] == 0 and m["accuracy"] is None and m["tok_per_s"] is None


def test_write_metrics_atomic(tmp_path):
    path = tmp_path / "metrics.json"
    write_metrics(path, {"accuracy": 0.5})
    write_metrics(path, {"accuracy": 0.75, "n": 4})
    assert json.loads(path.read_text()) == {"accuracy": 0.75, "n": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temp files left


def test_ctrl_c_right_after_the_fsync_still_counts_the_record(tmp_path, monkeypatch):
    """Ctrl-C landing between the fsync and the in-memory bookkeeping must not make the
    writer's count disagree with the file (the interrupt line said "1/24 done" with 2 on disk)."""
    import os
    import signal

    import raas_local.solve.results as results

    real_fsync = os.fsync

    def fsync_then_sigint(fd):
        real_fsync(fd)
        os.kill(os.getpid(), signal.SIGINT)  # delivered at the next bytecode: right after the fsync

    out = tmp_path / "out.jsonl"
    w = ResultWriter(out)
    w.write({"id": 1})
    monkeypatch.setattr(results.os, "fsync", fsync_then_sigint)
    with pytest.raises(KeyboardInterrupt):
        w.write({"id": 2})
    monkeypatch.setattr(results.os, "fsync", real_fsync)
    w.close()
    assert [r["id"] for r in w.records] == [r["id"] for r in read_records(out)] == ["1", "2"]
    assert w.done_ids == {"1", "2"}

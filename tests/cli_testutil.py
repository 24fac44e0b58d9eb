"""Assertions shared by the CLI tests."""

from __future__ import annotations


def assert_one_line_error(r, code, *needles):
    """Exit `code`, exactly one `raas-local: error:` line holding every needle, no traceback."""
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("raas-local: error:")]
    assert len(errors) == 1, r.stderr
    for n in needles:
        assert n in errors[0], errors[0]

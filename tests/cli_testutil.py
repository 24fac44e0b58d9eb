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


def popen_interruptible(cmd):
    """Start `cmd` so that SIGINT reaches it as it would from a terminal.

    A shell that starts a job in the background (`cmd &`) leaves SIGINT ignored,
    and Python then installs no KeyboardInterrupt handler: the child gets the
    default disposition back."""
    import signal
    import subprocess

    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

"""The worker process behind :mod:`raas_local.solve.sympy_pool`.

Started by the pool (``main()``).  Protocol, one JSON object per line: it
prints ``{"ready": true}`` once sympy is imported, then answers each request
``{"a": str, "b": str, "either_sign": bool, "timeout": float}`` with
``{"ok": bool}`` or ``{"error": "..."}``.  It exits at end of input.
"""

from __future__ import annotations

import json
import os
import signal
import sys


def symbolic_equal(a: str, b: str, either_sign: bool) -> bool:
    """Are two sympy-syntax strings (from ``to_sympy_syntax``) equal?

    ``simplify(a - b) == 0``; for constants also a numeric check at the
    equivalence tolerance (simplify misses some nested radicals).  With
    ``either_sign``, ``a == -b`` also counts (equations written the other way).
    """
    import sympy

    from raas_local.solve.latex_sympy import parse_sympy
    from raas_local.solve.normalize import ABS_TOL, REL_TOL

    ea, eb = parse_sympy(a), parse_sympy(b)
    for other in ([eb, -eb] if either_sign else [eb]):
        if sympy.simplify(ea - other) == 0:
            return True
        if not (ea.free_symbols or other.free_symbols):
            va, vb = complex(sympy.N(ea, 30)), complex(sympy.N(other, 30))
            if abs(va - vb) <= max(ABS_TOL, REL_TOL * abs(vb)):
                return True
    return False


def _cpu_limit(seconds: float | None) -> None:
    """Cap this process's CPU time at ``seconds`` more (None: lift the cap).

    The parent kills us when a check runs past its timeout; this cap is the
    backstop for when the parent itself is gone (killed mid-check).  sympy
    may then be stuck in C code holding the GIL (``9**(9**9)``), where no
    thread of ours could run, but the kernel's SIGXCPU still ends us.
    """
    try:
        import resource
    except ImportError:  # not POSIX: the parent's kill is all there is
        return
    global _ORIGINAL_CPU_LIMIT
    if _ORIGINAL_CPU_LIMIT is None:
        _ORIGINAL_CPU_LIMIT = resource.getrlimit(resource.RLIMIT_CPU)
    orig_soft, hard = _ORIGINAL_CPU_LIMIT
    soft = orig_soft
    if seconds is not None:
        used = resource.getrusage(resource.RUSAGE_SELF)
        soft = int(used.ru_utime + used.ru_stime + seconds) + 2
        if orig_soft != resource.RLIM_INFINITY:
            soft = min(soft, orig_soft)  # never loosen a limit the user set
    try:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    except (ValueError, OSError):
        pass


_ORIGINAL_CPU_LIMIT: tuple[int, int] | None = None


def main() -> None:
    # Ctrl-C is the parent's to handle (it kills us if need be).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol owns the real stdout; anything else printed goes to stderr.
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    import sympy  # noqa: F401  (imported before "ready": startup is not a check's time)

    proto.write(json.dumps({"ready": True}) + "\n")
    proto.flush()
    for line in sys.stdin:
        try:
            req = json.loads(line)
            _cpu_limit(float(req.get("timeout", 60.0)))
            resp = {"ok": bool(symbolic_equal(req["a"], req["b"], bool(req.get("either_sign"))))}
        except Exception as exc:  # a bad expression is an answer ("not equal"), not a crash
            resp = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        finally:
            _cpu_limit(None)
        proto.write(json.dumps(resp) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()

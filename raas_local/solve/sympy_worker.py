"""The worker process behind :mod:`raas_local.solve.sympy_pool`.

Run as ``python -m raas_local.solve.sympy_worker``.  Protocol, one JSON object
per line: it prints ``{"ready": true}`` once sympy is imported, then answers
each request ``{"a": str, "b": str, "either_sign": bool}`` with ``{"ok": bool}``
or ``{"error": "..."}``.  It exits at end of input.
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
            resp = {"ok": bool(symbolic_equal(req["a"], req["b"], bool(req.get("either_sign"))))}
        except Exception as exc:  # a bad expression is an answer ("not equal"), not a crash
            resp = {"error": f"{type(exc).__name__}: {exc}"[:500]}
        proto.write(json.dumps(resp) + "\n")
        proto.flush()


if __name__ == "__main__":
    main()

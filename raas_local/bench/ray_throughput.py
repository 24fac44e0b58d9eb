"""Problems per minute: ``solve --ray --workers K -t 1`` vs local ``solve -t K``, side by side.

::

    python -m raas_local.bench.ray_throughput [--workers 2] [--limit 16] [-n 64] [--budget 256]

Both runs are the real CLI in a subprocess, on the same problems (the packaged
sample set, first ``--limit``), greedy, into fresh files.  For each it prints
the wall time end to end (start-up included: Ray's start and each actor's
model load for ``--ray``), the time to the first record, and the problems per
minute over the whole run and between the first and the last record (the
steady rate, start-up left out); then the ratios ray / local.  The Ray run
starts a local instance (loopback only) and ends it.  A third row, local
``solve -t 1``, is the reference for one worker's share: on a machine busy
with other work, ggml's spinning threads make ``-t K`` much slower than K
single-thread processes, and this row shows how much of the ratio is that.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(cmd: list[str], out: Path) -> dict[str, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    seen, first, last = 0, None, None
    while proc.poll() is None:
        n = out.read_bytes().count(b"\n") if out.exists() else 0
        if n > seen:
            now = time.monotonic() - t0
            first = now if first is None else first
            last, seen = now, n
        time.sleep(0.05)
    wall = time.monotonic() - t0
    n = out.read_bytes().count(b"\n") if out.exists() else 0
    if proc.returncode != 0:
        raise SystemExit(f"ray_throughput: {' '.join(cmd)} failed (rc {proc.returncode}): {proc.stderr.read()[-2000:]}")
    if n > seen:  # the last lines landed between the final poll and the exit
        last = wall
    steady = 60 * (n - 1) / (last - first) if n > 1 and last and first is not None and last > first else float("nan")
    return {"n": n, "wall_s": wall, "first_s": first or float("nan"), "ppm": 60 * n / wall, "steady_ppm": steady}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m raas_local.bench.ray_throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2, help="Ray workers (1 thread each); local solve gets -t WORKERS")
    ap.add_argument("--limit", type=int, default=16, help="problems from the sample set (default 16)")
    ap.add_argument("-n", "--max-tokens", type=int, default=64)
    ap.add_argument("--budget", type=int, default=256)
    a = ap.parse_args(argv)
    common = ["--sample", "--limit", str(a.limit), "-n", str(a.max_tokens), "--budget", str(a.budget), "--temp", "0",
              "--no-progress"]
    cli = [sys.executable, "-m", "raas_local.cli", "solve"]
    with tempfile.TemporaryDirectory(prefix="raas-ray-bench-") as tmp:
        local = _timed([*cli, *common, "-t", str(a.workers), "-o", f"{tmp}/local.jsonl"], Path(tmp, "local.jsonl"))
        ray = _timed([*cli, *common, "--ray", "--workers", str(a.workers), "-t", "1", "-o", f"{tmp}/ray.jsonl"],
                     Path(tmp, "ray.jsonl"))
        one = _timed([*cli, *common, "-t", "1", "-o", f"{tmp}/one.jsonl"], Path(tmp, "one.jsonl"))
    print(f"{a.limit} sample problems, -n {a.max_tokens}, --budget {a.budget}, greedy, embedded model")
    print("| run | problems | wall s | first record s | problems/min (end to end) | problems/min (steady) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = ((f"local solve -t {a.workers}", local), (f"solve --ray --workers {a.workers} -t 1", ray),
            ("local solve -t 1 (reference)", one))
    for name, r in rows:
        print(f"| {name} | {r['n']} | {r['wall_s']:.1f} | {r['first_s']:.1f} | {r['ppm']:.1f} | {r['steady_ppm']:.1f} |")
    print(f"ratio ray / local -t {a.workers}: end to end {ray['ppm'] / local['ppm']:.2f}x, "
          f"steady {ray['steady_ppm'] / local['steady_ppm']:.2f}x")
    print(f"ratio ray / local -t 1: end to end {ray['ppm'] / one['ppm']:.2f}x, steady {ray['steady_ppm'] / one['steady_ppm']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`raas-local solve --ray` on a real two-node Ray cluster on this machine, loopback only.

One cluster serves the module: the head node is started in this process with
Ray's own ``ray.cluster_utils.Cluster``; the second node is a child process,
started (where ``unshare`` can) in its own mount namespace where an empty
tmpfs covers ``head-only/``, so a model file there really is missing on that
node.  Every Ray process gets ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (node
address 127.0.0.1, so every Ray server binds loopback) and usage stats off.
The second node has its own ``HF_HOME``: each node resolves hub models into
its own cache, as on a real cluster.  The CLI runs as a subprocess (the
driver), as a user runs it, with ``--ray 127.0.0.1:PORT``.

Each worker asks for 1 CPU and each node has 1, so ``--workers 2`` puts one
actor on each node.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'raas-local[ray]'")

from cli_testutil import assert_one_line_error  # noqa: E402
from fake_hub import serve_fake_hub  # noqa: E402

pytestmark = pytest.mark.ray

PROBLEMS = [
    {"id": "add", "problem": "What is 2 + 3?", "answer": "5"},
    {"id": "mul", "problem": "What is 6 times 7?", "answer": "42"},
    {"id": "sub", "problem": "What is 10 - 4?", "answer": "6"},
    {"id": "div", "problem": "What is 12 divided by 4?", "answer": "3"},
    {"id": "sq", "problem": "What is 9 squared?", "answer": "81"},
    {"id": "half", "problem": "What is half of 50?", "answer": "25"},
]
MANY = [dict(p, id=f"{p['id']}-{k}") for k in range(4) for p in PROBLEMS]  # 24
GREEDY = ("--temp", "0", "--budget", "256")
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}

NODE_SCRIPT = textwrap.dedent("""
    import signal, sys
    from ray._private.node import Node
    from ray._private.parameter import RayParams
    params = RayParams(gcs_address=sys.argv[1], node_ip_address="127.0.0.1", num_cpus=1, num_gpus=0,
                       object_store_memory=150 * 1024 * 1024, min_worker_port=0, max_worker_port=0,
                       node_manager_port=0, include_log_monitor=False)
    params.dashboard_agent_listen_port = None
    node = Node(params, head=False, shutdown_at_exit=True, spawn_reaper=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print("ready", flush=True)
    signal.pause()
""")


def _can_unshare_mounts() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = "mount -t tmpfs none /mnt 2>/dev/null || mount -t tmpfs none /tmp"
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", probe],
                          capture_output=True, timeout=30).returncode == 0


class TwoNodes:
    def __init__(self, root: Path, hub) -> None:
        from ray.cluster_utils import Cluster

        self.root, self.hub = root, hub
        self.head_only = root / "head-only"
        self.head_only.mkdir()
        self.isolated = _can_unshare_mounts()
        self.cluster = Cluster(initialize_head=True, head_node_args=dict(
            num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False))
        self.address = self.cluster.address
        env = dict(os.environ, HF_HOME=str(root / "hf-node2"), RAAS_LOCAL_HOME=str(root / "raas-node2"))
        cmd = [sys.executable, "-c", NODE_SCRIPT, self.address]
        if self.isolated:
            cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c",
                   f'mount -t tmpfs none "{self.head_only}" && exec "$@"', "sh", *cmd]
        self.node2 = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        assert self.node2.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        while len([n for n in self.cluster.global_state.node_table() if n["Alive"]]) < 2:
            assert time.monotonic() < deadline, "the second node did not join"
            time.sleep(0.5)

    def close(self) -> None:
        self.node2.terminate()
        try:
            self.node2.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.node2.kill()
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    env = dict(LOOPBACK_ENV, HF_HOME=str(root / "hf-head"), RAAS_LOCAL_HOME=str(root / "raas-head"),
               NO_PROXY="127.0.0.1,localhost", HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    with serve_fake_hub() as hub, pytest.MonkeyPatch.context() as mp:
        env["HF_ENDPOINT"] = hub.url
        for k, v in env.items():
            mp.setenv(k, v)
        nodes = TwoNodes(root, hub)
        try:
            yield nodes
        finally:
            nodes.close()


# -- helpers ---------------------------------------------------------------------


def cmd(*args):
    return [sys.executable, "-m", "raas_local.cli", "solve", *args]


def driver_env(tmp_path: Path) -> dict:
    # the driver has its own (empty) model caches: it must not need the model
    return dict(os.environ, HF_HOME=str(tmp_path / "hf-driver"), RAAS_LOCAL_HOME=str(tmp_path / "raas-driver"))


def run_cli(tmp_path: Path, *args, timeout=600):
    return subprocess.run(cmd(*args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=driver_env(tmp_path), cwd=tmp_path)


def write_problems(path: Path, items) -> Path:
    path.write_text("".join(json.dumps(it) + "\n" for it in items))
    return path


def read_lines(out: Path) -> list[dict]:
    data = out.read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.decode().splitlines()]


def wait_for_lines(out: Path, n: int, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and out.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, f"solve ended (rc {proc.returncode}) before {n} lines: {proc.stderr.read()}"
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no {n} lines in {out} after {timeout}s")


def descendants(pid: int) -> dict[int, str]:
    """{pid: name} of every process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
        names[int(d.name)] = stat[stat.index("(") + 1: stat.rindex(")")]
    out, todo = {}, [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out[c] = names.get(c, "?")
            todo.append(c)
    return out


def sockets(pids: set[int]) -> list[tuple[str, str, str, str]]:
    """(kind, local, peer, process) of the TCP/UDP sockets of ``pids``: listening and connected."""
    rows = []
    for kind, flags in (("listen", "-ltunpH"), ("conn", "-tunpH")):
        out = subprocess.run(["ss", flags], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines():
            parts = line.split()
            if "pid=" not in line or len(parts) < 6:
                continue
            owner = [int(x.split(",")[0]) for x in line.split("pid=")[1:]]
            if any(p in pids for p in owner):
                rows.append((kind, parts[4], parts[5], parts[-1]))
    return rows


def is_loopback(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1") or host.startswith("::ffff:127.")


def solve_workers() -> list[int]:
    """PIDs of the SolveWorker actor processes (Ray names them ``ray::SolveWorker...``)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "cmdline").read_bytes().startswith(b"ray::SolveWorker"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


# -- tests without a cluster ---------------------------------------------------------


def test_without_ray_installed_is_one_line(tmp_path):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:1])
    code = ("import sys; sys.modules['ray'] = None; from raas_local.cli import main; "
            f"sys.exit(main(['solve', {str(p)!r}, '--ray', '--workers', '2']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert_one_line_error(r, 4, "--ray needs Ray", "pip install 'raas-local[ray]'")


def test_bad_flags(tmp_path):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:1])
    r = run_cli(tmp_path, str(p), "--ray", "nowhere")
    assert r.returncode == 2 and "not a Ray address" in r.stderr
    r = run_cli(tmp_path, str(p), "--workers", "2")
    assert_one_line_error(r, 4, "--workers needs --ray")


# -- on the two-node cluster ------------------------------------------------------------


def test_every_id_once_same_answers_as_local_and_loopback_only(cluster, tmp_path):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS)
    out = tmp_path / "ray.jsonl"
    proc = subprocess.Popen(cmd(str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-n", "24", *GREEDY,
                                "-o", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=driver_env(tmp_path), cwd=tmp_path)
    assert shutil.which("ss"), "this test reads the sockets with iproute2's ss"
    seen: list[tuple[str, str, str, str]] = []
    while proc.poll() is None:  # watch every socket of the cluster and the driver while it runs
        seen.extend(sockets(set(descendants(os.getpid()))))
        time.sleep(0.5)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr

    recs = read_lines(out)
    assert sorted(r["id"] for r in recs) == sorted(x["id"] for x in PROBLEMS)  # each id once
    assert len({r["worker"] for r in recs}) == 2  # both actors (one per node) solved problems
    assert "6/6 problems (6 new, 0 resumed)" in stdout
    assert json.loads((tmp_path / "ray.metrics.json").read_text())["n"] == 6

    local = tmp_path / "local.jsonl"
    r = run_cli(tmp_path, str(p), "-t", "1", "-n", "24", *GREEDY, "-o", str(local))
    assert r.returncode == 0, r.stderr
    by_id = {x["id"]: x for x in read_lines(local)}
    for rec in recs:
        for key in ("pred_text", "extracted", "correct", "generated_tokens", "peak_kv_cells", "evictions"):
            assert rec[key] == by_id[rec["id"]][key], (rec["id"], key)
        assert rec["run"] == by_id[rec["id"]]["run"]

    names = {row[3] for row in seen if row[0] == "listen"}
    assert any("gcs_server" in n for n in names) and any("raylet" in n for n in names), names
    assert any("python" in n or "ray::" in n for n in names), names  # workers and the driver too
    outside = [row for row in seen if not is_loopback(row[1]) or (row[0] == "conn" and not is_loopback(row[2]))]
    assert not outside, outside


def test_policy_flags_reach_the_workers_as_locally(cluster, tmp_path):
    """--heavy-ratio reaches the actors' engines: the same evicting h2o answers as local solve with it,
    and those differ from the default ratio's (so the comparison can tell).  Prompts are ~62 tokens, so
    ~34 decode cells fit in 96: at 0.8 only the last 20 positions are protected and the heavy hitters
    decide what goes; at 0.5 the last 48 are, every decode cell, and the oldest goes."""
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:4])
    h2o = ("--policy", "h2o", "--budget", "96", "-n", "64", "--temp", "0", "-t", "1")
    r = run_cli(tmp_path, str(p), "--ray", cluster.address, "--workers", "2", *h2o, "--heavy-ratio", "0.8",
                "-o", str(tmp_path / "ray.jsonl"))
    assert r.returncode == 0, r.stderr
    for ratio in ("0.8", "0.5"):
        r = run_cli(tmp_path, str(p), *h2o, "--heavy-ratio", ratio, "-o", str(tmp_path / f"local-{ratio}.jsonl"))
        assert r.returncode == 0, r.stderr
    ray_recs = {x["id"]: x for x in read_lines(tmp_path / "ray.jsonl")}
    local = {x["id"]: x for x in read_lines(tmp_path / "local-0.8.jsonl")}
    other = {x["id"]: x for x in read_lines(tmp_path / "local-0.5.jsonl")}
    assert sorted(ray_recs) == sorted(local)
    assert all(x["run"]["heavy_ratio"] == 0.8 and x["run"] == local[i]["run"] for i, x in ray_recs.items())
    assert sum(x["evictions"] for x in ray_recs.values()) > 0
    assert all(x["pred_text"] == local[i]["pred_text"] for i, x in ray_recs.items())
    assert any(x["pred_text"] != other[i]["pred_text"] for i, x in ray_recs.items())


def test_registry_and_hub_models_resolve_on_each_worker(cluster, tmp_path, tiny_llama):
    data = Path(tiny_llama[0]).read_bytes()
    cluster.hub.add("Qwen/Qwen3-0.6B-GGUF", "Qwen3-0.6B-Q8_0.gguf", data)
    cluster.hub.add("tiny-org/Tiny-GGUF", "Tiny-Q8_0.gguf", data)
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:4])
    for model, label in (("qwen3-0.6b", "qwen3-0.6b"), ("tiny-org/Tiny-GGUF:Q8_0", "Tiny-Q8_0")):
        r = run_cli(tmp_path, str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-m", model,
                    "-n", "4", "--temp", "0", "--budget", "256")
        assert r.returncode == 0, r.stderr
        out = tmp_path / f"p.{label}.raas-256.results.jsonl"
        recs = read_lines(out)
        assert sorted(x["id"] for x in recs) == sorted(x["id"] for x in PROBLEMS[:4])
        assert len({x["worker"] for x in recs}) == 2
    # each node downloaded each model once into its own cache; the driver downloaded nothing
    assert cluster.hub.count("GET", "/Qwen/Qwen3-0.6B-GGUF/resolve/") == 2
    assert cluster.hub.count("GET", "/tiny-org/Tiny-GGUF/resolve/") == 2
    assert not (tmp_path / "hf-driver").exists()


def test_a_sweep_is_spread_over_the_workers(cluster, tmp_path, tiny_llama):
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:4])
    sweep = tmp_path / "sweep"
    r = run_cli(tmp_path, str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-m", str(tiny_llama[0]),
                "--policies", "raas,dense", "--budgets", "256", "-n", "8", "--temp", "0", "-o", str(sweep))
    assert r.returncode == 0, r.stderr
    workers = set()
    for tag in ("raas-256", "dense"):
        recs = read_lines(sweep / f"p.tiny-llama.{tag}.results.jsonl")
        assert sorted(x["id"] for x in recs) == sorted(x["id"] for x in PROBLEMS[:4])
        assert {x["run"]["policy"] for x in recs} == {tag.split("-")[0]}
        workers |= {x["worker"] for x in recs}
        assert json.loads((sweep / f"p.tiny-llama.{tag}.metrics.json").read_text())["n"] == 4
    assert len(workers) == 2
    rows = [(row["policy"], row["budget"], row["n"]) for row in
            json.loads((sweep / "p.tiny-llama.sweep.json").read_text())["table"]]
    assert rows == [("raas", 256, 4), ("dense", None, 4)]
    assert "| dense | n/a |" in r.stdout


def test_worker_that_cannot_load_the_model_fails_the_run(cluster, tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
    from models_testutil import write_gguf

    bad = write_gguf(tmp_path / "not-a-llama.gguf")  # a valid GGUF file that llama.cpp cannot load
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:2])
    r = run_cli(tmp_path, str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-m", str(bad), "-n", "4")
    assert_one_line_error(r, 1, "worker on node 127.0.0.1", "cannot load the model", "not-a-llama.gguf")
    assert not list(tmp_path.glob("*.results.jsonl"))


def test_model_path_missing_on_one_node_fails_before_any_work(cluster, tmp_path, tiny_llama):
    if not cluster.isolated:
        pytest.skip("needs `unshare -m` to hide a folder from the second node")
    model = cluster.head_only / "tiny.gguf"
    shutil.copy(tiny_llama[0], model)
    p = write_problems(tmp_path / "p.jsonl", PROBLEMS[:2])
    r = run_cli(tmp_path, str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-m", str(model),
                "-n", "4", "-o", str(tmp_path / "out.jsonl"))
    assert_one_line_error(r, 2, "must exist on every node", "1 of 2", "node 127.0.0.1", "model file not found")
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_a_killed_worker_loses_nothing(cluster, tmp_path):
    p = write_problems(tmp_path / "p.jsonl", MANY)
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(cmd(str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-n", "32", *GREEDY,
                                "-o", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            env=driver_env(tmp_path), cwd=tmp_path)
    try:
        wait_for_lines(out, 3, proc)
        victims = solve_workers()
        assert len(victims) == 2, victims
        os.kill(victims[0], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "died" in stderr and "in flight go to the other workers" in stderr, stderr
    recs = read_lines(out)
    ids = [r["id"] for r in recs]
    assert sorted(ids) == sorted(x["id"] for x in MANY) and len(ids) == len(set(ids))  # nothing lost or doubled
    assert len({r["worker"] for r in recs}) >= 2
    assert f"{len(MANY)}/{len(MANY)} problems ({len(MANY)} new, 0 resumed)" in stdout


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_then_resume(cluster, tmp_path):
    p = write_problems(tmp_path / "p.jsonl", MANY)
    out = tmp_path / "out.jsonl"
    args = [str(p), "--ray", cluster.address, "--workers", "2", "-t", "1", "-n", "32", *GREEDY, "-o", str(out)]
    # SIGINT reaches it as from a terminal (see cli_testutil.popen_interruptible)
    proc = subprocess.Popen(cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, env=driver_env(tmp_path), cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        wait_for_lines(out, 2, proc)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=300)  # the machine may be loaded; Ray shuts down slowly then
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = [ln for ln in stderr.splitlines() if ln.strip()][-1]
    done = len(read_lines(out))
    assert 2 <= done < len(MANY)
    assert last.startswith("raas-local: interrupted:") and f"{done}/{len(MANY)} problems done" in last
    assert "rerun the same command" in last
    assert json.loads((tmp_path / "out.metrics.json").read_text())["n"] == done
    deadline = time.monotonic() + 120
    while solve_workers():  # the workers were stopped with the driver
        assert time.monotonic() < deadline, "SolveWorker actors outlived the driver"
        time.sleep(0.5)

    r = run_cli(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    ids = [x["id"] for x in read_lines(out)]
    assert sorted(ids) == sorted(x["id"] for x in MANY) and len(ids) == len(set(ids))
    assert f"({len(MANY) - done} new, {done} resumed)" in r.stdout


def test_worker_sizing():
    from argparse import Namespace

    from raas_local.errors import InputError
    from raas_local.solve.ray_driver import size_workers

    def size(cpus, gpus=0.0, workers=None, threads=None, ngl=0, nodes=None):
        return size_workers(Namespace(workers=workers, threads=threads, n_gpu_layers=ngl), cpus, gpus,
                            nodes if nodes is not None else [cpus])

    assert size(2, workers=2) == (2, 1, 0)  # the issue's `--ray --workers 2` on this 2-core machine
    assert size(16) == (4, 4, 0)  # CPU-only: 4 threads a worker
    assert size(2) == (1, 2, 0)
    assert size(16, threads=2) == (8, 2, 0)
    assert size(64, gpus=4, ngl=99) == (4, 1, 1)  # one per GPU
    assert size(64, gpus=4) == (16, 4, 0)  # GPUs unused without -ngl
    with pytest.raises(InputError, match="needs 8 CPUs; the cluster has 2"):
        size(2, workers=4, threads=2)
    with pytest.raises(InputError, match="no node of the cluster has 8 CPUs"):
        size(16, threads=8, nodes=[4, 4, 4, 4])

"""``raas-local solve --ray``: the driver that spreads a problem set over Ray actors.

The driver is the only writer.  It makes local ``solve``'s plan
(``solve.plan.plan_solve``: runs and file names, the policy objects built
from the flags, the sampling, what is left to do), writes through the plan's
resumable writers, and reports with ``solve.output`` (metrics, summary lines,
sweep table, the interrupt line); actors
(``raas_local.solve.ray_worker.SolveWorker``) get the plan's policies and
sampling and only return scored records.

Decisions:

* One queue holds every pending (run, problem) pair of the plan, run by run,
  so a sweep (policies x budgets) is spread over the workers too; an actor
  switches its cache policy when the next pair needs another one.
* Each actor has at most ``IN_FLIGHT_PER_WORKER`` problems in flight (one
  running, one queued behind it so the actor never waits for a round trip).
  A record is written the moment it arrives, in whatever order.
* An actor that dies (killed, out of memory, node lost) has its in-flight
  problems put back at the front of the queue for the other actors, and is
  replaced (at most as many replacements as workers in a run).  Nothing is
  lost: a problem is written only from a returned record; nothing is
  duplicated: the dead actor is killed for good before its problems are
  handed out again, and no id is ever written twice.  A problem that was in
  flight on ``MAX_ATTEMPTS`` actors that died fails the run (it is likely
  what kills them).
* Every worker loads the model before any problem is handed out, so a worker
  that cannot load it fails the run (one line naming its node and the reason)
  whatever the others do.  A replacement that cannot load it fails the run too.  A model given as a local path is checked on every
  node that can host a worker before any work starts.
* Ctrl-C: the workers are stopped, the metrics of what is on disk are
  written, one line says how many are done and to rerun the same command;
  exit 130.
* A rerun with nothing left to do starts no Ray at all.
* Worker count and threads: see ``size_workers``.
"""

from __future__ import annotations

import argparse
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from raas_local.errors import InputError, ModelError, PolicyError, RaasError
from raas_local.solve import output
from raas_local.solve.ray_cluster import connect, disconnect, import_ray

__all__ = ["IN_FLIGHT_PER_WORKER", "MAX_ATTEMPTS", "DEFAULT_THREADS", "size_workers", "solve_on_ray"]

IN_FLIGHT_PER_WORKER = 2
MAX_ATTEMPTS = 3
DEFAULT_THREADS = 4  # CPU threads per worker when neither --workers nor -t says


class WorkerError(RaasError):
    """A worker could not load the model or failed on a problem."""

    exit_code = 1


# -- sizing ------------------------------------------------------------------------


def size_workers(args, cpus: float, gpus: float, node_cpus: list[float]) -> tuple[int, int, int]:
    """``(workers, threads per worker, GPUs per worker)`` for this cluster.

    With ``-ngl`` > 0 on a cluster with GPUs: one worker per GPU (a GPU serves
    one engine best; its batch is the lever, not more processes).  Otherwise
    each worker asks for its threads as CPUs: ``-t`` if given, else the
    cluster's CPUs split over ``--workers`` if given, else 4 (llama.cpp's CPU
    decode stops scaling well past a few threads per sequence, while separate
    workers scale until memory bandwidth runs out), and ``--workers``
    defaults to as many as the CPUs hold.
    """
    if args.n_gpu_layers > 0 and gpus >= 1:
        workers = args.workers or int(gpus)
        threads = args.threads or 1
        if workers > gpus:
            raise InputError(f"--workers {workers} with -ngl needs {workers} GPUs; the cluster has {int(gpus)}")
        return workers, threads, 1
    total = int(cpus)
    if total < 1:
        raise InputError("the Ray cluster has no CPUs to run workers on")
    threads = args.threads or (max(1, total // args.workers) if args.workers else min(DEFAULT_THREADS, total))
    workers = args.workers or max(1, total // threads)
    if workers * threads > total:
        raise InputError(
            f"--workers {workers} with {threads} thread(s) each needs {workers * threads} CPUs; "
            f"the cluster has {total}: use --workers {max(1, total // threads)} or -t {max(1, total // workers)}"
        )
    if node_cpus and threads > max(node_cpus):
        raise InputError(f"-t {threads}: no node of the cluster has {threads} CPUs (the largest has {int(max(node_cpus))})")
    return workers, threads, 0


# -- the model, as the driver sees it (nothing is downloaded here) -----------------


def _model_on_driver(arg: str | None) -> tuple[str | None, Any, str | None]:
    """``(what each worker resolves, registry entry or None, label or None if only a worker can tell)``."""
    from raas_local.models import hub
    from raas_local.models.registry import embedded_spec
    from raas_local.models.resolve import is_path_arg
    from raas_local.solve.plan import model_label

    if arg is None:
        spec = embedded_spec()
        return None, spec, model_label(spec)
    if is_path_arg(arg):
        path = Path(arg).expanduser().absolute()  # workers' folders differ from ours
        return str(path), None, model_label(None, path)
    ref = hub.parse_ref(arg)  # unknown names fail here, before Ray starts
    if ref.spec is not None:
        return arg, ref.spec, model_label(ref.spec)
    cached = hub.locate_cached(ref)
    return arg, None, (model_label(None, cached) if cached is not None else None)


# -- the pool of actors --------------------------------------------------------------


@dataclass
class _Task:
    run: Any  # a solve.plan.Run (its policy object and OUT)
    problem: Any
    attempts: int = 0


@dataclass
class _Slot:
    actor: Any
    loading: Any = None  # the ref of load() until it answers
    where: dict = field(default_factory=dict)
    inflight: dict = field(default_factory=dict)  # ref -> _Task
    dead: bool = False


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class _Pool:
    """Actors, their in-flight calls, and what to do when one dies."""

    def __init__(self, ray, worker_args: tuple, workers: int, threads: int, gpus: int) -> None:
        from raas_local.solve.ray_worker import SolveWorker

        self.ray = ray
        self.worker_args = worker_args  # SolveWorker's: (args namespace, first policy, sampling)
        self.cls = ray.remote(SolveWorker).options(num_cpus=threads, num_gpus=gpus, max_restarts=0,
                                                   max_concurrency=1)
        self.slots: list[_Slot] = []
        self.replacements_left = workers
        for _ in range(workers):
            self._spawn()

    def _spawn(self) -> None:
        actor = self.cls.remote(*self.worker_args)
        self.slots.append(_Slot(actor, loading=actor.load.remote()))

    def live(self) -> list[_Slot]:
        return [s for s in self.slots if not s.dead and s.loading is None]

    def alive(self) -> list[_Slot]:
        return [s for s in self.slots if not s.dead]

    def refs(self) -> list:
        out = []
        for s in self.alive():
            out.extend([s.loading] if s.loading is not None else s.inflight)
        return out

    def owner(self, ref) -> _Slot | None:
        """The slot waiting on ``ref``; None once its actor was declared dead (its problems requeued)."""
        for s in self.slots:
            if s.loading == ref or ref in s.inflight:
                return s
        return None

    def kill(self, slot: _Slot) -> None:
        slot.dead = True
        try:
            self.ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone
            pass

    def stop(self) -> None:
        for s in self.slots:
            if not s.dead:
                self.kill(s)

    def wait(self, timeout: float = 1.0) -> list:
        refs = self.refs()
        if not refs:
            return []
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        return ready

    def loaded(self, slot: _Slot, ref) -> dict:
        """The answer of ``load()``; a failure to load is the run's failure."""
        slot.loading = None
        try:
            info = self.ray.get(ref)
        except self.ray.exceptions.RayError as e:
            self.kill(slot)
            raise WorkerError(f"a Ray worker died while loading the model: {_first_line(e)}") from None
        slot.where = info
        if not info["ok"]:
            self.kill(slot)
            raise WorkerError(f"worker on node {_node_name(info)} cannot load the model: {info['error']}")
        return info

    def lost(self, slot: _Slot, why: str, queue: deque) -> None:
        """``slot``'s actor died: its in-flight problems go back first in line; a replacement starts."""
        tasks = list(slot.inflight.values())
        slot.inflight.clear()
        self.kill(slot)
        for t in reversed(tasks):
            t.attempts += 1
            if t.attempts >= MAX_ATTEMPTS:
                raise WorkerError(f"problem {t.problem.id!r} was in flight on {t.attempts} workers that died; "
                                  "the last: " + why)
            queue.appendleft(t)
        print(f"raas-local: warning: worker on node {_node_name(slot.where)} died ({why}); "
              f"its {len(tasks)} problem(s) in flight go to the other workers", file=sys.stderr)
        if self.replacements_left > 0:
            self.replacements_left -= 1
            self._spawn()


def _node_name(where: dict) -> str:
    if not where:
        return "?"
    host = f" ({where['host']})" if where.get("host") and where.get("host") != where.get("node") else ""
    return f"{where.get('node')}{host} pid {where.get('pid')}"


def _dispatch(pool: _Pool, queue: deque, write, on_loaded=None) -> None:
    """Feed every live actor up to its window until the queue is empty and nothing is in flight."""
    ray = pool.ray
    while queue or any(s.inflight for s in pool.alive()):
        for slot in pool.live():
            while queue and len(slot.inflight) < IN_FLIGHT_PER_WORKER:
                t = queue.popleft()
                slot.inflight[slot.actor.solve.remote(t.run.policy, t.problem)] = t
        if not pool.alive():
            raise WorkerError("every Ray worker died; nothing more can run (finished problems are saved)")
        for ref in pool.wait():
            slot = pool.owner(ref)
            if slot is None or slot.dead:  # an answer from an actor already declared dead
                continue
            if slot.loading is not None:
                info = pool.loaded(slot, ref)
                if on_loaded is not None:
                    on_loaded(info)
                continue
            task = slot.inflight.pop(ref)
            try:
                record = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # the engine raised: the run's error, as locally
                raise WorkerError(f"worker on node {_node_name(slot.where)} failed on problem "
                                  f"{task.problem.id!r}: {_first_line(e.cause) if e.cause else _first_line(e)}") from None
            except ray.exceptions.RayError as e:  # the actor is gone (killed, OOM, node lost)
                slot.inflight[ref] = task
                pool.lost(slot, _first_line(e), queue)
                continue
            write(task, record)


# -- the command -------------------------------------------------------------------


def _ordered(problems, records: list[dict]) -> list[dict]:
    by_id = {str(r["id"]): r for r in records}
    return [by_id[p.id] for p in problems if p.id in by_id]


def _finish(problems, problems_path: Path, plan, writers: dict, new: dict) -> int:
    """Each run's metrics, summary and files, then the sweep table: local solve's output."""
    from raas_local.solve.results import read_records

    rows = []
    for run in plan.runs:
        records = writers[run.tag].records if run.tag in writers else read_records(run.out)
        m, path = output.save_metrics(_ordered(problems, records), run, plan.model_label, plan.sampling)
        rows.append(m)
        output.report_run(run.tag if plan.sweep else problems_path.name, m, path, run, len(problems),
                          new.get(run.tag, 0), plan.resumed(run))
    if plan.sweep:
        output.report_sweep(plan.runs[0].out.parent, problems_path, plan.model_label, rows, plan.sampling)
    return 0


def _interrupted(args, problems, plan, writers: dict) -> int:
    """Ctrl-C: every run's metrics of what is on disk, local solve's interrupt line; 130."""
    if plan is None or not writers:
        output.say_interrupted(None, 0, len(problems), not args.out, False, 0, 0)
        return 130
    current = None
    for i, run in enumerate(plan.runs, start=1):
        records = _ordered(problems, writers[run.tag].records)
        output.save_metrics(records, run, plan.model_label, plan.sampling)
        if current is None and len(records) < len(problems):
            current = (run, len(records), i)
    run, done, i = current or (plan.runs[-1], len(problems), len(plan.runs))
    output.say_interrupted(run, done, len(problems), not args.out, plan.sweep, i, len(plan.runs))
    return 130


def _check_path_on_nodes(ray, path: str, nodes: list[dict], threads: int, gpus: int) -> None:
    """Fail before any work when a node that can host a worker cannot read the model file."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from raas_local.solve.ray_worker import check_model_file

    hosts = [n for n in nodes if n.get("Resources", {}).get("GPU" if gpus else "CPU", 0) >= (gpus or threads)]
    task = ray.remote(num_cpus=0)(check_model_file)
    refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(path)
            for n in hosts]
    bad = [r for r in ray.get(refs) if r["error"]]
    if bad:
        where = "; ".join(f"node {_node_name(r)}: {r['error']}" for r in bad)
        raise ModelError(f"the model file must exist on every node; {len(bad)} of {len(hosts)} cannot read it: {where}")


def solve_on_ray(args, problems: list, problems_path: Path) -> int:
    """``solve`` on a Ray cluster: same plan, files, messages and exit codes as local solve."""
    from raas_local import flags
    from raas_local.solve.plan import default_budget, dense_context_cells, plan_policies, plan_solve, sampling_of

    if args.ray is None:
        raise InputError("--workers needs --ray")
    address = args.ray
    ray = import_ray(address)  # one line when Ray is missing, before anything else
    model, spec, label = _model_on_driver(flags.model_arg(args))
    # Without the label (a hub file not cached here) the file names wait for the first worker's.
    plan = plan_solve(args, problems, problems_path, label, spec) if label is not None else None
    if plan is not None and plan.todo == 0:
        return _finish(problems, problems_path, plan, {}, {})

    writers: dict[str, Any] = {}
    new: dict[str, int] = {}
    pool: _Pool | None = None
    bar = None
    try:
        info = connect(address)
        node_cpus = [n.get("Resources", {}).get("CPU", 0) for n in info.nodes]
        workers, threads, gpus = size_workers(args, info.cpus, info.gpus, node_cpus)
        if model is not None and Path(model).is_absolute():
            _check_path_on_nodes(ray, model, info.nodes, threads, gpus)
        # the engine starts on the first run with work left, as locally
        first = plan.first_pending().policy if plan is not None else plan_policies(args, default_budget(spec))[0]
        ns = argparse.Namespace(**{k: v for k, v in vars(args).items() if k != "func"})
        ns.model_flag, ns.model, ns.threads = model, None, threads
        sampling = sampling_of(args)
        ns.n_ctx_dense = dense_context_cells(problems, sampling.max_tokens)  # as local solve
        pool = _Pool(ray, (ns, first, sampling), workers, threads, gpus)
        print(f"raas-local: ray: {workers} worker(s), {threads} thread(s){' and 1 GPU' if gpus else ''} each, "
              f"on a cluster of {len(info.nodes)} node(s) ({int(info.cpus)} CPUs, {int(info.gpus)} GPUs)",
              file=sys.stderr)

        # Every worker loads before any problem is handed out, so a node that cannot load the
        # model fails the run whatever the others do; the first gives the label if only a worker knows it.
        loaded, waited = [], 0.0
        while len(loaded) < workers:
            for ref in pool.wait():
                slot = pool.owner(ref)
                loaded.append((slot, pool.loaded(slot, ref)))
            waited += 1.0
            if len(loaded) < workers and waited == 120.0:
                print(f"raas-local: still waiting for Ray to place {workers - len(loaded)} worker(s) "
                      f"({threads} CPU(s){' and 1 GPU' if gpus else ''} each)", file=sys.stderr)
        slot_ready, first_info = loaded[0]
        if plan is None:
            plan = plan_solve(args, problems, problems_path, first_info["model_label"], spec)
            if plan.todo == 0:
                pool.stop()
                return _finish(problems, problems_path, plan, {}, {})
        too_small = ray.get(slot_ready.actor.preflight.remote(plan.runs, plan.pending))
        if too_small is not None:
            raise PolicyError(too_small)

        for run in plan.runs:
            writers[run.tag] = plan.writer(run)
        queue = deque(_Task(run, p) for run in plan.runs for p in plan.pending[run.tag])
        total = len(problems) * len(plan.runs)
        done_ids = {run.tag: set(writers[run.tag].done_ids) for run in plan.runs}
        resumed = [r for run in plan.runs for r in _ordered(problems, writers[run.tag].records)]
        stats = {"correct": sum(1 for r in resumed if r.get("correct") is True), "scored": len(resumed)}
        if not args.no_progress and sys.stderr.isatty():
            from raas_local.solve.runner import progress_bar

            bar = progress_bar()
            bar.start()
            bar_task = bar.add_task("ray solve", total=total, completed=stats["scored"], **stats)

        def write(task: _Task, record: dict) -> None:
            tag = task.run.tag
            if task.problem.id in done_ids[tag]:  # cannot happen; never write an id twice
                return
            writers[tag].write(record)
            done_ids[tag].add(task.problem.id)
            new[tag] = new.get(tag, 0) + 1
            stats["scored"] += 1
            stats["correct"] += record.get("correct") is True
            if bar is not None:
                bar.update(bar_task, advance=1, **stats)

        _dispatch(pool, queue, write)
        if bar is not None:
            bar.stop()
            bar = None
        pool.stop()
        for w in writers.values():
            w.close()
        return _finish(problems, problems_path, plan, writers, new)
    except KeyboardInterrupt:
        if bar is not None:
            bar.stop()
            bar = None
        if pool is not None:
            pool.stop()
        return _interrupted(args, problems, plan, writers)
    finally:
        if bar is not None:
            bar.stop()
        if pool is not None:
            pool.stop()
        for w in writers.values():
            w.close()
        disconnect()

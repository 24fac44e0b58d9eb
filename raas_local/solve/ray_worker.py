"""The Ray side of ``solve --ray``: one actor holds one engine and returns scored records.

``SolveWorker`` is a plain class; the driver wraps it with ``ray.remote`` and
the resources it asks for (a GPU, or its threads as CPUs), so importing this
module needs no Ray.  It holds no solve logic of its own: the engine comes
from ``flags.engine_from_args`` (as local solve's), the policies and the
sampling from the driver's plan (``solve.plan.plan_solve``, the same objects
local solve runs with), and one problem is ``solve.runner.solve_one``, the
body of the local loop.  Its contract with the driver:

* ``load()`` resolves the model on this node and loads it once.  A registry
  name or ``org/repo[:quant]`` missing from this node's Hugging Face cache is
  pulled here (each node has its own cache); a local path must exist here.
  Failures come back as a value naming this node, so the driver can print one
  line, not a remote traceback.
* ``solve(policy, problem)`` switches to ``policy`` if the engine runs another
  one, solves one problem and returns its record.  The driver keeps a small
  window of such calls in flight per actor; Ray runs one actor's calls in
  order.  A batched engine would take the window's problems at once (a
  threaded actor, ``max_concurrency`` = its sequences) and still return one
  record per call: only this class changes.
* ``preflight(runs, pending)`` runs local solve's prompt-fits-the-budget check
  (``solve.plan.preflight``) with this actor's tokenizer before any problem is
  dispatched.
"""

from __future__ import annotations

import os
import socket
from typing import Any

__all__ = ["SolveWorker", "check_model_file", "node_identity"]


def node_identity() -> dict[str, str]:
    """Where this process runs, for messages: node address, host name, node id."""
    import ray

    ctx = ray.get_runtime_context()
    return {"node": ray.util.get_node_ip_address(), "host": socket.gethostname(), "node_id": ctx.get_node_id(),
            "pid": str(os.getpid())}


def check_model_file(path: str) -> dict[str, Any]:
    """Run on one node (a task pinned there): is ``path`` a readable GGUF on this node?"""
    from pathlib import Path

    from raas_local.errors import RaasError
    from raas_local.models import validate_gguf

    out: dict[str, Any] = dict(node_identity(), error=None)
    try:
        validate_gguf(Path(path))
    except RaasError as e:
        out["error"] = str(e)
    return out


def _resolve_on_this_node(model: str | None) -> None:
    """Make ``model`` loadable here: pull a hub/registry model missing from this node's cache."""
    from raas_local.errors import ModelError
    from raas_local.models import hub, resolve_model

    try:
        resolve_model(model)
    except ModelError:
        if model is None or os.path.isabs(model):
            raise
        hub.pull(model)  # raises a one-line ModelError when the download fails


class SolveWorker:
    """One engine on one node; see the module docstring for the calls."""

    def __init__(self, args: Any, policy: Any, sampling: Any) -> None:
        self.args = args  # solve's argparse namespace (picklable: no function in it); the model flags
        self.policy = policy  # the policy the engine starts on (the plan's first run with work left)
        self.sampling = sampling  # raas_local.sampling.Sampling, the plan's
        self.eng = None
        self.generate = None
        self.template: str | None = None
        self.think_tags: tuple[str, str] | None = None
        self.where = node_identity()

    def load(self) -> dict[str, Any]:
        from raas_local import flags
        from raas_local.solve.plan import model_label
        from raas_local.solve.runner import engine_generate_fn, prompting

        try:
            _resolve_on_this_node(flags.model_arg(self.args))
            self.eng = flags.engine_from_args(self.args, self.policy, n_ctx_dense=self.args.n_ctx_dense)
        except Exception as e:  # every failure is reported as one line with this node's name
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return dict(self.where, ok=False, error=msg)
        self.template, self.think_tags = prompting(self.eng)
        self.generate = engine_generate_fn(self.eng, self.sampling)
        return dict(self.where, ok=True, error=None, model_label=model_label(self.eng.spec, self.eng.model_path))

    def preflight(self, runs: list, pending: dict) -> str | None:
        """Local solve's budget pre-check on this actor's tokenizer: None, or the PolicyError's line."""
        from raas_local.errors import PolicyError
        from raas_local.solve.plan import preflight

        try:
            preflight(self.eng, runs, pending, self.template)
        except PolicyError as e:
            return str(e)
        return None

    def solve(self, policy: Any, problem: Any) -> dict[str, Any]:
        """One problem under ``policy``, as the local loop does it: fresh conversation, generate, score."""
        from raas_local.solve.runner import solve_one

        if policy != self.eng.policy:
            self.eng.set_policy(policy)
        record = solve_one(problem, self.generate, prompt_template=self.template, timeout=self.args.check_timeout,
                           think_tags=self.think_tags)
        record.setdefault("worker", f"{self.where['node']} pid {self.where['pid']}")  # which actor solved it
        return record

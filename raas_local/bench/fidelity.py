"""The fidelity suite: how closely a policy's next-token distribution follows dense.

Decisions:
- The reference is the dense model's own greedy chain from a short raw math
  prompt (no chat template, so the prompt fits budget 64 with two pages to
  spare). EOS is ignored: the embedded model is tiny and would stop early, and
  the chain only has to be dense's own argmax output.
- Every policy is teacher-forced through the same tokens: the same pinned
  prompt, then decode_one_token(chain[i]) step by step, so policy and dense see
  identical inputs and any difference comes from the evicted cells.
- After step i both distributions predict chain[i+1]: top-1 agreement is
  argmax(policy) == argmax(dense); KL(dense || policy) comes from the
  log-softmax of both. The prompt's own logits are skipped (identical: nothing
  is evicted before decoding starts).
- Dense log-probs (N x vocab) are not kept in RAM: they are written as float16
  to a np.memmap in the output folder. The policy's log-probs are rounded to
  float16 the same way and both are renormalised before the KL, so identical
  logits give a KL of exactly 0 and the KL is never negative; float16 rounding
  adds a noise floor of order 1e-6 to the KL, far below what eviction causes.
- The reference (chain + log-probs) is kept on disk while the suite runs, so a
  stopped run resumes without regenerating it; `cleanup` removes the large
  log-prob file once every requested record exists.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from raas_local.bench import plots
from raas_local.bench.plan import Plan, check_prompt_fits, common_settings
from raas_local.engine import Engine
from raas_local.policies import Policy, make

PROMPT = "Question: What is 17*23? Think step by step.\nAnswer:"

StepFn = Callable[[int, int], None]  # (steps done, total)


@dataclass
class FidelityRecord:
    suite: str
    policy: str
    budget: int | None
    length: int              # chain length: teacher-forced steps compared
    top1_agreement: float
    mean_kl: float           # mean over steps of KL(dense || policy), nats
    tok_per_s: float         # teacher-forced decode speed (decode calls only)
    kv_cells: int            # at the end of the chain
    kv_bytes: int
    evictions: int
    first_miss: int | None   # first step whose argmax differs from dense, None if none


def log_softmax16(logits: np.ndarray) -> np.ndarray:
    """float16 log-probs; clipped at float16's range so no -inf appears."""
    x = logits.astype(np.float64)
    x -= x.max()
    x -= np.log(np.exp(x).sum())
    return np.clip(x, -65000.0, 0.0).astype(np.float16)


def _renorm(lp16: np.ndarray) -> np.ndarray:
    x = lp16.astype(np.float64)
    m = x.max()
    return x - (m + np.log(np.exp(x - m).sum()))


def kl16(dense_lp16: np.ndarray, policy_lp16: np.ndarray) -> float:
    """KL(dense || policy) in nats from float16 log-probs (renormalised; >= 0)."""
    a, b = _renorm(dense_lp16), _renorm(policy_lp16)
    # not np.dot: BLAS threads would spin on the cores llama.cpp decodes with (10x slower decode);
    # clamp: a sum of ~1e-17 terms can round to a hair below zero
    return max(float(np.sum(np.exp(a) * (a - b))), 0.0)


class DenseReference:
    """The dense greedy chain and its log-probs, stored under `folder`.

    Files: fidelity-ref-<N>.json (prompt, chain, dense argmax per step, dense
    speed and KV) and fidelity-ref-<N>.f16 (N x vocab float16 log-probs). The
    JSON is written last, so its presence means the pair is complete.
    """

    def __init__(self, folder: Path, n: int):
        self.folder, self.n = Path(folder), n
        self.meta_path = self.folder / f"fidelity-ref-{n}.json"
        self.lp_path = self.folder / f"fidelity-ref-{n}.f16"
        self.meta: dict = {}
        self.logprobs: np.memmap | None = None

    @property
    def prompt(self) -> list[int]:
        return self.meta["prompt_tokens"]

    @property
    def chain(self) -> list[int]:
        return self.meta["chain"]

    @property
    def top1(self) -> list[int]:
        return self.meta["top1"]

    def load(self, model_label: str, prompt: str) -> bool:
        """Reuse a complete reference made for the same model, prompt and length."""
        if not (self.meta_path.exists() and self.lp_path.exists()):
            return False
        meta = json.loads(self.meta_path.read_text())
        if meta.get("model") != model_label or meta.get("prompt") != prompt or meta.get("n") != self.n:
            return False
        if self.lp_path.stat().st_size != self.n * meta["vocab"] * 2:
            return False
        self.meta = meta
        self.logprobs = np.memmap(self.lp_path, dtype=np.float16, mode="r", shape=(self.n, meta["vocab"]))
        return True

    def generate(self, eng: Engine, model_label: str, prompt: str, prompt_tokens: list[int],
                 on_step: StepFn | None = None) -> None:
        """Greedy-decode N tokens with a dense engine, ignoring EOS, writing log-probs as it goes."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.meta_path.unlink(missing_ok=True)
        eng.prefill(prompt_tokens, pin=True)
        tok = int(np.argmax(eng.logits()))
        vocab = eng.logits().shape[0]
        mm = np.memmap(self.lp_path, dtype=np.float16, mode="w+", shape=(self.n, vocab))
        chain, top1, t_dec = [], [], 0.0
        for i in range(self.n):
            chain.append(tok)
            t0 = time.perf_counter()
            eng.decode_one_token(tok)
            t_dec += time.perf_counter() - t0
            logits = eng.logits()
            mm[i] = log_softmax16(logits)
            tok = int(np.argmax(logits))
            top1.append(tok)
            if on_step:
                on_step(i + 1, self.n)
        mm.flush()
        del mm
        s = eng.cache_stats()
        self.meta = dict(model=model_label, prompt=prompt, n=self.n, vocab=vocab, prompt_tokens=list(prompt_tokens),
                         chain=chain, top1=top1, tok_per_s=round(self.n / t_dec, 2) if t_dec > 0 else 0.0,
                         kv_cells=s.used, kv_bytes=s.kv_bytes)
        tmp = self.meta_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.meta) + "\n")
        os.replace(tmp, self.meta_path)
        self.logprobs = np.memmap(self.lp_path, dtype=np.float16, mode="r", shape=(self.n, vocab))

    def dense_record(self) -> FidelityRecord:
        """The reference row: dense against itself, 1.0 and 0.0 by construction."""
        m = self.meta
        return FidelityRecord("fidelity", "dense", None, self.n, 1.0, 0.0, m["tok_per_s"], m["kv_cells"], m["kv_bytes"], 0, None)

    def cleanup(self) -> None:
        """Drop the large log-prob file (the small JSON stays: it documents the chain)."""
        self.logprobs = None
        self.lp_path.unlink(missing_ok=True)




def teacher_force(model, policy: Policy, ref: DenseReference, on_step: StepFn | None = None,
                  **engine_kw) -> FidelityRecord:
    """Feed the reference chain through `policy` and compare with dense at every step."""
    _check_fits([policy], len(ref.prompt))
    # evicting policies get the engine's own context (the budget), as users run them;
    # others hold the whole chain like dense
    n_ctx = None if policy.evicts else len(ref.prompt) + ref.n + 16
    eng = Engine(model=model, policy=policy, n_ctx=n_ctx, **engine_kw)
    try:
        eng.prefill(ref.prompt, pin=True)
        agree, kl_sum, t_dec, first_miss = 0, 0.0, 0.0, None
        for i, tok in enumerate(ref.chain):
            t0 = time.perf_counter()
            eng.decode_one_token(tok)
            t_dec += time.perf_counter() - t0
            logits = eng.logits()
            if int(np.argmax(logits)) == ref.top1[i]:
                agree += 1
            elif first_miss is None:
                first_miss = i
            kl_sum += kl16(ref.logprobs[i], log_softmax16(logits))
            if on_step:
                on_step(i + 1, ref.n)
        s = eng.cache_stats()
        return FidelityRecord("fidelity", policy.kind, policy.budget, ref.n,
                              agree / ref.n, kl_sum / ref.n, round(ref.n / t_dec, 2) if t_dec > 0 else 0.0,
                              s.used, s.kv_bytes, s.evictions, first_miss)
    finally:
        eng.close()


def _check_fits(policies, n_prompt: int) -> None:
    check_prompt_fits(policies, n_prompt, "the fidelity prompt", " or a shorter --prompt")


# -- the suite ----------------------------------------------------------------------------------


def run(plan: Plan, store, bars) -> None:
    todo = [p for p in plan.budget_items() if not store.has(plan.key("fidelity", p, plan.chain))]
    if not todo:
        return
    ref = DenseReference(plan.out, plan.chain)
    have_ref = ref.load(plan.label, plan.prompt)
    others = [p for p in todo if p.kind != "dense"]
    bars.start_suite("fidelity", len(others) + (0 if have_ref else 1))
    if have_ref:
        for p in others:
            _check_fits([p], len(ref.prompt))
    else:
        # the prompt is tokenized and checked against every budget before the long work starts;
        # a token never takes less than a byte, so the text's length bounds the prompt's cells
        n_ctx = len(plan.prompt.encode()) + plan.chain + 16
        with Engine(model=plan.model, policy=make("dense"), n_ctx=n_ctx, **plan.engine_kw) as eng:
            toks = eng.tokenize(plan.prompt)
            _check_fits(others, len(toks))
            bars.item(f"fidelity dense reference ({plan.chain} tokens)")
            ref.generate(eng, plan.label, plan.prompt, toks, on_step=bars.steps)
        bars.item_done(f"fidelity dense reference: {plan.chain} tokens, {ref.meta['tok_per_s']:.1f} tok/s")
    if any(p.kind == "dense" for p in todo):
        store.add(plan.stamp(ref.dense_record()))
    for pol in others:
        name = pol.tag
        bars.item(f"fidelity {name}")
        rec = plan.stamp(teacher_force(plan.model, pol, ref, on_step=bars.steps, **plan.engine_kw))
        store.add(rec)
        bars.item_done(f"fidelity {name}: top-1 {rec['top1_agreement']:.3f}, KL {rec['mean_kl']:.4f}, {rec['kv_cells']} KV cells")
    # the log-probs are large (chain x vocab x 2 bytes); once every record is in, they have served
    if all(store.has(plan.key("fidelity", p, plan.chain)) for p in plan.budget_items()):
        ref.cleanup()


def selected(plan: Plan, store) -> list[dict]:
    keys = [plan.key("fidelity", p, plan.chain) for p in plan.budget_items()]
    return [r for r in (store.get(k) for k in keys) if r is not None]


def settings(plan: Plan) -> str:
    return (f"{common_settings(plan)}; dense greedy chain of {plan.chain} tokens from {plan.prompt!r}, teacher-forced "
            f"through each policy at budgets {', '.join(map(str, plan.budgets))}; agreement and KL per step, averaged")


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    plot(records, plan.out / "fidelity.png")
    return table(records), []


def table(records: list[dict]) -> str:
    """Markdown: the dense reference row, then one row per policy and budget."""
    head = ["policy", "budget", "top-1 agreement", "mean KL (nats)", "first miss", "tok/s", "KV cells (MiB)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    ordered = sorted(records, key=lambda r: (r["policy"] != "dense", r["budget"] or 0, r["policy"]))
    for r in ordered:
        dense = r["policy"] == "dense"
        miss = "-" if r.get("first_miss") is None else str(r["first_miss"])
        rows.append("| " + " | ".join([
            "dense (reference)" if dense else r["policy"], "all" if dense else str(r["budget"]),
            f"{r['top1_agreement']:.3f}", f"{r['mean_kl']:.4f}", miss, f"{r['tok_per_s']:.1f}",
            f"{r['kv_cells']} ({r['kv_bytes'] / 2**20:.1f})",
        ]) + " |")
    return "\n".join(rows)


def plot(records: list[dict], path: Path, title: str = "Fidelity to dense vs budget") -> None:
    fig, (a, b) = plots.figure(2, title)
    policies = [r for r in records if r["policy"] != "dense"]
    plots.lines(a, policies, "budget", "top1_agreement", name=lambda r: r["policy"])
    plots.lines(b, policies, "budget", "mean_kl", name=lambda r: r["policy"])
    # dense is the reference: a flat line, not a point per budget
    if any(r["policy"] == "dense" for r in records):
        a.axhline(1.0, color="black", linestyle="--", label="dense (reference)")
        b.axhline(0.0, color="black", linestyle="--", label="dense (reference)")
    lows = [r["top1_agreement"] for r in policies] or [1.0]
    a.set_ylim(max(0.0, min(lows) - 0.05), 1.01)  # agreement lives in [0, 1]
    b.set_ylim(bottom=min(0.0, b.get_ylim()[0]))
    a.set_ylabel("top-1 agreement with dense")
    b.set_ylabel("mean KL(dense || policy), nats")
    budgets = [r["budget"] for r in policies] or [1]
    for ax in (a, b):
        plots.log2_x(ax, budgets, "budget (KV cells)")
        ax.legend()
    fig.savefig(path, dpi=100)

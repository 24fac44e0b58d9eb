"""The fidelity suite: how closely a policy's next-token distribution follows dense.

Decisions:
- The reference is the dense model's own greedy chain from a short raw math
  prompt (no chat template, so the prompt fits budget 64 with two pages to
  spare), or one chain per prompt of a prompts file (--prompts, bench/prompts.py):
  then the tables give every prompt's figures and their means, the held-out
  prompts' mean apart, and the plot shows the means. EOS is ignored: the embedded model is tiny and would stop early, and
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
from raas_local.bench.prompts import Prompt
from raas_local.bench.variants import policy_name, series
from raas_local.engine import Engine
from raas_local.policies import Policy, make


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

    Files: fidelity-ref-<prompt id>-<N>.json (prompt, chain, dense argmax per
    step, dense speed and KV) and fidelity-ref-<prompt id>-<N>.f16 (N x vocab
    float16 log-probs). The JSON is written last, so its presence means the
    pair is complete.
    """

    def __init__(self, folder: Path, n: int, prompt_id: str = "prompt"):
        self.folder, self.n = Path(folder), n
        self.meta_path = self.folder / f"fidelity-ref-{prompt_id}-{n}.json"
        self.lp_path = self.folder / f"fidelity-ref-{prompt_id}-{n}.f16"
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
        eng.reset()  # one dense engine serves every prompt's reference
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


def _check_fits(policies, n_prompt: int, what: str = "the fidelity prompt") -> None:
    check_prompt_fits(policies, n_prompt, what, " or a shorter prompt")


# -- the suite ----------------------------------------------------------------------------------


def _todo(plan: Plan, store) -> list[tuple[Prompt, list]]:
    """(prompt, the policies it still lacks records of), for the prompts that lack any."""
    items = plan.budget_items()
    out = []
    for pr in plan.prompts:
        missing = [p for p in items if not store.has(plan.key("fidelity", p, plan.chain, pr))]
        if missing:
            out.append((pr, missing))
    return out


def run(plan: Plan, store, bars) -> None:
    todo = _todo(plan, store)
    if not todo:
        return
    refs = {pr.id: DenseReference(plan.out, plan.chain, pr.id) for pr, _ in todo}
    have = {pr.id: refs[pr.id].load(plan.label, pr.text) for pr, _ in todo}
    n_items = sum(len([p for p in ps if p.kind != "dense"]) + (0 if have[pr.id] else 1) for pr, ps in todo)
    bars.start_suite("fidelity", n_items)
    eng = None
    try:
        # every prompt is tokenized and checked against every budget before the long work starts
        for pr, ps in todo:
            what = "the fidelity prompt" if len(plan.prompts) == 1 else f"fidelity prompt {pr.id!r}"
            if have[pr.id]:
                _check_fits(ps, len(refs[pr.id].prompt), what)
                continue
            if eng is None:
                # a token never takes less than a byte, so the text's length bounds the prompt's cells
                longest = max(len(p.text.encode()) for p, _ in todo)
                eng = Engine(model=plan.model, policy=make("dense"), n_ctx=longest + plan.chain + 16, **plan.engine_kw)
            _check_fits(ps, len(eng.tokenize(pr.text)), what)
        for pr, ps in todo:
            ref = refs[pr.id]
            label = "" if len(plan.prompts) == 1 else f" [{pr.id}]"
            if not have[pr.id]:
                bars.item(f"fidelity dense reference{label} ({plan.chain} tokens)")
                ref.generate(eng, plan.label, pr.text, eng.tokenize(pr.text), on_step=bars.steps)
                bars.item_done(f"fidelity dense reference{label}: {plan.chain} tokens, {ref.meta['tok_per_s']:.1f} tok/s")
            for pol in ps:
                if pol.kind == "dense":
                    store.add(plan.stamp(ref.dense_record(), pol, pr))
                    continue
                name = policy_name(pol)
                bars.item(f"fidelity {name}{label}")
                rec = plan.stamp(teacher_force(plan.model, pol, ref, on_step=bars.steps, **plan.engine_kw), pol, pr)
                store.add(rec)
                bars.item_done(f"fidelity {name}{label}: top-1 {rec['top1_agreement']:.3f}, KL {rec['mean_kl']:.4f}, "
                               f"{rec['kv_cells']} KV cells")
            # the log-probs are large (chain x vocab x 2 bytes); once the prompt's records are in, they have served
            if all(store.has(plan.key("fidelity", p, plan.chain, pr)) for p in plan.budget_items()):
                ref.cleanup()
    finally:
        if eng is not None:
            eng.close()


def selected(plan: Plan, store) -> list[dict]:
    keys = [plan.key("fidelity", p, plan.chain, pr) for pr in plan.prompts for p in plan.budget_items()]
    return [r for r in (store.get(k) for k in keys) if r is not None]


def settings(plan: Plan) -> str:
    if len(plan.prompts) == 1:
        source = f"from {plan.prompts[0].text!r}"
    else:
        held = [p.id for p in plan.prompts if p.held_out]
        source = (f"from each of {len(plan.prompts)} prompts ({', '.join(p.id for p in plan.prompts)}"
                  + (f"; held out of the means: {', '.join(held)}" if held else "") + ")")
    return (f"{common_settings(plan)}; dense greedy chain of {plan.chain} tokens {source}, teacher-forced "
            f"through each policy at budgets {', '.join(map(str, plan.budgets))}; agreement and KL per step, averaged")


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    if len(plan.prompts) == 1:
        plot(records, plan.out / "fidelity.png")
        return table(records), []
    held = {p.id for p in plan.prompts if p.held_out}
    sweep = [r for r in records if r.get("prompt") not in held]
    plot(mean_records(sweep), plan.out / "fidelity.png",
         title=f"Fidelity to dense vs budget, mean over {len(plan.prompts) - len(held)} prompts")
    tables = [mean_table(records, held), per_prompt_table(records, [p.id for p in plan.prompts], held)]
    return "\n\n".join(tables), streaming_notes(mean_records(sweep))


def _label(r: dict) -> str:
    return series(r["policy"], r.get("settings"))


def _order(r: dict):
    return (r["policy"] != "dense", r["budget"] or 0, _label(r))


def table(records: list[dict]) -> str:
    """Markdown: the dense reference row, then one row per policy and budget."""
    head = ["policy", "budget", "top-1 agreement", "mean KL (nats)", "first miss", "tok/s", "KV cells (MiB)"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(records, key=_order):
        dense = r["policy"] == "dense"
        miss = "-" if r.get("first_miss") is None else str(r["first_miss"])
        rows.append("| " + " | ".join([
            "dense (reference)" if dense else _label(r), "all" if dense else str(r["budget"]),
            f"{r['top1_agreement']:.3f}", f"{r['mean_kl']:.4f}", miss, f"{r['tok_per_s']:.1f}",
            f"{r['kv_cells']} ({r['kv_bytes'] / 2**20:.1f})",
        ]) + " |")
    return "\n".join(rows)


def mean_records(records: list[dict]) -> list[dict]:
    """One record per policy series and budget: top-1 and KL averaged over its prompts (``n``: how many)."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((_label(r), r["budget"]), []).append(r)
    out = []
    for rs in groups.values():
        out.append({**{k: rs[0][k] for k in ("policy", "budget", "settings") if k in rs[0]}, "n": len(rs),
                    "top1_agreement": float(np.mean([r["top1_agreement"] for r in rs])),
                    "mean_kl": float(np.mean([r["mean_kl"] for r in rs])),
                    "min_top1": min(r["top1_agreement"] for r in rs)})
    return out


def mean_table(records: list[dict], held: set[str]) -> str:
    """Markdown: per policy and budget, the means over the sweep prompts and over the held-out ones,
    and the gap to streaming (default settings) at the same budget."""
    sweep = {(_label(r), r["budget"]): r for r in mean_records([r for r in records if r.get("prompt") not in held])}
    out = {(_label(r), r["budget"]): r for r in mean_records([r for r in records if r.get("prompt") in held])}
    n = max((r["n"] for r in sweep.values()), default=0)
    gaps = any(k[0] == "streaming" for k in [*sweep, *out])
    head = ["policy", "budget", f"top-1 (mean of {n})", "min top-1", "KL (mean)"] + (["top-1 - streaming"] if gaps else [])
    if out:
        m = max(r["n"] for r in out.values())
        head += [f"held-out top-1 (mean of {m})", "held-out KL"] + (["held-out top-1 - streaming"] if gaps else [])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def gap(table, k):
        if not gaps:
            return []
        s = table.get(("streaming", k[1]))
        return [f"{table[k]['top1_agreement'] - s['top1_agreement']:+.3f}" if s and k[0] != "streaming" else "-"]

    keys = sorted(set(sweep) | set(out), key=lambda k: (k[0] != "dense", k[1] or 0, k[0]))
    for k in keys:
        dense = k[0] == "dense"
        cells = ["dense (reference)" if dense else k[0], "all" if dense else str(k[1])]
        r = sweep.get(k)
        cells += ([f"{r['top1_agreement']:.3f}", f"{r['min_top1']:.3f}", f"{r['mean_kl']:.4f}", *gap(sweep, k)]
                  if r else ["-"] * (3 + gaps))
        if out:
            o = out.get(k)
            cells += [f"{o['top1_agreement']:.3f}", f"{o['mean_kl']:.4f}", *gap(out, k)] if o else ["-"] * (2 + gaps)
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def per_prompt_table(records: list[dict], ids: list[str], held: set[str]) -> str:
    """Markdown: per policy and budget, top-1 / KL on each prompt (held-out ones marked *)."""
    by = {(_label(r), r["budget"], r.get("prompt")): r for r in records}
    head = ["policy", "budget"] + [f"{i}{'*' if i in held else ''} top-1 / KL" for i in ids]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    keys = sorted({(_label(r), r["budget"]) for r in records}, key=lambda k: (k[0] != "dense", k[1] or 0, k[0]))
    for lab, b in keys:
        cells = ["dense (reference)" if lab == "dense" else lab, "all" if b is None else str(b)]
        for i in ids:
            r = by.get((lab, b, i))
            cells.append(f"{r['top1_agreement']:.3f} / {r['mean_kl']:.4f}" if r else "-")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def streaming_notes(means: list[dict]) -> list[str]:
    """Per raas series: the budgets where its mean top-1 is within 0.005 of streaming's or above (issue 13's bar)."""
    stream = {r["budget"]: r["top1_agreement"] for r in means if _label(r) == "streaming"}
    lines = []
    for lab in sorted({_label(r) for r in means if r["policy"] == "raas"}):
        rs = sorted((r for r in means if _label(r) == lab and r["budget"] in stream), key=lambda r: r["budget"])
        if rs:
            parts = [f"{r['budget']}: {r['top1_agreement'] - stream[r['budget']]:+.3f}" for r in rs]
            ok = all(r["top1_agreement"] >= stream[r["budget"]] - 0.005 for r in rs)
            lines.append(f"{lab} {'>=' if ok else 'below'} streaming - 0.005 in mean top-1 "
                         f"{'at every budget' if ok else 'at some budget'} ({', '.join(parts)})")
    return lines


def plot(records: list[dict], path: Path, title: str = "Fidelity to dense vs budget") -> None:
    fig, (a, b) = plots.figure(2, title)
    policies = [r for r in records if r["policy"] != "dense"]
    plots.lines(a, policies, "budget", "top1_agreement", name=_label)
    plots.lines(b, policies, "budget", "mean_kl", name=_label)
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
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)

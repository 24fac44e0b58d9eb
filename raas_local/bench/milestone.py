"""The milestone-recall suite: can a policy still copy a value that was written earlier?

RaaS is built on "milestone tokens": values a reasoning chain derives, leans
on for a while, then leaves behind. This suite needs no reasoning model: it
writes seeded synthetic chains in which named three-digit values are set
(`` Let apple = 482.``) and used again (`` So apple = 482.``) at controlled
distances, teacher-forces each chain through every policy, and scores, at every
use, the digits after `` apple =``: the model can only get them by copying the
earlier mention from its cache.

Decisions:
- Three kinds of value: ``once`` (set, then used once, from a few to hundreds
  of tokens later), ``lemma`` (set, then used every 12-40 tokens four times,
  like a lemma a proof leans on), and ``lemma-late`` (a lemma used once more,
  long after it was abandoned). Between events: neutral filler sentences without
  digits. Every value has its own name (one token), so a copy needs the right
  binding, not just the latest number.
- A use's distance is counted from the first digit of the value's previous
  mention (set or use) to its own first digit: what a recency window has to
  span. Results are grouped in distance buckets.
- Scored steps: the logits that predict each digit of a use. A use is correct
  when the argmax is the right digit at all three; it agrees with dense when
  its three argmaxes are dense's. **Recall** is the share of the uses dense
  gets right that the policy gets right too: the copies the cache lost. Dense
  is the reference (recall 1 by construction); its own accuracy per bucket is
  reported beside it, as the ceiling this model reaches.
- Chains are a function of (seed, length, the generator's text); their key
  is ``seed<k>`` and a digest of the generator's constants, so a changed
  generator never reuses old records (bump GENERATOR when changing the code).
  The dense record keeps dense's argmax at the scored steps, which scores
  every other policy without running dense again.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from raas_local.bench import plots
from raas_local.bench.plan import Plan, check_prompt_fits, common_settings
from raas_local.bench.variants import policy_name, series
from raas_local.engine import Engine
from raas_local.policies import Policy, make

GENERATOR = 2  # bump when the chain generator's logic changes
PROMPT = "Notes. Each named number is set once with Let and used again later.\n"
NAMES = tuple("""apple river stone cloud tiger piano lemon candle forest rocket garden silver basket violet marble
anchor dragon copper harbor meadow pepper falcon winter button orange island castle jacket mirror pencil rabbit
saddle ticket wallet bridge cotton desert engine feather hammer kitten ladder monkey needle ocean parrot pillow
rubber spider summer temple tunnel velvet window yellow zebra bottle carpet""".split())  # one token each
FILLER = (
    " We check this step again.", " The pattern holds so far.", " Next we look at the other case.",
    " This follows from the rule above.", " Nothing changes in this part.", " We keep going with the argument.",
    " That settles the first question.", " Now consider what happens next.", " The same idea works here too.",
    " It is worth writing this down.", " We compare the two results.", " This part is simple.",
    " The list goes on in the same way.", " Let us not rush this.", " The order does not matter here.",
    " We will need this later.", " Both sides agree.", " This is the key observation.",
)
USE_WORDS = (" So", " Now", " Using", " Again", " Recall")
LEMMA_USES = 4
KINDS = ("once", "lemma", "lemma-late")
BUCKETS = (0, 32, 64, 128, 256, 512, 1024)  # lower edges of the distance buckets (tokens); the last is open

def bucket(distance: int) -> str:
    i = max(j for j, lo in enumerate(BUCKETS) if distance >= lo)
    return f"{BUCKETS[i]}+" if i == len(BUCKETS) - 1 else f"{BUCKETS[i]}-{BUCKETS[i + 1] - 1}"


BUCKET_NAMES = tuple(bucket(lo) for lo in BUCKETS)


def generator_digest() -> str:
    text = json.dumps([GENERATOR, PROMPT, NAMES, FILLER, USE_WORDS, LEMMA_USES])
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class ChainId:
    """A chain's part of the store key, as bench.prompts.Prompt is a fidelity prompt's."""
    seed: int

    @property
    def key(self) -> tuple[str, str]:
        return (f"seed{self.seed}", generator_digest())


@dataclass
class Use:
    start: int       # index in the body of the value's first digit
    value: str
    name: str
    kind: str        # once, lemma, lemma-late
    distance: int    # from the previous mention's first digit


@dataclass
class Chain:
    seed: int
    prompt: list[int]
    body: list[int]
    uses: list[Use] = field(default_factory=list)

    @property
    def steps(self) -> list[int]:
        """The body steps whose logits are scored: each predicts one digit of a use, in use order."""
        return [u.start - 1 + k for u in self.uses for k in range(len(u.value))]


def _log_uniform(rng: random.Random, lo: float, hi: float) -> int:
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo))))))


def make_chain(tokenize, seed: int, n: int) -> Chain:
    """The seeded chain of n body tokens; ``tokenize(text) -> list[int]`` is the model's tokenizer."""
    rng = random.Random(f"milestone-{GENERATOR}-{seed}-{n}")
    n_once, n_lemma = max(1, round(n / 51)), max(1, round(n / 170))
    names = rng.sample(NAMES, min(len(NAMES), n_once + n_lemma))
    values = [str(v) for v in rng.sample(range(100, 1000), len(names))]  # no two names share a value
    events = []  # (target position, tie-break, kind, value index)
    for i in range(len(names)):
        if i < n_once:
            d = _log_uniform(rng, 16, 0.85 * n)
            t = rng.uniform(0, max(1, n - 16 - d))
            events += [(t, 0, "set", i), (t + d, 1, "once", i)]
        else:
            t = rng.uniform(0, 0.5 * n)
            events.append((t, 0, "set", i))
            for k in range(LEMMA_USES):
                t += rng.uniform(12, 40)
                events.append((t, 1 + k, "lemma", i))
            events.append((t + _log_uniform(rng, 48, n - 16 - t), 1 + LEMMA_USES, "lemma-late", i))
    events.sort()
    body: list[int] = []
    last: dict[int, int] = {}
    uses: list[Use] = []

    def fill_to(target: float) -> None:
        while len(body) < target:
            body.extend(tokenize(rng.choice(FILLER)))

    for target, _, kind, i in events:
        fill_to(min(target, n))
        head = " Let" if kind == "set" else rng.choice(USE_WORDS)
        body.extend(tokenize(f"{head} {names[i]} ="))
        body.extend(tokenize(" "))  # the digits are single tokens after a space token (checked in the tests)
        start = len(body)
        body.extend(tokenize(values[i]))
        body.extend(tokenize("."))
        if kind != "set":
            uses.append(Use(start, values[i], names[i], kind, start - last[i]))
        last[i] = start
    fill_to(n)
    body = body[:n]
    uses = [u for u in uses if u.start + len(u.value) <= n]
    return Chain(seed, tokenize(PROMPT), body, uses)


def teacher_force(model, policy: Policy, chain: Chain, on_step=None, **engine_kw) -> tuple[list[int], dict]:
    """Feed the chain through ``policy``; the argmax at each scored step, and the cache's statistics."""
    check_prompt_fits([policy], len(chain.prompt), "the milestone prompt")
    n_ctx = None if policy.evicts else len(chain.prompt) + len(chain.body) + 16
    want = set(chain.steps)
    got: dict[int, int] = {}
    eng = Engine(model=model, policy=policy, n_ctx=n_ctx, **engine_kw)
    try:
        eng.prefill(chain.prompt, pin=True)
        t_dec = 0.0
        for i, tok in enumerate(chain.body):
            t0 = time.perf_counter()
            eng.decode_one_token(tok)
            t_dec += time.perf_counter() - t0
            if i in want:
                got[i] = int(np.argmax(eng.logits()))
            if on_step:
                on_step(i + 1, len(chain.body))
        s = eng.cache_stats()
        stats = dict(kv_cells=s.used, kv_bytes=s.kv_bytes, evictions=s.evictions,
                     tok_per_s=round(len(chain.body) / t_dec, 2) if t_dec > 0 else 0.0)
        return [got[i] for i in chain.steps], stats
    finally:
        eng.close()


@dataclass
class MilestoneRecord:
    suite: str
    policy: str
    budget: int | None
    length: int           # body tokens of the chain
    seed: int
    uses: int
    correct: int          # uses whose three digits the policy predicts
    dense_correct: int    # uses dense predicts
    recalled: int         # uses both dense and the policy predict
    agree: int            # uses whose argmaxes equal dense's
    by_bucket: dict       # bucket name -> [uses, dense correct, recalled, agree, correct]
    by_kind: dict         # kind -> the same
    argmax: list          # the policy's argmax at the chain's scored steps
    kv_cells: int = 0
    kv_bytes: int = 0
    evictions: int = 0
    tok_per_s: float = 0.0


def score(chain: Chain, argmax: list[int], dense: list[int]) -> dict:
    """Counts per use, bucket and kind, from the policy's and dense's argmax at the scored steps."""
    totals = dict(uses=0, correct=0, dense_correct=0, recalled=0, agree=0)
    by_bucket = {b: [0] * 5 for b in BUCKET_NAMES}
    by_kind = {k: [0] * 5 for k in KINDS}
    j = 0
    for u in chain.uses:
        d = len(u.value)
        truth = chain.body[u.start:u.start + d]
        mine, ref = argmax[j:j + d], dense[j:j + d]
        j += d
        ok, ref_ok, same = mine == truth, ref == truth, mine == ref
        row = [1, int(ref_ok), int(ok and ref_ok), int(same), int(ok)]
        for acc in (by_bucket[bucket(u.distance)], by_kind[u.kind]):
            for k in range(5):
                acc[k] += row[k]
        totals["uses"] += 1
        totals["correct"] += ok
        totals["dense_correct"] += ref_ok
        totals["recalled"] += ok and ref_ok
        totals["agree"] += same
    return dict(**totals, by_bucket=by_bucket, by_kind=by_kind)


def record(policy: Policy, chain: Chain, argmax: list[int], dense: list[int], stats: dict) -> MilestoneRecord:
    return MilestoneRecord("milestone", policy.kind, policy.budget, len(chain.body), chain.seed,
                           argmax=argmax, **score(chain, argmax, dense), **stats)


# -- the suite ----------------------------------------------------------------------------------


def _chain_ids(plan: Plan) -> list[ChainId]:
    return [ChainId(s) for s in range(plan.seeds)]


def run(plan: Plan, store, bars) -> None:
    items = plan.budget_items()
    dense_pol = make("dense")
    todo = [(c, [p for p in items if not store.has(plan.key("milestone", p, plan.milestone_chain, c))]) for c in _chain_ids(plan)]
    todo = [(c, ps) for c, ps in todo if ps]
    if not todo:
        return
    n_items = sum(len([p for p in ps if p.kind != "dense"]) + (not store.has(plan.key("milestone", dense_pol, plan.milestone_chain, c)))
                  for c, ps in todo)
    bars.start_suite("milestone", n_items)
    with Engine(model=plan.model, policy=dense_pol, n_ctx=256, **plan.engine_kw) as tok_eng:
        chains = {c.seed: make_chain(tok_eng.tokenize, c.seed, plan.milestone_chain) for c, _ in todo}
    check_prompt_fits(items, len(next(iter(chains.values())).prompt), "the milestone prompt")
    for cid, ps in todo:
        chain = chains[cid.seed]
        label = f" [seed {cid.seed}]"
        dkey = plan.key("milestone", dense_pol, plan.milestone_chain, cid)
        if not store.has(dkey):
            bars.item(f"milestone dense{label}")
            argmax, stats = teacher_force(plan.model, dense_pol, chain, on_step=bars.steps, **plan.engine_kw)
            store.add(plan.stamp(record(dense_pol, chain, argmax, argmax, stats), dense_pol, cid))
            rec = store.get(dkey)
            bars.item_done(f"milestone dense{label}: {rec['dense_correct']}/{rec['uses']} uses copied right")
        dense = store.get(dkey)["argmax"]
        for pol in ps:
            if pol.kind == "dense":
                continue
            name = policy_name(pol)
            bars.item(f"milestone {name}{label}")
            argmax, stats = teacher_force(plan.model, pol, chain, on_step=bars.steps, **plan.engine_kw)
            rec = plan.stamp(record(pol, chain, argmax, dense, stats), pol, cid)
            store.add(rec)
            bars.item_done(f"milestone {name}{label}: recall {_ratio(rec['recalled'], rec['dense_correct'])}, "
                           f"{rec['kv_cells']} KV cells")


def _n(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


def _ratio(a: int, b: int) -> str:
    return f"{a / b:.3f}" if b else "-"


def selected(plan: Plan, store) -> list[dict]:
    keys = [plan.key("milestone", p, plan.milestone_chain, c) for c in _chain_ids(plan) for p in plan.budget_items()]
    return [r for r in (store.get(k) for k in keys) if r is not None]


def settings(plan: Plan) -> str:
    return (f"{common_settings(plan)}; {_n(plan.seeds, 'seeded synthetic chain')} of {plan.milestone_chain} tokens (generator "
            f"{generator_digest()}), teacher-forced through each policy at budgets {', '.join(map(str, plan.budgets))}; "
            "recall: the share of the uses dense copies right that the policy copies right too, by distance "
            "to the value's previous mention (tokens)")


def outputs(plan: Plan, records: list[dict]) -> tuple[str, list[str]]:
    merged = merge(records)
    plot(merged, plan.out / "milestone.png")
    return table(merged), notes(merged)


def _label(r: dict) -> str:
    return series(r["policy"], r.get("settings"))


def merge(records: list[dict]) -> list[dict]:
    """One row per policy series and budget: the counts summed over the chains."""
    groups: dict[tuple, dict] = {}
    for r in records:
        k = (_label(r), r["budget"])
        g = groups.setdefault(k, dict(policy=r["policy"], settings=r.get("settings"), budget=r["budget"], chains=0,
                                      uses=0, correct=0, dense_correct=0, recalled=0, agree=0, evictions=0,
                                      by_bucket={b: [0] * 5 for b in BUCKET_NAMES},
                                      by_kind={kk: [0] * 5 for kk in KINDS}))
        g["chains"] += 1
        for f in ("uses", "correct", "dense_correct", "recalled", "agree", "evictions"):
            g[f] += r[f]
        for part in ("by_bucket", "by_kind"):
            for name, counts in r[part].items():
                g[part][name] = [a + b for a, b in zip(g[part][name], counts)]
    return sorted(groups.values(), key=lambda g: (g["policy"] != "dense", g["budget"] or 0, _label(g)))


def table(merged: list[dict]) -> str:
    """Markdown: per policy and budget, recall overall, per distance bucket and per kind, and agreement."""
    buckets = [b for b in BUCKET_NAMES if any(g["by_bucket"][b][0] for g in merged)]
    head = (["policy", "budget", "recall"] + [f"recall at {b}" for b in buckets]
            + [f"recall ({k})" for k in KINDS] + ["agrees with dense", "evictions"])
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in merged:
        if g["policy"] == "dense":  # the reference: its own accuracy, the ceiling of every recall
            cells = ["dense (copied right, of uses)", "all", f"{g['dense_correct']}/{g['uses']}"]
            cells += [f"{c[1]}/{c[0]}" for c in (g["by_bucket"][b] for b in buckets)]
            cells += [f"{c[1]}/{c[0]}" for c in (g["by_kind"][k] for k in KINDS)] + ["-", "0"]
        else:
            cells = [_label(g), str(g["budget"]), _ratio(g["recalled"], g["dense_correct"])]
            cells += [_ratio(c[2], c[1]) for c in (g["by_bucket"][b] for b in buckets)]
            cells += [_ratio(c[2], c[1]) for c in (g["by_kind"][k] for k in KINDS)]
            cells += [_ratio(g["agree"], g["uses"]), str(g["evictions"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def notes(merged: list[dict]) -> list[str]:
    dense = next((g for g in merged if g["policy"] == "dense"), None)
    if dense is None:
        return []
    return [f"dense copies {dense['dense_correct']} of {dense['uses']} uses right over {_n(dense['chains'], 'chain')}; "
            "recall counts only those"]


def plot(merged: list[dict], path: Path, title: str = "Milestone recall vs distance") -> None:
    """One panel per budget: recall per distance bucket, one line per policy."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    budgets = sorted({g["budget"] for g in merged if g["budget"] is not None}) or [None]
    buckets = [b for b in BUCKET_NAMES if any(g["by_bucket"][b][1] for g in merged)]
    cols = min(3, len(budgets))
    rows = math.ceil(len(budgets) / cols)
    fig = Figure(figsize=(5.5 * cols, 4.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    fig.suptitle(title)
    for ax, b in zip(axes, budgets):
        rs = [g for g in merged if g["budget"] == b and g["policy"] != "dense"]
        pts = [dict(policy=g["policy"], settings=g["settings"], budget=b, x=i,
                    recall=g["by_bucket"][name][2] / g["by_bucket"][name][1])
               for g in rs for i, name in enumerate(buckets) if g["by_bucket"][name][1]]
        plots.lines(ax, pts, "x", "recall", name=_label)
        ax.set_xticks(range(len(buckets)), buckets)
        ax.set_xlabel("distance to the previous mention (tokens)")
        ax.set_ylabel("recall (of dense's correct copies)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"budget {b}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(budgets):]:
        ax.set_visible(False)
    fig.savefig(path, dpi=100)

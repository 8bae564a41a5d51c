"""The sequential design over seeds: when a claim is judged, at which level, and which variants get
more seeds.

A claim is judged at a few looks — after the first n₁ seeds of its variants, then n₂, … (the
preset's "seeds", e.g. [3, 5, 8]) — and its verdict is the first decision reached. Each look tests at
ALPHA / (number of looks) (a Bonferroni split of α over the looks), so over the whole sequence each
wrong decision has probability at most ALPHA; a simulation test (tests/test_sequential.py) checks
this. The runner (engine/runner.py) adds seeds only to the variants of claims still undecided after a
look (next_look); the report recomputes the same verdicts from the rows (claim_verdicts), so the two
always agree.
"""
import json

import pandas as pd

from engine.claims import DECIDED, Verdict
from engine.rows import OK
from engine.stats import ALPHA


def looks_of(seeds):
    """The looks of a preset's "seeds": an int is one look at that many seeds (a fixed design);
    a list of increasing ints is the sequential design's looks."""
    looks = [seeds] if isinstance(seeds, int) else list(seeds)
    if not looks or any(not isinstance(n, int) or n < 1 for n in looks) or looks != sorted(set(looks)):
        raise ValueError(f"seeds must be an int >= 1 or a list of increasing ints >= 1, got {seeds!r}")
    return looks


def seed_values(rows, metric, minus=None):
    """{variant: {seed: value}} over the finished rows (a DataFrame); with `minus`, each run's
    metric − minus (e.g. internal − boundary accuracy: which one a change lifts more)."""
    ok = rows[rows["status"] == OK]
    if metric not in ok or (minus is not None and minus not in ok):
        return {}
    column = ok[metric] - ok[minus] if minus is not None else ok[metric]
    out = {}
    for (variant, seed), value in zip(zip(ok["variant"], ok["seed"]), column):
        if not pd.isna(value):
            out.setdefault(variant, {})[int(seed)] = float(value)
    return out


def same_run_pairs(rows):
    """Pairs {a, b} of variants whose rows at every common seed come from one trained model (the
    same run id, other evaluation options): their comparison is paired by construction."""
    ok = rows[rows["status"] == OK]
    runs = {v: dict(zip(g["seed"].astype(int), g["run_id"].astype(str))) for v, g in ok.groupby("variant")}
    pairs = set()
    for a in runs:
        for b in runs:
            common = set(runs[a]) & set(runs[b])
            if a < b and common and all(runs[a][s] == runs[b][s] for s in common):
                pairs.add(frozenset((a, b)))
    return pairs


def rows_looks(rows):
    """The looks of the design that wrote the latest row (column seed_looks; rows of before the
    sequential design have none: one look at every seed they have)."""
    if "seed_looks" in rows and isinstance(rows["seed_looks"].iloc[-1], str):
        return looks_of(json.loads(rows["seed_looks"].iloc[-1]))
    return [int(rows["seed"].max()) + 1]


def sequential(claim, by_seed, looks, band=None, same_run=frozenset(), upto=None):
    """A claim's verdict under the sequential design: the first look that decides it.

    by_seed: {variant: {seed: value}} (finished runs). At look k the claim sees each variant's
    seeds < looks[k] and is tested at ALPHA / len(looks). same_run: pairs {a, b} whose rows come
    from the same trained model at every seed (then the paired test). Returns (outcome, statistic,
    look number (1-based), seeds per variant at that look, seeds per variant a decision would need at
    the observed difference: 0 once decided, math.inf when none is in sight). upto: judge only the
    first `upto` looks (the runner, between looks); the level stays that of all the looks."""
    alpha = ALPHA / len(looks)
    pair = claim.pair()
    paired = pair is not None and frozenset(pair) in same_run
    for k, n in enumerate(looks[:upto], 1):
        if paired:
            common = sorted(s for s in set(by_seed.get(pair[0], {})) & set(by_seed.get(pair[1], {})) if s < n)
            values = {v: [by_seed[v][s] for s in common] for v in pair}
        else:
            values = {v: [x for s, x in sorted(d.items()) if s < n] for v, d in by_seed.items()}
        outcome, text = claim.judge(values, alpha, band, paired)
        if outcome in DECIDED:
            return outcome, text, k, n, 0
        # no more seeds beyond this look: a later look would see the same data
        if all(max(by_seed.get(v, {0: 0}), default=0) < n for v in claim.variants()):
            break
    line, need = claim.power(values, alpha, band, paired)
    return outcome, text + "; " + line, k, n, need


def claim_band(spec, claim):
    """The equivalence band a claim is judged with: its own, else the ablation's for its metric."""
    return claim.band if claim.band is not None else spec.bands.get(claim.metric)


def claim_verdicts(spec, rows, looks=None, upto=None):
    """[Verdict] for every claim of an ablation, from its rows (one plan). The runner (between looks:
    `upto`) and the report both call this. looks: default, the design of the latest row."""
    looks, pairs = looks or rows_looks(rows), same_run_pairs(rows)
    out = []
    for claim in spec.claims:
        by_seed = seed_values(rows, claim.metric, claim.minus)
        outcome, text, look, n, need = sequential(claim, by_seed, looks, claim_band(spec, claim), pairs, upto)
        out.append(Verdict(claim, outcome, text, look, n, len(looks), need))
    return out


def first_look_runs(plans, selection):
    """Run ids of the first look and of the selection runs: what every ablation trains."""
    return {p.run_id for p in plans if p.seed < p.looks[0]} | {p.run_id for p in selection}


def next_look(undecided, plans, seeds, planned, max_runs=None, failed=frozenset()):
    """The variants that get seeds up to `seeds` at the next look, the undecided claims the run budget
    leaves out, and those left out because a variant they read has failed in every run so far
    (`failed`: e.g. a deep linear stack that diverges at the preset's lr; more seeds of it would
    only fail again, and they would take budget from claims that can still be decided).

    The run budget (the ablation file's MAX_RUNS for the preset: the most distinct training runs
    the ablation may plan, selection runs and runs shared with other ablations included) is spent on
    the undecided claims in the order given (the runner: nearest a decision first); a claim whose
    extra runs would exceed it gets no more seeds. `planned` (run ids) grows with what is taken.
    Stopping a claim early, for whatever reason the data give, keeps the error control: each look
    tests at its own α, fixed in advance (a Bonferroni split), so the looks it skips only lower its
    chance of a wrong decision."""
    wanted, left, hopeless = set(), [], []
    for claim in undecided:
        variants = set(claim.variants())
        if variants & set(failed):
            hopeless.append(claim)
            continue
        extra = {p.run_id for p in plans if p.variant in variants and p.seed < seeds} - planned
        if max_runs is not None and len(planned) + len(extra) > max_runs:
            left.append(claim)
            continue
        wanted |= variants
        planned |= extra
    return wanted, left, hopeless

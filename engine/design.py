"""The sequential design over seeds: when a claim is judged, at which level, and which variants get
more seeds.

A claim is judged at a few looks — after the first n₁ seeds of its variants, then n₂, … (the
preset's "seeds", e.g. [3, 5, 8], as far as the ablation's run budget can reach: reachable_looks) —
and its verdict is the first decision reached. Each look tests at ALPHA / (number of reachable looks)
(a Bonferroni split of α over the looks), so over the whole sequence each
wrong decision has probability at most ALPHA; a simulation test (tests/test_sequential.py) checks
this. The runner (engine/runner.py) adds seeds only to the variants of claims still undecided after a
look (next_look); the report recomputes the same verdicts from the rows (claim_verdicts), so the two
always agree. Variants of one plan pair by seed (paired_by_seed); a failed run is -inf in
seed_values, so the claims count it (ranked last) instead of judging the survivors; comparison_key
and same_comparison tell when two claims are one comparison (the report counts it once).
"""
import json
import math

import numpy as np
import pandas as pd

from engine.claims import DECIDED, Verdict
from engine.rows import OK, Status
from engine.stats import ALPHA


def looks_of(seeds):
    """The looks of a preset's "seeds": an int is one look at that many seeds (a fixed design);
    a list of increasing ints is the sequential design's looks."""
    looks = [seeds] if isinstance(seeds, int) else list(seeds)
    if not looks or any(not isinstance(n, int) or n < 1 for n in looks) or looks != sorted(set(looks)):
        raise ValueError(f"seeds must be an int >= 1 or a list of increasing ints >= 1, got {seeds!r}")
    return looks


def seed_values(rows, metric, minus=None):
    """{variant: {seed: value}} over the finished rows (a DataFrame), and each diverged run as -inf (a
    failure counts against its variant: ranked below every finished run, never left out); with
    `minus`, each run's metric − minus (e.g. internal − boundary accuracy: which one a change lifts more)."""
    ok = rows[rows["status"] == OK]
    if metric not in ok or (minus is not None and minus not in ok):
        return {}
    column = ok[metric] - ok[minus] if minus is not None else ok[metric]
    out = {}
    for (variant, seed), value in zip(zip(ok["variant"], ok["seed"]), column):
        if not pd.isna(value):
            out.setdefault(variant, {})[int(seed)] = float(value)
    failed = rows[rows["status"] == Status.DIVERGED]
    for variant, seed in zip(failed["variant"], failed["seed"]):
        out.setdefault(variant, {}).setdefault(int(seed), -math.inf)
    return out


def paired_by_seed(rows):
    """Whether the rows' variants pair by seed by design: one data config (the same seed then gives
    every variant the same data order and augmentation, the same pretrained backbone, and the same
    initial weights wherever the architectures agree)."""
    return "data_config" in rows and rows["data_config"].nunique() <= 1


def pair_correlation(by_seed, a, b):
    """Pearson's r of two variants' values over their common seeds with finished runs (None below 3)."""
    common = [s for s in sorted(set(by_seed.get(a, {})) & set(by_seed.get(b, {})))
              if math.isfinite(by_seed[a][s]) and math.isfinite(by_seed[b][s])]
    if len(common) < 3:
        return None
    x, y = [by_seed[a][s] for s in common], [by_seed[b][s] for s in common]
    return float(np.corrcoef(x, y)[0, 1]) if np.std(x) > 0 and np.std(y) > 0 else None


def rows_looks(rows):
    """The looks of the design that wrote the latest row (column seed_looks; rows of before the
    sequential design have none: one look at every seed they have)."""
    if "seed_looks" in rows and isinstance(rows["seed_looks"].iloc[-1], str):
        return looks_of(json.loads(rows["seed_looks"].iloc[-1]))
    return [int(rows["seed"].max()) + 1]


def look_values(claim, by_seed, n, paired):
    """The claim's values at a look of n seeds: {variant: [value per seed < n]}; paired, only the seeds
    every variant of the claim has, in one order (seed i of each list is one block)."""
    if not paired:
        return {v: [x for s, x in sorted(d.items()) if s < n] for v, d in by_seed.items()}
    common = set.intersection(*(set(by_seed.get(v, {})) for v in claim.variants()))
    return {v: [by_seed[v][s] for s in sorted(common) if s < n] for v in claim.variants()}


def sequential(claim, by_seed, looks, band=None, paired=False, upto=None):
    """A claim's Verdict under the sequential design: the first look that decides it.

    by_seed: {variant: {seed: value}} (finished runs; failed ones -inf). At look k the claim sees each
    variant's seeds < looks[k] and is tested at ALPHA / len(looks) (looks: those the run budget can
    reach, engine/plans.py). paired: variants pair by seed (paired tests, Page's trend test), else
    Welch. upto: judge only the first `upto` looks (the runner, between looks); the level stays that
    of all the looks."""
    alpha = ALPHA / len(looks)
    for k, n in enumerate(looks[:upto], 1):
        values = look_values(claim, by_seed, n, paired)
        outcome, text = claim.judge(values, alpha, band, paired)
        if outcome in DECIDED:
            return Verdict(claim, outcome, text, k, n, len(looks), 0, *claim.difference(values, paired))
        # no more seeds beyond this look: a later look would see the same data
        if all(max(by_seed.get(v, {0: 0}), default=0) < n for v in claim.variants()):
            break
    line, need = claim.power(values, alpha, band, paired)
    return Verdict(claim, outcome, text + "; " + line, k, n, len(looks), need, *claim.difference(values, paired))


def comparison_key(rows, claim):
    """What a claim compares: its test, metric and, per variant it reads, {seed: (run id, eval id)} of its
    finished runs (one trained model evaluated two ways, e.g. single- and multi-scale, is two sets of
    numbers). same_comparison tells two keys of one comparison apart from two comparisons."""
    runs, ok = {}, rows[rows["status"] == OK]
    for v, s, r, e in zip(ok["variant"], ok["seed"], ok["run_id"].astype(str), ok["eval_id"].astype(str)):
        runs.setdefault(v, {})[int(s)] = (r, e)
    return (type(claim).__name__, claim.metric, claim.minus), tuple(runs.get(v, {}) for v in claim.variants())


def same_comparison(key_a, key_b):
    """Whether two claims are one comparison: the same test and metric on the same trained models (at
    every seed both have, side by side; e.g. two ablations reading the same runs, one with more seeds,
    or a '_tuned' variant whose selection chose the preset's lr). Such a claim is judged once."""
    (test_a, sides_a), (test_b, sides_b) = key_a, key_b
    if test_a != test_b or len(sides_a) != len(sides_b):
        return False
    return all(set(a) & set(b) and all(a[s] == b[s] for s in set(a) & set(b)) for a, b in zip(sides_a, sides_b))


def published_difference(spec, claim):
    """The paper's effect for a claim: a − b of a two-variant claim, last − first of a trend, from the
    ablation's published numbers (Ratio: a / b, or the claim's own published ratio); None where the
    paper prints no pair."""
    from engine.claims import Increasing, Ratio
    ends = (claim.order[-1], claim.order[0]) if isinstance(claim, Increasing) else claim.pair()
    if ends is None or claim.minus is not None:
        return getattr(claim, "published", None)
    a, b = (getattr(spec, "published", {}).get(v, {}).get(claim.metric) for v in ends)
    if a is None or b is None:
        return getattr(claim, "published", None)
    return a / b if isinstance(claim, Ratio) else a - b


def claim_band(spec, claim):
    """The equivalence band a claim is judged with, fixed before any run: its own; else, for an accuracy
    (a metric with a suite band) where the paper prints the effect, half the published effect — so
    'absent' says the reproduced effect is below half the paper's, which does contradict its size;
    else the ablation's band for its metric (the suite's: engine/spec.py DEFAULT_BANDS)."""
    if claim.band is not None:
        return claim.band
    published = published_difference(spec, claim)
    if published and claim.metric in spec.bands and not getattr(claim, "min_ratio", None):
        return round(abs(published) / 2, 4)
    return spec.bands.get(claim.metric)


def claim_verdicts(spec, rows, looks=None, upto=None):
    """[Verdict] for every claim of an ablation, from its rows (one plan). The runner (between looks:
    `upto`) and the report both call this. looks: default, the design of the latest row."""
    looks, paired = looks or rows_looks(rows), paired_by_seed(rows)
    return [sequential(claim, seed_values(rows, claim.metric, claim.minus), looks, claim_band(spec, claim), paired,
                       upto) for claim in spec.claims]


def reachable_looks(claims, plans, first_runs, looks, max_runs):
    """The looks a run budget can reach: the first, and each later one at which at least one claim's
    variants could have their seeds (beyond the first look's runs and the selection runs) within
    max_runs. α is spread over these only: a look that can never happen reserves none."""
    if max_runs is None:
        return tuple(looks)
    reach = [looks[0]]
    for n in looks[1:]:
        cheapest = min((len(first_runs | {p.run_id for p in plans if p.variant in set(c.variants()) and p.seed < n})
                        for c in claims), default=math.inf)
        if cheapest > max_runs:
            break
        reach.append(n)
    return tuple(reach)


def futile(verdict, looks):
    """The futility rule, fixed before its first use: after a look, an undecided claim whose power line
    needs more seeds per variant than the design's last look offers (verdict.need: its nearest decision
    at the observed difference, at the looks' α; looks: those the run budget can reach) gets no more
    seeds: the looks left are not expected to decide it, and the runs go to claims they can decide.
    It only ends a claim's looks early, and each look keeps its own α, so it raises no verdict: a claim
    it stops is inconclusive where it would have been decided later, never the reverse
    (tests/test_sequential.py simulates it)."""
    return not verdict.decided and verdict.need > looks[-1]


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

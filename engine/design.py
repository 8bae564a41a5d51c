"""The sequential design over seeds: when a claim is judged, at which level, and which variants get
more seeds.

A claim is judged at a few looks — after the first n₁ seeds of its variants, then n₂, … (the
preset's "seeds", e.g. [3, 5, 8], as far as the ablation's run budget can reach: reachable_looks) —
and its verdict is the first decision reached. Each look tests at ALPHA / (number of reachable looks)
(a Bonferroni split of α over the looks), so over the whole sequence each
wrong decision has probability at most ALPHA; a simulation test (tests/test_sequential.py) checks
this. The ablation's driver (engine/one_ablation.py) adds seeds only to the variants of claims still undecided after a
look (next_look); the report recomputes the same verdicts from the rows (claim_verdicts), so the two
always agree. A claim's variants pair by seed when they share one data config (paired_by_seed); a failed run is -inf in
seed_values, so the claims count it (ranked last) instead of judging the survivors; comparison_key
and same_comparison tell when two claims are one comparison — the same runs, evaluations, test, pairing and
band (the report counts it once).
"""
import json
import math

import numpy as np
import pandas as pd

from engine.claims import DECIDED, Verdict
from engine.rows import OK, Status
from engine.stats import ALPHA, clean, seeds_to_reach, spread


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


def paired_by_seed(rows, variants=None):
    """Whether the rows' variants (or those named) pair by seed by design: one data config (the same seed
    then gives every variant the same data order and augmentation, the same pretrained backbone, and the
    same initial weights wherever the architectures agree; two evaluations of one trained model share
    everything). A claim whose variants train on different data configs is judged unpaired (Welch)."""
    if "data_config" not in rows:
        return False
    if variants is not None:
        rows = rows[rows["variant"].isin(list(variants))]
    return rows["data_config"].nunique() <= 1


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


def sequential(claim, by_seed, looks, band=None, paired=False, upto=None, power=True):
    """A claim's Verdict under the sequential design: the first look that decides it.

    by_seed: {variant: {seed: value}} (finished runs; failed ones -inf). At look k the claim sees each
    variant's seeds < looks[k] and is tested at ALPHA / len(looks) (looks: those the run budget can
    reach, engine/plans.py). paired: variants pair by seed (paired tests, Page's trend test), else
    Welch. upto: judge only the first `upto` looks (the runner, between looks); the level stays that
    of all the looks. power=False leaves out an undecided claim's power line (simulations need the outcome only)."""
    alpha = ALPHA / len(looks)
    for k, n in enumerate(looks[:upto], 1):
        values = look_values(claim, by_seed, n, paired)
        outcome, text = claim.judge(values, alpha, band, paired)
        if outcome in DECIDED:
            return Verdict(claim, outcome, text, k, n, len(looks), 0, claim.shown(values, outcome, alpha, band, paired),
                           paired, band)
        # no more seeds beyond this look: a later look would see the same data
        if all(max(by_seed.get(v, {0: 0}), default=0) < n for v in claim.variants()):
            break
    line, need = claim.power(values, alpha, band, paired) if power else ("power: not computed", math.inf)
    return Verdict(claim, outcome, text + "; " + line, k, n, len(looks), need,
                   claim.shown(values, outcome, alpha, band, paired), paired, band)


def comparison_key(rows, verdict):
    """What a verdict's claim compares: its test (kind, pairing, band), metric and, per variant it reads,
    {seed: (run id, eval id)} of its finished runs (one trained model evaluated two ways, e.g. single- and
    multi-scale, is two sets of numbers). same_comparison tells two keys of one comparison apart from two
    comparisons: the same runs judged with another band or test are another comparison."""
    claim = verdict.claim
    runs, ok = {}, rows[rows["status"] == OK]
    for v, s, r, e in zip(ok["variant"], ok["seed"], ok["run_id"].astype(str), ok["eval_id"].astype(str)):
        runs.setdefault(v, {})[int(s)] = (r, e)
    test = (type(claim).__name__, claim.metric, claim.minus, verdict.paired, verdict.band,
            getattr(claim, "margin", None), getattr(claim, "min_ratio", None))
    return test, tuple(runs.get(v, {}) for v in claim.variants())


def same_comparison(key_a, key_b):
    """Whether two claims are one comparison: the same test and metric on the same trained models (at
    every seed both have, side by side; e.g. two ablations reading the same runs, one with more seeds,
    or a '_tuned' variant whose selection chose the preset's lr). Such a claim is judged once."""
    (test_a, sides_a), (test_b, sides_b) = key_a, key_b
    if test_a != test_b or len(sides_a) != len(sides_b):
        return False
    return all(set(a) & set(b) and all(a[s] == b[s] for s in set(a) & set(b)) for a, b in zip(sides_a, sides_b))


def published_difference(spec, claim):
    """The paper's effect for a claim, signed as the claim (positive: as the paper says): its own
    `published` where it sets one (e.g. before the CRF); else, from the ablation's published numbers,
    a − b of a two-variant claim (Ratio: a / b), last − first of a trend, the expected variant − the best
    other of a "best" claim; None where the paper prints no such pair."""
    from engine.claims import Best, Increasing
    if claim.published is not None or claim.minus is not None:
        return claim.published
    number = {v: getattr(spec, "published", {}).get(v, {}).get(claim.metric) for v in claim.variants()}
    if isinstance(claim, Best):
        others = [number[c] for c in claim.candidates if c != claim.expected]
        if number[claim.expected] is None or not others or None in others:
            return None
        return number[claim.expected] - max(others)
    ends = (claim.order[-1], claim.order[0]) if isinstance(claim, Increasing) else claim.pair()
    a, b = (number[v] for v in ends)
    if a is None or b is None:
        return None
    return claim.effect(a, b)


# The equivalence band, in units of the table's seed noise (seed_noise): 'absent' says the difference lies within
# BAND_SEED_SDS seed sds of this data, below what a change of seed or two does here. Half the published effect
# (the rule before) does not transfer: effects on the embedded data are a median 1.7× the papers', so half a
# paper's effect was narrower than the seed noise for 23 of 51 claims (psp_pool B1: ±0.065 mIoU, 179 seeds to
# show 'absent'). 2 is fixed here, with the README, before any verdict under it was read: the smallest of 1,
# 1.5 and 2 for which 'absent' is within the design's reach for most comparisons (absent_seeds ≤ the last
# reachable look, were the true difference 0: 24, 37 and 41 of 74 on the committed rows; half the published
# effect: 29), a count that depends on the seed spread only, never on a difference.
BAND_SEED_SDS = 2.0


def seed_noise(rows, metric, minus=None):
    """A table's seed noise in a metric: the median over its variants of each one's seed sd, over the finished
    runs of the first look's seeds (so the band is the same at every look); None below 2 seeds a variant."""
    first = rows_looks(rows)[0] if "seed" in rows and len(rows) else 0
    sds = [float(np.std(v, ddof=1)) for v in ([x for s, x in d.items() if s < first and math.isfinite(x)]
                                              for d in seed_values(rows, metric, minus).values()) if len(v) >= 2]
    return float(np.median(sds)) if sds else None


def claim_band(spec, claim, rows=None):
    """The equivalence band a claim is judged with, by a rule fixed before running: its own (a 'matches'
    claim's declared margin); else, for a metric with a suite band (accuracies: spec.bands), BAND_SEED_SDS ×
    the table's seed noise in it (seed_noise, from `rows`); the suite's band for the metric where there is no
    noise to scale by (engine/spec.py DEFAULT_BANDS); none for other metrics (speeds, shares: never 'absent')."""
    if claim.band is not None:
        return claim.band
    if claim.metric not in spec.bands:
        return None
    noise = seed_noise(rows, claim.metric, claim.minus) if rows is not None else None
    return round(BAND_SEED_SDS * noise, 2) if noise else spec.bands[claim.metric]


def claim_verdicts(spec, rows, looks=None, upto=None):
    """[Verdict] for every claim of an ablation, from its rows (one plan). The runner (between looks:
    `upto`) and the report both call this. looks: default, the design of the latest row. Each claim is
    paired when its own variants pair by seed (paired_by_seed), so one step of a table that changes the
    data config does not unpair the others."""
    looks = looks or rows_looks(rows)
    return [sequential(claim, seed_values(rows, claim.metric, claim.minus), looks, claim_band(spec, claim, rows),
                       paired_by_seed(rows, claim.variants()), upto) for claim in spec.claims]


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


def absent_seeds(claim, by_seed, looks, band, paired):
    """Seeds per variant at which the TOST inside ±band reaches 'absent' with POWER were the claim's true
    difference 0: from the seed spread of its two ends (paired where paired), at its level α / looks;
    math.inf without a band or a spread. A property of the noise and the band only, not of any difference."""
    values = look_values(claim, by_seed, max(looks[-1], 1 + max((s for d in by_seed.values() for s in d), default=0)),
                         paired)
    ends = claim.power_ends(values)
    if band is None or ends is None:
        return math.inf
    a, b = ([x for x in claim.scale(clean(values.get(v, []))) if math.isfinite(x)] for v in ends)
    if len(a) < 2 or len(b) < 2 or (paired and len(a) != len(b)):
        return math.inf
    return seeds_to_reach(claim.scale_band(band), spread(a, b, paired)[0], ALPHA / len(looks), paired)


def family_error(spec, rows, sims=200, seed=0):
    """The simulated chance that at least one of an ablation's comparisons (checks aside) gets a false
    verdict of either kind, were no variant different from any other: 'reproduced' or 'contradicted' (for a
    'matches' claim, 'contradicted' only), under this design — its looks, levels, bands and pairing. Each
    variant's value per seed: a seed effect shared by the variants of that seed (the ablation's median pair
    correlation, where they pair) plus noise, in units of the table's seed noise (bands scaled alike; a
    Ratio's values log-normal). Deterministic (seed); ± about 3 points at 200 simulations."""
    from engine.claims import Close, Outcome
    looks, claims = rows_looks(rows), [c for c in spec.claims if not c.is_check]
    pairs = [pair_correlation(seed_values(rows, c.metric, c.minus), *c.pair()) for c in claims
             if c.pair() and paired_by_seed(rows, c.variants())]
    r = max(0.0, float(np.median([p for p in pairs if p is not None]))) if any(p is not None for p in pairs) else 0.0
    bands = []
    for c in claims:
        band, noise = claim_band(spec, c, rows), seed_noise(rows, c.metric, c.minus)
        bands.append(None if band is None else (band if c.is_ratio else band / noise if noise else
                                                BAND_SEED_SDS))
    variants, paired = sorted({v for c in claims for v in c.variants()}), [paired_by_seed(rows, c.variants()) for c in claims]
    rng, n, false = np.random.default_rng(seed), looks[-1], 0
    for _ in range(sims):
        shared = rng.normal(0, 1, n)
        draws = {v: math.sqrt(r) * shared + math.sqrt(1 - r) * rng.normal(0, 1, n) for v in variants}
        for c, band, pair in zip(claims, bands, paired):
            values = {v: dict(enumerate((np.exp(draws[v] / 4) if c.is_ratio else draws[v]).tolist()))
                      for v in c.variants()}
            outcome = sequential(c, values, looks, band, pair, power=False).outcome
            if outcome == Outcome.CONTRADICTED or (outcome == Outcome.REPRODUCED and not isinstance(c, Close)):
                false += 1
                break
    return false / sims


# A soft failure: a run that trained (finite loss, a row) but missed what its variant's other seeds learn: this
# many of the table's seed noise below its variant's median. Flagged in the report, never dropped or re-judged.
SOFT_SEED_SDS = 4.0


def soft_failures(rows, metric, minus=None):
    """{variant: [(seed, value)]} of the finished runs more than SOFT_SEED_SDS × the table's seed noise below
    their variant's median (e.g. PSPNet seed 1 at 64 mIoU where its other seeds reach 79–81)."""
    noise, out = seed_noise(rows, metric, minus), {}
    if not noise:
        return out
    for variant, by_seed in seed_values(rows, metric, minus).items():
        finite = {s: x for s, x in by_seed.items() if math.isfinite(x)}
        if len(finite) >= 3:
            middle = float(np.median(list(finite.values())))
            low = [(s, x) for s, x in sorted(finite.items()) if x < middle - SOFT_SEED_SDS * noise]
            if low:
                out[variant] = low
    return out

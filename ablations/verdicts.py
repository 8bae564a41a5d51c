"""Judge a paper's claims against per-seed results, with a sequential design over seeds.

Four outcomes:
- reproduced: the claimed direction holds and is significant;
- contradicted: the opposite direction is significant;
- absent: no significant direction, and an equivalence test (TOST) puts the difference inside the
  claim's band (declared in its ablation file before running, e.g. ±2 mIoU): the claimed effect,
  if any, is smaller than the band;
- inconclusive: none of these; the statistic then carries a power line.

Tests (each takes {variant: [value per seed]} and a level alpha): greater (Welch's t, or the paired
t-test where the two variants are evaluations of the same trained model per seed), increasing
(Spearman over all (x, value) pairs, plus neighbour steps), best, ratio (Welch on logarithms) and
close (an equivalence claim: reproduced when TOST puts the difference inside the band).

Sequential design (`sequential`): a claim is judged at a few looks — after the first n₁ seeds of
its variants, then n₂, … (the preset's "seeds", e.g. [3, 5, 8]) — and its verdict is the first
decision reached. Each look tests at ALPHA / (number of looks) (a Bonferroni split of α over the
looks), so over the whole sequence each wrong decision has probability at most ALPHA; a simulation
test (tests/test_verdicts.py) checks this. The runner (ablations/runs.py) adds seeds only to the
variants of claims still undecided after a look; the report recomputes the same verdicts from the
rows, so the two always agree.
"""
import json
import math

import numpy as np
import pandas as pd
from scipy import special, stats

from ablations.rows import OK

ALPHA = 0.05
POWER = 0.8  # of the power lines: the difference the seeds detect with this probability
REPRODUCED, CONTRADICTED, ABSENT, INCONCLUSIVE = "reproduced", "contradicted", "absent", "inconclusive"
DECIDED = (REPRODUCED, CONTRADICTED, ABSENT)


def _clean(values):
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def compare(a, b, paired=False):
    """One-sided test of mean(a) > mean(b): (difference of means, p for a > b, p for a < b).
    Welch's t-test across seeds; with paired=True (a[i] and b[i] come from the same trained model,
    e.g. one network evaluated at two thresholds) the paired t-test on a[i] − b[i]: the model's own
    seed-to-seed variation cancels, which Welch would count twice."""
    if paired:
        a, b = zip(*[(x, y) for x, y in zip(a, b) if x is not None and y is not None
                     and not math.isnan(x) and not math.isnan(y)]) if a else ((), ())
        a, b = list(a), list(b)
    else:
        a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return (np.mean(a) - np.mean(b) if a and b else math.nan), math.nan, math.nan
    diff = float(np.mean(a) - np.mean(b))
    if paired:  # one-sample t on the differences
        d = np.subtract(a, b)
        se2, df = np.var(d, ddof=1) / len(d), len(d) - 1
    else:  # Welch: unequal variances, Welch–Satterthwaite degrees of freedom (as scipy's ttest_ind)
        va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
        se2 = va + vb
        df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se2 > 0 else 1
    if se2 == 0:  # no spread: the sign is all there is
        return diff, (0.0 if diff > 0 else 1.0), (0.0 if diff < 0 else 1.0)
    p_greater = float(special.stdtr(df, -diff / math.sqrt(se2)))  # P(T ≥ t): the t distribution's tail
    return diff, p_greater, 1 - p_greater


def equivalent(a, b, band, alpha, paired=False):
    """TOST: (p, inside) — p of the two one-sided tests that a − b lies inside ±band."""
    _, p_above_lo, _ = compare([v + band for v in a], b, paired)  # H0: a − b ≤ −band
    _, _, p_below_hi = compare([v - band for v in a], b, paired)  # H0: a − b ≥ +band
    p = max(p_above_lo, p_below_hi)
    return p, (p < alpha)


def n_text(a, b, paired):
    return f"paired t, n={len(_clean(a))}" if paired else f"Welch t, n={len(_clean(a))}/{len(_clean(b))}"


def two_sample(a_vals, b_vals, alpha, band=None, paired=False, margin=0.0):
    """The verdict of 'a > b (by more than margin)' from two lists of per-seed values."""
    diff, p_gt, p_lt = compare([v - margin for v in a_vals], b_vals, paired)
    text = f"{diff + margin:+.2f} ({n_text(a_vals, b_vals, paired)}, p(>)={p_gt:.3g}"
    if math.isnan(p_gt):
        return INCONCLUSIVE, text + "); needs ≥ 2 seeds per variant"
    if p_gt < alpha:
        return REPRODUCED, text + ")"
    if p_lt < alpha:
        return CONTRADICTED, text + ")"
    if band:
        p_eq, inside = equivalent(a_vals, b_vals, band, alpha, paired)
        text += f"; TOST ±{band:g} p={p_eq:.3g}"
        if inside:
            return ABSENT, text + ")"
    return INCONCLUSIVE, text + ")"


def greater(values, a, b, margin=0.0, alpha=ALPHA, band=None, paired=False):
    """Claim: variant a scores higher than variant b (by more than `margin`)."""
    verdict, text = two_sample(values.get(a, []), values.get(b, []), alpha, band, paired, margin)
    return verdict, f"{a} − {b} = {text}"


def spearman(x, y):
    """Spearman's rank correlation and its one-sided p for a positive trend (the t approximation,
    as scipy's spearmanr)."""
    rho = float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    n = len(x)
    if abs(rho) >= 1:
        return rho, (0.0 if rho > 0 else 1.0)
    t = rho * math.sqrt((n - 2) / (1 - rho ** 2))
    return rho, float(special.stdtr(n - 2, -t))


def increasing(values, order, xs, alpha=ALPHA, band=None):
    """Claim: the metric rises with x along `order` (variant ids, x ascending).
    Reproduced: a significant positive Spearman trend and no significant drop between neighbours.
    Contradicted: a significant negative trend, or some step significantly downwards (α split
    between the trend and the steps, and over the steps, so that 'contradicted' keeps its level).
    Absent: the last variant is equivalent to the first within the band."""
    pairs = [(x, v) for vid, x in zip(order, xs) for v in _clean(values.get(vid, []))]
    if len({x for x, _ in pairs}) < 3 or len(pairs) < 4:
        return INCONCLUSIVE, "too few variants or seeds for a trend"
    if len({v for _, v in pairs}) == 1:
        return INCONCLUSIVE, f"all {len(pairs)} runs score the same: no trend to test"
    rho, p_pos = spearman([x for x, _ in pairs], [v for _, v in pairs])
    steps = len(order) - 1
    drops, rises = [], 0
    for lo, hi in zip(order[:-1], order[1:]):
        diff, p_gt, p_lt = compare(values.get(hi, []), values.get(lo, []))
        rises += diff > 0
        if p_lt < alpha / (2 * steps):
            drops.append(f"{lo}→{hi} {diff:+.2f} (p={p_lt:.3g})")
    text = (f"Spearman ρ = {rho:+.2f} over {len(pairs)} runs (one-sided p = {p_pos:.3g}); "
            f"mean rose in {rises}/{steps} steps; significant drops: {', '.join(drops) or 'none'}")
    if (rho < 0 and 1 - p_pos < alpha / 2) or drops:
        return CONTRADICTED, text
    if p_pos < alpha:
        return REPRODUCED, text
    if band:
        p_eq, inside = equivalent(values.get(order[-1], []), values.get(order[0], []), band, alpha)
        text += f"; {order[-1]} vs {order[0]} TOST ±{band:g} p={p_eq:.3g}"
        if inside:
            return ABSENT, text
    return INCONCLUSIVE, text


def best(values, expected, candidates, alpha=ALPHA, band=None):
    """Claim: `expected` has the highest mean among `candidates`. Reproduced if it has the highest
    mean and beats the runner-up significantly; contradicted if some other candidate beats it
    significantly (α split over the others); absent if it is equivalent (within the band) to every
    other candidate; otherwise inconclusive."""
    means = {c: np.mean(_clean(values.get(c, []))) for c in candidates if _clean(values.get(c, []))}
    if expected not in means or len(means) < 2:
        return INCONCLUSIVE, "missing results"
    ranked = sorted(means, key=means.get, reverse=True)
    others = [c for c in ranked if c != expected]
    beaters = [c for c in others if compare(values[c], values[expected])[1] < alpha / len(others)]
    if beaters:
        return CONTRADICTED, (f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}); significantly above "
                              f"{expected}: {', '.join(beaters)}")
    runner_up = others[0]
    diff, p_gt, _ = compare(values[expected], values[runner_up])
    if ranked[0] == expected:
        text = f"{expected} best ({means[expected]:.2f}); vs runner-up {runner_up} {diff:+.2f} (Welch p(>)={p_gt:.3g})"
        if p_gt < alpha:
            return REPRODUCED, text
    else:
        text = f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}), {expected} {means[expected]:.2f}; no significant difference"
    if band:
        p_eq = max(equivalent(values[expected], values[c], band, alpha)[0] for c in others)
        text += f"; TOST ±{band:g} vs every other p={p_eq:.3g}"
        if p_eq < alpha:
            return ABSENT, text
    return INCONCLUSIVE, text


def ratio(values, a, b, min_ratio=1.0, alpha=ALPHA, band=None, paired=False):
    """Claim: a's values are at least `min_ratio` times b's (e.g. time at ρ_a over time at ρ_b: a
    speed-up). Judged on logarithms, as `greater` with margin log(min_ratio); the statistic shows
    the ratio of geometric means. band: a ratio (e.g. 1.1: within ±10 % counts as no difference)."""
    la = [math.log(v) for v in _clean(values.get(a, [])) if v > 0]
    lb = [math.log(v) for v in _clean(values.get(b, [])) if v > 0]
    if not la or not lb:
        return INCONCLUSIVE, "missing results"
    verdict, text = two_sample(la, lb, alpha, math.log(band) if band else None, paired, math.log(min_ratio))
    return verdict, (f"{a} / {b} = {math.exp(np.mean(la) - np.mean(lb)):.2f}× (geometric means; claim ≥ "
                     f"{min_ratio:g}×; on logs: {text})")


def close(values, a, b, band, alpha=ALPHA, paired=False):
    """Claim: variants a and b score the same within ±band (an equivalence claim, e.g. 'matches').
    TOST: reproduced if a − b is significantly inside the band; contradicted if it is significantly
    outside (one-sided, on the side of the observed difference, at α/2 per side); otherwise
    inconclusive (with few seeds, equivalence needs a small spread to be shown)."""
    if not band > 0:
        raise ValueError(f"close: band must be > 0, got {band!r}")
    a_vals, b_vals = _clean(values.get(a, [])), _clean(values.get(b, []))
    diff = compare(a_vals, b_vals, paired)[0]
    p_eq, inside = equivalent(a_vals, b_vals, band, alpha, paired)
    _, p_above_hi, _ = compare([v - band for v in a_vals], b_vals, paired)  # a − b > +band
    _, _, p_below_lo = compare([v + band for v in a_vals], b_vals, paired)  # a − b < −band
    text = f"{a} − {b} = {diff:+.2f}, band ±{band:g} (TOST, {n_text(a_vals, b_vals, paired)}, p = {p_eq:.3g})"
    if math.isnan(p_eq):
        return INCONCLUSIVE, text + "; needs ≥ 2 seeds per variant"
    if inside:
        return REPRODUCED, text
    if min(p_above_hi, p_below_lo) < alpha / 2:
        return CONTRADICTED, text + "; significantly outside the band"
    return INCONCLUSIVE, text


def claim_variants(claim):
    """The variant ids a claim reads."""
    ids = [claim.get(k) for k in ("a", "b", "expected")] + list(claim.get("order", [])) + list(claim.get("candidates", []))
    return list(dict.fromkeys(i for i in ids if i))


def judge(claim, values, alpha=ALPHA, band=None, paired=False):
    """Dispatch on claim['test'] at level alpha. band: the equivalence band (claim['band'] wins);
    paired: a and b are evaluations of the same trained model per seed (values aligned by seed)."""
    test, band = claim["test"], claim.get("band", band)
    if test == "greater":
        return greater(values, claim["a"], claim["b"], claim.get("margin", 0.0), alpha, band, paired)
    if test == "increasing":
        return increasing(values, claim["order"], claim["x"], alpha, band)
    if test == "best":
        return best(values, claim["expected"], claim["candidates"], alpha, band)
    if test == "ratio":
        return ratio(values, claim["a"], claim["b"], claim.get("min_ratio", 1.0), alpha, band, paired)
    if test == "close":
        return close(values, claim["a"], claim["b"], band, alpha, paired)
    raise ValueError(f"unknown claim test {test!r}; choose one of greater, increasing, best, ratio, close")


def looks_of(seeds):
    """The looks of a preset's "seeds": an int is one look at that many seeds (a fixed design);
    a list of increasing ints is the sequential design's looks."""
    looks = [seeds] if isinstance(seeds, int) else list(seeds)
    if not looks or any(not isinstance(n, int) or n < 1 for n in looks) or looks != sorted(set(looks)):
        raise ValueError(f"seeds must be an int >= 1 or a list of increasing ints >= 1, got {seeds!r}")
    return looks


def sequential(claim, by_seed, looks, band=None, same_run=frozenset(), upto=None):
    """A claim's verdict under the sequential design: the first look that decides it.

    by_seed: {variant: {seed: value}} (finished runs). At look k the claim sees each variant's
    seeds < looks[k] and is tested at ALPHA / len(looks). same_run: pairs {a, b} whose rows come
    from the same trained model at every seed (then the paired test). Returns
    (verdict, statistic, look number (1-based), seeds per variant at that look, seeds per variant
    a decision would need at the observed difference: 0 once decided, math.inf when none is in
    sight). upto: judge only the first `upto` looks (the runner, between looks); the level stays
    that of all the looks."""
    alpha = ALPHA / len(looks)
    pair = claim.get("a"), claim.get("b")
    paired = claim["test"] in ("greater", "ratio", "close") and frozenset(pair) in same_run
    for k, n in enumerate(looks[:upto], 1):
        if paired:
            common = sorted(s for s in set(by_seed.get(pair[0], {})) & set(by_seed.get(pair[1], {})) if s < n)
            values = {v: [by_seed[v][s] for s in common] for v in pair}
        else:
            values = {v: [x for s, x in sorted(d.items()) if s < n] for v, d in by_seed.items()}
        verdict, text = judge(claim, values, alpha, band, paired)
        if verdict in DECIDED:
            return verdict, text, k, n, 0
        # no more seeds beyond this look: a later look would see the same data
        if all(max(by_seed.get(v, {0: 0}), default=0) < n for v in claim_variants(claim)):
            break
    line, need = power(claim, values, alpha, claim.get("band", band), paired)
    return verdict, text + "; " + line, k, n, need


def seeds_to_reach(distance, sd, alpha, paired):
    """The smallest n per variant (2 … 1000) whose one-sided t test at `alpha` detects `distance`
    with power POWER at this seed spread, or math.inf."""
    if not (distance > 0 and sd > 0):
        return math.inf
    n = np.arange(2, 1001)
    df_n = n - 1 if paired else 2 * n - 2
    reach = (stats.t.ppf(1 - alpha, df_n) + stats.t.ppf(POWER, df_n)) * sd * np.sqrt((1 if paired else 2) / n)
    return int(n[np.argmax(reach <= distance)]) if (reach <= distance).any() else math.inf


def power(claim, values, alpha, band=None, paired=False):
    """For a claim left inconclusive: (power line, seeds per variant its nearest decision would need).
    The line gives the difference its seeds could have detected (one-sided t at `alpha`, power
    POWER) and the seeds the observed difference would need: to be significant, or, with an
    equivalence band, to be shown inside it (an equivalence claim: inside, or outside at α/2) —
    the nearer of these. The runner spends its run budget on the claims nearest a decision first."""
    if claim["test"] == "best":
        means = {c: np.mean(_clean(values.get(c, []))) for c in claim["candidates"] if _clean(values.get(c, []))}
        others = sorted((c for c in means if c != claim["expected"]), key=means.get, reverse=True)
        if claim["expected"] not in means or not others:
            return "power: missing results", math.inf
        a, b = claim["expected"], others[0]
    elif claim["test"] == "increasing":  # the two ends of the trend
        a, b = claim["order"][-1], claim["order"][0]
    else:
        a, b = claim["a"], claim["b"]
    av, bv = _clean(values.get(a, [])), _clean(values.get(b, []))
    log = claim["test"] == "ratio"
    if log:
        av, bv = [math.log(v) for v in av if v > 0], [math.log(v) for v in bv if v > 0]
        band = math.log(band) if band else None
    if len(av) < 2 or len(bv) < 2:
        return "power: needs ≥ 2 seeds per variant", math.inf
    if paired:
        sd, n_eff, df = np.std(np.subtract(av, bv), ddof=1), len(av), len(av) - 1
        se = sd / math.sqrt(n_eff)
    else:
        sd = math.sqrt((np.var(av, ddof=1) * (len(av) - 1) + np.var(bv, ddof=1) * (len(bv) - 1)) / (len(av) + len(bv) - 2))
        se, df = sd * math.sqrt(1 / len(av) + 1 / len(bv)), len(av) + len(bv) - 2
    detectable = (stats.t.ppf(1 - alpha, df) + stats.t.ppf(POWER, df)) * se
    gap = abs(np.mean(av) - np.mean(bv))
    unit = " (on logs)" if log else ""
    line = f"power: these seeds detect a difference of {detectable:.2f}{unit} with {POWER:.0%} power at α = {alpha:.3g}"
    if claim["test"] == "close":  # the observed difference shown inside the band, or outside it (α/2)
        if gap == band:
            return line + f"; the observed {gap:.2f} lies on the band's edge ±{band:g}", math.inf
        inside = gap < band
        need = seeds_to_reach(band - gap, sd, alpha, paired) if inside else seeds_to_reach(gap - band, sd, alpha / 2, paired)
        return line + (f"; showing the observed {gap:.2f} {'inside' if inside else 'outside'} ±{band:g} would need "
                       f"{need_text(need)} seeds per variant"), need
    observed = gap - (math.log(claim.get("min_ratio", 1.0)) if log else claim.get("margin", 0.0))
    significant = seeds_to_reach(observed, sd, alpha, paired)
    line += (f"; the observed {observed:.2f} would need {need_text(significant)} seeds per variant" if observed > 0
             else f"; the observed {observed:.2f}: no difference beyond the margin to detect")
    if not band or gap >= band:
        return line, significant
    absent = seeds_to_reach(band - gap, sd, alpha, paired)  # TOST: each side at alpha
    return line + f" (absent within ±{band:.3g}: {need_text(absent)})", min(significant, absent)


def need_text(need):
    return f"about {need}" if need != math.inf else "more than 1000"


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


def claim_verdicts(spec, rows, looks=None, upto=None):
    """[(claim, verdict, statistic, look, seeds at that look, number of looks, seeds a decision would
    need)] for every claim of an ablation, from its rows (one plan). The runner (between looks:
    `upto`) and the report both call this. looks: default, the design of the latest row."""
    looks, pairs = looks or rows_looks(rows), same_run_pairs(rows)
    out = []
    for claim in spec.CLAIMS:
        band = getattr(spec, "BANDS", {}).get(claim["metric"])  # claim["band"], if any, wins (judge)
        by_seed = seed_values(rows, claim["metric"], claim.get("minus"))
        verdict, text, look, n, need = sequential(claim, by_seed, looks, band, pairs, upto)
        out.append((claim, verdict, text, look, n, len(looks), need))
    return out


def fact_holds(fact):
    """An exact fact equals its formula's value (`expected`) exactly, and matches the paper's printed
    number within its rounding (`tolerance`, e.g. 1000 for '608K') where the paper prints one."""
    if fact.get("expected") is not None and fact["computed"] != fact["expected"]:
        return False
    if fact.get("published") is not None:
        return abs(fact["computed"] - fact["published"]) <= fact.get("tolerance", 0)
    return fact.get("expected") is not None

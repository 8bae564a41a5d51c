"""Judge a paper's claims against per-seed results.

Each test takes {variant_id: [value per seed]} and returns (verdict, statistic text)
(tests: greater, increasing, best, ratio):
- reproduced: the claimed direction holds and is significant (one-sided p < ALPHA);
- contradicted: the opposite direction is significant;
- inconclusive: neither (or too few seeds to say).
Equivalence claims ('close': a matches b within a margin) use two one-sided tests (TOST).
Differences between two variants use Welch's t-test across seeds; trends use Spearman's rank
correlation over all (x, value) pairs. With 2 seeds only large effects reach significance: an
'inconclusive' often means 'more seeds needed', and the statistic says how close it came.
"""
import math
import warnings

import numpy as np
from scipy import stats

ALPHA = 0.05
REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"


def _clean(values):
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def compare(a, b):
    """One-sided Welch t-test of mean(a) > mean(b): (difference of means, p for a > b, p for a < b)."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return (np.mean(a) - np.mean(b) if a and b else math.nan), math.nan, math.nan
    diff = float(np.mean(a) - np.mean(b))
    if np.std(a) == 0 and np.std(b) == 0:  # no spread: the sign is all there is
        return diff, (0.0 if diff > 0 else 1.0), (0.0 if diff < 0 else 1.0)
    with warnings.catch_warnings():  # near-identical seeds: scipy warns, the p-value is still usable
        warnings.simplefilter("ignore", RuntimeWarning)
        t, p_two = stats.ttest_ind(a, b, equal_var=False)
    p_greater = p_two / 2 if t > 0 else 1 - p_two / 2
    return diff, float(p_greater), float(1 - p_greater)


def directional(p_gt, p_lt, text):
    """The verdict of a one-sided claim from its two one-sided p-values."""
    if math.isnan(p_gt):
        return INCONCLUSIVE, text + "; needs ≥ 2 seeds per variant"
    if p_gt < ALPHA:
        return REPRODUCED, text
    if p_lt < ALPHA:
        return CONTRADICTED, text
    return INCONCLUSIVE, text


def greater(values, a, b, margin=0.0):
    """Claim: variant a scores higher than variant b (by more than `margin`)."""
    shifted = [v - margin for v in values.get(a, [])]
    diff, p_gt, p_lt = compare(shifted, values.get(b, []))
    text = f"{a} − {b} = {diff + margin:+.2f} (Welch t, n={len(_clean(values.get(a, [])))}/{len(_clean(values.get(b, [])))}, p(>)={p_gt:.3g})"
    return directional(p_gt, p_lt, text)


def increasing(values, order, xs):
    """Claim: the metric rises with x along `order` (variant ids, x ascending).
    Reproduced: a significant positive Spearman trend and no significant drop between neighbours.
    Contradicted: a significant negative trend, or some step significantly downwards."""
    pairs = [(x, v) for vid, x in zip(order, xs) for v in _clean(values.get(vid, []))]
    if len({x for x, _ in pairs}) < 3 or len(pairs) < 4:
        return INCONCLUSIVE, "too few variants or seeds for a trend"
    if len({v for _, v in pairs}) == 1:
        return INCONCLUSIVE, f"all {len(pairs)} runs score the same: no trend to test"
    rho, p_two = stats.spearmanr([x for x, _ in pairs], [v for _, v in pairs])
    p_pos = p_two / 2 if rho > 0 else 1 - p_two / 2
    drops, rises = [], 0
    for lo, hi in zip(order[:-1], order[1:]):
        diff, p_gt, p_lt = compare(values.get(hi, []), values.get(lo, []))
        rises += diff > 0
        if p_lt < ALPHA:
            drops.append(f"{lo}→{hi} {diff:+.2f} (p={p_lt:.3g})")
    text = (f"Spearman ρ = {rho:+.2f} over {len(pairs)} runs (one-sided p = {p_pos:.3g}); "
            f"mean rose in {rises}/{len(order) - 1} steps; significant drops: {', '.join(drops) or 'none'}")
    if (rho < 0 and 1 - p_pos < ALPHA) or drops:
        return CONTRADICTED, text
    if p_pos < ALPHA:
        return REPRODUCED, text
    return INCONCLUSIVE, text


def best(values, expected, candidates):
    """Claim: `expected` has the highest mean among `candidates`. Reproduced if it has the highest
    mean and beats the runner-up significantly; contradicted if some other candidate beats it
    significantly; otherwise inconclusive."""
    means = {c: np.mean(_clean(values.get(c, []))) for c in candidates if _clean(values.get(c, []))}
    if expected not in means or len(means) < 2:
        return INCONCLUSIVE, "missing results"
    ranked = sorted(means, key=means.get, reverse=True)
    beaters = [c for c in ranked if c != expected and compare(values[c], values[expected])[1] < ALPHA]
    if beaters:
        return CONTRADICTED, f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}); significantly above {expected}: {', '.join(beaters)}"
    if ranked[0] == expected:
        diff, p_gt, _ = compare(values[expected], values[ranked[1]])
        text = f"{expected} best ({means[expected]:.2f}); vs runner-up {ranked[1]} {diff:+.2f} (Welch p(>)={p_gt:.3g})"
        return (REPRODUCED if p_gt < ALPHA else INCONCLUSIVE), text
    return INCONCLUSIVE, f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}), {expected} {means[expected]:.2f}; no significant difference"


def ratio(values, a, b, min_ratio=1.0):
    """Claim: a's values are at least `min_ratio` times b's (e.g. time at ρ_a over time at ρ_b: a
    speed-up). Judged on logarithms, as `greater` with margin log(min_ratio); the statistic shows
    the ratio of geometric means."""
    la = [math.log(v) for v in _clean(values.get(a, [])) if v > 0]
    lb = [math.log(v) for v in _clean(values.get(b, [])) if v > 0]
    if not la or not lb:
        return INCONCLUSIVE, "missing results"
    _, p_gt, p_lt = compare([v - math.log(min_ratio) for v in la], lb)
    text = (f"{a} / {b} = {math.exp(np.mean(la) - np.mean(lb)):.2f}× (geometric means; claim ≥ {min_ratio:g}×; "
            f"Welch t on logs, n={len(la)}/{len(lb)}, p(≥)={p_gt:.3g})")
    return directional(p_gt, p_lt, text)


def close(values, a, b, margin):
    """Claim: variants a and b score the same within ±margin (an equivalence claim, e.g. 'matches').
    Two one-sided Welch t-tests (TOST): reproduced if a − b is significantly above −margin and
    significantly below +margin; contradicted if it is significantly outside the band; otherwise
    inconclusive (with few seeds, equivalence needs a small spread to be shown)."""
    if not margin > 0:
        raise ValueError(f"close: margin must be > 0, got {margin!r}")
    a_vals, b_vals = _clean(values.get(a, [])), _clean(values.get(b, []))
    diff = compare(a_vals, b_vals)[0]
    _, p_above_lo, p_below_lo = compare([v + margin for v in a_vals], b_vals)  # vs a − b = −margin
    _, p_above_hi, p_below_hi = compare([v - margin for v in a_vals], b_vals)  # vs a − b = +margin
    text = (f"{a} − {b} = {diff:+.2f}, band ±{margin:g} (TOST Welch, n={len(a_vals)}/{len(b_vals)}, "
            f"p = {max(p_above_lo, p_below_hi):.3g})")
    if math.isnan(p_above_lo):
        return INCONCLUSIVE, text + "; needs ≥ 2 seeds per variant"
    if p_above_lo < ALPHA and p_below_hi < ALPHA:
        return REPRODUCED, text
    if p_above_hi < ALPHA or p_below_lo < ALPHA:
        return CONTRADICTED, text + "; significantly outside the band"
    return INCONCLUSIVE, text


def judge(claim, values):
    """Dispatch on claim['test'] ('greater', 'increasing', 'best', 'close') with the claim's arguments."""
    test = claim["test"]
    if test == "greater":
        return greater(values, claim["a"], claim["b"], claim.get("margin", 0.0))
    if test == "increasing":
        return increasing(values, claim["order"], claim["x"])
    if test == "best":
        return best(values, claim["expected"], claim["candidates"])
    if test == "ratio":
        return ratio(values, claim["a"], claim["b"], claim.get("min_ratio", 1.0))
    if test == "close":
        return close(values, claim["a"], claim["b"], claim["margin"])
    raise ValueError(f"unknown claim test {test!r}; choose one of greater, increasing, best, ratio, close")


def fact_holds(fact):
    """An exact fact equals its formula's value (`expected`) exactly, and matches the paper's printed
    number within its rounding (`tolerance`, e.g. 1000 for '608K') where the paper prints one."""
    if fact.get("expected") is not None and fact["computed"] != fact["expected"]:
        return False
    if fact.get("published") is not None:
        return abs(fact["computed"] - fact["published"]) <= fact.get("tolerance", 0)
    return fact.get("expected") is not None

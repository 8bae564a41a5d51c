"""The statistical tests the claims use, on per-seed values (lists of floats, one per trained model).

- compare: one-sided t-test of mean(a) > mean(b), Welch's across seeds, or paired where a[i] and b[i]
  come from the same trained model (then the model's own seed-to-seed variation cancels);
- equivalent: TOST, the two one-sided tests that a − b lies inside ±band;
- spearman: rank correlation with a one-sided p for a positive trend;
- rank_compare: the one-sided Mann–Whitney test, when a variant has failed runs (ranked last) and runs do
  not pair; sign_test and sign_interval: the paired sign test and its order-statistic interval, when they
  pair (a failed run is the worst outcome: it loses its pair);
- difference_ci: a difference with its 95 % interval (paired where paired);
- power_of, seeds_to_reach, detectable: the noncentral t's power, for the power lines of claims left
  undecided (the seeds per variant a difference needs, the difference the seeds detect).
"""
import math

import numpy as np
from scipy import optimize, special, stats

ALPHA = 0.05
POWER = 0.8  # of the power lines: the difference the seeds detect with this probability


def clean(values):
    """The finite values (None and NaN left out), as floats."""
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
        a, b = clean(a), clean(b)
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
    return f"paired t, n={len(clean(a))}" if paired else f"Welch t, n={len(clean(a))}/{len(clean(b))}"


def spearman(x, y):
    """Spearman's rank correlation and its one-sided p for a positive trend (the t approximation,
    as scipy's spearmanr)."""
    rho = float(np.corrcoef(stats.rankdata(x), stats.rankdata(y))[0, 1])
    n = len(x)
    if abs(rho) >= 1:
        return rho, (0.0 if rho > 0 else 1.0)
    t = rho * math.sqrt((n - 2) / (1 - rho ** 2))
    return rho, float(special.stdtr(n - 2, -t))


def power_of(distance, se, df, alpha):
    """The power of a one-sided t test at `alpha` against a true difference `distance` whose estimate has
    standard error `se` and `df` degrees of freedom: the noncentral t's tail beyond the critical value
    (exact for the paired and the pooled test; Welch's df is at most the pooled one's, so for Welch
    it is the optimistic end)."""
    return stats.nct.sf(stats.t.ppf(1 - alpha, df), df, distance / se)


def seeds_to_reach(distance, sd, alpha, paired):
    """The smallest n per variant (2 … 1000) whose one-sided t test at `alpha` detects `distance`
    with power POWER at this seed spread (noncentral t; df n − 1 paired, 2n − 2 otherwise), or math.inf."""
    if not (distance > 0 and sd > 0):
        return math.inf
    n = np.arange(2, 1001)
    df_n = n - 1 if paired else 2 * n - 2
    reach = power_of(distance, sd * np.sqrt((1 if paired else 2) / n), df_n, alpha) >= POWER
    return int(n[np.argmax(reach)]) if reach.any() else math.inf


def spread(a, b, paired):
    """(seed sd, standard error of the difference, degrees of freedom) of two lists of values: of the
    per-seed differences when paired, else the pooled sd."""
    if paired:
        sd = np.std(np.subtract(a, b), ddof=1)
        return sd, sd / math.sqrt(len(a)), len(a) - 1
    sd = math.sqrt((np.var(a, ddof=1) * (len(a) - 1) + np.var(b, ddof=1) * (len(b) - 1)) / (len(a) + len(b) - 2))
    return sd, sd * math.sqrt(1 / len(a) + 1 / len(b)), len(a) + len(b) - 2


def detectable(se, df, alpha):
    """The difference a one-sided t test at `alpha` detects with power POWER at this standard error:
    the noncentrality at which the noncentral t reaches POWER, times se."""
    if not (se > 0 and df > 0):
        return math.nan
    crit = stats.t.ppf(1 - alpha, df)
    return optimize.brentq(lambda nc: stats.nct.sf(crit, df, nc) - POWER, 0.0, 1e3) * se


def difference_ci(a, b, paired=False, level=0.95):
    """(mean(a) − mean(b), low, high): the two-sided t interval, of the per-seed differences when paired,
    else Welch's (NaNs when a side has fewer than 2 values)."""
    if paired:
        pairs = [(x, y) for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)]
        a, b = [x for x, _ in pairs], [y for _, y in pairs]
    else:
        a, b = [v for v in clean(a) if math.isfinite(v)], [v for v in clean(b) if math.isfinite(v)]
    if len(a) < 2 or len(b) < 2:
        return (float(np.mean(a) - np.mean(b)) if a and b else math.nan), math.nan, math.nan
    diff = float(np.mean(a) - np.mean(b))
    if paired:
        se, df = np.std(np.subtract(a, b), ddof=1) / math.sqrt(len(a)), len(a) - 1
    else:
        va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1)) if se > 0 else 1
    half = float(stats.t.ppf(0.5 + level / 2, df) * se)
    return diff, diff - half, diff + half


def rank_compare(a, b):
    """One-sided Mann–Whitney test of a > b where some runs failed (a failed run is -inf: ranked below
    every finished one, so a failure counts against its variant and is never left out): (difference
    of medians over finished runs or -inf, p for a > b, p for a < b)."""
    a, b = clean(a), clean(b)
    if len(a) < 2 or len(b) < 2:
        return math.nan, math.nan, math.nan
    p_gt = float(stats.mannwhitneyu(a, b, alternative="greater", method="exact" if len(set(a + b)) == len(a + b)
                                    else "asymptotic").pvalue)
    p_lt = float(stats.mannwhitneyu(a, b, alternative="less", method="exact" if len(set(a + b)) == len(a + b)
                                    else "asymptotic").pvalue)
    fa, fb = [v for v in a if math.isfinite(v)], [v for v in b if math.isfinite(v)]
    diff = float(np.median(fa) - np.median(fb)) if fa and fb else (-math.inf if fb else math.inf if fa else math.nan)
    return diff, p_gt, p_lt


def paired_differences(a, b):
    """a[i] − b[i] over the pairs with both values (a failed run, -inf, loses to any finished one: its pair's
    difference is ∓inf; two failed runs tie at 0)."""
    out = []
    for x, y in zip(a, b):
        if x is None or y is None or math.isnan(x) or math.isnan(y):
            continue
        out.append(0.0 if x == y else x - y)
    return out


def sign_test(a, b):
    """The one-sided paired sign test of a > b, failed runs the worst outcome (paired_differences), ties
    dropped: (median difference, p for a > b, p for a < b); NaNs below 2 pairs."""
    d = paired_differences(a, b)
    if len(d) < 2:
        return math.nan, math.nan, math.nan
    up, down = sum(x > 0 for x in d), sum(x < 0 for x in d)
    n = up + down
    median = float(np.median(d)) if all(math.isfinite(x) for x in d) or len(d) % 2 else float(sorted(d)[len(d) // 2])
    if n == 0:
        return median, 1.0, 1.0
    return median, float(stats.binom.sf(up - 1, n, 0.5)), float(stats.binom.sf(down - 1, n, 0.5))


def sign_interval(a, b, level):
    """(median, low, high): the order-statistic interval of the median paired difference that matches the
    sign test at (1 − level) / 2 a side — its low end is above 0 exactly when the one-sided test of a > b
    rejects; ±inf where it cannot at this many pairs (a failed run's pair lies at an infinite end)."""
    d = sorted(x for x in paired_differences(a, b) if x != 0)
    if len(d) < 2:
        return math.nan, math.nan, math.nan
    n, side = len(d), (1 - level) / 2
    c = next((k for k in range(n + 1) if stats.binom.sf(k - 1, n, 0.5) <= side), None)  # rejects with ≥ c signs
    median = sign_test(a, b)[0]
    if c is None:
        return median, -math.inf, math.inf
    return median, d[n - c], d[c - 1]


def need_text(need):
    return f"about {need}" if need != math.inf else "more than 1000"

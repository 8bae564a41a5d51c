"""A paper's claims as small objects that know their variants, their test and their power line, and
the verdict a claim gets from per-seed values.

Ablation files build them: `Greater("GCN k = 15 beats the base", "mIoU", a="k15", b="base")`.
Each claim's judge() takes {variant: [value per seed]} and a level alpha and gives one of four
outcomes:
- reproduced: the claimed direction holds and is significant;
- contradicted: the opposite direction is significant;
- absent: no significant direction, and an equivalence test (TOST) puts the difference inside the
  claim's band (declared before running: engine/design.py claim_band): the claimed effect, if any,
  is smaller than the band;
- inconclusive: none of these; power() then gives its power line.

The claims: Greater (a > b, by a margin; the paired t test when the variants pair by seed, else
Welch's; with failed runs, Mann–Whitney with the failures ranked last), Increasing (Page's trend test
with each seed a block, or Spearman over all runs when they do not pair, plus neighbour steps), Best
(argmax), Ratio (the t test on logarithms) and Close (equivalence: reproduced when TOST puts a − b
inside the band). A claim with `by_construction` is a check: judged and shown, never counted.
How a claim is judged over looks of seeds is engine/design.py.
"""
import math
from dataclasses import KW_ONLY, dataclass
from enum import StrEnum

import numpy as np
from scipy.stats import page_trend_test

from engine.stats import (ALPHA, POWER, clean, compare, detectable, difference_ci, equivalent, n_text, need_text,
                          rank_compare, seeds_to_reach, spearman, spread)


class Outcome(StrEnum):
    REPRODUCED = "reproduced"
    CONTRADICTED = "contradicted"
    ABSENT = "absent"
    INCONCLUSIVE = "inconclusive"


DECIDED = (Outcome.REPRODUCED, Outcome.CONTRADICTED, Outcome.ABSENT)


def failures(*lists):
    return sum(v == -math.inf for values in lists for v in values)


def difference_text(diff, a, b):
    """A difference as text; where every run of a side failed there is none (±inf): the failures instead."""
    return f"{diff:+.2f}" if math.isfinite(diff) else f"{failures(a)}/{len(a)} vs {failures(b)}/{len(b)} runs failed"


def one_sided(a, b, paired=False):
    """compare(a, b, paired), or rank_compare where runs failed: (difference, p(a > b), p(a < b))."""
    return rank_compare(a, b) if failures(a, b) else compare(a, b, paired)


def two_sample(a_vals, b_vals, alpha, band=None, paired=False, margin=0.0):
    """The outcome of 'a > b (by more than margin)' from two lists of per-seed values, and its text.
    With failed runs (-inf) among them, the one-sided Mann–Whitney test, failures ranked last."""
    if failures(a_vals, b_vals):
        diff, p_gt, p_lt = rank_compare([v - margin for v in a_vals], b_vals)
        counts = f"{failures(a_vals)}/{len(a_vals)} vs {failures(b_vals)}/{len(b_vals)} runs failed"
        text = (f"median {diff + margin:+.2f} over finished runs (Mann–Whitney, {counts}, ranked last; p(>)={p_gt:.3g}"
                if math.isfinite(diff) else f"{counts} (Mann–Whitney, failures ranked last; p(>)={p_gt:.3g}")
        if math.isnan(p_gt):
            return Outcome.INCONCLUSIVE, text + "); needs ≥ 2 seeds per variant"
        verdict = (Outcome.REPRODUCED if p_gt < alpha else Outcome.CONTRADICTED if p_lt < alpha
                   else Outcome.INCONCLUSIVE)
        return verdict, text + ")"
    diff, p_gt, p_lt = compare([v - margin for v in a_vals], b_vals, paired)
    text = f"{diff + margin:+.2f} ({n_text(a_vals, b_vals, paired)}, p(>)={p_gt:.3g}"
    if math.isnan(p_gt):
        return Outcome.INCONCLUSIVE, text + "); needs ≥ 2 seeds per variant"
    if p_gt < alpha:
        return Outcome.REPRODUCED, text + ")"
    if p_lt < alpha:
        return Outcome.CONTRADICTED, text + ")"
    if band:
        p_eq, inside = equivalent(a_vals, b_vals, band, alpha, paired)
        text += f"; TOST ±{band:g} p={p_eq:.3g}"
        if inside:
            return Outcome.ABSENT, text + ")"
    return Outcome.INCONCLUSIVE, text + ")"


@dataclass(frozen=True)
class Claim:
    """text: the claim as the report states it; metric: the row column it is judged on (with minus,
    each run's metric − minus: e.g. which of internal and boundary accuracy a change lifts more);
    band: this claim's own equivalence band (None: the ablation's for its metric)."""
    text: str
    metric: str
    _: KW_ONLY
    minus: str | None = None
    band: float | None = None
    by_construction: str | None = None  # why it holds by definition: then a check, reported, never counted

    @property
    def is_check(self):
        return self.by_construction is not None

    unit = ""  # of the power line's differences

    def variants(self):
        """The variant ids the claim reads, in order."""
        raise NotImplementedError

    def pair(self):
        """(a, b) when the claim compares two variants; None otherwise."""
        return None

    def difference(self, values, paired=False):
        """(difference, 95 % CI low, high) the report shows beside the verdict: a − b of the two variants
        the power line compares (paired where paired); NaNs when they are missing."""
        ends = self.power_ends(values)
        if ends is None:
            return math.nan, math.nan, math.nan
        return difference_ci(values.get(ends[0], []), values.get(ends[1], []), paired)

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        """(Outcome, statistic text) from {variant: [value per seed]} at level alpha."""
        raise NotImplementedError

    def power_ends(self, values):
        """The two variants the power line compares, or None when results are missing."""
        return self.pair()

    def scale(self, values):
        """Values as the test sees them (Ratio: their logarithms)."""
        return values

    def scale_band(self, band):
        return band

    offset = 0.0  # the difference the claim needs beyond zero (Greater's margin; Ratio's log ratio)

    def power(self, values, alpha, band=None, paired=False):
        """For a claim left inconclusive: (power line, seeds per variant its nearest decision would need).
        The line gives the difference its seeds could have detected (one-sided t at `alpha`, power
        POWER) and the seeds the observed difference would need: to be significant, or, with an
        equivalence band, to be shown inside it (Close: inside, or outside at α/2) — the nearer of
        these. The runner spends its run budget on the claims nearest a decision first."""
        ends = self.power_ends(values)
        if ends is None:
            return "power: missing results", math.inf
        av, bv = (self.scale(clean(values.get(v, []))) for v in ends)
        if failures(av, bv):  # the spread of the finished runs (a failure has none)
            both = [(x, y) for x, y in zip(av, bv) if math.isfinite(x) and math.isfinite(y)]
            av, bv = ([x for x, _ in both], [y for _, y in both]) if paired else (
                [x for x in av if math.isfinite(x)], [y for y in bv if math.isfinite(y)])
        band = self.scale_band(band)
        if len(av) < 2 or len(bv) < 2:
            return "power: needs ≥ 2 seeds per variant", math.inf
        sd, se, df = spread(av, bv, paired)
        gap = abs(np.mean(av) - np.mean(bv))
        line = (f"power: these seeds detect a difference of {detectable(se, df, alpha):.2f}{self.unit} with "
                f"{POWER:.0%} power at α = {alpha:.3g}")
        return self.power_tail(line, gap, sd, band, alpha, paired)

    def power_tail(self, line, gap, sd, band, alpha, paired):
        """The seeds to significance, or to 'absent' inside the band, whichever is nearer."""
        observed = gap - self.offset
        significant = seeds_to_reach(observed, sd, alpha, paired)
        line += (f"; the observed {observed:.2f} would need {need_text(significant)} seeds per variant" if observed > 0
                 else f"; the observed {observed:.2f}: no difference beyond the margin to detect")
        if not band or gap >= band:
            return line, significant
        absent = seeds_to_reach(band - gap, sd, alpha, paired)  # TOST: each side at alpha
        return line + f" (absent within ±{band:.3g}: {need_text(absent)})", min(significant, absent)


@dataclass(frozen=True)
class Greater(Claim):
    """Variant a scores higher than variant b (by more than `margin`)."""
    a: str
    b: str
    margin: float = 0.0

    @property
    def offset(self):
        return self.margin

    def variants(self):
        return [self.a, self.b]

    def pair(self):
        return self.a, self.b

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        verdict, text = two_sample(values.get(self.a, []), values.get(self.b, []), alpha, band, paired, self.margin)
        return verdict, f"{self.a} − {self.b} = {text}"


@dataclass(frozen=True)
class Increasing(Claim):
    """The metric rises with x along `order` (variant ids, x ascending).
    Reproduced: a significant rising trend (Page's test over seeds when paired, else Spearman over
    runs) and no significant drop between neighbours.
    Contradicted: a significant negative trend, or some step significantly downwards (α split
    between the trend and the steps, and over the steps, so that 'contradicted' keeps its level).
    Absent: the last variant is equivalent to the first within the band."""
    order: tuple
    x: tuple

    def __post_init__(self):
        object.__setattr__(self, "order", tuple(self.order))
        object.__setattr__(self, "x", tuple(self.x))
        if len(self.order) != len(self.x):
            raise ValueError(f"Increasing: {len(self.order)} variants in order, {len(self.x)} x values")

    def variants(self):
        return list(self.order)

    def power_ends(self, values):  # the two ends of the trend
        return self.order[-1], self.order[0]

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        order = self.order
        outcome, text, p_up, p_down = (self.trend_within_seeds if paired else self.trend_over_runs)(values)
        if outcome is not None:
            return outcome, text
        steps = len(order) - 1
        drops, rises = [], 0
        for lo, hi in zip(order[:-1], order[1:]):
            diff, p_gt, p_lt = one_sided(values.get(hi, []), values.get(lo, []), paired)
            rises += diff > 0
            if p_lt < alpha / (2 * steps):
                drops.append(f"{lo}→{hi} {difference_text(diff, values.get(lo, []), values.get(hi, []))} (p={p_lt:.3g})")
        text += f"; mean rose in {rises}/{steps} steps; significant drops: {', '.join(drops) or 'none'}"
        if p_down < alpha / 2 or drops:
            return Outcome.CONTRADICTED, text
        if p_up < alpha:
            return Outcome.REPRODUCED, text
        if band and not failures(values.get(order[-1], []), values.get(order[0], [])):
            p_eq, inside = equivalent(values.get(order[-1], []), values.get(order[0], []), band, alpha, paired)
            text += f"; {order[-1]} vs {order[0]} TOST ±{band:g} p={p_eq:.3g}"
            if inside:
                return Outcome.ABSENT, text
        return Outcome.INCONCLUSIVE, text

    def trend_over_runs(self, values):
        """Spearman over every (x, value) pair, each trained run one unit (variants that do not pair):
        (outcome if already settled, text, p of a rising trend, p of a falling one)."""
        pairs = [(x, v) for vid, x in zip(self.order, self.x) for v in clean(values.get(vid, []))]
        if len({x for x, _ in pairs}) < 3 or len(pairs) < 4:
            return Outcome.INCONCLUSIVE, "too few variants or seeds for a trend", 1.0, 1.0
        if len({v for _, v in pairs}) == 1:
            return Outcome.INCONCLUSIVE, f"all {len(pairs)} runs score the same: no trend to test", 1.0, 1.0
        rho, p_pos = spearman([x for x, _ in pairs], [v for _, v in pairs])
        return (None, f"Spearman ρ = {rho:+.2f} over {len(pairs)} runs (one-sided p = {p_pos:.3g})", p_pos,
                1 - p_pos if rho < 0 else 1.0)

    def trend_within_seeds(self, values):
        """Page's trend test with each seed a block (its variants' values, ranked within the seed): the
        unit is the seed's set of paired models, or one model evaluated at every x, never a run counted
        per evaluation. A failed run ranks last in its block."""
        blocks = np.array([[values[v][i] for v in self.order] for i in range(len(values.get(self.order[0], [])))])
        if len(self.order) < 3 or len(blocks) < 2:
            return Outcome.INCONCLUSIVE, "too few variants or seeds for a trend", 1.0, 1.0
        if np.all(blocks == blocks[:, :1]):
            return Outcome.INCONCLUSIVE, f"every variant scores the same in each of {len(blocks)} seeds: no trend", 1.0, 1.0
        finite = np.where(np.isfinite(blocks), blocks, np.nanmin(blocks[np.isfinite(blocks)]) - 1)
        method = "exact" if len(blocks) * len(self.order) <= 100 else "asymptotic"
        up, down = page_trend_test(finite, method=method), page_trend_test(finite[:, ::-1], method=method)
        per_seed = [spearman(self.x, row)[0] for row in finite]
        text = (f"Page's trend test, {len(blocks)} seeds × {len(self.order)} variants ranked within each seed: "
                f"L = {up.statistic:.0f}, one-sided p = {up.pvalue:.3g} (median per-seed Spearman {np.median(per_seed):+.2f})")
        return None, text, float(up.pvalue), float(down.pvalue)


@dataclass(frozen=True)
class Best(Claim):
    """`expected` has the highest mean among `candidates`. Reproduced if it has the highest mean and
    beats the runner-up significantly; contradicted if some other candidate beats it significantly
    (α split over the others); absent if it is equivalent (within the band) to every other candidate;
    otherwise inconclusive."""
    expected: str
    candidates: tuple

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(self.candidates))

    def variants(self):
        return list(dict.fromkeys([self.expected, *self.candidates]))

    def means(self, values):
        return {c: np.mean(clean(values.get(c, []))) for c in self.candidates if clean(values.get(c, []))}

    def power_ends(self, values):  # the expected variant and the best of the others
        means = self.means(values)
        others = sorted((c for c in means if c != self.expected), key=means.get, reverse=True)
        return (self.expected, others[0]) if self.expected in means and others else None

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        expected, means = self.expected, self.means(values)
        if expected not in means or len(means) < 2:
            return Outcome.INCONCLUSIVE, "missing results"
        ranked = sorted(means, key=means.get, reverse=True)
        others = [c for c in ranked if c != expected]
        beaters = [c for c in others if one_sided(values[c], values[expected], paired)[1] < alpha / len(others)]
        if beaters:
            return Outcome.CONTRADICTED, (f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}); significantly above "
                                          f"{expected}: {', '.join(beaters)}")
        runner_up = others[0]
        diff, p_gt, _ = one_sided(values[expected], values[runner_up], paired)
        if ranked[0] == expected:
            text = (f"{expected} best ({means[expected]:.2f}); vs runner-up {runner_up} "
                    f"{difference_text(diff, values[expected], values[runner_up])} "
                    f"({'paired t' if paired else 'Welch'} p(>)={p_gt:.3g})")
            if p_gt < alpha:
                return Outcome.REPRODUCED, text
        else:
            text = (f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}), {expected} {means[expected]:.2f}; "
                    "no significant difference")
        if band and not failures(*(values[c] for c in self.candidates)):
            p_eq = max(equivalent(values[expected], values[c], band, alpha, paired)[0] for c in others)
            text += f"; TOST ±{band:g} vs every other p={p_eq:.3g}"
            if p_eq < alpha:
                return Outcome.ABSENT, text
        return Outcome.INCONCLUSIVE, text


@dataclass(frozen=True)
class Ratio(Claim):
    """a's values are at least `min_ratio` times b's (e.g. time at ρ_a over time at ρ_b: a speed-up).
    Judged on logarithms, as Greater with margin log(min_ratio); the statistic shows the ratio of
    geometric means. band: a ratio (e.g. 1.1: within ±10 % counts as no difference)."""
    a: str
    b: str
    min_ratio: float = 1.0
    published: float | None = None  # the paper's ratio: the report says whether its magnitude holds

    unit = " (on logs)"

    @property
    def offset(self):
        return math.log(self.min_ratio)

    def variants(self):
        return [self.a, self.b]

    def pair(self):
        return self.a, self.b

    def scale(self, values):
        return [math.log(v) for v in values if v > 0]

    def scale_band(self, band):
        return math.log(band) if band else None

    def difference(self, values, paired=False):
        """The ratio of geometric means with its 95 % CI (the interval on logs, exponentiated)."""
        la, lb = (self.scale(clean(values.get(v, []))) for v in (self.a, self.b))
        if paired and len(la) != len(lb):
            return math.nan, math.nan, math.nan
        return tuple(math.exp(x) if math.isfinite(x) else math.nan for x in difference_ci(la, lb, paired))

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        if failures(*(values.get(v, []) for v in (self.a, self.b))):
            return Outcome.INCONCLUSIVE, "failed runs: a ratio needs every run's value"
        la, lb = (self.scale(clean(values.get(v, []))) for v in (self.a, self.b))
        if not la or not lb:
            return Outcome.INCONCLUSIVE, "missing results"
        verdict, text = two_sample(la, lb, alpha, self.scale_band(band), paired, self.offset)
        text = (f"{self.a} / {self.b} = {math.exp(np.mean(la) - np.mean(lb)):.2f}× (geometric means; "
                f"claim ≥ {self.min_ratio:g}×; on logs: {text})")
        if self.published is not None:
            ratio, low, high = self.difference(values, paired)
            held = ("inside" if low <= self.published <= high else "outside") if math.isfinite(low) else "not placed"
            text += (f"; magnitude: {ratio:.2f}× [95 % CI {low:.2f}, {high:.2f}] against the paper's "
                     f"{self.published:g}×, which is {held} it")
        return verdict, text


@dataclass(frozen=True)
class Close(Claim):
    """Variants a and b score the same within ±band (an equivalence claim, e.g. 'matches'). TOST:
    reproduced if a − b is significantly inside the band; contradicted if it is significantly
    outside (one-sided, on the side of the observed difference, at α/2 per side); otherwise
    inconclusive (with few seeds, equivalence needs a small spread to be shown)."""
    a: str
    b: str

    def variants(self):
        return [self.a, self.b]

    def pair(self):
        return self.a, self.b

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        if not (band or 0) > 0:
            raise ValueError(f"close: band must be > 0, got {band!r}")
        a, b = self.a, self.b
        a_vals, b_vals = clean(values.get(a, [])), clean(values.get(b, []))
        if failures(a_vals, b_vals):
            return Outcome.INCONCLUSIVE, (f"{failures(a_vals)} and {failures(b_vals)} failed runs of {a} and {b}: "
                                          "a failed run matches nothing")
        diff = compare(a_vals, b_vals, paired)[0]
        p_eq, inside = equivalent(a_vals, b_vals, band, alpha, paired)
        _, p_above_hi, _ = compare([v - band for v in a_vals], b_vals, paired)  # a − b > +band
        _, _, p_below_lo = compare([v + band for v in a_vals], b_vals, paired)  # a − b < −band
        text = f"{a} − {b} = {diff:+.2f}, band ±{band:g} (TOST, {n_text(a_vals, b_vals, paired)}, p = {p_eq:.3g})"
        if math.isnan(p_eq):
            return Outcome.INCONCLUSIVE, text + "; needs ≥ 2 seeds per variant"
        if inside:
            return Outcome.REPRODUCED, text
        if min(p_above_hi, p_below_lo) < alpha / 2:
            return Outcome.CONTRADICTED, text + "; significantly outside the band"
        return Outcome.INCONCLUSIVE, text

    def power_tail(self, line, gap, sd, band, alpha, paired):
        """The observed difference shown inside the band, or outside it (at α/2)."""
        if gap == band:
            return line + f"; the observed {gap:.2f} lies on the band's edge ±{band:g}", math.inf
        inside = gap < band
        need = (seeds_to_reach(band - gap, sd, alpha, paired) if inside
                else seeds_to_reach(gap - band, sd, alpha / 2, paired))
        return line + (f"; showing the observed {gap:.2f} {'inside' if inside else 'outside'} ±{band:g} would need "
                       f"{need_text(need)} seeds per variant"), need


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict under the sequential design (engine/design.py)."""
    claim: Claim
    outcome: Outcome
    statistic: str  # the test's numbers, and for an undecided claim its power line
    look: int  # the look (1-based) that decided it, or the last one judged
    seeds: int  # seeds per variant at that look
    looks: int  # looks of the design
    need: float  # seeds per variant a decision would need at the observed difference: 0 once decided
    difference: float = math.nan  # the claim's difference (Ratio: ratio) at that look, with its 95 % CI
    ci_low: float = math.nan
    ci_high: float = math.nan

    @property
    def decided(self):
        return self.outcome in DECIDED


def fact_holds(fact):
    """An exact fact equals its formula's value (`expected`) exactly, and matches the paper's printed
    number within its rounding (`tolerance`, e.g. 1000 for '608K') where the paper prints one."""
    if fact.get("expected") is not None and fact["computed"] != fact["expected"]:
        return False
    if fact.get("published") is not None:
        return abs(fact["computed"] - fact["published"]) <= fact.get("tolerance", 0)
    return fact.get("expected") is not None

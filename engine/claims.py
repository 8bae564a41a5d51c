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
Welch's; with failed runs, the paired sign test with a failed run losing its pair, or unpaired
Mann–Whitney with the failures ranked last), Increasing (Page's trend test
with each seed a block, or Spearman over all runs when they do not pair, plus neighbour steps), Best
(argmax), Ratio (the t test on logarithms) and Close (equivalence: reproduced when TOST puts a − b
inside the band). A claim with `by_construction` is a check: judged and shown, never counted.
How a claim is judged over looks of seeds is engine/design.py.
"""
import math
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum

import numpy as np
from scipy.stats import page_trend_test

from engine.stats import (ALPHA, POWER, clean, compare, detectable, difference_ci, equivalent, n_text, need_text,
                          rank_compare, seeds_to_reach, sign_interval, sign_test, spearman, spread)


class Outcome(StrEnum):
    REPRODUCED = "reproduced"
    CONTRADICTED = "contradicted"
    ABSENT = "absent"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTABLE = "not testable on this data"  # an assertion whose mechanism probe failed (Mechanism)


DECIDED = (Outcome.REPRODUCED, Outcome.CONTRADICTED, Outcome.ABSENT)


@dataclass(frozen=True)
class Shown:
    """The comparison that decided a verdict, as the report shows it: `what` it compares (e.g.
    "k7d4 − k4d4", "worst step r152→r269"), its difference signed so that positive is as the paper
    says (a Ratio's: the ratio), and the two-sided interval at the level of the test that decided
    (a one-sided test at α: 1 − 2α; TOST at α: 1 − 2α), so a reproduced row's interval lies on the
    claimed side, a contradicted row's on the other and an absent row's inside the band.
    basis: "pair" (two variants), "step" (a trend's worst neighbour step: Page's trend test has no
    interval, so a trend decided by it shows the step that could have stopped it) or "rank" (failed
    runs: a sign test's order-statistic interval)."""
    what: str
    difference: float = math.nan
    low: float = math.nan
    high: float = math.nan
    level: float = 0.95
    basis: str = "pair"


def failures(*lists):
    return sum(v == -math.inf for values in lists for v in values)


def difference_text(diff, a, b):
    """A difference as text; where every run of a side failed there is none (±inf): the failures instead."""
    return f"{diff:+.2f}" if math.isfinite(diff) else f"{failures(a)}/{len(a)} vs {failures(b)}/{len(b)} runs failed"


def test_name(paired, a, b):
    """The test one_sided(a, b, paired) runs, as a verdict's text names it."""
    if failures(a, b):
        return "paired sign test" if paired else "Mann–Whitney"
    return "paired t" if paired else "Welch"


def one_sided(a, b, paired=False):
    """compare(a, b, paired), or where runs failed the paired sign test (paired) or Mann–Whitney (not):
    (difference, p(a > b), p(a < b))."""
    if failures(a, b):
        return sign_test(a, b) if paired else rank_compare(a, b)
    return compare(a, b, paired)


def two_sample(a_vals, b_vals, alpha, band=None, paired=False, margin=0.0):
    """The outcome of 'a > b (by more than margin)' from two lists of per-seed values, and its text.
    With failed runs (-inf) among them: paired, the sign test with a failed run losing its pair (it keeps
    the pairing, and decides: p = 1/2^n when every pair agrees); not paired, Mann–Whitney, failures last."""
    if failures(a_vals, b_vals):
        shifted = [v - margin for v in a_vals]
        diff, p_gt, p_lt = sign_test(shifted, b_vals) if paired else rank_compare(shifted, b_vals)
        test = "paired sign test, a failed run loses its pair" if paired else "Mann–Whitney, failures ranked last"
        counts = f"{failures(a_vals)}/{len(a_vals)} vs {failures(b_vals)}/{len(b_vals)} runs failed"
        # every run of a side failed: no median to show, the failures instead
        text = (f"median {diff + margin:+.2f} ({test}; {counts}; p(>)={p_gt:.3g}" if math.isfinite(diff)
                else f"{counts} ({test}; p(>)={p_gt:.3g}")
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


def pair_shown(values, a, b, paired, level, what=None, basis="pair"):
    """Shown: a − b of two variants with its two-sided interval at `level` (paired where paired). With
    failed runs among them the interval is left out (NaN): the rank test that decided has none."""
    av, bv = values.get(a, []), values.get(b, [])
    what = what or f"{a} − {b}"
    if failures(av, bv):  # paired: the sign test's own interval; Mann–Whitney: none here
        if paired:
            return Shown(what, *sign_interval(av, bv, level), level, "rank")
        return Shown(what, rank_compare(av, bv)[0], level=level, basis="rank")
    return Shown(what, *difference_ci(av, bv, paired, level), level, basis)


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
    # the paper's effect where the ablation's PUBLISHED numbers do not give it like with like (e.g. before
    # the CRF, from another table), signed as the claim (Ratio: the ratio), and where it comes from
    published: float | None = None
    published_from: str | None = None

    @property
    def is_check(self):
        return self.by_construction is not None

    unit = ""  # of the power line's differences
    # its effect is a quotient a / b (its band a ratio too), not a difference in the metric's units
    is_ratio = False

    def effect(self, a, b):
        """The effect of a over b on the claim's scale: a − b (Ratio: a / b)."""
        return a - b

    def effect_text(self, effect):
        """An effect as the report prints it: signed points (Ratio: '1.23×')."""
        return f"{effect:+.2f}"

    def variants(self):
        """The variant ids the claim reads, in order."""
        raise NotImplementedError

    def pair(self):
        """(a, b) when the claim compares two variants; None otherwise."""
        return None

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        """(Outcome, statistic text) from {variant: [value per seed]} at level alpha."""
        raise NotImplementedError

    def shown(self, values, outcome, alpha=ALPHA, band=None, paired=False):
        """The Shown comparison behind `outcome` (what judge decided on these values at alpha)."""
        a, b = self.pair()
        return pair_shown(values, a, b, paired, 1 - 2 * alpha)

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


    def shown(self, values, outcome, alpha=ALPHA, band=None, paired=False):
        """Absent: last − first at 1 − 2α (the TOST). Otherwise the worst neighbour step at the steps'
        level (each one-sided at α / (2·steps): 1 − α/steps): contradicted by a step, that step lies
        below 0; reproduced, no step does (the trend itself is Page's or Spearman's p, in the statistic)."""
        if outcome == Outcome.ABSENT:
            return pair_shown(values, self.order[-1], self.order[0], paired, 1 - 2 * alpha)
        level = 1 - alpha / (len(self.order) - 1)
        steps = [pair_shown(values, hi, lo, paired, level, f"worst step {lo}→{hi}", "step")
                 for lo, hi in zip(self.order[:-1], self.order[1:])]
        finite = [s for s in steps if math.isfinite(s.high)] or steps
        return min(finite, key=lambda s: (s.high, s.difference))


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
                    f"({test_name(paired, values[expected], values[runner_up])} p(>)={p_gt:.3g})")
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

    def shown(self, values, outcome, alpha=ALPHA, band=None, paired=False):
        """expected − the candidate that decided: contradicted, the strongest of those above it (at
        1 − 2α/others, the level each was tested at); absent, the one least surely inside the band;
        otherwise the runner-up (at 1 − 2α)."""
        ends = self.power_ends(values)
        if ends is None:
            return Shown(f"{self.expected} − best other")
        others = [c for c in self.means(values) if c != self.expected]
        expected, rival, level = self.expected, ends[1], 1 - 2 * alpha
        if outcome == Outcome.CONTRADICTED:
            rival = min(others, key=lambda c: one_sided(values[c], values[expected], paired)[1])
            level = 1 - 2 * alpha / len(others)
        elif outcome == Outcome.ABSENT:
            rival = max(others, key=lambda c: equivalent(values[expected], values[c], band, alpha, paired)[0])
        return pair_shown(values, expected, rival, paired, level)


@dataclass(frozen=True)
class Ratio(Claim):
    """a's values are at least `min_ratio` times b's (e.g. time at ρ_a over time at ρ_b: a speed-up).
    Judged on logarithms, as Greater with margin log(min_ratio); the statistic shows the ratio of
    geometric means. band: a ratio (e.g. 1.1: within ±10 % counts as no difference)."""
    a: str
    b: str
    min_ratio: float = 1.0  # (published: the paper's ratio; the statistic says whether its magnitude holds)

    unit = " (on logs)"
    is_ratio = True

    def effect(self, a, b):
        return a / b

    def effect_text(self, effect):
        return f"{effect:.2f}×"

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

    def difference(self, values, paired=False, level=0.95):
        """The ratio of geometric means with its CI at `level` (the interval on logs, exponentiated)."""
        la, lb = (self.scale(clean(values.get(v, []))) for v in (self.a, self.b))
        if paired and len(la) != len(lb):
            return math.nan, math.nan, math.nan
        return tuple(math.exp(x) if math.isfinite(x) else math.nan for x in difference_ci(la, lb, paired, level))

    def shown(self, values, outcome, alpha=ALPHA, band=None, paired=False):
        """a / b with the interval of the t test on logs at 1 − 2α: above min_ratio when reproduced."""
        return Shown(f"{self.a} / {self.b}", *self.difference(values, paired, 1 - 2 * alpha), 1 - 2 * alpha)

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

    def shown(self, values, outcome, alpha=ALPHA, band=None, paired=False):
        """a − b at 1 − 2α (TOST: inside the band when reproduced), or at 1 − α when contradicted (one
        side outside the band at α/2: the interval then lies wholly outside it)."""
        level = 1 - alpha if outcome == Outcome.CONTRADICTED else 1 - 2 * alpha
        return pair_shown(values, self.a, self.b, paired, level)

    def power_tail(self, line, gap, sd, band, alpha, paired):
        """The observed difference shown inside the band, or outside it (at α/2)."""
        if gap == band:
            return line + f"; the observed {gap:.2f} lies on the band's edge ±{band:g}", math.inf
        inside = gap < band
        need = (seeds_to_reach(band - gap, sd, alpha, paired) if inside
                else seeds_to_reach(gap - band, sd, alpha / 2, paired))
        return line + (f"; showing the observed {gap:.2f} {'inside' if inside else 'outside'} ±{band:g} would need "
                       f"{need_text(need)} seeds per variant"), need


class Rule(StrEnum):
    """How an assertion's verdict combines its comparisons' (sub-claims') verdicts."""
    ONE = "one"  # a single comparison: its verdict
    EVERY = "every"  # every comparison must hold: reproduced if each is, contradicted if any is, absent if each is


RULE_TEXT = {Rule.ONE: "its one comparison's verdict",
             Rule.EVERY: "reproduced only if every comparison is; contradicted if any is; absent if every one is; "
                         "else inconclusive"}


@dataclass(frozen=True, eq=False)
class Mechanism:
    """What an assertion relies on, and the probe that shows whether the data carries it (issue 37).
    text: the mechanism the paper gives (or its design implies), one sentence; probe: a callable
    probe(inputs, **args) -> a result with `passed`, `figure`, `threshold`, `detail` (probes/mechanisms.py
    ProbeResult), or None while what it reads is not measured yet; args: its keyword arguments (variants and
    the like; its threshold lives beside the probe). The engine only carries it: probes are never imported here."""
    text: str
    probe: object
    args: dict = field(default_factory=dict)

    def run(self, inputs):
        return self.probe(inputs, **self.args)


@dataclass(frozen=True)
class Assertion:
    """One statement of a paper, with the comparisons that test it.
    text: the statement; where: its place in the paper (e.g. "GCN §4.1, Table 2"); claims: its comparisons
    (Claim objects of the ablation's CLAIMS); rule: how their verdicts combine (Rule); beyond_paper: a
    question this suite adds (shown in its section, never in the papers' headline)."""
    text: str
    where: str
    claims: tuple
    _: KW_ONLY
    rule: Rule = Rule.EVERY
    beyond_paper: bool = False
    mechanisms: tuple = ()  # Mechanism: what the assertion relies on; all must be present for it to be testable

    def __post_init__(self):
        object.__setattr__(self, "claims", tuple(self.claims))
        object.__setattr__(self, "mechanisms", tuple(self.mechanisms))
        object.__setattr__(self, "rule", Rule(self.rule))
        if self.rule == Rule.ONE and len(self.claims) != 1:
            raise ValueError(f"assertion {self.text!r}: rule 'one' takes one comparison, got {len(self.claims)}")

    @property
    def is_check(self):
        return all(c.is_check for c in self.claims)


def combine(rule, outcomes):
    """An assertion's outcome from its comparisons' (Rule). EVERY: a 'consistently' or 'each step'
    assertion: one comparison the other way refutes it, all of them are needed to reproduce it."""
    outcomes = list(outcomes)
    if rule == Rule.ONE or len(outcomes) == 1:
        return outcomes[0]
    if Outcome.CONTRADICTED in outcomes:
        return Outcome.CONTRADICTED
    for kind in (Outcome.REPRODUCED, Outcome.ABSENT):
        if all(o == kind for o in outcomes):
            return kind
    return Outcome.INCONCLUSIVE


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
    shown: Shown = Shown("")  # the comparison that decided, with its interval at its test's level
    paired: bool = False  # judged with the paired tests (its variants pair by seed)
    band: float | None = None  # the equivalence band it was judged with

    @property
    def difference(self):
        return self.shown.difference

    @property
    def ci_low(self):
        return self.shown.low

    @property
    def ci_high(self):
        return self.shown.high

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

"""A paper's claims as small objects that know their variants, their test and their power line, and
the verdict a claim gets from per-seed values.

Ablation files build them: `Greater("GCN k = 15 beats the base", "mIoU", a="k15", b="base")`.
Each claim's judge() takes {variant: [value per seed]} and a level alpha and gives one of four
outcomes:
- reproduced: the claimed direction holds and is significant;
- contradicted: the opposite direction is significant;
- absent: no significant direction, and an equivalence test (TOST) puts the difference inside the
  claim's band (declared before running: the claim's own, else the ablation's for its metric, else
  the suite's, engine/spec.py DEFAULT_BANDS): the claimed effect, if any, is smaller than the band;
- inconclusive: none of these; power() then gives its power line.

The claims: Greater (a > b, by a margin; Welch's t, or paired when a and b are one trained model
per seed), Increasing (Spearman over all (x, value) pairs, plus neighbour steps), Best (argmax),
Ratio (Welch on logarithms) and Close (equivalence: reproduced when TOST puts a − b inside the band).
How a claim is judged over looks of seeds is engine/design.py.
"""
import math
from dataclasses import KW_ONLY, dataclass
from enum import StrEnum

import numpy as np

from engine.stats import (ALPHA, POWER, clean, compare, detectable, equivalent, n_text, need_text, seeds_to_reach,
                          spearman, spread)


class Outcome(StrEnum):
    REPRODUCED = "reproduced"
    CONTRADICTED = "contradicted"
    ABSENT = "absent"
    INCONCLUSIVE = "inconclusive"


DECIDED = (Outcome.REPRODUCED, Outcome.CONTRADICTED, Outcome.ABSENT)


def two_sample(a_vals, b_vals, alpha, band=None, paired=False, margin=0.0):
    """The outcome of 'a > b (by more than margin)' from two lists of per-seed values, and its text."""
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

    unit = ""  # of the power line's differences

    def variants(self):
        """The variant ids the claim reads, in order."""
        raise NotImplementedError

    def pair(self):
        """(a, b) when the claim compares two variants that may be one trained model per seed (then the
        paired test); None otherwise."""
        return None

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
    Reproduced: a significant positive Spearman trend and no significant drop between neighbours.
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
        pairs = [(x, v) for vid, x in zip(order, self.x) for v in clean(values.get(vid, []))]
        if len({x for x, _ in pairs}) < 3 or len(pairs) < 4:
            return Outcome.INCONCLUSIVE, "too few variants or seeds for a trend"
        if len({v for _, v in pairs}) == 1:
            return Outcome.INCONCLUSIVE, f"all {len(pairs)} runs score the same: no trend to test"
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
            return Outcome.CONTRADICTED, text
        if p_pos < alpha:
            return Outcome.REPRODUCED, text
        if band:
            p_eq, inside = equivalent(values.get(order[-1], []), values.get(order[0], []), band, alpha)
            text += f"; {order[-1]} vs {order[0]} TOST ±{band:g} p={p_eq:.3g}"
            if inside:
                return Outcome.ABSENT, text
        return Outcome.INCONCLUSIVE, text


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
        beaters = [c for c in others if compare(values[c], values[expected])[1] < alpha / len(others)]
        if beaters:
            return Outcome.CONTRADICTED, (f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}); significantly above "
                                          f"{expected}: {', '.join(beaters)}")
        runner_up = others[0]
        diff, p_gt, _ = compare(values[expected], values[runner_up])
        if ranked[0] == expected:
            text = (f"{expected} best ({means[expected]:.2f}); vs runner-up {runner_up} {diff:+.2f} "
                    f"(Welch p(>)={p_gt:.3g})")
            if p_gt < alpha:
                return Outcome.REPRODUCED, text
        else:
            text = (f"best mean is {ranked[0]} ({means[ranked[0]]:.2f}), {expected} {means[expected]:.2f}; "
                    "no significant difference")
        if band:
            p_eq = max(equivalent(values[expected], values[c], band, alpha)[0] for c in others)
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

    def judge(self, values, alpha=ALPHA, band=None, paired=False):
        la, lb = (self.scale(clean(values.get(v, []))) for v in (self.a, self.b))
        if not la or not lb:
            return Outcome.INCONCLUSIVE, "missing results"
        verdict, text = two_sample(la, lb, alpha, self.scale_band(band), paired, self.offset)
        return verdict, (f"{self.a} / {self.b} = {math.exp(np.mean(la) - np.mean(lb)):.2f}× (geometric means; "
                         f"claim ≥ {self.min_ratio:g}×; on logs: {text})")


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

"""The verdicts across the suite, each piece of evidence counted once: which claims are distinct
comparisons (two claims that read the same runs with the same test are one, judged where it first
appears), which are checks (true by construction: shown, never counted), and the table the report
opens with — every distinct claim with the paper's effect, the reproduced difference and its 95 % CI,
and its verdict, linked to its section. The difference shown is the comparison that decided (engine/claims.py
Shown), with the interval at its test's level.
"""
import math
from dataclasses import dataclass

from engine.claims import DECIDED, Ratio
from engine.design import (claim_band, claim_verdicts, comparison_key, pair_correlation, paired_by_seed,
                           published_difference, same_comparison, seed_values)
from report.common import md_table


@dataclass(frozen=True)
class Judged:
    """One claim's verdict in the suite: its ablation, whether it counts, and where it was counted if
    it repeats another's comparison."""
    spec: object
    verdict: object
    same_as: tuple | None  # (ablation, claim text) of the claim this one repeats, or None

    @property
    def counted(self):
        return self.same_as is None and not self.verdict.claim.is_check


def judged_claims(results, specs, one_plan):
    """{ablation name: [Judged]} in suite order; one_plan picks the rows the report uses."""
    seen, out = [], {}  # (comparison key, (ablation, claim text)) of the claims counted so far
    for spec in specs:
        if spec.name not in results:
            continue
        rows = one_plan(results[spec.name])[0]
        judged = []
        for verdict in claim_verdicts(spec, rows):
            key = comparison_key(rows, verdict)
            first = next((where for other, where in seen if same_comparison(key, other)), None)
            if first is None and not verdict.claim.is_check:
                seen.append((key, (spec.name, verdict.claim.text)))
            judged.append(Judged(spec, verdict, first))
        out[spec.name] = judged
    return out


def anchor(spec):
    """The GitHub anchor of an ablation's section heading '## <title> (`<name>`)'."""
    text = f"{spec.title} ({spec.name})".lower()
    return "".join(c for c in text.replace(" ", "-") if c.isalnum() or c in "-_")


def difference_text(verdict):
    """'what: +d [low, high] (level)': the comparison that decided, signed so that positive is as the paper
    says (a ratio as a ratio), with the interval at the level of its test."""
    shown = verdict.shown
    if not math.isfinite(shown.difference):
        return "–"
    ratio = isinstance(verdict.claim, Ratio)
    number = f"{shown.difference:.2f}×" if ratio else f"{shown.difference:+.2f}"
    ci = f" [{shown.low:.2f}, {shown.high:.2f}] ({100 * shown.level:.1f} %)" if math.isfinite(shown.low) else \
        (" (rank test: no interval)" if shown.basis == "rank" else "")
    return f"{shown.what}: {number}{ci}"


def pair_correlations(spec, rows):
    """Pearson's r between the two variants of each two-variant claim over their common seeds."""
    found = []
    for claim in spec.claims:
        pair = claim.pair()
        if pair and not isinstance(claim, Ratio):
            r = pair_correlation(seed_values(rows, claim.metric, claim.minus), *pair)
            if r is not None:
                found.append(r)
    return found


def overview_table(judged):
    """The report's first table: every distinct claim, its effect in the paper and here, its verdict."""
    body = []
    for name, claims in judged.items():
        for j in claims:
            if not j.counted:
                continue
            claim, verdict = j.verdict.claim, j.verdict
            published, band = published_difference(j.spec, claim), claim_band(j.spec, claim)
            pub = "–" if published is None else (f"{published:.2f}×" if isinstance(claim, Ratio) else f"{published:+.2f}")
            pub += f", {claim.published_from}" if claim.published_from and published is not None else ""
            pub += f" (band ±{band:g})" if band and not isinstance(claim, Ratio) else ""
            body.append([f"[`{name}`](#{anchor(j.spec)})", claim.text, pub, difference_text(verdict),
                         f"**{verdict.outcome}**"])
    return md_table(["ablation", "claim (paper)", "published effect (equivalence band)",
                     "deciding comparison [interval at its test's level]", "verdict"], body)


def family_line(claims):
    """The family-wise picture of one ablation's counted claims at α = 0.05 each."""
    n = sum(j.counted for j in claims)
    return f"{n} × 0.05 = {0.05 * n:.2f}" if n else "–"


def decided_share(judged):
    counted = [j for claims in judged.values() for j in claims if j.counted]
    decided = sum(j.verdict.outcome in DECIDED for j in counted)
    return decided, len(counted)


def pairing_text(claims):
    """How an ablation's counted claims were tested: paired by seed, Welch, or how many of each."""
    paired = [j.verdict.paired for j in claims if not j.verdict.claim.is_check]
    if all(paired):
        return "paired by seed"
    if not any(paired):
        return "Welch (variants do not pair)"
    return (f"paired by seed in {sum(paired)} of {len(paired)} claims; Welch where a claim's variants train on "
            "different data configs")

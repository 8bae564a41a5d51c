"""The verdicts across the suite, each piece of evidence counted once: which claims are distinct
comparisons (two claims that read the same runs with the same test are one, judged where it first
appears), which are checks (true by construction: shown, never counted), and the table the report
opens with — every distinct claim with the paper's effect, the reproduced difference and its 95 % CI,
and its verdict, linked to its section. The difference shown is the comparison that decided (engine/claims.py
Shown), with the interval at its test's level.
"""
import math
from dataclasses import dataclass

from engine.claims import DECIDED, RULE_TEXT, Assertion, Outcome, Rule, combine
from engine.design import (claim_verdicts, comparison_key, pair_correlation,
                           published_difference, same_comparison, seed_values)
from probes.mechanisms import ProbeInputs
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


NOT_RUN = "not run yet"
COUNTED_OUTCOMES = (*DECIDED, Outcome.INCONCLUSIVE, Outcome.NOT_TESTABLE, NOT_RUN)  # the Verdicts table's columns


@dataclass(frozen=True)
class JudgedAssertion:
    """A paper assertion's verdict: its comparisons' verdicts (Judged, in its order) combined by its rule;
    'not run yet' while a variant it reads has no run in the results (`missing`)."""
    spec: object
    assertion: object
    subs: tuple
    missing: tuple = ()
    probes: tuple = ()  # (Mechanism, its probe's result or None while not measured yet), one per mechanism

    @property
    def mechanism(self):
        """'no' if a probe failed, 'not probed yet' if one is not measured (or none is named), else 'yes'."""
        results = [r for _, r in self.probes]
        if any(r is not None and not r.passed for r in results):
            return "no"
        return "yes" if results and None not in results else "not probed yet"

    @property
    def outcome(self):
        """Not run yet; not testable on this data where a mechanism probe failed (the comparisons' verdict
        would say nothing about the paper); otherwise its comparisons' verdicts combined by its rule."""
        if self.missing:
            return NOT_RUN
        if self.mechanism == "no":
            return Outcome.NOT_TESTABLE
        return combine(self.assertion.rule, [j.verdict.outcome for j in self.subs])

    @property
    def counted(self):
        """In the papers' headline: a paper's assertion (not a check, not beyond the paper) with at least one
        comparison of its own (not all of them counted in another ablation)."""
        return (not self.assertion.beyond_paper and not self.assertion.is_check
                and (bool(self.missing) or any(j.counted for j in self.subs)))


def assertions_of(spec):
    """The ablation's assertions (engine/spec.py), or each claim as its own for a record without them."""
    return getattr(spec, "assertions", None) or tuple(Assertion(c.text, spec.name, (c,), rule=Rule.ONE)
                                                      for c in spec.claims)


def judged_assertions(judged, specs, results, one_plan, results_dir=None):
    """{ablation name: [JudgedAssertion]} from judged_claims' {name: [Judged]} (one per spec.claims); with
    results_dir, each assertion that ran gets its mechanism probes' results."""
    out = {}
    for spec in specs:
        if spec.name not in judged:
            continue
        rows = one_plan(results[spec.name])[0]
        ran = set(rows["variant"])
        by_claim = {id(j.verdict.claim): j for j in judged[spec.name]}
        inputs = ProbeInputs(spec, rows, results_dir)
        out[spec.name] = []
        for a in assertions_of(spec):
            missing = tuple(dict.fromkeys(v for c in a.claims for v in c.variants() if v not in ran))
            probes = tuple((m, m.run(inputs)) for m in a.mechanisms) if results_dir and not missing else ()
            out[spec.name].append(JudgedAssertion(spec, a, tuple(by_claim[id(c)] for c in a.claims), missing, probes))
    return out


def probe_text(result, detail=True):
    """'yes (3.1 vs 2)' / 'no (0.2 vs 1: its detail)' / 'not probed yet'."""
    if result is None:
        return "not probed yet"
    numbers = f"{result.figure:.3g} vs {result.threshold:g}"
    return f"yes ({numbers})" if result.passed else f"no ({numbers}" + (f": {result.detail})" if detail else ")")


def mechanism_cell(ja):
    """The opening table's "mechanism here": the failed probes, or the ones not measured yet, or all passed."""
    if ja.missing:
        return "–"
    state, results = ja.mechanism, [r for _, r in ja.probes]
    if state == "no":  # its name and numbers; what they measure is in the section's Mechanisms and the appendix
        return "; ".join(f"no: {r.mechanism} ({r.figure:.3g} vs {r.threshold:g})"
                         for r in results if r is not None and not r.passed)
    if state == "not probed yet":
        return "not probed yet" if results else "not probed yet (none named)"
    return "; ".join(probe_text(r) for r in results)


def mechanisms_list(assertions, detail=False):
    """An ablation's mechanisms: each one its assertions name with its probe's result (figure vs threshold;
    with detail, the measurements behind it: the appendix's part), and the assertions it is for (a mechanism
    several assertions share is listed once; mechanisms for the same assertions share a line)."""
    groups = {}  # (mechanism text, its result's line) -> the assertions naming it
    for ja in assertions:
        for m, r in ja.probes:
            result = "**not probed yet**" if r is None else \
                f"**{'yes' if r.passed else 'no'}** ({r.figure:.3g} vs {r.threshold:g}" + (f": {r.detail})" if detail else ")")
            named = groups.setdefault((m.text, result), [])
            if ja.assertion.text not in named:
                named.append(ja.assertion.text)
    probed = [ja for ja in assertions if ja.probes]
    by_named = {}  # mechanisms for the same assertions share a line
    for (text, result), named in groups.items():
        by_named.setdefault(tuple(named), []).append(f"{text}: {result}")
    lines = [f"- {'; '.join(parts)}" + ("" if len(probed) == 1 else " — for " + for_text(list(named), probed))
             for named, parts in by_named.items()]
    return (f"**Mechanisms** (figure vs threshold{'' if detail else '; measurements: appendix'}):\n"
            + "\n".join(lines)) if lines else ""


def for_text(named, probed):
    """Which of a section's assertions (JudgedAssertion, those with probes) a mechanism is for: 'every
    assertion', 'every assertion but “…”' or the ones named (the shorter)."""
    others = [ja.assertion.text for ja in probed if ja.assertion.text not in named]
    quoted = lambda texts: "; ".join(f"“{short(t)}”" for t in texts)
    if not others:
        return "every assertion"
    return f"every assertion but {quoted(others)}" if len(others) < len(named) else quoted(named)


def short(text, length=32):
    """The first words of a text, to name it in a list."""
    return text if len(text) <= length else text[:length].rsplit(" ", 1)[0] + "…"


def testable_text(assertions):
    """The headline's share of the counted assertions testable here (every mechanism probe passed), and of
    those the share decided."""
    counted = [ja for judged in assertions.values() for ja in judged if ja.counted]
    testable = [ja for ja in counted if ja.mechanism == "yes"]
    decided = sum(ja.outcome in DECIDED for ja in testable)
    no = sum(ja.outcome == Outcome.NOT_TESTABLE for ja in counted)
    waiting = sum(ja.mechanism == "not probed yet" and not ja.missing for ja in counted)
    return (f"**Testable here** (every mechanism probe passed): {len(testable)} of {len(counted)} assertions "
            f"({100 * len(testable) / max(len(counted), 1):.0f} %); of those, {decided} decided "
            f"({100 * decided / max(len(testable), 1):.0f} %). *Not testable on this data* (a probe failed): {no}; "
            f"mechanism not probed yet (the verdict stands): {waiting}.")


def anchor(spec):
    """The anchor of an ablation's section: its name, set by heading(spec) (short links; GitHub's own
    anchor of the heading text runs to 100 characters)."""
    return spec.name


def heading(spec):
    """An ablation's section heading, '## <title> (`<name>`)', with its anchor."""
    return f'<a id="{anchor(spec)}"></a>\n\n## {spec.title} (`{spec.name}`)'


def difference_text(verdict):
    """'what: +d [low, high] (level)': the comparison that decided, signed so that positive is as the paper
    says (a ratio as a ratio), with the interval at the level of its test."""
    shown = verdict.shown
    if not math.isfinite(shown.difference):
        return "–"
    number = verdict.claim.effect_text(shown.difference)
    ci = f" [{shown.low:.2f}, {shown.high:.2f}] ({100 * shown.level:.1f} %)" if math.isfinite(shown.low) else \
        (" (rank test: no interval)" if shown.basis == "rank" else "")
    return f"{shown.what}: {number}{ci}"


def pair_correlations(spec, rows):
    """Pearson's r between the two variants of each two-variant claim over their common seeds."""
    found = []
    for claim in spec.claims:
        pair = claim.pair()
        if pair and not claim.is_ratio:
            r = pair_correlation(seed_values(rows, claim.metric, claim.minus), *pair)
            if r is not None:
                found.append(r)
    return found


def published_text(spec, verdict):
    """The paper's effect, signed as the claim, where it comes from, and the band the claim was judged with."""
    claim, band = verdict.claim, verdict.band
    published = published_difference(spec, claim)
    pub = "–" if published is None else claim.effect_text(published)
    pub += f", {claim.published_from}" if claim.published_from and published is not None else ""
    if not band or claim.is_ratio:
        return pub
    # 'absent' inside a band as wide as the paper's effect cannot rule that effect out: say so where it is
    wide = published is not None and claim.band is None and abs(published) <= band
    return pub + f" (band ±{band:g}{': wider than the paper’s effect' if wide else ''})"


def deciding_sub(ja):
    """The comparison that decided an assertion of several by rule *every*: the first contradicted one when it
    is contradicted; None when every comparison agrees (reproduced, absent) or none decided it."""
    return next((j for j in ja.subs if j.verdict.outcome == Outcome.CONTRADICTED), None) \
        if ja.outcome == Outcome.CONTRADICTED else None


def tally(ja):
    """'4 comparisons: 3 reproduced, 1 inconclusive'."""
    outcomes = [str(j.verdict.outcome) for j in ja.subs]
    return f"{len(outcomes)} comparison{'s' if len(outcomes) > 1 else ''}: " + ", ".join(f"{outcomes.count(o)} {o}" for o in dict.fromkeys(outcomes))


def assertion_row(ja, first_cell=""):
    """One assertion as one table row: its wording and place in the paper, the paper's effect and the
    deciding comparison (a single comparison's own numbers; of several, the tally of their verdicts and
    the one that decided, if one did: each is shown beneath the assertion in its section), its verdict."""
    a = ja.assertion
    head = f"**{a.text}** ({a.where})"
    if ja.missing:
        return [first_cell, head, "–", f"needs runs of {', '.join(ja.missing)}", f"**{NOT_RUN}**"]
    if ja.outcome == Outcome.NOT_TESTABLE:  # no comparison decided it: their verdicts (each in the section)
        return [first_cell, head, "–", tally(ja), f"**{ja.outcome}**"]
    if len(ja.subs) == 1:
        j = ja.subs[0]
        return [first_cell, head, published_text(ja.spec, j.verdict), difference_text(j.verdict),
                f"**{ja.outcome}**"]
    sub = deciding_sub(ja)
    deciding = f"{tally(ja)}" + (f"; decided by {difference_text(sub.verdict)}" if sub else "")
    return [first_cell, head, published_text(ja.spec, sub.verdict) if sub else "–", deciding,
            f"**{ja.outcome}**"]


def overview_table(assertions):
    """The report's first table: one row per counted paper assertion, with the comparison that decided it
    (its comparisons are listed beneath it in the ablation's section)."""
    body = [assertion_row(ja, f"[`{name}`](#{anchor(ja.spec)})")
            for name, judged in assertions.items() for ja in judged if ja.counted]
    body = [[*row[:4], mechanism_cell(ja), row[4]] for row, ja in
            zip(body, [ja for judged in assertions.values() for ja in judged if ja.counted])]
    return md_table(["ablation", "paper assertion (where)", "published effect (equivalence band)",
                     "deciding comparison [interval at its test's level]", "mechanism here", "verdict"], body) + (
        f"\n\nRule *{Rule.EVERY}*: {RULE_TEXT[Rule.EVERY]}; each comparison stands beneath its assertion in its section.")


def left_out_text(assertions):
    """The assertions shown in their sections but not in the headline, and why."""
    beyond = [f"`{n}`: {ja.assertion.text}" for n, js in assertions.items() for ja in js if ja.assertion.beyond_paper]
    repeats = [f"`{n}`: {ja.assertion.text} (its comparisons are counted in "
               f"{', '.join(sorted({f'`{j.same_as[0]}`' for j in ja.subs if j.same_as}))})"
               for n, js in assertions.items() for ja in js
               if not ja.counted and not ja.assertion.beyond_paper and not ja.assertion.is_check]
    out = []
    if beyond:
        out.append("Beyond the papers (shown in their sections, not counted): " + "; ".join(beyond) + ".")
    if repeats:
        out.append("Restated by another table of the same paper, judged there: " + "; ".join(repeats) + ".")
    return "\n\n".join(out)


def assertion_counts(judged):
    """{outcome: n} over the counted assertions of one ablation's [JudgedAssertion]."""
    outcomes = [ja.outcome for ja in judged if ja.counted]
    return {k: outcomes.count(k) for k in COUNTED_OUTCOMES}


def family_text(claims, chance):
    """An ablation's family: the simulated chance of at least one false verdict, and its comparisons × α."""
    n = sum(j.counted for j in claims)
    return f"{100 * chance:.0f} % ({n} × 0.05 = {0.05 * n:.2f})" if n else "–"


def pairing_text(claims):
    """How an ablation's counted claims were tested: paired by seed, Welch, or how many of each."""
    paired = [j.verdict.paired for j in claims if not j.verdict.claim.is_check]
    if all(paired):
        return "paired by seed"
    if not any(paired):
        return "Welch (variants do not pair)"
    return (f"paired by seed in {sum(paired)} of {len(paired)} claims; Welch where a claim's variants train on "
            "different data configs")

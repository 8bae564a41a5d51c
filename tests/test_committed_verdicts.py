"""Over the committed results: every decided row shows the interval of the test that decided it, on the
side its verdict says (reproduced: the claimed side; contradicted: the other; absent: inside the band)."""
import math
import os

import pytest

from ablations import load_all
from engine.claims import Close, Increasing, Outcome, Ratio
from report.build import one_plan, read_results
from report.overview import judged_claims

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def judged():
    specs = load_all()
    return judged_claims(read_results(os.path.join(REPO, "results"), specs), specs, one_plan)


def on_its_side(verdict, band):
    """Whether the shown interval agrees with the verdict (None: a trend decided by its trend test alone,
    whose statistic is Page's p, not an interval)."""
    claim, shown, outcome = verdict.claim, verdict.shown, verdict.outcome
    low, high = shown.low, shown.high
    zero = getattr(claim, "min_ratio", 1.0) if isinstance(claim, Ratio) else getattr(claim, "margin", 0.0)
    lo_band, hi_band = ((1 / band, band) if isinstance(claim, Ratio) else (-band, band)) if band else (None, None)
    if outcome == Outcome.ABSENT or (isinstance(claim, Close) and outcome == Outcome.REPRODUCED):
        return lo_band < low and high < hi_band
    if isinstance(claim, Close):  # contradicted: wholly outside the band
        return low > hi_band or high < lo_band
    if outcome == Outcome.REPRODUCED:
        return high > zero if isinstance(claim, Increasing) else low > zero  # a trend: no step below
    if isinstance(claim, Increasing) and high >= 0:
        return None if "significant drops: none" in verdict.statistic else False
    return high < zero


def test_every_decided_row_shows_an_interval_on_its_verdicts_side(judged):
    decided, wrong = 0, []
    for claims in judged.values():
        for j in claims:
            if not j.verdict.decided:
                continue
            decided += 1
            side = on_its_side(j.verdict, j.verdict.band)
            if side is False or (side is None and not isinstance(j.verdict.claim, Increasing)):
                wrong.append(f"{j.spec.name}: {j.verdict.claim.text[:60]} {j.verdict.outcome} {j.verdict.shown}")
            assert 0.5 < j.verdict.shown.level < 1 and math.isfinite(j.verdict.shown.low)
    assert decided > 40 and not wrong, "\n".join(wrong)


def test_the_level_is_the_tests(judged):
    """A two-variant claim at a design of 3 reachable looks is tested at α = 0.05/3 one-sided: its
    interval is two-sided at 1 − 2α; a contradicted "best" at α split over the rivals."""
    fov = {j.verdict.claim.text: j.verdict for j in judged["deeplab_fov"]}
    speed = next(v for text, v in fov.items() if text.startswith("LargeFOV trains faster"))
    assert speed.shown.what == "largefov / k7d4" and speed.shown.level == pytest.approx(0.9)  # one look: α 0.05
    best = next(j.verdict for j in judged["deeplab_crf"] if j.verdict.claim.text.startswith("DeepLab-MSc-LargeFOV"))
    if best.outcome == Outcome.CONTRADICTED:
        assert best.shown.level == pytest.approx(1 - 2 * 0.05 / 4)  # 4 rivals


def test_every_assertion_says_where_it_stands_in_the_paper():
    for spec in load_all():
        for assertion in spec.assertions:
            assert "Table" in assertion.where, (spec.name, assertion.text, assertion.where)


def test_absent_is_within_the_designs_reach_for_most_comparisons():
    """Were every difference 0, a TOST inside the band (2 seed sds of the table) would decide 'absent' within
    the last reachable look for most comparisons: a property of the seed spread and the band only."""
    from engine.design import absent_seeds, claim_band, paired_by_seed, rows_looks, seed_values
    specs = load_all()
    results = read_results(os.path.join(REPO, "results"), specs)
    reach = []
    for spec in specs:
        rows = one_plan(results[spec.name])[0]
        looks = rows_looks(rows)
        for c in spec.claims:
            if not c.is_check and c.band is None and c.metric in spec.bands:
                need = absent_seeds(c, seed_values(rows, c.metric, c.minus), looks, claim_band(spec, c, rows),
                                    paired_by_seed(rows, c.variants()))
                reach.append(need <= looks[-1])
    assert sum(reach) > len(reach) / 2, f"{sum(reach)} of {len(reach)}"

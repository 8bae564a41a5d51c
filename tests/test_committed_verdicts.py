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

from types import SimpleNamespace

import pytest

from engine.claims import Best, Close, Greater, Increasing, Outcome, Ratio, fact_holds

CONTRADICTED, INCONCLUSIVE, REPRODUCED = Outcome.CONTRADICTED, Outcome.INCONCLUSIVE, Outcome.REPRODUCED


def test_greater():
    claim = Greater("a > b", "mIoU", a="a", b="b")
    assert claim.judge({"a": [10, 11, 10.5], "b": [5, 5.5, 6]})[0] == REPRODUCED
    assert claim.judge({"a": [5, 5.5, 6], "b": [10, 11, 10.5]})[0] == CONTRADICTED
    assert claim.judge({"a": [5, 9], "b": [6, 8]})[0] == INCONCLUSIVE
    verdict, text = claim.judge({"a": [5], "b": [4]})
    assert verdict == INCONCLUSIVE and "2 seeds" in text


def test_increasing():
    claim = Increasing("rises", "mIoU", order=["a", "b", "c", "d"], x=[1, 3, 5, 7])
    rising = {"a": [1, 1.2], "b": [2, 2.1], "c": [3, 3.2], "d": [4, 4.1]}
    assert claim.judge(rising)[0] == REPRODUCED
    falling = {k: [-v for v in vals] for k, vals in rising.items()}
    assert claim.judge(falling)[0] == CONTRADICTED
    # a rise overall but one clear drop between neighbours: not monotone
    dip = {"a": [1, 1.1], "b": [5, 5.1], "c": [3, 3.1], "d": [8, 8.1]}
    verdict, text = claim.judge(dip)
    assert verdict == CONTRADICTED and "b→c" in text


def test_best():
    vals = {"x": [1, 1.1], "y": [3, 3.1], "z": [2, 2.1]}
    assert Best("", "mIoU", expected="y", candidates=["x", "y", "z"]).judge(vals)[0] == REPRODUCED
    assert Best("", "mIoU", expected="x", candidates=["x", "y", "z"]).judge(vals)[0] == CONTRADICTED
    assert Best("", "mIoU", expected="y", candidates=["x", "y"]).judge({"x": [1, 3], "y": [2, 2.5]})[0] == INCONCLUSIVE


def test_claims_know_their_variants_and_pairs():
    assert Greater("", "mIoU", a="a", b="b").variants() == ["a", "b"]
    assert Greater("", "mIoU", a="a", b="b").pair() == ("a", "b")
    assert Best("", "mIoU", expected="b", candidates=["a", "b", "c"]).variants() == ["b", "a", "c"]
    assert Best("", "mIoU", expected="b", candidates=["a", "b"]).pair() is None
    assert Increasing("", "mIoU", order=["a", "b", "c"], x=[1, 2, 3]).variants() == ["a", "b", "c"]


def test_a_claim_knows_its_effect_and_prints_it_in_its_units():
    """A difference in the metric's points, signed; a Ratio's a quotient, printed as one — the paper's
    effect and the report's columns alike (engine/design.py published_difference, report/overview.py)."""
    from engine.design import published_difference
    from report.overview import published_text
    greater, close = Greater("", "mIoU", a="a", b="b"), Close("", "mIoU", a="a", b="b")
    ratio = Ratio("", "infer_ms", a="a", b="b", min_ratio=1.5)
    assert (greater.effect(72.5, 70.0), greater.effect_text(2.5), greater.effect_text(-0.125)) == (2.5, "+2.50", "-0.12")
    assert (ratio.effect(3.0, 1.5), ratio.effect_text(2.0)) == (2.0, "2.00×")
    assert not greater.is_ratio and not close.is_ratio and ratio.is_ratio
    spec = SimpleNamespace(published={"a": {"mIoU": 72.5, "infer_ms": 3.0}, "b": {"mIoU": 70.0, "infer_ms": 1.5}})
    assert published_difference(spec, greater) == 2.5 and published_difference(spec, ratio) == 2.0
    # a ratio's band is a ratio: not printed as ± points
    assert published_text(spec, SimpleNamespace(claim=greater, band=2.0)) == "+2.50 (band ±2)"
    assert published_text(spec, SimpleNamespace(claim=ratio, band=1.1)) == "2.00×"


def test_fact_holds_within_the_papers_rounding():
    assert fact_holds({"computed": 260694, "published": 260e3, "tolerance": 1000})
    assert not fact_holds({"computed": 262000, "published": 260e3, "tolerance": 1000})
    assert fact_holds({"computed": 42, "published": None, "expected": 42})
    assert not fact_holds({"computed": 41, "published": None, "expected": 42})
    # computed must equal its formula too, even when the paper's rounding would accept it
    assert not fact_holds({"computed": 260694, "expected": 260695, "published": 260e3, "tolerance": 1000})


def test_claims_table_names_the_failed_runs_it_counted():
    import pandas as pd

    from report.build import claims_table
    from report.overview import judged_claims
    rows = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "run_id": ["w", "x", "y", "z"],
                         "eval_id": "e", "mIoU": [10.0, 11.0, 5.0, None], "preset": "smoke",
                         "status": ["ok", "ok", "ok", "failed: non-finite loss"]})
    spec = SimpleNamespace(name="t", claims=[Greater("a > b", "mIoU", a="a", b="b")], bands={}, max_runs={})
    table = claims_table(spec, rows, judged_claims({"t": rows}, [spec], lambda r: (r, []))["t"])
    assert "inconclusive" in table and "failed runs (counted, ranked last): b ×1" in table
    assert "Mann–Whitney, failures ranked last; 0/2 vs 1/2 runs failed" in table  # no data config: unpaired


def test_each_claim_shows_the_comparison_that_decided_it_at_its_tests_level():
    from engine.claims import Close
    dip = {"a": [1, 1.1], "b": [5, 5.1], "c": [3, 3.1], "d": [8, 8.1]}
    trend = Increasing("rises", "mIoU", order=["a", "b", "c", "d"], x=[1, 3, 5, 7])
    shown = trend.shown(dip, CONTRADICTED, alpha=0.05)
    # each step tested one-sided at 0.05 / (2 · 3): the two-sided interval at 1 − 0.05/3
    assert shown.what == "worst step b→c" and shown.difference == -2 and shown.high < 0
    assert round(shown.level, 4) == round(1 - 0.05 / 3, 4)
    vals = {"x": [1, 1.1], "y": [3, 3.1], "z": [2, 2.1]}
    # x is beaten by y and z, each tested at 0.05 / 2: the strongest beater, at 1 − 2 · 0.025
    shown = Best("", "mIoU", expected="x", candidates=["x", "y", "z"]).shown(vals, CONTRADICTED, alpha=0.05)
    assert shown.what == "x − y" and shown.difference == pytest.approx(-2) and shown.level == pytest.approx(0.95)
    # Welch, 2 vs 2, each sd 0.0707: se 0.0707, df 2, t(0.975, 2) = 4.303: −2 ± 0.304
    assert (shown.low, shown.high) == pytest.approx((-2.304, -1.696), abs=1e-3)
    far = {"a": [10, 10.1, 10.2], "b": [0, 0.1, 0.2]}
    assert Close("", "mIoU", a="a", b="b", band=1).shown(far, CONTRADICTED, alpha=0.05).level == pytest.approx(0.95)
    assert Close("", "mIoU", a="a", b="b", band=1).shown(far, REPRODUCED, alpha=0.05).level == pytest.approx(0.9)


def test_an_assertion_combines_its_comparisons_by_its_rule():
    from engine.claims import Rule, combine
    ABSENT = Outcome.ABSENT
    every = Rule.EVERY
    assert combine(every, [REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combine(every, [REPRODUCED, CONTRADICTED, INCONCLUSIVE]) == CONTRADICTED  # one step the other way
    assert combine(every, [REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine(every, [REPRODUCED, ABSENT]) == INCONCLUSIVE  # not every step holds, none goes the other way
    assert combine(every, [ABSENT, ABSENT]) == ABSENT
    assert combine(Rule.ONE, [CONTRADICTED]) == CONTRADICTED
    from engine.claims import Assertion
    with pytest.raises(ValueError, match="rule 'one' takes one comparison"):
        Assertion("x", "T1", [Greater("", "m", a="a", b="b")] * 2, rule=Rule.ONE)


def test_the_headline_counts_assertions_and_a_variant_never_run_is_not_run_yet():
    import pandas as pd

    from engine.claims import Assertion
    from report.overview import NOT_RUN, assertion_counts, judged_assertions, judged_claims, overview_table
    rows = pd.DataFrame({"variant": ["a", "b", "c"] * 3, "seed": [0, 0, 0, 1, 1, 1, 2, 2, 2], "data_config": "{}",
                         "run_id": [str(i) for i in range(9)], "eval_id": "e", "status": "ok", "preset": "smoke",
                         "m": [5.0, 1.0, 3.0, 5.2, 1.1, 3.3, 5.1, 1.2, 3.1]})
    ab, ac, ad, ca = (Greater("a > b", "m", a="a", b="b"), Greater("a > c", "m", a="a", b="c"),
                      Greater("a > d", "m", a="a", b="d"), Greater("c > a", "m", a="c", b="a"))
    spec = SimpleNamespace(name="t", title="T", claims=[ab, ac, ad, ca], bands={}, max_runs={}, published={},
                           assertions=(Assertion("a beats all", "T1", [ab, ac]), Assertion("a beats d", "T1", [ad]),
                                       Assertion("c beats a", "T2", [ca], beyond_paper=True)))
    judged = judged_claims({"t": rows}, [spec], lambda r: (r, []))
    found = judged_assertions(judged, [spec], {"t": rows}, lambda r: (r, []))["t"]
    assert [ja.outcome for ja in found] == [REPRODUCED, NOT_RUN, CONTRADICTED]
    assert found[1].missing == ("d",) and not found[2].counted  # beyond the paper: shown, not counted
    assert assertion_counts(found) == {REPRODUCED: 1, CONTRADICTED: 0, "absent": 0, INCONCLUSIVE: 0,
                                       Outcome.NOT_TESTABLE: 0, NOT_RUN: 1}
    table = overview_table({"t": found})
    # one row per assertion: its comparisons' tally (each stands beneath it in its section's claims table)
    assert ("| **a beats all** (T1) | – | 2 comparisons: 2 reproduced | not probed yet (none named) | **reproduced** |"
            in table and "↳" not in table)
    assert "needs runs of d" in table and "c beats a" not in table


def test_the_sign_test_and_its_interval_against_hand_computed_cases():
    import math

    from engine.stats import sign_interval, sign_test
    a, b = [3.0, 2.0, 5.0, -math.inf, 4.0], [1.0, 1.0, 1.0, 0.0, 1.0]  # differences 2, 1, 4, -inf, 3
    median, p_gt, p_lt = sign_test(a, b)
    assert median == 2.0 and p_gt == pytest.approx(6 / 32) and p_lt == pytest.approx(31 / 32)  # P(≥4 of 5), P(≥1)
    # at 1 − 2·(1/32)… no count of 5 reaches one side at 0.03: the interval is unbounded
    assert sign_interval(a, b, 0.94)[1:] == (-math.inf, math.inf)
    # at 0.5 a side (level 0): c = 3 (P(≥3 of 5) = 0.5): [d(3), d(3)] = the median
    assert sign_interval(a, b, 0.0)[1:] == (2.0, 2.0)
    assert sign_test([1.0, -math.inf], [1.0, -math.inf])[1:] == (1.0, 1.0)  # a tie and two failed runs: no signs


def test_a_variant_whose_every_run_failed_has_no_median_but_its_failures():
    inf = float("-inf")
    greater = Greater("a > b", "mIoU", a="a", b="b")
    verdict, text = greater.judge({"a": [10, 11, 12], "b": [inf, inf, inf]})
    # Mann–Whitney (b's failures tie: the normal approximation), every a run above every b run: U = 9 of 9
    assert verdict == REPRODUCED and text == "a − b = 0/3 vs 3/3 runs failed (Mann–Whitney, failures ranked last; " \
                                             "p(>)=0.0318)"
    assert "inf" not in greater.judge({"a": [inf, inf, inf], "b": [10, 11, 12]})[1]
    # a finished run left on each side: the median difference over those, as before
    assert greater.judge({"a": [10, 12, inf], "b": [5, inf, inf]})[1].startswith(
        "a − b = median +6.00 (Mann–Whitney, failures ranked last; 1/3 vs 2/3")
    rises = Increasing("rises", "mIoU", order=["a", "b", "c"], x=[1, 2, 3])
    verdict, text = rises.judge({"a": [5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5], "b": [inf] * 8, "c": [9, 9.5, 10, 10.5, 11, 11.5,
                                                                                             12, 12.5]})
    assert verdict == CONTRADICTED and "significant drops: a→b 0/8 vs 8/8 runs failed (p=" in text and "inf" not in text
    best = Best("", "mIoU", expected="y", candidates=["x", "y"])
    assert "vs runner-up x 0/3 vs 3/3 runs failed (" in best.judge({"x": [inf] * 3, "y": [3, 3.1, 3.2]})[1]


def test_a_best_claim_names_the_test_its_runner_up_was_compared_by():
    inf = float("-inf")
    best = Best("", "mIoU", expected="y", candidates=["x", "y"])
    assert "(Welch p(>)=" in best.judge({"x": [1, 1.1, 1.2], "y": [3, 3.1, 3.2]})[1]
    assert "(Mann–Whitney p(>)=" in best.judge({"x": [1, inf, 1.2], "y": [3, 3.1, 3.2]})[1]


def test_a_failed_mechanism_probe_makes_an_assertion_not_testable_and_one_not_measured_keeps_its_verdict(tmp_path):
    import pandas as pd

    from engine.claims import Assertion, Mechanism
    from probes.mechanisms import ProbeResult
    from report.overview import assertion_counts, judged_assertions, judged_claims, mechanisms_list, overview_table, \
        testable_text
    rows = pd.DataFrame({"variant": ["a", "b", "c"] * 3, "seed": [0, 0, 0, 1, 1, 1, 2, 2, 2], "data_config": "{}",
                         "run_id": [str(i) for i in range(9)], "eval_id": "e", "status": "ok", "preset": "smoke",
                         "m": [5.0, 1.0, 3.0, 5.2, 1.1, 3.3, 5.1, 1.2, 3.1]})
    seen = []

    def probe(inputs, figure):  # passes at 1 or more; None: not measured yet
        seen.append((inputs.spec.name, len(inputs.rows), inputs.results_dir))
        return None if figure is None else ProbeResult("m", figure >= 1, figure, 1.0, f"measured {figure}")
    claims = [Greater(f"{a} > {b}", "m", a=a, b=b) for a, b in ("ab", "ac", "cb")]
    spec = SimpleNamespace(name="t", title="T", claims=claims, bands={}, max_runs={}, published={}, assertions=(
        Assertion("present", "T1", [claims[0]], mechanisms=[Mechanism("why", probe, {"figure": 2.0})]),
        Assertion("absent", "T1", [claims[1]], mechanisms=[Mechanism("why", probe, {"figure": 2.0}),
                                                           Mechanism("and", probe, {"figure": 0.5})]),
        Assertion("unmeasured", "T1", [claims[2]], mechanisms=[Mechanism("why", probe, {"figure": None})])))
    judged = judged_claims({"t": rows}, [spec], lambda r: (r, []))
    found = judged_assertions(judged, [spec], {"t": rows}, lambda r: (r, []), str(tmp_path))["t"]
    assert seen == [("t", 9, str(tmp_path))] * 4
    assert [ja.outcome for ja in found] == [REPRODUCED, Outcome.NOT_TESTABLE, REPRODUCED]
    assert [ja.mechanism for ja in found] == ["yes", "no", "not probed yet"]
    assert assertion_counts(found)[Outcome.NOT_TESTABLE] == 1 and assertion_counts(found)[REPRODUCED] == 2
    table = overview_table({"t": found})
    assert "| yes (2 vs 1) | **reproduced** |" in table
    assert "| – | 1 comparison: 1 reproduced | no: m (0.5 vs 1) | **not testable on this data** |" in table
    assert "| not probed yet | **reproduced** |" in table
    assert "1 of 3 assertions (33 %); of those, 1 decided (100 %)" in testable_text({"t": found})
    assert "- and: **no** (0.5 vs 1) — for “absent”" in mechanisms_list(found)
    assert "- why: **yes** (2 vs 1: measured 2.0) — for every assertion but “unmeasured”" in \
        mechanisms_list(found, detail=True)
    # without a results folder (a section's own table) no probe runs, and the verdict is the comparisons'
    plain = judged_assertions(judged, [spec], {"t": rows}, lambda r: (r, []))["t"]
    assert [ja.outcome for ja in plain] == [REPRODUCED] * 3 and len(seen) == 4

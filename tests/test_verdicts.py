from types import SimpleNamespace

from engine.claims import Best, Greater, Increasing, Outcome, fact_holds

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
    assert "Mann–Whitney, 0/2 vs 1/2 runs failed" in table


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
        "a − b = median +6.00 over finished runs (Mann–Whitney, 1/3 vs 2/3")
    rises = Increasing("rises", "mIoU", order=["a", "b", "c"], x=[1, 2, 3])
    verdict, text = rises.judge({"a": [5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5], "b": [inf] * 8, "c": [9, 9.5, 10, 10.5, 11, 11.5,
                                                                                             12, 12.5]})
    assert verdict == CONTRADICTED and "significant drops: a→b 0/8 vs 8/8 runs failed (p=" in text and "inf" not in text
    best = Best("", "mIoU", expected="y", candidates=["x", "y"])
    assert "vs runner-up x 0/3 vs 3/3 runs failed (" in best.judge({"x": [inf] * 3, "y": [3, 3.1, 3.2]})[1]

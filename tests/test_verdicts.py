from ablations.verdicts import (CONTRADICTED, INCONCLUSIVE, REPRODUCED, best, fact_holds, greater,
                             increasing)


def test_greater():
    assert greater({"a": [10, 11, 10.5], "b": [5, 5.5, 6]}, "a", "b")[0] == REPRODUCED
    assert greater({"a": [5, 5.5, 6], "b": [10, 11, 10.5]}, "a", "b")[0] == CONTRADICTED
    assert greater({"a": [5, 9], "b": [6, 8]}, "a", "b")[0] == INCONCLUSIVE
    verdict, text = greater({"a": [5], "b": [4]}, "a", "b")
    assert verdict == INCONCLUSIVE and "2 seeds" in text


def test_increasing():
    order, xs = ["a", "b", "c", "d"], [1, 3, 5, 7]
    rising = {"a": [1, 1.2], "b": [2, 2.1], "c": [3, 3.2], "d": [4, 4.1]}
    assert increasing(rising, order, xs)[0] == REPRODUCED
    falling = {k: [-v for v in vals] for k, vals in rising.items()}
    assert increasing(falling, order, xs)[0] == CONTRADICTED
    # a rise overall but one clear drop between neighbours: not monotone
    dip = {"a": [1, 1.1], "b": [5, 5.1], "c": [3, 3.1], "d": [8, 8.1]}
    verdict, text = increasing(dip, order, xs)
    assert verdict == CONTRADICTED and "b→c" in text


def test_best():
    vals = {"x": [1, 1.1], "y": [3, 3.1], "z": [2, 2.1]}
    assert best(vals, "y", ["x", "y", "z"])[0] == REPRODUCED
    assert best(vals, "x", ["x", "y", "z"])[0] == CONTRADICTED
    assert best({"x": [1, 3], "y": [2, 2.5]}, "y", ["x", "y"])[0] == INCONCLUSIVE


def test_fact_holds_within_the_papers_rounding():
    assert fact_holds({"computed": 260694, "published": 260e3, "tolerance": 1000})
    assert not fact_holds({"computed": 262000, "published": 260e3, "tolerance": 1000})
    assert fact_holds({"computed": 42, "published": None, "expected": 42})
    assert not fact_holds({"computed": 41, "published": None, "expected": 42})
    # computed must equal its formula too, even when the paper's rounding would accept it
    assert not fact_holds({"computed": 260694, "expected": 260695, "published": 260e3, "tolerance": 1000})


def test_claims_table_names_the_failed_runs_it_left_out():
    import types

    import pandas as pd

    from report.build import claims_table
    rows = pd.DataFrame({"variant": ["a", "a", "b", "b"], "seed": [0, 1, 0, 1], "run_id": ["w", "x", "y", "z"],
                         "mIoU": [10.0, 11.0, 5.0, None],
                         "status": ["ok", "ok", "ok", "failed: non-finite loss"]})
    spec = types.SimpleNamespace(CLAIMS=[{"text": "a > b", "test": "greater", "metric": "mIoU", "a": "a", "b": "b"}])
    table = claims_table(spec, rows)
    assert "inconclusive" in table and "failed runs left out: b ×1" in table

"""The sequential design: error control under the null (simulated), the 'absent' outcome, the
paired test, power lines, and a runner that adds seeds only where a claim needs them."""
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from engine.claims import Best, Close, Greater, Increasing, Outcome, Ratio
from engine.design import claim_verdicts, next_look, sequential
from engine.rows import read_rows
from helpers import run, tiny

ABSENT, CONTRADICTED, INCONCLUSIVE, REPRODUCED = (Outcome.ABSENT, Outcome.CONTRADICTED, Outcome.INCONCLUSIVE,
                                                  Outcome.REPRODUCED)
LOOKS = [3, 5, 8]
NULL_CLAIMS = {
    "greater": Greater("", "m", a="a", b="b"),
    "greater, paired": Greater("", "m", a="a", b="b"),
    "best of 3": Best("", "m", expected="a", candidates=["a", "b", "c"]),
    "increasing over 4": Increasing("", "m", order=["a", "b", "c", "d"], x=[1, 2, 3, 4]),
    "ratio": Ratio("", "m", a="a", b="b"),
    "close": Close("", "m", a="a", b="b", band=0.3),
}
GREATER = Greater("a > b", "m", a="a", b="b")


def claims_spec(claims, bands=None):
    return SimpleNamespace(claims=claims, bands=bands or {})


@pytest.mark.parametrize("name", list(NULL_CLAIMS))
def test_under_the_null_each_wrong_direction_is_at_most_five_percent(name):
    """2,000 simulated sequences of looks at 3, 5 and 8 seeds with every variant drawn from the same
    distribution: 'reproduced' and 'contradicted' each at most 5 % (a close claim between identical
    variants is true, so only 'contradicted' is wrong there)."""
    claim, rng = NULL_CLAIMS[name], np.random.default_rng(0)
    same_run = {frozenset(("a", "b"))} if "paired" in name else frozenset()
    counts = {REPRODUCED: 0, CONTRADICTED: 0, ABSENT: 0, INCONCLUSIVE: 0}
    sims = 2000
    for _ in range(sims):
        shared = rng.normal(0, 1, LOOKS[-1])  # the part of a seed two evaluations of one model share
        by_seed = {}
        for v in "abcd":
            draws = rng.normal(0, 1, LOOKS[-1]) + (3 * shared if same_run else 0)
            if name == "ratio":
                draws = np.exp(draws / 4)
            by_seed[v] = dict(enumerate(draws.tolist()))
        band = claim.band or (0.5 if name != "ratio" else 1.1)
        counts[sequential(claim, by_seed, LOOKS, band=band, same_run=same_run)[0]] += 1
    if name != "close":
        assert counts[REPRODUCED] / sims <= 0.05, counts
    assert counts[CONTRADICTED] / sims <= 0.05, counts
    assert counts[ABSENT] + counts[REPRODUCED] + counts[CONTRADICTED] > 0  # the design decides something


def test_a_real_effect_is_found_at_the_first_look_and_a_null_one_is_absent():
    by_seed = {"a": dict(enumerate([10.0, 10.5, 10.2, 10.4, 10.1])), "b": dict(enumerate([5.0, 5.3, 5.1, 5.2, 5.4]))}
    verdict, _, look, n, need = sequential(GREATER, by_seed, LOOKS, band=2.0)
    assert (verdict, look, n, need) == (REPRODUCED, 1, 3, 0)
    # within ±2 of each other and tight: the claimed effect is absent (equivalence shown)
    by_seed["b"] = dict(enumerate([10.1, 10.3, 10.3, 10.2, 10.3]))
    verdict, text, *_ = sequential(GREATER, by_seed, LOOKS, band=2.0)
    assert verdict == ABSENT and "TOST ±2" in text
    # the same data without a band cannot be absent: inconclusive, with a power line
    verdict, text, look, *_ = sequential(GREATER, by_seed, LOOKS)
    assert verdict == INCONCLUSIVE and "power:" in text and look == 2  # no seeds beyond 5: no third look


def test_power_line_against_a_hand_computed_case():
    # a = [1, 3, 2], b = [0, 2, 1]: sd 1 each, se = sqrt(2/3), df 4: detectable (t.95 + t.80) · se
    from scipy import stats
    values = {"a": [1.0, 3.0, 2.0], "b": [0.0, 2.0, 1.0]}
    line, need = GREATER.power(values, 0.05)
    se = 1.0 * np.sqrt(2 / 3)
    assert f"{(stats.t.ppf(0.95, 4) + stats.t.ppf(0.8, 4)) * se:.2f}" in line
    # observed difference 1 with sd 1: the first n with (t.95,2n-2 + t.80,2n-2)·sqrt(2/n) ≤ 1 is 14
    # (n = 13: 1.0071; n = 14: 0.9681)
    assert "would need about 14 seeds" in line and need == 14
    # with a band of ±3 the nearer decision is 'absent': 3 − 1 = 2 within reach at n = 5 (n = 4: 2.014;
    # n = 5: 1.738)
    line, need = GREATER.power(values, 0.05, band=3.0)
    assert "absent within ±3: about 5" in line and need == 5
    # an equivalence claim: inside ±3 as above; outside ±0.5 (1 − 0.5, at α/2 = 0.025) first at n = 64
    # ((t.975,2n-2 + t.80,2n-2)·sqrt(2/n): n = 63: 0.5031, n = 64: 0.4991)
    assert Close("", "m", a="a", b="b", band=3.0).power(values, 0.05, band=3.0)[1] == 5
    line, need = Close("", "m", a="a", b="b", band=0.5).power(values, 0.05, band=0.5)
    assert "observed 1.00 outside ±0.5 would need about 64 seeds" in line and need == 64
    assert GREATER.power({"a": [1.0, 2.0], "b": [1.0, 2.0]}, 0.05)[1] == math.inf


def test_evaluations_of_one_model_are_paired():
    rows = pd.DataFrame({"variant": ["r1", "r2"] * 3, "seed": [0, 0, 1, 1, 2, 2],
                         "run_id": ["x", "x", "y", "y", "z", "z"], "status": "ok",
                         "m": [10.0, 10.5, 20.0, 20.4, 15.0, 15.6]})
    spec = claims_spec([Greater("r2 > r1", "m", a="r2", b="r1")])
    (verdict,) = claim_verdicts(spec, rows, looks=[3])
    # Welch sees seed-to-seed spread of 5 and decides nothing; paired, +0.5 every seed is clear
    assert verdict.outcome == REPRODUCED and "paired t" in verdict.statistic
    rows["run_id"] = [f"{i}" for i in range(6)]
    assert claim_verdicts(spec, rows, looks=[3])[0].outcome == INCONCLUSIVE


def test_the_runner_adds_seeds_only_to_undecided_claims_and_reuses_finished_runs(tmp_path):
    # two claims on the 'seed' column: a vs b can never be decided (equal values, no band), c vs d is
    # decided at the first look (equal within a band of 100)
    spec = tiny("seq", [{"id": v, "model": {"head": "gcn", "k": k}} for v, k in zip("abcd", (3, 5, 7, 9))],
                [Greater("a > b", "seed", a="a", b="b"), Close("c = d", "seed", a="c", b="d", band=100.0)],
                {"smoke": {"seeds": [2, 3], "train": {"iterations": 2}}})
    assert run(spec, tmp_path) == 2 * 3 + 2 * 2
    rows = read_rows(str(tmp_path / "seq.csv"))
    assert rows.groupby("variant")["seed"].max().to_dict() == {"a": 2, "b": 2, "c": 1, "d": 1}
    assert set(rows["seed_looks"]) == {"[2, 3]"}
    assert run(spec, tmp_path) == 0
    verdicts = claim_verdicts(spec, read_rows(str(tmp_path / "seq.csv")))
    assert [(v.outcome, v.look) for v in verdicts] == [(INCONCLUSIVE, 2), (REPRODUCED, 1)]


def test_the_run_budget_goes_to_the_undecided_claims_in_their_declared_order():
    # variants a..d, seeds 0..4, one run each; looks [3, 5]: 12 runs planned after the first look
    plans = [SimpleNamespace(variant=v, seed=s, run_id=f"{v}{s}") for v in "abcd" for s in range(5)]
    planned = {p.run_id for p in plans if p.seed < 3}
    claims = [Greater("", "m", a="c", b="d"), Greater("", "m", a="a", b="b"), Greater("", "m", a="a", b="c")]
    # 4 more runs fit in 17: the first claim (c, d) takes them; a, b would need 4 more; (a, c) then needs
    # only a's 2 (c is taken): 12 + 4 + 2 = 18 > 17, so it too is left
    wanted, left, _ = next_look(claims, plans, 5, set(planned), max_runs=17)
    assert wanted == {"c", "d"} and left == claims[1:]
    wanted, left, _ = next_look(claims, plans, 5, set(planned), max_runs=18)
    assert wanted == {"a", "c", "d"} and left == [claims[1]]
    wanted, left, _ = next_look(claims, plans, 5, set(planned))  # no budget: every undecided claim
    assert wanted == set("abcd") and left == []
    # c failed in every run so far: the claims that read it get no seeds, and their budget goes to (a, b)
    wanted, left, hopeless = next_look(claims, plans, 5, set(planned), max_runs=16, failed={"c"})
    assert wanted == {"a", "b"} and left == [] and hopeless == [claims[0], claims[2]]


def test_the_runner_gives_the_budget_to_the_claim_nearest_a_decision_first(tmp_path, monkeypatch):
    """Listed first, a vs b (a gap of 1 at a spread of 5) would need hundreds of seeds; c vs d (a gap of
    3 at a spread of 1) about 3 more: with room for two more runs, c and d get them."""
    spec = tiny("seq", [{"id": v, "model": {"head": "gcn", "k": k}} for v, k in zip("abcd", (3, 5, 7, 9))],
                [Greater("a > b", "score", a="a", b="b"), Greater("c > d", "score", a="c", b="d")],
                {"smoke": {"seeds": [2, 3], "train": {"iterations": 1}}}, max_runs={"smoke": 10})
    scores = {"a": [10.0, 20.0], "b": [9.0, 19.0], "c": [12.0, 10.0], "d": [9.0, 7.0]}
    rows = pd.DataFrame([{"variant": v, "seed": s, "run_id": f"{v}{s}", "status": "ok", "score": x}
                         for v, xs in scores.items() for s, x in enumerate(xs)])
    needs = [v.need for v in claim_verdicts(spec, rows, looks=[2, 3], upto=1)]
    assert needs[1] < 8 < needs[0]
    import engine.analysis
    import engine.runner
    trained = []

    def fake_run_plans(name, plans, csv_path, *args, **kwargs):  # rows with the scores above, no training
        todo = [p for p in plans if (p.variant, p.seed) not in trained]
        trained.extend((p.variant, p.seed) for p in todo)
        rows = pd.DataFrame([{"variant": p.variant, "seed": p.seed, "run_id": p.run_id,
                              "plan_id": p.plan_id, "ablation": "seq", "eval_id": p.eval_id,
                              "finished_at": "now", "status": "ok",
                              "score": scores[p.variant][p.seed] if p.seed < 2 else 0.0} for p in todo])
        pd.concat([read_rows(csv_path), rows]).to_csv(csv_path, index=False)
        return len(rows)

    monkeypatch.setattr(engine.runner, "run_plans", fake_run_plans)
    monkeypatch.setattr(engine.runner, "save_config_analyses", lambda *args: None)  # no dataset needed here
    run(spec, tmp_path)
    assert sorted(trained) == sorted([(v, s) for v in "abcd" for s in (0, 1)] + [("c", 2), ("d", 2)])


def test_a_run_budget_below_the_first_look_or_not_a_count_is_refused(tmp_path):
    spec = tiny("seq", [{"id": v, "model": {"head": "gcn", "k": k}} for v, k in zip("ab", (3, 5))],
                presets={"smoke": {"seeds": [2, 3]}}, max_runs={"smoke": 3})
    with pytest.raises(ValueError, match="max_runs 3 is below the 4 runs of the first look"):
        run(spec, tmp_path)
    assert not (tmp_path / "runs").exists()
    # a budget that is not a count is refused when the ablation file is loaded (test_ablation_files.py)


def test_the_t_tests_and_spearman_agree_with_scipy():
    from scipy import stats

    from engine.stats import compare, spearman
    rng = np.random.default_rng(1)
    for _ in range(50):
        a, b = rng.normal(0, 1, rng.integers(2, 9)).tolist(), rng.normal(0.3, 2, rng.integers(2, 9)).tolist()
        t, p = stats.ttest_ind(a, b, equal_var=False)
        assert compare(a, b)[1] == pytest.approx(p / 2 if t > 0 else 1 - p / 2, abs=1e-9)
        n = min(len(a), len(b))
        t, p = stats.ttest_rel(a[:n], b[:n])
        assert compare(a[:n], b[:n], paired=True)[1] == pytest.approx(p / 2 if t > 0 else 1 - p / 2, abs=1e-9)
        x, y = rng.integers(0, 4, n + 3), rng.normal(0, 1, n + 3)
        r, p = stats.spearmanr(x, y)
        assert spearman(x, y) == pytest.approx((r, p / 2 if r > 0 else 1 - p / 2), abs=1e-9)

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
    "best of 3, paired": Best("", "m", expected="a", candidates=["a", "b", "c"]),
    "increasing over 4, paired": Increasing("", "m", order=["a", "b", "c", "d"], x=[1, 2, 3, 4]),
    "ratio, paired": Ratio("", "m", a="a", b="b"),
    "close, paired": Close("", "m", a="a", b="b", band=0.3),
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
    paired = "paired" in name
    counts = {REPRODUCED: 0, CONTRADICTED: 0, ABSENT: 0, INCONCLUSIVE: 0}
    sims = 2000
    for _ in range(sims):
        shared = rng.normal(0, 1, LOOKS[-1])  # the part of a seed two evaluations of one model share
        by_seed = {}
        for v in "abcd":
            draws = rng.normal(0, 1, LOOKS[-1]) + (3 * shared if paired else 0)
            if name.startswith("ratio"):
                draws = np.exp(draws / 4)
            by_seed[v] = dict(enumerate(draws.tolist()))
        band = claim.band or (0.5 if not name.startswith("ratio") else 1.1)
        counts[sequential(claim, by_seed, LOOKS, band=band, paired=paired).outcome] += 1
    if not name.startswith("close"):
        assert counts[REPRODUCED] / sims <= 0.05, counts
    assert counts[CONTRADICTED] / sims <= 0.05, counts
    assert counts[ABSENT] + counts[REPRODUCED] + counts[CONTRADICTED] > 0  # the design decides something


def test_a_real_effect_is_found_at_the_first_look_and_a_null_one_is_absent():
    by_seed = {"a": dict(enumerate([10.0, 10.5, 10.2, 10.4, 10.1])), "b": dict(enumerate([5.0, 5.3, 5.1, 5.2, 5.4]))}
    v = sequential(GREATER, by_seed, LOOKS, band=2.0)
    assert (v.outcome, v.look, v.seeds, v.need) == (REPRODUCED, 1, 3, 0)
    # within ±2 of each other and tight: the claimed effect is absent (equivalence shown)
    by_seed["b"] = dict(enumerate([10.1, 10.3, 10.3, 10.2, 10.3]))
    v = sequential(GREATER, by_seed, LOOKS, band=2.0)
    assert v.outcome == ABSENT and "TOST ±2" in v.statistic
    # the same data without a band cannot be absent: inconclusive, with a power line
    v = sequential(GREATER, by_seed, LOOKS)
    assert v.outcome == INCONCLUSIVE and "power:" in v.statistic and v.look == 2  # no seeds beyond 5: no third look


def test_power_line_against_a_hand_computed_case():
    # a = [1, 3, 2], b = [0, 2, 1]: sd 1 each, se = sqrt(2/3), df 4. The detectable difference d is where
    # the noncentral t (df 4, noncentrality d / se) passes the critical t.95,4 with probability 0.8
    from scipy import stats
    values = {"a": [1.0, 3.0, 2.0], "b": [0.0, 2.0, 1.0]}
    line, need = GREATER.power(values, 0.05)
    se = 1.0 * np.sqrt(2 / 3)
    assert "detect a difference of 2.48 " in line
    assert stats.nct.sf(stats.t.ppf(0.95, 4), 4, 2.48 / se) == pytest.approx(0.8, abs=0.002)
    # (the old shortcut t.95 + t.80 gave 2.28: the noncentral t is exact)
    # observed difference 1 with sd 1: the first n whose power reaches 0.8 is 14 (n = 13: 0.778, 14: 0.807)
    power = lambda n: stats.nct.sf(stats.t.ppf(0.95, 2 * n - 2), 2 * n - 2, 1 / np.sqrt(2 / n))
    assert power(13) < 0.8 <= power(14)
    assert "would need about 14 seeds" in line and need == 14
    # with a band of ±3 the nearer decision is 'absent': 3 − 1 = 2 within reach at n = 4
    line, need = GREATER.power(values, 0.05, band=3.0)
    assert "absent within ±3: about 4" in line and need == 4
    # an equivalence claim: inside ±3 as above; outside ±0.5 (1 − 0.5, at α/2 = 0.025) first at n = 64
    assert Close("", "m", a="a", b="b", band=3.0).power(values, 0.05, band=3.0)[1] == 4
    line, need = Close("", "m", a="a", b="b", band=0.5).power(values, 0.05, band=0.5)
    assert "observed 1.00 outside ±0.5 would need about 64 seeds" in line and need == 64
    assert GREATER.power({"a": [1.0, 2.0], "b": [1.0, 2.0]}, 0.05)[1] == math.inf


def test_the_power_of_the_noncentral_t_matches_a_simulation():
    """power_of against 20,000 simulated paired t tests (n = 4, true difference 1.5 sd, α = 0.05)."""
    from scipy import stats
    from engine.stats import power_of
    rng = np.random.default_rng(0)
    d = rng.normal(1.5, 1.0, (20000, 4))
    t = d.mean(1) / (d.std(1, ddof=1) / 2)
    simulated = (t > stats.t.ppf(0.95, 3)).mean()
    assert power_of(1.5, 1 / 2, 3, 0.05) == pytest.approx(simulated, abs=0.01)


def test_variants_pair_by_seed_when_they_share_one_data_config():
    rows = pd.DataFrame({"variant": ["r1", "r2"] * 3, "seed": [0, 0, 1, 1, 2, 2],
                         "run_id": [f"{i}" for i in range(6)], "status": "ok", "data_config": "{}",
                         "m": [10.0, 10.5, 20.0, 20.4, 15.0, 15.6]})
    spec = claims_spec([Greater("r2 > r1", "m", a="r2", b="r1")])
    (verdict,) = claim_verdicts(spec, rows, looks=[3])
    # Welch sees seed-to-seed spread of 5 and decides nothing; paired by seed, +0.5 every seed is clear
    assert verdict.outcome == REPRODUCED and "paired t" in verdict.statistic
    # the interval of the test that decided: one look, α = 0.05 one-sided, so two-sided 90 %:
    # differences 0.5, 0.4, 0.6 → sd 0.1, se 0.0577, t(0.95, 2) = 2.920 → 0.5 ± 0.169
    shown = verdict.shown
    assert (shown.what, shown.level) == ("r2 − r1", pytest.approx(0.9))
    assert (shown.difference, shown.low, shown.high) == pytest.approx((0.5, 0.331, 0.669), abs=1e-3)
    rows["data_config"] = ['{"n": 1}', '{"n": 2}'] * 3  # other data: nothing pairs the seeds
    verdict = claim_verdicts(spec, rows, looks=[3])[0]
    assert verdict.outcome == INCONCLUSIVE and "Welch" in verdict.statistic


def test_a_failed_run_counts_against_its_variant():
    """Survivors alone would be a clear win; two of five runs diverged, so the paired sign test (a failed run
    loses its pair) finds 3 of 5 pairs for a: not a over b, and the statistic says how many failed."""
    rows = pd.DataFrame({"variant": ["a"] * 5 + ["b"] * 5, "seed": list(range(5)) * 2, "data_config": "{}",
                         "run_id": [f"{i}" for i in range(10)],
                         "status": ["ok", "ok", "ok", "failed: non-finite loss", "failed: non-finite loss"] + ["ok"] * 5,
                         "m": [10.0, 10.5, 10.2, None, None, 5.0, 5.3, 5.1, 5.2, 5.4]})
    spec = claims_spec([Greater("a > b", "m", a="a", b="b")])
    (verdict,) = claim_verdicts(spec, rows, looks=[5])
    assert verdict.outcome == INCONCLUSIVE and "paired sign test, a failed run loses its pair; 2/5 vs 0/5" in verdict.statistic
    survivors = rows[rows["status"] == "ok"]
    assert claim_verdicts(spec, survivors, looks=[5])[0].outcome == REPRODUCED
    # every run of b failed: a wins every pair (p = 1/32 < 0.05)
    rows["status"] = ["ok"] * 5 + ["failed: non-finite loss"] * 5
    rows["m"] = [10.0, 10.5, 10.2, 10.4, 10.1] + [None] * 5
    assert claim_verdicts(spec, rows, looks=[5])[0].outcome == REPRODUCED


def test_alpha_is_spread_over_the_looks_the_run_budget_can_reach():
    from engine.design import reachable_looks
    plans = [SimpleNamespace(variant=v, seed=s, run_id=f"{v}{s}") for v in "abc" for s in range(8)]
    first = {p.run_id for p in plans if p.seed < 3}  # 9 runs
    claims = [Greater("", "m", a="a", b="b"), Increasing("", "m", order=["a", "b", "c"], x=[1, 2, 3])]
    assert reachable_looks(claims, plans, first, (3, 5, 8), None) == (3, 5, 8)
    assert reachable_looks(claims, plans, first, (3, 5, 8), 9) == (3,)  # the budget is the first look
    assert reachable_looks(claims, plans, first, (3, 5, 8), 13) == (3, 5)  # a, b to 5 seeds: 13 runs
    assert reachable_looks(claims, plans, first, (3, 5, 8), 19) == (3, 5, 8)  # a, b to 8 seeds: 19


def test_a_comparison_two_ablations_share_is_counted_once(tmp_path):
    from engine.claims import DECIDED
    from report.overview import judged_claims

    def decided_share(judged):  # (decided, counted) over the counted comparisons
        counted = [j for claims in judged.values() for j in claims if j.counted]
        return sum(j.verdict.outcome in DECIDED for j in counted), len(counted)
    rows = pd.DataFrame({"variant": ["x", "y"] * 3, "seed": [0, 0, 1, 1, 2, 2], "data_config": "{}", "plan_id": "p",
                         "run_id": [f"{i}" for i in range(6)], "eval_id": "e", "status": "ok",
                         "m": [1.0, 5.0, 1.2, 5.3, 1.1, 5.2]})
    renamed = rows.assign(variant=rows["variant"].map({"x": "low", "y": "high"}))
    first = SimpleNamespace(name="one", claims=[Greater("y > x", "m", a="y", b="x")], bands={})
    second = SimpleNamespace(name="two", claims=[Greater("high > low", "m", a="high", b="low"),
                                                 Greater("low > high?", "m", a="low", b="high")], bands={})
    judged = judged_claims({"one": rows, "two": renamed}, [first, second], lambda r: (r, []))
    assert [j.same_as for j in judged["two"]] == [("one", "y > x"), None]  # the reverse is another test
    assert decided_share(judged) == (2, 2)  # y > x reproduced, low > high contradicted; the repeat not counted
    check = SimpleNamespace(name="three", bands={}, claims=[Greater("by definition", "m", a="y", b="x",
                                                                    by_construction="it is so")])
    judged = judged_claims({"three": rows.assign(m=rows["m"] + 1)}, [check], lambda r: (r, []))
    assert not judged["three"][0].counted and decided_share(judged) == (0, 0)
    # the same trained models evaluated another way (e.g. multi-scale) give other numbers: another comparison
    other_eval = renamed.assign(eval_id="multi-scale", m=renamed["m"][::-1].values)
    judged = judged_claims({"one": rows, "two": other_eval}, [first, second], lambda r: (r, []))
    assert [j.same_as for j in judged["two"]] == [None, None]


def test_the_runner_adds_no_seeds_to_decided_or_futile_claims_and_reuses_finished_runs(tmp_path):
    # two claims on the 'seed' column: a vs b can never be decided (equal values, no band: its power
    # line needs infinitely many seeds, so the futility rule gives it none), c vs d is decided at the
    # first look (equal within a band of 100); the runner's seeds to a claim that can still be
    # decided: test_the_runner_gives_the_budget_to_the_claim_nearest_a_decision_first
    spec = tiny("seq", [{"id": v, "model": {"head": "gcn", "k": k}} for v, k in zip("abcd", (3, 5, 7, 9))],
                [Greater("a > b", "seed", a="a", b="b"), Close("c = d", "seed", a="c", b="d", band=100.0)],
                {"smoke": {"seeds": [2, 3], "train": {"iterations": 2}}})
    assert run(spec, tmp_path) == 4 * 2
    rows = read_rows(str(tmp_path / "seq.csv"))
    assert rows.groupby("variant")["seed"].max().to_dict() == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert set(rows["seed_looks"]) == {"[2, 3]"}
    assert run(spec, tmp_path) == 0
    verdicts = claim_verdicts(spec, read_rows(str(tmp_path / "seq.csv")))
    assert [(v.outcome, v.look) for v in verdicts] == [(INCONCLUSIVE, 1), (REPRODUCED, 1)]


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


def runs_trained(spec, scores, tmp_path, monkeypatch):
    """The (variant, seed) runs the runner trains for spec, each run's score given (scores[v][seed]; 0
    beyond them), no training done."""
    import engine.one_ablation
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

    monkeypatch.setattr(engine.one_ablation, "run_plans", fake_run_plans)
    monkeypatch.setattr(engine.one_ablation, "save_config_analyses", lambda *args: None)  # no dataset needed here
    run(spec, tmp_path)
    return trained


def seq_spec(looks, max_runs=None):
    return tiny("seq", [{"id": v, "model": {"head": "gcn", "k": k}} for v, k in zip("abcd", (3, 5, 7, 9))],
                [Greater("a > b", "score", a="a", b="b"), Greater("c > d", "score", a="c", b="d")],
                {"smoke": {"seeds": looks, "train": {"iterations": 1}}}, max_runs=max_runs and {"smoke": max_runs})


def score_rows(scores):
    return pd.DataFrame([{"variant": v, "seed": s, "run_id": f"{v}{s}", "status": "ok", "score": x}
                         for v, xs in scores.items() for s, x in enumerate(xs)])


def test_the_runner_gives_the_budget_to_the_claim_nearest_a_decision_first(tmp_path, monkeypatch):
    """Listed first, a vs b would need 7 seeds per variant at its observed difference, c vs d 5 (both
    within the last look's 8): with room for one pair's six more seeds, c and d get them."""
    spec = seq_spec([2, 8], max_runs=20)
    scores = {"a": [10.5, 9.5], "b": [9.0, 7.0], "c": [12.0, 10.0], "d": [9.0, 7.0]}
    needs = [v.need for v in claim_verdicts(spec, score_rows(scores), looks=[2, 8], upto=1)]
    assert needs[1] < needs[0] <= 8
    trained = runs_trained(spec, scores, tmp_path, monkeypatch)
    assert sorted(trained) == sorted([(v, s) for v in "abcd" for s in (0, 1)] + [(v, s) for v in "cd" for s in range(2, 8)])


def test_a_claim_whose_power_line_needs_more_seeds_than_the_last_look_gets_none(tmp_path, monkeypatch):
    """The futility rule: a vs b (a gap of 1 at a spread of 7) would need 786 seeds per variant, c vs d 5;
    with a last look of 3 seeds neither gets more, budget or not; with one of 8, c and d do."""
    scores = {"a": [10.0, 20.0], "b": [9.0, 19.0], "c": [12.0, 10.0], "d": [9.0, 7.0]}
    needs = [v.need for v in claim_verdicts(seq_spec([2, 3]), score_rows(scores), looks=[2, 3], upto=1)]
    assert needs == [786, 5]
    first = [(v, s) for v in "abcd" for s in (0, 1)]
    assert sorted(runs_trained(seq_spec([2, 3]), scores, tmp_path / "a", monkeypatch)) == sorted(first)
    assert sorted(runs_trained(seq_spec([2, 8]), scores, tmp_path / "b", monkeypatch)) == \
        sorted(first + [(v, s) for v in "cd" for s in range(2, 8)])


@pytest.mark.parametrize("effect", [0.0, 0.6])
def test_the_futility_rule_raises_no_verdict_in_simulation(effect):
    """Simulated sequences (looks 3, 5, 8) of a two-variant and a trend claim, under the null and with
    a real effect: where the futility rule stops a claim (futile() after a look: no more seeds), its
    verdict is the one the full design reaches or inconclusive, never another, so it adds no wrong
    verdict ('reproduced' under the null, 'contradicted' under the effect: the full design's error
    control, test_under_the_null_each_wrong_direction_is_at_most_five_percent); and it does stop claims."""
    from engine.design import futile
    rng, sims = np.random.default_rng(1), 150
    for name in ("greater", "increasing over 4"):
        claim, wrong, stopped = NULL_CLAIMS[name], 0, 0
        # with the effect, the claimed order: a > b (greater), a < b < c < d (increasing)
        offsets = {v: effect * (i if name.startswith("increasing") else -i) for i, v in enumerate("abcd")}
        for _ in range(sims):
            by_seed = {v: dict(enumerate((rng.normal(0, 1, LOOKS[-1]) + offsets[v]).tolist())) for v in "abcd"}
            outcome = full = sequential(claim, by_seed, LOOKS, band=0.5).outcome
            for k, n in enumerate(LOOKS[:-1], 1):  # the runner: after each look, stop or go on
                verdict = sequential(claim, by_seed, LOOKS, band=0.5, upto=k)
                if verdict.decided:
                    break
                if futile(verdict, LOOKS):
                    kept = {v: {s: x for s, x in d.items() if s < n} for v, d in by_seed.items()}
                    outcome = sequential(claim, kept, LOOKS, band=0.5).outcome
                    stopped += 1
                    break
            assert outcome in (full, INCONCLUSIVE), (name, full, outcome)
            wrong += outcome == (REPRODUCED if effect == 0 else CONTRADICTED)
        assert wrong / sims <= 0.05 and stopped > 0, (name, effect, wrong, stopped)


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


def test_the_timing_phase_runs_in_a_recorded_shuffled_order():
    """The order is drawn from a seed of the ablation and look (the same on a rerun), is not the order
    of seeds and variants (ascending ρ in every seed confounded 'lower ρ is faster' with the machine's
    drift), and each row records the seed and its position."""
    from engine.workers import timing_order
    results = [SimpleNamespace(plan=SimpleNamespace(seed=s, variant=v, eval_id="e")) for s in range(3) for v in "abcdefgh"]
    seed, order = timing_order("lc_threshold", "look 1/3", list(reversed(results)))
    again_seed, again = timing_order("lc_threshold", "look 1/3", results)
    assert seed == again_seed and [r.plan for r in order] == [r.plan for r in again]
    assert [(r.plan.seed, r.plan.variant) for r in order] != sorted((r.plan.seed, r.plan.variant) for r in order)
    assert timing_order("lc_threshold", "look 2/3", results)[0] != seed
    firsts = {r.plan.variant for r in order[:8]}
    assert len(firsts) > 3  # the first eight timed are not one seed's eight variants in order


def test_each_claim_pairs_when_its_own_variants_share_a_data_config():
    """A table whose first step changes the data (psp_chain's baseline has no mirror): that step is Welch,
    the steps after it pair by seed, and two evaluations of one model pair by construction."""
    rows = pd.DataFrame({"variant": ["base", "da", "al", "al_ms"] * 3, "seed": [0] * 4 + [1] * 4 + [2] * 4,
                         "run_id": [f"{i}" for i in range(12)], "status": "ok",
                         "data_config": ['{"flip": false}', "{}", "{}", "{}"] * 3,
                         "m": [10.0, 10.2, 10.5, 10.6, 20.0, 20.1, 20.4, 20.5, 15.0, 15.2, 15.6, 15.7]})
    spec = claims_spec([Greater("da > base", "m", a="da", b="base"), Greater("al > da", "m", a="al", b="da"),
                        Greater("ms > al", "m", a="al_ms", b="al")])
    first, second, third = claim_verdicts(spec, rows, looks=[3])
    assert not first.paired and "Welch" in first.statistic
    assert second.paired and third.paired and "paired t" in second.statistic
    assert second.outcome == REPRODUCED  # +0.3, +0.3, +0.4: clear paired, lost in Welch's seed spread of 5


def test_the_same_runs_judged_with_another_band_or_pairing_are_another_comparison():
    from engine.design import comparison_key, same_comparison
    rows = pd.DataFrame({"variant": ["x", "y"] * 3, "seed": [0, 0, 1, 1, 2, 2], "run_id": [f"{i}" for i in range(6)],
                         "eval_id": "e", "status": "ok", "data_config": "{}", "m": [1.0, 5.0, 1.2, 5.3, 1.1, 5.2]})
    claim = Greater("y > x", "m", a="y", b="x")
    by_seed = {"x": {0: 1.0, 1: 1.2, 2: 1.1}, "y": {0: 5.0, 1: 5.3, 2: 5.2}}
    key = comparison_key(rows, sequential(claim, by_seed, [3], band=2.0, paired=True))
    assert same_comparison(key, comparison_key(rows, sequential(claim, by_seed, [3], band=2.0, paired=True)))
    assert not same_comparison(key, comparison_key(rows, sequential(claim, by_seed, [3], band=0.75, paired=True)))
    assert not same_comparison(key, comparison_key(rows, sequential(claim, by_seed, [3], band=2.0, paired=False)))


def test_deeplab_table_2_compares_before_the_crf_where_the_paper_prints_both():
    from ablations import load_all
    from engine.design import published_difference
    fov = next(spec for spec in load_all() if spec.name == "deeplab_fov")
    effects = {c.pair(): (published_difference(fov, c), c.published_from) for c in fov.claims if c.metric == "mIoU"}
    assert effects[("k7d4", "k4d4")] == (pytest.approx(64.38 - 59.80), "before the CRF, Table 1(a)")
    assert effects[("largefov", "k7d4")][0] == pytest.approx(62.25 - 64.38)
    assert effects[("k4d8", "k4d4")][0] == pytest.approx(67.14 - 63.74)  # no 4×4 dil 8 before the CRF
    assert "after the CRF" in effects[("k4d8", "k4d4")][1]
    assert effects[("k4d8", "k7d4")] == (pytest.approx(67.14 - 67.64), effects[("k4d8", "k4d4")][1])


def test_the_band_is_two_seed_sds_of_the_table_at_its_first_look():
    """Seed sds at the first look (seeds 0–2): a 1.0, b 2.0, c 3.0 → median 2.0 → band ±4.0; seed 3 is a later
    look's and does not move it; a claim's own band wins; a metric without a suite band gets none."""
    from engine.design import claim_band, seed_noise
    rows = pd.DataFrame({"variant": list("aaaabbbbcccc"), "seed": [0, 1, 2, 3] * 3, "status": "ok",
                         "seed_looks": "[3, 5]", "m": [1.0, 2.0, 3.0, 90.0, 0.0, 2.0, 4.0, -50.0, 0.0, 3.0, 6.0, 7.0],
                         "infer_ms": 1.0})
    assert seed_noise(rows, "m") == pytest.approx(2.0)
    spec = SimpleNamespace(bands={"m": 2.0})
    assert claim_band(spec, Greater("", "m", a="a", b="b"), rows) == 4.0
    assert claim_band(spec, Close("", "m", a="a", b="b", band=0.5), rows) == 0.5
    assert claim_band(spec, Greater("", "infer_ms", a="a", b="b"), rows) is None
    assert claim_band(spec, Greater("", "m", a="a", b="b"), rows[rows["seed"] == 0]) == 2.0  # no spread yet: suite's


def test_failed_runs_under_the_null_keep_each_wrong_direction_at_most_five_percent():
    """1,000 null sequences (looks 3, 5, 8; pairs share a seed effect) where each run fails with probability
    0.2 whatever its variant: the paired sign test (a failed run loses its pair) keeps each wrong direction
    at most 5 %."""
    rng, claim = np.random.default_rng(1), Greater("", "m", a="a", b="b")
    counts = {REPRODUCED: 0, CONTRADICTED: 0, ABSENT: 0, INCONCLUSIVE: 0}
    sims, failed_any = 1000, 0
    for _ in range(sims):
        shared = rng.normal(0, 1, 8)
        by_seed = {}
        for v in "ab":
            draws = rng.normal(0, 1, 8) + 3 * shared
            draws[rng.random(8) < 0.2] = -math.inf
            by_seed[v] = dict(enumerate(draws.tolist()))
        failed_any += any(x == -math.inf for d in by_seed.values() for x in d.values())
        counts[sequential(claim, by_seed, LOOKS, band=0.5, paired=True).outcome] += 1
    assert failed_any > 0.9 * sims
    assert counts[REPRODUCED] / sims <= 0.05 and counts[CONTRADICTED] / sims <= 0.05, counts


def test_a_failed_run_still_lets_a_paired_claim_decide_and_shows_the_sign_tests_interval():
    """Looks 3, 5, 8 (α = 0.05/3 each); b's seed 0 diverged, a ahead in every other pair: at 8 seeds a wins all 8
    pairs, p = 1/256. Its interval is the sign test's at 1 − 2α: only a count of 8 of 8 rejects, so it spans the
    smallest to the largest difference, 1 to +inf (the failed pair): above 0."""
    by_seed = {"a": {s: 10.0 + 0.1 * s for s in range(8)}, "b": {s: 9.0 + 0.1 * s for s in range(8)}}
    by_seed["b"][0] = -math.inf
    verdict = sequential(Greater("", "m", a="a", b="b"), by_seed, LOOKS, paired=True)
    assert (verdict.outcome, verdict.look) == (REPRODUCED, 3) and "paired sign test" in verdict.statistic
    assert verdict.shown.basis == "rank" and (verdict.shown.low, verdict.shown.high) == (1.0, math.inf)
    by_seed["a"][0], by_seed["b"][0] = -math.inf, 9.0  # now a's run failed: 7 of 8, p = 9/256 > 0.05/3
    assert sequential(Greater("", "m", a="a", b="b"), by_seed, LOOKS, paired=True).outcome == INCONCLUSIVE


def test_the_family_chance_of_a_false_verdict_against_hand_computed_cases():
    """One look at α = 0.05, paired: one two-variant comparison is wrong either way with chance 2 × 0.05 = 0.10;
    two on disjoint pairs of variants, 1 − 0.9² = 0.19 (simulated: within a few points; deterministic)."""
    from engine.design import family_error
    rows = pd.DataFrame({"variant": list("abcd") * 3, "seed": [0] * 4 + [1] * 4 + [2] * 4, "status": "ok",
                         "data_config": "{}", "seed_looks": "[3]", "m": np.arange(12.0) % 5})
    one = SimpleNamespace(claims=[Greater("", "m", a="a", b="b")], bands={"m": 2.0})
    two = SimpleNamespace(claims=[Greater("", "m", a="a", b="b"), Greater("", "m", a="c", b="d")], bands={"m": 2.0})
    assert family_error(one, rows, sims=600) == family_error(one, rows, sims=600)
    assert family_error(one, rows, sims=600) == pytest.approx(0.10, abs=0.035)
    assert family_error(two, rows, sims=600) == pytest.approx(0.19, abs=0.045)


def test_a_run_far_below_its_variants_other_seeds_is_flagged_as_a_soft_failure():
    """Seed sds 0.1, 11.5 and 0.15 → table noise 0.15 (their median); b's seed 1 (60 against 80, 80.1) lies 133
    noise units below b's median: flagged; c's seed 2, 0.2 below (1.3 units), is not."""
    from engine.design import soft_failures
    rows = pd.DataFrame({"variant": list("aaabbbccc"), "seed": [0, 1, 2] * 3, "status": "ok", "seed_looks": "[3]",
                         "m": [10.0, 10.1, 10.2, 80.0, 60.0, 80.1, 5.0, 5.1, 4.8]})
    assert soft_failures(rows, "m") == {"b": [(1, 60.0)]}

"""The fully connected CRF: the exact O(N²) oracle against hand-computed cases, pydensecrf2 against
the oracle, and a clear error without the package."""
import json
import math
import os
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from data import build_dataset
from engine.rows import read_rows
from engine.spec import from_module
from engine.tuning import choose_crfs, crf_grid, crf_optimum, next_crf_points
from helpers import ablation_file, plans_of, run, selection_of, settings_of, tiny
from data.transforms import to_rgb, to_tensor
from segmodels.crf import dense_crf, exact_dense_crf


def two_colour_scene(h=12, w=16, flipped=((3, 2), (5, 4), (8, 6)), seed=0):
    """Left half red, right half blue; class 0 on the left, 1 on the right, with a few left pixels
    whose probabilities wrongly (and weakly) favour class 1. Returns probs (2, H, W), image, truth."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2] = (200, 30, 30)
    image[:, w // 2:] = (30, 30, 200)
    truth = np.zeros((h, w), int)
    truth[:, w // 2:] = 1
    p1 = np.where(truth == 1, 0.8, 0.2) + rng.uniform(-0.05, 0.05, (h, w))
    for y, x in flipped:
        p1[y, x] = 0.6
    return np.stack([1 - p1, p1]).astype(np.float32), image, truth


def test_without_pairwise_weights_the_crf_returns_the_probabilities():
    probs, image, _ = two_colour_scene()
    q = exact_dense_crf(probs, image, w1=0.0, theta_alpha=5, theta_beta=10, w2=0.0, iterations=5)
    assert np.allclose(q.numpy(), probs, atol=1e-6)


def test_one_update_on_two_pixels_by_hand():
    # one row of two pixels of one colour, Gaussian kernel only (w2 = 1, θγ = 1): K = [[1, a], [a, 1]]
    # with a = exp(−1/2), n = 1/(1 + a); pixel 0's message for label l is (Q₀(l) + a·Q₁(l)) / (1 + a):
    # label 0: (0.8 + 0.4a) / (1 + a) = 0.648984, label 1: (0.2 + 0.6a) / (1 + a) = 0.351016;
    # Q₀(0) = 1 / (1 + exp(−(ln 0.8 − ln 0.2 + 0.648984 − 0.351016))) = 0.843468
    probs = np.array([[[0.8, 0.4]], [[0.2, 0.6]]])
    image = np.full((1, 2, 3), 100, np.uint8)
    q = exact_dense_crf(probs, image, w1=0.0, theta_alpha=1, theta_beta=1, w2=1.0, theta_gamma=1.0, iterations=1)
    a = math.exp(-0.5)
    m0, m1 = (0.8 + 0.4 * a) / (1 + a), (0.2 + 0.6 * a) / (1 + a)
    assert (m0, m1) == pytest.approx((0.648984, 0.351016), abs=1e-6)
    assert q[0, 0, 0].item() == pytest.approx(0.843468, abs=1e-6)
    assert q[:, 0, 0].sum().item() == pytest.approx(1.0)


def test_each_message_is_normalised_once_after_filtering_as_deeplabs_2011_code_does():
    # three pixels in a row, Gaussian kernel (θγ = 1): K = [[1, a, b], [a, 1, a], [b, a, 1]], a = e^(−1/2),
    # b = e^(−2). The 2011 code divides pixel i's filtered Q by (K 1)ᵢ: pixel 0's message for label 0 is
    # (0.8 + 0.4a + 0.1b) / (1 + a + b) = 0.606330; the 2013 default (symmetric: Kᵢⱼ / √((K 1)ᵢ (K 1)ⱼ) in the
    # sum) gives 0.590616, since (K 1)₁ = 1 + 2a ≠ (K 1)₀
    probs = np.array([[[0.8, 0.4, 0.1]], [[0.2, 0.6, 0.9]]])
    image = np.full((1, 3, 3), 100, np.uint8)
    q = exact_dense_crf(probs, image, w1=0.0, theta_alpha=1, theta_beta=1, w2=1.0, theta_gamma=1.0, iterations=1)
    a, b = math.exp(-0.5), math.exp(-2.0)
    after = [(0.8 + 0.4 * a + 0.1 * b) / (1 + a + b), (0.2 + 0.6 * a + 0.9 * b) / (1 + a + b)]
    norm = [1 / math.sqrt(1 + a + b), 1 / math.sqrt(1 + 2 * a), 1 / math.sqrt(1 + a + b)]
    symmetric = [norm[0] * sum(k * n * p for k, n, p in zip((1, a, b), norm, probs[label, 0])) for label in (0, 1)]
    expected = 1 / (1 + math.exp(-(math.log(0.8 / 0.2) + after[0] - after[1])))
    assert (after[0], symmetric[0]) == pytest.approx((0.606330, 0.590616), abs=1e-6)
    assert q[0, 0, 0].item() == pytest.approx(expected, abs=1e-9)
    assert abs(expected - 1 / (1 + math.exp(-(math.log(4) + symmetric[0] - symmetric[1])))) > 1e-3


def test_the_crf_runs_on_each_image_without_its_padding():
    from data import PAD_LABEL
    from segmodels.crf import crf_labels
    probs, image, _ = two_colour_scene(h=10, w=12)
    settings = {"w1": 5.0, "theta_alpha": 4.0, "theta_beta": 20.0}
    logits = torch.log(torch.from_numpy(probs))[None]
    alone = crf_labels(logits, image[None], settings)
    padded_logits = torch.nn.functional.pad(logits, (0, 4, 0, 6))  # a batch padded to 16 × 16
    padded_rgb = np.pad(image, ((0, 6), (0, 4), (0, 0)))[None]
    extent = torch.nn.functional.pad(torch.zeros(1, 10, 12), (0, 4, 0, 6), value=PAD_LABEL) != PAD_LABEL
    assert torch.equal(crf_labels(padded_logits, padded_rgb, settings, extent)[:, :10, :12], alone)


def test_the_bilateral_kernel_fixes_labels_inside_a_colour_region_and_keeps_the_edge():
    probs, image, truth = two_colour_scene()
    before = probs.argmax(0)
    assert (before != truth).sum() == 3
    q = exact_dense_crf(probs, image, w1=5.0, theta_alpha=4.0, theta_beta=20.0, iterations=10)
    assert np.array_equal(q.argmax(0).numpy(), truth)


def test_pydensecrf2_agrees_with_the_exact_oracle():
    probs, image, truth = two_colour_scene(h=24, w=32, flipped=((4, 3), (10, 8), (20, 12), (15, 5)))
    rng = np.random.default_rng(1)
    probs = probs * rng.uniform(0.7, 1.3, probs.shape).astype(np.float32)
    probs /= probs.sum(0, keepdims=True)
    params = dict(w1=5.0, theta_alpha=6.0, theta_beta=20.0, w2=3.0, theta_gamma=3.0, iterations=10)
    exact = exact_dense_crf(probs, image, **params).numpy()
    package = dense_crf(probs, image, **params)
    assert package.shape == exact.shape and np.allclose(package.sum(0), 1, atol=1e-4)
    # the lattice approximates the Gaussian kernels: the labels agree everywhere, the marginals within
    # 0.001 (measured on this scene with pydensecrf2 1.1: at most 0.00018, 0.000007 on average; the
    # package's default symmetric normalisation would be 0.0045 away)
    assert np.array_equal(package.argmax(0), exact.argmax(0))
    assert np.array_equal(package.argmax(0), truth)
    assert np.abs(package - exact).max() < 0.001


def test_a_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    probs, image, _ = two_colour_scene()
    with pytest.raises(RuntimeError, match="needs the package pydensecrf2 .pip install pydensecrf2"):
        dense_crf(probs, image, w1=5.0, theta_alpha=4.0, theta_beta=20.0)


def test_mismatched_shapes_are_refused():
    probs, image, _ = two_colour_scene()
    with pytest.raises(ValueError, match=r"got \(2, 12, 16\) and \(12, 15, 3\)"):
        exact_dense_crf(probs, image[:, :15], w1=1.0, theta_alpha=1.0, theta_beta=1.0)


# --- the CRF as an evaluation option ------------------------------------------------------------

def crf_spec(crf):
    """Two evaluations of one trained model: without and with the CRF."""
    return tiny("crf", [{"id": "plain"}, {"id": "crf", "eval": {"crf": crf}}],
                model={"arch": "single_head", "head": "gcn", "k": 3}, presets={})


CRF = {"w1": 4.0, "theta_alpha": 8.0, "theta_beta": 5.0}


def test_the_crf_is_an_evaluation_option_off_the_run_id(tmp_path):
    spec = crf_spec(CRF)
    plans = plans_of(spec)
    assert plans[0].run_id == plans[1].run_id and plans[0].eval_id != plans[1].eval_id
    assert run(spec, tmp_path) == 2
    rows = read_rows(str(tmp_path / "crf.csv")).set_index("variant")
    assert (rows["status"] == "ok").all() and len(os.listdir(tmp_path / "runs")) == 1  # trained once
    assert json.loads(rows.loc["crf", "eval_config"])["crf"] == CRF  # its settings recorded in the row
    assert rows.loc["crf", "crf_ms"] > 0 and np.isnan(rows.loc["plain", "crf_ms"])


def test_crf_rows_fail_clearly_without_the_package_and_a_rerun_retries_them(tmp_path, monkeypatch):
    spec = crf_spec(CRF)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pydensecrf", None)
        m.setitem(sys.modules, "pydensecrf.densecrf", None)
        run(spec, tmp_path)
    rows = read_rows(str(tmp_path / "crf.csv")).set_index("variant")
    assert rows.loc["plain", "status"] == "ok" and rows.loc["crf", "status"] == "failed: CRF unavailable"
    assert run(spec, tmp_path) == 1  # the package is back
    assert (read_rows(str(tmp_path / "crf.csv"))["status"] == "ok").all()


@pytest.mark.parametrize("crf, message", [
    ({"w1": 4.0, "theta_alpha": 8.0}, r"missing \['theta_beta'\]"),
    ({**CRF, "sigma": 1.0}, r"unknown \['sigma'\]"),
    ({**CRF, "theta_beta": 0.0}, "θ > 0"),
])
def test_bad_crf_settings_are_refused_before_any_training(tmp_path, crf, message):
    spec = crf_spec(crf)
    with pytest.raises(ValueError, match=message):
        run(spec, tmp_path)
    assert not (tmp_path / "runs").exists()


def test_datasets_give_their_images_back_as_8_bit_rgb():
    data = build_dataset({"name": "synthetic", "image_size": 32, "n_train": 4, "n_val": 4}, "val")
    images = torch.stack([data[i][0] for i in range(4)])
    assert np.array_equal(data.to_rgb(images), data.images.permute(0, 2, 3, 1).numpy())
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    assert np.array_equal(to_rgb(to_tensor(Image.fromarray(pixels))[None])[0], pixels)


# --- the CRF's settings chosen on held-out training images -------------------------------------

def test_the_crf_grid_and_the_choice_of_its_point():
    grid = crf_grid({"w1": [3.0, 5.0], "theta_beta": [4.0], "theta_alpha": [8.0, 12.0]})
    assert grid[0] == {"theta_alpha": 8.0, "theta_beta": 4.0, "w1": 3.0} and len(grid) == 4
    assert grid[1] == {"theta_alpha": 8.0, "theta_beta": 4.0, "w1": 5.0}
    spec = types.SimpleNamespace(variants=[{"id": "v", "tune_crf": True}])
    points = [0, 0, 1, 1, 2, 10, 10]  # point 10 sorts before point 2 as text: the index decides, not the name
    rows = pd.DataFrame({"variant": [f"v@crf{i}" for i in points],
                         "eval_config": [json.dumps({"crf": {"w1": float(i)}}) for i in points],
                         "status": ["ok"] * 4 + ["failed: non-finite loss", "ok", "ok"],
                         "mIoU": [60.0, 62.0, 61.0, 61.0, float("nan"), 61.0, 61.0]})
    assert choose_crfs(spec, rows) == {"v": {"w1": 0.0}}  # 61 = 61 = 61: the earliest point
    rows.loc[2, "mIoU"] = 64.0
    assert choose_crfs(spec, rows) == {"v": {"w1": 1.0}}


SELECTION = {"MODEL": {"arch": "single_head", "head": "gcn", "k": 3},
             "PRESETS": {"smoke": {"tuning": {"crf": {"w1": [0.0, 4.0], "theta_alpha": [8.0], "theta_beta": [5.0]}}}}}


def crf_selection_spec(**shared):
    return ablation_file("crf", **SELECTION, VARIANTS=[{"id": "plain"}, {"id": "crf", "tune_crf": True},
                                                       {"id": "wide", "model": {"k": 5}, **shared}])


def test_crf_settings_are_chosen_on_held_out_training_images_of_one_trained_model(tmp_path):
    spec = from_module(crf_selection_spec(crf_from="crf"))
    run(spec, tmp_path)
    selection = read_rows(str(tmp_path / "tuning" / "crf.csv"))
    assert sorted(selection["variant"]) == ["crf@crf0", "crf@crf1"] and selection["run_id"].nunique() == 1
    holdout = settings_of(spec).tuning["holdout"]
    assert all(json.loads(c)["holdout"] == holdout for c in selection["data_config"])
    chosen = choose_crfs(spec, selection)["crf"]
    rows = read_rows(str(tmp_path / "crf.csv")).set_index("variant")
    assert json.loads(rows.loc["crf", "eval_config"])["crf"] == chosen
    assert rows.loc["crf", "run_id"] == rows.loc["plain", "run_id"]  # the CRF stays off the run id
    # another model evaluated with the settings chosen on the first one's selection model: no second selection
    assert json.loads(rows.loc["wide", "eval_config"])["crf"] == chosen
    assert rows.loc["wide", "run_id"] not in set(selection["run_id"]) | {rows.loc["crf", "run_id"]}


def test_the_crf_grid_can_be_scored_on_the_first_held_out_images(tmp_path):
    """tuning crf_images = N: every grid point scored on the first N held-out images (its eval config
    says so, on the model trained once); the quick preset of deeplab_crf scores on 100 of its 300."""
    spec = from_module(crf_selection_spec())
    for bad in (5, 0):  # the smoke preset holds out 4
        with pytest.raises(ValueError, match=rf"eval option images must be an int in 1\.\.4 .* got {bad}"):
            run(spec, tmp_path, sets=(("tuning.crf_images", bad),))
    assert not (tmp_path / "runs").exists()  # refused before any training
    run(spec, tmp_path, sets=(("tuning.crf_images", 2),))
    selection = read_rows(str(tmp_path / "tuning" / "crf.csv"))
    assert len(selection) == 2 and selection["run_id"].nunique() == 1
    assert all(json.loads(c)["images"] == 2 for c in selection["eval_config"])
    rows = read_rows(str(tmp_path / "crf.csv")).set_index("variant")
    assert "images" not in json.loads(rows.loc["crf", "eval_config"])  # the verdicts' rows score all of val
    quick = settings_of("deeplab_crf", "quick").tuning
    assert quick["crf_images"] == 100 < quick["holdout"]
    assert {p.eval.get("images") for p in selection_of("deeplab_crf", "quick")} == {100}


@pytest.mark.parametrize("module, message", [
    (ablation_file("crf", **SELECTION, VARIANTS=[{"id": "v", "tune_lr": [0.5, 1.0], "tune_crf": True}]),
     r"ablations/crf.py: VARIANTS\[0\] \('v'\): tune_lr and tune_crf cannot be combined"),
    (crf_selection_spec(crf_from="plain"), "crf_from 'plain' is not a variant with tune_crf"),
    (ablation_file("crf", MODEL=SELECTION["MODEL"], VARIANTS=[{"id": "v", "tune_crf": True}]),
     "need the preset's CRF grid"),
])
def test_bad_crf_selections_are_refused_before_anything_is_written(tmp_path, module, message):
    with pytest.raises(ValueError, match=message):
        run(from_module(module), tmp_path)  # the first two when the file is loaded, the last when it is planned
    assert not (tmp_path / "runs").exists()


def test_each_deeplab_model_gets_its_own_crf_settings_and_the_paper_grid_holds_the_authors():
    """The paper cross-validated w1, θα, θβ per model: every '_crf' variant of deeplab_crf has its own
    selection run; the paper preset's grid spans DeepLab v1's ranges (w1 from 5, θα 10-100 px, θβ 5-10)
    and holds the authors' released per-model settings among its points."""
    from ablations import deeplab_crf, load
    spec = load("deeplab_crf")
    crf_variants = [v for v in spec.variants if v["id"].endswith("_crf")]
    assert crf_variants and all(v.get("tune_crf") and "crf_from" not in v for v in crf_variants)
    paper = crf_grid(settings_of("deeplab_crf", "paper").tuning["crf"])
    for point in deeplab_crf.AUTHORS_CRF:
        assert point in paper
    # the coarse points: the ends (and middle) of the paper's ranges, w1 5-10, θα 40-100 (the authors' script;
    # the paper 50-100), θβ 3-10; then the authors' five released settings
    assert paper[:18] == [{"theta_alpha": a, "theta_beta": b, "w1": w} for a in (40, 70, 100) for b in (3, 6, 10)
                          for w in (5, 10)]
    assert paper[18:] == deeplab_crf.AUTHORS_CRF  # no point twice
    cpu = crf_grid(settings_of("deeplab_crf", "quick").tuning["crf"])
    assert cpu == [{"theta_alpha": a, "theta_beta": b, "w1": w} for a in (10, 26) for b in (3, 10) for w in (5, 10)]
    selection = {p.variant for p in selection_of("deeplab_crf", "smoke")}
    assert {s.split("@")[0] for s in selection} == {v["id"] for v in crf_variants}


def test_the_fine_search_climbs_from_the_coarse_best_and_widens_beyond_the_range():
    """The coarse-to-fine rule on a hand-made score that peaks at w1 4, θα 60, θβ 11 (w1 and θβ beyond the
    range, θα inside): the first round is the coarse best's six neighbours one fine step away, and the
    search ends at the peak, a local optimum, saying where it lies."""
    grid = {"w1": [5, 10], "theta_alpha": [40, 100], "theta_beta": [3, 10], "fine": {"w1": 1, "theta_alpha": 10,
            "theta_beta": 1}, "fine_points": 100, "range": {"w1": [5, 10], "theta_alpha": [40, 100], "theta_beta": [3, 10]}}

    def score(p):
        return -abs(p["w1"] - 4) - abs(p["theta_alpha"] - 60) / 10 - abs(p["theta_beta"] - 11)

    scored = [(p, score(p)) for p in crf_grid(grid)]
    first = next_crf_points(grid, scored)  # the coarse best: w1 5, θα 40, θβ 10 (score −4)
    assert first == [{"w1": 5, "theta_alpha": a, "theta_beta": b} for a, b in ((30, 10), (50, 10), (40, 9), (40, 11))] + \
        [{"w1": w, "theta_alpha": 40, "theta_beta": 10} for w in (4, 6)]
    rounds = 0
    while (more := next_crf_points(grid, scored)):
        scored += [(p, score(p)) for p in more]
        rounds += 1
    # by hand, ties to the earlier point: (5, 50, 10) → (5, 60, 10) → (5, 60, 11) → (4, 60, 11), whose
    # neighbours, scored in a fifth round, are all worse
    assert rounds == 5 and len({json.dumps(p, sort_keys=True) for p, _ in scored}) == len(scored)
    assert crf_optimum(grid, scored) == {"settings": {"w1": 4, "theta_alpha": 60, "theta_beta": 11},
                                         "places": {"theta_alpha": "inside", "theta_beta": "beyond it", "w1": "beyond it"},
                                         "ended": "local optimum"}
    # a budget: the search stops once that many points beyond the coarse grid are scored
    scored = [(p, score(p)) for p in crf_grid(grid)]
    scored += [(p, score(p)) for p in next_crf_points({**grid, "fine_points": 3}, scored)]
    assert next_crf_points({**grid, "fine_points": 3}, scored) == []
    assert crf_optimum({**grid, "fine_points": 3}, scored)["ended"] == "budget spent"
    # the best after that round, (5, 50, 10) (three points tie at −3: the earliest), has w1 on the range's edge
    assert crf_optimum(grid, scored)["settings"] == {"w1": 5, "theta_alpha": 50, "theta_beta": 10}
    assert crf_optimum(grid, scored)["places"]["w1"] == "on its edge"

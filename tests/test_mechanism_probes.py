"""The mechanism probes (probes/mechanisms.py): hand-computed measurements, and each probe on a case
where its mechanism is present and one where it is absent (the generator's knobs on and off where
the measurement needs no training)."""
import json
import math
import types

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from data.scene_knobs import SceneKnobs
from data.synthetic import make_hard_scene, make_scene
from engine.metrics import object_accuracies
from probes.mechanisms import (CASCADE_SPLIT, CEILING, CRF_HEADROOM, FLIP_IOU, FLOPS_RATIO, HARD_ERROR, OVERFIT_GROWTH,
                               REACH_SHARE, SCALE_SPREAD, boundary_interior_below_ceiling,
                               capacity_below_ceiling, cascade_split, crf_below_ceiling, crf_room_of, decided_error,
                               flip_adds_information, flops_ratio, global_context, hard_pixels, hard_pixels_present,
                               mirror_iou, object_widths, aux_eases_optimisation, overfitting, overfitting_present,
                               projection_keeps_context, reach_needed, reach_share_present, scale, scale_present,
                               readouts_of, subregion_context, subregion_context_present, train_heldout_gap)


def test_train_heldout_gap_by_hand():
    labels = torch.tensor([[0, 0, 1, 1]])
    # train: all right (mIoU 100); held out: one pixel of class 1 called 0: IoU 2/3 and 1/2
    gap = train_heldout_gap(labels, labels, torch.tensor([[0, 0, 0, 1]]), labels, 2)
    assert gap == pytest.approx(100 - 100 * (2 / 3 + 1 / 2) / 2)


def test_overfitting_probe():
    ks = [3, 5, 7, 9]
    assert overfitting_present(ks, [0, 1, 2, 3]).figure == pytest.approx(3.0)  # slope 0.5 over 6
    assert overfitting_present(ks, [0, 1, 2, 3]).passed and OVERFIT_GROWTH == 2.0
    assert not overfitting_present(ks, [0, 0.5, 1, 1.5]).passed  # grows 1.5: inside seed noise
    # present: a gap growing with k in every seed; absent: the gap shrinking as issue 37 measured
    assert overfitting_present(ks, [[2, 4, 7, 9], [1, 4, 6, 10], [3, 3, 8, 9]]).passed
    assert not overfitting_present(ks, [[30, 28, 27, 28], [25, 24, 24, 22]]).passed


def test_object_accuracies_by_hand():
    labels = np.zeros((1, 6, 6), np.uint8)
    labels[0, 0:2, 0:2] = 1  # 4 px
    labels[0, 2:6, 2:6] = 1  # 16 px, apart from the first (touching only at a corner: separate objects)
    labels[0, 0, 5] = 255
    pred = labels.copy()
    pred[0, 2:4, 2:6] = 0  # half of the large object missed
    sizes, accuracies = object_accuracies(pred, labels)
    assert sorted(zip(sizes.tolist(), accuracies.tolist())) == [(2.0, 100.0), (4.0, 50.0)]


def eroded_predictions(labels, width=2):
    """A single-scale model's typical loss: a fixed band of `width` px at every object's edge called
    background, whatever the object's size (so small objects lose a larger share)."""
    pred = np.zeros_like(labels)
    for n, lab in enumerate(labels):
        for cls in np.unique(lab[lab > 0]):
            pred[n][binary_erosion(lab == cls, iterations=width)] = cls
    return pred


def scenes(n, **kw):
    return np.stack([make_scene(0, "train", i, 128, **kw)[1] for i in range(n)])


def test_scale_probe_present_with_log_radius_absent_with_todays_sizes():
    wide = scenes(120, max_objects=2, radius=(0.03, 0.30), knobs=SceneKnobs(log_radius=True))
    today = scenes(120, max_objects=2, radius=(0.22, 0.40))
    present = scale_present(*object_accuracies(eroded_predictions(wide), wide))
    absent = scale_present(*object_accuracies(eroded_predictions(today), today))
    assert present.passed and present.figure >= SCALE_SPREAD, present.detail
    assert not absent.passed, absent.detail  # today's objects span under 3× (cut by the edges: 2.8×)
    # sizes over 16×, but the same accuracy at every size: no mechanism for multi-scale testing
    rng = np.random.default_rng(0)
    sizes = np.exp(rng.uniform(np.log(4), np.log(64), 300))
    assert not scale_present(sizes, 90 + rng.normal(0, 3, 300)).passed
    assert scale_present(sizes, 60 + 8 * np.log2(sizes / 4) + rng.normal(0, 3, 300)).passed


def test_subregion_context_present_with_a_grid_absent_with_todays_band(tmp_path):
    data = {"name": "synthetic", "image_size": 64, "n_train": 20, "context": True, "cache_dir": str(tmp_path)}
    grid_data = {**data, "context_grid": 2, "contexts": 4, "radius": [0.05, 0.14], "max_objects": 4}
    (today_global, today_pyramid, today_chance), (grid_global, grid_pyramid, grid_chance) = (
        readouts_of(json.dumps(cfg, sort_keys=True)) for cfg in (data, grid_data))
    today, grid = subregion_context_present(today_global, today_pyramid), subregion_context_present(grid_global, grid_pyramid)
    assert not today.passed and grid.passed, (today.detail, grid.detail)
    # today's single band is read from the global pooling alone (the read-out works), the grid's is not
    assert (today_chance, grid_chance) == (50, 25)
    assert today.measurements["global_accuracy"] > 80 > 60 > grid.measurements["global_accuracy"]


def test_decided_error_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.85, 0.15], [0.6, 0.4], [0.05, 0.95], [0.9, 0.1]]).T.reshape(1, 2, 1, 5)
    labels = torch.tensor([[[0, 1, 1, 1, 255]]])
    # labelled 4; decided (top > 0.8): pixels 0, 1, 3; wrong among them: pixel 1
    assert decided_error(probs, labels, 0.8) == (75.0, pytest.approx(100 / 3))
    decided, error = decided_error(probs, labels, 0.99)
    assert decided == 0.0 and math.isnan(error) and not hard_pixels_present(error).passed


def local_stage(labels, ringed_share):
    """The best a stage that cannot see the ring can do in the hard mode: background sure, each object
    plain with probability 1 − ringed_share (classes: 0, circle, square, circle-ringed, square-ringed)."""
    labels = torch.as_tensor(labels).long()
    shape = torch.where(labels > 2, labels - 2, labels)
    probs = torch.zeros(len(labels), 5, *labels.shape[1:])
    probs[:, 0][shape == 0] = 1.0
    for s in (1, 2):
        probs[:, s][shape == s] = 1 - ringed_share
        probs[:, s + 2][shape == s] = ringed_share
    return probs


@pytest.mark.parametrize("share, present", [(0.15, True), (0.5, False)])
def test_hard_pixels_probe_follows_the_share_of_ringed_objects(share, present):
    labels = np.stack([make_hard_scene(0, "train", i, 64, knobs=SceneKnobs(ringed_share=share))[1]
                       for i in range(100)])
    result = hard_pixels_present(decided_error(local_stage(labels, share), labels)[1])
    assert result.passed == present and result.threshold == HARD_ERROR, result.detail


def test_crf_probe():
    grid = {"w": [1, 3, 5], "theta": [10, 30, 50], "gamma": [3]}
    points = [{"w": w, "theta": t, "gamma": 3} for w in grid["w"] for t in grid["theta"]]
    peak = lambda centre, top: [top - abs(p["w"] - centre[0]) - abs(p["theta"] - centre[1]) / 10 for p in points]
    inside = crf_below_ceiling(grid, points, peak((3, 30), 80.0))
    assert inside.passed and inside.figure == pytest.approx(20.0)  # gamma (one value) need not be bracketed
    corner = crf_below_ceiling(grid, points, peak((5, 50), 80.0))
    assert not corner.passed and "w, theta" in corner.detail
    ceiling = crf_below_ceiling(grid, points, peak((3, 30), 97.0))
    assert not ceiling.passed and ceiling.figure == pytest.approx(3.0) and CRF_HEADROOM == 5.0


# ---- the probes as the ablation files call them: probe(ProbeInputs, **args) over rows and saved analyses

def probe_inputs(tmp_path, variants, data=None, model=None, analyses=None, seeds=2, name="t"):
    """ProbeInputs over finished rows of `variants` (seeds each), with "run" analyses saved by hand:
    analyses {name: {variant: [{key: array} per seed] or one dict for every seed}}."""
    import json

    import pandas as pd

    from engine.analysis import analysis_file, save_analysis
    from probes.mechanisms import ProbeInputs
    rows = pd.DataFrame([{"variant": v, "seed": s, "status": "ok", "run_id": f"{v}-{s}", "eval_id": "e", "preset": "quick",
                          "data_config": json.dumps((data or {}).get(v, {"name": "synthetic"})),
                          "model_config": json.dumps((model or {}).get(v, {}))}
                         for v in variants for s in range(seeds)])
    for analysis, by_variant in (analyses or {}).items():
        for variant, per_seed in by_variant.items():
            for s in range(seeds):
                save_analysis(analysis_file(str(tmp_path), f"{variant}-{s}", "e", analysis),
                              per_seed[s] if isinstance(per_seed, list) else per_seed)
    return ProbeInputs(types.SimpleNamespace(name=name, presets={}), rows, str(tmp_path))


def heldout(**means):
    return {k: np.float64(v) for k, v in means.items()}


def test_overfitting_reads_each_runs_train_and_heldout_miou(tmp_path):
    ks = {"conv_k3": 3, "conv_k5": 5, "conv_k7": 7, "conv_k9": 9}
    growing = {v: [heldout(train_miou=90 + k, heldout_miou=88 - k / 2 + s) for s in range(2)] for v, k in ks.items()}
    result = overfitting(probe_inputs(tmp_path / "grow", ks, analyses={"heldout": growing}), ks)
    assert result.passed and result.figure == pytest.approx(1.5 * 6)  # gap 2 + 1.5k − 0.5 per seed
    shrinking = {v: heldout(train_miou=95 - k, heldout_miou=80) for v, k in ks.items()}
    assert not overfitting(probe_inputs(tmp_path / "shrink", ks, analyses={"heldout": shrinking}), ks).passed
    # a run whose analysis is not saved: not measured yet
    partial = {v: a for v, a in growing.items() if v != "conv_k9"}
    assert overfitting(probe_inputs(tmp_path / "partial", ks, analyses={"heldout": partial}), ks) is None


def test_ceilings_of_capacity_and_of_boundary_and_interior(tmp_path):
    room = heldout(train_miou=90.0, heldout_boundary_acc=80.0, heldout_internal_acc=94.0)
    full = heldout(train_miou=97.0, heldout_boundary_acc=80.0, heldout_internal_acc=98.5)
    for analysis, present in ((room, True), (full, False)):
        inputs = probe_inputs(tmp_path / str(present), ["base"], analyses={"heldout": {"base": analysis}})
        capacity = capacity_below_ceiling(inputs, "base")
        both = boundary_interior_below_ceiling(inputs, "base")
        assert capacity.passed == both.passed == present and capacity.threshold == 100 - CEILING == 5
    assert both.figure == pytest.approx(1.5) and "interior 98.5 %" in both.detail
    assert capacity_below_ceiling(probe_inputs(tmp_path / "none", ["base"]), "base") is None


def test_scale_needs_random_resize_and_accuracy_varying_with_object_size(tmp_path):
    rng = np.random.default_rng(0)
    sizes = np.exp(rng.uniform(np.log(4), np.log(64), 150))
    varying = {"object_size": sizes, "object_acc": 60 + 8 * np.log2(sizes / 4) + rng.normal(0, 3, 150)}
    flat = {"object_size": sizes, "object_acc": 90 + rng.normal(0, 3, 150)}
    resized = {"ss": {"name": "synthetic", "resize": [0.5, 2.0]}}
    assert scale(probe_inputs(tmp_path / "a", ["ss"], resized, analyses={"heldout": {"ss": varying}}), ["ss"]).passed
    assert not scale(probe_inputs(tmp_path / "b", ["ss"], resized, analyses={"heldout": {"ss": flat}}), ["ss"]).passed
    assert scale(probe_inputs(tmp_path / "c", ["ss"], resized), ["ss"]) is None  # objects not measured yet
    # trained without random resize: absent, whatever the objects show
    unresized = scale(probe_inputs(tmp_path / "d", ["ss"], analyses={"heldout": {"ss": varying}}), ["ss"])
    assert not unresized.passed and "without random resize" in unresized.detail


def test_object_widths_and_the_reach_share_by_hand():
    labels = np.zeros((1, 10, 10), np.uint8)
    labels[0, 0:2, 0:6] = 1  # 12 px, 6 wide
    labels[0, 5:8, 5:8] = 2  # 9 px, 3 wide
    widths, pixels = object_widths(labels)
    assert sorted(zip(widths.tolist(), pixels.tolist())) == [(3, 9), (6, 12)]
    assert reach_share_present(widths, pixels, 5).figure == pytest.approx(100 * 12 / 21)
    assert not reach_share_present(widths, pixels, 6).passed and REACH_SHARE == 5.0


def test_reach_needed_measures_the_base_networks_field_against_held_out_objects(tmp_path):
    base = {"arch": "single_head", "head": "conv1x1",
            "backbone": {"name": "small", "widths": [8, 8, 8], "strides": [2, 2, 2], "convs": [1, 2, 2]}}
    data = {"name": "synthetic", "image_size": 128, "n_train": 10}
    large = reach_needed(probe_inputs(tmp_path, ["base"], {"base": data}, {"base": base}, seeds=1), "base")
    small = reach_needed(probe_inputs(tmp_path, ["base"], {"base": {**data, "radius": [0.05, 0.1]}}, {"base": base},
                                      seeds=1), "base")
    assert large.passed and not small.passed and small.figure == 0.0, (large.detail, small.detail)
    assert large.measurements["field"] == small.measurements["field"] < large.measurements["median_width"]


def test_global_and_subregion_context_from_the_rows_data_config(tmp_path):
    band = {"t": {"name": "synthetic", "context": True, "image_size": 64, "n_train": 10}}
    grid = {"t": {**band["t"], "context_grid": 2, "contexts": 4, "radius": [0.05, 0.14], "max_objects": 4}}
    one, four = probe_inputs(tmp_path, ["t"], band, seeds=1), probe_inputs(tmp_path, ["t"], grid, seeds=1)
    # today's band is read from the global pooling alone; the grid's 4 kinds are not (chance 25 %)
    assert global_context(one).passed and not global_context(four).passed
    assert not subregion_context(one).passed and subregion_context(four).passed
    assert global_context(probe_inputs(tmp_path, ["t"], {"t": {"name": "synthetic"}}, seeds=1)) is None  # no context
    # a variant not run yet: nothing measured
    assert reach_needed(one, "other") is None and flip_adds_information(one, "other") is None
    assert scale(one, ["other"]) is None and flops_ratio(one, "t", "other") is None


def test_context_beyond_a_local_heads_reach_on_the_band_and_on_the_grid(tmp_path):
    """psp_pool's local baseline reaches 46 px up: on the one-band scenes every object lies farther below
    its band, on issue 37's 2×2 grid only some; a head with a pyramid sees the whole image: none beyond."""
    from ablations import psp_common
    from probes.mechanisms import context_beyond_reach
    quick = psp_common.ONE_BAND_PRESETS["quick"]
    local = {"arch": "pspnet", "bins": [], **{k: v for k, v in quick["model"].items() if k != "backbone"},
             "backbone": {k: v for k, v in quick["model"]["backbone"].items() if k != "weights"}}
    band = {"name": "synthetic", **quick["data"]}
    grid = {**band, **psp_common.CONTEXT_GRID}
    models = {"local": local, "pyramid": {**local, "bins": [1, 2, 3, 6]}}
    one = probe_inputs(tmp_path / "a", ["local", "pyramid"], {"local": band, "pyramid": band}, models, seeds=1)
    four = probe_inputs(tmp_path / "b", ["local"], {"local": grid}, models, seeds=1)
    assert context_beyond_reach(one, "local").figure == 100.0
    assert context_beyond_reach(one, "pyramid").figure == 0.0 and not context_beyond_reach(one, "pyramid").passed
    on_grid = context_beyond_reach(four, "local")
    assert on_grid.passed and 5 <= on_grid.figure < 100  # some bands within reach, some not
    assert context_beyond_reach(one, "other") is None


def test_mirror_iou_by_hand_and_the_flip_probe_on_the_knob(tmp_path):
    labels = np.zeros((1, 8, 8), np.uint8)
    labels[0, 1:4, 1:4] = 1  # a square: its own mirror image
    labels[0, 5:7, 1:5] = 2
    labels[0, 5, 4] = 0  # an L of 7 px whose mirror shares 6 of them
    labels[0, 0:2, 6:8] = 3  # cut by the frame: left out
    assert sorted(mirror_iou(labels).tolist()) == [pytest.approx(6 / 8), 1.0]
    data = {"name": "synthetic", "image_size": 128, "n_train": 10}
    today = flip_adds_information(probe_inputs(tmp_path, ["da"], {"da": data}, seeds=1), "da")
    knob = flip_adds_information(probe_inputs(tmp_path, ["da"], {"da": {**data, "asymmetric": True, "classes": 8}},
                                              seeds=1), "da")
    assert not today.passed and knob.passed and FLIP_IOU == 0.9, (today.detail, knob.detail)


def stage_probe_file(decided_right, decided_wrong, unsure):
    """A stage_probe analysis: pixel counts at ρ = 0.8 and 0.985 (the same at both), stage 1's hits."""
    count = np.zeros((2, 2, 3))
    correct = np.zeros((2, 2, 3))
    count[:, 0, :], count[:, 1, :] = decided_right + decided_wrong, unsure
    correct[:, 0, :], correct[:, 1, :] = decided_right, unsure / 2
    return {"rhos": np.array([0.8, 0.985]), "count": count, "correct": correct}


def test_hard_pixels_and_the_cascade_split_from_the_stage_probe_analysis(tmp_path):
    hard = probe_inputs(tmp_path / "a", ["r1"], analyses={"heldout_stage_probe": {"r1": stage_probe_file(970, 30, 1000)}})
    easy = probe_inputs(tmp_path / "b", ["r1"], analyses={"heldout_stage_probe": {"r1": stage_probe_file(999, 1, 20000)}})
    assert hard_pixels(hard, "r1").figure == pytest.approx(3.0) and hard_pixels(hard, "r1").passed
    assert not hard_pixels(easy, "r1").passed  # 0.1 % wrong
    assert cascade_split(hard, "r1", 0.985).figure == pytest.approx(50.0) and cascade_split(hard, "r1", 0.8).passed
    assert not cascade_split(easy, "r1", 0.985).passed and CASCADE_SPLIT == 10.0  # 1000 of 21000 pixels: 4.8 %
    assert hard_pixels(probe_inputs(tmp_path / "c", ["r1"]), "r1") is None


def test_the_auxiliary_loss_speeds_the_main_loss_paired_by_seed(tmp_path):
    from probes.mechanisms import early_main_loss
    iterations = np.arange(0, 400, 10)  # first half: iterations 0-200, 21 points
    curve = {"iteration": iterations, "loss": np.full(40, 9.0), "main_loss": np.r_[np.full(21, 1.0), np.full(19, 0.0)]}
    assert early_main_loss(curve) == 1.0  # the main loss, not the total, over the first half only
    rng = np.random.default_rng(0)

    def curves(level, spread):  # per seed: a main loss falling from `level`, with seed noise
        return [{"iteration": iterations, "main_loss": level + spread * rng.normal() - iterations / 400} for _ in range(3)]
    eased = {"curve": {"no_aux": curves(1.0, 0.01), "a0.4": curves(0.9, 0.01)}}
    alike = {"curve": {"no_aux": curves(1.0, 0.05), "a0.4": curves(1.0, 0.05)}}
    present = aux_eases_optimisation(probe_inputs(tmp_path / "a", ["no_aux", "a0.4"], analyses=eased, seeds=3),
                                     "no_aux", "a0.4")
    assert present.passed and present.measurements["mean_difference"] == pytest.approx(0.1, abs=0.03)
    assert not aux_eases_optimisation(probe_inputs(tmp_path / "b", ["no_aux", "a0.4"], analyses=alike, seeds=3),
                                      "no_aux", "a0.4").passed
    assert aux_eases_optimisation(probe_inputs(tmp_path / "c", ["no_aux", "a0.4"]), "no_aux", "a0.4") is None
    one_seed = {"curve": {"no_aux": curves(1.0, 0.01)[:1], "a0.4": curves(0.9, 0.01)[:1]}}
    assert aux_eases_optimisation(probe_inputs(tmp_path / "d", ["no_aux", "a0.4"], analyses=one_seed, seeds=1),
                                  "no_aux", "a0.4") is None  # no paired sd from one seed


def test_fc6_flops_ratio_at_the_rows_model_configs(tmp_path):
    def deeplab(kernel, dilation, filters):
        return {"arch": "deeplab_v1", "fc6_kernel": kernel, "fc6_dilation": dilation, "fc_channels": filters,
                "backbone": {"name": "vgg", "widths": [8, 16, 32, 32], "convs": [1, 1, 1, 1], "batch_norm": True}}
    models = {"k7d4": deeplab(7, 1, 256), "largefov": deeplab(3, 3, 64), "k4d4": deeplab(4, 1, 256),
              "k4d8": deeplab(4, 2, 256)}
    inputs = probe_inputs(tmp_path, list(models), model=models, seeds=1)
    ratio = flops_ratio(inputs, "k7d4", "largefov")
    assert ratio.passed and ratio.figure == pytest.approx(49 * 256 / (9 * 64))  # same 32 channels in
    same = flops_ratio(inputs, "k4d8", "k4d4")  # a wider dilation costs nothing
    assert not same.passed and same.figure == 1.0 and FLOPS_RATIO == 2.0


def test_the_crf_probe_over_every_point_each_variants_search_scored():
    import json

    import pandas as pd
    points = [{"w1": w, "theta": t} for w in (5, 7, 10) for t in (10, 18, 26)]

    def tuning(variant, centre, top):
        return [{"variant": f"{variant}@crf{i}", "status": "ok", "eval_config": json.dumps({"crf": p}),
                 "mIoU": top - abs(p["w1"] - centre[0]) - abs(p["theta"] - centre[1]) / 8} for i, p in enumerate(points)]
    inside = pd.DataFrame(tuning("a_crf", (7, 18), 80) + tuning("b_crf", (7, 18), 85))
    result = crf_room_of(inside, ["a_crf", "b_crf"])
    assert result.passed and result.figure == pytest.approx(15.0)
    corner = crf_room_of(pd.DataFrame(tuning("a_crf", (7, 18), 80) + tuning("b_crf", (10, 26), 85)), ["a_crf", "b_crf"])
    assert not corner.passed and corner.detail.startswith("fails for b_crf;")
    assert crf_room_of(inside, ["c_crf"]) is None  # no search scored yet


def test_the_projection_keeps_the_context_read_from_its_saved_analysis(tmp_path):
    kept = {"readout_acc": np.float64(85.0), "chance": np.float64(50.0)}
    lost = {"readout_acc": np.float64(52.0), "chance": np.float64(50.0)}
    for analysis, present in ((kept, True), (lost, False)):
        inputs = probe_inputs(tmp_path / str(present), ["dr"], analyses={"projection_context": {"dr": analysis}})
        assert projection_keeps_context(inputs, ["dr"]).passed == present
    assert projection_keeps_context(probe_inputs(tmp_path / "none", ["dr"]), ["dr"]) is None

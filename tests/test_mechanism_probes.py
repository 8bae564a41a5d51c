"""The mechanism probes (probes/mechanisms.py): hand-computed measurements, and each probe on a case
where its mechanism is present and one where it is absent (the generator's knobs on and off where
the measurement needs no training)."""
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import binary_erosion

from data.scene_knobs import SceneKnobs
from data.synthetic import make_hard_scene, make_scene
from probes.mechanisms import (CRF_HEADROOM, HARD_ERROR, OVERFIT_GROWTH, SCALE_SPREAD, accuracy_by_scale,
                               crf_below_ceiling, decided_error, hard_pixels_present,
                               overfitting_present, scale_present, subregion_context_probe, train_heldout_gap)


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


def test_accuracy_by_scale_by_hand():
    labels = np.zeros((1, 6, 6), np.uint8)
    labels[0, 0:2, 0:2] = 1  # 4 px
    labels[0, 2:6, 2:6] = 1  # 16 px, apart from the first (touching only at a corner: separate objects)
    labels[0, 0, 5] = 255
    pred = labels.copy()
    pred[0, 2:4, 2:6] = 0  # half of the large object missed
    sizes, accuracies = accuracy_by_scale(pred, labels)
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
    present = scale_present(*accuracy_by_scale(eroded_predictions(wide), wide))
    absent = scale_present(*accuracy_by_scale(eroded_predictions(today), today))
    assert present.passed and present.figure >= SCALE_SPREAD, present.detail
    assert not absent.passed, absent.detail  # today's objects span under 3× (cut by the edges: 2.8×)
    # sizes over 16×, but the same accuracy at every size: no mechanism for multi-scale testing
    rng = np.random.default_rng(0)
    sizes = np.exp(rng.uniform(np.log(4), np.log(64), 300))
    assert not scale_present(sizes, 90 + rng.normal(0, 3, 300)).passed
    assert scale_present(sizes, 60 + 8 * np.log2(sizes / 4) + rng.normal(0, 3, 300)).passed


def test_subregion_context_probe_present_with_a_grid_absent_with_todays_band(tmp_path):
    data = {"name": "synthetic", "image_size": 64, "n_train": 220, "context": True, "cache_dir": str(tmp_path)}
    today = subregion_context_probe(data)
    grid = subregion_context_probe({**data, "context_grid": 2, "contexts": 4, "radius": [0.05, 0.14], "max_objects": 4})
    assert not today.passed and grid.passed, (today.detail, grid.detail)
    # today's single band is read from the global pooling alone (the read-out works), the grid's is not
    assert today.measurements["global_accuracy"] > 80 > 60 > grid.measurements["global_accuracy"]  # chance: 50, 25
    with pytest.raises(ValueError, match="held-out"):
        subregion_context_probe(data, heldout=50)


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

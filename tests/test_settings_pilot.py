"""The settings pilot's pure parts (probes/settings_pilot.py): the held-out index arithmetic, the mirror
IoU, which objects count as whole, and the rule's order."""
import numpy as np
import pytest
import torch

from data import build_dataset
from probes import settings_pilot
from probes.settings_pilot import (UNFINISHED, extended, first_passing, heldout_ranges, mean_mirror_iou, mirror_iou,
                                   whole_objects)


def test_heldout_ranges_follow_the_training_set():
    assert heldout_ranges(2000) == (range(0, 200), range(2000, 2200))
    assert heldout_ranges(100) == (range(0, 100), range(100, 300))  # fewer trained on than asked: all of them


def test_extended_split_continues_the_training_stream(tmp_path):
    cfg = {"name": "synthetic", "image_size": 32, "n_train": 4, "n_val": 2, "cache_dir": str(tmp_path)}
    trained_on, heldout, whole = extended(cfg, count=3)
    train = build_dataset(cfg, "train")
    assert (len(trained_on), len(heldout), len(whole)) == (3, 3, 7)  # min(count, n_train) trained on
    for i in range(3):  # the images trained on are the training set's, unaugmented
        assert torch.equal(trained_on[i][0], train[i][0]) and torch.equal(trained_on[i][1], train[i][1])
    assert not any(torch.equal(heldout[j][0], train[i][0]) for j in range(3) for i in range(4))


def test_mirror_iou_of_hand_built_masks():
    rectangle = np.zeros((9, 9), bool)
    rectangle[2:5, 1:8] = True
    assert mirror_iou(rectangle) == 1.0
    ell = np.zeros((5, 5), bool)  # an L of 5 pixels: its mirror overlaps it in 3 at best, IoU 3 / (5 + 5 - 3)
    ell[1:4, 1] = True
    ell[3, 1:4] = True
    assert mirror_iou(ell) == pytest.approx(3 / 7)


def test_whole_objects_leave_out_cut_and_touching_ones():
    labels = np.zeros((20, 20), np.uint8)
    labels[3:9, 3:9] = 1  # whole
    labels[0:5, 14:18] = 2  # cut by the border
    labels[12:16, 3:7] = 1  # touches an object of another class ...
    labels[12:16, 7:10] = 3  # ... and that one touches it
    labels[17:19, 15:17] = 1  # 4 pixels: too small
    masks = whole_objects(labels)
    assert len(masks) == 1 and masks[0].sum() == 36
    assert mean_mirror_iou(labels[None]) == (1.0, 1)


def test_the_rule_takes_the_first_passing_candidate_in_order(capsys):
    seen = []

    def measure(passing):
        def probe(name, options, cfg):
            seen.append(name)
            if name == "(a)" and passing == "refuse (a)":
                raise ValueError("radius too large")
            return None if passing == "stop" else name in passing
        return probe

    assert first_passing("overfitting", {"n_train": 2000}, measure(("(a)", "(b)"))) == "(a)"
    assert seen == [settings_pilot.TODAY, "(a)"]  # (b) never measured once (a) passes
    assert first_passing("overfitting", {}, measure((settings_pilot.TODAY,))) == settings_pilot.TODAY
    assert first_passing("overfitting", {}, measure(())) is None  # none passes: not testable
    seen.clear()
    assert first_passing("overfitting", {}, measure("refuse (a)")) is None
    assert seen == [settings_pilot.TODAY, "(a)", "(b)"] and "refused by the generator" in capsys.readouterr().out
    assert first_passing("overfitting", {}, measure("stop")) == UNFINISHED  # never skipped to a later one

"""Held-out training images (the embedded dataset's 'heldout' split) and the "heldout" run analysis that
the mechanism probes read: which images, what each number is on hand-built models, that a run writes it
(and a rerun fills it in where a finished run lacks it), and the grid-aware context-band distances."""
import dataclasses
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from data import build_dataset
from data.scene_knobs import SceneKnobs
from data.synthetic import HELDOUT_IMAGES, cue_rows
from engine.analysis import (ANALYSES, EVERY_PLAN, analysis_path, data_analysis_file, load_analysis, missing_analyses,
                             save_analysis)
from engine.measurements import band_distances, context_bands_analysis, heldout_analysis, heldout_eval
from engine.metrics import boundary_mask, object_accuracies
from helpers import plans_of, run, tiny
from report.psp import context_section
from segmodels.base import SegModel

TINY = {"name": "synthetic", "image_size": 32, "n_train": 6, "n_val": 4}
EVAL = {"batch_size": 64, "boundary_band": 1.75}
CONTRACT = ("train_miou", "heldout_miou", "heldout_boundary_acc", "heldout_internal_acc", "object_size",
            "object_acc")


def test_heldout_images_continue_the_training_stream_and_are_never_trained_on(tmp_path):
    train, heldout = build_dataset(TINY, "train"), build_dataset(TINY, "heldout")
    longer = build_dataset({**TINY, "n_train": TINY["n_train"] + HELDOUT_IMAGES}, "train")
    assert len(heldout) == HELDOUT_IMAGES
    # indices n_train … n_train + 199 of the training stream, the same knobs
    assert torch.equal(longer.images[TINY["n_train"]:], heldout.images)
    assert torch.equal(longer.labels[TINY["n_train"]:], heldout.labels)
    assert torch.equal(longer.images[:TINY["n_train"]], train.images)
    # none is a training image, and none repeats
    flat = torch.cat([train.images, heldout.images]).flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)
    # never augmented: an item asked with an augmentation seed is the plain one
    for i in range(5):
        assert all(torch.equal(a, b) for a, b in zip(heldout[(i, i)], heldout[i]))
    # the data option holdout (lr selection trains on the first n_train − H) leaves them as they are
    holdout = build_dataset({**TINY, "holdout": 2}, "heldout")
    assert holdout.path == heldout.path and torch.equal(holdout.images, heldout.images)
    # a file of its own beside the training split's
    assert heldout.path != train.path and "heldout" in heldout.path


def test_selection_with_holdout_heldout_trains_on_the_whole_training_set_and_scores_on_the_heldout_images(tmp_path):
    """A training set too small to carve a selection split from (issue 37's GCN data: 200 images):
    the selection trains on all of it and is scored on the held-out training images, never on 'val'."""
    from engine.presets import setting_error
    train, scored = build_dataset({**TINY, "holdout": "heldout"}, "train"), build_dataset({**TINY, "holdout": "heldout"}, "val")
    assert torch.equal(train.images, build_dataset(TINY, "train").images)
    assert torch.equal(scored.images, build_dataset(TINY, "heldout").images)
    assert setting_error("tuning.holdout", "heldout") is None and setting_error("tuning.holdout", 300) is None
    assert "one of \"heldout\"" in setting_error("tuning.holdout", "elsewhere")
    with pytest.raises(ValueError, match="or \"heldout\""):
        build_dataset({**TINY, "holdout": "val"}, "train")


def test_heldout_images_are_a_pure_function_of_the_seed(tmp_path):
    first = build_dataset({**TINY, "cache_dir": str(tmp_path / "a")}, "heldout")
    again = build_dataset({**TINY, "cache_dir": str(tmp_path / "b")}, "heldout")  # generated afresh
    other = build_dataset({**TINY, "seed": 1, "cache_dir": str(tmp_path / "a")}, "heldout")
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    first.check()


def test_heldout_split_is_the_embedded_datasets_only():
    with pytest.raises(ValueError, match="embedded dataset's only"):
        build_dataset({"name": "voc", "root": "/nowhere"}, "heldout")
    with pytest.raises(ValueError, match="split must be"):
        build_dataset(TINY, "test")


def test_object_accuracies_by_hand():
    labels = np.zeros((1, 6, 6), np.int64)
    labels[0, 0:2, 0:2] = 1  # an object of class 1, 4 px
    labels[0, 3:6, 3:6] = 1  # another, 9 px
    labels[0, 2, 2] = 1      # touches the first only at a corner: a third (4-connectivity), 1 px
    labels[0, 0, 4:6] = 2    # class 2, 2 px
    labels[0, 5, 0] = 255    # ignored: no object
    pred = np.zeros_like(labels)
    pred[0, 0, 0:2] = 1      # half the first
    pred[0, 3:6, 3:6] = 1    # all the second
    pred[0, 0, 4] = 1        # class 2 predicted as 1: 0 of 2
    sizes, accuracies = object_accuracies(pred, labels)
    assert sizes.tolist() == [2.0, 1.0, 3.0, math.sqrt(2)]  # by class, then scipy's order of regions
    assert accuracies.tolist() == [50.0, 0.0, 100.0, 0.0]


class LookUp(SegModel):
    """A hand-built model: the label map it was given for each image (by its pixels), or `constant`
    everywhere (one-hot logits)."""

    def __init__(self, datasets, num_classes, constant=None):
        super().__init__()
        self.num_classes, self.constant = num_classes, constant
        self.labels = {ds[i][0].numpy().tobytes(): ds[i][1] for ds in datasets for i in range(len(ds))}
        self.seen = []

    def predict(self, images, **options):
        self.seen.append(options)
        labels = torch.stack([torch.full(image.shape[1:], self.constant) if self.constant is not None
                              else self.labels[image.numpy().tobytes()] for image in images])
        return torch.nn.functional.one_hot(labels.clamp(max=self.num_classes - 1), self.num_classes) \
            .permute(0, 3, 1, 2).float(), {}


def test_heldout_analysis_of_a_model_that_predicts_the_labels():
    train, heldout = build_dataset(TINY, "train"), build_dataset(TINY, "heldout")
    model = LookUp([train, heldout], train.num_classes)
    out = heldout_analysis(model, None, EVAL, "cpu", data_cfg=TINY)
    assert set(CONTRACT) <= set(out)
    assert out["train_miou"] == out["heldout_miou"] == 100.0
    assert out["heldout_boundary_acc"] == out["heldout_internal_acc"] == 100.0
    assert out["object_acc"].shape == out["object_size"].shape and (out["object_acc"] == 100).all()
    assert int(out["train_images"]) == TINY["n_train"] and int(out["heldout_images"]) == HELDOUT_IMAGES
    # every object pixel of the held-out images lies in exactly one object
    assert (out["object_size"] ** 2).sum() == pytest.approx(int((heldout.labels > 0).sum()))


def test_heldout_analysis_of_a_constant_model():
    """Background everywhere: mIoU = 100 × (background share) / (1 + object classes present), since every
    object class's IoU is 0; the band's and the interior's accuracy are their background shares."""
    cfg = {**TINY, "n_train": 250}
    train, heldout = build_dataset(cfg, "train"), build_dataset(cfg, "heldout")
    out = heldout_analysis(LookUp([], train.num_classes, constant=0), None, EVAL, "cpu", data_cfg=cfg)

    def expected_miou(labels):
        return 100 * float((labels == 0).float().mean()) / len(torch.unique(labels))
    assert out["train_miou"] == pytest.approx(expected_miou(train.labels[:200]))  # the first 200 it trained on
    assert out["heldout_miou"] == pytest.approx(expected_miou(heldout.labels))
    band = boundary_mask(heldout.labels, EVAL["boundary_band"])
    assert out["heldout_boundary_acc"] == pytest.approx(100 * float((heldout.labels[band] == 0).float().mean()))
    assert out["heldout_internal_acc"] == pytest.approx(100 * float((heldout.labels[~band] == 0).float().mean()))
    assert len(out["object_acc"]) and (out["object_acc"] == 0).all()
    # with holdout H, the images it trained on are the first n_train − H
    out = heldout_analysis(LookUp([], train.num_classes, constant=0), None, EVAL, "cpu",
                           data_cfg={**cfg, "holdout": 100})
    assert int(out["train_images"]) == 150
    assert out["train_miou"] == pytest.approx(expected_miou(train.labels[:150]))


def test_heldout_predicts_at_a_single_scale_with_the_plans_other_options():
    train = build_dataset(TINY, "train")
    model = LookUp([], train.num_classes, constant=0)
    model.EVAL_OPTIONS = {"scales": (1.0,), "flip": False}
    heldout_analysis(model, None, {**EVAL, "scales": [0.5, 1.0, 2.0], "flip": True, "crf": {"w1": 4}}, "cpu",
                     data_cfg=TINY)
    assert model.seen and all(options == {"scales": [1.0], "flip": True} for options in model.seen)
    # evaluations of one model that differ only in scales or the CRF share one computation (same_for)
    assert heldout_eval({**EVAL, "scales": [0.5, 1.0]}) == heldout_eval({**EVAL, "scales": [1.0], "crf": {}})
    assert heldout_eval({**EVAL, "flip": True}) != heldout_eval(EVAL)


def test_every_plan_on_the_embedded_data_gets_heldout_and_one_on_real_data_none(tmp_path):
    (plan,) = plans_of(tiny(variants=[{"id": "base", "model": {"head": "conv1x1"}}]))
    assert "heldout" in EVERY_PLAN and ANALYSES["heldout"].kind == "run"
    assert "heldout" in missing_analyses(str(tmp_path), plan)
    real = dataclasses.replace(plan, data={"name": "voc", "root": "/nowhere"})
    assert "heldout" not in missing_analyses(str(tmp_path), real)


def test_a_smoke_run_writes_heldout_and_a_rerun_fills_in_a_missing_one(tmp_path):
    spec = tiny()
    out = tmp_path / "results"
    assert run(spec, out) == 2
    paths = [analysis_path(str(out), plan, "heldout") for plan in plans_of(spec)]
    for path in paths:
        saved = load_analysis(path)
        assert set(CONTRACT) <= set(saved)
        assert all(saved[k].ndim == 0 for k in CONTRACT[:4]) and saved["object_size"].ndim == 1
        assert saved["object_size"].shape == saved["object_acc"].shape and len(saved["object_acc"])
        assert 0 <= saved["heldout_miou"] <= 100 and ((0 <= saved["object_acc"]) & (saved["object_acc"] <= 100)).all()
    kept = load_analysis(paths[0])
    # a finished run that lacks it (as one that ran before the analysis existed) gets it on a rerun, the same
    os.remove(paths[0])
    assert run(spec, out) == 0
    again = load_analysis(paths[0])
    assert all(np.array_equal(kept[k], again[k]) for k in kept)
    # a finished run whose model.pt is gone keeps its row and goes without
    os.remove(paths[1])
    os.remove(out / "runs" / plans_of(spec)[1].run_id / "model.pt")
    assert run(spec, out) == 0 and not os.path.exists(paths[1])


# --- the context band's distance, grid-aware ------------------------------------------------------

def test_band_distances_at_grid_1_are_rows_below_the_one_band():
    size = 32
    labels = torch.zeros(2, size, size, dtype=torch.int64)
    labels[0, 20, 5] = 1
    labels[1, 31, 0:2] = 3
    band_end = cue_rows(size) - 1  # rows 0 … 1 hold the band at 32 px
    assert band_end == 1
    assert sorted(band_distances(labels).tolist()) == [20 - 1, 31 - 1, 31 - 1]
    assert band_distances(labels, 1).tolist() == band_distances(labels).tolist()


def test_band_distances_of_a_2x2_grid_by_hand():
    """32 px in 2 × 2 sub-regions of 16 px: each band is cue_rows(16) = 1 row, at rows 0 and 16."""
    size = 32
    assert cue_rows(size / 2) == 1
    labels = torch.zeros(1, size, size, dtype=torch.int64)
    labels[0, 5, 3] = 1    # top-left sub-region: 5 rows below row 0
    labels[0, 15, 30] = 2  # top-right, its last row: 15
    labels[0, 20, 20] = 1  # bottom-right: 20 − 16 = 4
    labels[0, 16, 2] = 2   # bottom-left, on its band's row: 0
    assert sorted(band_distances(labels, 2).tolist()) == [0, 4, 5, 15]
    assert sorted(band_distances(labels, 1).tolist()) == [5 - 1, 15 - 1, 16 - 1, 20 - 1]  # one band: rows 0-1


def test_context_bands_analysis_at_grid_1_is_todays_and_at_grid_2_each_band_its_own():
    data = {"name": "synthetic", "image_size": 64, "n_train": 4, "n_val": 30, "context": True}
    val = build_dataset(data, "val")
    out = context_bands_analysis(val, scenes=30)
    # today's numbers: rows below the one band's last row, the scene whose object lies highest
    rows = (val.labels > 0).nonzero()[:, 1]
    today = np.unique((rows - (cue_rows(64) - 1)).numpy(), return_counts=True)
    assert np.array_equal(out["distances"], today[0]) and np.array_equal(out["counts"], today[1])
    highest = int(np.argmin([(lab > 0).nonzero()[:, 0].min().item() for lab in val.labels]))
    assert np.array_equal(out["label"], val.labels[highest].numpy()) and int(out["band_rows"]) == cue_rows(64)
    assert int(out["grid"]) == 1
    grid = build_dataset({**data, "context_grid": 2, "contexts": 4, "radius": [0.05, 0.12]}, "val")
    assert grid.knobs == SceneKnobs(context_grid=2, contexts=4)
    out = context_bands_analysis(grid, scenes=30)
    # every object lies below its own sub-region's band (never above it, never on it), and the gap that
    # the generator keeps (OBJECT_TOP of a sub-region below its top) holds per sub-region
    assert int(out["grid"]) == 2 and int(out["band_rows"]) == cue_rows(32)
    # (at 64 px a sub-region is 32 px: its band rows y0 … y0 + 1, its objects from y0 + 14 on, 7/16 of 32)
    assert out["distances"].min() >= 14 - (cue_rows(32) - 1) and out["distances"].max() <= 32 - cue_rows(32)
    assert out["counts"].sum() == int((grid.labels > 0).sum())



def test_the_reports_context_section_names_each_sub_regions_band(tmp_path):
    """With a 2 × 2 grid the PSPNet section speaks of each sub-region's band and measures to it."""
    data = {"name": "synthetic", "image_size": 64, "n_train": 4, "n_val": 30, "context": True, "context_grid": 2,
            "contexts": 4, "radius": [0.05, 0.12]}
    bands = context_bands_analysis(build_dataset(data, "val"), scenes=30)
    save_analysis(data_analysis_file(str(tmp_path), data, "context_bands"), bands)
    rows = pd.DataFrame([{"variant": "baseline", "status": "ok", "context_acc": 60.0, "data_config": json.dumps(data),
                          "model_config": json.dumps({"arch": "pspnet"})}])
    text = context_section(SimpleNamespace(name="psp"), rows, str(tmp_path), str(tmp_path), "fig", ["baseline"])
    assert f"every object lies ≥ {int(bands['distances'].min())} rows below its own" in text
    assert "each sub-region's top (2 rows; a 2×2 grid)" in text


def test_the_projection_context_analysis_reads_the_kind_of_scene_out_of_the_pyramid_levels():
    """A pyramid level that carries the mean colour of the image's top rows (the band: the kind of scene)
    lets a linear read-out tell the kinds apart; a level of zeros leaves it at the majority kind, near chance."""
    from torch import nn

    from engine.measurements import projection_context_analysis

    class Pyramid(nn.Module):  # what the analysis reads of a PSPNet: backbone(x) -> {stage: map}, ppm.levels
        def __init__(self, level):
            super().__init__()
            self.backbone = nn.Identity()
            self.ppm = nn.Module()
            self.ppm.levels = nn.ModuleList([level])

        def forward(self, x):
            return x

    class Stage(nn.Identity):
        def forward(self, x):
            return {"last": x}

    class Zeros(nn.Module):
        def forward(self, x):
            return torch.zeros_like(x[:, :1, :1, :1])

    class TopRows(nn.Module):
        def forward(self, x):
            return x[:, :, :2].mean((2, 3), keepdim=True)

    data = {**TINY, "image_size": 64, "context": True}
    results = {}
    for name, level in (("band colour", TopRows()), ("zeros", Zeros())):
        model = Pyramid(level)
        model.backbone = Stage()
        results[name] = projection_context_analysis(model, None, EVAL, "cpu", data_cfg=data)
    assert results["zeros"]["chance"] == 50.0 and results["zeros"]["pixels"] > 1000
    assert results["band colour"]["readout_acc"] > 95 > results["zeros"]["readout_acc"]
    with pytest.raises(ValueError, match="pyramid levels"):
        projection_context_analysis(nn.Linear(1, 1), None, EVAL, "cpu", data_cfg=data)

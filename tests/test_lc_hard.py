"""The layer cascade's difficulty mode of the generated scenes, the probe of the mechanism and the
lc ablations' plans (a model per compared ρ; DSN and LC runs shared between the two files)."""
import hashlib
import json
import math

import numpy as np
import pytest
import torch

from engine.analysis import ANALYSES
from engine.measurements import stage_probe
from helpers import plans_of
from data import build_dataset
from data.synthetic import SyntheticScenes, build_split, make_hard_scene, make_scene
from segmodels import build_model

# computed with main's data/synthetic.py before the difficulty mode existed (commit 8d5864d)
DEFAULT_SCENES_SHA1 = "f7676b0d9fe0372ab15aee72c7dad8d0d2988414"


def test_default_scenes_are_unchanged():
    h = hashlib.sha1()
    for split in ("train", "val"):
        for i in range(6):
            image, label = make_scene(0, split, i, image_size=64)
            h.update(image.tobytes())
            h.update(label.tobytes())
    images, labels = build_split("val", 4, 3, 128, 2, (0.22, 0.40))
    h.update(images.numpy().tobytes())
    h.update(labels.numpy().tobytes())
    for i in range(3):
        image, label = make_scene(1, "train", i, image_size=128, context=True, radius=(0.16, 0.28))
        h.update(image.tobytes())
        h.update(label.tobytes())
    assert h.hexdigest() == DEFAULT_SCENES_SHA1


def test_default_cache_key_is_unchanged_and_hard_has_its_own(tmp_path):
    plain = SyntheticScenes("val", image_size=64, n_val=4, cache_dir=str(tmp_path))
    off = SyntheticScenes("val", image_size=64, n_val=4, hard=False, cache_dir=str(tmp_path))
    hard = SyntheticScenes("val", image_size=64, n_val=4, hard=True, cache_dir=str(tmp_path))
    assert plain.path == off.path and "hard" not in plain.params
    key = hashlib.sha1(json.dumps(
        {"split": "val", "n": 4, "seed": 0, "image_size": 64, "max_objects": 2, "radius": [0.22, 0.4],
         "version": 1}, sort_keys=True).encode()).hexdigest()[:12]
    assert plain.path.endswith(f"-{key}.pt")
    assert hard.path != plain.path and hard.params["hard"] is True
    assert not torch.equal(hard.labels, plain.labels)


def test_hard_mode_scenes():
    data = build_dataset({"name": "synthetic", "image_size": 128, "n_train": 40, "n_val": 4, "hard": True}, "train")
    data.check()
    assert data.class_names == ("background", "circle", "square", "circle-ringed", "square-ringed")
    assert data.num_classes == 5 and int(data.labels.max()) < 5
    shares = torch.bincount(data.labels.flatten().long(), minlength=5).double() / data.labels.numel()
    assert shares[0] > 0.85  # a wide, easy background: objects are a small minority
    assert (shares[1:] > 0).all()  # every class occurs
    # deterministic; the same (seed, split, index) in the default mode is another scene
    a, b = make_hard_scene(0, "train", 3), make_hard_scene(0, "train", 3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[1], make_scene(0, "train", 3)[1])


def test_ringed_and_plain_objects_differ_only_by_the_ring():
    # a ringed object's ring (drawn in the background's label) lies beyond its edge
    for i in range(30):
        image, label = make_hard_scene(0, "train", i)
        for cls in (3, 4):
            ys, xs = np.nonzero(label == cls)
            if len(ys):
                cy, cx = ys.mean(), xs.mean()
                yy, xx = np.mgrid[0:128, 0:128]
                far = (np.hypot(yy - cy, xx - cx) > np.hypot(ys - cy, xs - cx).max() + 15) & (label == 0)
                steps = np.abs(np.diff(image.astype(int), axis=1)).max(-1)  # [128, 127]
                assert steps[far[:, 1:]].max() > 60  # an edge (the ring) far outside the object
                return
    pytest.fail("no ringed object in 30 scenes")


@pytest.mark.parametrize("bad", [{"hard": "yes"}, {"hard": 1}, {"hard": True, "context": True}, {"difficulty": 1}])
def test_hard_mode_bad_options(bad):
    with pytest.raises(ValueError):
        build_dataset({"name": "synthetic", "image_size": 64, "n_train": 4, "n_val": 4, **bad}, "train")


class _FixedCascade(torch.nn.Module):
    """A stand-in with the cascade's interface: fixed logits per stage, stride 1."""
    stride = 1

    def __init__(self, logits):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.logits = logits

    def cascade(self, x, rho):
        return [(None, lg.expand(len(x), -1, -1, -1)) for lg in self.logits], []


def test_stage_probe_against_a_hand_computed_case():
    big, small = 5.0, 0.1  # softmax of (5, 0): 0.993 (confident at 0.9); of (0.1, 0): 0.52 (unsure)
    # five pixels, labels 0 0 1 1 ignore
    s1 = torch.tensor([[big, big, small, 0.0, 0.0], [0.0, 0.0, 0.0, small, 0.0]])  # right, wrong(conf), wrong, right
    s1[0, 1], s1[1, 1] = 0.0, big  # pixel 1: confident and wrong (label 0, predicts 1)
    s2 = torch.tensor([[1.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0, 0.0]])  # all right
    s3 = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 1.0, 0.0]])  # pixel 0 wrong
    model = _FixedCascade([s.view(1, 2, 1, 5) for s in (s1, s2, s3)])
    labels = torch.tensor([[[0, 0, 1, 1, 255]]])
    probe = stage_probe(model, torch.zeros(1, 3, 1, 5), labels, rhos=(0.9,))
    assert set(probe) == {"rhos", "share_unsure", "correct", "count", "acc"}
    assert probe["acc"].shape == (1, 2, 3) and probe["count"].shape == (1, 2, 3)
    assert probe["count"][0].tolist() == [[2, 2, 2], [2, 2, 2]]
    assert probe["acc"][0].tolist() == [[50.0, 100.0, 50.0], [50.0, 100.0, 100.0]]
    assert probe["share_unsure"][0] == 50.0
    # nobody confident at rho close to 1: no confident pixels, nan accuracy there
    probe = stage_probe(model, torch.zeros(1, 3, 1, 5), labels, rhos=(0.999,))
    assert probe["count"][0, 0].tolist() == [0, 0, 0] and math.isnan(probe["acc"][0, 0, 0])
    assert probe["share_unsure"][0] == 100.0


def test_stage_probe_analysis_on_a_tiny_cascade():
    (plan,) = [p for p in plans_of("lc_threshold") if p.variant == "r1"]  # the DSN model
    val = build_dataset(plan.data, "val")
    model = build_model(plan.model, val.num_classes)
    out = ANALYSES["stage_probe"].compute(model, val, plan.eval, "cpu", None)
    assert out["acc"].shape == (2, 2, 3) and list(out["rhos"]) == [0.8, 0.985]
    s = model.stride
    valid = int((val.labels[:, s // 2::s, s // 2::s] != 255).sum())
    assert (out["count"].sum(1) == valid).all()  # confident + unsure = every valid pixel, per stage
    assert ((out["share_unsure"] >= 0) & (out["share_unsure"] <= 100)).all()


@pytest.mark.parametrize("preset", ["smoke", "quick"])
def test_lc_plans_a_model_per_compared_rho_and_share_runs(preset):
    t_plans, s_plans = plans_of("lc_threshold", preset), plans_of("lc_schemes", preset)
    run = lambda plans, variant: {p.run_id for p in plans if p.variant == variant}
    assert run(t_plans, "r1") == run(s_plans, "dsn") == run(s_plans, "dsn_cascade")
    assert run(t_plans, "r0985") == run(s_plans, "lc")
    assert run(t_plans, "r08").isdisjoint(run(t_plans, "r0985"))  # ρ = 0.8 has its own model
    assert run(t_plans, "r08").isdisjoint(run(t_plans, "r1"))
    for other in ("r0995", "r097", "r095", "r093", "r09"):
        assert run(t_plans, other) == run(t_plans, "r0985")
    r08 = next(p for p in t_plans if p.variant == "r08")
    assert r08.model["train_rho"] == 0.8 and r08.eval["rho"] == 0.8
    assert all(p.data.get("hard") is True for p in t_plans + s_plans)
    # (the claims name variants that exist: checked when the files load, test_ablation_files.py)

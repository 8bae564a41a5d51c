"""PSPNet: pyramid pooling variants, DR arithmetic, the auxiliary head, the trunk against
torchvision's fcn_resnet50, the scene-context dataset, the context metric, and smoke runs of
psp_pool and psp_aux."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

import run_all
from ablations import load, psp_aux, psp_pool
from engine.measurements import band_distances, upward_reach
from engine.metrics import group_accuracy
from ablations.psp_common import ONE_BAND_PRESETS, PRESETS
from helpers import plans_of, settings_of
from data.synthetic import CONTEXTS, CUE_COLOURS, OBJECT_TOP, SHAPES, SyntheticScenes, cue_rows, make_scene
from segmodels import build_model, without_weights
from segmodels.backbones import ResNetBackbone, resnet_weights
from segmodels.base import count_params, count_weights
from segmodels.pspnet import PSPNet, PyramidPooling

@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a loaded 2-core machine two threads wait on each other (4× slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SMALL = {"name": "small", "widths": [8, 8, 16, 16], "strides": [2, 2, 2, 1], "convs": [1, 1, 1, 1]}
count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731


def psp(num_classes=5, **opts):
    return build_model({"arch": "pspnet", "backbone": SMALL, "head_width": 16, "aux_width": 8, **opts},
                       num_classes)


@pytest.mark.parametrize("variant", psp_pool.VARIANTS, ids=lambda v: v["id"])
def test_every_table1_variant_gives_logits_at_input_size(variant):
    model = psp(**{**psp_pool.MODEL, **variant["model"]}).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 72))
    assert out.shape == (2, 5, 64, 72)
    cfg = variant["model"]
    if cfg["bins"]:
        n, cin = len(cfg["bins"]), 16
        assert model.ppm.out_channels == cin + n * (cin // n if cfg["dr"] else cin)
        with torch.no_grad():
            pooled = model.ppm(torch.randn(2, cin, 8, 9))
        assert pooled.shape == (2, model.ppm.out_channels, 8, 9)
    else:
        assert model.ppm is None


def test_dr_channel_arithmetic_at_paper_width():
    dr = PyramidPooling(2048, (1, 2, 3, 6), "avg", dr=True)
    assert [level[1].out_channels for level in dr.levels] == [512] * 4
    assert dr.out_channels == 2048 + 4 * 512
    assert PyramidPooling(2048, (1, 2, 3, 6), "max", dr=False).out_channels == 2048 + 4 * 2048
    assert PyramidPooling(2048, (1,), "avg", dr=False).out_channels == 2 * 2048
    with torch.no_grad():
        assert dr.eval()(torch.randn(1, 2048, 7, 7)).shape == (1, 4096, 7, 7)
    # the fact the report checks
    assert all(f["computed"] == f["expected"] for f in psp_pool.exact_facts())


def test_control_is_parameter_matched_to_the_full_module():
    full = psp(bins=[1, 2, 3, 6], pool="avg", dr=True)
    control = psp(bins=[1, 2, 3, 6], pool="none", dr=True)
    assert count(full) == count(control)


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="pool"):
        PyramidPooling(64, (1,), "median")
    with pytest.raises(ValueError, match="divide"):
        PyramidPooling(66, (1, 2, 3, 6), "avg", dr=True)
    with pytest.raises(ValueError, match="bins"):
        PyramidPooling(64, (0, 2), "avg")
    with pytest.raises(ValueError, match="aux_weight"):
        psp(aux_weight=-1)


def test_aux_head_runs_only_in_the_training_loss():
    torch.manual_seed(0)
    model = psp(bins=[1, 2, 3, 6], aux_weight=0.4)
    calls = []
    model.aux.register_forward_hook(lambda *args: calls.append(1))
    images, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 5, (2, 32, 32))
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, 32, 32) and not calls
    model.train()
    model(images)
    assert not calls  # forward never uses it, in train mode either
    model.eval()  # no dropout: the parts can be recomputed exactly
    loss, parts = model(images, labels)  # training: the loss through forward
    assert calls and set(parts) == {"main_loss", "aux_loss"}
    # the parts are tensors (engine's typed records): pytest.approx compares floats
    main_part, aux_part = parts["main_loss"].item(), parts["aux_loss"].item()
    assert loss.item() == pytest.approx(main_part + 0.4 * aux_part, rel=1e-5)
    main = torch.nn.functional.cross_entropy(model(images), labels)
    assert main_part == pytest.approx(main.item(), rel=1e-5)

    no_aux = psp(bins=[], aux_weight=0.0)
    assert no_aux.aux is None
    loss, parts = no_aux(images, labels)
    assert set(parts) == {"main_loss"}


def test_dilated_trunk_and_baseline_match_torchvision_fcn_resnet50():
    fcn = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True)
    baseline = PSPNet(ResNetBackbone(50, output_stride=8), 21, bins=())
    assert count(baseline.backbone) == count(fcn.backbone)
    # the baseline's heads are torchvision's FCNHead (2048 → 512 → 21, aux 1024 → 256 → 21)
    assert count(baseline.head) == count(fcn.classifier)
    assert count(baseline.aux) == count(fcn.aux_classifier)
    assert count(baseline) == count(fcn)
    assert baseline.backbone.strides["c5"] == 8 and baseline.backbone.channels["c4"] == 1024


def test_paper_preset_is_the_papers_setting():
    paper = settings_of(psp_pool, "paper")
    assert paper.data == {"name": "ade20k", "crop_size": 473, "scale": [0.5, 2.0], "rotate": 10.0,
                          "blur": True, "flip": True}
    assert paper.base["model"]["backbone"] == {"name": "resnet", "depth": 50, "output_stride": 8,
                                               "weights": "imagenet", "deep_stem": True}  # the released stem
    t = paper.base["train"]
    assert (t["lr"], t["poly_power"], t["momentum"], t["weight_decay"], t["batch_size"], t["iterations"],
            t["head_lr_mult"]) == (0.01, 0.9, 0.9, 1e-4, 16, 150000, 10.0)


def test_table2_trains_a_deeper_trunk_than_table1():
    """psp_aux has its own deeper trunk (deep supervision needs depth to help); psp_pool keeps the
    shallow one, so the two tables share no run; the auxiliary head stays on the stage before last."""
    from ablations.psp_common import SMALL_OS8
    for preset in ("smoke", "quick", "full"):
        pool = {p.variant: p for p in plans_of(psp_pool, preset)}
        aux = {p.variant: p for p in plans_of(psp_aux, preset)}
        assert pool["baseline"].model["backbone"]["convs"] == SMALL_OS8["convs"]
        deep = aux["a0.4"].model["backbone"]
        assert sum(deep["convs"]) > sum(SMALL_OS8["convs"]) and len(deep["convs"]) == len(SMALL_OS8["convs"])
        assert not {p.run_id for p in pool.values()} & {p.run_id for p in aux.values()}
    model = build_model(aux["a0.4"].model, 9)
    assert model.aux is not None and model.aux[0].in_channels == model.backbone.channels["s3"]
    assert all("curve" in v.get("analyses", []) for v in psp_aux.VARIANTS)


def test_context_failure_rate_from_a_rows_table():
    from report.psp import context_failures
    rows = pd.DataFrame({
        "variant": ["b1", "b1", "b1", "base", "base", "base", "b6", "b6"],
        "seed": [0, 1, 2, 0, 1, 2, 0, 1],
        "context_acc": [99.0, 75.0, 52.0, 50.1, 49.0, 74.99, 100.0, float("nan")],
        "status": ["ok"] * 7 + ["ok"],
    })
    rows.loc[len(rows)] = {"variant": "b6", "seed": 2, "context_acc": 30.0, "status": "failed: non-finite loss"}
    assert context_failures(rows) == [("b1", 3, 2, pytest.approx(100 / 3)), ("base", 3, 0, 100.0),
                                      ("b6", 1, 1, 0.0)]
    assert context_failures(rows, threshold=50.0)[1] == ("base", 3, 2, pytest.approx(100 / 3))


def test_the_learned_context_rule_lies_halfway_from_chance_to_perfect_at_any_number_of_kinds():
    from report.psp import LEARNED_CONTEXT_ACC, learned_threshold
    assert learned_threshold({}) == LEARNED_CONTEXT_ACC == 75.0  # two kinds of scene: chance 50 %
    assert learned_threshold({"contexts": 4}) == 62.5  # chance 25 %


def test_training_curve_keeps_the_last_line_of_each_iteration(tmp_path):
    """A resumed run logs again the iterations after its checkpoint: one point per iteration."""
    from engine.measurements import read_curve
    lines = [{"iteration": i, "loss": 1.0 / i, "lr": 0.1, "main_loss": 0.5 / i, "aux_loss": 2.0 / i}
             for i in (10, 20, 30, 20, 30, 40)]
    lines[3]["main_loss"] = 7.0  # the resumed run's line wins
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    curve = read_curve(tmp_path / "log.jsonl")
    assert curve["iteration"].tolist() == [10, 20, 30, 40]
    assert curve["main_loss"].tolist() == [0.05, 7.0, 0.5 / 30, 0.5 / 40]
    assert set(curve) == {"iteration", "loss", "lr", "main_loss", "aux_loss"}


def test_loss_at_averages_the_window_before_each_point():
    from report.psp import loss_at
    it = np.arange(10, 110, 10)
    losses = np.stack([it / 100.0, it / 50.0])  # two seeds
    assert loss_at(it, losses, 1.0) == pytest.approx(np.mean([1.0, 2.0]))
    assert loss_at(it, losses, 0.5) == pytest.approx(np.mean([0.5, 1.0]))
    assert loss_at(it, losses, 0.5, window=0.2) == pytest.approx(np.mean([0.4, 0.5, 0.8, 1.0]))


# --- the scene-context dataset -------------------------------------------------------------------

def test_plain_scenes_are_unchanged_by_the_context_option():
    image, label = make_scene(0, "train", 3, image_size=64)
    # digest of the same scene made by the code before the context mode existed
    assert hashlib.sha1(image.tobytes() + label.tobytes()).hexdigest() == "430d4a4800c4b9568c5de46f6414cec7ca47157d"


def test_context_scenes_are_deterministic_and_laid_out_as_designed():
    size, band = 128, cue_rows(128)
    for index in range(20):
        image, label = make_scene(0, "val", index, image_size=size, radius=(0.16, 0.28), context=True)
        again = make_scene(0, "val", index, image_size=size, radius=(0.16, 0.28), context=True)
        assert np.array_equal(image, again[0]) and np.array_equal(label, again[1])
        objects = label > 0
        assert objects.any() and not objects[: int(OBJECT_TOP * size)].any()
        # the band's colour tells the kind of scene, and every object's class carries that kind
        band_colour = image[:band].reshape(-1, 3).mean(0) / 255
        scene = int(np.argmin([np.abs(band_colour - np.array(c)).sum() for c in CUE_COLOURS]))
        assert set(((label[objects] - 1) // len(SHAPES)).tolist()) == {scene}
    ds = SyntheticScenes("val", image_size=size, n_val=40, context=True)
    assert ds.num_classes == 1 + len(SHAPES) * len(CONTEXTS)
    assert set(ds.class_groups) == {"context", "shape"}
    # both kinds of scene occur
    assert len({int(lab[lab > 0].max() - 1) // len(SHAPES) for lab in ds.labels if (lab > 0).any()}) == 2


def test_context_option_is_validated():
    with pytest.raises(ValueError, match="radius"):
        SyntheticScenes("val", image_size=64, n_val=2, context=True, radius=(0.2, 0.4))


def test_band_lies_outside_the_local_receptive_field():
    """On the one-band scenes at 128 px (psp_aux's quick data), no object pixel's receptive field (psp_pool's
    baseline or control head) holds a band pixel, while pyramid pooling reaches the whole image."""
    data = {k: v for k, v in ONE_BAND_PRESETS["quick"]["data"].items()}
    val = SyntheticScenes("val", **{**data, "n_val": 50})
    size = data["image_size"]
    models = {p.variant: p.model for p in plans_of(psp_pool, "quick")}
    nearest = band_distances(val.labels, val.knobs.context_grid).min()
    for local in ("baseline", "control"):
        reach = upward_reach(build_model(models[local], val.num_classes), size)
        assert 8 < reach < nearest, (local, reach, nearest)
    assert upward_reach(build_model(models["b1_ave"], val.num_classes), size) == float("inf")


def test_quick_grid_puts_some_bands_within_the_local_receptive_field():
    """Issue 37's 2×2 grid at the quick preset: a sub-region's band lies closer to its objects than the
    local heads' upward reach, so the baseline and control can see some objects' context (what the report's
    context section measures), unlike on the one-band scenes."""
    data = PRESETS["quick"]["data"]
    val = SyntheticScenes("val", **{**data, "n_val": 50})
    models = {p.variant: p.model for p in plans_of(psp_pool, "quick")}
    nearest = band_distances(val.labels, val.knobs.context_grid).min()
    for local in ("baseline", "control"):
        assert nearest < upward_reach(build_model(models[local], val.num_classes), data["image_size"]), local


def test_group_accuracy():
    # classes: 0 background, 1-2 group 0, 3-4 group 1
    groups = [None, 0, 0, 1, 1]
    cm = torch.zeros(5, 5, dtype=torch.int64)
    cm[1, 2] = 6   # right group, wrong class: counts as right
    cm[1, 3] = 2   # wrong group
    cm[3, 3] = 2   # right
    cm[4, 0] = 50  # predicted background: not counted
    cm[0, 1] = 9   # background predicted as an object: not counted
    assert group_accuracy(cm, groups) == pytest.approx(100 * 8 / 10)
    assert np.isnan(group_accuracy(torch.zeros(5, 5, dtype=torch.int64), groups))
    with pytest.raises(ValueError):
        group_accuracy(cm, groups[:4])


# --- smoke runs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["psp_pool", "psp_aux"])
def test_smoke_run(name, tmp_path):
    out, report_dir = tmp_path / "results", tmp_path / "report"
    assert run_all.main(["--ablation", name, "--preset", "smoke", "--out", str(out), "--report-dir",
                         str(report_dir), "--no-progress", "--jobs", "1"]) == 0
    rows = pd.read_csv(out / f"{name}.csv")
    spec = load(name)
    assert sorted(rows["variant"]) == sorted(v["id"] for v in spec.variants)
    assert (rows["status"] == "ok").all()
    assert {"context_acc", "shape_acc"} <= set(rows.columns)
    if name == "psp_pool":  # (psp_aux's deep trunk predicts no object pixel after 3 iterations: NaN)
        assert rows["context_acc"].notna().any() and rows["shape_acc"].notna().any()
    report = (report_dir / "REPORT.md").read_text()
    assert spec.title in report
    if name == "psp_pool":
        assert "Why a local receptive field cannot solve the context task" in report
        assert "How many seeds learned the context rule" in report
        assert (report_dir / "figures" / "psp_pool_context.png").exists()
    else:
        from engine.analysis import analysis_file, load_analysis
        iterations = int(rows["iterations"].iloc[0])
        for row in rows.itertuples():
            curve = load_analysis(analysis_file(out, row.run_id, row.eval_id, "curve"))
            assert curve["iteration"][-1] == iterations and np.isfinite(curve["main_loss"]).all()
            assert ("aux_loss" in curve) == (row.variant != "no_aux")
        assert "Training curves: does the auxiliary loss speed up the main loss?" in report
        assert "main loss at 25 %" in report
        assert (report_dir / "figures" / "psp_aux_curves.png").exists()


def test_without_dr_is_judged_under_both_readings():
    """'Without DR' as the raw pooled maps (no conv) and as each level projected to the full width (the
    authors' code always projects): both are variants, and "DR helps" is a claim against each."""
    small = {"name": "small", "widths": [8, 8, 16, 16], "strides": [2, 2, 2, 1], "convs": [1, 1, 1, 1]}
    raw = build_model({"arch": "pspnet", "backbone": small, "bins": [1, 2], "dr": False, "head_width": 8}, 3)
    projected = build_model({"arch": "pspnet", "backbone": small, "bins": [1, 2], "dr": False, "project": True,
                             "head_width": 8}, 3)
    reduced = build_model({"arch": "pspnet", "backbone": small, "bins": [1, 2], "dr": True, "head_width": 8}, 3)
    assert [type(m).__name__ for m in raw.ppm.levels[0]] == ["AdaptiveAvgPool2d"]
    # the 1×1 projection: a Conv2d that build_model sends to oneDNN (segmodels/base.py OneDNNConv1x1)
    assert [type(m).__name__ for m in projected.ppm.levels[0]] == ["AdaptiveAvgPool2d", "OneDNNConv1x1", "BatchNorm2d",
                                                                     "ReLU"]
    assert projected.ppm.levels[0][1].out_channels == 16 and reduced.ppm.levels[0][1].out_channels == 8
    assert projected.ppm.out_channels == raw.ppm.out_channels == 16 + 2 * 16
    with pytest.raises(ValueError, match="dr needs project"):
        build_model({"arch": "pspnet", "backbone": small, "bins": [1, 2], "dr": True, "project": False}, 3)
    spec = load("psp_pool")
    pairs = {(c.a, c.b) for c in spec.claims}
    assert {("b1236_ave_dr", "b1236_ave"), ("b1236_ave_dr", "b1236_ave_proj"), ("b1236_max_dr", "b1236_max"),
            ("b1236_max_dr", "b1236_max_proj")} <= pairs
    plans = {p.variant: p for p in plans_of("psp_pool", "quick")}
    assert plans["b1236_ave_proj"].model["project"] is True and "project" not in plans["b1236_ave"].model


# --- Table 3: depth and multi-scale testing ---------------------------------------------------------

def test_multi_scale_testing_averages_the_softmax_over_scales_and_mirror():
    """The authors' test code (semseg's net_process / scale_process): each pass's softmax, the mirrored
    pass's flipped back and averaged with the plain one's, each scale's probabilities resized to the
    input, then averaged over the scales."""
    torch.manual_seed(0)
    model = psp().eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        plain = model.logits(x)
        assert torch.equal(model.predict(x)[0], plain) and torch.equal(model.predict(x, scales=[1])[0], plain)
        mirrored = ((plain.softmax(1) + model.logits(x.flip(-1)).softmax(1).flip(-1)) / 2).log()
        assert torch.allclose(model.predict(x, flip=True)[0], mirrored, atol=1e-6)
        half = torch.nn.functional.interpolate(model.logits(torch.nn.functional.interpolate(
            x, scale_factor=0.5, mode="bilinear", align_corners=False)).softmax(1), size=(32, 32), mode="bilinear",
            align_corners=False)
        both = ((plain.softmax(1) + half) / 2).log()
        assert torch.allclose(model.predict(x, scales=[1.0, 0.5])[0], both, atol=1e-6)
    with pytest.raises(ValueError, match="scales must be positive"):
        model.predict(x, scales=[1.0, 0])
    with pytest.raises(ValueError, match="unknown evaluation options"):
        model.predict(x, scale=[1.0])


def test_depth_ladder_shares_psp_pools_full_module_run_and_pairs_ss_with_ms():
    from ablations import psp_depth
    plans = {(p.variant, p.seed): p for p in plans_of(psp_depth, "quick")}
    pool = {(p.variant, p.seed): p for p in plans_of(psp_pool, "quick")}
    assert plans[("r50_ss", 0)].run_id == pool[("b1236_ave_dr", 0)].run_id
    assert plans[("r50_ss", 0)].eval_id == pool[("b1236_ave_dr", 0)].eval_id
    for d in psp_depth.LADDER:
        ss, ms = plans[(f"r{d}_ss", 0)], plans[(f"r{d}_ms", 0)]
        assert ss.run_id == ms.run_id and ss.eval_id != ms.eval_id  # one trained model, evaluated twice
    convs = [plans[(f"r{d}_ss", 0)].model["backbone"]["convs"] for d in psp_depth.LADDER]
    assert [sum(c) for c in convs] == sorted(sum(c) for c in convs) and len({sum(c) for c in convs}) == 4


def test_resnet269_is_built_of_bottlenecks_and_has_no_torchvision_weights():
    with torch.device("meta"):
        net = ResNetBackbone(269, 8)
    assert [len(layer) for layer in (net.layer1, net.layer2, net.layer3, net.layer4)] == [3, 30, 48, 8]
    with pytest.raises(FileNotFoundError, match="torchvision has no ImageNet weights of resnet269.*--weights PATH"):
        ResNetBackbone(269, 8, weights="imagenet")
    from ablations import psp_depth
    facts = psp_depth.exact_facts()
    assert len(facts) == 7 and all(f["computed"] == f["expected"] for f in facts)
    assert [f["computed"] for f in facts if f["published"] == 269] == [269]


@pytest.mark.parametrize("preset", ["smoke", "quick"])
def test_chain_steps_are_the_other_tables_models_and_the_baseline_alone_drops_augmentation(preset):
    """Each step is another table's model; at smoke the very runs, at quick (issue 37: mirror-asymmetric
    shapes for "+ DA", every step on them) the same models on the chain's own data, so runs of its own."""
    from ablations import psp_chain, psp_depth
    chain = {(p.variant, p.seed): p for p in plans_of(psp_chain, preset)}
    pool = {(p.variant, p.seed): p for p in plans_of(psp_pool, preset)}
    depth = {(p.variant, p.seed): p for p in plans_of(psp_depth, preset)}
    own = {**pool[("baseline", 0)].data, **psp_chain.ASYMMETRIC} if preset == "quick" else pool[("baseline", 0)].data
    for mine, theirs in ((("da_al", 0), pool[("baseline", 0)]), (("da_al_psp", 0), pool[("b1236_ave_dr", 0)]),
                         (("deep", 0), depth[("r269_ss", 0)]), (("deep_ms", 0), depth[("r269_ms", 0)])):
        assert (chain[mine].model, chain[mine].eval, chain[mine].data) == (theirs.model, theirs.eval, own)
        assert (chain[mine].run_id == theirs.run_id) == (preset == "smoke")
    base, da = chain[("baseline", 0)], chain[("da", 0)]
    assert base.data == {**da.data, "flip": False} and "flip" not in da.data and da.data == own
    assert base.model == da.model and base.model["aux_weight"] == 0 and base.run_id != da.run_id
    paper = {p.variant: p for p in plans_of(psp_chain, "paper") if p.seed == 0}
    assert paper["baseline"].data["scale"] is None and paper["baseline"].data["flip"] is False
    assert paper["da"].data["scale"] == [0.5, 2.0] and paper["deep"].model["backbone"]["depth"] == 269


def test_every_pspnet_row_is_tested_mirrored_as_the_authors_test_codes():
    """Both released test codes average the mirrored pass at every scale, the single one too."""
    for name in ("psp_pool", "psp_aux", "psp_depth", "psp_chain"):
        for preset in ("smoke", "quick", "full", "paper"):
            assert all(p.eval["flip"] is True for p in plans_of(name, preset)), (name, preset)


def test_b1_is_projected_as_the_authors_module_with_its_weight_count():
    """semseg's PPM projects each of its N levels to 2048 / N channels: B1's one level to 2048 (1×1 conv,
    no bias, + BN's scale and shift), so the head's 3×3 conv reads 2048 + 2048 channels."""
    models = {p.variant: p.model for p in plans_of("psp_pool", "paper")}
    for variant in ("b1_ave", "b1_max"):
        with torch.device("meta"):
            model = build_model(without_weights(models[variant]), 150)
        assert count_params(model.ppm) == 2048 * 2048 + 2 * 2048
        assert model.head[0].in_channels == 4096


def test_the_paper_presets_resnet50_and_101_have_the_released_deep_stem(tmp_path):
    """hszhao/PSPNet's released prototxts: conv1_1 3×3/2 3 → 64, conv1_2 64 → 64, conv1_3 64 → 128 (no biases,
    BatchNorm each), pool1, then res2 from 128 channels; their trunks' conv weights, counted from the prototxts
    up to conv5_3: 23,578,304 (ResNet-50) and 42,518,208 (ResNet-101)."""
    from ablations import psp_depth
    with torch.device("meta"):
        net = ResNetBackbone(50, 8, deep_stem=True)
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.bias) for c in (net.conv1, net.conv2, net.conv3)] \
        == [(3, 64, (3, 3), (2, 2), None), (64, 64, (3, 3), (1, 1), None), (64, 128, (3, 3), (1, 1), None)]
    assert net.layer1[0].conv1.in_channels == net.layer1[0].downsample[0].in_channels == 128
    stem = 9 * (3 * 64 + 64 * 64 + 64 * 128)
    assert count_weights(net) == 23_578_304 == resnet_weights([3, 4, 6, 3]) - 7 * 7 * 3 * 64 + stem + 64 * 64 + 64 * 256
    with torch.device("meta"):
        assert count_weights(ResNetBackbone(101, 8, deep_stem=True)) == 42_518_208
    small = ResNetBackbone(50, 8, deep_stem=True).eval()
    assert small(torch.randn(1, 3, 33, 33))["c5"].shape == (1, 2048, 5, 5)  # output stride 8, as the 7×7 stem
    # its ImageNet weights are the authors': torchvision has none, the error says which file to give
    with pytest.raises(FileNotFoundError, match=r"deep 3×3 stem.*semseg.*resnet50_v2\.pth.*--weights PATH"):
        ResNetBackbone(50, 8, weights="imagenet", deep_stem=True)
    # a state dict in semseg's format (conv1-3, bn1-3, layer1-4, fc) loads by name
    state = {**small.state_dict(), "fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)}
    torch.save(state, tmp_path / "resnet50_v2.pth")
    loaded = ResNetBackbone(50, 8, weights=str(tmp_path / "resnet50_v2.pth"), deep_stem=True)
    assert torch.equal(loaded.conv3.weight, small.conv3.weight)
    stems = {p.variant: p.model["backbone"].get("deep_stem") for p in plans_of(psp_depth, "paper") if p.seed == 0}
    assert stems == {"r50_ss": True, "r101_ss": True, "r152_ss": False, "r269_ss": False,
                     "r50_ms": True, "r101_ms": True, "r152_ms": False, "r269_ms": False}
    assert all(p.model["backbone"]["deep_stem"] for p in plans_of(psp_pool, "paper"))
    assert not any(p.model["backbone"].get("deep_stem") for p in plans_of(psp_pool, "quick"))


def test_the_authors_sliding_window_protocol_against_a_hand_composition():
    """semseg's test at one scale: the long side to base_size·s, padded (centred, with 0) to the crop, crop ×
    crop windows every ⌈crop · 2/3⌉ px, each pixel's probabilities averaged over its windows. A stand-in
    network whose class-0 score is the mean of its window makes each window's share visible: a 4 × 10 image,
    crop 6, is padded to 6 × 10 and seen through the windows of columns 0-5 and 4-9 (stride 4)."""
    model = psp().eval()
    model.logits = lambda x: torch.cat([x.mean((1, 2, 3), keepdim=True).expand(-1, 1, *x.shape[-2:]),
                                        torch.zeros(x.shape[0], 1, *x.shape[-2:])], 1)
    image = torch.arange(40, dtype=torch.float32).reshape(1, 1, 4, 10).expand(1, 3, 4, 10)
    padded = torch.nn.functional.pad(image, (0, 0, 1, 1))  # 6 × 10: one row of zeros above and below
    a, b = padded[..., :6].mean(), padded[..., 4:].mean()  # the two windows' class-0 scores

    def p0(score):
        return torch.sigmoid(score)  # softmax([score, 0])[0]

    expected = torch.stack([p0(a)] * 4 + [(p0(a) + p0(b)) / 2] * 2 + [p0(b)] * 4).expand(4, 10)
    with torch.no_grad():
        out = model.predict(image, base_size=10, crop=6)[0].exp()
        assert torch.allclose(out[0, 0], expected, atol=1e-6)
        # the long side to base_size · s: at s 0.5, 5 × 2, one padded window, the same share everywhere
        half = model.predict(image, scales=[0.5], base_size=10, crop=6)[0].exp()
        small = torch.nn.functional.interpolate(image, size=(2, 5), mode="bilinear", align_corners=False)
        assert torch.allclose(half[0, 0], p0(small.sum() / (3 * 36)).expand(4, 10), atol=1e-6)
        # no crop: the whole image, as the CPU presets test
        assert torch.allclose(model.predict(image, base_size=10)[0].exp()[0, 0], p0(image.mean()).expand(4, 10))
    with pytest.raises(ValueError, match="crop must be a positive whole number"):
        model.predict(image, crop=0)
    plans = {p.variant: p for p in plans_of("psp_depth", "paper") if p.seed == 0}
    assert (plans["r50_ms"].eval["base_size"], plans["r50_ms"].eval["crop"]) == (512, 473)
    assert all("crop" not in p.eval for p in plans_of("psp_depth", "quick"))

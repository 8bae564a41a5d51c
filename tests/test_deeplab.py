"""DeepLab v1 (segmodels/deeplab.py) and its field-of-view ablation (ablations/deeplab_fov.py).

Paper-dimension facts are checked on models built on the meta device (shapes, no storage); the
forward passes use 64-px inputs; ImageNet weights are a VGG-16-shaped state dict this file saves."""
import json
import os

import pandas as pd
import pytest
import torch
import torch.nn as nn

import run_all
from ablations import deeplab_fov, load
from engine.presets import deep_merge
from engine.rows import read_rows
from engine.trainer import learning_rate
from engine.tuning import choose_crfs, crf_grid, crf_optimum, crf_scores
from engine.claims import Close, Outcome, fact_holds
from helpers import plans_of
from segmodels import build_model
from segmodels.backbones import imagenet_checkpoint
from segmodels.base import count_params
from segmodels.deeplab import (FOVConv, DeepLabV1, fov_receptive_field, same_size_padding,
                               vgg16_to_deeplab)

PAPER_PARAMS_M = {"k7d4": 134.3, "k4d4": 65.1, "k4d8": 65.1, "largefov": 20.5}
PAPER_RF = {"k7d4": 224, "k4d4": 128, "k4d8": 224, "largefov": 224}
TABLE2 = {"k7d4": (7, 4, 4096), "k4d4": (4, 4, 4096), "k4d8": (4, 8, 4096), "largefov": (3, 12, 1024)}


def deeplab(variant, backbone=None, **opts):
    k, d, c = TABLE2[variant]
    return DeepLabV1(backbone or {"name": "vgg"}, 21, fc6_kernel=k, fc6_dilation=d, fc_channels=c, **opts)


@pytest.mark.parametrize("variant", list(TABLE2))
def test_paper_params_and_receptive_field(variant):
    model = deeplab_fov.paper_model(variant)
    assert abs(count_params(model) - PAPER_PARAMS_M[variant] * 1e6) <= 0.05e6
    assert fov_receptive_field(model, count_pool5a=False) == PAPER_RF[variant]  # Table 2 counts fc6 alone
    assert fov_receptive_field(model) == PAPER_RF[variant] + (16 if variant == "largefov" else 0)  # + pool5a
    k, d, c = TABLE2[variant]
    assert (model.backbone.fc6.kernel_size, model.backbone.fc6.dilation) == (k, d)
    assert model.backbone.fc6.conv.out_channels == c and model.backbone.fc7.out_channels == c


def test_exact_facts_all_hold():
    facts = deeplab_fov.exact_facts()
    assert len(facts) == 2 * len(TABLE2) + 2  # and LargeFOV's field of view as released (pool5a)
    assert all(fact_holds(f) for f in facts), [f for f in facts if not fact_holds(f)]
    assert all(f["computed"] == f["expected"] for f in facts)  # the built models equal the hand formulas
    ratio = next(f for f in facts if "ratio" in f["fact"])["computed"]
    assert 6.5 <= ratio < 6.6  # "6.5× fewer parameters"


def test_expected_params_are_counted_from_the_papers_layer_shapes():
    """The facts' expected #params come from the layer shapes, not from the built model."""
    vgg16_convs = 14_714_688  # torchvision's vgg16.features: a well-known count
    assert deeplab_fov.paper_params(3, 1024) == vgg16_convs + (9 * 512 * 1024 + 1024) + (1024 ** 2 + 1024) + 1024 * 21 + 21
    assert deeplab_fov.paper_params(7, 4096) - deeplab_fov.paper_params(4, 4096) == (49 - 16) * 512 * 4096
    broken = [dict(f) for f in deeplab_fov.exact_facts()]
    broken[1]["computed"] += 1  # a model one parameter off its formula fails its fact
    assert not fact_holds(broken[1])


def test_cpu_presets_give_each_variant_the_papers_values_divided():
    """preset_overrides: fc6 dilation ÷4 and fc filters ÷16 exactly (4/4, 4/4, 8/4, 12/4; 4096/16,
    1024/16), the paper's values at the paper preset."""
    for v in deeplab_fov.VARIANTS:
        for preset in deeplab_fov.CPU_PRESETS:
            cpu = v["preset_overrides"][preset]["model"]
            assert cpu["fc6_dilation"] * deeplab_fov.DILATION_SCALE == v["model"]["fc6_dilation"]
            assert cpu["fc_channels"] * deeplab_fov.FILTER_SCALE == v["model"]["fc_channels"]
    expected = {"k7d4": (1, 256), "k4d4": (1, 256), "k4d8": (2, 256), "largefov": (3, 64)}
    for preset in ("smoke", "quick", "full", "paper"):
        for p in plans_of(deeplab_fov, preset):
            k, d, c = TABLE2[p.variant]
            want = expected[p.variant] if preset != "paper" else (d, c)
            assert (p.model["fc6_dilation"], p.model["fc_channels"]) == want
            assert p.model["fc6_kernel"] == k


def test_output_stride_8_at_paper_dims():
    model = deeplab("largefov").eval()
    assert model.backbone.output_stride == 8
    with torch.no_grad():
        x = torch.randn(1, 3, 64, 64)
        assert model.backbone(x).shape == (1, 1024, 8, 8)
        assert model(x).shape == (1, 21, 64, 64)
        assert model(torch.randn(1, 3, 67, 61)).shape == (1, 21, 67, 61)  # any size comes back


@pytest.mark.parametrize("variant", list(TABLE2))
@pytest.mark.parametrize("blocks", [5, 4])
def test_every_variant_keeps_output_stride_8(variant, blocks):
    """Even 4×4 kernels included: fc6 keeps its input's size (narrow trunks for speed; 4 blocks is
    the CPU presets' trunk, conv5/pool5 dropped)."""
    narrow = {"name": "vgg", "widths": [4, 4, 8, 8, 8][:blocks], "convs": [1] * blocks, "batch_norm": True}
    k, d, c = TABLE2[variant]
    model = DeepLabV1(narrow, 21, fc6_kernel=k, fc6_dilation=d // 4, fc_channels=c // 64).eval()
    assert model.backbone.output_stride == 8
    with torch.no_grad():
        assert model.backbone(torch.randn(2, 3, 64, 64)).shape[-2:] == (8, 8)
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 21, 64, 64)


@pytest.mark.parametrize("kernel, dilation, offsets", [
    (4, 4, [-6, -2, 2, 6]),    # the paper's DeepLab: symmetric taps (Caffe's pad 6)
    (4, 8, [-12, -4, 4, 12]),
    (3, 12, [-12, 0, 12]),
    (7, 4, [-12, -8, -4, 0, 4, 8, 12]),
    (4, 1, [-1, 0, 1, 2]),      # odd total padding: the extra pixel goes right/bottom
])
def test_fc6_taps_and_size(kernel, dilation, offsets):
    """Which input pixels an output pixel reads: an all-ones kernel on an impulse."""
    conv = FOVConv(1, 1, kernel, dilation)
    nn.init.ones_(conv.conv.weight)
    nn.init.zeros_(conv.conv.bias)
    x = torch.zeros(1, 1, 41, 41)
    x[0, 0, 20, 20] = 1
    with torch.no_grad():
        y = conv(x)
    assert y.shape == x.shape
    hits = torch.nonzero(y[0, 0])  # outputs that read the impulse: input − output = a tap offset
    assert sorted({20 - int(c) for c in hits[:, 1]}) == offsets
    assert sorted({20 - int(r) for r in hits[:, 0]}) == offsets
    assert len(hits) == kernel ** 2
    assert sum(same_size_padding(kernel, dilation)[:2]) == (kernel - 1) * dilation


def test_decimation_picks_the_papers_taps_and_filters():
    """vgg16_to_deeplab on a small VGG-shaped state dict: element by element."""
    filters, cin = 16, 3
    state = {"features.0.weight": torch.randn(4, 3, 3, 3),
             "classifier.0.weight": torch.randn(filters, cin * 49), "classifier.0.bias": torch.randn(filters),
             "classifier.3.weight": torch.randn(filters, filters), "classifier.3.bias": torch.randn(filters)}
    out = vgg16_to_deeplab(state, fc6_kernel=3, fc_channels=4)
    assert torch.equal(out["features.0.weight"], state["features.0.weight"])
    fc6 = out["fc6.conv.weight"]
    assert fc6.shape == (4, cin, 3, 3)
    full = state["classifier.0.weight"].view(filters, cin, 7, 7)
    for o in range(4):
        for i, r in enumerate((0, 3, 6)):
            for j, c in enumerate((0, 3, 6)):
                assert torch.equal(fc6[o, :, i, j], full[4 * o, :, r, c])
    assert torch.equal(out["fc6.conv.bias"], state["classifier.0.bias"][[0, 4, 8, 12]])
    assert torch.equal(out["fc7.weight"][:, :, 0, 0], state["classifier.3.weight"][[0, 4, 8, 12]][:, [0, 4, 8, 12]])
    assert torch.equal(out["fc7.bias"], state["classifier.3.bias"][[0, 4, 8, 12]])
    four = vgg16_to_deeplab(state, fc6_kernel=4, fc_channels=filters)["fc6.conv.weight"]
    assert torch.equal(four, full[:, :, 0::2, 0::2])  # 7 → 4: taps 0, 2, 4, 6
    assert torch.equal(vgg16_to_deeplab(state, 7, filters)["fc6.conv.weight"], full)


@pytest.mark.parametrize("kernel, channels", [(5, 4096), (6, 4096), (3, 1000)])
def test_decimation_that_cannot_be_done_is_an_error(kernel, channels):
    state = {"classifier.0.weight": torch.zeros(4096, 49), "classifier.0.bias": torch.zeros(4096)}
    with pytest.raises(ValueError, match="cannot"):
        vgg16_to_deeplab(state, kernel, channels)


@pytest.fixture(scope="module")
def saved_vgg16(tmp_path_factory):
    """A torchvision-vgg16-shaped state dict with random values, saved where torch.hub caches
    IMAGENET1K_V1 (under a temporary $TORCH_HOME)."""
    torch_home = tmp_path_factory.mktemp("torch_home")
    old = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(torch_home)
    import torchvision
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in torchvision.models.vgg16(weights=None).state_dict().items()}
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=gen) for k, shape in shapes.items()}
    path, _ = imagenet_checkpoint("vgg16")
    os.makedirs(os.path.dirname(path))
    torch.save(state, path)
    yield state
    if old is None:
        os.environ.pop("TORCH_HOME")
    else:
        os.environ["TORCH_HOME"] = old


@pytest.mark.parametrize("variant", ["largefov", "k4d4"])
def test_imagenet_init_decimates_fc6_fc7(saved_vgg16, variant):
    k, _, c = TABLE2[variant]
    model = deeplab(variant, {"name": "vgg", "weights": "imagenet"})
    state = model.backbone.state_dict()
    for key, value in saved_vgg16.items():
        if key.startswith("features."):
            assert torch.equal(state[key], value), key
    fc6 = saved_vgg16["classifier.0.weight"].view(4096, 512, 7, 7)
    space, every = {3: 3, 4: 2}[k], 4096 // c
    assert torch.equal(state["fc6.conv.weight"], fc6[::every, :, ::space, ::space])
    assert torch.equal(state["fc6.conv.bias"], saved_vgg16["classifier.0.bias"][::every])
    assert torch.equal(state["fc7.weight"].flatten(1), saved_vgg16["classifier.3.weight"][::every, ::every])
    assert model.classifier.weight.shape == (21, c, 1, 1)  # the 1000-way classifier.6 is not used


# --- MSc (Table 1(a)) -----------------------------------------------------------------------------

def test_msc_adds_the_papers_640_channels_and_their_exact_params():
    # per branch: a 3×3 conv c → 128 (+ bias), a 1×1 conv 128 → 128 (+ bias), on the input (c = 3)
    # and pool1..pool4 (64, 128, 256, 512); the classifier gains 640 inputs × 21 classes
    by_hand = sum(9 * c * 128 + 128 for c in (3, 64, 128, 256, 512)) + 5 * (128 * 128 + 128) + 640 * 21
    assert by_hand == 1_206_016
    with torch.device("meta"):
        plain, msc = deeplab("largefov"), deeplab("largefov", msc_width=128)
    assert msc.backbone.out_channels == 1024 + 640
    # fc8 on fc7 (the base's) and on the branches (no bias of its own): one 1×1 on the concatenation
    assert (msc.classifier.in_channels, msc.msc_classifier.in_channels, msc.msc_classifier.bias) == (1024, 640, None)
    assert count_params(msc) - count_params(plain) == by_hand


@pytest.mark.parametrize("size", [64, 61])
def test_msc_branches_meet_fc7_at_output_stride_8(size):
    cpu = {"name": "vgg", "widths": [8, 16, 32, 32], "convs": [1, 1, 1, 1], "batch_norm": True}
    model = DeepLabV1(cpu, 5, fc6_kernel=3, fc6_dilation=3, fc_channels=64, msc_width=32).eval()
    strides = [b[0].stride[0] for b in model.backbone.msc.branches]
    assert strides == [8, 4, 2, 1, 1]
    x = torch.randn(2, 3, size, size)
    features = model.backbone(x)
    assert features.shape == (2, 64 + 5 * 32, -(-size // 8), -(-size // 8))
    assert model(x).shape == (2, 5, size, size)
    # the fc7 part is the plain model's, untouched by the branches
    plain = DeepLabV1(cpu, 5, fc6_kernel=3, fc6_dilation=3, fc_channels=64).eval()
    plain.backbone.load_state_dict({k: v for k, v in model.backbone.state_dict().items() if not k.startswith("msc.")})
    assert torch.equal(features[:, :64], plain.backbone(x))


@pytest.mark.parametrize("variant, fc8_trains", [("k4d4_msc", True), ("largefov_msc", False)])
def test_msc_trains_only_its_branches_from_the_same_seeds_trained_base(tmp_path, variant, fc8_trains):
    """The paper (§4.3) and the released MSc prototxts: from the trained DeepLab(-LargeFOV) of the same
    seed, only the new layers learn (MSc-LargeFOV's prototxt freezes fc8 too). The base run is trained
    first (it is not yet), and after the branches' training every one of its weights and BatchNorm
    statistics is as the base run left it."""
    from engine.one_run import run_dir_of, run_group
    from engine.trainer import seed_everything
    plans = {(p.variant, p.seed): p for p in plans_of("deeplab_crf", "smoke")}
    msc, base = plans[(variant, 0)], plans[(variant.removesuffix("_msc"), 0)]
    assert msc.base.run_id == base.run_id == msc.train["init_run"]
    assert plans[(f"{variant}_crf", 0)].run_id == msc.run_id  # one model, two rows
    [result] = run_group([msc], str(tmp_path), "cpu", progress=False)
    assert result.ok, result.error
    base_state = torch.load(tmp_path / "runs" / base.run_id / "model.pt", weights_only=True)
    msc_state = torch.load(os.path.join(run_dir_of(str(tmp_path), msc), "model.pt"), weights_only=True)
    seed_everything(msc.seed)
    start = build_model(msc.model, 5).state_dict()  # as train_run builds it, before the base is loaded
    for key, value in msc_state.items():
        if key.startswith(("backbone.features.", "backbone.fc6.", "backbone.fc7.")):
            assert torch.equal(value, base_state[key]), key  # frozen: the base's, BatchNorm statistics too
        elif key.startswith("classifier."):
            assert torch.equal(value, base_state[key]) != fc8_trains, key  # fc8 from the base, trained or not
        else:  # the new layers: trained from their initialisation
            assert key.startswith(("backbone.msc.", "msc_classifier.")) and not torch.equal(value, start[key]), key


def test_msc_selection_runs_start_from_the_bases_selection_run():
    """The CRF's selection models are trained on the held-out split: MSc's starts from the base's."""
    from helpers import selection_of
    runs = {(p.variant.split("@")[0], p.seed): p for p in selection_of("deeplab_crf", "smoke")}
    assert runs[("k4d4_msc_crf", 0)].base.run_id == runs[("k4d4_crf", 0)].run_id
    assert runs[("largefov_msc_crf", 0)].base.run_id == runs[("largefov_crf", 0)].run_id


def test_msc_with_imagenet_weights_keeps_its_new_layers(saved_vgg16):
    model = deeplab("largefov", {"name": "vgg", "weights": "imagenet"}, msc_width=128)
    assert torch.equal(model.backbone.state_dict()["features.0.weight"], saved_vgg16["features.0.weight"])
    assert model.backbone.msc.branches[0][0].weight.shape == (128, 3, 3, 3)


def test_weights_need_the_vgg16_layout():
    with pytest.raises(ValueError, match="VGG-16"):
        deeplab("largefov", {"name": "vgg", "widths": [8, 16, 32, 32, 32], "weights": "imagenet"})


@pytest.mark.parametrize("backbone, opts", [
    ({"name": "small"}, {}),
    ({"name": "vgg", "strides": [2, 2, 2]}, {}),
    ({"name": "vgg", "widths": [8, 16, 32]}, {}),
    ({"name": "vgg"}, {"dropout": 1.0}),
    ({"name": "vgg"}, {"msc_width": 0}),
])
def test_bad_config_is_an_error(backbone, opts):
    with pytest.raises(ValueError):
        with torch.device("meta"):
            deeplab("largefov", backbone, **opts)


def test_cpu_preset_keeps_the_papers_relations():
    """Three variants share one receptive field, 4×4 dil 4 has a smaller one, LargeFOV has the
    fewest parameters and 7×7 the most; 4×4 at dil 4 and 8 have the same count."""
    for preset in ("smoke", "quick"):
        plans = {p.variant: p for p in plans_of(deeplab_fov, preset) if p.seed == 0}
        models = {v: build_model(p.model, 5) for v, p in plans.items()}
        rf = {v: fov_receptive_field(m, count_pool5a=False) for v, m in models.items()}  # Table 2's definition
        params = {v: count_params(m) for v, m in models.items()}
        assert rf["k7d4"] == rf["k4d8"] == rf["largefov"] > rf["k4d4"]
        assert params["largefov"] < params["k4d4"] == params["k4d8"] < params["k7d4"]


def test_deep_merge_replaces_a_dict_of_another_name():
    base = {"backbone": {"name": "small", "strides": [2, 2, 2]}, "x": 1}
    assert deep_merge(base, {"backbone": {"name": "vgg", "widths": [1]}})["backbone"] == {"name": "vgg", "widths": [1]}
    assert deep_merge(base, {"backbone": {"strides": [1]}})["backbone"] == {"name": "small", "strides": [1]}


def test_step_learning_rate():
    cfg = {"lr": 1e-3, "iterations": 6000, "poly_power": 0.9, "lr_step": 2000, "lr_gamma": 0.1}
    assert [learning_rate(cfg, i) for i in (0, 1999, 2000, 5999)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-5])
    poly = {k: v for k, v in cfg.items() if k != "lr_step"}
    assert learning_rate(poly, 3000) == pytest.approx(1e-3 * 0.5 ** 0.9)


def test_close_verdict():
    claim = Close("a matches b", "mIoU", a="a", b="b", band=2.0)
    same = {"a": [50.0, 50.4, 49.8], "b": [50.1, 50.2, 49.9]}
    assert claim.judge(same, band=2.0)[0] == Outcome.REPRODUCED
    apart = {"a": [60.0, 60.4, 59.8], "b": [50.1, 50.2, 49.9]}
    assert claim.judge(apart, band=2.0)[0] == Outcome.CONTRADICTED
    noisy = {"a": [45.0, 55.0], "b": [50.0, 51.0]}
    assert claim.judge(noisy, band=2.0)[0] == Outcome.INCONCLUSIVE
    assert claim.judge({"a": [50.0], "b": [50.0]}, band=2.0)[0] == Outcome.INCONCLUSIVE
    with pytest.raises(ValueError):
        claim.judge(same, band=0)


def test_smoke_run(tmp_path):
    out, report = tmp_path / "results", tmp_path / "report"
    assert run_all.main(["--ablation", "deeplab_fov", "--preset", "smoke", "--out", str(out),
                         "--report-dir", str(report), "--no-progress", "--jobs", "1"]) == 0
    rows = pd.read_csv(out / "deeplab_fov.csv")
    assert sorted(rows["variant"]) == sorted(TABLE2)
    assert (rows["status"] == "ok").all() and rows["train_img_per_s"].gt(0).all()
    assert rows.groupby("variant")["params"].first()["largefov"] == rows["params"].min()
    text = (report / "REPORT.md").read_text()
    section = text[text.index("(`deeplab_fov`)"):]
    for heading in ("Published vs reproduced", "Claims", "Exact facts", "Training speed",
                    "Table 1(a)", "Variants as run"):
        assert heading in section, heading
    assert "✗ MISMATCH" not in section
    appendix = (report / "APPENDIX.md").read_text()  # the deviations, listed once, and the facts' table
    assert "### Deviations from the paper" in appendix[appendix.index("(`deeplab_fov`)"):]


# --- deeplab_crf: Table 1(a), MSc and the CRF -------------------------------------------------------

def test_msc_facts_hold_and_add_the_hand_counted_params():
    from ablations import deeplab_crf
    assert deeplab_crf.msc_params() == 1_206_016  # test_msc_adds_the_papers_640_channels_and_their_exact_params
    facts = deeplab_crf.exact_facts()
    assert len(facts) == 2 and all(fact_holds(f) for f in facts)
    assert facts[0]["computed"] - deeplab_fov.paper_params(4, 4096) == 1_206_016


def test_crf_smoke_run_shares_deeplab_fovs_runs_and_evaluates_each_model_twice(tmp_path):
    out, report = tmp_path / "results", tmp_path / "report"
    common = ["--preset", "smoke", "--out", str(out), "--report-dir", str(report), "--no-progress", "--jobs", "1"]
    assert run_all.main(["--ablation", "deeplab_fov", *common]) == 0
    fov_runs = set(os.listdir(out / "runs"))
    trained = {r: os.path.getmtime(out / "runs" / r / "model.pt") for r in fov_runs}
    assert run_all.main(["--ablation", "deeplab_crf", *common]) == 0
    # deeplab_fov's four models are not trained again; new: the two MSc models and each model's CRF
    # selection model (the CRF's settings are chosen per model)
    assert len(set(os.listdir(out / "runs")) - fov_runs) == 2 + 6
    assert all(os.path.getmtime(out / "runs" / r / "model.pt") == t for r, t in trained.items())
    rows = pd.read_csv(out / "deeplab_crf.csv").set_index("variant")
    assert (rows["status"] == "ok").all() and len(rows) == 12
    selection = read_rows(str(out / "tuning" / "deeplab_crf.csv"))
    assert selection["run_id"].nunique() == 6  # one selection model per model, evaluated at every point:
    spec = load("deeplab_crf")
    grid = spec.presets["smoke"]["tuning"]["crf"]
    for v in ("k4d4", "k4d4_msc", "k7d4", "k4d8", "largefov", "largefov_msc"):
        scored = [(s, m) for _, s, m in crf_scores(selection, f"{v}_crf")]
        assert [s for s, _ in scored[:8]] == crf_grid(grid)  # the 2 × 2 × 2 coarse grid, then the fine search
        assert 8 < len(scored) <= 8 + grid["fine_points"] + 6  # (its last round may pass the budget)
        assert crf_optimum(grid, scored)["ended"] in ("local optimum", "budget spent")
    chosen = choose_crfs(spec, selection)
    for v in ("k4d4", "k4d4_msc", "k7d4", "k4d8", "largefov", "largefov_msc"):
        assert rows.loc[f"{v}_crf", "run_id"] == rows.loc[v, "run_id"]  # one model, two rows
        assert json.loads(rows.loc[f"{v}_crf", "eval_config"])["crf"] == chosen[f"{v}_crf"]
        assert rows.loc[f"{v}_crf", "crf_ms"] > 0 and "crf" not in json.loads(rows.loc[v, "eval_config"])
        trimap = json.loads(rows.loc[f"{v}_crf", "trimap"])  # DeepLab's trimap, at each width
        assert sorted(map(float, trimap)) == [1, 2, 3, 5, 7, 10] and all(0 <= t["mIoU"] <= 100 for t in trimap.values())
    assert rows.loc["largefov_msc", "params"] > rows.loc["largefov", "params"]
    text, appendix = (report / "REPORT.md").read_text(), (report / "APPENDIX.md").read_text()
    # the section and its part of the appendix (the grids and tables the section links to)
    section = text[text.index("(`deeplab_crf`)"):] + appendix[appendix.index("(`deeplab_crf`)"):]
    for heading in ("Table 1(a): before and after the CRF", "Table 2 after the CRF", "Where the CRF's gain sits",
                    "chosen per model on held-out training images", "![CRF examples]", "Exact facts",
                    "Trimap: mIoU near the boundaries", "![deeplab_crf trimap]", "Where each optimum lies",
                    "| search ended |"):
        assert heading in section, heading
    assert "✗ MISMATCH" not in section and section.count("| **") >= 1


def test_largefov_has_the_released_pool5a_and_the_others_do_not():
    """The released LargeFOV prototxts put a 3×3 average pooling (stride 1, pad 1) between pool5 and
    fc6: no parameters, 2 × 8 px more field of view; the other variants' have none."""
    for plan in plans_of(deeplab_fov, "paper") + plans_of("deeplab_crf", "paper"):
        assert plan.model.get("pool5a", False) == plan.variant.startswith("largefov"), plan.variant
    with torch.device("meta"):
        with_pool = build_model({"arch": "deeplab_v1", "backbone": {"name": "vgg"}, "fc6_kernel": 3, "fc6_dilation": 12,
                                 "fc_channels": 1024, "pool5a": True}, 21)
        without = build_model({"arch": "deeplab_v1", "backbone": {"name": "vgg"}, "fc6_kernel": 3, "fc6_dilation": 12,
                               "fc_channels": 1024}, 21)
    assert count_params(with_pool) == count_params(without)
    assert (fov_receptive_field(with_pool), fov_receptive_field(without)) == (240, 224)
    assert fov_receptive_field(with_pool, count_pool5a=False) == 224
    pool = with_pool.backbone.pool5a
    assert (pool.kernel_size, pool.stride, pool.padding, pool.count_include_pad) == (3, 1, 1, True)
    # Caffe's AVE pooling with pad divides by the whole window, padding included: a corner of ones
    # averages to 4/9
    assert torch.nn.AvgPool2d(3, 1, 1, count_include_pad=True)(torch.ones(1, 1, 4, 4))[0, 0, 0, 0] == pytest.approx(4 / 9)


def test_deeplab_trains_at_stride_8_against_labels_subsampled_by_8():
    """As the released train prototxts: the loss of the stride-8 scores against every 8th label pixel
    from the first (Caffe's Interp, shrink_factor 8), no upsampling of the scores."""
    torch.manual_seed(0)
    model = build_model({"arch": "deeplab_v1", "backbone": {"name": "vgg", "widths": [4, 4, 8, 8], "convs": [1, 1, 1, 1],
                                                            "batch_norm": True},
                         "fc6_kernel": 3, "fc6_dilation": 3, "fc_channels": 8, "dropout": 0.0}, 5).eval()
    images, labels = torch.randn(2, 3, 64, 64), torch.randint(0, 5, (2, 64, 64))
    labels[0, :8, :8] = 255  # an ignored pixel at a sampled position stays ignored
    loss, _ = model(images, labels)
    scores = model.classifier(model.backbone(images))
    assert scores.shape[-2:] == (8, 8)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(scores, labels[:, ::8, ::8],
                                                                          ignore_index=255).item(), rel=1e-6)
    assert model.logits(images).shape[-2:] == (64, 64)  # evaluation: upsampled to the input


def test_evaluation_upsamples_with_aligned_corners_as_the_releases_interp():
    """Caffe's Interp aligns the corners: at 65 px (9 scores, (65 − 1) / (9 − 1) = 8) score i lands exactly on
    pixel 8i, the pixel whose label it was trained against, and halfway between two scores is their mean."""
    torch.manual_seed(0)
    model = build_model({"arch": "deeplab_v1", "backbone": {"name": "vgg", "widths": [4, 4, 8, 8], "convs": [1, 1, 1, 1],
                                                            "batch_norm": True},
                         "fc6_kernel": 3, "fc6_dilation": 3, "fc_channels": 8, "dropout": 0.0}, 5).eval()
    x = torch.randn(1, 3, 65, 65)
    with torch.no_grad():
        scores, logits = model.scores(x), model.logits(x)
    assert scores.shape[-2:] == (9, 9) and logits.shape[-2:] == (65, 65)
    assert torch.allclose(logits[..., ::8, ::8], scores, atol=1e-6)
    assert torch.allclose(logits[..., 4, 0], (scores[..., 0, 0] + scores[..., 1, 0]) / 2, atol=1e-6)


@pytest.mark.parametrize("kernel, dilation", [(7, 1), (4, 1), (4, 2), (3, 3)])
def test_fc6_by_gemm_is_the_same_convolution(kernel, dilation):
    """fc6_gemm (im2col and one matrix product) computes fc6's convolution, its size kept, gradients too."""
    torch.manual_seed(0)
    conv, gemm = FOVConv(8, 16, kernel, dilation), FOVConv(8, 16, kernel, dilation, gemm=True)
    gemm.load_state_dict(conv.state_dict())
    x = torch.randn(2, 8, 13, 11).contiguous(memory_format=torch.channels_last)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a, b = conv(xa), gemm(xb)
    assert b.shape == a.shape == (2, 16, 13, 11) and torch.allclose(a, b, atol=1e-5)
    a.square().sum().backward()
    b.square().sum().backward()
    assert torch.allclose(xa.grad, xb.grad, atol=1e-4)
    assert torch.allclose(conv.conv.weight.grad, gemm.conv.weight.grad, rtol=1e-4, atol=1e-3)
    assert all(p.model.get("fc6_gemm") for p in plans_of(deeplab_fov, "quick") + plans_of("deeplab_crf", "smoke"))
    assert not any(p.model.get("fc6_gemm") for p in plans_of(deeplab_fov, "paper"))

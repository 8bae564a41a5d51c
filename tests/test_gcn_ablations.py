"""GCN Tables 2–5: exact #params, what the heads are (linear, receptive field, BR's residual form),
runs shared with gcn_k, the effective-receptive-field figure, and a smoke run of each ablation."""
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

import run_all
from ablations import gcn_backbone, gcn_boundary, gcn_k, gcn_vs_conv, gcn_vs_stack, load
from engine.analysis import analysis_file, load_analysis, save_analysis
from engine.measurements import effective_receptive_field
from engine.presets import SMALL_BACKBONE
from engine.claims import Greater, Outcome, fact_holds
from engine.tuning import choose_lrs
from helpers import plans_of, selection_of, settings_of
from report.common import per_seed
from report.erf import erf_section, mass_radius
from segmodels import build_backbone, build_model
from segmodels.backbones import receptive_field
from segmodels.base import count_weights
from segmodels.gcn import BoundaryRefine, GCNBlock, GCNNet, bilinear_deconv, build_head, conv_stack

GCN_ABLATIONS = (gcn_vs_conv, gcn_vs_stack, gcn_boundary)


# --- exact #params (paper dimensions: res-5's 2048 channels → 21 classes, weights only) ---------

@pytest.mark.parametrize("k, gcn, trivial", [(3, 260e3, 387e3), (5, 434e3, 1075e3), (7, 608e3, 2107e3),
                                             (9, 782e3, 3484e3)])
def test_table2_params(k, gcn, trivial):
    assert abs(count_weights(build_head(2048, 21, "gcn", k)) - gcn) <= 1000  # the paper prints thousands
    assert abs(count_weights(build_head(2048, 21, "conv", k)) - trivial) <= 1000


@pytest.mark.parametrize("ratio, published", [(None, 75885e3), (0.5, 28505e3), (210 / 2048, 4307e3)])
def test_table4_params(ratio, published):
    with torch.device("meta"):  # shapes only
        head = build_head(2048, 21, "stack", 7, width_ratio=ratio)
    assert head[0].out_channels == {None: 2048, 0.5: 1024, 210 / 2048: 210}[ratio]
    assert abs(count_weights(head) - published) <= 1000


@pytest.mark.parametrize("spec", GCN_ABLATIONS + (gcn_backbone,))
def test_every_exact_fact_holds(spec):
    facts = spec.exact_facts()
    assert facts and all(fact_holds(f) for f in facts), [f["fact"] for f in facts if not fact_holds(f)]
    assert all(f["computed"] == f["expected"] for f in facts)  # and each equals its formula exactly


# --- the heads ----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [3, 5, 7, 9, 11])
def test_stack_is_linear_3x3_convs_with_receptive_field_k(k):
    stack = conv_stack(64, 5, k, 32)
    leaves = [m for m in stack.modules() if not list(m.children())]
    assert leaves and all(type(m) is nn.Conv2d and m.kernel_size == (3, 3) for m in leaves)  # no ReLU/BN
    assert len(leaves) == (k - 1) // 2
    assert receptive_field(stack) == k
    assert stack(torch.randn(1, 64, 16, 16)).shape == (1, 5, 16, 16)


def test_stack_width_from_ratio_and_bad_width_options():
    assert [build_head(64, 5, "stack", 7, width_ratio=r)[0].out_channels for r in (1, 0.5, 210 / 2048)] == [64, 32, 7]
    with pytest.raises(ValueError, match="not both"):
        build_head(64, 5, "stack", 7, width=8, width_ratio=0.5)
    with pytest.raises(ValueError, match="stack"):
        build_head(64, 5, "gcn", 7, width_ratio=0.5)
    with pytest.raises(ValueError, match="width_ratio"):
        build_head(64, 5, "stack", 7, width_ratio=1.5)


def test_boundary_refinement_is_residual():
    torch.manual_seed(0)
    br = BoundaryRefine(5)
    s = torch.randn(2, 5, 8, 8)
    expected = s + br.conv2(torch.relu(br.conv1(s)))
    assert torch.allclose(br(s), expected)
    with torch.no_grad():
        br.conv2.weight.zero_()
        br.conv2.bias.zero_()
    assert torch.equal(br(s), s)  # with the second conv zeroed BR is the identity
    head = build_head(16, 5, "gcn", 7, br=True)
    assert isinstance(head[0], GCNBlock) and isinstance(head[1], BoundaryRefine)


def test_gcn_block_is_linear():
    torch.manual_seed(0)
    block = GCNBlock(8, 5, 7).double()
    x, y = torch.randn(2, 8, 12, 12, dtype=torch.float64), torch.randn(2, 8, 12, 12, dtype=torch.float64)
    f0 = block(torch.zeros_like(x))  # the biases
    lhs = block(2.5 * x - 0.7 * y) - f0
    assert torch.allclose(lhs, 2.5 * (block(x) - f0) - 0.7 * (block(y) - f0))
    assert all(type(m) is nn.Conv2d for m in block.modules() if not list(m.children()))


# --- shared runs ---------------------------------------------------------------------------------

REPRODUCED = Outcome.REPRODUCED


def run_ids(spec, preset):
    return {(p.variant, p.seed): p.run_id for p in plans_of(spec, preset)}


@pytest.mark.parametrize("preset", ["smoke", "quick", "full", "paper"])
def test_runs_shared_with_gcn_k(preset):
    table1 = run_ids(gcn_k, preset)
    table2, table3, table5 = run_ids(gcn_vs_conv, preset), run_ids(gcn_vs_stack, preset), run_ids(gcn_boundary, preset)
    seeds = {s for _, s in table1}
    for seed in seeds:
        for k in (3, 5, 7, 9):
            assert table2[(f"gcn_k{k}", seed)] == table1[(f"k{k}", seed)]
        for k in (3, 5, 7, 9, 11):
            assert table3[(f"gcn_k{k}", seed)] == table1[(f"k{k}", seed)]
        assert table3[("stack_k3", seed)] == table2[("conv_k3", seed)]  # one 3×3 layer is the trivial 3×3 conv
        assert table5[("base", seed)] == table1[("base", seed)]
        assert table5[("gcn_k15", seed)] == table1[("k15", seed)]
        assert table5[("gcn_k15_br", seed)] not in table1.values()


def test_tuned_variants_train_at_the_chosen_lr_and_share_the_selection_runs():
    preset_lr = settings_of(gcn_vs_conv, "quick").base["train"]["lr"]
    plans = {p.variant: p for p in plans_of(gcn_vs_conv, "quick", lrs={"gcn_k9_tuned": 0.01})}
    assert plans["gcn_k9_tuned"].train["lr"] == 0.01 and plans["gcn_k9"].train["lr"] == preset_lr
    assert plans["conv_k9_tuned"].run_id == plans["conv_k9"].run_id  # not chosen yet: the preset lr
    conv = {p.variant: p for p in selection_of(gcn_vs_conv, "quick")}
    stack = {p.variant: p for p in selection_of(gcn_vs_stack, "quick")}
    assert sorted(conv) == sorted(f"{v}_tuned@{s:g}" for v in ("gcn_k7", "gcn_k9", "conv_k5", "conv_k7", "conv_k9")
                                  for s in gcn_vs_conv.TUNE_SCALES)
    assert {p.train["lr"] for p in conv.values()} == {round(s * preset_lr, 12) for s in gcn_vs_conv.TUNE_SCALES}
    assert all(p.data["holdout"] == "heldout" and not p.eval["speed_repeats"] for p in conv.values())
    for key in ("gcn_k7_tuned@0.2", "gcn_k9_tuned@1"):  # GCN's selection runs serve both tables
        assert conv[key].run_id == stack[key].run_id


def test_choose_lrs_takes_the_best_stable_lr():
    spec = SimpleNamespace(variants=[{"id": "a", "tune_lr": [0.2, 1.0]}, {"id": "b", "tune_lr": [0.2, 1.0]},
                                     {"id": "c", "tune_lr": [1.0]}, {"id": "d"}])
    rows = pd.DataFrame({
        "variant": ["a@0.2", "a@1", "a@1", "b@0.2", "b@1", "c@1"],
        "lr": [0.01, 0.05, 0.05, 0.01, 0.05, 0.05],
        "mIoU": [50.0, 70.0, None, 60.0, 60.0, None],
        "status": ["ok", "ok", "failed: non-finite loss", "ok", "ok", "failed: non-finite loss"]})
    # a: the better lr diverged in one of its runs, so it is not chosen; b: a tie goes to the smaller
    # lr; c: no stable lr, no choice
    assert choose_lrs(spec, rows) == {"a": 0.01, "b": 0.01}


def test_lr_selection_never_reads_the_validation_split(tmp_path, monkeypatch):
    import engine.one_run
    from data import build_dataset
    from engine.workers import run_plans
    seen = []

    def recording(cfg, split):
        seen.append((cfg.get("holdout"), split))
        return build_dataset(cfg, split)
    monkeypatch.setattr(engine.one_run, "build_dataset", recording)
    smoke = settings_of(gcn_vs_conv, "smoke")
    tuning = selection_of(gcn_vs_conv, "smoke")[:2]
    run_plans("gcn_vs_conv", tuning, str(tmp_path / "t.csv"), str(tmp_path), "cpu", 1, False, "lr selection")
    assert seen and all(holdout == smoke.tuning["holdout"] for holdout, _ in seen)
    # and the held-out 'val' images are the training split's last ones, not the validation split's
    held = build_dataset({**smoke.data, "holdout": 4}, "val")
    train = build_dataset(smoke.data, "train")
    assert torch.equal(held[0][0], train[len(train) - 4][0])
    assert not torch.equal(held[0][0], build_dataset(smoke.data, "val")[0][0])


# --- the difference-of-metrics claims (Table 5) --------------------------------------------------

def test_claim_on_a_difference_of_two_metrics():
    # GCN lifts internal acc by +2 and boundary acc by +0.5 in each seed: internal − boundary rises
    rows = pd.DataFrame({"variant": ["base", "base", "gcn", "gcn"], "seed": [0, 1, 0, 1], "status": "ok",
                         "internal_acc": [90.0, 90.4, 92.0, 92.4], "boundary_acc": [70.0, 70.2, 70.5, 70.7]})
    values = per_seed(rows, "internal_acc", minus="boundary_acc")
    assert values == {"base": [20.0, pytest.approx(20.2)], "gcn": [21.5, pytest.approx(21.7)]}
    claim = Greater("", "internal_acc", minus="boundary_acc", a="gcn", b="base")
    assert claim.judge(values)[0] == REPRODUCED
    reverse = Greater("", "boundary_acc", minus="internal_acc", a="gcn", b="base")
    assert reverse.judge(per_seed(rows, "boundary_acc", minus="internal_acc"))[0] == "contradicted"


# --- effective receptive field ------------------------------------------------------------------

def test_erf_of_a_kxk_conv_is_its_kernel_square():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 5, padding=2)
    erf = effective_receptive_field(model, torch.randn(6, 3, 17, 17), batch_size=4)
    support = (erf > 0).nonzero()
    assert erf.shape == (17, 17)
    assert support[:, 0].min() == 6 and support[:, 0].max() == 10  # rows 8 ± 2
    assert support[:, 1].min() == 6 and support[:, 1].max() == 10
    delta = torch.zeros(17, 17, dtype=torch.float64)
    delta[8, 8] = 1
    assert mass_radius(delta, 0.9) == 0
    assert 0 < mass_radius(erf, 0.5) <= mass_radius(erf, 0.9) <= 2 * 2 ** 0.5


def test_erf_section_skips_missing_analysis_files(tmp_path):
    rows = pd.DataFrame({"variant": ["base", "k3"], "seed": [0, 0], "status": "ok", "run_id": ["nope1", "nope2"],
                         "eval_id": ["e", "e"]})
    text, radii = erf_section(load("gcn_k"), rows, str(tmp_path), str(tmp_path), "figures", ["base", "k3"])
    assert radii is None
    assert "base (1×1 conv): no ERF data" in text and "GCN k=3: no ERF data" in text
    assert not os.path.exists(tmp_path / "gcn_k_erf.png")


def test_erf_section_averages_the_seeds_it_has(tmp_path):
    """Mean over the seeds whose analysis file exists; the seeds used and the missing ones are named."""
    rows = pd.DataFrame({"variant": ["k3"] * 3, "seed": [1, 0, 2], "status": "ok", "run_id": ["r1", "r0", "r2"],
                         "eval_id": "e"})
    maps = {"r0": np.zeros((9, 9), np.float32), "r1": np.zeros((9, 9), np.float32)}
    maps["r0"][4, 4], maps["r1"][4, 5] = 2.0, 4.0
    for run_id, erf in maps.items():
        save_analysis(analysis_file(str(tmp_path), run_id, "e", "erf"), {"erf": erf, "n_images": np.int64(5)})
    loaded = load_analysis(analysis_file(str(tmp_path), "r0", "e", "erf"))
    assert np.array_equal(loaded["erf"], maps["r0"]) and int(loaded["n_images"]) == 5
    text, radii = erf_section(load("gcn_k"), rows, str(tmp_path), str(tmp_path), "figures", ["k3"])
    assert "| GCN k=3 | 0, 1 | 1.0 | 1.0 |" in radii  # 2/3 of the mean mass 1 px off the centre (in the appendix)
    assert "no ERF data for seed(s) 2" in text and "over 5 validation images" in text
    assert os.path.exists(tmp_path / "gcn_k_erf.png")


# --- smoke runs ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The three ablations at the smoke preset in one results folder (shared runs trained once)."""
    out, report = tmp_path_factory.mktemp("results"), tmp_path_factory.mktemp("report")
    argv = ["--preset", "smoke", "--iterations", "1", "--out", str(out), "--report-dir", str(report),
            "--no-progress", "--jobs", "1"]
    for spec in GCN_ABLATIONS:
        argv += ["--ablation", spec.NAME]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convs: on a busy 2-core machine a second thread only waits
    try:
        assert run_all.main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return out, report


@pytest.mark.parametrize("spec", GCN_ABLATIONS)
def test_smoke_run(smoke, spec):
    out, report = smoke
    rows = pd.read_csv(out / f"{spec.NAME}.csv")
    assert sorted(rows["variant"]) == sorted(v["id"] for v in spec.VARIANTS)
    assert (rows["status"] == "ok").all() and rows["mIoU"].between(0, 100).all()
    assert rows["boundary_acc"].notna().all() and rows["internal_acc"].notna().all()
    text = (report / "REPORT.md").read_text()
    assert f"(`{spec.NAME}`)" in text and "✗ MISMATCH" not in text
    assert (report / "figures" / f"{spec.NAME}.png").exists()


def test_smoke_shares_runs_and_draws_the_erf(smoke):
    out, report = smoke
    conv, stack = pd.read_csv(out / "gcn_vs_conv.csv"), pd.read_csv(out / "gcn_vs_stack.csv")
    n_runs = len(os.listdir(out / "runs"))
    selection = set(pd.read_csv(out / "tuning" / "gcn_vs_conv.csv")["run_id"]) | set(
        pd.read_csv(out / "tuning" / "gcn_vs_stack.csv")["run_id"])
    assert n_runs == len(set(conv["run_id"]) | set(stack["run_id"]) | set(pd.read_csv(out / "gcn_boundary.csv")["run_id"])
                         | selection)
    assert n_runs < len(conv) + len(stack) + 3 + len(selection)  # GCN k = 3…9 and the 3×3 conv were trained once for both
    assert (report / "figures" / "gcn_vs_conv_erf.png").exists()
    tuned = conv[conv["variant"].str.endswith("_tuned")]
    tuning = pd.read_csv(out / "tuning" / "gcn_vs_conv.csv")
    assert len(tuned) == 5 and len(tuning) == 5 * len(gcn_vs_conv.TUNE_SCALES)
    assert set(tuned["lr"]) <= set(tuning["lr"]) and "chosen on held-out training images" in (report / "REPORT.md").read_text()


# --- the full pipeline of the paper's Fig. 2 ----------------------------------------------------

def test_bilinear_deconv_starts_as_bilinear_upsampling():
    x = torch.randn(1, 3, 6, 6)
    for factor in (2, 4):
        up = bilinear_deconv(3, factor)(x)
        ref = torch.nn.functional.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        assert up.shape == ref.shape
        inner = slice(factor, -factor)  # the borders differ: the deconvolution pads with zeros
        assert torch.allclose(up[..., inner, inner], ref[..., inner, inner], atol=1e-5)


class StridedStages(nn.Module):
    """A stand-in backbone with ResNet's stage layout at output stride 8 (c4, c5 dilated, not strided)."""

    def __init__(self, channels=(("c2", 8), ("c3", 12), ("c4", 16), ("c5", 20)), strides=(4, 8, 8, 8)):
        super().__init__()
        self.channels = dict(channels)
        self.strides = dict(zip(self.channels, strides))
        self.convs = nn.ModuleDict({n: nn.Conv2d(3, c, 1) for n, c in self.channels.items()})

    def forward(self, x):
        return {n: conv(nn.functional.avg_pool2d(x, self.strides[n])) for n, conv in self.convs.items()}


@pytest.mark.parametrize("make_backbone, fused", [(lambda: build_backbone(SMALL_BACKBONE), ["s2", "s1"]),
                                                  (StridedStages, ["c4", "c3", "c2"])])
def test_fig2_pipeline_shapes(make_backbone, fused):
    model = GCNNet(make_backbone(), 5, k=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 5, 64, 64)
    assert list(model.fuse) == fused and set(model.gcn) == set(model.backbone.channels)
    assert all(isinstance(g[0], GCNBlock) and isinstance(g[1], BoundaryRefine) for g in model.gcn.values())
    strides = list(model.backbone.strides.values())
    assert len(model.final) == strides[0].bit_length() - 1  # ×2 deconv + BR steps from the shallowest stride
    # equal strides (dilated stages) are added as they are; ×2 steps get a deconvolution
    assert [type(model.up[n]).__name__ for n in fused] == [
        "Identity" if strides[i] == strides[i + 1] else "ConvTranspose2d" for i in range(len(fused) - 1, -1, -1)]
    assert isinstance(build_model({"arch": "gcn_fig2", "backbone": SMALL_BACKBONE, "k": 3}, 5), GCNNet)


def test_fig2_variant_kept_to_its_presets():
    for preset, expected in (("quick", False), ("smoke", True), ("paper", True)):
        variants = {p.variant for p in plans_of(gcn_boundary, preset)}
        assert ("gcn_fig2" in variants) == expected

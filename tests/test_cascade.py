"""Layer Cascade: region convolution exactness, cascade inference and training, the speed claim
test, the region-conv benchmark and the lc ablations end to end (smoke preset)."""
import math
import os

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

import run_all
from engine.claims import Outcome, Ratio
from segmodels import build_model
from segmodels.cascade import LayerCascade, ResidualUnit, StageHead, small_trunk
from segmodels.region_conv import (DENSE_ABOVE, Region, masked_head, region_conv2d, region_head, region_residual,
                                   to_flat, unit_parts)

TOL = dict(atol=1e-5, rtol=1e-4)
# dense_above of a region: gathered windows only, dense convs for every region, the default dispatch
PATHS = {"region": math.inf, "dense": 0.0, "dispatch": DENSE_ABOVE}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is faster, and on a busy machine two threads spin-wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomise_bn(module, gen):
    """Non-trivial BN statistics and affine parameters, so BN's bias really is nonzero outside."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
    return module.eval()


def masks(gen, shape):
    """Empty, full, sparse random and dense random masks of shape [B, H, W]."""
    return {"empty": torch.zeros(shape, dtype=torch.bool), "full": torch.ones(shape, dtype=torch.bool),
            "sparse": torch.rand(shape, generator=gen) < 0.15, "dense": torch.rand(shape, generator=gen) < 0.7}


def masked_unit_reference(block, x, mask):
    """The region semantics computed densely: every conv layer's output kept at the mask and zeroed
    elsewhere; h(I) = relu(skip + F(I)) inside, I (or 0 for a projecting unit) outside."""
    m = mask[:, None].float()
    convs, proj = unit_parts(block)
    h = x
    for i, (conv, bn) in enumerate(convs):
        h = bn(conv(h)) * m
        if i < len(convs) - 1:
            h = F.relu(h)
    skip = x if proj is None else proj[1](proj[0](x))
    outside = x if proj is None else torch.zeros_like(skip)
    return torch.where(mask[:, None], F.relu(skip + h), outside)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("k, dilation, bias", [(3, 1, False), (3, 2, True), (1, 1, True), (5, 1, False)])
def test_region_conv_equals_dense_conv_inside_and_zero_outside(k, dilation, bias, path):
    gen = torch.Generator().manual_seed(k * 10 + dilation)
    torch.manual_seed(k + dilation)
    conv = nn.Conv2d(5, 7, k, padding=dilation * (k // 2), dilation=dilation, bias=bias)
    x = torch.randn(2, 5, 9, 12, generator=gen)
    for name, mask in masks(gen, (2, 9, 12)).items():
        out = region_conv2d(conv, x, mask, PATHS[path])
        expected = conv(x) * mask[:, None]
        assert out.shape == expected.shape
        torch.testing.assert_close(out, expected, **TOL, msg=f"mask {name}")
        assert not out[~mask[:, None].expand_as(out)].any(), f"mask {name}: nonzero outside the region"


def test_region_conv_rejects_strided_or_unpadded_conv():
    x, mask = torch.randn(1, 3, 6, 6), torch.ones(1, 6, 6, dtype=torch.bool)
    for conv in (nn.Conv2d(3, 3, 3, stride=2, padding=1), nn.Conv2d(3, 3, 3, padding=0)):
        with pytest.raises(ValueError, match="region convolution"):
            region_conv2d(conv, x, mask)


@pytest.mark.parametrize("make_block", [
    lambda: ResidualUnit(6, dilation=1),
    lambda: ResidualUnit(6, dilation=3),
    # torchvision's bottleneck with a projection (the paper preset's first unit of layer3/layer4)
    lambda: torchvision.models.resnet.Bottleneck(
        6, 2, downsample=nn.Sequential(nn.Conv2d(6, 8, 1, bias=False), nn.BatchNorm2d(8)), dilation=2),
], ids=["unit", "dilated-unit", "bottleneck-projection"])
@pytest.mark.parametrize("path", PATHS)
def test_region_residual_unit_equals_masked_dense(make_block, path):
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    block = randomise_bn(make_block(), gen)
    x = F.relu(torch.randn(2, 6, 10, 9, generator=gen))  # a unit's input is a ReLU output
    with torch.no_grad():
        for name, mask in masks(gen, (2, 10, 9)).items():
            out = region_residual(block, x, mask, PATHS[path])
            torch.testing.assert_close(out, masked_unit_reference(block, x, mask), **TOL, msg=f"mask {name}")
            if name == "full":  # a full region is the ordinary unit
                torch.testing.assert_close(out, block(x), **TOL)
            if name == "empty" and unit_parts(block)[1] is None:
                assert torch.equal(out, x)


def test_region_residual_gradients_equal_masked_dense():
    """Cascade training back-propagates through region units: same gradients as the dense form."""
    gen = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    block = randomise_bn(ResidualUnit(4, dilation=2), gen)
    x = F.relu(torch.randn(2, 4, 8, 8, generator=gen))
    mask = torch.rand(2, 8, 8, generator=gen) < 0.4
    weight = torch.randn(2, 4, 8, 8, generator=gen)
    grads = []
    for fn in (region_residual, masked_unit_reference):
        block.zero_grad()
        xi = x.clone().requires_grad_(True)
        (fn(block, xi, mask) * weight).sum().backward()
        grads.append([xi.grad] + [p.grad.clone() for p in block.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, **TOL)


def test_dense_dispatch_trains_as_the_region_path():
    """In training (BN statistics of the region's rows) a dense region computed with masks gives the
    region path's outputs, BN running statistics and gradients: a residual unit and a stage head."""
    gen = torch.Generator().manual_seed(7)
    x = F.relu(torch.randn(2, 4, 8, 8, generator=gen))
    mask = torch.rand(2, 8, 8, generator=gen) < 0.6
    weight = torch.randn(2, 4, 8, 8, generator=gen)
    results = []
    for dense_above in (math.inf, 0.0):
        torch.manual_seed(3)
        block = randomise_bn(ResidualUnit(4, dilation=2), torch.Generator().manual_seed(8)).train()
        xi = x.clone().requires_grad_(True)
        out = region_residual(block, xi, mask, dense_above)
        (out * weight).sum().backward()
        results.append([out.detach(), xi.grad] + [p.grad for p in block.parameters()] + list(block.buffers()))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, **TOL)
    heads = []
    for dense_above in (math.inf, 0.0):  # a stage head: logits at the region, gradients, BN statistics
        torch.manual_seed(4)
        head = randomise_bn(StageHead(4, 5, 3), torch.Generator().manual_seed(9)).train()
        region = Region(mask, 1, dense_above)
        xi = x.clone().requires_grad_(True)
        logits = masked_head(head, xi, region) if region.dense else region_head(head, to_flat(xi, 1), region)
        (logits * weight.permute(0, 2, 3, 1).reshape(-1, 4)[region.flat, :3]).sum().backward()
        heads.append([logits.detach(), xi.grad] + [p.grad for p in head.parameters()] + list(head.buffers()))
    for a, b in zip(*heads):
        torch.testing.assert_close(a, b, **TOL)


def small_cascade(seed=0, **kwargs):
    torch.manual_seed(seed)
    net = LayerCascade(small_trunk(widths=(8, 8, 12), units=(1, 1, 2), dilations=(1, 2, 3)), 4, head_width=6,
                       **kwargs)
    return randomise_bn(net, torch.Generator().manual_seed(seed))


def test_rho_one_takes_stage_three_everywhere():
    net = small_cascade()
    x = torch.randn(2, 3, 40, 48)
    with torch.no_grad():
        feat = net.backbone.stem(x)
        for stage in net.backbone.units:
            for unit in stage:
                feat = unit(feat)
        stage3 = F.interpolate(net.heads[2](feat), size=x.shape[-2:], mode="bilinear", align_corners=False)
        for force_region in (False, True):
            out, stats = net.predict(x, rho=1.0, force_region=force_region)
            torch.testing.assert_close(out, stage3, **TOL)
            assert stats["stage1_pct"] == stats["stage2_pct"] == 0 and stats["stage3_pct"] == 100


def test_cascade_inference_equals_masked_dense_cascade():
    """The cascade at a ρ that splits the pixels = the same cascade computed densely with masks."""
    net = small_cascade(seed=3)
    x = torch.randn(3, 3, 48, 40)
    with torch.no_grad():
        feat, logits = net.stage1(x)
        rho = float(logits.softmax(1).amax(1).median())  # about half the pixels leave at stage 1
        undecided = logits.softmax(1).amax(1) <= rho
        stage_of = torch.ones_like(undecided, dtype=torch.long)
        for i in (1, 2):
            m = undecided[:, None].float()
            for unit in net.backbone.units[i]:
                feat = masked_unit_reference(unit, feat, undecided)
            head = net.heads[i]
            h = F.relu(head.bn1(head.conv1(feat))) * m
            h = F.relu(head.bn2(head.conv2(h))) * m
            stage_logits = head.classifier(h)
            logits = torch.where(undecided[:, None], stage_logits, logits)  # the deciding stage's logits
            stage_of[undecided] = i + 1
            undecided = undecided & (stage_logits.softmax(1).amax(1) <= rho)
        expected = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        out, stats = net.predict(x, rho=rho)  # stage 2's region is about half: its convs run densely
        region_only, _ = net.predict(x, rho=rho, force_region=True)
        decided = net.decision_map(x, rho)
    torch.testing.assert_close(out, expected, **TOL)
    torch.testing.assert_close(region_only, expected, **TOL)
    assert torch.equal(decided, stage_of)
    shares = [100 * float((stage_of == s).float().mean()) for s in (1, 2, 3)]
    for s, share in enumerate(shares, start=1):
        assert stats[f"stage{s}_pct"] == pytest.approx(share)
    assert 0 < stats["stage1_pct"] < 100 and stats["stage1_pct"] + stats["stage2_pct"] <= 100
    assert sum(shares) == pytest.approx(100)
    assert all(stats[f"stage{s}_ms"] >= 0 for s in (1, 2, 3))


@pytest.mark.parametrize("rho", [0.2, 0.35, 0.5, 0.99])
def test_stage_shares_sum_to_100_and_fall_with_rho(rho):
    net = small_cascade(seed=4)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        _, stats = net.predict(x, rho=rho)
        _, higher = net.predict(x, rho=min(1.0, rho + 0.1))
        _, default = net.predict(x)  # options are per call: nothing of the last ρ stays behind
    assert default["stage3_pct"] == 100
    assert stats["stage1_pct"] + stats["stage2_pct"] <= 100
    assert stats["stage1_pct"] + stats["stage2_pct"] + stats["stage3_pct"] == pytest.approx(100)
    assert higher["stage1_pct"] <= stats["stage1_pct"]


def test_cascade_training_losses_cover_only_each_stages_region():
    net = small_cascade(seed=5, schedule="cascade", cascade_start=0.5).train()
    x = torch.randn(2, 3, 32, 32)
    labels = torch.randint(0, 4, (2, 32, 32))
    with torch.no_grad():
        _, logits1 = net.stage1(x)
    conf = logits1.softmax(1).amax(1)
    net.train_rho = float(conf.median())
    leaves = conf > net.train_rho  # decided at stage 1: outside stages 2 and 3
    assert 0 < leaves.float().mean() < 1
    state = {k: v.clone() for k, v in net.state_dict().items()}
    _, parts = net(x, labels, progress=0.6)  # cascade training
    relabelled = labels.clone()
    cells = relabelled[:, 4::8, 4::8]  # the labels the losses see (each 8×8 cell's centre)
    cells[leaves] = (cells[leaves] + 1) % 4
    relabelled[:, 4::8, 4::8] = cells
    net.load_state_dict(state)  # same BN statistics for the second pass
    _, parts2 = net(x, relabelled, progress=0.6)
    assert parts2["loss1"] != pytest.approx(parts["loss1"])
    assert parts2["loss2"] == pytest.approx(parts["loss2"]) and parts2["loss3"] == pytest.approx(parts["loss3"])
    assert parts["share2"] == pytest.approx(100 * (1 - leaves.float().mean().item()))


def test_model_cascade_freezes_earlier_stages():
    net = small_cascade(seed=6, schedule="model_cascade")
    x, labels = torch.randn(2, 3, 32, 32), torch.randint(0, 4, (2, 32, 32))
    with torch.no_grad():  # stage 1 as it runs once frozen (BN in eval mode)
        net.train_rho = float(net.stage1(x)[1].softmax(1).amax(1).median())
    net.train()
    for iteration, trained in ((0, 0), (40, 1), (90, 2)):
        net.zero_grad(set_to_none=True)
        loss, parts = net(x, labels, progress=iteration / 100)
        loss.backward()
        assert list(k for k in parts if k.startswith("loss")) == [f"loss{trained + 1}"]
        for i in range(3):
            has_grad = any(p.grad is not None for m in net.stage_modules(i) for p in m.parameters())
            assert has_grad == (i == trained), (iteration, i)


def test_build_model_layer_cascade_and_bad_options():
    net = build_model({"arch": "layer_cascade", "backbone": {"name": "small", "widths": [8, 8, 8], "units": [1, 1, 1]},
                       "schedule": "deep"}, 5)
    assert isinstance(net, LayerCascade) and net.pad == 4  # stage 3 at dilation 4
    with pytest.raises(ValueError, match="schedule"):
        small_cascade(schedule="greedy")
    x = torch.randn(1, 3, 16, 16)
    with pytest.raises(ValueError, match="rho"):
        net.predict(x, rho=0)
    with pytest.raises(ValueError, match="valid: force_region, rho"):
        net.predict(x, threshold=0.9)
    with pytest.raises(ValueError, match="rho"):
        net.decision_map(x, rho=1.5)
    with pytest.raises(ValueError, match="output stride 8"):
        build_model({"arch": "layer_cascade", "backbone": {"name": "resnet", "output_stride": 16}}, 5)
    with pytest.raises(ValueError, match="bool"):
        Region(torch.ones(2, 3), 1)


def test_resnet_trunk_region_path_matches_dense_at_rho_one():
    """Paper preset layout (torchvision ResNet-50 at stride 8 in three stages), forced region path."""
    torch.manual_seed(0)
    net = build_model({"arch": "layer_cascade", "backbone": {"name": "resnet", "depth": 50, "output_stride": 8},
                       "head_width": 16}, 3).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        dense = net(x)
        torch.testing.assert_close(net.predict(x, rho=1.0, force_region=True)[0], dense, atol=1e-4, rtol=1e-4)


def test_ratio_claim_test():
    values = {"slow": [10.0, 10.4, 9.8], "fast": [5.0, 5.2, 4.9]}
    verdict, text = Ratio("", "infer_ms", a="slow", b="fast", min_ratio=1.5).judge(values)
    assert verdict == Outcome.REPRODUCED and "2.00×" in text
    assert Ratio("", "infer_ms", a="slow", b="fast", min_ratio=2.5).judge(values)[0] == Outcome.CONTRADICTED
    assert Ratio("", "infer_ms", a="slow", b="fast").judge({"slow": [2.0], "fast": [1.0]})[0] == Outcome.INCONCLUSIVE


class DriftingClock:
    """A fake perf_counter on a machine that slows down as it works (each pass 2 % slower than the last)."""

    def __init__(self):
        self.now, self.passes, self.log = 0.0, 0, []

    def perf_counter(self):
        return self.now


class ClockedModel(nn.Module):
    """Two of these with the same cost are the same model: any difference timed is the machine's."""

    def __init__(self, clock, name, cost=1.0):
        super().__init__()
        self.clock, self.name, self.cost = clock, name, cost

    def eval_options(self, given):
        return dict(given)

    def predict(self, images, **opts):
        self.clock.now += self.cost * (1 + self.clock.passes / 50)
        self.clock.passes += 1
        self.clock.log.append(self.name)
        return images, {}


def test_interleaved_timing_spreads_a_drift_over_every_model(monkeypatch):
    """Timed one after another, the second of two equal models reads 30 % slower on a drifting machine;
    interleaved (each round one pass of every model, shuffled), the two agree within 3 %, every round
    holds each model once, and the rounds' order follows the order seed."""
    import engine.timing
    from engine.timing import time_inference
    clock = DriftingClock()
    monkeypatch.setattr(engine.timing, "time", clock)
    cfg, images = {"speed_repeats": 20, "speed_warmup": 3, "batch_size": 2}, torch.zeros(2, 3, 4, 4)
    a, b = ClockedModel(clock, "a"), ClockedModel(clock, "b")
    alone = [time_inference([(m, images, cfg)])[0]["infer_ms"] for m in (a, b)]
    assert alone[1] / alone[0] > 1.3
    clock.log.clear()
    both = time_inference([(a, images, cfg), (b, images, cfg)], order_seed=7)
    assert abs(both[1]["infer_ms"] / both[0]["infer_ms"] - 1) < 0.03
    assert clock.log[:6] == ["a"] * 3 + ["b"] * 3  # warm-up passes, untimed
    rounds = [clock.log[i:i + 2] for i in range(6, len(clock.log), 2)]
    assert len(rounds) == 20 and all(sorted(r) == ["a", "b"] for r in rounds)
    assert len({tuple(r) for r in rounds}) == 2  # shuffled, not always a first
    clock.log.clear()
    time_inference([(a, images, cfg), (b, images, cfg)], order_seed=7)
    assert [clock.log[i:i + 2] for i in range(6, len(clock.log), 2)] == rounds


def test_timing_runs_the_model_as_evaluated():
    """In eval mode (a model left in train mode would time batch-statistics BatchNorm, decide other pixels
    and update its running statistics); the cascade then reports each stage's time."""
    from engine.timing import time_inference
    torch.manual_seed(0)
    net = build_model({"arch": "layer_cascade", "backbone": {"name": "small", "widths": [8, 8, 8], "units": [1, 1, 1]},
                       "schedule": "deep", "head_width": 8}, 5)
    running = {k: v.clone() for k, v in net.state_dict().items()}
    assert net.training
    speed, = time_inference([(net, torch.randn(2, 3, 32, 32), {"speed_repeats": 2, "speed_warmup": 1, "rho": 0.9})])
    assert not net.training
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in running.items())
    assert {"infer_ms", "infer_fps_median", "stage1_ms", "stage2_ms", "stage3_ms"} <= set(speed)
    assert speed["speed_batch"] == 2


def test_region_conv_benchmark_writes_a_row_per_fraction(tmp_path):
    from benchmarks import region_conv
    path = tmp_path / "bench.csv"
    assert region_conv.main(["--size", "8", "--channels", "4", "--batch", "2", "--repeats", "1", "--warmup", "0",
                             "--csv", str(path)]) == 0
    table = pd.read_csv(path)
    assert table["active_fraction"].tolist() == pytest.approx([i / 10 for i in range(11)])
    times = ["dense_conv_ms", "region_conv_ms", "dispatched_conv_ms", "dense_unit_ms", "region_unit_ms",
             "dispatched_unit_ms"]
    assert (table[times] > 0).all().all()


@pytest.fixture(scope="module")
def lc_smoke_run(tmp_path_factory):
    """Both lc ablations in one smoke run (they share the DSN and LC runs)."""
    tmp = tmp_path_factory.mktemp("lc_smoke")
    out, rep = tmp / "results", tmp / "report"
    code = run_all.main(["--ablation", "lc_threshold", "--ablation", "lc_schemes", "--preset", "smoke",
                         "--out", str(out), "--report-dir", str(rep), "--no-progress", "--jobs", "1"])
    return code, out, rep


@pytest.mark.parametrize("name", ["lc_threshold", "lc_schemes"])
def test_lc_ablation_smoke_run(name, lc_smoke_run):
    code, out, rep = lc_smoke_run
    assert code == 0
    rows = pd.read_csv(out / f"{name}.csv")
    from ablations import load
    spec = load(name)
    assert sorted(rows["variant"]) == sorted(v["id"] for v in spec.variants)
    assert (rows["status"] == "ok").all()
    assert ((rows["stage1_pct"] + rows["stage2_pct"] + rows["stage3_pct"]).round(6) == 100).all()
    assert (rows["infer_ms"] > 0).all()
    # variants that differ only in their eval options (ρ) share one trained model
    assert rows["run_id"].nunique() == len({str(v["model"]) for v in spec.variants})
    report = (rep / "REPORT.md").read_text()
    assert f"(`{name}`)" in report
    if name == "lc_threshold":
        assert "### Speed (Table 3)" in report and "1.53×" in report
        assert os.path.exists(rep / "figures" / "lc_threshold_stages.png")


def test_lc_ablations_share_the_dsn_and_lc_runs(lc_smoke_run):
    _, out, _ = lc_smoke_run
    threshold, schemes = pd.read_csv(out / "lc_threshold.csv"), pd.read_csv(out / "lc_schemes.csv")
    run = lambda rows, variant: set(rows.loc[rows["variant"] == variant, "run_id"])
    assert run(threshold, "r1") == run(schemes, "dsn") == run(schemes, "dsn_cascade")
    assert run(threshold, "r0985") == run(schemes, "lc")


def test_region_path_runs_on_onednn_not_mkl_gemm(tmp_path):
    """MKL picks its GEMM kernels by CPU vendor and model, so a cascade multiplying on MKL would give
    other numbers on another machine of the same CPU capability; the dense models run on oneDNN.
    MKL_VERBOSE prints a line per MKL GEMM call: a cascade training step on a region must make none."""
    import subprocess
    import sys
    script = """
import torch
torch.set_num_threads(1)
from segmodels import build_model
torch.manual_seed(0)
m = build_model({"arch": "layer_cascade", "schedule": "cascade", "train_rho": 0.3, "cascade_start": 0.0,
                 "backbone": {"name": "small", "widths": [8, 16, 16], "convs": [1, 1, 1]}, "head_width": 8}, 5)
x, y = torch.randn(16, 3, 64, 64), torch.randint(0, 5, (16, 64, 64))
loss, parts = m(x, y, progress=0.9)
loss.backward()
assert 0 < parts["share2"] < 100, parts  # the region path ran
print("ok")
"""
    env = {**os.environ, "MKL_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", script], cwd=os.path.dirname(os.path.dirname(__file__)),
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ok" in out.stdout and "SGEMM" not in out.stdout + out.stderr

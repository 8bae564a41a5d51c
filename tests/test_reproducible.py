"""The same numbers on every CPU of one capability: the models of the presets (one training step and
one evaluation of each) send their 1×1 convolutions of small batches, once MKL's, to oneDNN (segmodels/base.py
OneDNNConv1x1); every MKL call left (DeepLab's fc6 by im2col and SGEMM, fc6_gemm) runs on MKL's COMPATIBLE
branch, so another MKL code path (MKL_ENABLE_INSTRUCTIONS=AVX2, as another CPU's MKL would take) gives the
same weights bit for bit. And the allocator setting (engine/allocator.py) moves no number, and is taken (the
page faults it spares: python -m benchmarks.allocator)."""
import os
import platform
import re
import subprocess
import sys

import pytest

# with --malloc-defaults, a script undoes engine/allocator.py: glibc's small thresholds, no top pad
from benchmarks.allocator import MALLOC_DEFAULTS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# every distinct network of every ablation at the smoke preset (batch 4: PyTorch would send every 1×1
# convolution of a batch under 16 to MKL), one SGD step and one evaluation, one thread
STEPS = r"""
import engine  # pins MKL (engine/reproducible.py) before any tensor is computed
import hashlib, json, os, sys
if "--unpinned" in sys.argv:  # the old path: MKL not yet called, so unsetting it now leaves MKL free
    del os.environ["MKL_CBWR"]
MALLOC_DEFAULTS
import torch
from ablations import load_all
from data import build_dataset
from engine.config import settings
from engine.plans import plan_runs
from engine.step import train_step
from engine.trainer import prepare, seed_everything
from segmodels import build_model
import segmodels.base
torch.set_num_threads(1)
channels_last = "--channels-last" in sys.argv  # the memory format the CPU presets train in
routed, backward = [], segmodels.base._GradientAs.backward
# counted, so that a test of the routing sees it taken; --nchw-upsampling-gradient: the old path, the
# gradient passes the upsampling as the loss gives it
segmodels.base._GradientAs.backward = staticmethod(lambda ctx, grad: routed.append(1) or (
    (grad, None) if "--nchw-upsampling-gradient" in sys.argv else backward(ctx, grad)))
models = {}
for spec in load_all():
    for plan in plan_runs(spec, settings(spec, "smoke")):
        models.setdefault(json.dumps(plan.model, sort_keys=True), plan)
digest = hashlib.sha1()
for plan in models.values():
    data = build_dataset(plan.data, "train")
    seed_everything(0)
    model, opt = prepare(build_model(plan.model, data.num_classes).train(), {**plan.train, "channels_last": channels_last}, "cpu")
    batch = [data[(i, i)] for i in range(4)]
    images, labels = torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    train_step(model, opt, images, labels, plan.train, "cpu", progress=0.75)
    with torch.no_grad():
        logits = model.eval().predict(images, **{k: v for k, v in plan.eval.items() if k == "rho"})[0]
    for tensor in [logits, *model.state_dict().values()]:
        digest.update(tensor.detach().contiguous().numpy().tobytes())
print("routed", len(routed))
print(len(models), digest.hexdigest())
""".replace("MALLOC_DEFAULTS", MALLOC_DEFAULTS)


def run_script(script, *flags, **env):
    """A script's stdout, run in a fresh process (MKL and oneDNN read their settings once) with env added."""
    out = subprocess.run([sys.executable, "-c", script, *flags], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, **env}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def run_steps(*flags, **env):
    return run_script(STEPS, *flags, **env)


def test_every_mkl_call_left_in_the_presets_steps_is_pinned_and_another_cpus_path_agrees():
    for layout in ((), ("--channels-last",)):  # the CPU presets train channels_last
        verbose = run_steps(*layout, MKL_VERBOSE="1")
        calls = re.findall(r"^MKL_VERBOSE (?!oneMKL|Intel)(\S+)\(.*? CNR:(\S+)", verbose, re.M)
        assert {branch for _, branch in calls} <= {"COMPATIBLE"}, sorted(set(calls))
        # the 1×1 convolutions are oneDNN's: the GEMMs left are fc6_gemm's (before OneDNNConv1x1: 1,860 SGEMM calls)
        assert sum("GEMM" in name for name, _ in calls) < 200, len(calls)
    n_models, pinned = verbose.strip().splitlines()[-1].split()
    assert int(n_models) >= 25  # every distinct network of the ten ablations
    # another CPU's MKL path (AVX2) agrees: what MKL still computes is on its pinned branch
    assert run_steps("--channels-last", MKL_ENABLE_INSTRUCTIONS="AVX2").split()[-1] == pinned


def test_a_1x1_convolution_routed_to_onednn_is_the_same_function():
    """OneDNNConv1x1 (dilation 2 where PyTorch would take its MKL fallback) computes the 1×1
    convolution: equal to the plain one within float tolerance, at the batches of either path, with
    the same weights and state dict."""
    import torch

    from segmodels.base import OneDNNConv1x1, onednn_1x1
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for batch, stride in ((1, 1), (4, 1), (4, 2), (16, 1)):
            plain = torch.nn.Conv2d(24, 7, 1, stride=stride)
            routed = onednn_1x1(torch.nn.Sequential(torch.nn.Conv2d(24, 7, 1, stride=stride)))[0]
            routed.load_state_dict(plain.state_dict())
            assert type(routed) is OneDNNConv1x1 and routed.state_dict().keys() == plain.state_dict().keys()
            x = torch.randn(batch, 24, 12, 12, requires_grad=True)
            y_plain, y_routed = plain(x), routed(x)
            torch.testing.assert_close(y_routed, y_plain, rtol=1e-5, atol=1e-5)
            g_plain, = torch.autograd.grad(y_plain.square().sum(), plain.weight)
            g_routed, = torch.autograd.grad(y_routed.square().sum(), routed.weight)
            torch.testing.assert_close(g_routed, g_plain, rtol=1e-4, atol=1e-4)
        # only plain 1×1 convolutions change class: a 3×3 or a dilated one is left as it is
        other = onednn_1x1(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3), torch.nn.Conv2d(3, 3, 1, dilation=2)))
        assert all(type(m) is torch.nn.Conv2d for m in other)
    finally:
        torch.set_num_threads(threads)


def test_the_upsampling_gradient_taken_channels_last_moves_no_number():
    """segmodels/base.py upsample_scores: the upsampling's channels_last backward kernel agrees with its
    NCHW one bit for bit, on every network of the presets, trained channels_last as they are."""
    old, new = run_steps("--channels-last", "--nchw-upsampling-gradient"), run_steps("--channels-last")
    assert old.split()[-1] == new.split()[-1]
    assert int(re.search(r"^routed (\d+)$", new, re.M)[1]) >= 20  # GCN's and PSPNet's networks took the routing


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_the_allocator_setting_is_taken_and_moves_no_number():
    """How many page faults it spares depends on the machine: python -m benchmarks.allocator measures it."""
    taken = subprocess.run([sys.executable, "-c", "from engine.allocator import keep_freed_memory as k; print(k())"],
                           cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    assert taken == "True"
    assert run_steps("--malloc-defaults").split()[-1] == run_steps().split()[-1]


# DeepLab-7×7's fc6 at the CPU presets (32 → 256 channels, 7×7, on a 16×16 map, batch 8): one training
# step's forward and backward, with fc6_gemm (im2col and MKL's SGEMM) or by oneDNN's convolution
FC6 = r"""
import engine  # pins MKL
import hashlib, sys, torch
from segmodels.deeplab import FOVConv
torch.set_num_threads(1)
torch.manual_seed(0)
fc6 = FOVConv(32, 256, 7, 1, gemm="--gemm" in sys.argv)
x = torch.randn(8, 32, 16, 16).contiguous(memory_format=torch.channels_last).requires_grad_()
fc6(x).square().sum().backward()
with torch.no_grad():
    out = fc6(torch.randn(8, 32, 16, 16))  # evaluation's contiguous input
digest = hashlib.sha1()
for tensor in (out, x.grad, fc6.conv.weight.grad, fc6.conv.bias.grad):
    digest.update(tensor.contiguous().numpy().tobytes())
print(digest.hexdigest())
"""


def run_fc6(*flags, **env):
    return run_script(FC6, *flags, **env)


def test_deeplabs_fc6_by_gemm_leaves_onednns_cpu_dependent_path():
    """fc6_gemm: every product of fc6's step and evaluation is MKL's, on its pinned branch, none oneDNN's; so
    another CPU's oneDNN path (ONEDNN_MAX_CPU_ISA=AVX2) or MKL path (MKL_ENABLE_INSTRUCTIONS=AVX2) gives the
    same bytes. oneDNN's own convolution does follow its path, where this CPU has AVX-512."""
    verbose = run_fc6("--gemm", MKL_VERBOSE="1", ONEDNN_VERBOSE="1")
    assert not re.search(r"^onednn_verbose.*exec.*convolution", verbose, re.M)
    assert set(re.findall(r"^MKL_VERBOSE SGEMM.*? CNR:(\S+)", verbose, re.M)) == {"COMPATIBLE"}
    pinned = verbose.split()[-1]
    assert run_fc6("--gemm", ONEDNN_MAX_CPU_ISA="AVX2").split()[-1] == pinned
    assert run_fc6("--gemm", MKL_ENABLE_INSTRUCTIONS="AVX2").split()[-1] == pinned
    onednn = run_fc6(ONEDNN_VERBOSE="1")
    if re.search(r"^onednn_verbose.*exec.*convolution.*avx512", onednn, re.M):
        assert run_fc6(ONEDNN_MAX_CPU_ISA="AVX2").split()[-1] != onednn.split()[-1]

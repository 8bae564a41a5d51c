"""PSPNet Table 3: backbone depth (ResNet-50, 101, 152, 269, each with the full module B1236 + AVE + DR),
tested at a single scale and at several (the image resized by each factor and mirrored, the softmax
averaged: model evaluation options, so each depth's single- and multi-scale rows are one trained model
evaluated twice, paired by construction of the experiment, not of the numbers).

At the CPU presets the depth ladder is psp_pool's plain trunk with its last two stages deepened the way
ResNet's grow (res-4: 6, 23, 36, 48 blocks; res-5: 3, 3, 3, 8): the shallowest is psp_pool's own trunk,
so its single-scale row is psp_pool's full-module run, trained once.

Run alone: python -m ablations psp_depth [--preset quick]
"""
from ablations import psp_common, psp_pool
from engine.claims import Assertion, Greater, Increasing, Mechanism
from probes.mechanisms import capacity_below_ceiling, scale

NAME = "psp_depth"
ORDER = 100  # place in the report: the papers in turn, each paper's tables in its order
TITLE = "PSPNet Table 3 — backbone depth, single- and multi-scale testing"
PAPER = psp_common.PAPER
SOURCE = "Table 3 (ADE20K val, full module B1236 + AVE + DR), as copied in shared/PAPERS.md §2"
METRICS = ["mIoU", "pixel_acc"]
REPORT_COLUMNS = ["context_acc", "params", "infer_fps"]
X_LABEL = "backbone depth (the paper's ResNet; CPU: the trunk of the same rank on the ladder)"

MODEL = {**psp_pool.MODEL, **{v["id"]: v for v in psp_pool.VARIANTS}["b1236_ave_dr"]["model"]}  # the full module
# ResNet depth → the CPU trunk's 3×3 convs per stage (psp_common.SMALL_OS8: [1, 2, 2, 1])
LADDER = {50: [1, 2, 2, 1], 101: [1, 2, 4, 1], 152: [1, 2, 6, 1], 269: [1, 2, 8, 2]}
# the paper's multi-scale testing (the authors' ADE20K test settings), with mirroring
# conv weights of the released ResNet trunks (up to conv5_3), counted from hszhao/PSPNet's evaluation/prototxt
# (pspnet50_ADE20K_473, pspnet101_VOC2012_473): the deep 3×3 stem's (segmodels/backbones.py deep_stem)
RELEASED_TRUNK = {50: 23_578_304, 101: 42_518_208}
MULTI_SCALE = {"scales": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75], "flip": True}


def depth_variant(depth, multi_scale):
    cpu = {"model": {"backbone": {"convs": LADDER[depth]}}}
    return {"id": f"r{depth}_{'ms' if multi_scale else 'ss'}",
            "label": f"ResNet{depth} {'MS' if multi_scale else 'SS'} (CPU: convs {LADDER[depth]})", "x": depth,
            "series": "multi-scale" if multi_scale else "single scale", **({"eval": MULTI_SCALE} if multi_scale else {}),
            "preset_overrides": {"smoke": cpu, "quick": cpu, "full": cpu,
                                 "paper": {"model": {"backbone": {"depth": depth, "deep_stem": depth in RELEASED_TRUNK}}}}}


VARIANTS = [depth_variant(d, ms) for ms in (False, True) for d in LADDER]

PUBLISHED = {"r50_ss": {"mIoU": 41.68, "pixel_acc": 80.04}, "r101_ss": {"mIoU": 41.96, "pixel_acc": 80.64},
             "r152_ss": {"mIoU": 42.62, "pixel_acc": 80.80}, "r269_ss": {"mIoU": 43.81, "pixel_acc": 80.88},
             "r50_ms": {"mIoU": 42.78, "pixel_acc": 80.76}, "r101_ms": {"mIoU": 43.29, "pixel_acc": 81.39},
             "r152_ms": {"mIoU": 43.51, "pixel_acc": 81.38}, "r269_ms": {"mIoU": 44.94, "pixel_acc": 81.69}}


def depth_trend(kind):
    order = [f"r{d}_{kind}" for d in LADDER]
    return Increasing(f"deeper is better, {'multi-scale' if kind == 'ms' else 'single scale'} (paper: "
                      + ", ".join(f"{PUBLISHED[v]['mIoU']:g}" for v in order) + "; the trend, no step significantly "
                      "down)", "mIoU", order=order, x=list(LADDER))


CLAIMS = [depth_trend("ss"), depth_trend("ms")] + [
    Greater(f"multi-scale testing improves ResNet{d} (paper: {PUBLISHED[f'r{d}_ms']['mIoU']:g} vs "
            f"{PUBLISHED[f'r{d}_ss']['mIoU']:g})", "mIoU", a=f"r{d}_ms", b=f"r{d}_ss") for d in LADDER]

WHERE = "PSPNet §5.2, Table 3"


def capacity(variant):
    return Mechanism("a deeper trunk adds capacity the shallower model lacks on its training images",
                     capacity_below_ceiling, {"variant": variant})


def scales(variants):
    return Mechanism("objects at many scales, one test scale handling them unequally; random-resize training (0.5–2)",
                     scale, {"variants": variants})


ASSERTIONS = [Assertion("a deeper backbone is better, single- and multi-scale", WHERE, CLAIMS[0:2],
                        mechanisms=[capacity(f"r{min(LADDER)}_ss")]),
              Assertion("multi-scale testing improves every depth", WHERE, CLAIMS[2:6],
                        mechanisms=[scales([f"r{d}_ss" for d in LADDER])])]

# report sections beyond the standard ones: each rung's stand-in as a classifier (report/standins.py)
REPORT_SECTIONS = {"standins": {"variants": [f"r{d}_ss" for d in LADDER]}}

# the run budget of the sequential design (gcn_k's MAX_RUNS says how they are sized): ≈ 55-90 s a run,
# the ResNet50 rung's runs psp_pool's
MAX_RUNS = {"quick": 20}
PRESETS = psp_common.PRESETS  # identical, or the run shared with psp_pool would get a new run id


def exact_facts():
    """ResNet-269's depth and the trunks' conv weights at the paper's size, from their layer shapes."""
    import torch

    from segmodels.backbones import RESNET_BLOCKS, ResNetBackbone, resnet_weights
    from segmodels.base import count_weights
    facts = []
    for depth, blocks in RESNET_BLOCKS.items():
        with torch.device("meta"):  # shapes only
            net = ResNetBackbone(depth, 8)
            if depth in RELEASED_TRUNK:  # the paper preset's: the released prototxt's deep stem
                deep = ResNetBackbone(depth, 8, deep_stem=True)
                facts.append({"fact": f"ResNet-{depth} with the released deep stem: trunk #weights (no fc)",
                              "computed": count_weights(deep), "formula": "9·(3·64 + 64·64 + 64·128) + Σ bottlenecks "
                              "(layer1 from 128 channels)", "expected": resnet_weights(blocks, deep_stem=True),
                              "published": RELEASED_TRUNK[depth], "tolerance": 0})
        if depth == 269:
            layers = sum(1 for name, m in net.named_modules()
                         if isinstance(m, torch.nn.Conv2d) and "downsample" not in name) + 1  # + the fc
            facts.append({"fact": "ResNet-269: weight layers on the main path (+ fc)", "computed": layers,
                          "formula": "1 + 3 · (3 + 30 + 48 + 8) + 1", "expected": 2 + 3 * sum(blocks), "published": 269})
        facts.append({"fact": f"ResNet-{depth} trunk #weights (no fc)", "computed": count_weights(net),
                      "formula": "7²·3·64 + Σ bottlenecks (c·m + 9m² + m·c' [+ c·c'])", "expected": resnet_weights(blocks),
                      "published": None, "tolerance": 0})
    return facts

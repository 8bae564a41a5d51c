"""PSPNet Table 1: pooling type (max/avg), pyramid bins (1 or 1,2,3,6) and dimension reduction.

Every variant has the auxiliary loss (α = 0.4), as the paper's Table 1 baseline already does. The
control is the full module's parameter-matched twin without pooling (each level a 1×1 conv at
full resolution): what the module's extra parameters alone bring, without any global context.

Run alone: python -m ablations psp_pool [--preset quick]
"""
from ablations import psp_common
from engine.claims import Assertion, Greater, Mechanism, Rule
from probes.mechanisms import context_beyond_reach, global_context, projection_keeps_context, subregion_context

NAME = "psp_pool"
ORDER = 80  # place in the report: the papers in turn, each paper's tables in its order
TITLE = "PSPNet Table 1 — pyramid pooling: pooling type, bins, dimension reduction"
PAPER = psp_common.PAPER
SOURCE = "Table 1 (ADE20K val, single scale, ResNet-50), as copied in shared/PAPERS.md §2"
METRICS = ["mIoU", "pixel_acc"]
REPORT_COLUMNS = ["context_acc", "shape_acc", "head_params", "train_img_per_s"]
X_LABEL = "variant"

MODEL = {"arch": "pspnet", "aux_weight": 0.4}
VARIANTS = [
    {"id": "baseline", "label": "ResNet50 baseline (dilated FCN)", "model": {"bins": []}},
    # B1 as the authors' module (semseg's PPM) builds it: its one level projected to cin / 1 = cin channels
    # (1×1 conv + BN + ReLU; at paper width 2048 → 2048), so "no DR" and "DR" are one module for B1
    {"id": "b1_max", "label": "+ B1 + MAX", "model": {"bins": [1], "pool": "max", "dr": False, "project": True}},
    {"id": "b1_ave", "label": "+ B1 + AVE", "model": {"bins": [1], "pool": "avg", "dr": False, "project": True}},
    {"id": "b1236_max", "label": "+ B1236 + MAX", "model": {"bins": [1, 2, 3, 6], "pool": "max", "dr": False}},
    {"id": "b1236_ave", "label": "+ B1236 + AVE", "model": {"bins": [1, 2, 3, 6], "pool": "avg", "dr": False}},
    {"id": "b1236_max_dr", "label": "+ B1236 + MAX + DR", "model": {"bins": [1, 2, 3, 6], "pool": "max", "dr": True}},
    {"id": "b1236_ave_dr", "label": "+ B1236 + AVE + DR", "model": {"bins": [1, 2, 3, 6], "pool": "avg", "dr": True}},
    # "without DR", read the other way: each level still projected (1×1 conv + BN + ReLU, as the authors'
    # code always does), to the full width instead of 1/4 of it (not in the paper's table)
    {"id": "b1236_max_proj", "label": "+ B1236 + MAX, projected to full width",
     "model": {"bins": [1, 2, 3, 6], "pool": "max", "dr": False, "project": True}},
    {"id": "b1236_ave_proj", "label": "+ B1236 + AVE, projected to full width",
     "model": {"bins": [1, 2, 3, 6], "pool": "avg", "dr": False, "project": True}},
    {"id": "control", "label": "control: B1236 + DR without pooling (not in the paper)",
     "model": {"bins": [1, 2, 3, 6], "pool": "none", "dr": True}},
]
# report/psp.py context_section: why a local receptive field cannot solve the context task, from the
# upward "reach" of these heads' networks and the dataset's "context_bands" (analyses, from the config)
CONTEXT_HEADS = ("baseline", "control", "b1_ave", "b1236_ave_dr")
VARIANTS = [{**v, "analyses": ["reach", "context_bands"]} if v["id"] in CONTEXT_HEADS else v for v in VARIANTS]
# "DR helps": what the reduced projection keeps of the context (probes.mechanisms projection_keeps_context)
DR_PROBED = ("b1236_ave_dr", "b1236_max_dr")
VARIANTS = [{**v, "analyses": v.get("analyses", []) + ["projection_context"]} if v["id"] in DR_PROBED else v
            for v in VARIANTS]

PUBLISHED = {
    "baseline": {"mIoU": 37.23, "pixel_acc": 78.01},
    "b1_max": {"mIoU": 39.94, "pixel_acc": 79.46},
    "b1_ave": {"mIoU": 40.07, "pixel_acc": 79.52},
    "b1236_max": {"mIoU": 40.18, "pixel_acc": 79.45},
    "b1236_ave": {"mIoU": 41.07, "pixel_acc": 79.97},
    "b1236_max_dr": {"mIoU": 40.87, "pixel_acc": 79.61},
    "b1236_ave_dr": {"mIoU": 41.68, "pixel_acc": 80.04},
}

CLAIMS = [
    Greater("AVE beats MAX: B1", "mIoU", a="b1_ave", b="b1_max"),
    Greater("AVE beats MAX: B1236", "mIoU", a="b1236_ave", b="b1236_max"),
    Greater("AVE beats MAX: B1236 + DR", "mIoU", a="b1236_ave_dr", b="b1236_max_dr"),
    Greater("the 4-level pyramid beats global pooling alone (AVE)", "mIoU", a="b1236_ave", b="b1_ave"),
    Greater("the 4-level pyramid beats global pooling alone (MAX)", "mIoU", a="b1236_max", b="b1_max"),
    Greater("DR helps (AVE), \"without DR\" read as the raw pooled maps", "mIoU", a="b1236_ave_dr", b="b1236_ave"),
    Greater("DR helps (MAX), \"without DR\" read as the raw pooled maps", "mIoU", a="b1236_max_dr", b="b1236_max"),
    Greater("DR helps (AVE), \"without DR\" read as each level projected to full width", "mIoU",
            a="b1236_ave_dr", b="b1236_ave_proj"),
    Greater("DR helps (MAX), \"without DR\" read as each level projected to full width", "mIoU",
            a="b1236_max_dr", b="b1236_max_proj"),
    Greater("the full module (B1236 + AVE + DR) beats the baseline (paper: +4.45 mIoU)", "mIoU", a="b1236_ave_dr",
            b="baseline"),
    Greater("(not in the paper) the gain comes from pooled context, not from the module's parameters: "
            "the full module beats its parameter-matched control", "mIoU", a="b1236_ave_dr", b="control"),
]
# §5.2: the full module "improves over global average pooling" (B1 + AVE) by 1.61 mIoU and 0.52 pixel accuracy
CLAIMS += [Greater("the full module (B1236 + AVE + DR) beats global average pooling (B1 + AVE), mIoU (paper: +1.61)",
                   "mIoU", a="b1236_ave_dr", b="b1_ave"),
           Greater("the full module (B1236 + AVE + DR) beats global average pooling (B1 + AVE), pixel accuracy "
                   "(paper: +0.52)", "pixel_acc", a="b1236_ave_dr", b="b1_ave")]

WHERE = "PSPNet §5.2, Table 1"
GLOBAL = [Mechanism("global context, pooled over the image, tells what a local field cannot", global_context),
          Mechanism("context beyond a local head's reach", context_beyond_reach, {"variant": "baseline"})]
SUBREGION = [Mechanism("sub-region context: the 2×2–6×6 bins tell what the global bin mixes", subregion_context)]
ASSERTIONS = [
    Assertion("average pooling beats max pooling in every setting", WHERE, CLAIMS[0:3], mechanisms=GLOBAL),
    Assertion("the 4-level pyramid beats global pooling alone", WHERE, CLAIMS[3:5], mechanisms=SUBREGION),
    Assertion("dimension reduction (DR) helps (both readings of \"without DR\", AVE and MAX)", WHERE, CLAIMS[5:9],
              mechanisms=[Mechanism("the reduced projection keeps the context (read out of a trained model's levels "
                                    "on held-out training images)",
                                    projection_keeps_context,
                                    {"variants": list(DR_PROBED)})]),
    Assertion(CLAIMS[9].text, WHERE, [CLAIMS[9]], rule=Rule.ONE, mechanisms=GLOBAL),
    Assertion("the full module improves on global average pooling by 1.61 mIoU / 0.52 pixel accuracy", WHERE,
              CLAIMS[11:13], mechanisms=SUBREGION),
    Assertion("the gain comes from pooled context, not from the module's parameters", WHERE, [CLAIMS[10]],
              rule=Rule.ONE, beyond_paper=True, mechanisms=GLOBAL),
]

# the run budget of the sequential design (gcn_k's MAX_RUNS says how they are sized): ≈ 55 s a run; the
# first look alone (10 variants × 3 seeds) since the two projected variants joined
MAX_RUNS = {"quick": 30}
PRESETS = psp_common.PRESETS
# report sections beyond the standard ones: {section name (report/build.py): its arguments}
REPORT_SECTIONS = {"psp_context": {"heads": list(CONTEXT_HEADS)}}


def exact_facts():
    """Channel arithmetic of the module at the paper's width (ResNet-50 res-5: 2048 channels)."""
    from segmodels.base import count_weights
    from segmodels.pspnet import PyramidPooling
    dr = PyramidPooling(2048, (1, 2, 3, 6), "avg", dr=True)
    no_dr = PyramidPooling(2048, (1, 2, 3, 6), "avg", dr=False)
    projected = PyramidPooling(2048, (1, 2, 3, 6), "avg", dr=False, project=True)
    level = dr.levels[0][1].out_channels
    return [
        {"fact": "DR: channels per pyramid level (2048 in, 4 levels)", "computed": level,
         "formula": "2048 / 4", "expected": 2048 // 4, "published": 512},
        {"fact": "channels into the 3×3 conv, with DR", "computed": dr.out_channels,
         "formula": "2048 + 4 · 512", "expected": 4096, "published": None},
        {"fact": "channels into the 3×3 conv, without DR", "computed": no_dr.out_channels,
         "formula": "2048 + 4 · 2048", "expected": 10240, "published": None},
        {"fact": "weights of the level projections, with DR", "computed": count_weights(dr),
         "formula": "4 · 2048 · 512 (1×1 convs; BN not counted)", "expected": 4 * 2048 * 512, "published": None},
        {"fact": "weights of the level projections, projected to full width", "computed": count_weights(projected),
         "formula": "4 · 2048 · 2048", "expected": 4 * 2048 * 2048, "published": None},
    ]

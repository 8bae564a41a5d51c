"""GCN Table 1: kernel size k of a single GCN head on the backbone's last stage.

Run alone: python -m ablations gcn_k [--preset quick]
"""
from engine.claims import Assertion, Greater, Increasing

NAME = "gcn_k"
TITLE = "GCN Table 1 — kernel size k"
PAPER = ("Peng, Zhang, Yu, Luo, Sun. Large Kernel Matters: Improve Semantic Segmentation by Global "
         "Convolutional Network. CVPR 2017, arXiv 1703.02719")
SOURCE = "Table 1 (mIoU %, PASCAL VOC 2012 val), as copied in shared/PAPERS.md §1"
METRICS = ["mIoU"]
REPORT_COLUMNS = ["pixel_acc", "boundary_acc", "internal_acc", "head_params", "train_img_per_s"]
X_LABEL = "kernel size k (1 = the 1×1 baseline)"

MODEL = {"arch": "single_head"}
KS = (3, 5, 7, 9, 11, 13, 15)
# the paper's Fig. 3 argues with the valid receptive field: it is measured on these trained heads
# (analysis "erf", computed when each run finishes; not part of the run id)
ERF_VARIANTS = ("base", "k3", f"k{KS[-1]}")
VARIANTS = [{"id": "base", "label": "base (1×1 conv)", "x": 1, "model": {"head": "conv1x1"}, "analyses": ["erf"]}] + [
    {"id": f"k{k}", "label": f"GCN k={k}", "x": k, "model": {"head": "gcn", "k": k},
     "analyses": ["erf"] if f"k{k}" in ERF_VARIANTS else []} for k in KS]

PUBLISHED = {"base": {"mIoU": 69.0}, "k3": {"mIoU": 70.1}, "k5": {"mIoU": 71.1}, "k7": {"mIoU": 72.8},
             "k9": {"mIoU": 73.4}, "k11": {"mIoU": 73.7}, "k13": {"mIoU": 74.0}, "k15": {"mIoU": 74.5}}

# (equivalence bands: the suite's, engine/spec.py DEFAULT_BANDS)
CLAIMS = [
    # the paper's Table 1 rises at every step; with steps of 0.3-1.7 mIoU what a few seeds can test is
    # the trend (Page's test, each seed a block) with no significant step down, as this claim is worded
    Increasing("mIoU rises with the kernel size k (1×1 base, then k = 3 … 15): the trend, no step "
               "significantly down (the paper's table rises at every step)", "mIoU",
               order=[v["id"] for v in VARIANTS], x=[v["x"] for v in VARIANTS]),
    Greater("GCN k = 15 (kernel ≈ the feature map) beats the 1×1 baseline (paper: +5.5 mIoU)", "mIoU",
            a="k15", b="base"),
]

WHERE = "GCN §4.1, Table 1"
ASSERTIONS = [Assertion("mIoU rises with the kernel size k; k = 15 (about the feature map) is +5.5 over the 1×1 base",
                        WHERE, CLAIMS)]

# report sections beyond the standard ones: {section name (report/build.py): its arguments}
REPORT_SECTIONS = {"erf": {"variants": list(ERF_VARIANTS)}}

# The run budget of the sequential design at each preset (engine/design.py next_look): the most
# distinct training runs this table may plan, lr selection and shared runs included. Quick: sized for
# the time budget on 2 cores (≤ 15 min an ablation, 90 for the suite) at ≈ 27 s a GCN run, two at
# a time; a run shared with an ablation run earlier costs nothing but still counts.
MAX_RUNS = {"quick": 30}

PRESETS = {
    # batch 8 instead of the quick preset's 16: half the compute per run, for the suite's time budget
    # (see DEVIATIONS); shared by every GCN table, so their shared runs keep one run id
    "quick": {"train": {"batch_size": 8}},
    # the paper: ResNet-152 (ImageNet), head on res-5 (output stride 32), every image padded to
    # 512×512 so res-5 is 16×16; SGD batch 1, momentum 0.99, wd 5e-4; flip only. BatchNorm frozen: the
    # paper does not say, and statistics of batch 1 are no statistics; the practice of the time
    # (DeepLab v2's released code) froze BN's statistics and affine parameters
    "paper": {"data": {"name": "voc", "crop_size": 512, "scale": None, "flip": True},
              "model": {"backbone": {"name": "resnet", "depth": 152, "output_stride": 32, "weights": "imagenet"},
                        "freeze_bn": True}},
}

DEVIATIONS = {
    "synthetic": [
        "Embedded generated scenes (5 classes: background + 4 shapes, 128 px) instead of VOC 2012 "
        "(21 classes, 512 px): absolute mIoU is not comparable with the paper; the direction is.",
        "A 5-layer CNN (output stride 8, receptive field 39 px), pretrained on formula-driven fractal images "
        "(weights/, `python -m engine.pretrain`), instead of ImageNet ResNet-152 at stride 32; its 16×16 last map matches the paper's res-5 size, so k = 15 spans the map as in the paper.",
        "SGD momentum 0.9, batch 8 (quick preset; full: 32), poly LR from 0.001, ×10 on the head "
        "(paper: batch 1, momentum 0.99; lr not stated).",
        "Fine-tuned from the pretrained stand-in (backbone lr 0.001, head ×10: the rates of the issue's pilot): "
        + "probes/pretraining.py (held-out mIoU: trained on the quick preset's training split less 300 images, scored on those 300, never the validation split; 4 seeds; same iterations, so the same wall time per run; chosen by seed sd and by mean held-out mIoU over the two variants, before any verdict at the new settings): "
        "scratch (lr 0.05): k = 15 76.60 ± 0.87, base 49.86 ± 2.29 (difference +26.74 ± 2.13, pair r 0.36); "
        "stand-in: 78.02 ± 0.81 and 46.29 ± 0.84 (+31.72 ± 1.01, r 0.24). Lr 0.004 was not probed for this "
        "backbone (time): 0.001 kept, the pilot's.",
        "The quick preset trains every GCN table's runs at batch 8 × 800 iterations (the other tables: "
        "batch 16) to fit the suite's time budget (90 min on 2 cores, ≤ 15 per ablation). Chosen by cost and by "
        "whether the kernel-size mechanism still shows, before any claim was judged at it: two seeds of base, "
        "GCN k = 3, 5, 7 gave mIoU 49.2, 51.8, 60.0, 74.3 at batch 8 × 800 (≈ 27 s a run), 41.9, 47.9, 58.2, "
        "61.1 at batch 16 × 400 (≈ 25 s) and 56.6, 65.6, 79.3, 82.3 at batch 16 × 800 (≈ 48 s): the same "
        "order of k at half the compute, less trained; batch 8 × 800 is the better of the two halvings.",
        "Half the iterations (400) was probed for the suite's time and not taken. Rule, fixed before the probe "
        "was read: every GCN table at 400 only if, on both GCN contrasts of probes/pretraining.py (4 seeds, "
        "held-out images, the stand-ins and rates above), every seed's difference keeps the full schedule's sign "
        "and each variant's seed sd stays ≤ 1.0 (or ≤ its full-schedule sd). At 800 / 400: gcn_k k = 15 78.02 ± "
        "0.81 / 71.54 ± 0.44, base 46.29 ± 0.84 / 43.55 ± 0.42 (passes); gcn_backbone ResNet-GCN + BR 83.06 ± "
        "0.89 / 78.27 ± 0.84, ResNet + BR 82.51 ± 0.26 / 74.57 ± 1.42 (every seed's difference positive, but "
        "the ResNet's sd above 1): 800 kept.",
        "A second probe, for the small-backbone tables alone (rule fixed before it was run): gcn_k, gcn_vs_conv, "
        "gcn_vs_stack and gcn_boundary share the small CNN and their runs, while gcn_backbone, the failing "
        "contrast above, has a backbone and runs of its own; these four tables go to 400 iterations (gcn_backbone "
        "stays at 800) only if, by the same rule (each seed's difference at 400 has the sign of the mean difference "
        "at 800; each variant's seed sd ≤ 1.0 or ≤ its sd at 800), every one of their contrasts in "
        "probes/pretraining.py passes: gcn_k k = 15 vs base (passed above), gcn_vs_conv GCN k = 7 vs trivial k = 7, "
        "gcn_vs_stack GCN k = 7 vs the 3×3 stack k = 7, gcn_boundary GCN k = 15 + BR vs GCN k = 15. At 800 / 400: "
        "GCN k = 7 68.61 ± 0.54 / 61.76 ± 0.48, trivial k = 7 76.03 ± 3.30 / 68.17 ± 3.53 (every seed's "
        "difference negative, as at 800, but the trivial conv's sd above 1 and above its sd at 800: fails); 3×3 "
        "stack k = 7 67.68 ± 0.55 / 61.09 ± 1.04 (GCN − stack +0.93 ± 0.67 at 800, one seed −0.09 at 400: "
        "fails); GCN k = 15 + BR 81.25 ± 0.52 / 72.52 ± 0.83 against GCN k = 15 78.02 ± 0.81 / 71.54 ± 0.44 "
        "(passes). 800 kept for every GCN table.",
        "A third probe, three quarters of the schedule (rule fixed before it was run, the same as above): the four "
        "small-backbone tables at 600 iterations only if each of their four contrasts passes at 600 against 800. At "
        "800 / 600: k = 15 78.02 ± 0.81 / 75.69 ± 0.52, base 46.29 ± 0.84 / 45.25 ± 0.51 (passes); GCN k = 7 68.61 ± "
        "0.54 / 65.53 ± 0.38, trivial k = 7 76.03 ± 3.30 / 73.97 ± 3.83 (fails: sd above 1 and above its sd at 800); "
        "3×3 stack k = 7 67.68 ± 0.55 / 64.89 ± 0.59 (fails: GCN − stack −0.26 in one seed); GCN k = 15 + BR 81.25 ± "
        "0.52 / 78.21 ± 0.20 (passes). 800 kept.",
        "Boundary band scaled with the image: 7 px at 512 px → 1.75 px at 128 px.",
    ],
    "voc": [
        "The paper states neither learning rate nor iteration count: the paper preset uses lr 1e-3 "
        "(×10 on the head), poly decay, 30K iterations.",
        "BatchNorm frozen (statistics and affine parameters, model option freeze_bn): the paper does not say; "
        "at batch 1 there are no batch statistics to train on, and the practice of the time (DeepLab v2's "
        "released code) froze them.",
    ],
}


def exact_facts():
    """Head parameter counts at the paper's dimensions (2048 → 21), as the paper counts them
    (weights only). Table 1 lists none; Table 2 does for k = 3…9 (checked in gcn_vs_conv)."""
    from segmodels.base import count_weights
    from segmodels.gcn import build_head
    published = {3: 260e3, 5: 434e3, 7: 608e3, 9: 782e3}
    facts = []
    for k in KS:
        facts.append({"fact": f"GCN k={k} head #params (2048→21)",
                      "computed": count_weights(build_head(2048, 21, "gcn", k)),
                      "formula": "2k(2048·21 + 21·21)", "expected": 2 * k * (2048 * 21 + 21 * 21),
                      "published": published.get(k), "tolerance": 1000})  # the paper prints thousands
    return facts

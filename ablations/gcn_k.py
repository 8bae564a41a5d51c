"""GCN Table 1: kernel size k of a single GCN head on the backbone's last stage.

Run alone: python -m ablations gcn_k [--preset quick]
"""
from engine.claims import Assertion, Greater, Increasing, Mechanism
from probes.mechanisms import reach_needed

NAME = "gcn_k"
ORDER = 10  # place in the report: the papers in turn, each paper's tables in its order
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
# what a large kernel relies on: objects wider than the 1×1 base's receptive field (shared by the GCN tables)
REACH = Mechanism("a large kernel lets a pixel see its whole object, wider than the base's field (Fig. 3)",
                  reach_needed, {"variant": "base"})
ASSERTIONS = [Assertion("mIoU rises with the kernel size k; k = 15 (about the feature map) is +5.5 over the 1×1 base",
                        WHERE, CLAIMS, mechanisms=[REACH])]

# report sections beyond the standard ones: {section name (report/build.py): its arguments}
REPORT_SECTIONS = {"erf": {"variants": list(ERF_VARIANTS)}}

# The run budget of the sequential design at each preset (engine/design.py next_look): the most
# distinct training runs this table may plan, lr selection and shared runs included. Quick: sized for
# the time budget on 2 cores (≤ 15 min an ablation, 90 for the suite) at ≈ 27 s a GCN run, two at
# a time; a run shared with an ablation run earlier costs nothing but still counts.
MAX_RUNS = {"quick": 30}

PRESETS = {
    # batch 8 instead of the quick preset's 16: half the compute per run, for the suite's time budget
    # (see gcn_k.md); shared by every GCN table, so their shared runs keep one run id
    # data: issue 37's rule (data/MECHANISMS.md, settings pilot): 21 classes of small asymmetric objects
    # from 200 training images, where a many-parameter k×k head overfits (gcn_vs_conv, gcn_vs_stack's
    # mechanism; every GCN table sharing their runs takes it). 200 images cannot give up 300 for lr
    # selection: selection runs train on all 200 and are scored on the held-out training images
    "quick": {"train": {"batch_size": 8},
              "data": {"classes": 20, "asymmetric": True, "radius": [0.10, 0.20], "n_train": 200},
              "tuning": {"holdout": "heldout"}},
    # the paper: ResNet-152 (ImageNet), head on res-5 (output stride 32), every image padded to
    # 512×512 so res-5 is 16×16; SGD batch 1, momentum 0.99, wd 5e-4; flip only. BatchNorm frozen: the
    # paper does not say, and statistics of batch 1 are no statistics; the practice of the time
    # (DeepLab v2's released code) froze BN's statistics and affine parameters
    "paper": {"data": {"name": "voc", "crop_size": 512, "scale": None, "flip": True},
              "model": {"backbone": {"name": "resnet", "depth": 152, "output_stride": 32, "weights": "imagenet"},
                        "freeze_bn": True}},
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

"""PSPNet Table 2: weight α of the auxiliary loss (an FCN head on the stage before last), on the
baseline without pyramid pooling. The α = 0.4 run is the psp_pool baseline: trained once.

Run alone: python -m ablations psp_aux [--preset quick]
"""
from ablations import psp_common

NAME = "psp_aux"
TITLE = "PSPNet Table 2 — auxiliary loss weight α"
PAPER = psp_common.PAPER
SOURCE = "Table 2 (ADE20K val, single scale, ResNet-50 baseline), as copied in shared/PAPERS.md §2"
METRICS = ["mIoU", "pixel_acc"]
REPORT_COLUMNS = ["context_acc", "shape_acc", "train_img_per_s"]
X_LABEL = "auxiliary loss weight α (0 = no auxiliary head)"

MODEL = {"arch": "pspnet", "bins": []}
ALPHAS = (0.3, 0.4, 0.6, 0.9)
VARIANTS = [{"id": "no_aux", "label": "without auxiliary loss", "x": 0.0, "model": {"aux_weight": 0.0}}] + [
    {"id": f"a{a}", "label": f"α = {a}", "x": a, "model": {"aux_weight": a}} for a in ALPHAS]

PUBLISHED = {
    "no_aux": {"mIoU": 35.82, "pixel_acc": 77.07},
    "a0.3": {"mIoU": 37.01, "pixel_acc": 77.87},
    "a0.4": {"mIoU": 37.23, "pixel_acc": 78.01},
    "a0.6": {"mIoU": 37.09, "pixel_acc": 77.84},
    "a0.9": {"mIoU": 36.99, "pixel_acc": 77.87},
}

# Equivalence bands, fixed before running, one rule for the whole suite: ±2 mIoU points, ±1 point
# of a per-pixel accuracy. A claim whose difference is shown to lie inside its band is 'absent'.
BANDS = {"mIoU": 2.0}
CLAIMS = [{"text": f"an auxiliary loss helps: α = {a} beats no auxiliary loss", "test": "greater",
           "metric": "mIoU", "a": f"a{a}", "b": "no_aux"} for a in ALPHAS] + [
    {"text": "α = 0.4 is the best weight (a shallow optimum: with seed noise of a few mIoU an argmax "
             "over close values is often inconclusive)", "test": "best", "metric": "mIoU",
     "expected": "a0.4", "candidates": [f"a{a}" for a in ALPHAS]},
]

PRESETS = psp_common.PRESETS
DEVIATIONS = {**psp_common.DEVIATIONS, "synthetic": psp_common.DEVIATIONS["synthetic"] + [
    "The auxiliary head sits on s3, one 3×3 conv below the main head's input (paper: res4b22, a whole "
    "stage of bottlenecks below res5 in a 50-layer net): the small net has little depth for the extra "
    "supervision to help with, so a smaller effect than the paper's is expected."]}

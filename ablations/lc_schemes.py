"""Layer Cascade Table 2: related schemes — one loss, deep supervision (DSN), DSN + dropout,
Model Cascade (MC) and Layer Cascade (LC).

All five are the same three-stage net (segmodels/cascade.py) trained for the same number of
iterations; only the training schedule and the inference threshold differ:
- plain ("IRNet" in the paper): one loss at the end of stage 3; inference takes stage 3 (ρ = 1);
- DSN: the three stage losses jointly; ρ = 1;
- DSN + dropout: as DSN with dropout before each stage's classifier;
- MC: stage 1 trained alone, then stage 2 with stage 1 frozen on the pixels stage 1 leaves at
  ρ = 0.985, then stage 3 with both frozen; a third of the iterations each; cascade inference at 0.985;
- LC: initial training (DSN) for half the iterations, then cascade training at ρ = 0.985; cascade
  inference at 0.985 (the paper's LC).
DSN and LC are the very runs of lc_threshold (same configs, so trained once for both files).
One extra row, not in the paper, evaluates the DSN model with cascade inference at 0.985: LC minus
that row is what cascade training adds beyond early decisions.

Run alone: python -m ablations lc_schemes [--preset quick]
"""
from ablations.lc_threshold import DSN, LC, MODEL, PAPER, TRAIN_RHO  # noqa: F401 (spec fields)
from ablations.lc_threshold import PRESETS as _THRESHOLD_PRESETS
from engine.claims import Assertion, Greater, Rule
from ablations.lc_threshold import easy_pixels, hard

NAME = "lc_schemes"
ORDER = 70  # place in the report: the papers in turn, each paper's tables in its order
TITLE = "Layer Cascade Table 2 — related schemes (plain, DSN, DSN + dropout, MC, LC)"
SOURCE = "Table 2 (mIoU %, PASCAL VOC 2012 val), as copied in shared/PAPERS.md §3"
METRICS = ["mIoU"]
REPORT_COLUMNS = ["pixel_acc", "stage1_pct", "stage2_pct", "stage3_pct", "infer_ms", "train_img_per_s"]
X_LABEL = "scheme"

DROPOUT = 0.5  # the paper does not say where or how much; DeepLab's fc layers use 0.5
MC = {"schedule": "model_cascade", "train_rho": TRAIN_RHO}
VARIANTS = [
    {"id": "plain", "label": "plain net (one loss; paper: IRNet)", "model": {"schedule": "final"}, "eval": {"rho": 1.0}},
    {"id": "dsn", "label": "DSN (ρ = 1)", "model": DSN, "eval": {"rho": 1.0},
     "analyses": ["heldout_stage_probe"]},  # its cascade probes (easy_pixels, hard)
    {"id": "dsn_dropout", "label": f"DSN + dropout {DROPOUT:g}", "model": {**DSN, "dropout": DROPOUT},
     "eval": {"rho": 1.0}},
    {"id": "mc", "label": f"Model Cascade (ρ = {TRAIN_RHO:g})", "model": MC, "eval": {"rho": TRAIN_RHO}},
    {"id": "lc", "label": f"Layer Cascade (ρ = {TRAIN_RHO:g})", "model": LC, "eval": {"rho": TRAIN_RHO}},
    {"id": "dsn_cascade", "label": f"DSN model, cascade inference ρ = {TRAIN_RHO:g} (not in paper)", "model": DSN,
     "eval": {"rho": TRAIN_RHO}},
]

# the run budget of the sequential design (gcn_k's MAX_RUNS says how they are sized): ≈ 45 s a run
MAX_RUNS = {"quick": 22}
# the same data, model, training settings and seeds as lc_threshold, so the DSN and LC runs are shared
PRESETS = _THRESHOLD_PRESETS

PUBLISHED = {"plain": {"mIoU": 72.22}, "dsn": {"mIoU": 72.70}, "dsn_dropout": {"mIoU": 72.63},
             "mc": {"mIoU": 44.20}, "lc": {"mIoU": 73.91}}

CLAIMS = [
    Greater("Layer Cascade beats DSN (paper: 73.91 vs 72.70)", "mIoU", a="lc", b="dsn"),
    Greater("Layer Cascade beats Model Cascade (paper: 73.91 vs 44.20)", "mIoU", a="lc", b="mc"),
]
# its control against plain regularisation: the same three-stage net with dropout, no cascade
CLAIMS += [Greater("Layer Cascade beats DSN + dropout (paper: 73.91 vs 72.63)", "mIoU", a="lc", b="dsn_dropout")]

WHERE = "LC, Table 2"
CASCADE = [easy_pixels("dsn", TRAIN_RHO), hard("dsn")]
ASSERTIONS = [
    Assertion("Layer Cascade beats Model Cascade and DSN", WHERE, CLAIMS[0:2], mechanisms=CASCADE),
    Assertion("Layer Cascade beats DSN + dropout: the cascade, not regularisation", WHERE, [CLAIMS[2]], rule=Rule.ONE,
              mechanisms=CASCADE),
]

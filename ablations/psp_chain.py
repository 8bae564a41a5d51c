"""PSPNet Table 4: the chain of improvements, each step on the one before — data augmentation (DA),
the auxiliary loss (AL, α = 0.4), the pyramid pooling module (PSP), a deeper backbone, multi-scale
testing (MS).

Every step after the first is a model of another table here, as in the paper (whose rows repeat Tables
1-3): + DA is psp_aux's setting without the auxiliary loss but on psp_pool's trunk (a new run), + DA +
AL is psp_pool's baseline, + PSP its full module, the deeper backbone psp_depth's deepest rung, + MS that
rung evaluated at several scales. Where the data are the same (smoke, full) those runs are shared and
trained once, and a claim that repeats another table's comparison is judged there (the report counts it
once); at the quick preset the chain's scenes have mirror-asymmetric shapes (PRESETS), so it trains its own.

Run alone: python -m ablations psp_chain [--preset quick]
"""
from ablations import psp_aux, psp_common, psp_depth, psp_pool
from engine.claims import Assertion, Greater, Mechanism
from probes.mechanisms import flip_adds_information

NAME = "psp_chain"
ORDER = 110  # place in the report: the papers in turn, each paper's tables in its order
TITLE = "PSPNet Table 4 — the chain of improvements"
PAPER = psp_common.PAPER
SOURCE = "Table 4 (ADE20K val; single scale but the last row), as copied in shared/PAPERS.md §2"
METRICS = ["mIoU", "pixel_acc"]
REPORT_COLUMNS = ["context_acc"]
X_LABEL = "step of the chain"

MODEL = {"arch": "pspnet"}
POOL = {v["id"]: v for v in psp_pool.VARIANTS}
DEPTH = {v["id"]: v for v in psp_depth.VARIANTS}
DEEPEST = max(psp_depth.LADDER)
NO_AUX, BASELINE, FULL = {"bins": [], "aux_weight": 0.0}, POOL["baseline"]["model"], POOL["b1236_ave_dr"]["model"]
AL = psp_pool.MODEL  # the auxiliary loss, α = 0.4


def step(x, id_, label, model, **more):
    return {"id": id_, "label": label, "x": x, "model": model, **more}


VARIANTS = [
    # the generated scenes' only augmentation is a random mirror: "no DA" switches it off
    step(1, "baseline", "ResNet50 baseline (no DA, no AL)", NO_AUX, data={"flip": False},
         preset_overrides={"paper": {"data": {"scale": None, "rotate": 0.0, "blur": False}}}),
    # the + AL step's mechanism reads both runs' training curves (probes.mechanisms aux_eases_optimisation)
    step(2, "da", "+ DA", NO_AUX, analyses=["curve"]),
    step(3, "da_al", "+ DA + AL (psp_pool's baseline)", {**AL, **BASELINE}, analyses=["curve"]),
    step(4, "da_al_psp", "+ DA + AL + PSP (psp_pool's full module)", {**AL, **FULL}),
    step(5, "deep", f"ResNet{DEEPEST} + DA + AL + PSP (psp_depth's deepest)", psp_depth.MODEL,
         preset_overrides=DEPTH[f"r{DEEPEST}_ss"]["preset_overrides"]),
    step(6, "deep_ms", f"ResNet{DEEPEST} + DA + AL + PSP + MS", psp_depth.MODEL,
         eval=psp_depth.MULTI_SCALE, preset_overrides=DEPTH[f"r{DEEPEST}_ms"]["preset_overrides"]),
]

PUBLISHED = {"baseline": {"mIoU": 34.28, "pixel_acc": 76.35}, "da": {"mIoU": 35.82, "pixel_acc": 77.07},
             "da_al": {"mIoU": 37.23, "pixel_acc": 78.01}, "da_al_psp": {"mIoU": 41.68, "pixel_acc": 80.04},
             "deep": {"mIoU": 43.81, "pixel_acc": 80.88}, "deep_ms": {"mIoU": 44.94, "pixel_acc": 81.69}}

ORDER = [v["id"] for v in VARIANTS]
LABELS = {v["id"]: v["label"] for v in VARIANTS}
CLAIMS = [Greater(f"{LABELS[b]} improves on the step before (paper: {PUBLISHED[b]['mIoU']:g} vs "
                  f"{PUBLISHED[a]['mIoU']:g})", "mIoU", a=b, b=a) for a, b in zip(ORDER, ORDER[1:])]

WHERE = "PSPNet §5.2, Table 4"
# each step's own mechanism: + DA a flip shows an unseen shape, + AL a faster-falling main loss, the deeper
# backbone capacity left, + MS objects at many scales (and random-resize training)
STEPS = [Mechanism("a flip shows the net shapes it has not seen", flip_adds_information,
                   {"variant": "da"}),
         psp_aux.optimisation("da", "da_al"), psp_depth.capacity("da_al_psp"), psp_depth.scales(["deep"])]
ASSERTIONS = [Assertion("each step of the chain improves on the one before", WHERE, CLAIMS, mechanisms=STEPS)]

# the run budget of the sequential design (gcn_k's MAX_RUNS says how they are sized): 5 trained models
# per seed (the two MS rows are one); at smoke and full 3 of them other tables', at quick none (PRESETS)
MAX_RUNS = {"quick": 25}
# Issue 37's rule (data/MECHANISMS.md): for "+ DA" a flip must add information, so the chain's scenes at the
# quick preset are psp_pool's grid with 8 mirror-asymmetric shapes (33 classes). Every step trains on them,
# the baseline too (without the mirror), so each step is the one before plus its change alone; the price:
# at quick the chain shares no run with psp_pool or psp_depth (different data), all its steps are its own.
ASYMMETRIC = {"asymmetric": True, "classes": 8}
_QUICK = psp_common.PRESETS["quick"]
PRESETS = {**psp_common.PRESETS, "quick": {**_QUICK, "data": {**_QUICK["data"], **ASYMMETRIC}}}

"""What is compared: one declarative file per ablation, plus the engine (train, evaluate, runs).

ABLATIONS maps each name `run_all.py --ablation NAME` takes to its module. Adding an ablation is
one file and one entry here.
"""
import importlib

ABLATIONS = {
    "gcn_k": "ablations.gcn_k",
    "gcn_vs_conv": "ablations.gcn_vs_conv",
    "gcn_vs_stack": "ablations.gcn_vs_stack",
    "gcn_boundary": "ablations.gcn_boundary",
    "lc_threshold": "ablations.lc_threshold",
    "lc_schemes": "ablations.lc_schemes",
    "psp_pool": "ablations.psp_pool",
    "psp_aux": "ablations.psp_aux",
    "deeplab_fov": "ablations.deeplab_fov",
}


def load(name):
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from: {', '.join(ABLATIONS)}, all")
    return importlib.import_module(ABLATIONS[name])


def load_all():
    return [load(name) for name in ABLATIONS]

"""What is compared: one declarative file per ablation, plus the engine (train, evaluate, runs).

ABLATIONS maps each name `run_all.py --ablation NAME` takes to its module, in the report's order;
the names are the modules' own NAME. Adding an ablation is one file and one entry in MODULES.
Run one ablation alone: python -m ablations NAME [run_all.py's options].
"""
from ablations import (deeplab_crf, deeplab_fov, gcn_boundary, gcn_k, gcn_vs_conv, gcn_vs_stack, lc_schemes,
                       lc_threshold, psp_aux, psp_pool)

MODULES = (gcn_k, gcn_vs_conv, gcn_vs_stack, gcn_boundary, lc_threshold, lc_schemes, psp_pool, psp_aux, deeplab_fov,
           deeplab_crf)
ABLATIONS = {m.NAME: m for m in MODULES}


def load(name):
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from: {', '.join(ABLATIONS)}, all")
    return ABLATIONS[name]


def load_all():
    return list(MODULES)

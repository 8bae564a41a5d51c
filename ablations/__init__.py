"""What is compared: one declarative file per ablation, and nothing else (the engine is engine/).

ABLATIONS maps each name `run_all.py --ablation NAME` takes to its module, in the report's order;
the names are the modules' own NAME. load() gives an ablation's checked, typed record
(engine.spec.Ablation): a mistake in the file is one line naming the file and the key. Adding an
ablation is one file and one entry in MODULES.
Run one ablation alone: python -m ablations NAME [run_all.py's options].
"""
import functools

from ablations import (deeplab_crf, deeplab_fov, gcn_backbone, gcn_boundary, gcn_k, gcn_vs_conv, gcn_vs_stack,
                       lc_schemes, lc_threshold, psp_aux, psp_chain, psp_depth, psp_pool)
from engine.spec import from_module

MODULES = (gcn_k, gcn_vs_conv, gcn_vs_stack, gcn_boundary, gcn_backbone, lc_threshold, lc_schemes, psp_pool, psp_aux,
           psp_depth, psp_chain, deeplab_fov, deeplab_crf)
ABLATIONS = {m.NAME: m for m in MODULES}


def load(name):
    """The checked record (engine.spec.Ablation) of ablation `name`."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; choose from: {', '.join(ABLATIONS)}, all")
    return _checked(name)


@functools.cache
def _checked(name):
    return from_module(ABLATIONS[name])


def load_all():
    return [load(name) for name in ABLATIONS]

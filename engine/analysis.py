"""Analyses: small arrays computed by the engine and kept beside the CSVs (results/analysis/*.npz,
committed), so the report draws its figures from committed data and never needs the run folders
(model files are not committed), a dataset or a network.

ANALYSES maps the names a variant lists under "analyses" to an Analysis of one of three kinds:
- "run": of the trained model, fn(model, val_set, eval_cfg, device, run_dir, data_cfg=the plan's data
  config), computed when the run is evaluated (engine/one_run.py), or later from a finished run's model.pt
  where its row lacks it (one_run.save_missing_run_analyses); file <run_id>-<eval_id>-<name>.npz;
- "model": of the network's structure, untrained, fn(model_cfg, val_set) (e.g. how far up an output
  pixel sees); file model-<hash of data and model config>-<name>.npz;
- "data": of the dataset, fn(val_set) (e.g. sample images); file data-<hash of data config>-<name>.npz.
The last two need no trained model, so the runner computes them for every finished row that lacks
them (engine/one_ablation.py). Every plan gets EVERY_PLAN's, each where its data is one the analysis
measures (Analysis.datasets: "heldout" reads the embedded dataset's held-out training images, so a
plan on real data has none: nothing is computed or written for it). Each returns {name: numpy array};
what they measure is engine/measurements.py. No report code lives here.
"""
import hashlib
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from engine.measurements import (context_bands_analysis, crf_examples_analysis, curve_analysis, erf_analysis,
                                 fov_analysis, heldout_analysis, heldout_eval, preview_analysis,
                                 heldout_stage_probe_analysis, projection_context_analysis, reach_analysis,
                                 stage_probe_analysis, stages_analysis)
from files import atomic_write


def analysis_file(results_dir, run_id, eval_id, name):
    """Where an analysis of one (trained run, evaluation) lies."""
    return os.path.join(results_dir, "analysis", f"{run_id}-{eval_id}-{name}.npz")


def config_key(*configs):
    return hashlib.sha1(json.dumps(configs, sort_keys=True).encode()).hexdigest()[:12]


def data_analysis_file(results_dir, data_cfg, name):
    """Where a "data" analysis of a data config (as in a row's data_config: no root) lies."""
    return os.path.join(results_dir, "analysis", f"data-{config_key(data_cfg)}-{name}.npz")


def model_analysis_file(results_dir, data_cfg, model_cfg, name):
    """Where a "model" analysis of a (data config, model config) lies."""
    return os.path.join(results_dir, "analysis", f"model-{config_key(data_cfg, model_cfg)}-{name}.npz")


def analysis_path(results_dir, plan, name):
    """The file of analysis `name` of a plan (engine.plans.Plan), by its kind."""
    kind, data = ANALYSES[name].kind, {k: v for k, v in plan.data.items() if k != "root"}
    if kind == "run":
        return analysis_file(results_dir, plan.run_id, plan.eval_id, name)
    if kind == "model":
        return model_analysis_file(results_dir, data, plan.model, name)
    return data_analysis_file(results_dir, data, name)


def missing_analyses(results_dir, plan, kinds=("run",)):
    """The analyses of `kinds` a plan asks for, and EVERY_PLAN's, that measure its data and are not saved yet."""
    names = [n for n in dict.fromkeys(tuple(plan.analyses) + EVERY_PLAN) if ANALYSES[n].measures(plan.data)]
    return [n for n in names if ANALYSES[n].kind in kinds and not os.path.exists(analysis_path(results_dir, plan, n))]


def save_analyses(results_dir, plan, names, model, val_set, device, run_dir, shared=None):
    """Compute and save the "run" analyses `names` of a plan's trained model. shared: a dict the caller
    keeps across the plans of one run, so an analysis is computed once per value of what it reads of the
    eval config (its same_for; else the whole config): e.g. "heldout" once for a CRF grid's points."""
    shared = {} if shared is None else shared
    for name in names:
        analysis = ANALYSES[name]
        key = (name, json.dumps(analysis.same_for(plan.eval) if analysis.same_for else plan.eval, sort_keys=True,
                                default=str))
        if key not in shared:
            shared[key] = analysis.compute(model, val_set, plan.eval, device, run_dir, data_cfg=plan.data)
        save_analysis(analysis_path(results_dir, plan, name), shared[key])


def save_config_analyses(results_dir, plans):
    """Compute and save the "model" and "data" analyses the plans lack (no trained model needed)."""
    from data import build_dataset
    datasets = {}
    for plan in plans:
        for name in missing_analyses(results_dir, plan, ("model", "data")):
            path = analysis_path(results_dir, plan, name)
            if os.path.exists(path):  # another plan of this call saved it
                continue
            key = json.dumps(plan.data, sort_keys=True)
            if key not in datasets:
                datasets[key] = build_dataset(plan.data, "val")
            val_set = datasets[key]
            analysis = ANALYSES[name]
            save_analysis(path, analysis.compute(plan.model, val_set) if analysis.kind == "model"
                          else analysis.compute(val_set))


def save_analysis(path, data):
    """Write {name: array} as a compressed .npz, atomically (the folder is created)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in data.items()}

    def write(tmp):
        buf = io.BytesIO()  # np.savez would add '.npz' to a path that does not end with it
        np.savez_compressed(buf, **arrays)
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
    atomic_write(path, write)


def set_aside_damaged_analyses(results_dir):
    """Each analysis file in results_dir/analysis that cannot be read (cut off, overwritten) is set
    aside (files.py set_aside), so the report is built without it, as without any missing one."""
    from files import DamagedFile, set_aside
    folder = os.path.join(results_dir, "analysis")
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name.endswith(".npz"):
            try:
                load_analysis(os.path.join(folder, name))
            except Exception as err:  # whatever numpy's or zipfile's reader raises
                set_aside(DamagedFile(os.path.join(folder, name), f"{type(err).__name__}: {err}"),
                          "the report is built without it")


def load_analysis(path):
    """{name: array} of a saved analysis (no pickles)."""
    with np.load(path, allow_pickle=False) as blob:
        return {k: blob[k] for k in blob.files}




@dataclass(frozen=True)
class Analysis:
    kind: str  # "run", "model" or "data" (module docstring)
    compute: object
    datasets: tuple = None  # the datasets (data config "name") it measures; None: any
    same_for: object = None  # a "run" analysis: eval config -> the part of it the result depends on

    def measures(self, data_cfg):
        return self.datasets is None or data_cfg["name"] in self.datasets


ANALYSES = {"erf": Analysis("run", erf_analysis), "stages": Analysis("run", stages_analysis),
            "stage_probe": Analysis("run", stage_probe_analysis), "curve": Analysis("run", curve_analysis),
            "crf_examples": Analysis("run", crf_examples_analysis), "reach": Analysis("model", reach_analysis),
            "fov": Analysis("model", fov_analysis), "preview": Analysis("data", preview_analysis),
            "context_bands": Analysis("data", context_bands_analysis),
            "heldout": Analysis("run", heldout_analysis, datasets=("synthetic",), same_for=heldout_eval),
            "projection_context": Analysis("run", projection_context_analysis, datasets=("synthetic",)),
            "heldout_stage_probe": Analysis("run", heldout_stage_probe_analysis, datasets=("synthetic",))}
# the report shows the dataset of each table; the mechanism probes read every run's held-out scores
EVERY_PLAN = ("preview", "heldout")

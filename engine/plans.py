"""Plans: from an ablation and its settings to the runs it will train and the rows it will write.

A Plan is one row to come: a variant's trained run (data, model, train config, seed) and one
evaluation of it. Its run id is a hash of what the run computes, so a run two tables share is trained
once; its eval id a hash of the evaluation settings (e.g. a cascade threshold), which are not part of
the run id: one trained model can give several rows. All plans of an ablation share a plan id, the
hash of every variant's resolved configuration (seeds aside): the report uses the rows of one plan
id per table, so rows of other settings are never pooled with them as extra seeds.

Selection runs choose, on images held out of the training split, the lr of each "tune_lr" variant and
the CRF settings of each "tune_crf" one (engine/tuning.py); the plans then take what was chosen.
A variant with "init_from" starts from another variant's trained run of the same seed (its Plan's
base, whose run id enters its own); engine/one_run.py trains the base first if it is not.
Everything that can fail is checked once, before anything is trained (prepare).
"""
import dataclasses
import hashlib
import inspect
import json
import os
import re
from dataclasses import dataclass
from functools import cached_property

import torch

from data import build_dataset, dataset_class
from engine.config import resolve
from engine.design import first_look_runs, looks_of, reachable_looks
from engine.evaluate import first_images, model_options
from engine.presets import PRESETS
from engine.rows import OK, RowKey, read_rows, row_key
from engine.tuning import (choose_crfs, choose_lrs, crf_grid, crf_point_id, crf_point_index, crf_scores, lr_point_id,
                           next_crf_points, selection_csv)
from segmodels import build_model
from segmodels.pretrained import STANDIN_WEIGHTS, read_card, standin_of

# train-config keys that do not change what is computed, so stay out of the run id
NOT_IN_RUN_ID = ("checkpoint_every", "workers")
# eval settings a selection run leaves out: it is scored, not timed
NO_TIMING = {"speed_repeats": 0, "train_speed_steps": 0}


def config_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def data_id(data):
    """A data config as it enters ids: where the data lies (root) does not change what is computed."""
    return {k: v for k, v in data.items() if k != "root"}


@dataclass(frozen=True)
class Plan:
    """One row to come. run_id, eval_id and key are derived from the fields, never stored apart."""
    ablation: str
    variant: str
    seed: int
    preset: str
    data: dict
    model: dict
    train: dict
    eval: dict
    plan_id: str
    looks: tuple  # the sequential design's seeds per variant at each look
    analyses: tuple = ()
    base: "Plan" = None  # a variant's init_from: the run (same seed) whose trained model it starts from

    @cached_property
    def run_id(self):
        train = {k: v for k, v in self.train.items() if k not in NOT_IN_RUN_ID}
        return config_hash({"data": data_id(self.data), "model": self.model, "train": train, "seed": self.seed})

    @cached_property
    def eval_id(self):
        return config_hash(self.eval)

    @property
    def key(self) -> RowKey:
        return RowKey(self.plan_id, self.variant, self.seed, self.run_id, self.eval_id)


@dataclass(frozen=True)
class Prepared:
    """An ablation ready to run: its record, settings, plans and selection runs, all checked."""
    spec: object  # engine.spec.Ablation
    settings: object  # engine.config.Settings
    plans: list
    selection: list


def crf_sources(variants):
    """{variant id: the "tune_crf" variant whose chosen CRF settings it is evaluated with}: itself, or
    the one its "crf_from" names (several models may share one selection: it costs a training run)."""
    sources = {v["id"]: v["id"] for v in variants if v.get("tune_crf")}
    sources.update({v["id"]: v["crf_from"] for v in variants if "crf_from" in v})
    return sources


def preset_crf_grid(spec, settings):
    """The preset's CRF grid {setting: [values]} (its tuning "crf"), or one clear error."""
    grid = settings.tuning.get("crf")
    if not grid:
        raise ValueError(f"{spec.name}: variants with tune_crf need the preset's CRF grid (tuning: crf: "
                         "{setting: [values]})")
    return grid


def plan_runs(spec, settings, lrs=None, crfs=None, variants=None):
    """One Plan per (variant, seed) of the settings' preset (engine/config.py resolves each variant).
    lrs: {variant id: lr} chosen for the "tune_lr" variants; until chosen, they plan at the preset's
    lr (enough to check their configuration). crfs: {variant id: CRF settings} chosen for the
    "tune_crf" variants, which those whose "crf_from" names them share; until chosen, the first point
    of the preset's CRF grid. variants: default the ablation's (selection runs plan their own)."""
    variants = spec.variants if variants is None else variants
    sources, resolved = crf_sources(variants), []
    for variant in variants:
        if settings.preset not in variant.get("presets", PRESETS):  # a variant may be kept to some presets
            continue
        cfg = resolve(spec, settings, variant)
        if variant.get("tune_lr") and lrs and variant["id"] in lrs:
            cfg["train"]["lr"] = lrs[variant["id"]]
        if variant["id"] in sources:
            cfg["eval"]["crf"] = (crfs or {}).get(sources[variant["id"]]) or crf_grid(preset_crf_grid(spec, settings))[0]
        resolved.append((variant, cfg))
    plan_id = config_hash({"data": data_id(settings.data),
                           "variants": [[v["id"], c["model"], c["train"], c["eval"]] + (
                               [data_id(c["data"])] if c["data"] != settings.data else []) for v, c in resolved]})
    plans = []
    for v, c in resolved:
        for seed in range(settings.looks[-1]):
            base = base_plan(spec, settings, v["init_from"], seed) if "init_from" in v else None
            # the base's run id is part of this run's: another base, another run
            train = {**c["train"], "init_run": base.run_id} if base else c["train"]
            plans.append(Plan(ablation=spec.name, variant=v["id"], seed=seed, preset=settings.preset, data=c["data"],
                              model=c["model"], train=train, eval=c["eval"], plan_id=plan_id, looks=settings.looks,
                              analyses=tuple(v.get("analyses", ())), base=base))
    return plans


def base_plan(spec, settings, variant_id, seed):
    """The run a variant's "init_from" names, at these settings (the selection runs': their held-out
    training split) and seed: trained first, its model.pt starts the variant's (engine/one_run.py). Not a row."""
    cfg = resolve(spec, settings, spec.variant(variant_id))
    return Plan(ablation=spec.name, variant=variant_id, seed=seed, preset=settings.preset, data=cfg["data"],
                model=cfg["model"], train=cfg["train"], eval=cfg["eval"], plan_id="", looks=settings.looks)


def selection_plans(spec, settings):
    """The selection runs, trained on the training split less settings.tuning['holdout'] images and
    scored on those (data option holdout, data.HeldOut), or with holdout "heldout" trained on the whole
    training split and scored on the held-out training images beyond it: never on the validation split. Each
    "tune_lr": [scales] variant is trained at the preset's lr × each scale; each "tune_crf" variant
    once, evaluated at every point of the preset's CRF grid (on the first tuning['crf_images'] held-out
    images, if set). Their variant ids: engine/tuning.py."""
    grid = []
    crf_images = {"images": settings.tuning["crf_images"]} if settings.tuning.get("crf_images") is not None else {}
    for v in spec.variants:
        if settings.preset not in v.get("presets", PRESETS):
            continue
        base = {"model": v.get("model", {}), "preset_overrides": v.get("preset_overrides", {}),
                **({"init_from": v["init_from"]} if "init_from" in v else {})}
        for scale in v.get("tune_lr", []):
            train_cfg = {**v.get("train", {}), "lr_scale": scale * v.get("train", {}).get("lr_scale", 1.0)}
            grid.append({"id": lr_point_id(v["id"], scale), **base, "train": train_cfg,
                         "eval": {**v.get("eval", {}), **NO_TIMING}})
        for i, crf in enumerate(crf_grid(preset_crf_grid(spec, settings)) if v.get("tune_crf") else []):
            grid.append({"id": crf_point_id(v["id"], i), **base, "train": v.get("train", {}),
                         "eval": {**v.get("eval", {}), **NO_TIMING, "crf": crf, **crf_images}})
    if not grid:
        return []
    if "holdout" not in settings.tuning:
        raise ValueError(f"{spec.name}: variants with tune_lr or tune_crf need the preset's 'tuning' settings "
                         "(holdout, seeds)")
    held_out = dataclasses.replace(settings, data={**settings.data, "holdout": settings.tuning["holdout"]},
                                   looks=tuple(looks_of(settings.tuning["seeds"])))
    return plan_runs(spec, held_out, variants=grid)


def fine_crf_plans(spec, settings, selection, out_dir):
    """The next round of the CRF's fine search (engine/tuning.py next_crf_points) for each "tune_crf"
    variant, from the selection rows in out_dir: evaluations of the same selection models at new points
    ('<id>@crf<i>', i after every index used), with the selection's plan id. [] when the search is done."""
    rows = read_rows(selection_csv(out_dir, spec.name))
    rows = rows[rows["plan_id"] == selection[0].plan_id] if len(rows) else rows
    tunes_crf = selection and any(v.get("tune_crf") for v in spec.variants)  # (an lr selection alone has no grid)
    grid, more = preset_crf_grid(spec, settings) if tunes_crf else None, []
    for v in spec.variants:
        own = [p for p in selection if v.get("tune_crf") and crf_point_index(p.variant, v["id"]) is not None]
        if not own or not len(rows):
            continue
        scored = crf_scores(rows, v["id"])
        index = 1 + max([i for i, _, _ in scored] + [crf_point_index(p.variant, v["id"]) for p in own])
        for j, point in enumerate(next_crf_points(grid, [(settings_, score) for _, settings_, score in scored])):
            more += [dataclasses.replace(p, variant=crf_point_id(v["id"], index + j), eval={**p.eval, "crf": point})
                     for p in own if crf_point_index(p.variant, v["id"]) == 0]  # one per selection seed
    return more


def chosen(spec, selection, out_dir):
    """({variant id: lr}, {variant id: CRF settings}) chosen by the selection runs' rows in out_dir
    (empty before they ran), and the variant ids none could be chosen for (their plans are dropped)."""
    if not selection:
        return {}, {}, set()
    rows = read_rows(selection_csv(out_dir, spec.name))
    rows = rows[rows["plan_id"] == selection[0].plan_id] if len(rows) else rows
    lrs, crfs = (choose_lrs(spec, rows), choose_crfs(spec, rows)) if len(rows) else ({}, {})
    untuned = ({v["id"] for v in spec.variants if v.get("tune_lr")} - set(lrs)) | \
              {v for v, source in crf_sources(spec.variants).items() if source not in crfs}
    return lrs, crfs, untuned


def keyword_options(fn):
    """The options a function or class takes by keyword (its parameters with a default)."""
    return [p.name for p in inspect.signature(fn).parameters.values() if p.default is not p.empty]


def check_data_options(data_cfg):
    """Unknown data options fail here, named with the valid ones, before any data is built (or shown)."""
    cls = dataset_class(data_cfg["name"])
    valid = ["name", "root", "holdout"] + [k for k in keyword_options(cls) if k != "split"] + list(
        getattr(cls, "KNOB_OPTIONS", ()))
    unknown = sorted(set(data_cfg) - set(valid))
    if unknown:
        raise ValueError(f"unknown data option(s) {unknown} for dataset {data_cfg['name']!r}; valid: {', '.join(valid)}")


def unknown_model_option(err, cfg):
    """A constructor's 'got an unexpected keyword argument' as one line that lists what it takes: the
    called function's options, and those of the model class whose __init__ called it (freeze_bn)."""
    found = re.search(r"([\w.]+)\(\) got an unexpected keyword argument '(\w+)'", str(err))
    frame = err.__traceback__
    while frame and frame.tb_next:
        frame = frame.tb_next
    if not found or frame is None:
        return f"bad model options for arch {cfg['arch']!r}: {err}"
    scope = {**frame.tb_frame.f_globals, **frame.tb_frame.f_locals}
    first, *rest = found[1].split(".")
    modules = [v for v in scope.values() if inspect.ismodule(v)]
    called = scope.get(first) or next((getattr(m, first) for m in modules if hasattr(m, first)), None)
    for part in rest:
        called = getattr(called, part, None)
    if called is None:
        return f"bad model options for arch {cfg['arch']!r}: {err}"
    options = keyword_options(called)
    caller = scope.get("self")
    if caller is not None and frame.tb_frame.f_code.co_name == "__init__":
        options = keyword_options(type(caller).__init__) + options
    key = ("model." if found[2] in cfg else "model.backbone.") + found[2]
    return f"unknown option {key} for arch {cfg['arch']!r} ({found[1]}); valid: {', '.join(dict.fromkeys(options))}"


def check_plans(plans):
    """Fail before any training on what would fail later: unknown data, model or eval options, a
    backbone given weights it cannot take. Models are built on the meta device (shapes only, no
    memory, no weights file read)."""
    for data_cfg in {json.dumps(p.data, sort_keys=True): p.data for p in plans}.values():
        check_data_options(data_cfg)
    for model_cfg in {json.dumps(p.model, sort_keys=True): p.model for p in plans}.values():
        cfg = json.loads(json.dumps(model_cfg))
        weights = cfg["backbone"].pop("weights", None)
        if weights in STANDIN_WEIGHTS:  # a pretrained stand-in: present and matching its card, or one line
            read_card(*standin_of(model_cfg))
        elif weights not in (None, "imagenet") and not os.path.isfile(weights):
            raise FileNotFoundError(f"weights file not found: {weights} (--weights)")
        try:
            with torch.device("meta"):
                model = build_model(cfg, 2)
        except TypeError as err:  # an option the model's constructor does not take
            raise ValueError(unknown_model_option(err, cfg)) from None
        for plan in plans:
            if plan.model == model_cfg:
                model_options(model, plan.eval)  # unknown eval options fail here, not after training


def check_data(plans, checked=None):
    """Fail early on missing or bad data: each dataset the plans train or evaluate on (and that is not
    in `checked`, data configs as JSON) is opened and its check() (every file it will read) run, and
    an eval option images beyond its validation images refused. Returns the data configs checked so far."""
    checked = set() if checked is None else checked
    for data_cfg in {json.dumps(p.data, sort_keys=True) for p in plans} - checked:
        splits = {split: build_dataset(json.loads(data_cfg), split) for split in ("val", "train")}
        for dataset in splits.values():
            if hasattr(dataset, "check"):
                dataset.check()
        for plan in plans:
            if json.dumps(plan.data, sort_keys=True) == data_cfg:
                first_images(splits["val"], plan.eval.get("images"))
        checked.add(data_cfg)
    return checked


def todo_plans(plans, csv_path):
    """The plans without a finished ("ok") row in csv_path (whose rows are checked on reading)."""
    done = {row_key(r) for r in read_rows(csv_path).to_dict("records") if r["status"] == OK}
    return [p for p in plans if p.key not in done]


def prepare(spec, settings, out_dir, checked_data=None, with_data=True):
    """Plan an ablation and check everything before anything is written: model and eval options, the
    run budget, and (with_data) the data of the runs still to train. Returns a Prepared."""
    plans, selection = plan_runs(spec, settings), selection_plans(spec, settings)
    check_plans(plans + selection)
    first = first_look_runs(plans, selection)
    if settings.max_runs is not None and len(first) > settings.max_runs:
        raise ValueError(f"{spec.name}: max_runs {settings.max_runs} is below the {len(first)} runs of the "
                         "first look and the selection runs")
    looks = reachable_looks(spec.claims, plans, first, settings.looks, settings.max_runs)
    if looks != settings.looks:  # the looks the budget cannot reach are dropped, and with them their share of α
        settings = dataclasses.replace(settings, looks=looks)
        plans = plan_runs(spec, settings)
    if with_data:
        check_data(todo_plans(plans, os.path.join(out_dir, f"{spec.name}.csv")) + selection, checked_data)
    return Prepared(spec, settings, plans, selection)


def show_config(prepared, out_dir, variant=None):
    """Each resolved plan as text: per variant its data, model, train and eval configuration, then its
    run and eval ids per seed; with the lr and CRF settings chosen so far in out_dir (else the preset's,
    marked). Trains nothing."""
    spec, settings = prepared.spec, prepared.settings
    lrs, crfs, untuned = chosen(spec, prepared.selection, out_dir)
    plans = plan_runs(spec, settings, lrs, crfs) + prepared.selection
    if variant is not None and variant not in {p.variant for p in plans}:
        raise ValueError(f"no variant {variant!r} at preset {settings.preset!r}; variants: "
                         f"{', '.join(dict.fromkeys(p.variant for p in plans))}")
    lines = [f"# {spec.name} at preset {settings.preset!r}: plan {plans[0].plan_id}, looks {list(settings.looks)}"
             + (f", at most {settings.max_runs} runs" if settings.max_runs else "")]
    for vid in dict.fromkeys(p.variant for p in plans):
        if variant is not None and vid != variant:
            continue
        own = [p for p in plans if p.variant == vid]
        first = own[0]
        what = "selection run" if first in prepared.selection else "variant"
        note = (" (lr or CRF settings to be chosen by its selection runs: shown at the preset's)" if vid in untuned
                else "")
        lines.append(f"\n## {what} {vid}{note}")
        for part in ("data", "model", "train", "eval"):
            value = data_id(first.data) if part == "data" else getattr(first, part)
            lines.append(f"{part}: {json.dumps(value, sort_keys=True)}")
        lines.append(f"eval id: {first.eval_id}")
        lines.append("run ids: " + ", ".join(f"seed {p.seed} {p.run_id}" for p in own))
    return "\n".join(lines)

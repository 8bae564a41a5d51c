"""The four presets as plain data, and the keys a configuration may hold. An ablation file may
override any key (deep merge; the order of all layers: engine/config.py).

- smoke: seconds per run on CPU; tests and CI only.
- quick (default): the embedded dataset, sized so one ablation takes minutes on a 2-core CPU;
  every backbone fine-tuned from its pretrained stand-in (FINE_TUNE below).
  Seeds follow the sequential design: 3 per variant, then 5 and 8 only for the variants of claims
  still undecided (engine/design.py), within each ablation's run budget (its MAX_RUNS).
- full: the embedded dataset at a larger scale, wider backbone, the same sequential seeds; meant for a GPU.
- paper: the real dataset and the paper's settings; for GPUs with the data on disk.

Every preset trains with one CPU thread per run: the thread count changes the floating-point
results, so it is part of each run's configuration (and id), and the same run gives the same
numbers on any machine with the same torch and CPU capability. Parallelism comes from --jobs.

The CPU presets train in channels_last memory format: one training step of every model the suite
trains was faster that way on one thread (python -m benchmarks.train_step --steps 5 --rounds 3, on
a shared 2-core machine: 1.05× for the cascade's DSN to 1.5× for DeepLab-LargeFOV; one earlier,
more loaded run had the 3×3 stack at 0.85×, its rerun 1.26×). It is part of the run id.
"""
import copy
import json
import math

SMALL_BACKBONE = {"name": "small", "widths": [24, 32, 64], "strides": [2, 2, 2], "convs": [1, 2, 2]}
# The quick and full presets fine-tune as the papers do: every backbone starts from its pretrained
# stand-in (weights "fractal": segmodels/pretrained.py, `python -m engine.tools.pretrain`), the new layers at
# ×10 the backbone's lr. The rates are the pilot's of issue 22 (new layers at 0.05 diverged every GCN
# head; 0.01 with the backbone at 0.001 did not), checked per backbone by probes/pretraining.py
# (the ablation's deviations, ablations/<name>.md, give its table) before any verdict was judged at
# them: DeepLab fine-tunes at lr 0.004 (its probe), PSPNet trains from scratch (its probe: the
# stand-in hurt it). The smoke preset trains from scratch (tests build models of any width, most without a stand-in).
FINE_TUNE = {"lr": 0.001, "head_lr_mult": 10.0}

PRESETS = {
    "smoke": {
        "seeds": 1,
        "data": {"name": "synthetic", "image_size": 64, "n_train": 16, "n_val": 8},
        "model": {"backbone": SMALL_BACKBONE},
        "train": {"iterations": 3, "batch_size": 4, "lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4,
                  "poly_power": 0.9, "head_lr_mult": 1.0, "workers": 0, "checkpoint_every": 2, "threads": 1,
                  "channels_last": True},
        # GCN's band is 7 px at 512-px input; scaled to the image size
        "eval": {"batch_size": 8, "boundary_band": 7 * 64 / 512},
        "tuning": {"holdout": 4, "seeds": 1},
    },
    "quick": {
        "seeds": [3, 5, 8],  # the looks of the sequential design (engine/design.py)
        "data": {"name": "synthetic", "image_size": 128, "n_train": 2000, "n_val": 300},
        "model": {"backbone": {**SMALL_BACKBONE, "weights": "fractal"}},
        "train": {"iterations": 800, "batch_size": 16, **FINE_TUNE, "momentum": 0.9, "weight_decay": 1e-4,
                  "poly_power": 0.9, "workers": 0, "checkpoint_every": 200, "threads": 1,
                  "channels_last": True},
        "eval": {"batch_size": 50, "boundary_band": 7 * 128 / 512},
        # learning rates of variants with "tune_lr" are chosen on the last 300 training images,
        # trained on the other 1,700 (engine/plans.py selection_plans)
        "tuning": {"holdout": 300, "seeds": 1},
    },
    "full": {
        "seeds": [3, 5, 8],
        "data": {"name": "synthetic", "image_size": 128, "n_train": 10000, "n_val": 1000},
        "model": {"backbone": {"name": "small", "widths": [32, 64, 128], "strides": [2, 2, 2], "convs": [1, 2, 3],
                               "weights": "fractal"}},
        "train": {"iterations": 8000, "batch_size": 32, **FINE_TUNE, "momentum": 0.9, "weight_decay": 1e-4,
                  "poly_power": 0.9, "workers": 0, "checkpoint_every": 1000, "threads": 1,
                  "channels_last": True},
        "eval": {"batch_size": 100, "boundary_band": 7 * 128 / 512},
        "tuning": {"holdout": 1000, "seeds": 1},
    },
    "paper": {
        "seeds": 1,
        "data": {"name": "voc", "crop_size": 512},
        "model": {"backbone": {"name": "resnet", "depth": 152, "output_stride": 32, "weights": "imagenet"}},
        "train": {"iterations": 30000, "batch_size": 1, "lr": 1e-3, "momentum": 0.99, "weight_decay": 5e-4,
                  "poly_power": 0.9, "head_lr_mult": 10.0, "workers": 4, "checkpoint_every": 1000, "threads": 1},
        "eval": {"batch_size": 1, "boundary_band": 7.0},
        "tuning": {"holdout": 1000, "seeds": 1},
    },
}


# What each part of a configuration may hold. Anything else is an error, not ignored: a typo would
# change the run id and silently train something other than what was meant.
TOP_KEYS = ("seeds", "data", "model", "train", "eval", "tuning")
# tuning: images held out of the training split, selection seeds, and (for "tune_crf" variants) the
# CRF's grid {setting: [values]}: its scale depends on the images, so it is a preset's setting; with
# crf_images N, the grid is scored on the first N held-out images only (the CRF is most of its cost)
TUNING_KEYS = ("holdout", "seeds", "crf", "crf_images")
TRAIN_KEYS = ("iterations", "batch_size", "lr", "lr_scale", "momentum", "weight_decay", "poly_power",
              "head_lr_mult", "lr_step", "lr_gamma", "workers", "checkpoint_every", "channels_last", "threads",
              "compile", "amp")
# engine keys of the eval config; any other eval key is an evaluation option of the model (e.g. rho)
EVAL_KEYS = ("batch_size", "boundary_band", "speed_repeats", "speed_warmup", "speed_batch", "train_speed_steps",
             "crf", "trimap", "trimap_around", "images")


# The type of each setting, as the presets give it (a key the presets set two ways, e.g. seeds as an
# int or a list of looks, takes either), and of the settings no preset sets. --set is checked against
# it before anything is planned, so a value of the wrong type never reaches a run (or its run id).
SET_ELSEWHERE = {"train.lr_scale": float, "train.lr_step": int, "train.lr_gamma": float, "train.compile": bool,
                 "train.amp": str, "eval.speed_repeats": int, "eval.speed_warmup": int, "eval.speed_batch": int,
                 "eval.train_speed_steps": int, "eval.crf": dict, "eval.trimap": list, "eval.images": int,
                 "tuning.crf": dict, "tuning.crf_images": int,
                 "tuning.holdout": str}  # "heldout": score selection on the held-out training images
# settings that may be null: no stand-in weights (from scratch), no step schedule, every image
NULLABLE = ("model.backbone.weights", "train.lr_step", "train.amp", "eval.images", "tuning.crf_images")
# the least value of each number that has one: counts and sizes of at least 1, rates above 0
AT_LEAST = {"data.n_train": 1, "data.n_val": 1, "data.image_size": 32, "data.crop_size": 1,
            "train.iterations": 1, "train.batch_size": 1, "train.checkpoint_every": 1, "train.threads": 1,
            "train.workers": 0, "train.lr_step": 1, "train.momentum": 0, "train.weight_decay": 0,
            "train.poly_power": 0, "eval.batch_size": 1, "eval.boundary_band": 0, "eval.speed_repeats": 0,
            "eval.speed_warmup": 0, "eval.speed_batch": 1, "eval.train_speed_steps": 0, "eval.images": 1,
            "tuning.holdout": 1, "tuning.seeds": 1, "tuning.crf_images": 1}
WORDS = {"tuning.holdout": ("heldout",)}  # the strings a setting that also takes numbers accepts
ABOVE_ZERO = ("train.lr", "train.lr_scale", "train.lr_gamma", "train.head_lr_mult")


def setting_types():
    """{dotted key: (types)} of every setting of the presets (dicts walked into), and SET_ELSEWHERE's.
    A float setting takes an int too (lr=1)."""
    types = {}

    def walk(prefix, cfg):
        for key, value in cfg.items():
            dotted = f"{prefix}.{key}" if prefix else key
            types.setdefault(dotted, set()).add(type(value))
            if isinstance(value, dict):
                walk(dotted, value)
    for preset in PRESETS.values():
        walk("", preset)
    for dotted, kind in SET_ELSEWHERE.items():
        types.setdefault(dotted, set()).add(kind)
    for dotted in NULLABLE:
        types[dotted].add(type(None))
    return {k: tuple(sorted(v | ({int} if float in v else set()), key=lambda t: t.__name__)) for k, v in types.items()}


SETTING_TYPES = setting_types()
TYPE_NAMES = {bool: "true or false", int: "a whole number", float: "a number", str: "a string", list: "a [list]",
              dict: "a {dict}", type(None): "null"}


def setting_error(dotted, value):
    """Why `value` cannot be setting `dotted` (a type or range it breaks), or None. Numbers must be
    finite everywhere, in lists and dicts too; a setting outside SETTING_TYPES (a model's or dataset's
    own option) is otherwise checked by what takes it."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{dotted} must be a finite number, got {value!r}"
    kinds = SETTING_TYPES.get(dotted)
    if kinds and not any(type(value) is kind for kind in kinds):  # type(): true is not a number here
        names = [TYPE_NAMES[k] for k in kinds if not (k is int and float in kinds)]
        return f"{dotted} must be {' or '.join(names)}, got {json.dumps(value)}"
    if isinstance(value, str) and dotted in WORDS and value not in WORDS[dotted]:
        return f"{dotted} must be a number or one of {', '.join(map(json.dumps, WORDS[dotted]))}, got {json.dumps(value)}"
    if type(value) in (int, float):
        if dotted in AT_LEAST and value < AT_LEAST[dotted]:
            return f"{dotted} must be >= {AT_LEAST[dotted]}, got {value}"
        if dotted in ABOVE_ZERO and value <= 0:
            return f"{dotted} must be > 0, got {value}"
    inner = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    return next((err for err in (setting_error(f"{dotted}.{key}" if isinstance(value, dict) else dotted + "[]", v)
                                 for key, v in inner) if err), None)


def check_keys(section, cfg, valid):
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise ValueError(f"unknown {section} option(s) {unknown}; valid: {', '.join(valid)}")


def deep_merge(base: dict, override: dict) -> dict:
    """A copy of base with override's keys laid over it, recursing into dicts. A dict that names
    something else (another 'name': a different backbone or dataset) replaces the base's whole,
    since the options of one do not apply to the other."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if (isinstance(value, dict) and isinstance(out.get(key), dict)
                and value.get("name", out[key].get("name")) == out[key].get("name")):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out

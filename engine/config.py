"""How a run's configuration is made: the layers, in one named order, and what the command line adds.

Each variant's model, train and eval settings are these layers laid one over the other (deep_merge:
a dict that names another backbone or dataset replaces the whole), in this order:

  1 suite preset        engine/presets.py PRESETS[preset]
  2 ablation preset     the ablation file's PRESETS[preset]
  3 ablation MODEL      the file's MODEL (model settings every variant shares)
  4 variant             the variant's model / train / eval
  5 variant preset      the variant's preset_overrides[preset]
  6 command line        --iterations, --weights, --compile, --amp, --channels-last, then each --set KEY=VALUE

then the derived lr (train.lr × train.lr_scale), then what is chosen on held-out training images
(engine/plans.py): the lr of a tune_lr variant, the CRF settings of a tune_crf variant. What all the
variants of an ablation share — its seeds (looks), data and tuning — takes layers 1, 2 and 6
(--seeds, --data, --data-root, --set seeds=…, --set data.…, --set tuning.…). Every layer is checked
against the allowed keys (engine/presets.py), the command line's included.
"""
import json
from dataclasses import dataclass, field

from engine.design import looks_of
from engine.presets import PRESETS, TOP_KEYS, TRAIN_KEYS, TUNING_KEYS, check_keys, deep_merge, setting_error
from engine.step import AMP_DTYPES

LAYERS = ("suite preset", "ablation preset", "ablation MODEL", "variant", "variant preset", "command line")
REAL_DATA = ("voc", "ade20k", "cityscapes")


@dataclass(frozen=True)
class CommandLine:
    """What run_all.py's options set (None / False: not given). sets: (dotted key, value) of each
    --set KEY=VALUE, in order (parse_set)."""
    seeds: int | None = None
    iterations: int | None = None
    data: str | None = None
    data_root: str | None = None
    weights: str | None = None
    compile: bool = False
    amp: str | None = None
    channels_last: bool = False
    sets: tuple = ()


@dataclass(frozen=True)
class Settings:
    """One ablation at one preset before its variants are laid over: what all its runs share (looks,
    data, tuning, run budget), the preset's model/train/eval (layers 1-2) and the command line's
    model/train/eval (layer 6)."""
    ablation: str
    preset: str
    looks: tuple
    data: dict
    tuning: dict
    max_runs: int | None
    base: dict = field(default_factory=dict)  # {"model", "train", "eval"}
    command_line: dict = field(default_factory=dict)  # {"model", "train", "eval"}


def parse_set(text):
    """'train.lr=0.01' → ('train.lr', 0.01). The value is read as JSON (numbers, true/false, null,
    [lists], {dicts}), else kept as a string. The key's first part is one of TOP_KEYS; train and
    tuning keys are checked here, model, data and eval keys when the runs are planned and checked; every
    value against the presets' types and ranges (engine/presets.py setting_error)."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ValueError(f"--set {text!r}: expected KEY=VALUE, e.g. train.lr=0.01")
    if parts[0] not in TOP_KEYS:
        raise ValueError(f"--set {text!r}: unknown section {parts[0]!r}; valid: {', '.join(TOP_KEYS)}")
    if (parts[0] == "seeds") != (len(parts) == 1):
        raise ValueError(f"--set {text!r}: seeds takes no sub-key; {parts[0]} needs one ({parts[0]}.KEY=VALUE)")
    if parts[0] == "train":
        check_keys("train", {parts[1]: None}, TRAIN_KEYS)
    if parts[0] == "tuning":
        check_keys("tuning", {parts[1]: None}, TUNING_KEYS)
    try:
        value = json.loads(value)
    except json.JSONDecodeError:
        value = value.strip()
    problem = setting_error(".".join(parts), value)
    if problem:
        raise ValueError(f"--set {text!r}: {problem}")
    return ".".join(parts), value


def nested(dotted, value):
    """('a.b.c', v) → {'a': {'b': {'c': v}}}."""
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def settings(spec, preset, cli=CommandLine()):
    """The Settings of ablation `spec` at `preset`, with the command line's options checked."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    cfg = deep_merge(PRESETS[preset], spec.presets.get(preset, {}))
    check_keys("preset", cfg, TOP_KEYS)
    if cli.seeds is not None:
        if cli.seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {cli.seeds}")
        cfg["seeds"] = cli.seeds  # a fixed number: one look, no sequential design
    if cli.data is not None and cli.data != cfg["data"]["name"]:
        # A preset's crop size carries over to another real dataset. None of a real dataset's
        # options reach the generated scenes (SyntheticScenes rejects options it does not know):
        # they have no crop_size (every image is image_size, whole) and no scale, rotate or blur
        # augmentation (their `flip` switches the training split's random mirror).
        keep = {k: v for k, v in cfg["data"].items() if k == "crop_size" and cli.data in REAL_DATA}
        cfg["data"] = {"name": cli.data, **keep}
    if cli.data_root is not None:
        if cfg["data"]["name"] not in REAL_DATA:
            raise ValueError(f"--data-root given, but the dataset of preset {preset!r} is the embedded "
                             f"{cfg['data']['name']!r} one: add --data {'|'.join(REAL_DATA)}")
        cfg["data"]["root"] = cli.data_root
    per_variant = {}
    if cli.iterations is not None:
        if cli.iterations < 1:
            raise ValueError(f"--iterations must be >= 1, got {cli.iterations}")
        per_variant = deep_merge(per_variant, {"train": {"iterations": cli.iterations}})
    if cli.weights is not None:
        if cfg["model"]["backbone"]["name"] in ("small", "small_resnet"):
            raise ValueError(f"--weights given, but preset {preset!r} trains a small CPU backbone (from its "
                             "stand-in in weights/ or from scratch): --weights is for --preset paper")
        per_variant = deep_merge(per_variant, {"model": {"backbone": {"weights": cli.weights}}})
    if cli.compile:
        per_variant = deep_merge(per_variant, {"train": {"compile": True}})
    if cli.amp is not None:
        if cli.amp not in AMP_DTYPES:
            raise ValueError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {cli.amp!r}")
        per_variant = deep_merge(per_variant, {"train": {"amp": cli.amp}})
    if cli.channels_last:
        per_variant = deep_merge(per_variant, {"train": {"channels_last": True}})
    for dotted, value in cli.sets:
        section = dotted.split(".")[0]
        if section in ("model", "train", "eval"):
            per_variant = deep_merge(per_variant, nested(dotted, value))
        else:  # seeds, data, tuning: the ablation's
            cfg = deep_merge(cfg, nested(dotted, value))
    check_keys("tuning", cfg.get("tuning", {}), TUNING_KEYS)
    max_runs = spec.max_runs.get(preset)  # the run budget of the sequential design (checked at load)
    return Settings(ablation=spec.name, preset=preset, looks=tuple(looks_of(cfg["seeds"])), data=cfg["data"],
                    tuning=cfg.get("tuning", {}), max_runs=max_runs,
                    base={k: cfg[k] for k in ("model", "train", "eval")},
                    command_line={k: per_variant.get(k, {}) for k in ("model", "train", "eval")})


def resolve(spec, settings, variant):
    """A variant's {"data", "model", "train", "eval"}: layers 1-6 in LAYERS' order, then the derived lr.
    The data is the ablation's (its preset and the command line's) with the variant's own data options
    over it (e.g. a training split without augmentation), then its preset's."""
    own = {k: variant.get(k, {}) for k in ("model", "train", "eval")}
    override = variant.get("preset_overrides", {}).get(settings.preset, {})
    preset_data = deep_merge(PRESETS[settings.preset], spec.presets.get(settings.preset, {}))["data"]
    # a preset's data override is written for the preset's dataset: none of it reaches another (--data)
    data_override = override.get("data", {}) if settings.data["name"] == preset_data["name"] else {}
    out = {"data": deep_merge(deep_merge(settings.data, variant.get("data", {})), data_override)}
    for part in ("model", "train", "eval"):
        layers = [settings.base[part], spec.model if part == "model" else {}, own[part], override.get(part, {}),
                  settings.command_line[part]]
        merged = {}
        for layer in layers:
            merged = deep_merge(merged, layer)
        out[part] = merged
    check_keys("train", out["train"], TRAIN_KEYS)
    if "lr_scale" in out["train"]:  # a variant may scale the preset's lr rather than fix one
        out["train"]["lr"] = round(out["train"]["lr"] * out["train"].pop("lr_scale"), 12)
    return out

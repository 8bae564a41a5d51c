"""Runs: from an ablation file and a preset to trained, evaluated runs and CSV rows.

A run is (data, model, train config, seed); its id is a hash of that resolved config, so a run two
tables share is trained once. Evaluation settings (e.g. a cascade threshold) are not part of the
training id: one trained model can give several rows. Each run has a folder
results/runs/<run_id>/ with config.json, ckpt.pt (while unfinished), model.pt, train.json,
eval-<eval_id>.json and log.jsonl. A rerun skips what is finished and resumes what is not.
"""
import concurrent.futures as cf
import contextlib
import datetime
import hashlib
import json
import multiprocessing
import os
import platform
import subprocess
import threading
import time
import types

import torch
import torchvision
from tqdm import tqdm

from ablations.analysis import ANALYSES, analysis_file, save_analysis
from ablations.distributed import barrier, is_main, world
from ablations.evaluate import evaluate, model_options, time_inference
from ablations.presets import PRESETS, TOP_KEYS, TRAIN_KEYS, TUNING_KEYS, check_keys, deep_merge
from ablations.rows import OK, file_lock, put_row, read_json, read_rows, row_key, write_json
from ablations.train import AMP_DTYPES, NonFiniteLoss, seed_everything, train
from ablations.tuning import choose_crfs, choose_lrs, crf_grid, tuning_csv_path
from ablations.verdicts import DECIDED, claim_variants, claim_verdicts, looks_of
from data import DATASETS, build_dataset
from segmodels import build_model
from segmodels.base import count_params
from segmodels.crf import CRFUnavailable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# train-config keys that do not change what is computed, so stay out of the run id
NOT_IN_RUN_ID = ("checkpoint_every", "workers")
REAL_DATA = tuple(d for d in DATASETS if d != "synthetic")
VARIANT_KEYS = ("id", "label", "x", "series", "model", "train", "eval", "presets", "preset_overrides", "analyses",
                "tune_lr", "tune_crf", "crf_from")
# eval settings a selection run leaves out: it is scored, not timed
NO_TIMING = {"speed_repeats": 0, "train_speed_steps": 0}


def config_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def preset_config(spec, preset, seeds=None, data=None, data_root=None, weights=None, iterations=None,
                  compile=False, amp=None, channels_last=False):
    """The preset for one ablation: base preset, the ablation's overrides, then the CLI's. With
    compile, every run trains through torch.compile (train.compile); with amp "bf16", its forward
    passes run under bfloat16 autocast (train.amp); with channels_last, in that memory format
    (train.channels_last, which the CPU presets already set). Each is part of the run id."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    cfg = deep_merge(PRESETS[preset], getattr(spec, "PRESETS", {}).get(preset, {}))
    check_keys("preset", cfg, TOP_KEYS)
    check_keys("tuning", cfg.get("tuning", {}), TUNING_KEYS)
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        cfg["seeds"] = seeds  # a fixed number: one look, no sequential design
    looks_of(cfg["seeds"])
    max_runs = getattr(spec, "MAX_RUNS", {}).get(preset)  # the run budget of the sequential design
    if max_runs is not None:
        if not (isinstance(max_runs, int) and max_runs >= 1):
            raise ValueError(f"{spec.NAME}: MAX_RUNS[{preset!r}] must be a whole number >= 1, got {max_runs!r}")
        cfg["max_runs"] = max_runs
    if data is not None and data != cfg["data"]["name"]:
        # A preset's crop size carries over to another real dataset. None of a real dataset's
        # options reach the generated scenes (SyntheticScenes rejects options it does not know):
        # they have no crop_size (every image is image_size, whole) and no scale, rotate or blur
        # augmentation, and they always flip at random (so `flip` has nothing to switch).
        keep = {k: v for k, v in cfg["data"].items() if k == "crop_size" and data in REAL_DATA}
        cfg["data"] = {"name": data, **keep}
    if data_root is not None:
        if cfg["data"]["name"] not in REAL_DATA:
            raise ValueError(f"--data-root given, but the dataset of preset {preset!r} is the embedded "
                             f"{cfg['data']['name']!r} one: add --data {'|'.join(REAL_DATA)}")
        cfg["data"]["root"] = data_root
    if weights is not None:
        if cfg["model"]["backbone"]["name"] == "small":
            raise ValueError(f"--weights given, but preset {preset!r} trains the small CPU backbone from "
                             "scratch (no pretrained weights exist for it): use --preset paper")
        cfg["model"]["backbone"]["weights"] = weights
    if iterations is not None:
        if iterations < 1:
            raise ValueError(f"--iterations must be >= 1, got {iterations}")
        cfg["train"]["iterations"] = iterations
    if compile:
        cfg["train"]["compile"] = True
    if amp is not None:
        if amp not in AMP_DTYPES:
            raise ValueError(f"--amp must be one of {', '.join(AMP_DTYPES)}, got {amp!r}")
        cfg["train"]["amp"] = amp
    if channels_last:
        cfg["train"]["channels_last"] = True
    return cfg


def plan_runs(spec, cfg, preset, lrs=None, crfs=None):
    """One plan per (variant, seed): everything needed to train, evaluate and write its row.

    All plans of one call share a plan id: the hash of every variant's resolved configuration (seeds
    aside). The report uses the rows of one plan id per table, so rows of other settings (another
    --iterations, an edited ablation file) are never pooled with them as extra seeds.
    lrs: {variant id: lr} chosen for the variants with "tune_lr" (choose_lrs); until chosen, they
    plan at the preset's lr (enough to check their configuration).
    crfs: {variant id: CRF settings} chosen for the variants with "tune_crf" (choose_crfs); a variant
    with "crf_from": <id> takes that variant's. Until chosen, they plan with the first point of the
    preset's CRF grid (cfg["tuning"]["crf"])."""
    variants, crf_source = [], crf_sources(spec)
    for variant in spec.VARIANTS:
        check_keys(f"{spec.NAME} variant {variant.get('id')!r}", variant, VARIANT_KEYS)
        if preset not in variant.get("presets", PRESETS):  # a variant may be kept to some presets
            continue
        own = deep_merge({k: variant.get(k, {}) for k in ("model", "train", "eval")},
                         variant.get("preset_overrides", {}).get(preset, {}))  # a variant's per-preset settings
        model = deep_merge(deep_merge(cfg["model"], getattr(spec, "MODEL", {})), own["model"])
        train_cfg = deep_merge(cfg["train"], own["train"])
        check_keys("train", train_cfg, TRAIN_KEYS)
        if "lr_scale" in train_cfg:  # a variant may scale the preset's lr rather than fix one
            train_cfg["lr"] = round(train_cfg["lr"] * train_cfg.pop("lr_scale"), 12)
        if variant.get("tune_lr") and lrs and variant["id"] in lrs:
            train_cfg["lr"] = lrs[variant["id"]]
        eval_cfg = deep_merge(cfg["eval"], own["eval"])
        if variant["id"] in crf_source:
            eval_cfg["crf"] = (crfs or {}).get(crf_source[variant["id"]]) or crf_grid(preset_crf_grid(spec, cfg))[0]
        variants.append((variant, model, train_cfg, eval_cfg))
    data_id = {k: v for k, v in cfg["data"].items() if k != "root"}
    plan_id = config_hash({"data": data_id, "variants": [[v["id"], m, t, e] for v, m, t, e in variants]})
    plans, looks = [], looks_of(cfg["seeds"])
    for variant, model, train_cfg, eval_cfg in variants:
        for seed in range(looks[-1]):
            identity = {"data": data_id, "model": model,
                        "train": {k: v for k, v in train_cfg.items() if k not in NOT_IN_RUN_ID}, "seed": seed}
            plans.append({"ablation": spec.NAME, "variant": variant["id"], "seed": seed, "preset": preset,
                          "data": cfg["data"], "model": model, "train": train_cfg, "eval": eval_cfg,
                          "analyses": list(variant.get("analyses", [])), "plan_id": plan_id, "looks": looks,
                          "run_id": config_hash(identity), "eval_id": config_hash(eval_cfg)})
    return plans


def crf_sources(spec):
    """{variant id: the "tune_crf" variant whose chosen CRF settings it is evaluated with}: itself, or
    the one its "crf_from" names (several models may share one selection: it costs a training run)."""
    tuned = {v["id"] for v in spec.VARIANTS if v.get("tune_crf")}
    sources = {v["id"]: v["id"] for v in spec.VARIANTS if v.get("tune_crf")}
    for v in spec.VARIANTS:
        if "crf_from" in v:
            if v["crf_from"] not in tuned:
                raise ValueError(f"{spec.NAME} variant {v['id']!r}: crf_from {v['crf_from']!r} is not a variant "
                                 f"with tune_crf (those: {', '.join(sorted(tuned)) or 'none'})")
            sources[v["id"]] = v["crf_from"]
    return sources


def preset_crf_grid(spec, cfg):
    """The preset's CRF grid {setting: [values]} (its tuning "crf"), or one clear error."""
    grid = cfg.get("tuning", {}).get("crf")
    if not grid:
        raise ValueError(f"{spec.NAME}: variants with tune_crf need the preset's CRF grid (tuning: crf: "
                         "{setting: [values]})")
    return grid


def tuning_plans(spec, cfg, preset):
    """The learning-rate selection runs: each variant with "tune_lr": [scales] is trained at the
    preset's lr × each scale, on the training split less cfg['tuning']['holdout'] images, and scored
    on those held-out images (data option holdout, data.HeldOut): never on the validation split.
    Variant ids are '<id>@<scale>'.

    The same for the CRF's settings of a variant with "tune_crf": true: one model trained on those
    training images, evaluated at every point of the preset's CRF grid (tuning "crf", see crf_grid)
    on the held-out ones; variant ids '<id>@crf<i>' (i: the point's place in the grid)."""
    grid = []
    for v in spec.VARIANTS:
        if preset not in v.get("presets", PRESETS):
            continue
        if v.get("tune_lr") and v.get("tune_crf"):  # the CRF grid would be scored at an lr not yet chosen
            raise ValueError(f"{spec.NAME} variant {v['id']!r}: tune_lr and tune_crf cannot be combined; "
                             "fix the lr of a variant whose CRF is tuned")
        base = {"model": v.get("model", {}), "preset_overrides": v.get("preset_overrides", {})}
        for scale in v.get("tune_lr", []):
            train_cfg = {**v.get("train", {}), "lr_scale": scale * v.get("train", {}).get("lr_scale", 1.0)}
            grid.append({"id": f"{v['id']}@{scale:g}", **base, "train": train_cfg,
                         "eval": {**v.get("eval", {}), **NO_TIMING}})
        for i, crf in enumerate(crf_grid(preset_crf_grid(spec, cfg)) if v.get("tune_crf") else []):
            grid.append({"id": f"{v['id']}@crf{i}", **base, "train": v.get("train", {}),
                         "eval": {**v.get("eval", {}), **NO_TIMING, "crf": crf}})
    if not grid:
        return []
    if "tuning" not in cfg:
        raise ValueError(f"{spec.NAME}: variants with tune_lr or tune_crf need the preset's 'tuning' settings "
                         "(holdout, seeds)")
    tune_cfg = {**cfg, "data": {**cfg["data"], "holdout": cfg["tuning"]["holdout"]}, "seeds": cfg["tuning"]["seeds"]}
    grid_spec = types.SimpleNamespace(NAME=spec.NAME, MODEL=getattr(spec, "MODEL", {}), VARIANTS=grid)
    return plan_runs(grid_spec, tune_cfg, preset)


def check_plans(plans):
    """Fail before any training on what would fail later: unknown model options or eval options,
    a backbone given weights it cannot take. Models are built on the meta device (shapes only, no
    memory, no weights file read)."""
    for model_cfg in {json.dumps(p["model"], sort_keys=True): p["model"] for p in plans}.values():
        cfg = json.loads(json.dumps(model_cfg))
        weights = cfg["backbone"].pop("weights", None)
        if weights not in (None, "imagenet") and not os.path.isfile(weights):
            raise FileNotFoundError(f"weights file not found: {weights} (--weights)")
        try:
            with torch.device("meta"):
                model = build_model(cfg, 2)
        except TypeError as err:  # an option the model's constructor does not take
            raise ValueError(f"bad model options for arch {cfg['arch']!r}: {err}") from None
        for plan in plans:
            if plan["model"] == model_cfg:
                model_options(model, plan["eval"])  # unknown eval options fail here, not after training


def run_dir_of(out_dir, plan):
    return os.path.join(out_dir, "runs", plan["run_id"])


def run_group(plans, out_dir, device, progress=True):
    """Train (or resume, or skip) the run that `plans` share, then evaluate each plan and compute
    its analyses. Returns (plan, train info, eval result) per plan. Runs in a worker process when
    --jobs > 1. Under torchrun every rank trains the run together; rank 0 alone writes and
    evaluates (the others return no results)."""
    first = plans[0]
    device = WORKER_DEVICE or device
    if device.startswith("cuda:"):
        torch.cuda.set_device(device)  # synchronize() and new tensors go to this GPU
    torch.set_num_threads(first["train"]["threads"])  # part of the run's config: it changes the numbers
    run_dir = run_dir_of(out_dir, first)
    os.makedirs(run_dir, exist_ok=True)
    main = is_main()
    with file_lock(os.path.join(run_dir, ".lock")) if main else contextlib.nullcontext():
        train_path = os.path.join(run_dir, "train.json")
        if main:
            write_json({k: first[k] for k in ("data", "model", "train", "seed")}, os.path.join(run_dir, "config.json"))
            if os.path.exists(train_path) and read_json(train_path)["status"] != OK:
                os.remove(train_path)  # a rerun retries a failed run (from its last checkpoint)
        barrier()  # every rank sees the same train.json and checkpoint
        model = None
        if not os.path.exists(train_path):
            train_set = build_dataset(first["data"], "train")
            seed_everything(first["seed"])
            model = build_model(first["model"], train_set.num_classes)
            started = time.time()
            try:
                info = {"status": OK, **train(model, train_set, first["train"], first["seed"], run_dir,
                                              device, progress)}
            except NonFiniteLoss as err:
                info = {"status": "failed: non-finite loss", "error": str(err)}
            info["train_wall_s"] = time.time() - started
            if main:
                write_json(info, train_path)
        barrier()
        if not main:
            return []
        info = {**read_json(train_path), "device": device}  # the device of this call (its rows name it)
        results = []
        for plan in plans:
            eval_path = os.path.join(run_dir, f"eval-{plan['eval_id']}.json")
            if info["status"] == OK:
                todo = [a for a in plan["analyses"] if not os.path.exists(analysis_path(out_dir, plan, a))]
                if todo or not os.path.exists(eval_path):
                    val_set = build_dataset(plan["data"], "val")
                    model = model or load_model(run_dir, plan["model"], val_set.num_classes)
                if not os.path.exists(eval_path):
                    started = time.time()
                    try:
                        result = evaluate(model, val_set, plan["eval"], device)
                    except CRFUnavailable as err:  # this row fails (a rerun retries it); the others go on
                        results.append({"status": "failed: CRF unavailable", "error": str(err)})
                        continue
                    result["eval_wall_s"] = time.time() - started
                    result["params"] = count_params(model)
                    result["head_params"] = sum(p.numel() for n, p in model.named_parameters()
                                                if not n.startswith("backbone."))
                    write_json(result, eval_path)
                for name in todo:
                    save_analysis(analysis_path(out_dir, plan, name),
                                  ANALYSES[name](model, val_set, plan["eval"], device, run_dir))
            results.append(read_json(eval_path) if os.path.exists(eval_path) else {})
    return [(plan, info, result) for plan, result in zip(plans, results)]


def analysis_path(out_dir, plan, name):
    """Small data an analysis keeps of a trained run (committed with the CSVs; the report draws from it)."""
    return analysis_file(out_dir, plan["run_id"], plan["eval_id"], name)


def load_model(run_dir, model_cfg, num_classes):
    model = build_model(model_cfg, num_classes)
    model.load_state_dict(torch.load(os.path.join(run_dir, "model.pt"), map_location="cpu", weights_only=True))
    return model


def needs_timing(plan):
    return bool(plan["eval"].get("speed_repeats") or plan["eval"].get("train_speed_steps"))


def timing(plan, out_dir, device):
    """Speed of a finished run, measured in the timing phase: after every run of the ablation has
    trained, one plan at a time in this process, so nothing else of the suite trains beside it.
    Kept in the run folder (timing-<eval_id>.json)."""
    run_dir = run_dir_of(out_dir, plan)
    path = os.path.join(run_dir, f"timing-{plan['eval_id']}.json")
    if not os.path.exists(path):
        torch.set_num_threads(plan["train"]["threads"])
        result = {}
        if plan["eval"].get("speed_repeats"):
            val_set = build_dataset(plan["data"], "val")
            model = load_model(run_dir, plan["model"], val_set.num_classes)
            result.update(time_inference(model, val_set, plan["eval"], device))
        if plan["eval"].get("train_speed_steps"):
            from ablations.timing import time_training
            train_set = build_dataset(plan["data"], "train")
            seed_everything(plan["seed"])
            model = build_model(plan["model"], train_set.num_classes)
            result["train_img_per_s"] = time_training(model, train_set, plan["train"],
                                                      plan["eval"]["train_speed_steps"], device)
        result["timing_load_avg_1m"] = round(os.getloadavg()[0], 2)
        write_json(result, path)
    return read_json(path)


def git_sha():
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ablations", "segmodels", "data"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def device_name(device):
    """'cpu', or the GPU's name and index (e.g. 'NVIDIA H200 (cuda:1)')."""
    if device == "cpu":
        return device
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    return f"{torch.cuda.get_device_name(index)} (cuda:{index})"


def worker_devices(device):
    """The devices --jobs workers take in turn: every visible GPU for 'cuda', else just `device`."""
    if device == "cuda":
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or [device]
    return [device]


WORKER_DEVICE = None  # a --jobs worker's own device (start_worker)


def start_worker(parent_pid, devices, counter):
    """Worker initializer: the next device in turn (worker k: devices[k % len]), so with --device
    cuda each worker has a GPU of its own; and the worker ends with its parent (die_with_parent)."""
    global WORKER_DEVICE
    with counter.get_lock():
        WORKER_DEVICE, counter.value = devices[counter.value % len(devices)], counter.value + 1
    die_with_parent(parent_pid)


def cpu_model():
    """The CPU's model name (Linux), as a row's provenance beside its CPU capability."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor())
    except OSError:
        return platform.processor()


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def make_row(plan, info, result, device, sha, started=None):
    """One CSV row: what was run (its whole configuration), what it scored, and where and with what
    it ran."""
    backbone = plan["model"]["backbone"]
    row = {
        "ablation": plan["ablation"], "variant": plan["variant"], "seed": plan["seed"], "preset": plan["preset"],
        "dataset": plan["data"]["name"], "image_size": plan["data"].get("image_size", plan["data"].get("crop_size")),
        "backbone": backbone["name"] + (str(backbone.get("depth", "")) if backbone["name"] == "resnet" else ""),
        "iterations": plan["train"]["iterations"], "batch_size": plan["train"]["batch_size"],
        "lr": plan["train"]["lr"], "threads": plan["train"]["threads"],
        "data_config": json.dumps({k: v for k, v in plan["data"].items() if k != "root"}, sort_keys=True),
        "model_config": json.dumps(plan["model"], sort_keys=True),
        "train_config": json.dumps(plan["train"], sort_keys=True),
        "eval_config": json.dumps(plan["eval"], sort_keys=True),
    }
    for key, value in result.items():  # metrics, plus any a model reports (e.g. per-stage shares)
        if key in ("status", "error"):  # an evaluation that failed (run_group)
            continue
        if key == "per_class_iou":
            value = json.dumps(value)
        row[key] = value
    row.update({
        "train_img_per_s": result.get("train_img_per_s", info.get("train_img_per_s")),
        "wall_s": info.get("train_wall_s", 0) + result.get("eval_wall_s", 0),
        "device": device_name(info.get("device", device)), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_model": cpu_model(),
        # the machine's 1-min load average when the row was written: timings taken beside other
        # work (load above the core count) are slower than the same run alone
        "load_avg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
        "host": platform.node(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "git_sha": sha, "world_size": world()[1], "seed_looks": json.dumps(plan["looks"]), "plan_id": plan["plan_id"], "run_id": plan["run_id"], "eval_id": plan["eval_id"],
        "status": result.get("status", info["status"]),
        "call_started_at": started,  # when the run_ablation call that wrote this row began (its wall time)
        "finished_at": now_iso(),
    })
    return row


def remove_stale_tmp(out_dir):
    """Temporary files of writers that were killed mid-write (`<file>.<pid>.tmp` whose pid is gone)."""
    for folder, _, files in os.walk(out_dir):
        for name in files:
            parts = name.split(".")
            if name.endswith(".tmp") and len(parts) >= 3 and parts[-2].isdigit() and not pid_alive(int(parts[-2])):
                os.remove(os.path.join(folder, name))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(parent_pid):
    """Worker initializer: end this worker as soon as its parent is gone (kill, kill -9, a
    scheduler's SIGTERM, the OOM killer), so no orphan goes on training into the results folder."""
    def watch():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def todo_plans(plans, csv_path):
    """The plans without a finished ("ok") row in csv_path (whose rows are checked on reading)."""
    done = {row_key(r) for r in read_rows(csv_path).to_dict("records") if r["status"] == OK}
    return [p for p in plans if row_key(p) not in done]


def check_data(plans):
    """Fail early on missing or bad data: each dataset the plans train or evaluate on is opened and
    its check() (every file it will read) run, before any training."""
    for data_cfg in {json.dumps(p["data"], sort_keys=True) for p in plans}:
        for split in ("val", "train"):
            dataset = build_dataset(json.loads(data_cfg), split)
            if hasattr(dataset, "check"):
                dataset.check()


def run_ablation(spec, cfg, preset, out_dir="results", device="cpu", jobs=1, progress=True, launcher=None):
    """Train and evaluate the runs of one ablation; rows go to out_dir/<name>.csv. Returns the
    number of rows written by this call.

    The sequential design (ablations/verdicts.py): with the preset's seeds a list of looks (e.g.
    [3, 5, 8]), every variant first gets looks[0] seeds; after each look the claims are judged, and
    only the variants of claims still undecided get seeds up to the next look. Finished runs are
    reused, so a rerun (or a killed run's rerun) redoes no work."""
    # everything that can be checked is checked before anything is written: no run folder for a
    # bad configuration, bad results file or bad data
    csv_path = os.path.join(out_dir, f"{spec.NAME}.csv")
    progress = progress and is_main()  # under torchrun, rank 0 speaks for all
    plans, tuning = plan_runs(spec, cfg, preset), tuning_plans(spec, cfg, preset)
    check_plans(plans + tuning)
    first = first_look_runs(plans, tuning)
    if cfg.get("max_runs") is not None and len(first) > cfg["max_runs"]:
        raise ValueError(f"{spec.NAME}: max_runs {cfg['max_runs']} is below the {len(first)} runs of the "
                         "first look and the lr selection")
    check_data(todo_plans(plans, csv_path) + tuning)
    os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
    remove_stale_tmp(out_dir)
    written, started = 0, now_iso()
    if tuning:  # first the learning rates of the "tune_lr" variants, on held-out training images
        tuning_csv = tuning_csv_path(out_dir, spec.NAME)
        os.makedirs(os.path.dirname(tuning_csv), exist_ok=True)
        written += run_plans(spec, tuning, tuning_csv, out_dir, device, jobs, progress, "lr selection", started,
                             launcher)
        rows = read_rows(tuning_csv)
        rows = rows[rows["plan_id"] == tuning[0]["plan_id"]]
        lrs, crfs = choose_lrs(spec, rows), choose_crfs(spec, rows)
        untuned = ({v["id"] for v in spec.VARIANTS if v.get("tune_lr")} - set(lrs)) | \
                  {v for v, source in crf_sources(spec).items() if source not in crfs}
        plans = [p for p in plan_runs(spec, cfg, preset, lrs, crfs) if p["variant"] not in untuned]
    looks, wanted = plans[0]["looks"], {p["variant"] for p in plans}
    planned = first_look_runs(plans, tuning)
    for k, n in enumerate(looks, 1):
        look = [p for p in plans if p["seed"] < n and p["variant"] in wanted]
        written += run_plans(spec, look, csv_path, out_dir, device, jobs, progress, f"look {k}/{len(looks)}", started,
                             launcher)
        if k == len(looks):
            break
        rows = read_rows(csv_path)
        rows = rows[rows["plan_id"] == plans[0]["plan_id"]]
        # nearest a decision first (fewest seeds needed at the observed difference; ties: file order)
        verdicts = sorted(claim_verdicts(spec, rows, looks, upto=k), key=lambda v: v[-1])
        undecided = [c for c, verdict, *_ in verdicts if verdict not in DECIDED]
        failed = {v for v, g in rows.groupby("variant") if (g["status"] != OK).all()}
        wanted, left, hopeless = next_look(undecided, plans, looks[k], planned, cfg.get("max_runs"), failed)
        if progress and hopeless:
            tqdm.write(f"{spec.NAME}: {len(hopeless)} undecided claim(s) get no more seeds: every run of "
                       f"{', '.join(sorted(failed & {v for c in hopeless for v in claim_variants(c)}))} failed")
        if progress and left:
            tqdm.write(f"{spec.NAME}: {len(left)} undecided claim(s) get no more seeds: max_runs "
                       f"{cfg['max_runs']} reached")
        if not wanted:
            break
        if progress:
            tqdm.write(f"{spec.NAME}: {len(undecided)} claim(s) undecided after look {k}; seeds up to "
                       f"{looks[k]} for {', '.join(sorted(wanted))}")
    return written


def first_look_runs(plans, tuning):
    """Run ids of the first look and of the lr selection: what every ablation trains."""
    return {p["run_id"] for p in plans if p["seed"] < p["looks"][0]} | {p["run_id"] for p in tuning}


def next_look(undecided, plans, seeds, planned, max_runs=None, failed=frozenset()):
    """The variants that get seeds up to `seeds` at the next look, the undecided claims the run budget
    leaves out, and those left out because a variant they read has failed in every run so far
    (`failed`: e.g. a deep linear stack that diverges at the preset's lr; more seeds of it would
    only fail again, and they would take budget from claims that can still be decided).

    The run budget (the ablation file's MAX_RUNS for the preset: the most distinct training runs
    the ablation may plan, lr selection and runs shared with other ablations included) is spent on
    the undecided claims in the order given (the runner: nearest a decision first); a claim whose
    extra runs would exceed it gets no more seeds. `planned` (run ids) grows with what is taken.
    Stopping a claim early, for whatever reason the data give, keeps the error control: each look
    tests at its own α, fixed in advance (a Bonferroni split), so the looks it skips only lower its
    chance of a wrong decision."""
    wanted, left, hopeless = set(), [], []
    for claim in undecided:
        variants = set(claim_variants(claim))
        if variants & set(failed):
            hopeless.append(claim)
            continue
        extra = {p["run_id"] for p in plans if p["variant"] in variants and p["seed"] < seeds} - planned
        if max_runs is not None and len(planned) + len(extra) > max_runs:
            left.append(claim)
            continue
        wanted |= variants
        planned |= extra
    return wanted, left, hopeless


def outcome(info, result):
    """Where a plan's status lies: its evaluation's if that failed (e.g. CRF unavailable), else its
    training's."""
    return result if "status" in result else info


class RunJob:
    """One run group as a cluster job (ablations/launch.py): train, evaluate and time it, then write
    its rows into the run folder (rows-<id>.json) for the submitting process to merge. Requeued at
    its time limit, it resumes from the run's checkpoint."""

    def __init__(self, plans, out_dir, device, sha, started):
        self.plans, self.out_dir, self.device, self.sha, self.started = plans, out_dir, device, sha, started

    def rows_path(self):
        keys = sorted(row_key(p) for p in self.plans)
        return os.path.join(run_dir_of(self.out_dir, self.plans[0]), f"rows-{config_hash(keys)}.json")

    def __call__(self):
        rows = []
        for plan, info, result in run_group(self.plans, self.out_dir, self.device, progress=False):
            if outcome(info, result)["status"] == OK and needs_timing(plan):  # the job has its node to itself
                result = {**result, **timing(plan, self.out_dir, self.device)}
            rows.append(make_row(plan, info, result, self.device, self.sha, self.started))
        write_json(rows, self.rows_path())
        return self.rows_path()

    def checkpoint(self, *args, **kwargs):
        """submitit calls this at the time limit (or on preemption): the same job again; training
        resumes from ckpt.pt and finished evaluations are kept."""
        import submitit
        return submitit.helpers.DelayedSubmission(self)


def run_plans(spec, plans, csv_path, out_dir, device, jobs, progress, what, started=None, launcher=None):
    """Train, evaluate and time the plans not yet done; returns the number of rows written. With a
    launcher (ablations/launch.py), each run group is a cluster job; its rows are merged here."""
    groups = {}
    for plan in todo_plans(plans, csv_path):
        groups.setdefault(plan["run_id"], []).append(plan)
    sha, written = git_sha(), 0
    bar = tqdm(total=len(groups), desc=f"{spec.NAME} runs, {what}", disable=not (progress and is_main()),
               dynamic_ncols=True)
    timed = []

    def record(outputs):
        nonlocal written
        for plan, info, result in outputs:
            failure = outcome(info, result)
            if failure["status"] == OK and needs_timing(plan):
                timed.append((plan, info, result))  # its row is written after the timing phase
                continue
            written += put_row(csv_path, make_row(plan, info, result, device, sha, started))
            if failure["status"] != OK:
                tqdm.write(f"{spec.NAME} {plan['variant']} seed {plan['seed']}: {failure['status']} ({failure.get('error')})")
        bar.update(1)

    if launcher:
        from ablations.launch import run_jobs
        paths = run_jobs(launcher, [RunJob(g, out_dir, device, sha, started) for g in groups.values()],
                         f"{spec.NAME}-{what.replace(' ', '-').replace('/', '-of-')}")
        for path in paths:
            for row in read_json(path):
                written += put_row(csv_path, row)
                if row["status"] != OK:
                    tqdm.write(f"{spec.NAME} {row['variant']} seed {row['seed']}: {row['status']}")
            bar.update(1)
    elif jobs <= 1 or len(groups) <= 1:
        for group in groups.values():
            record(run_group(group, out_dir, device, progress=progress))
    else:
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=start_worker,
                                    initargs=(os.getpid(), worker_devices(device), context.Value("i", 0))) as pool:
            futures = [pool.submit(run_group, g, out_dir, device, False) for g in groups.values()]
            for future in cf.as_completed(futures):
                record(future.result())
    bar.close()
    for plan, info, result in sorted(timed, key=lambda t: (t[0]["seed"], t[0]["variant"])):
        written += put_row(csv_path, make_row(plan, info, {**result, **timing(plan, out_dir, device)}, device, sha, started))
    barrier()  # every rank reads the rows rank 0 wrote
    return written

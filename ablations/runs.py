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
import fcntl
import hashlib
import io
import json
import multiprocessing
import os
import platform
import subprocess
import time

import pandas as pd
import torch
import torchvision
from tqdm import tqdm

from ablations.evaluate import evaluate
from ablations.presets import PRESETS, deep_merge
from ablations.train import NonFiniteLoss, seed_everything, train
from data import build_dataset
from segmodels import build_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# train-config keys that do not change what is computed, so stay out of the run id
NOT_IN_RUN_ID = ("checkpoint_every", "workers")


def config_hash(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def preset_config(spec, preset, seeds=None, data=None, data_root=None, weights=None, iterations=None):
    """The preset for one ablation: base preset, the ablation's overrides, then the CLI's."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    cfg = deep_merge(PRESETS[preset], getattr(spec, "PRESETS", {}).get(preset, {}))
    if seeds is not None:
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1, got {seeds}")
        cfg["seeds"] = seeds
    if data is not None and data != cfg["data"]["name"]:
        keep = {k: v for k, v in cfg["data"].items() if k == "crop_size"}
        cfg["data"] = {"name": data, **keep}
    if data_root is not None:
        cfg["data"]["root"] = data_root
    if weights is not None:
        cfg["model"]["backbone"]["weights"] = weights
    if iterations is not None:
        if iterations < 1:
            raise ValueError(f"--iterations must be >= 1, got {iterations}")
        cfg["train"]["iterations"] = iterations
    return cfg


def plan_runs(spec, cfg, preset):
    """One plan per (variant, seed): everything needed to train, evaluate and write its row."""
    plans = []
    for variant in spec.VARIANTS:
        if preset not in variant.get("presets", PRESETS):  # a variant may be kept to some presets
            continue
        model = deep_merge(deep_merge(cfg["model"], getattr(spec, "MODEL", {})), variant.get("model", {}))
        train_cfg = deep_merge(cfg["train"], variant.get("train", {}))
        if "lr_scale" in train_cfg:  # a variant may scale the preset's lr rather than fix one
            train_cfg["lr"] = round(train_cfg["lr"] * train_cfg.pop("lr_scale"), 12)
        eval_cfg = deep_merge(cfg["eval"], variant.get("eval", {}))
        for seed in range(cfg["seeds"]):
            identity = {"data": {k: v for k, v in cfg["data"].items() if k != "root"}, "model": model,
                        "train": {k: v for k, v in train_cfg.items() if k not in NOT_IN_RUN_ID}, "seed": seed}
            plans.append({"ablation": spec.NAME, "variant": variant["id"], "seed": seed, "preset": preset,
                          "data": cfg["data"], "model": model, "train": train_cfg, "eval": eval_cfg,
                          "run_id": config_hash(identity), "eval_id": config_hash(eval_cfg)})
    return plans


def variant_models(spec, preset):
    """{variant id: its resolved model config} at a preset (what the report hooks rebuild models from)."""
    return {p["variant"]: p["model"] for p in plan_runs(spec, preset_config(spec, preset), preset)}


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(obj, path):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, default=str)
    os.replace(tmp, path)


@contextlib.contextmanager
def file_lock(path):
    """An exclusive lock held while the block runs (also across processes and invocations)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_group(plans, out_dir, device, threads=None, progress=True):
    """Train (or resume, or skip) the run that `plans` share, then evaluate each plan.
    Returns one result dict per plan. Runs in a worker process when --jobs > 1."""
    if threads:
        torch.set_num_threads(threads)
    first = plans[0]
    run_dir = os.path.join(out_dir, "runs", first["run_id"])
    os.makedirs(run_dir, exist_ok=True)
    with file_lock(os.path.join(run_dir, ".lock")):
        write_json({k: first[k] for k in ("data", "model", "train", "seed")}, os.path.join(run_dir, "config.json"))
        train_path = os.path.join(run_dir, "train.json")
        model = None
        if not os.path.exists(train_path):
            train_set = build_dataset(first["data"], "train")
            seed_everything(first["seed"])
            model = build_model(first["model"], train_set.num_classes)
            started = time.time()
            try:
                info = {"status": "ok", **train(model, train_set, first["train"], first["seed"], run_dir,
                                                device, progress)}
            except NonFiniteLoss as err:
                info = {"status": "failed: non-finite loss", "error": str(err)}
            info["train_wall_s"] = time.time() - started
            write_json(info, train_path)
        info = read_json(train_path)
        results = []
        for plan in plans:
            eval_path = os.path.join(run_dir, f"eval-{plan['eval_id']}.json")
            if info["status"] == "ok" and not os.path.exists(eval_path):
                val_set = build_dataset(plan["data"], "val")
                if model is None:
                    model = build_model(plan["model"], val_set.num_classes)
                    model.load_state_dict(torch.load(os.path.join(run_dir, "model.pt"), map_location="cpu",
                                                     weights_only=True))
                started = time.time()
                result = evaluate(model, val_set, plan["eval"], device)
                result["eval_wall_s"] = time.time() - started
                result["params"] = sum(p.numel() for p in model.parameters())
                result["head_params"] = sum(p.numel() for n, p in model.named_parameters()
                                            if not n.startswith("backbone."))
                write_json(result, eval_path)
            results.append(read_json(eval_path) if os.path.exists(eval_path) else {})
    return [(plan, info, result) for plan, result in zip(plans, results)]


def load_trained_run(results_dir, run_id):
    """(model in eval mode, its validation set) of a finished run, rebuilt from its folder; None when
    the folder's config.json or model.pt is missing (run folders are not committed)."""
    run_dir = os.path.join(results_dir, "runs", str(run_id))
    config_path, weights_path = os.path.join(run_dir, "config.json"), os.path.join(run_dir, "model.pt")
    if not (os.path.exists(config_path) and os.path.exists(weights_path)):
        return None
    config = read_json(config_path)
    val_set = build_dataset(config["data"], "val")
    model = build_model(config["model"], val_set.num_classes)
    model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return model.eval(), val_set


def git_sha():
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ablations", "segmodels", "data"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def make_row(plan, info, result, device, sha):
    """One CSV row: what was run, what it scored, and where and with what it ran."""
    backbone = plan["model"]["backbone"]
    row = {
        "ablation": plan["ablation"], "variant": plan["variant"], "seed": plan["seed"], "preset": plan["preset"],
        "dataset": plan["data"]["name"], "image_size": plan["data"].get("image_size", plan["data"].get("crop_size")),
        "backbone": backbone["name"] + (str(backbone.get("depth", "")) if backbone["name"] == "resnet" else ""),
        "iterations": plan["train"]["iterations"], "batch_size": plan["train"]["batch_size"],
        "lr": plan["train"]["lr"], "data_config": json.dumps({k: v for k, v in plan["data"].items() if k != "root"}),
    }
    for key, value in result.items():  # metrics, plus any a model reports (e.g. per-stage shares)
        if key == "per_class_iou":
            value = json.dumps(value)
        row[key] = value
    row.update({
        "train_img_per_s": info.get("train_img_per_s"), "wall_s": info.get("train_wall_s", 0) + result.get("eval_wall_s", 0),
        "device": device if device == "cpu" else torch.cuda.get_device_name(0),
        # the machine's 1-min load average when the row was written: timings taken beside other
        # work (load above the core count) are slower than the same run alone
        "load_avg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
        "host": platform.node(), "torch": torch.__version__, "torchvision": torchvision.__version__,
        "git_sha": sha, "run_id": plan["run_id"], "eval_id": plan["eval_id"], "status": info["status"],
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    return row


def row_key(row):
    return (str(row["variant"]), int(row["seed"]), str(row["run_id"]), str(row["eval_id"]))


def read_rows(csv_path) -> pd.DataFrame:
    return pd.read_csv(csv_path) if os.path.exists(csv_path) else pd.DataFrame()


def append_row(csv_path, row):
    """Add a row unless the same (variant, seed, run, eval) is already there. The file is rewritten
    whole under a lock and swapped in atomically, so no reader or crash ever sees a torn row."""
    with file_lock(csv_path + ".lock"):
        table = read_rows(csv_path)
        if len(table) and row_key(row) in {row_key(r) for r in table.to_dict("records")}:
            return False
        table = pd.concat([table, pd.DataFrame([row])], ignore_index=True) if len(table) else pd.DataFrame([row])
        buf = io.StringIO()
        table.to_csv(buf, index=False)
        tmp = f"{csv_path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, csv_path)
        return True


def run_ablation(spec, cfg, preset, out_dir="results", device="cpu", jobs=1, progress=True):
    """Train and evaluate every (variant, seed) of one ablation; rows go to out_dir/<name>.csv.
    Returns the number of rows written by this call."""
    os.makedirs(os.path.join(out_dir, "runs"), exist_ok=True)
    csv_path = os.path.join(out_dir, f"{spec.NAME}.csv")
    plans = plan_runs(spec, cfg, preset)
    done = {row_key(r) for r in read_rows(csv_path).to_dict("records")}
    todo = [p for p in plans if (p["variant"], p["seed"], p["run_id"], p["eval_id"]) not in done]
    groups = {}
    for plan in todo:
        groups.setdefault(plan["run_id"], []).append(plan)
    for data_cfg in {json.dumps(p["data"], sort_keys=True) for p in todo}:
        build_dataset(json.loads(data_cfg), "val")  # fail early on missing data; builds the cache once
        build_dataset(json.loads(data_cfg), "train")
    sha, written = git_sha(), 0
    bar = tqdm(total=len(groups), desc=f"{spec.NAME} runs", disable=not progress, dynamic_ncols=True)

    def record(outputs):
        nonlocal written
        for plan, info, result in outputs:
            written += append_row(csv_path, make_row(plan, info, result, device, sha))
            if info["status"] != "ok":
                tqdm.write(f"{spec.NAME} {plan['variant']} seed {plan['seed']}: {info['status']} ({info.get('error')})")
        bar.update(1)

    if jobs <= 1 or len(groups) <= 1:
        for group in groups.values():
            record(run_group(group, out_dir, device, progress=progress))
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with cf.ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_group, g, out_dir, device, threads, False) for g in groups.values()]
            for future in cf.as_completed(futures):
                record(future.result())
    bar.close()
    return written

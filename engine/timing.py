"""Speed of a finished run, measured in the timing phase: after every run of the ablation has
trained, one plan at a time in the main process, so nothing else of the suite trains beside it and a
ratio between variants (DeepLab's LargeFOV vs 7×7, a cascade's ρ) compares the models, not the
machine's load. Kept in the run folder (timing-<eval_id>.json) and merged into the plan's row.

- inference (eval speed_repeats): one fixed batch, warm-up passes untimed, then repeated timed
  passes, median, synchronised on GPU; per-stage times where the model reports them;
- training (eval train_speed_steps): the same step as training (engine/step.py) on one fixed batch,
  warm-up steps untimed.
"""
import os
import statistics
import time

import torch

from data import build_dataset
from engine.evaluate import model_options
from engine.rows import read_json, write_json
from engine.run import load_model, run_dir_of
from engine.step import compiled, make_optimizer, train_step
from engine.trainer import seed_everything
from segmodels import build_model


def needs_timing(plan):
    return bool(plan.eval.get("speed_repeats") or plan.eval.get("train_speed_steps"))


@torch.no_grad()
def time_inference(model, dataset, cfg, device="cpu"):
    """Inference speed as a benchmark measures it: one fixed batch (the first `speed_batch` images,
    default the eval batch size), `speed_warmup` untimed passes (default 3), then `speed_repeats`
    timed passes, synchronised on GPU. Returns infer_ms (median ms per image), infer_fps_median, and
    for every statistic the model reports in ms (key ending in '_ms', e.g. per-stage times) its
    median over the timed passes, which replaces the accuracy pass's mean."""
    model_opts = model_options(model, cfg)
    n = min(cfg.get("speed_batch", cfg["batch_size"]), len(dataset))
    images = torch.stack([dataset[i][0] for i in range(n)]).to(device)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    for _ in range(cfg.get("speed_warmup", 3)):
        model.predict(images, **model_opts)
    times, stats = [], {}
    for _ in range(cfg["speed_repeats"]):
        sync()
        tick = time.perf_counter()
        _, pass_stats = model.predict(images, **model_opts)
        sync()
        times.append(time.perf_counter() - tick)
        for key, value in pass_stats.items():
            if key.endswith("_ms"):
                stats.setdefault(key, []).append(value)
    infer_ms = 1000 * statistics.median(times) / n
    return {"infer_ms": infer_ms, "infer_fps_median": 1000 / infer_ms, "speed_batch": n,
            **{key: statistics.median(values) for key, values in stats.items()}}


def time_training(model, dataset, cfg, steps, device="cpu", warmup=3):
    """Images per second of training steps of `model` with the train config `cfg`."""
    model.to(device).train()
    if cfg.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, cfg)
    batch = [dataset[(i, i)] for i in range(min(cfg["batch_size"], len(dataset)))]
    images = torch.stack([b[0] for b in batch]).to(device)
    labels = torch.stack([b[1] for b in batch]).to(device)
    if cfg.get("channels_last"):
        images = images.contiguous(memory_format=torch.channels_last)
    forward = compiled(model) if cfg.get("compile") else model  # compiled in the warm-up steps
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for step in range(warmup + steps):
        if step == warmup:
            sync()
            tick = time.perf_counter()
        train_step(forward, opt, images, labels, cfg, device, check_finite=False)
    sync()
    return steps * len(images) / (time.perf_counter() - tick)


def time_run(plan, out_dir, device):
    """The plan's speed (timing-<eval_id>.json in its run folder, measured once)."""
    run_dir = run_dir_of(out_dir, plan)
    path = os.path.join(run_dir, f"timing-{plan.eval_id}.json")
    if not os.path.exists(path):
        torch.set_num_threads(plan.train["threads"])
        result = {}
        if plan.eval.get("speed_repeats"):
            val_set = build_dataset(plan.data, "val")
            model = load_model(run_dir, plan.model, val_set.num_classes)
            result.update(time_inference(model, val_set, plan.eval, device))
        if plan.eval.get("train_speed_steps"):
            train_set = build_dataset(plan.data, "train")
            seed_everything(plan.seed)
            model = build_model(plan.model, train_set.num_classes)
            result["train_img_per_s"] = time_training(model, train_set, plan.train, plan.eval["train_speed_steps"],
                                                      device)
        result["timing_load_avg_1m"] = round(os.getloadavg()[0], 2)
        write_json(result, path)
    return read_json(path)

"""Speed of finished runs, measured in the timing phase: after a look's runs have trained, in the
main process, so nothing else of the suite trains beside it and a ratio between variants (DeepLab's
LargeFOV vs 7×7, a cascade's ρ) compares the models, not the machine's load. Kept in the run folder
(timing-<eval_id>.json) and merged into the plan's row.

- inference (eval speed_repeats): each model in eval mode on one fixed batch, warm-up passes
  untimed, then rounds of one timed pass of every model of the look (interleaved, so a drift of the
  machine reaches them alike), median, synchronised on GPU; per-stage times where the model reports them;
- training (eval train_speed_steps): the same step as training (engine/step.py) on one fixed batch,
  warm-up steps untimed, one plan after another.
"""
import json
import os
import random
import statistics
import time

import torch

from data import build_dataset
from engine.evaluate import model_options
from engine.one_run import load_model, run_dir_of
from engine.rows import numbers_problem
from engine.step import compiled, make_optimizer, train_step
from engine.trainer import seed_everything
from files import read_checked_json, read_or_set_aside, write_json
from segmodels import build_model


def needs_timing(plan):
    return bool(plan.eval.get("speed_repeats") or plan.eval.get("train_speed_steps"))


def speed_images(dataset, cfg, device="cpu"):
    """The fixed batch an inference timing passes: the first `speed_batch` images (default the eval
    batch size)."""
    n = min(cfg.get("speed_batch", cfg["batch_size"]), len(dataset))
    return torch.stack([dataset[i][0] for i in range(n)]).to(device)


@torch.no_grad()
def time_inference(timed, device="cpu", order_seed=0):
    """Inference speed as a benchmark measures it, for several models at once, interleaved: timed is
    [(model, images, eval cfg)]; each model in eval mode runs its `speed_warmup` untimed passes
    (default 3), then come `speed_repeats` rounds, each one timed pass of every model in an order
    shuffled from order_seed, synchronised on GPU — so a drift of the machine's speed reaches every
    model alike instead of whichever was timed while it lasted (lc_threshold's deviations: the rule
    and its probe). One model alone is the plain benchmark. Returns, per model, infer_ms (median ms
    per image), infer_fps_median, and for every statistic the model reports in ms (key ending in
    '_ms', e.g. per-stage times) its median over the timed passes, which replaces the accuracy
    pass's mean."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    passes = []
    for model, images, cfg in timed:
        model.to(device).eval()
        opts = model_options(model, cfg)
        for _ in range(cfg.get("speed_warmup", 3)):
            model.predict(images, **opts)
        passes.append((model, images, opts))
    times, stats = [[] for _ in timed], [{} for _ in timed]
    rng = random.Random(order_seed)
    for round_ in range(max((cfg["speed_repeats"] for _, _, cfg in timed), default=0)):
        order = [i for i, (_, _, cfg) in enumerate(timed) if cfg["speed_repeats"] > round_]
        rng.shuffle(order)
        for i in order:
            model, images, opts = passes[i]
            sync()
            tick = time.perf_counter()
            _, pass_stats = model.predict(images, **opts)
            sync()
            times[i].append(time.perf_counter() - tick)
            for key, value in pass_stats.items():
                if key.endswith("_ms"):
                    stats[i].setdefault(key, []).append(value)
    out = []
    for (_, images, _), model_times, model_stats in zip(timed, times, stats):
        infer_ms = 1000 * statistics.median(model_times) / len(images)
        out.append({"infer_ms": infer_ms, "infer_fps_median": 1000 / infer_ms, "speed_batch": len(images),
                    **{key: statistics.median(values) for key, values in model_stats.items()}})
    return out


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


def timing_path(plan, out_dir):
    return os.path.join(run_dir_of(out_dir, plan), f"timing-{plan.eval_id}.json")


def time_runs(plans, out_dir, device, order_seed=0):
    """The plans' speeds (timing-<eval_id>.json in each run folder, measured once), one dict per plan:
    inference timed interleaved over the plans not yet timed (time_inference), training speed one
    plan after another."""
    todo = [plan for plan in plans if read_or_set_aside(timing_path(plan, out_dir), numbers_problem) is None]  # damaged: timed again
    results = {plan.key: {} for plan in todo}
    by_threads, val_sets = {}, {}
    for plan in todo:
        if plan.eval.get("speed_repeats"):
            by_threads.setdefault(plan.train["threads"], []).append(plan)
    for threads, group in by_threads.items():
        torch.set_num_threads(threads)
        timed = []
        for plan in group:
            key = json.dumps(plan.data, sort_keys=True)
            if key not in val_sets:
                val_sets[key] = build_dataset(plan.data, "val")
            val_set = val_sets[key]
            model = load_model(run_dir_of(out_dir, plan), plan.model, val_set.num_classes)
            timed.append((model, speed_images(val_set, plan.eval, device), plan.eval))
        for plan, speed in zip(group, time_inference(timed, device, order_seed)):
            results[plan.key].update(speed)
    for plan in todo:
        torch.set_num_threads(plan.train["threads"])
        if plan.eval.get("train_speed_steps"):
            train_set = build_dataset(plan.data, "train")
            seed_everything(plan.seed)
            model = build_model(plan.model, train_set.num_classes)
            results[plan.key]["train_img_per_s"] = time_training(model, train_set, plan.train,
                                                                 plan.eval["train_speed_steps"], device)
        results[plan.key]["timing_load_avg_1m"] = round(os.getloadavg()[0], 2)
        write_json(results[plan.key], timing_path(plan, out_dir))
    return [read_checked_json(timing_path(plan, out_dir), numbers_problem) for plan in plans]

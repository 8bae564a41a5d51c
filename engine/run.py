"""One run: train it (or resume it, or find it trained), evaluate each plan that reads it, and keep
their analyses. The run folder results/runs/<run_id>/ holds config.json, ckpt.pt (while unfinished),
model.pt, train.json, eval-<eval_id>.json, timing-<eval_id>.json and log.jsonl; a rerun skips what is
finished and resumes what is not.
"""
import contextlib
import json
import os
import time

import torch

from data import build_dataset
from engine.analysis import missing_analyses, save_analyses
from engine.distributed import barrier, is_main
from engine.evaluate import evaluate, forward_key
from engine.rows import OK, RunResult, Status, file_lock, read_json, write_json
from engine.step import NonFiniteLoss
from engine.trainer import seed_everything, train
from segmodels import build_model
from segmodels.base import count_params
from segmodels.crf import CRFUnavailable

WORKER_DEVICE = None  # a --jobs worker's own device (engine/execute.py start_worker)


def run_dir_of(out_dir, plan):
    return os.path.join(out_dir, "runs", plan.run_id)


def load_model(run_dir, model_cfg, num_classes):
    model = build_model(model_cfg, num_classes)
    model.load_state_dict(torch.load(os.path.join(run_dir, "model.pt"), map_location="cpu", weights_only=True))
    return model


def train_run(plan, run_dir, device, progress):
    """Train plan's run (resuming from its checkpoint); its train.json record (status, speed, time)."""
    train_set = build_dataset(plan.data, "train")
    seed_everything(plan.seed)
    model = build_model(plan.model, train_set.num_classes)
    started = time.time()
    try:
        info = {"status": OK, **train(model, train_set, plan.train, plan.seed, run_dir, device, progress)}
    except NonFiniteLoss as err:
        info = {"status": Status.DIVERGED, "error": str(err)}
    info["train_wall_s"] = time.time() - started
    return model, info


def evaluate_plan(plan, model, val_set, device, passes=None):
    """The plan's scores (eval-<id>.json): evaluate.py's, its time and the model's parameter counts.
    passes: the network outputs shared with the run's other plans of the same forward (evaluate.py)."""
    started = time.time()
    scores = evaluate(model, val_set, plan.eval, device, passes)
    scores["eval_wall_s"] = time.time() - started
    scores["params"] = count_params(model)
    _, new = model.parameter_groups()
    scores["head_params"] = sum(p.numel() for p in new)
    return scores


def run_group(plans, out_dir, device, progress=True):
    """Train (or resume, or skip) the run that `plans` share, then evaluate each plan and compute its
    analyses: a RunResult per plan. Runs in a worker process when --jobs > 1. Under torchrun every
    rank trains the run together; rank 0 alone writes and evaluates (the others return [])."""
    first = plans[0]
    device = WORKER_DEVICE or device
    if device.startswith("cuda:"):
        torch.cuda.set_device(device)  # synchronize() and new tensors go to this GPU
    torch.set_num_threads(first.train["threads"])  # part of the run's config: it changes the numbers
    run_dir = run_dir_of(out_dir, first)
    os.makedirs(run_dir, exist_ok=True)
    main = is_main()
    with file_lock(os.path.join(run_dir, ".lock")) if main else contextlib.nullcontext():
        train_path = os.path.join(run_dir, "train.json")
        if main:
            write_json({"data": first.data, "model": first.model, "train": first.train, "seed": first.seed},
                       os.path.join(run_dir, "config.json"))
            if os.path.exists(train_path) and read_json(train_path)["status"] != OK:
                os.remove(train_path)  # a rerun retries a failed run (from its last checkpoint)
        barrier()  # every rank sees the same train.json and checkpoint
        model = None
        if not os.path.exists(train_path):
            model, info = train_run(first, run_dir, device, progress)
            if main:
                write_json(info, train_path)
        barrier()
        if not main:
            return []
        info = read_json(train_path)
        results = []
        # plans of the run whose evaluations pass the same images through the same network share
        # one forward (kept only where another plan reads it)
        forward_of = {plan.key: (json.dumps(plan.data, sort_keys=True), forward_key(plan.eval)) for plan in plans}
        shared = [key for key in forward_of.values() if list(forward_of.values()).count(key) > 1]
        passes = {key: [] for key in shared}
        for plan in plans:
            if info["status"] != OK:
                results.append(RunResult(plan, Status(info["status"]), info, {}, info.get("error"), device))
                continue
            eval_path = os.path.join(run_dir, f"eval-{plan.eval_id}.json")
            todo = missing_analyses(out_dir, plan)
            if todo or not os.path.exists(eval_path):
                val_set = build_dataset(plan.data, "val")
                model = model or load_model(run_dir, plan.model, val_set.num_classes)
            if not os.path.exists(eval_path):
                try:
                    write_json(evaluate_plan(plan, model, val_set, device, passes.get(forward_of[plan.key])),
                                   eval_path)
                except CRFUnavailable as err:  # this row fails (a rerun retries it); the others go on
                    results.append(RunResult(plan, Status.CRF_UNAVAILABLE, info, {}, str(err), device))
                    continue
            if todo:
                save_analyses(out_dir, plan, todo, model, val_set, device, run_dir)
            results.append(RunResult(plan, OK, info, read_json(eval_path), None, device))
    return results

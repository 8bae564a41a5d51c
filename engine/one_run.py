"""One run: train it (or resume it, or find it trained), evaluate each plan that reads it, and keep
their analyses. The run folder results/runs/<run_id>/ holds config.json, ckpt.pt (while unfinished),
model.pt, train.json, eval-<eval_id>.json, timing-<eval_id>.json and log.jsonl; a rerun skips what is
finished and resumes what is not.
"""
import contextlib
import json
import os
import time
from collections import Counter

import torch

from data import build_dataset
from engine.analysis import missing_analyses, save_analyses
from engine.distributed import barrier, is_main
from engine.evaluate import evaluate, forward_key
from engine.rows import OK, RunResult, Status, numbers_problem, train_record_problem
from engine.step import NonFiniteLoss
from engine.trainer import seed_everything, train
from files import DamagedFile, file_lock, read_checked_json, read_json, read_or_set_aside, set_aside, write_json
from segmodels import build_model
from segmodels.base import count_params
from segmodels.crf import CRFUnavailable

WORKER_DEVICE = None  # a --jobs worker's own device (engine/workers.py start_worker)


def run_dir_of(out_dir, plan):
    return os.path.join(out_dir, "runs", plan.run_id)


def load_model(run_dir, model_cfg, num_classes):
    """The trained model of a run folder; DamagedFile if its model.pt cannot be read as this model's."""
    model, path = build_model(model_cfg, num_classes), os.path.join(run_dir, "model.pt")
    try:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except FileNotFoundError:
        raise
    except Exception as err:  # random bytes, a cut-off file, another model's weights
        raise DamagedFile(path, f"{type(err).__name__}: {err}") from None
    return model


def train_run(plan, run_dir, device, progress, out_dir):
    """Train plan's run (resuming from its checkpoint); its train.json record (status, speed, time).
    A run with a base (a variant's init_from) starts from the base's trained model (start_from_base)."""
    base_failed = start_from_base(plan.base, out_dir, device, progress) if plan.base else None
    if base_failed:
        return None, base_failed
    train_set = build_dataset(plan.data, "train")
    seed_everything(plan.seed)
    model = build_model(plan.model, train_set.num_classes)
    if plan.base:
        load_base(model, os.path.join(run_dir_of(out_dir, plan.base), "model.pt"))
    started = time.time()
    try:
        info = {"status": OK, **train(model, train_set, plan.train, plan.seed, run_dir, device, progress)}
    except NonFiniteLoss as err:
        info = {"status": Status.DIVERGED, "error": str(err)}
    except DamagedFile as damaged:  # its checkpoint: set aside, and the run trained afresh
        set_aside(damaged)
        return train_run(plan, run_dir, device, progress, out_dir)
    info["train_wall_s"] = time.time() - started
    return model, info


def eval_problem(scores):
    """Why an eval-<id>.json cannot become a row (engine/rows.py numbers_problem), or None."""
    return numbers_problem(scores, required=("mIoU",))


def start_from_base(base, out_dir, device, progress):
    """Train the base run unless it is trained (its folder's lock held, so a worker training it now is
    waited for). None if it is trained; else the failed record the run that needs it takes."""
    with run_lock(out_dir, base):
        _, info, _ = trained(base, out_dir, device, progress)
    if info["status"] == OK:
        return None
    return {"status": info["status"], "error": f"its base run {base.run_id} ({base.variant}): {info.get('error')}"}


def load_base(model, path):
    """The base's trained weights into model: every parameter the model does not train must be among them
    (the new layers, e.g. DeepLab-MSc's branches, keep their initialisation), and nothing else may be."""
    missing, unexpected = model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=False)
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    if unexpected or set(frozen) & set(missing):
        raise ValueError(f"{path} is not this model's base: unexpected {sorted(unexpected)[:3]}, "
                         f"frozen but missing {sorted(set(frozen) & set(missing))[:3]}")


def run_lock(out_dir, plan):
    """The run folder's lock (rank 0's; other ranks need none): one process trains or evaluates a run at a time."""
    run_dir = run_dir_of(out_dir, plan)
    os.makedirs(run_dir, exist_ok=True)
    return file_lock(os.path.join(run_dir, ".lock")) if is_main() else contextlib.nullcontext()


def trained(plan, out_dir, device, progress):
    """(the model, if trained now or found trained, else None; the run's train.json record; the validation set
    if it was built): trains (or resumes) plan's run unless it is done; a failed run is retried from its last
    checkpoint; a damaged train.json or model.pt is set aside and the run trained again. Under the run's lock."""
    run_dir, main = run_dir_of(out_dir, plan), is_main()
    train_path = os.path.join(run_dir, "train.json")
    model = val_set = None
    if main:
        write_json({"data": plan.data, "model": plan.model, "train": plan.train, "seed": plan.seed},
                   os.path.join(run_dir, "config.json"))
        info = read_or_set_aside(train_path, train_record_problem)  # damaged: set aside, trained again
        if info is not None and info["status"] != OK:
            os.remove(train_path)  # a rerun retries a failed run (from its last checkpoint)
        elif info is not None:  # trained: its model must load, else it is set aside and trained again
            val_set = build_dataset(plan.data, "val")
            try:
                model = load_model(run_dir, plan.model, val_set.num_classes)
            except DamagedFile as damaged:
                set_aside(damaged)
                os.remove(train_path)
            except FileNotFoundError:  # model.pt gone
                os.remove(train_path)
    barrier()  # every rank sees the same train.json and checkpoint
    if not os.path.exists(train_path):
        model, info = train_run(plan, run_dir, device, progress, out_dir)
        if main:
            write_json(info, train_path)
    barrier()
    return model, read_json(train_path), val_set


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
    with run_lock(out_dir, first):
        model, info, val_set = trained(first, out_dir, device, progress)
        if not is_main():
            return []
        results = []
        # plans of the run still to evaluate whose evaluations pass the same images through the same network
        # share one forward (kept only where another of them reads it)
        forward_of = {plan.key: (json.dumps(plan.data, sort_keys=True), forward_key(plan.eval)) for plan in plans}
        pending = Counter(forward_of[p.key] for p in plans
                          if not os.path.exists(os.path.join(run_dir, f"eval-{p.eval_id}.json")))
        shared = [key for key, n in pending.items() if n > 1]
        passes = {key: [] for key in shared}
        computed = {}  # analyses of this run's model, shared by its plans (analysis.save_analyses)
        for plan in plans:
            if info["status"] != OK:
                results.append(RunResult(plan, Status(info["status"]), info, {}, info.get("error"), device))
                continue
            eval_path = os.path.join(run_dir, f"eval-{plan.eval_id}.json")
            scores = read_or_set_aside(eval_path, eval_problem)  # damaged: set aside, evaluated again
            todo = missing_analyses(out_dir, plan)
            if todo or scores is None:
                val_set = val_set or build_dataset(plan.data, "val")
                model = model or load_model(run_dir, plan.model, val_set.num_classes)
            if scores is None:
                try:
                    write_json(evaluate_plan(plan, model, val_set, device, passes.get(forward_of[plan.key])),
                                   eval_path)
                except CRFUnavailable as err:  # this row fails (a rerun retries it); the others go on
                    results.append(RunResult(plan, Status.CRF_UNAVAILABLE, info, {}, str(err), device))
                    continue
            if todo:
                save_analyses(out_dir, plan, todo, model, val_set, device, run_dir, computed)
            results.append(RunResult(plan, OK, info, read_checked_json(eval_path, eval_problem), None, device))
    return results


def save_missing_run_analyses(plans, out_dir, device):
    """The "run" analyses that finished plans lack (an analysis added after they ran, e.g. "heldout"),
    computed from their run folder's model.pt, under the run's lock and at its thread count, as
    run_group computes them. A run whose model.pt is gone (or damaged) goes without: its rows stand."""
    groups = {}
    for plan in plans:
        todo = missing_analyses(out_dir, plan)
        if todo and os.path.exists(os.path.join(run_dir_of(out_dir, plan), "model.pt")):
            groups.setdefault(plan.run_id, []).append((plan, todo))
    threads = torch.get_num_threads()
    try:
        for group in groups.values():
            first, run_dir = group[0][0], run_dir_of(out_dir, group[0][0])
            torch.set_num_threads(first.train["threads"])
            with run_lock(out_dir, first):
                val_set = build_dataset(first.data, "val")
                try:
                    model = load_model(run_dir, first.model, val_set.num_classes)
                except (DamagedFile, FileNotFoundError):
                    continue
                computed = {}
                for plan, todo in group:
                    save_analyses(out_dir, plan, todo, model, val_set, device, run_dir, computed)
    finally:
        torch.set_num_threads(threads)

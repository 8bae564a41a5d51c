"""A paper-shape run proven to start, on any machine: `run_all.py --ablation A --preset paper --dry-run`.

For the ablation's largest model at the paper preset: a stand-in of its dataset in the real on-disk
layout at real image sizes (data/standin.py) and a weights file of the right architecture where the
ImageNet weights are looked for (or --weights), all in a temporary folder; then 2 training
iterations at the paper's crop (a small batch on CPU, the preset's on a GPU), stopped after the
first as if killed and resumed from its checkpoint; 2 validation images evaluated through the real
loader in one batch (different sizes); and what the whole paper run costs: FLOPs of one training
step at the preset's batch (torch.utils.flop_counter, counted on the meta device: no compute) ×
iterations × runs, and on a GPU the measured hours. Nothing is written into the results folder.
"""
import dataclasses
import os
import resource
import tempfile
import time

import torch

from data import HeldOut, build_dataset
from engine.config import CommandLine, settings
from engine.evaluate import evaluate
from engine.plans import check_plans, plan_runs
from engine.trainer import seed_everything, train
from data.standin import make_standin
from segmodels import build_backbone, build_model, without_weights
from segmodels.backbones import IMAGENET_WEIGHTS_ENUMS, imagenet_checkpoint
from segmodels.base import count_params

ITERATIONS = 2
CPU_BATCH = 2  # images per training step on a CPU (the paper's batches are GPU-sized)
EVAL_IMAGES = 2


def backbone_arch(backbone):
    """The architecture whose ImageNet weights a backbone config loads (torchvision's name where it has one)."""
    if backbone["name"] != "resnet":
        return "vgg16"
    return f"resnet{backbone['depth']}" + ("_gcn" if backbone.get("gcn") else "") + (
        "_deep_stem" if backbone.get("deep_stem") else "")


def write_standin_weights(backbone, folder):
    """A state dict of the backbone's architecture (random values, from seed 0) where the paper run looks
    for its ImageNet weights: where torch.hub caches torchvision's ($TORCH_HOME, set by the caller to a
    temporary folder), or, for an architecture torchvision has no weights of (ResNet-269, ResNet50-GCN),
    a file in `folder` whose path is returned (what a user would give as --weights); None otherwise.
    Its BatchNorm running statistics are those of random images passed through it, as trained weights'
    are of theirs: a model that freezes BatchNorm (GCN, the layer cascade) would otherwise not normalise
    at all, and 101 unnormalised layers overflow. A ResNet's residual branches end in BatchNorm scales of
    zero (torchvision's zero_init_residual; trained ones are small): with frozen BatchNorm, one draw in
    six of random ResNet-152 weights made the dry run's second step overflow otherwise."""
    import torchvision
    arch = backbone_arch(backbone)
    torch.manual_seed(0)
    if arch in IMAGENET_WEIGHTS_ENUMS:
        path, own = imagenet_checkpoint(arch)[0], None
        model = getattr(torchvision.models, arch)(weights=None, **({"zero_init_residual": True}
                                                                 if arch.startswith("resnet") else {}))
    else:
        path = own = os.path.join(folder, f"{arch}.pth")
        model = build_backbone({k: v for k, v in backbone.items() if k != "weights"})
        for block in model.modules():  # zero_init_residual, as torchvision's above
            if block is model:  # the deep stem's bn3 is the trunk's own, not a residual branch's last
                continue
            last = getattr(block, "bn3", None) or (block.expand[1] if hasattr(block, "expand") else None)
            if last is not None:
                torch.nn.init.zeros_(last.weight)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average over the passes
    model.train()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            model(torch.randn(4, 3, 224, 224, generator=gen))
    torch.save(model.state_dict(), path)
    return own


def train_step_flops(model_cfg, num_classes, batch, crop, device="cpu"):
    """FLOPs of one training step (forward and backward) at `batch` × crop²: counted on the meta device
    (no compute), or, for a model that reads values in its step (a loss part's .item(), the cascade's
    region sizes), on two real images on `device`, × batch / 2 (two: BatchNorm after a 1×1 pooling
    needs more than one value per channel)."""
    from torch.utils.flop_counter import FlopCounterMode
    cfg = without_weights(model_cfg)

    def count(device, n):
        with torch.device(device):
            model = build_model(cfg, num_classes).train()
            images = torch.rand(n, 3, crop, crop)
            labels = torch.randint(0, num_classes, (n, crop, crop))
        with FlopCounterMode(display=False) as counter:
            loss, _ = model(images, labels)
            loss.backward()
        return counter.get_total_flops()
    try:
        return count("meta", batch)
    except (RuntimeError, NotImplementedError):
        return count(device, 2) * batch // 2


def largest(plans, num_classes):
    """The plan whose model has the most parameters (counted on the meta device)."""
    def size(plan):
        with torch.device("meta"):
            return count_params(build_model(without_weights(plan.model), num_classes))
    return max(plans, key=size)


def peak_memory_mb(device):
    """Peak GPU memory allocated, or on CPU the process's peak resident memory (dry_run_alone runs each
    ablation in a process of its own, so it is that ablation's)."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def dry_run_alone(load, name, data=None, weights=None, device="cpu"):
    """dry_run of ablation `name` in a fresh process (its own peak memory; nothing left behind); load(name)
    gives its record there (the caller's loader, e.g. ablations.load: the engine imports no ablation)."""
    import concurrent.futures as cf
    import multiprocessing
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_dry_run_by_name, load, name, data, weights, device).result()


def _dry_run_by_name(load, name, data, weights, device):
    return dry_run(load(name), data, weights, device)


def dry_run(spec, data=None, weights=None, device="cpu"):
    """Run the checks above for one ablation; returns a dict of what was measured."""
    paper = settings(spec, "paper", CommandLine(seeds=1, data=data, data_root="standin", weights=weights))
    plans = plan_runs(spec, paper)
    check_plans(plans)
    runs = len({p.run_id for p in plans})  # the paper preset's runs (one seed each)
    with tempfile.TemporaryDirectory(prefix=f"dryrun-{spec.name}-") as tmp:
        old_home = os.environ.get("TORCH_HOME")
        os.environ["TORCH_HOME"] = os.path.join(tmp, "torch")
        try:
            name = paper.data["name"]
            data_cfg = {**paper.data, "root": str(make_standin(name, os.path.join(tmp, name)))}
            train_set, val_set = build_dataset(data_cfg, "train"), build_dataset(data_cfg, "val")
            plan = largest(plans, val_set.num_classes)
            if plan.model["backbone"].get("weights") == "imagenet":
                own = write_standin_weights(plan.model["backbone"], tmp)
                if own is not None:
                    plan = dataclasses.replace(plan, model={**plan.model, "backbone": {**plan.model["backbone"],
                                                                                       "weights": own}})
            batch = plan.train["batch_size"] if device.startswith("cuda") else min(CPU_BATCH, plan.train["batch_size"])
            train_cfg = {**plan.train, "iterations": ITERATIONS, "checkpoint_every": 1, "batch_size": batch,
                         "workers": 0, "threads": os.cpu_count() or 1}
            torch.set_num_threads(train_cfg["threads"])
            run_dir = os.path.join(tmp, "run")
            seed_everything(0)
            model = build_model(plan.model, train_set.num_classes)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            train(model, train_set, train_cfg, 0, run_dir, device, progress=False, stop_at=1)  # "killed" after 1
            if not os.path.exists(os.path.join(run_dir, "ckpt.pt")):
                raise RuntimeError(f"{spec.name} dry run: no checkpoint after iteration 1")
            seed_everything(0)
            model = build_model(plan.model, train_set.num_classes)
            info = train(model, train_set, train_cfg, 0, run_dir, device, progress=False)  # resumes at 1
            step_s = (time.perf_counter() - started) / ITERATIONS
            scores = evaluate(model, HeldOut(val_set, 0, EVAL_IMAGES), {**plan.eval, "batch_size": EVAL_IMAGES},
                              device)
            crop = data_cfg["crop_size"]
            flops = train_step_flops(plan.model, train_set.num_classes, plan.train["batch_size"], crop)
            result = {
                "ablation": spec.name, "variant": plan.variant, "params": count_params(model),
                "data": f"{name} stand-in, image sizes {sorted({tuple(val_set[i][0].shape[1:]) for i in range(EVAL_IMAGES)})}",
                "crop": crop, "batch": batch, "preset_batch": plan.train["batch_size"],
                "step_s": step_s, "train_img_per_s": info["train_img_per_s"], "peak_mb": peak_memory_mb(device),
                "eval_mIoU": scores["mIoU"], "flops_per_step": flops, "iterations": plan.train["iterations"],
                "runs": runs, "total_pflop": flops * plan.train["iterations"] * runs / 1e15,
            }
            if device.startswith("cuda"):
                result["gpu_hours"] = step_s * plan.train["iterations"] * runs / 3600
            return result
        finally:
            if old_home is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = old_home


def summary(result):
    """One line of a dry run's result."""
    line = (f"{result['ablation']}: {result['variant']} ({result['params'] / 1e6:.1f}M params) on the {result['data']}: "
            f"{ITERATIONS} iterations at crop {result['crop']}, batch {result['batch']} (preset {result['preset_batch']}), "
            f"stopped after 1 and resumed: {result['step_s']:.1f} s a step, peak memory {result['peak_mb']:.0f} MB; "
            f"{EVAL_IMAGES} val images in one batch evaluated; the paper run: {result['flops_per_step'] / 1e12:.2f} TFLOP "
            f"a step × {result['iterations']} iterations × {result['runs']} run(s) = {result['total_pflop']:.0f} PFLOP "
            "(lr and CRF selection runs not counted)")
    return line + (f", ≈ {result['gpu_hours']:.1f} GPU hours at the measured step time" if "gpu_hours" in result else "")

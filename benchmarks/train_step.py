"""One training step of each model the suite trains, four ways: eager, channels_last, torch.compile,
and compile + channels_last; or, with --preset paper, of the paper-shape models (PSPNet-ResNet50 at
473², GCN-ResNet152 at 512², DeepLab-LargeFOV at 321², at the paper's batch or --batch) three ways:
fp32 eager, bf16 autocast + channels_last, and that compiled, with images/s, peak GPU memory and MFU
(FLOPs of a step from torch.utils.flop_counter / step time / the device's peak, --peak-tflops).
Beside each mode's ms/step, its achieved GFLOP/s (those FLOPs / the step time; on the CPU presets
counted on one real step of the model, so that the distance to the core's peak is visible).

The models are the quick preset's (or --preset's), built from the ablation files' resolved plans,
one variant per distinct architecture. A step is engine/step.py's train_step, as in training: the
loss through forward (model(images, labels, progress=...)), backward, an SGD step, on one fixed batch of the
preset's batch size from the preset's dataset, with one thread (train.threads of every preset). The
four modes of a model take turns in `--rounds` rounds of `--steps` timed steps each, so a load change
slows them alike; the first `--warmup` steps of each mode are untimed, and the compiling modes'
warm-up (the compile) is reported apart. Times are the median ms/step over every timed step,
synchronised on GPU; the ratios are eager's median over the mode's (> 1: faster than eager).

    python -m benchmarks.train_step [--steps 5 --rounds 3] [--models gcn_k7,lc] [--out FILE]
    python -m benchmarks.train_step --device cuda
    python -m benchmarks.train_step --device cuda --preset paper [--batch 16] [--peak-tflops 989]
"""
import argparse
import dataclasses
import statistics
import sys
import time

import torch

from engine.step import make_optimizer, train_step

# (name, ablation, variant id): one variant per distinct architecture of the suite
MODELS = (("gcn_k7", "gcn_k", "k7"), ("base_1x1", "gcn_k", "base"), ("conv_k7", "gcn_vs_conv", "conv_k7"),
          ("stack_k7", "gcn_vs_stack", "stack_k7"), ("gcn_br", "gcn_boundary", "gcn_k15_br"),
          ("psp_full", "psp_pool", "b1236_ave_dr"), ("psp_baseline", "psp_pool", "baseline"),
          ("lc_dsn", "lc_threshold", "r1"), ("lc", "lc_threshold", "r0985"),
          ("largefov", "deeplab_fov", "largefov"), ("k7d4", "deeplab_fov", "k7d4"))
MODES = ("eager", "channels_last", "compile", "compile+cl")
# the paper-shape models (random weights and random images at the paper's crop: no data needed)
PAPER_MODELS = (("psp_resnet50", "psp_pool", "b1236_ave_dr"), ("gcn_resnet152", "gcn_k", "k15"),
                ("largefov_vgg16", "deeplab_fov", "largefov"))
PAPER_MODES = ("eager", "bf16+cl", "bf16+cl+compile")
# dense bf16 peak TFLOP/s of known GPUs (vendor data sheets), for MFU without --peak-tflops
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
PROGRESS = 0.75  # training progress passed to forward: past the cascade's start (LC trains its cascade)
# the reference step that makes wall times of different machines comparable (run_all times it at its
# start, each row records it): the quick PSPNet step at channels_last, one thread; REFERENCE_MS is its
# median on the first 2-core AMD EPYC VM (README: 67.1 ms), the machine normalised minutes are counted on
REFERENCE = ("psp_full", "channels_last")
REFERENCE_MS = 67.1
# the data REFERENCE_MS was measured on (psp_pool's one-band scenes, 9 classes), pinned: the step follows the
# class count, and issue 37's grid at the quick preset (17 classes) made it ≈ 1.2-1.3× dearer on one machine,
# which would read as a slower machine and shrink every normalised minute
REFERENCE_DATA = {"name": "synthetic", "image_size": 128, "n_train": 2000, "n_val": 300, "context": True}


def plan_of(ablation, variant, preset):
    """The resolved plan (model, train and data config) of one variant at `preset`, seed 0."""
    from ablations import load
    from engine.config import CommandLine, settings
    from engine.plans import plan_runs
    spec = load(ablation)
    plans = plan_runs(spec, settings(spec, preset, CommandLine(seeds=1)))
    return next(p for p in plans if p.variant == variant)


class Stepper:
    """One mode's model, optimiser and batch; step() runs one training step."""

    def __init__(self, plan, images, labels, num_classes, mode, device):
        from engine.trainer import seed_everything
        from segmodels import build_model
        cfg = plan.train
        seed_everything(0)
        self.model = build_model(plan.model, num_classes).to(device).train()
        channels_last = mode == "channels_last" or "+cl" in mode
        self.cfg = {**cfg, "amp": "bf16"} if "bf16" in mode else cfg  # train.amp, as training reads it
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        self.images, self.labels = images, labels
        self.opt = make_optimizer(self.model, cfg)
        self.forward = torch.compile(self.model) if "compile" in mode else self.model
        self.device = device

    def step(self):
        train_step(self.forward, self.opt, self.images, self.labels, self.cfg, self.device, PROGRESS,
                   check_finite=False)


def batch_of(plan, device):
    """(images, labels, number of classes): a batch of the plan's dataset (the embedded one), or, for a
    real dataset, random images and labels at its crop size (the step's cost does not depend on them)."""
    from data import build_dataset, real_dataset
    n = plan.train["batch_size"]
    if plan.data["name"] == "synthetic":
        data = build_dataset({**plan.data, "n_train": n}, "train")
        batch = [data[(i, i)] for i in range(n)]
        return (torch.stack([b[0] for b in batch]).to(device), torch.stack([b[1] for b in batch]).to(device),
                data.num_classes)
    crop, classes = plan.data["crop_size"], real_dataset(plan.data["name"]).num_classes
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(n, 3, crop, crop, generator=gen).to(device),
            torch.randint(0, classes, (n, crop, crop), generator=gen).to(device), classes)


def bench(name, plan, device, steps, rounds, warmup, modes=MODES):
    """Median ms/step of each mode, the compiling modes' warm-up seconds, failures, and each mode's
    peak GPU memory (MB; empty on a CPU)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    images, labels, num_classes = batch_of(plan, device)
    # every model's forward is one function (segmodels/base.py): without a reset, dynamo's recompile
    # limit (8) is reached after a few models and the rest would silently run eager
    torch._dynamo.reset()
    steppers, warm_s, failed = {}, {}, {}

    def step(mode):
        """One step; False (and the mode dropped) if it failed to compile: a recompile (new shapes)
        can fail after the warm-up."""
        try:
            steppers[mode].step()
            return True
        except torch._dynamo.exc.BackendCompilerFailed as err:  # reported in the table, not timed
            failed[mode] = next((line for line in str(err).splitlines() if line.strip()), type(err).__name__)
            print(f"{name}: {mode} failed: {failed[mode]}", file=sys.stderr, flush=True)
            del steppers[mode]
            return False

    peak_mb = {}
    for mode in modes:
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        steppers[mode] = Stepper(plan, images, labels, num_classes, mode, device)
        tick = time.perf_counter()
        if all(step(mode) for _ in range(warmup)):
            sync()
            warm_s[mode] = time.perf_counter() - tick
        if device.startswith("cuda"):
            peak_mb[mode] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    times = {mode: [] for mode in steppers}
    for _ in range(rounds):
        for mode in list(steppers):
            for _ in range(steps):
                tick = time.perf_counter()
                if not step(mode):
                    break
                sync()
                times[mode].append(1000 * (time.perf_counter() - tick))
    ms = {mode: statistics.median(t) for mode, t in times.items() if mode not in failed}
    return ms, warm_s, failed, peak_mb


def step_flops(plan, device):
    """FLOPs of one training step of the plan's model on the benchmark's batch (torch.utils.flop_counter:
    convolutions and matrix products, forward and backward), counted on a step of its own model, so
    that what a model computes from its data (the cascade's regions) is counted as it is timed."""
    from torch.utils.flop_counter import FlopCounterMode
    images, labels, num_classes = batch_of(plan, device)
    stepper = Stepper(plan, images, labels, num_classes, "eager", device)
    with FlopCounterMode(display=False) as counter:
        stepper.step()
    return counter.get_total_flops()


def reference_plan():
    """The reference step's plan: its model at the quick preset, on REFERENCE_DATA."""
    _, ablation, variant = next(m for m in MODELS if m[0] == REFERENCE[0])
    return dataclasses.replace(plan_of(ablation, variant, "quick"), data=REFERENCE_DATA)


def reference_step_ms(device="cpu", steps=5, rounds=3, warmup=2):
    """Median ms of the reference step (REFERENCE) on this machine now, with one thread as every run
    of the suite (the caller's thread count is restored): a few seconds."""
    name, mode = REFERENCE
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ms, _, _, _ = bench(name, reference_plan(), device, steps, rounds, warmup, (mode,))
    finally:
        torch.set_num_threads(threads)
    return ms[mode]


def table(results, modes, shapes=None, peak_tflops=None, flops=None):
    """Markdown: ms/step per mode, ratio to the first mode, compile warm-ups; 'failed' where a mode
    did not compile (the reasons follow the table). With flops ({model: FLOPs a step}): the achieved
    GFLOP/s per mode (FLOPs a step / step time). With shapes ({model: (batch, FLOPs a step)}):
    images/s, peak GPU memory and MFU (FLOPs a step / step time / peak_tflops) per mode as well."""
    head = ["model", *[f"{m} ms" for m in modes], *[f"{m} ×" for m in modes[1:]],
            *[f"{m} warm-up s" for m in modes if "compile" in m]]
    if flops is not None:
        head += [f"{m} GFLOP/s" for m in modes]
    if shapes is not None:
        head += [*[f"{m} img/s" for m in modes], *[f"{m} peak MB" for m in modes], *[f"{m} MFU %" for m in modes]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for name, (ms, warm, failed, peak_mb) in results.items():
        cell = lambda m, text: "failed" if m in failed else text()
        cells = [name, *[cell(m, lambda: f"{ms[m]:.1f}") for m in modes],
                 *[cell(m, lambda: f"{ms[modes[0]] / ms[m]:.2f}" if modes[0] in ms else "–") for m in modes[1:]],
                 *[cell(m, lambda: f"{warm[m]:.1f}") for m in modes if "compile" in m]]
        if flops is not None:
            cells += [cell(m, lambda: f"{gflops(flops[name], ms[m]):.1f}") for m in modes]
        if shapes is not None:
            batch, step_flop = shapes[name]
            cells += [*[cell(m, lambda: f"{1000 * batch / ms[m]:.1f}") for m in modes],
                      *[cell(m, lambda: f"{peak_mb[m]:.0f}" if m in peak_mb else "–") for m in modes],
                      *[cell(m, lambda: f"{100 * step_flop / (ms[m] / 1000) / (peak_tflops * 1e12):.1f}"
                             if flops and peak_tflops else "–") for m in modes]]
        lines.append("| " + " | ".join(cells) + " |")
        notes += [f"- {name}, {m}: {reason}" for m, reason in failed.items()]
    return "\n".join(lines + ([""] + notes if notes else []))


def gflops(flops, ms):
    """Achieved GFLOP/s of a step of `flops` FLOPs taking `ms` milliseconds."""
    return flops / (ms / 1000) / 1e9


def paper_plan(ablation, variant, batch=None, crop=None):
    """A paper-shape plan: the variant at the paper preset, without weights files (random init), at
    the preset's batch and crop or the ones given."""
    plan = plan_of(ablation, variant, "paper")
    from segmodels import without_weights
    return dataclasses.replace(plan, model=without_weights(plan.model),
                               train={**plan.train, "batch_size": batch or plan.train["batch_size"]},
                               data={**plan.data, "crop_size": crop or plan.data["crop_size"]})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick", choices=("smoke", "quick", "full", "paper"),
                   help="the models of a CPU preset, or the paper-shape models (paper)")
    p.add_argument("--batch", type=int, help="paper: images per step (default: each paper preset's)")
    p.add_argument("--crop", type=int, help="paper: crop size (default: each paper preset's)")
    p.add_argument("--peak-tflops", type=float,
                   help="paper: the device's peak TFLOP/s for MFU (default: bf16 peak of a known GPU, else no MFU)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode per round (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds the modes take turns in (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per mode first (default 2; incl. compile)")
    p.add_argument("--models", help=f"comma-separated subset of: {', '.join(m[0] for m in MODELS)}")
    p.add_argument("--modes", help=f"comma-separated subset of: {', '.join(MODES)} (paper: {', '.join(PAPER_MODES)})")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as every run of the suite)")
    p.add_argument("--out", help="also write the markdown table to this file")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    if min(args.steps, args.rounds, args.warmup, args.threads) < 1:
        p.error("--steps, --rounds, --warmup and --threads must be >= 1")
    paper = args.preset == "paper"
    models, all_modes = (PAPER_MODELS, PAPER_MODES) if paper else (MODELS, MODES)
    names = [m[0] for m in models]
    chosen = args.models.split(",") if args.models else names
    modes = args.modes.split(",") if args.modes else list(all_modes)
    unknown = sorted(set(chosen) - set(names)) + sorted(set(modes) - set(all_modes))
    if unknown:
        p.error(f"unknown model(s)/mode(s) {unknown}; models: {', '.join(names)}; modes: {', '.join(all_modes)}")
    if min(args.batch or 1, args.crop or 1) < 1:
        p.error("--batch and --crop must be >= 1")
    torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in where), None)
    results, shapes, flops = {}, {}, {}
    for name, ablation, variant in models:
        if name in chosen:
            plan = paper_plan(ablation, variant, args.batch, args.crop) if paper else plan_of(ablation, variant, args.preset)
            results[name] = bench(name, plan, args.device, args.steps, args.rounds, args.warmup, modes)
            if paper:
                from data import real_dataset
                from engine.tools.dryrun import train_step_flops
                shapes[name] = (plan.train["batch_size"],
                                train_step_flops(plan.model, real_dataset(plan.data["name"]).num_classes,
                                                 plan.train["batch_size"], plan.data["crop_size"], args.device))
                flops[name] = shapes[name][1]
            else:
                flops[name] = step_flops(plan, args.device)
            print(f"{name}: " + ", ".join(f"{m} {v:.1f} ms ({gflops(flops[name], v):.1f} GFLOP/s)"
                                          for m, v in results[name][0].items()), file=sys.stderr, flush=True)
    text = (f"Training step ({args.preset} preset, {where}, torch {torch.__version__}): median ms/step of "
            f"{args.rounds} rounds × {args.steps} steps after {args.warmup} warm-up steps per mode; "
            f"× = eager ms / mode ms; GFLOP/s: the FLOPs of a step (torch.utils.flop_counter: convolutions "
            f"and matrix products, forward and backward) / its median time")
    if paper:
        crops = {n: paper_plan(a, v, args.batch, args.crop).data["crop_size"] for n, a, v in models if n in shapes}
        text += "; batch × crop: " + ", ".join(f"{n} {shapes[n][0]} × {crops[n]}²" for n in shapes)
        text += f"; MFU against {peak:g} TFLOP/s" if peak else "; no MFU (no --peak-tflops)"
        text += "; peak MB includes the other modes' models and optimiser states, not their activations"
    text += f"\n\n{table(results, modes, shapes if paper else None, peak, flops)}\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

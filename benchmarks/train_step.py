"""One training step of each model the suite trains, four ways: eager, channels_last, torch.compile,
and compile + channels_last.

The models are the quick preset's (or --preset's), built from the ablation files' resolved plans,
one variant per distinct architecture. A step is what ablations/train.py does: the loss through
forward (model(images, labels, progress=...)), backward, an SGD step, on one fixed batch of the
preset's batch size from the preset's dataset, with one thread (train.threads of every preset). The
four modes of a model take turns in `--rounds` rounds of `--steps` timed steps each, so a load change
slows them alike; the first `--warmup` steps of each mode are untimed, and the compiling modes'
warm-up (the compile) is reported apart. Times are the median ms/step over every timed step,
synchronised on GPU; the ratios are eager's median over the mode's (> 1: faster than eager).

    python -m benchmarks.train_step [--steps 5 --rounds 3] [--models gcn_k7,lc] [--out FILE]
    python -m benchmarks.train_step --device cuda
"""
import argparse
import statistics
import sys
import time

import torch

# (name, ablation, variant id): one variant per distinct architecture of the suite
MODELS = (("gcn_k7", "gcn_k", "k7"), ("base_1x1", "gcn_k", "base"), ("conv_k7", "gcn_vs_conv", "conv_k7"),
          ("stack_k7", "gcn_vs_stack", "stack_k7"), ("gcn_br", "gcn_boundary", "gcn_k15_br"),
          ("psp_full", "psp_pool", "b1236_ave_dr"), ("psp_baseline", "psp_pool", "baseline"),
          ("lc_dsn", "lc_threshold", "r1"), ("lc", "lc_threshold", "r0985"),
          ("largefov", "deeplab_fov", "largefov"), ("k7d4", "deeplab_fov", "k7d4"))
MODES = ("eager", "channels_last", "compile", "compile+cl")
PROGRESS = 0.75  # training progress passed to forward: past the cascade's start (LC trains its cascade)


def plan_of(ablation, variant, preset):
    """The resolved plan (model, train and data config) of one variant at `preset`, seed 0."""
    from ablations import load
    from ablations.runs import plan_runs, preset_config
    spec = load(ablation)
    plans = plan_runs(spec, preset_config(spec, preset, seeds=1), preset)
    return next(p for p in plans if p["variant"] == variant)


class Stepper:
    """One mode's model, optimiser and batch; step() runs one training step."""

    def __init__(self, plan, images, labels, num_classes, mode, device):
        from ablations.train import param_groups, seed_everything
        from segmodels import build_model
        cfg = plan["train"]
        seed_everything(0)
        self.model = build_model(plan["model"], num_classes).to(device).train()
        channels_last = mode in ("channels_last", "compile+cl")
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
            images = images.contiguous(memory_format=torch.channels_last)
        self.images, self.labels = images, labels
        self.opt = torch.optim.SGD(param_groups(self.model, cfg["lr"], cfg["head_lr_mult"]), lr=cfg["lr"],
                                   momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
        self.forward = torch.compile(self.model) if mode.startswith("compile") else self.model

    def step(self):
        loss, _ = self.forward(self.images, self.labels, progress=PROGRESS)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def bench(name, plan, device, steps, rounds, warmup, modes=MODES):
    """Median ms/step of each mode and the compiling modes' warm-up seconds."""
    from data import build_dataset
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    data = build_dataset({**plan["data"], "n_train": plan["train"]["batch_size"]}, "train")
    batch = [data[(i, i)] for i in range(plan["train"]["batch_size"])]
    images = torch.stack([b[0] for b in batch]).to(device)
    labels = torch.stack([b[1] for b in batch]).to(device)
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

    for mode in modes:
        steppers[mode] = Stepper(plan, images, labels, data.num_classes, mode, device)
        tick = time.perf_counter()
        if all(step(mode) for _ in range(warmup)):
            sync()
            warm_s[mode] = time.perf_counter() - tick
    times = {mode: [] for mode in steppers}
    for _ in range(rounds):
        for mode in list(steppers):
            for _ in range(steps):
                tick = time.perf_counter()
                if not step(mode):
                    break
                sync()
                times[mode].append(1000 * (time.perf_counter() - tick))
    return {mode: statistics.median(t) for mode, t in times.items() if mode not in failed}, warm_s, failed


def table(results, modes):
    """Markdown: ms/step per mode, ratio to the first mode, compile warm-ups; 'failed' where a mode
    did not compile (the reasons follow the table)."""
    head = ["model", *[f"{m} ms" for m in modes], *[f"{m} ×" for m in modes[1:]],
            *[f"{m} warm-up s" for m in modes if m.startswith("compile")]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes = []
    for name, (ms, warm, failed) in results.items():
        cell = lambda m, text: "failed" if m in failed else text()
        cells = [name, *[cell(m, lambda: f"{ms[m]:.1f}") for m in modes],
                 *[cell(m, lambda: f"{ms[modes[0]] / ms[m]:.2f}" if modes[0] in ms else "–") for m in modes[1:]],
                 *[cell(m, lambda: f"{warm[m]:.1f}") for m in modes if m.startswith("compile")]]
        lines.append("| " + " | ".join(cells) + " |")
        notes += [f"- {name}, {m}: {reason}" for m, reason in failed.items()]
    return "\n".join(lines + ([""] + notes if notes else []))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick", choices=("smoke", "quick", "full"))
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--steps", type=int, default=5, help="timed steps per mode per round (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="rounds the modes take turns in (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per mode first (default 2; incl. compile)")
    p.add_argument("--models", help=f"comma-separated subset of: {', '.join(m[0] for m in MODELS)}")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of: {', '.join(MODES)}")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1, as every run of the suite)")
    p.add_argument("--out", help="also write the markdown table to this file")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda given but torch sees no CUDA device")
    if min(args.steps, args.rounds, args.warmup, args.threads) < 1:
        p.error("--steps, --rounds, --warmup and --threads must be >= 1")
    names = [m[0] for m in MODELS]
    chosen = args.models.split(",") if args.models else names
    modes = args.modes.split(",")
    unknown = sorted(set(chosen) - set(names)) + sorted(set(modes) - set(MODES))
    if unknown:
        p.error(f"unknown model(s)/mode(s) {unknown}; models: {', '.join(names)}; modes: {', '.join(MODES)}")
    torch.set_num_threads(args.threads)
    results = {}
    for name, ablation, variant in MODELS:
        if name in chosen:
            results[name] = bench(name, plan_of(ablation, variant, args.preset), args.device, args.steps,
                                  args.rounds, args.warmup, modes)
            print(f"{name}: " + ", ".join(f"{m} {v:.1f} ms" for m, v in results[name][0].items()),
                  file=sys.stderr, flush=True)
    where = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else f"cpu, {args.threads} thread(s)"
    text = (f"Training step ({args.preset} preset, {where}, torch {torch.__version__}): median ms/step of "
            f"{args.rounds} rounds × {args.steps} steps after {args.warmup} warm-up steps per mode; "
            f"× = eager ms / mode ms\n\n{table(results, modes)}\n")
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

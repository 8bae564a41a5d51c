"""Threads per run vs runs side by side, on the CPU: which gives more training images per second?

Every run of the suite trains with a fixed thread count (train.threads, part of its config), and
`--jobs` runs train side by side. This times the two ways of using N cores for one ablation's
runs: one run at a time with N threads, or N runs at once with one thread each. Each arm trains
the same model (default: the quick preset's GCN k=7 on the small backbone, 128-px images, batch 16)
for `--steps` SGD steps on a fixed batch after warm-up; the arms alternate `--rounds` times, so a
load change slows both alike. Take it on an otherwise idle machine.

    python -m benchmarks.threads [--steps 30 --rounds 3]
"""
import argparse
import multiprocessing
import os
import statistics
import sys

import torch


def one_run(steps, threads, start=None):
    """Images/s of `steps` training steps of the benchmark model with `threads` threads."""
    from data import build_dataset
    from engine.presets import PRESETS
    from engine.timing import time_training
    from segmodels import build_model
    torch.set_num_threads(threads)
    preset = PRESETS["quick"]
    data = build_dataset({**preset["data"], "n_train": preset["train"]["batch_size"]}, "train")
    torch.manual_seed(0)
    model = build_model({"arch": "single_head", "backbone": preset["model"]["backbone"], "head": "gcn", "k": 7},
                        data.num_classes)
    if start is not None:
        start.wait()  # side-by-side runs start together
    return time_training(model, data, preset["train"], steps)


def side_by_side(steps, n):
    """Total images/s of n one-thread runs at once (separate processes)."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        start = manager.Barrier(n)
        with ctx.Pool(n) as pool:
            return sum(pool.starmap(one_run, [(steps, 1, start)] * n))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cores", type=int, default=os.cpu_count())
    args = p.parse_args(argv)
    together, alone = [], []
    for _ in range(args.rounds):
        alone.append(one_run(args.steps, args.cores))
        together.append(side_by_side(args.steps, args.cores))
    a, t = statistics.median(alone), statistics.median(together)
    print(f"{args.cores} cores, {args.steps} steps, median of {args.rounds} alternating rounds:")
    print(f"  one run × {args.cores} threads:   {a:7.1f} img/s   (rounds: {', '.join(f'{v:.1f}' for v in alone)})")
    print(f"  {args.cores} runs × 1 thread:     {t:7.1f} img/s   (rounds: {', '.join(f'{v:.1f}' for v in together)})")
    print(f"  ratio (side by side / one run): {t / a:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())

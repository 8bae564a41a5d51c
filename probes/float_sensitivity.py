"""How precisely is one training run defined? Train a gcn_k variant (smoke preset, seed 0) with its
initial weights multiplied by 1 + eps·N(0, 1) per weight, for a few eps, and print each mIoU.

A run that moves by more than a tolerance under eps ≈ 1e-6 (float32 rounding is ~6e-8) cannot be
matched to that tolerance by any other order of the same float sums — torchrun's half batches and
gradient all-reduce, another thread count: the yardstick for tests/test_distributed.py's gap.
Nothing is written to results/.

python -m probes.float_sensitivity k13 k7 [--iterations 20] [--threads 1] [--eps 1e-6 -1e-6]
"""
import argparse
import tempfile

import torch

from ablations import load
from data import build_dataset
from engine.config import CommandLine, settings
from engine.evaluate import evaluate
from engine.plans import plan_runs
from engine.trainer import seed_everything, train
from segmodels import build_model


def perturbed_miou(plan, eps, noise_seed=1):
    """mIoU of the plan's run trained from its initial weights × (1 + eps·N(0, 1))."""
    train_set = build_dataset(plan.data, "train")
    seed_everything(plan.seed)
    model = build_model(plan.model, train_set.num_classes)
    noise = torch.Generator().manual_seed(noise_seed)  # its own generator: the run's RNG stream is untouched
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + eps * torch.randn(p.shape, generator=noise))
    with tempfile.TemporaryDirectory() as run_dir:
        train(model, train_set, plan.train, plan.seed, run_dir, progress=False)
    return evaluate(model, build_dataset(plan.data, "val"), plan.eval, "cpu")["mIoU"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variants", nargs="+", help="gcn_k variant ids, e.g. k13 k7")
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (the presets train on 1)")
    p.add_argument("--eps", type=float, nargs="+", default=[1e-7, -1e-7, 1e-6, -1e-6, 1e-5, -1e-5])
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    gcn_k = load("gcn_k")
    plans = {q.variant: q for q in plan_runs(gcn_k, settings(gcn_k, "smoke", CommandLine(iterations=args.iterations)))
             if q.seed == 0}
    unknown = [v for v in args.variants if v not in plans]
    if unknown:
        p.error(f"unknown gcn_k variant(s) {', '.join(unknown)}; choose from {', '.join(plans)}")
    print(f"gcn_k smoke, seed 0, {args.iterations} iterations, {args.threads} thread(s): mIoU at eps = 0, "
          + ", ".join(f"{e:g}" for e in args.eps))
    for v in args.variants:
        base = perturbed_miou(plans[v], 0.0)
        moved = [perturbed_miou(plans[v], e) for e in args.eps]
        print(f"{v}: {base:.4f} | " + " ".join(f"{m:.4f}" for m in moved)
              + f" | largest move {max(abs(m - base) for m in moved):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

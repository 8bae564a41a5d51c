"""Probe of the layer cascade's mechanism, run BEFORE any claim is judged: does the dataset have
pixels that stage 1 is unsure about and that the deeper stages get right?

Trains the DSN cascade (schedule "deep", the lc_threshold preset's model) on the embedded scenes,
briefly, in a temporary folder, then prints engine.analysis.stage_probe on the validation set:
per threshold ρ, the share of pixels stage 1 is unsure about (top probability ≤ ρ) and each stage's
accuracy on them and on the confident rest. Nothing is written to results/.

python -m probes.lc_stages [--hard] [--iterations 400] [--preset quick] [--seed 0]
"""
import argparse
import copy
import tempfile
import time

import torch

from ablations import load
from data import build_dataset
from engine.measurements import format_probe, stage_probe_analysis
from engine.config import CommandLine, resolve, settings
from engine.trainer import seed_everything, train
from segmodels import build_model


def probe(preset="quick", hard=False, iterations=None, seed=0, progress=False):
    """Train the DSN cascade of lc_threshold's preset (data in hard mode or not, `iterations` if
    given) and return (probe arrays, train seconds)."""
    spec = load("lc_threshold")
    lc = settings(spec, preset, CommandLine(iterations=iterations))
    cfg = resolve(spec, lc, spec.variant("r1"))  # the DSN model (ρ = 1)
    data = copy.deepcopy(lc.data)
    data.pop("hard", None)
    if hard:
        data["hard"] = True
    train_set, val_set = build_dataset(data, "train"), build_dataset(data, "val")
    torch.set_num_threads(cfg["train"]["threads"])
    seed_everything(seed)
    model = build_model(cfg["model"], train_set.num_classes)
    started = time.time()
    with tempfile.TemporaryDirectory() as run_dir:
        train(model, train_set, cfg["train"], seed, run_dir, "cpu", progress)
    return stage_probe_analysis(model, val_set, cfg["eval"], "cpu"), time.time() - started


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--hard", action="store_true", help="the difficulty mode of the generated scenes")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result, seconds = probe(args.preset, args.hard, args.iterations, args.seed)
    print(f"preset {args.preset}, hard={args.hard}, iterations {args.iterations or 'preset'}, seed {args.seed}: "
          f"trained in {seconds:.0f} s")
    for line in format_probe(result):
        print(line)


if __name__ == "__main__":
    main()

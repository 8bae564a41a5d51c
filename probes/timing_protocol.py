"""Which timing protocol measures the differences between models more precisely: each model's passes
one after another's (the benchmark as it was), or the models interleaved (engine/timing.py
time_inference)? The rule (lc_threshold's deviations) was fixed before this probe ran.

On lc_threshold's quick-preset models of the first `--seeds` seeds (trained beforehand, e.g. by
`python run_all.py --ablation lc_threshold --set seeds=3 --out DIR`), each protocol is run
`--repeats` times in alternation (one after another, interleaved, one after another, ...), every
run with the preset's warm-up and repeats. Noise between models, per protocol: in each repetition
each evaluation's log infer_ms less the repetition's mean over all evaluations; its sd over the
repetitions; the median over the evaluations. Also printed: the paired ratio ρ = 0.985 / ρ = 0.8 per
seed and repetition. Nothing is written.

python -m probes.timing_protocol DIR [--seeds 3] [--repeats 3]
"""
import argparse
import math
import os
import random
import statistics

import torch

from ablations import load
from data import build_dataset
from engine.config import CommandLine, settings
from engine.one_run import load_model, run_dir_of
from engine.plans import plan_runs
from engine.timing import speed_images, time_inference


def log_ms_less_mean(speeds):
    logs = [math.log(s["infer_ms"]) for s in speeds]
    mean = sum(logs) / len(logs)
    return [x - mean for x in logs]


def one_after_another(timed, seed):
    """The protocol as it was: each model timed alone, in an order shuffled from seed."""
    order = list(range(len(timed)))
    random.Random(seed).shuffle(order)
    speeds = {i: time_inference([timed[i]], order_seed=seed)[0] for i in order}
    return [speeds[i] for i in range(len(timed))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="results folder holding lc_threshold's quick-preset run folders")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    spec = load("lc_threshold")
    plans = [q for q in plan_runs(spec, settings(spec, "quick", CommandLine())) if q.seed < args.seeds]
    missing = [q for q in plans if not os.path.exists(os.path.join(run_dir_of(args.out, q), "model.pt"))]
    if missing:
        p.error(f"{len(missing)} of {len(plans)} models not trained in {args.out} (first: {missing[0].variant} "
                f"seed {missing[0].seed}); train them with run_all.py --ablation lc_threshold --set seeds={args.seeds}")
    torch.set_num_threads(plans[0].train["threads"])
    val_set = build_dataset(plans[0].data, "val")
    timed = [(load_model(run_dir_of(args.out, q), q.model, val_set.num_classes), speed_images(val_set, q.eval), q.eval)
             for q in plans]
    protocols = {"one after another": lambda seed: one_after_another(timed, seed),
                 "interleaved": lambda seed: time_inference(timed, order_seed=seed)}
    measured = {name: [] for name in protocols}
    for repeat in range(args.repeats):
        for name, protocol in protocols.items():
            measured[name].append(protocol(repeat))
    index = {(q.variant, q.seed): i for i, q in enumerate(plans)}
    noise = {}
    for name, runs in measured.items():
        centred = [log_ms_less_mean(speeds) for speeds in runs]
        noise[name] = statistics.median(statistics.stdev(c[i] for c in centred) for i in range(len(plans)))
        ratios = [[s[index["r0985", seed]]["infer_ms"] / s[index["r08", seed]]["infer_ms"] for s in runs]
                  for seed in range(args.seeds)]
        level = statistics.mean(s["infer_ms"] for speeds in runs for s in speeds)
        print(f"{name}: noise between models {noise[name]:.4f} (log ms); mean infer_ms {level:.3f}; "
              "ratio 0.985 / 0.8 per seed (over repetitions): "
              + "; ".join(" ".join(f"{r:.3f}" for r in seed_ratios) for seed_ratios in ratios))
    share = noise["interleaved"] / noise["one after another"]
    print(f"interleaved / one after another: {share:.2f} -> "
          + ("interleaved adopted (at most 2/3)" if share <= 2 / 3 else "one after another kept (above 2/3)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

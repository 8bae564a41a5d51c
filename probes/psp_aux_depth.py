"""The probe that chose psp_aux's trunk depth: does an auxiliary loss speed up the main loss's
descent? Trains PSPNet's baseline (no pyramid pooling) at the quick data and settings for a short
run with a given trunk and α, into a folder of its own, and prints the main loss of the logged
training batches averaged per 50 iterations (the numbers in ablations/psp_aux.md).

    python -m probes.psp_aux_depth --convs 1 2 8 8 --alpha 0.4 --seed 0 --out /tmp/probe
    python -m probes.psp_aux_depth --convs 1 2 6 6 --widths 24 32 48 48 --alpha 0 ...
    python -m probes.psp_aux_depth --convs 1 2 8 8 --pretrained --lr 0.004 --head-lr-mult 12.5 ...
    python -m probes.psp_aux_depth ... --pretrained --weights fractal_colour ...

--pretrained starts the trunk from its stand-in (weights/, which must exist for that trunk), the backbone
at --lr and the new layers at --head-lr-mult × it: whether the mechanism survives fine-tuning.
"""
import argparse
import os

import numpy as np
import torch

from ablations.psp_common import PRESETS, SMALL_OS8
from data import build_dataset
from engine.measurements import read_curve
from engine.presets import PRESETS as BASE_PRESETS
from engine.trainer import seed_everything, train
from segmodels import build_model
from segmodels.pretrained import STANDIN_WEIGHTS


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--convs", type=int, nargs=4, default=SMALL_OS8["convs"])
    p.add_argument("--widths", type=int, nargs=4, default=SMALL_OS8["widths"])
    p.add_argument("--alpha", type=float, default=0.4)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pretrained", action="store_true", help="start the trunk from its pretrained stand-in")
    p.add_argument("--weights", choices=list(STANDIN_WEIGHTS), default="fractal",
                   help="with --pretrained: which stand-in (fractal classes alone, or with the colour target)")
    p.add_argument("--lr", type=float, default=None, help="the backbone's lr (default: the preset's)")
    p.add_argument("--head-lr-mult", type=float, default=None, help="the new layers' lr multiplier")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    quick = PRESETS["quick"]
    data = {"name": "synthetic", **quick["data"]}
    model_cfg = {"arch": "pspnet", "bins": [], **quick["model"], "aux_weight": args.alpha,
                 "backbone": {**SMALL_OS8, "convs": args.convs, "widths": args.widths,
                              "weights": args.weights if args.pretrained else None}}
    cfg = {**BASE_PRESETS["quick"]["train"], **quick["train"], "iterations": args.iterations, "checkpoint_every": 10 ** 9}
    cfg.update({k: v for k, v in (("lr", args.lr), ("head_lr_mult", args.head_lr_mult)) if v is not None})
    run_dir = os.path.join(args.out, f"c{''.join(map(str, args.convs))}-w{args.widths[-1]}-a{args.alpha}-s{args.seed}"
                           + (f"-{args.weights}" if args.pretrained else ""))
    if os.path.exists(run_dir):
        raise SystemExit(f"{run_dir} exists")
    train_set = build_dataset(data, "train")
    seed_everything(args.seed)
    info = train(build_model(model_cfg, train_set.num_classes), train_set, cfg, args.seed, run_dir, progress=False)
    curve = read_curve(os.path.join(run_dir, "log.jsonl"))
    it, main_loss = curve["iteration"], curve["main_loss"]
    windows = [main_loss[(it > s) & (it <= s + 50)].mean() for s in range(0, int(it.max()), 50)]
    print(f"{os.path.basename(run_dir)}: train {info['train_s']:.1f} s; main loss per 50 iterations:",
          " / ".join(f"{w:.3f}" for w in windows), "" if "aux_loss" not in curve else
          f"(aux loss, last 50: {np.mean(curve['aux_loss'][it > it.max() - 50]):.3f})")


if __name__ == "__main__":
    main()

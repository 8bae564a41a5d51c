"""Pretrain the CPU backbones' stand-ins of ImageNet on formula-driven images (data/fractals.py):

    python -m engine.tools.pretrain                 # every CPU backbone of the quick and full presets
    python -m engine.tools.pretrain --only small-0123456789 [--out weights]

Each distinct backbone (segmodels/pretrained.py names them) is trained as a classifier of the fractal
classes — its last feature map averaged over space, then one linear layer — from seed 0, on one
thread, with AdamW and a linear decay (RECIPE), and its weights (the trunk only) are written to
weights/<name>.pt with a card weights/<name>.json: the recipe, the file's sha256, the held-out accuracy,
the time it took and the command. A backbone whose weights are "fractal_colour" gets the colour-keeping
stand-in instead (COLOUR_RECIPE: the fractal's coarse colour as a second target; weights/<name>-colour.pt).
The same torch and CPU capability rebuild every file bit for bit (tests/test_pretrain.py checks small ones).
weights/README.md lists the cards.
"""
import argparse
import datetime
import json
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from data.fractals import FractalImages
from engine.reproducible import mkl_setting
from segmodels.pretrained import (KINDS, STANDIN_WEIGHTS, WEIGHTS_DIR, file_sha256, standin_name, standin_of,
                                  standin_paths)

# Chosen before any fine-tuning, by the pilot of the issue that asked for it (64 classes × 120 images at
# 64 px; AdamW 2e-3 with a linear decay reached 95 % held-out accuracy in 14 epochs where SGD stayed at
# chance), and kept for every backbone.
RECIPE = {"classes": 64, "per_class": 120, "held_out": 20, "size": 64, "seed": 0, "epochs": 14, "batch_size": 64,
          "lr": 2e-3, "weight_decay": 0.05, "threads": 1}
# The colour-keeping variant (backbone weights "fractal_colour"): each image's coarse colour (8 classes:
# which RGB channels of the attractor's colour exceed 0.5) as a second target beside the fractal class,
# through a second linear layer, its loss at weight 0.5. The shape classes draw colours at random, so their
# features need not keep colour; the PSPNet scenes' only context cue is a band's colour. The weight: 1 left
# the deeper plain trunks untrained on the classes, 0.2 left the deepest blind to colour; 0.5 took every
# PSPNet ladder trunk past 85 % on both (psp_common's deviations).
COLOUR_RECIPE = {**RECIPE, "colour_target": True, "colour_weight": 0.5}
COLOURS = 8
PRESETS_PRETRAINED = ("quick", "full")


def recipe_of(arch):
    """The recipe of the stand-in an architecture config's weights name."""
    return COLOUR_RECIPE if arch.get("weights") == "fractal_colour" else RECIPE


class Classifier(nn.Module):
    """A trunk's last feature map, averaged over space, then a linear layer over the classes."""

    def __init__(self, kind, arch, classes, colours=0):
        super().__init__()
        self.kind, self.trunk = kind, build_trunk(kind, arch)
        with torch.no_grad():
            channels = self.features(torch.zeros(2, 3, 32, 32)).shape[1]
        self.fc = nn.Linear(channels, classes)
        self.colour_fc = nn.Linear(channels, colours) if colours else None

    def features(self, x):
        if self.kind in ("small", "small_resnet"):
            return next(reversed(self.trunk(x).values()))
        if self.kind == "cascade":
            x = self.trunk.stem(x)
            for stage in self.trunk.units:
                for unit in stage:
                    x = unit(x)
            return x
        return self.trunk(x)

    def forward(self, x):
        """Class scores, or (class scores, colour scores) with a colour target."""
        pooled = self.features(x).mean((2, 3))
        return self.fc(pooled) if self.colour_fc is None else (self.fc(pooled), self.colour_fc(pooled))


def build_trunk(kind, arch):
    """The module a stand-in's weights are the state dict of, untrained."""
    opts = {k: v for k, v in arch.items() if k not in ("name", "weights")}
    if kind == "small":
        from segmodels.backbones import SmallCNN
        return SmallCNN(**opts)
    if kind == "small_resnet":
        from segmodels.gcn import SmallResNet
        return SmallResNet(**opts)
    if kind == "cascade":
        from segmodels.cascade import small_trunk
        return small_trunk(**opts)
    from segmodels.deeplab import vgg_features
    return vgg_features(**opts)


def cpu_backbones(specs, presets=PRESETS_PRETRAINED):
    """{name: (kind, arch)} of every distinct CPU backbone (small CNN or ResNet, cascade trunk, VGG trunk) the
    plans of the ablations `specs` (engine.spec.Ablation records) train at `presets`."""
    from engine.config import settings
    from engine.plans import plan_runs
    found = {}
    for spec in specs:
        for preset in presets:
            for plan in plan_runs(spec, settings(spec, preset)):
                if plan.model["backbone"]["name"] in ("small", "small_resnet", "vgg") and plan.model["backbone"].get("weights") in (
                        None, *STANDIN_WEIGHTS) and (plan.model["arch"] != "deeplab_v1" or plan.model["backbone"].get("widths")):
                    kind, arch = standin_of(plan.model)
                    found.setdefault(standin_name(kind, arch), (kind, arch))
    return found


def pretrain(kind, arch, recipe=RECIPE, out_dir=WEIGHTS_DIR, progress=False):
    """Train the stand-in of (kind, arch) by `recipe` and write its weights and card; returns the card."""
    if kind not in KINDS:
        raise ValueError(f"unknown stand-in kind {kind!r}")
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe["threads"])
    colour = recipe.get("colour_target", False)
    try:
        data = {split: FractalImages(split, recipe["classes"], recipe["per_class"], recipe["held_out"], recipe["size"],
                                     recipe["seed"], colour=colour) for split in ("train", "val")}
        started = time.time()
        torch.manual_seed(recipe["seed"])
        model = Classifier(kind, arch, recipe["classes"], COLOURS if colour else 0)
        opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
        n, batch = len(data["train"]), recipe["batch_size"]
        steps_per_epoch = n // batch
        total = recipe["epochs"] * steps_per_epoch
        model.train()
        for epoch in range(recipe["epochs"]):
            order = torch.randperm(n, generator=torch.Generator().manual_seed(recipe["seed"] * 1_000_003 + epoch))
            for s in range(steps_per_epoch):
                step = epoch * steps_per_epoch + s
                items = [data["train"][(int(i), step * batch + k)] for k, i in enumerate(order[s * batch:(s + 1) * batch])]
                images, *targets = (torch.stack(column) for column in zip(*items))
                for group in opt.param_groups:  # a linear decay to zero
                    group["lr"] = recipe["lr"] * (1 - step / total)
                scores = model(images)
                loss = (F.cross_entropy(scores, targets[0]) if not colour else
                        F.cross_entropy(scores[0], targets[0]) + recipe["colour_weight"] * F.cross_entropy(scores[1], targets[1]))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if progress:
                print(f"{standin_name(kind, arch)}: epoch {epoch + 1}/{recipe['epochs']}, loss {loss.item():.3f}",
                      file=sys.stderr, flush=True)
        seconds = time.time() - started
        accuracy, top5_error, colour_accuracy = held_out_accuracy(model, data["val"])
    finally:
        torch.set_num_threads(threads)
    os.makedirs(out_dir, exist_ok=True)
    path, card_path = standin_paths(kind, arch, out_dir)
    torch.save(model.trunk.state_dict(), path)
    card = {"name": standin_name(kind, arch), "kind": kind, "architecture": {k: v for k, v in arch.items() if k != "weights"},
            "recipe": recipe, "sha256": file_sha256(path), "held_out_accuracy": round(accuracy, 2),
            "held_out_top5_error": round(top5_error, 2),
            **({"held_out_colour_accuracy": round(colour_accuracy, 2)} if colour else {}),
            "chance_accuracy": round(100 / recipe["classes"], 2), "seconds": round(seconds, 1),
            "torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "mkl_cbwr": mkl_setting(), "load_avg_1m": round(os.getloadavg()[0], 2), "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": f"python -m engine.tools.pretrain --only {standin_name(kind, arch)}"}
    with open(card_path, "w") as f:
        json.dump(card, f, indent=1, sort_keys=True)
        f.write("\n")
    return card


@torch.no_grad()
def held_out_accuracy(model, data, batch=256):
    """(top-1 accuracy %, top-5 error %, colour accuracy % or None) on the held-out images (top-5:
    ImageNet's measure, GCN Table 6)."""
    model.eval()
    colour = data.colours is not None
    correct = top5 = colour_correct = 0
    for start in range(0, len(data), batch):
        items = [data[i] for i in range(start, min(start + batch, len(data)))]
        images, labels, *colours = (torch.stack(column) for column in zip(*items))
        scores = model(images)
        if colour:
            scores, colour_scores = scores
            colour_correct += int((colour_scores.argmax(1) == colours[0]).sum())
        correct += int((scores.argmax(1) == labels).sum())
        top5 += int((scores.topk(min(5, scores.shape[1]), dim=1).indices == labels[:, None]).any(1).sum())
    return (100.0 * correct / len(data), 100.0 * (1 - top5 / len(data)),
            100.0 * colour_correct / len(data) if colour else None)


def write_index(out_dir=WEIGHTS_DIR):
    """weights/README.md: a line per card."""
    cards = []
    for name in sorted(os.listdir(out_dir)):
        if name.endswith(".json"):
            with open(os.path.join(out_dir, name)) as f:
                cards.append(json.load(f))
    lines = ["# Pretrained stand-ins of the CPU backbones", "",
             "Written by `python -m engine.tools.pretrain` (engine/tools/pretrain.py): each backbone trained as a classifier of "
             f"{RECIPE['classes']} formula-driven fractal classes (data/fractals.py); the trunk's weights in "
             "`<name>.pt`, its card in `<name>.json`. A name ending in `-colour` is the colour-keeping stand-in "
             "(backbone weights `fractal_colour`): the attractor's coarse colour (8 classes) as a second target at "
             f"weight {COLOUR_RECIPE['colour_weight']:g}. Do not edit by hand.", "",
             "| name | kind | architecture | held-out accuracy % (chance) | held-out colour accuracy % (chance 12.5) | "
             "seconds as built (1 thread; the machine may have been shared: the card's load_avg_1m) | sha256 |",
             "|---|---|---|---|---|---|---|"]
    for c in cards:
        arch = ", ".join(f"{k} {v}" for k, v in sorted(c["architecture"].items()) if k != "name")
        colour = f"{c['held_out_colour_accuracy']:.2f}" if "held_out_colour_accuracy" in c else "–"
        lines.append(f"| `{c['name']}` | {c['kind']} | {arch} | {c['held_out_accuracy']:.2f} ({c['chance_accuracy']:g}) | "
                     f"{colour} | {c['seconds']:.0f} | `{c['sha256'][:12]}…` |")
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main(specs, argv=None):
    """The command, over the stand-ins of the ablations `specs`."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="pretrain only these stand-ins")
    p.add_argument("--out", default=WEIGHTS_DIR, help="folder of the weights and cards (default: weights/)")
    p.add_argument("--list", action="store_true", help="list the stand-ins the presets use and exit")
    args = p.parse_args(argv)
    backbones = cpu_backbones(specs)
    if args.list:
        for name, (kind, arch) in backbones.items():
            print(name, kind, json.dumps(arch, sort_keys=True))
        return 0
    unknown = sorted(set(args.only) - set(backbones))
    if unknown:
        p.error(f"unknown stand-in(s) {unknown}; the presets use: {', '.join(backbones)}")
    for name, (kind, arch) in backbones.items():
        if args.only and name not in args.only:
            continue
        card = pretrain(kind, arch, recipe_of(arch), out_dir=args.out, progress=True)
        print(f"{name}: held-out accuracy {card['held_out_accuracy']:.2f} % (chance {card['chance_accuracy']:g}), "
              f"{card['seconds']:.0f} s, sha256 {card['sha256'][:12]}", flush=True)
    write_index(args.out)
    return 0


if __name__ == "__main__":  # the command: the ablations are its caller's to give, not the engine's
    from ablations import load_all
    sys.exit(main(load_all()))

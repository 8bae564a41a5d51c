"""The pretrained stand-ins of a table's backbones as classifiers, beside the paper's ImageNet error
where it prints one (GCN Table 6's first row; psp_depth's ladder: alone): each row's `weights` names its
stand-in, whose card (weights/<name>.json) holds the held-out error it reached. One pretraining per
backbone: a single model, shown, not judged."""
import json
import os

from report.common import md_table, report_section

# weights/ (segmodels/pretrained.py writes it; the report reads cards, never a network)
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")


def standin_cards(rows, variant, weights_dir=WEIGHTS_DIR):
    """The cards of the stand-ins variant's runs started from ([] when they started from scratch)."""
    ids = sorted(set(rows.loc[rows["variant"] == variant, "weights"].dropna()))
    cards = []
    for weights in ids:
        if not weights.startswith("fractal:"):
            continue
        _, name, sha = weights.split(":")
        path = os.path.join(weights_dir, f"{name}.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"the rows of {variant} started from stand-in {name}, whose card {path} is "
                                    "missing: restore weights/ or rebuild it with python -m engine.tools.pretrain")
        with open(path) as f:
            card = json.load(f)
        if not card["sha256"].startswith(sha):
            raise ValueError(f"the rows of {variant} started from {name} sha256 {sha}…, but its card {path} "
                             f"describes {card['sha256'][:12]}…: the rows are of other weights")
        cards.append(card)
    return cards


@report_section("standins", "variants", "published")
def standins_section(spec, rows, results_dir, fig_dir, rel_fig, variants, published=None, weights_dir=WEIGHTS_DIR):
    """The stand-ins' held-out errors per variant: beside the paper's ImageNet top-5 error where it prints one
    (GCN Table 6), else alone, with the colour target's accuracy where the stand-in has one (psp_depth's ladder):
    (a line for the report, the table for the appendix)."""
    table, errors = [], []
    for v in variants:
        label = spec.variant(v)["label"]
        cards = standin_cards(rows, v, weights_dir)
        paper = [f"{published[v]:g}"] if published else []
        if not cards:
            table.append([label, *paper, "—", "—", "—", "from scratch at this preset: no stand-in"])
        for card in cards:
            top5, colour = card.get("held_out_top5_error"), card.get("held_out_colour_accuracy")
            second = ("—" if top5 is None else f"{top5:.2f}") if published else ("—" if colour is None else f"{colour:.2f}")
            errors.append(100 - card["held_out_accuracy"])
            table.append([label, *paper, f"{errors[-1]:.2f}", second,
                          f"{card['chance_accuracy']:g}", f"`{card['name']}`"])
    if published:
        intro = ("The paper's ImageNet backbones: ResNet50-GCN a slightly worse classifier (top-5 error 7.9 against "
                 "7.7). Here each stand-in's error on held-out fractal images, from its card (`python -m "
                 "engine.tools.pretrain`); one pretraining per backbone: shown, not judged.")
        header = ["backbone (variant)", "paper: ImageNet top-5 error %", "stand-in: held-out top-1 error %",
                  "stand-in: held-out top-5 error %", "chance accuracy %", "stand-in"]
    else:
        intro = ("Each backbone's stand-in (`python -m engine.tools.pretrain`): held-out error and colour accuracy from its "
                 "card. A worse classifier is a worse start: read the verdicts beside it. One pretraining per "
                 "backbone: shown, not judged.")
        header = ["backbone (variant)", "stand-in: held-out top-1 error %", "stand-in: held-out colour accuracy %",
                  "chance accuracy %", "stand-in"]
    title = "#### The backbones as classifiers" + (" (the paper's first row)" if published else "")
    summary = (f"**The backbones as classifiers**: the stand-ins' held-out top-1 error {min(errors):.2f}–{max(errors):.2f} % "
               f"(per backbone{', beside the paper' if published else ''}: the appendix)." if errors else None)
    return summary, "\n\n".join([title, intro, md_table(header, table)])  # (the report's, the appendix's)

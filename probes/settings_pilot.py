"""The settings pilot (issue 37): which data setting carries each mechanism, by the rule of
data/MECHANISMS.md "How each table's data settings are chosen" — today's data first, then each
candidate in the order listed there, until one passes the mechanism's probe. Probes only: no
verdict, no validation split. Every measurement is on held-out TRAINING images (the data split
'heldout') and through the probes the report wires to the assertions (probes/mechanisms.py), so the
pilot and the report measure a mechanism one way.

Run: python -m probes.settings_pilot <mechanism> [--out DIR] [--no-new-runs-after HH:MM]
mechanisms: subregion_context, scale_span, flip_information (from the data alone); scale_present (the
scale probe whole: trains psp_depth's r50_ss, one seed); overfitting (trains conv_k3 and conv_k9 of
gcn_vs_conv at the quick preset, 2 seeds, through the engine; each run's gaps are saved to
DIR/overfitting.json as they come, and a rerun skips what is there). --context-choice '(a)' lays
psp_pool's chosen context candidate under the flip and scale candidates.
Prints one line per measurement and a last line "rule → chosen: …".
"""
import argparse
import datetime
import json
import os
import sys
import time

from data import build_dataset
from engine.metrics import object_accuracies
from probes.mechanisms import (SCALE_SPAN, heldout_scenes, mirror_iou, mirror_present, overfitting_present,
                               readouts_of, subregion_context_present)

TODAY = "today's data"
# data/MECHANISMS.md's candidates, in its order (committed in e7fb5da before any probe was read)
CANDIDATES = {
    "overfitting": [("(a)", {"classes": 20, "asymmetric": True, "radius": [0.10, 0.20], "n_train": 200}),
                    ("(b)", {"classes": 20, "asymmetric": True, "radius": [0.10, 0.20], "n_train": 100})],
    "scale_span": [("(a)", {"log_radius": True, "radius": [0.03, 0.30], "resize": [0.5, 2.0]})],
    "subregion_context": [("(a)", {"context_grid": 2, "contexts": 4, "radius": [0.08, 0.14]})],
    "flip_information": [("(a)", {"asymmetric": True, "classes": 8})],
}
OVERFIT_VARIANTS = {3: "conv_k3", 9: "conv_k9"}
SEEDS = (0, 1)


def say(line):
    print(line, flush=True)


def heldout_labels(data_cfg):
    """The label maps [N,H,W] of data_cfg's held-out training images (the 'heldout' split)."""
    return heldout_scenes(data_cfg).labels


def ablation_data(name):
    """The data config an ablation trains on at the quick preset (its preset's, as run_all resolves it)."""
    import ablations
    from engine.config import settings
    return dict(settings(ablations.load(name), "quick").data)


def candidates_in_order(mechanism, base, base_name=TODAY):
    """(name, its data options, the data config) of today's data, then each candidate laid over it."""
    return [(base_name, {}, base)] + [(name, options, {**base, **options}) for name, options in CANDIDATES[mechanism]]


def first_passing(mechanism, base, measure, base_name=TODAY):
    """The rule: today's data, then the candidates in order, until one passes. measure(name, options,
    cfg) says whether the probe passes, or None where it could not be finished (the rule stops there:
    a later candidate is never taken over an unmeasured earlier one). A candidate the generator
    refuses is reported and the rule goes on. Returns the chosen name, None, or UNFINISHED."""
    for name, options, cfg in candidates_in_order(mechanism, base, base_name):
        try:
            passed = measure(name, options, cfg)
        except ValueError as err:  # the generator's data-option check refuses the candidate
            say(f"{mechanism} | {name} | {json.dumps(options, sort_keys=True)} | refused by the generator: {err}")
            continue
        if passed is None:
            return UNFINISHED
        if passed:
            return name
    return None


UNFINISHED = "not decided: the pilot stopped before its candidate was measured"


# ---- the data-only mechanisms
def subregion_context(args):
    def measure(name, options, cfg):
        started = time.time()
        result = subregion_context_present(*readouts_of(json.dumps(cfg, sort_keys=True))[:2])
        say(f"subregion_context | {name} | {json.dumps(cfg, sort_keys=True)} | held-out training images | "
            f"{result.detail} | gain {result.figure:.1f} (needs ≥ "
            f"{result.threshold:g}) | {'pass' if result.passed else 'fail'} | {time.time() - started:.0f} s")
        return result.passed
    return first_passing("subregion_context", ablation_data("psp_pool"), measure)


def scale_span(args):
    def measure(name, options, cfg):
        started = time.time()
        labels = heldout_labels(cfg)
        sizes, _ = object_accuracies(labels, labels)
        span = sizes.max() / sizes.min()
        say(f"scale_span | {name} | {json.dumps(cfg, sort_keys=True)} | {len(sizes)} objects of {len(labels)} "
            f"held-out training images, size (√px) {sizes.min():.1f}…{sizes.max():.1f} | span {span:.2f}× "
            f"(needs ≥ {SCALE_SPAN:g}×) | {'pass' if span >= SCALE_SPAN else 'fail'} | {time.time() - started:.0f} s")
        return span >= SCALE_SPAN
    return first_passing("scale_span", {**ablation_data("psp_depth"), **context_choice(args)}, measure,
                         base_name(args))


def flip_information(args):
    def measure(name, options, cfg):
        started = time.time()
        labels = heldout_labels(cfg)
        ious = mirror_iou(labels)
        result = mirror_present(ious)
        say(f"flip_information | {name} | {json.dumps(cfg, sort_keys=True)} | {len(ious)} objects not cut by the "
            f"frame in {len(labels)} held-out training images | {result.detail} | "
            f"{'pass' if result.passed else 'fail'} | {time.time() - started:.0f} s")
        return result.passed
    base = {**ablation_data("psp_chain"), **context_choice(args)}
    return first_passing("flip_information", base, measure, base_name(args))


def base_name(args):
    return TODAY if args.context_choice in (None, TODAY) else f"{TODAY} with psp_pool's context choice {args.context_choice}"


def context_choice(args):
    """psp_pool's chosen context knobs, from --context-choice: the PSPNet tables share runs, so the flip
    and scale candidates are laid over them."""
    if args.context_choice in (None, TODAY):
        return {}
    return dict(dict(CANDIDATES["subregion_context"])[args.context_choice])


# ---- trained probes: one variant of an ablation trained through the engine at the quick preset
def trained_variant(ablation, data_cfg, variant, seed, out_dir):
    """(plan, model, its train.json record, seconds): `ablation`'s `variant` at the quick preset on data
    config data_cfg (what differs from the ablation's data laid over it, as run_all's --set data.KEY=VALUE),
    seed `seed`, trained or found trained in out_dir/runs/. The model's class count follows the data
    (engine/one_run.py builds it so)."""
    import torch

    import ablations
    from engine.config import CommandLine, parse_set, settings
    from engine.plans import check_data, check_plans, plan_runs
    from engine.one_run import run_lock, trained
    spec = ablations.load(ablation)
    own = ablation_data(ablation)
    sets = tuple(parse_set(f"data.{k}={json.dumps(v)}") for k, v in data_cfg.items() if own.get(k) != v)
    plan = next(p for p in plan_runs(spec, settings(spec, "quick", CommandLine(sets=sets)))
                if p.variant == variant and p.seed == seed)
    if plan.data != data_cfg:
        raise ValueError(f"{ablation}'s plan has data {plan.data}, not {data_cfg}")
    check_plans([plan])
    check_data([plan])  # the generator's data-option check: a refused candidate is a ValueError here
    torch.set_num_threads(plan.train["threads"])  # as engine/one_run.py: part of the run's config
    started = time.time()
    with run_lock(out_dir, plan):  # as engine/one_run.py: the run folder made and locked
        model, info, _ = trained(plan, out_dir, "cpu", progress=False)
    if info["status"] != "ok":
        raise RuntimeError(f"{ablation} {variant} seed {seed}: {info}")
    return plan, model, info, time.time() - started


# ---- scale, with its accuracy-spread part: psp_depth's shallowest single-scale variant, one seed
def scale_present_trained(args):
    import torch

    from engine.evaluate import model_options
    from probes.mechanisms import scale_present

    def measure(name, options, cfg):
        plan, model, info, seconds = trained_variant("psp_depth", cfg, "r50_ss", 0, args.out)
        heldout = build_dataset(plan.data, "heldout")
        images = torch.stack([heldout[i][0] for i in range(len(heldout))])
        labels = torch.stack([heldout[i][1] for i in range(len(heldout))])
        model.eval()
        with torch.no_grad():  # as its rows are scored: the plan's evaluation options (mirrored)
            pred = torch.cat([model.predict(images[i:i + 50], **model_options(model, plan.eval))[0].argmax(1)
                              for i in range(0, len(images), 50)])
        result = scale_present(*object_accuracies(pred.numpy(), labels.numpy()))
        say(f"scale_present | {name} | psp_depth r50_ss seed 0, run {plan.run_id} | {len(heldout)} held-out "
            f"training images | {result.detail} | spread {result.figure:.1f} (needs ≥ {result.threshold:g}, and "
            f"span ≥ {SCALE_SPAN:g}×) | {'pass' if result.passed else 'fail'} | train {info['train_wall_s']:.0f} s, "
            f"all {seconds:.0f} s (machine loaded)")
        return result.passed
    return first_passing("scale_span", {**ablation_data("psp_depth"), **context_choice(args)}, measure,
                         base_name(args))


# ---- overfitting: the trivial k×k head's train − held-out gap at k = 3 and 9, 2 seeds, quick preset
def train_and_measure(data_cfg, variant, seed, out_dir):
    """gcn_vs_conv's `variant` trained (trained_variant); its mIoU on the first 200 images it trained on
    and on the 200 held-out training images, as the "heldout" run analysis measures them."""
    from engine.measurements import heldout_analysis
    started = time.time()
    plan, model, info, _ = trained_variant("gcn_vs_conv", data_cfg, variant, seed, out_dir)
    model.eval()
    scores = heldout_analysis(model, None, plan.eval, "cpu", data_cfg=plan.data)
    return {"run_id": plan.run_id, "num_classes": heldout_scenes(plan.data).num_classes, "train_mIoU": float(scores["train_miou"]),
            "heldout_mIoU": float(scores["heldout_miou"]),
            "gap": float(scores["train_miou"] - scores["heldout_miou"]),
            "train_wall_s": info.get("train_wall_s"), "wall_s": time.time() - started, "data": plan.data}


def overfitting(args):
    record_path = os.path.join(args.out, "overfitting.json")
    record = json.load(open(record_path)) if os.path.exists(record_path) else {}

    def measure(name, options, cfg):
        gaps = []
        for seed in SEEDS:
            row = []
            for k, variant in OVERFIT_VARIANTS.items():
                key = f"{name}/{variant}/seed{seed}"
                if key not in record:
                    if args.no_new_runs_after and past(args.no_new_runs_after):
                        say(f"overfitting | {name} | {variant} seed {seed} | not started: past "
                            f"{args.no_new_runs_after} UTC")
                        return None
                    record[key] = train_and_measure(cfg, variant, seed, args.out)
                    with open(record_path + ".tmp", "w") as f:
                        json.dump(record, f, indent=1)
                    os.replace(record_path + ".tmp", record_path)
                r = record[key]
                say(f"overfitting | {name} | {variant} seed {seed} | run {r['run_id']}, {r['num_classes']} classes | "
                    f"mIoU on 200 images trained on {r['train_mIoU']:.2f}, on 200 held-out training images "
                    f"{r['heldout_mIoU']:.2f} | gap {r['gap']:.2f} | train {r['train_wall_s']:.0f} s, all "
                    f"{r['wall_s']:.0f} s (machine loaded)")
                row.append(r["gap"])
            gaps.append(row)
        result = overfitting_present(list(OVERFIT_VARIANTS), gaps)
        say(f"overfitting | {name} | overfitting_present([3, 9], gaps) | {result.detail} | growth k9 − k3 "
            f"{result.figure:.2f} (needs ≥ {result.threshold:g}) | {'pass' if result.passed else 'fail'} | "
            "(the ablation's probe will use all of k = 3, 5, 7, 9)")
        return result.passed

    return first_passing("overfitting", ablation_data("gcn_vs_conv"), measure)


def past(hhmm):
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%H:%M") >= hhmm


MECHANISMS = {"subregion_context": subregion_context, "scale_span": scale_span, "scale_present": scale_present_trained,
              "flip_information": flip_information, "overfitting": overfitting}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mechanism", choices=sorted(MECHANISMS))
    parser.add_argument("--out", default="/work/pilot", help="where trained runs and their gaps are kept")
    parser.add_argument("--no-new-runs-after", default=None, help="HH:MM UTC: start no training after it")
    parser.add_argument("--context-choice", default=None,
                        help="flip_information, scale_span: psp_pool's chosen context candidate, e.g. '(a)'")
    args = parser.parse_args(argv)
    chosen = MECHANISMS[args.mechanism](args)
    say(f"rule → chosen: {chosen if chosen else 'none passes: not testable'}")


if __name__ == "__main__":
    sys.exit(main())

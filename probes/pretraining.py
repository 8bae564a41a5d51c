"""From scratch or from the pretrained stand-in? On gcn_k, psp_pool, lc_threshold and deeplab_fov (and the
other tables in CONTRASTS), train two variants of each (the contrast its main claim is about) at the
quick preset's iterations, both ways, on the same seeds, and score them on images held out of the
training split (the selection runs' split: never the validation images the verdicts use):

- scratch: the backbone as the preset had it until issue 22 (random init, every layer at lr 0.05);
- pretrained: the backbone from its stand-in (weights/, `python -m engine.tools.pretrain`), at lr
  PRETRAINED_LR with the new layers at ×HEAD_LR_MULT (the papers' fine-tuning; the pilot's rates).

Per variant: mean and seed sd of mIoU; per contrast: the sd of the per-seed difference and the pair
correlation (what pairing by seed buys). The contrast itself is the mechanism's check (does the
wider context / larger kernel / deep stage / field of view still show), not a verdict: the
verdicts are judged on the validation split by the ablations. Runs are kept in --out (resumable).

python -m probes.pretraining [--seeds 4] [--jobs 2] [--out /tmp/probe] [--only gcn_k ...] [--lr 0.001]
                            [--head-lr-mult 10] [--weights fractal_colour] [--iterations 200]
"""
import argparse
import dataclasses
import multiprocessing
import statistics
import sys

from ablations import load
from engine.config import CommandLine, settings
from engine.plans import plan_runs
from segmodels.pretrained import STANDIN_WEIGHTS

PRETRAINED_LR, HEAD_LR_MULT, SCRATCH_LR = 0.001, 10.0, 0.05
CONTRASTS = {"gcn_k": ("k15", "base"), "gcn_vs_conv": ("gcn_k7", "conv_k7"), "gcn_vs_stack": ("gcn_k7", "stack_k7"),
             "gcn_boundary": ("gcn_k15_br", "gcn_k15"), "gcn_backbone": ("resnetgcn_gcnbr", "resnet_gcnbr"), "psp_pool": ("b1236_ave", "baseline"), "psp_aux": ("a0.4", "no_aux"),
             "psp_depth": ("r269_ss", "r50_ss"),
             "lc_threshold": ("r0985", "r1"), "deeplab_fov": ("largefov", "k4d4")}


def probe_plans(ablation, protocol, seeds, lr=PRETRAINED_LR, head_lr_mult=HEAD_LR_MULT, weights="fractal",
                iterations=None):
    """The contrast's plans at the quick preset, trained on the training split less the tuning
    holdout and scored on that holdout, from scratch or pretrained."""
    spec = load(ablation)
    s = settings(spec, "quick", CommandLine())
    s = dataclasses.replace(s, data={**s.data, "holdout": s.tuning["holdout"]})
    out = []
    for plan in plan_runs(spec, s):
        if plan.variant not in CONTRASTS[ablation] or plan.seed >= seeds:
            continue
        backbone = {k: v for k, v in plan.model["backbone"].items() if k != "weights"}
        train = {**plan.train, "lr": SCRATCH_LR, "head_lr_mult": 1.0}
        if protocol == "pretrained":
            backbone["weights"] = weights
            train = {**plan.train, "lr": lr, "head_lr_mult": head_lr_mult}
        if iterations:
            train["iterations"] = iterations
        out.append(dataclasses.replace(plan, model={**plan.model, "backbone": backbone}, train=train,
                                       eval={**plan.eval, "speed_repeats": 0, "train_speed_steps": 0}, analyses=()))
    return out


def run_one(job):
    plans, out_dir = job
    from engine.one_run import run_group
    return [(r.plan.ablation, r.plan.variant, r.plan.seed, r.status.value, r.scores.get("mIoU"))
            for r in run_group(plans, out_dir, "cpu", progress=False)]


def summary(rows, ablation, protocol, seeds):
    a, b = CONTRASTS[ablation]
    by = {(v, s): m for (ab, p, v, s, status, m) in rows if ab == ablation and p == protocol and status == "ok"}
    line = {"ablation": ablation, "protocol": protocol}
    for v in (a, b):
        values = [by[(v, s)] for s in range(seeds) if (v, s) in by]
        line[v] = (statistics.mean(values), statistics.stdev(values), len(values)) if len(values) > 1 else None
    pairs = [(by[(a, s)], by[(b, s)]) for s in range(seeds) if (a, s) in by and (b, s) in by]
    if len(pairs) > 2:
        diffs = [x - y for x, y in pairs]
        line["diff"] = (statistics.mean(diffs), statistics.stdev(diffs))
        line["r"] = statistics.correlation([x for x, _ in pairs], [y for _, y in pairs])
    return line


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--out", default="/tmp/probe_pretraining")
    p.add_argument("--only", nargs="+", choices=list(CONTRASTS), default=list(CONTRASTS))
    p.add_argument("--protocols", nargs="+", choices=["scratch", "pretrained"], default=["scratch", "pretrained"])
    p.add_argument("--lr", type=float, default=PRETRAINED_LR, help="the pretrained protocol's backbone lr "
                   f"(default {PRETRAINED_LR:g})")
    p.add_argument("--head-lr-mult", type=float, default=HEAD_LR_MULT,
                   help=f"the pretrained protocol's lr multiplier of the new layers (default {HEAD_LR_MULT:g})")
    p.add_argument("--weights", choices=list(STANDIN_WEIGHTS), default="fractal",
                   help="the pretrained protocol's stand-in: fractal classes alone, or with the colour target")
    p.add_argument("--iterations", type=int, default=None, help="training iterations (default: the quick preset's)")
    args = p.parse_args(argv)
    groups, tag = {}, {}  # one group per run id: a run two contrasts share (GCN k = 7) is trained once
    for ablation in args.only:
        for protocol in args.protocols:
            for plan in probe_plans(ablation, protocol, args.seeds, args.lr, args.head_lr_mult, args.weights,
                                    args.iterations):
                groups.setdefault(plan.run_id, []).append(plan)
                tag[plan.run_id] = protocol
    jobs = [(g, args.out) for g in groups.values()]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        results = pool.map(run_one, jobs, chunksize=1)
    rows = [(ab, tag[job[0][0].run_id], v, s, st, m) for job, res in zip(jobs, results) for (ab, v, s, st, m) in res]
    print(f"held-out mIoU (the quick preset's training split less its tuning holdout, scored on the holdout), "
          f"{args.seeds} seeds, {args.iterations or 'the quick preset'} iterations; pretrained ({args.weights}): backbone lr {args.lr:g}, new layers × {args.head_lr_mult:g}\n")
    print("| ablation | protocol | variant A: mean ± sd | variant B: mean ± sd | A − B: mean ± sd | pair r |")
    print("|---|---|---|---|---|---|")
    for ablation in args.only:
        a, b = CONTRASTS[ablation]
        for protocol in args.protocols:
            s = summary(rows, ablation, protocol, args.seeds)
            cell = lambda x: f"{x[0]:.2f} ± {x[1]:.2f} (n {x[2]})" if x else "—"
            diff = f"{s['diff'][0]:+.2f} ± {s['diff'][1]:.2f}" if "diff" in s else "—"
            r = f"{s['r']:.2f}" if "r" in s else "—"
            print(f"| {ablation} | {protocol} | {a}: {cell(s[a])} | {b}: {cell(s[b])} | {diff} | {r} |")
    failed = [(ab, pr, v, s, st) for ab, pr, v, s, st, _ in rows if st != "ok"]
    if failed:
        print("\nfailed runs (counted, not dropped):", failed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

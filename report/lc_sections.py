"""Layer Cascade's own report parts, named in lc_threshold's REPORT_SECTIONS: Table 3 (speed per
ρ, per-stage times, speed-ups beside the paper's) and a Fig. 5-style figure (which stage decided each
pixel of a few validation images, from the "stages" analysis saved when the run finished)."""
import os

import numpy as np
from matplotlib.colors import ListedColormap

from engine.analysis import analysis_file, load_analysis
from report.common import LABEL_COLOURS, fmt, image_grid, md_table, mean_std, per_seed, report_section, shown_label


def _cell(values, digits=2):
    mean, std, n = mean_std(values)
    if not n:
        return "–"
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}" if n > 1 else fmt(mean, digits)


def speedup(rows, slow, fast, metric="infer_ms"):
    """Per-seed speed-ups ms(slow) / ms(fast) of two variants, paired by seed (never by row order):
    {seed: ratio} over the seeds both have a finished, timed run for."""
    if metric not in rows:
        return {}
    ok = rows[rows["status"] == "ok"]

    def by_seed(variant):
        own = ok[ok["variant"] == variant].dropna(subset=[metric])
        return dict(zip(own["seed"].astype(int), own[metric].astype(float)))
    a, b = by_seed(slow), by_seed(fast)
    return {seed: a[seed] / b[seed] for seed in sorted(set(a) & set(b)) if b[seed] > 0}


@report_section("lc_speed", "speedups", "published")
def speed_section(spec, rows, results_dir, fig_dir, rel_fig, published, speedups):
    """Table 3 as reproduced: per ρ the median ms/image, images/s and per-stage ms (mean ± std over
    seeds), the paper's numbers beside where it has them (`published`: {variant: {'infer_ms', 'fps',
    'stage_ms'}}), then the speed-up of each [slow, fast] pair in `speedups`, paired by seed."""
    variants = spec.variants
    if "infer_ms" not in rows:
        return "### Speed (Table 3)\n\nNo timings in these results (eval without `speed_repeats`)."
    body = []
    for v in variants:
        stages = " / ".join(_cell(per_seed(rows, f"stage{i}_ms").get(v["id"], []), 2) for i in (1, 2, 3))
        pub = published.get(v["id"])
        body.append([v["label"], _cell(per_seed(rows, "infer_ms").get(v["id"], []), 2),
                     _cell(per_seed(rows, "infer_fps_median").get(v["id"], []), 1), stages,
                     fmt(pub["infer_ms"], 1) if pub else "–", fmt(pub["fps"], 1) if pub else "–",
                     " / ".join(fmt(t, 1) for t in pub["stage_ms"]) if pub else "–"])
    table = md_table(["ρ", "ms/image", "images/s", "stage 1 / 2 / 3 ms", "paper ms", "paper FPS",
                      "paper stage 1 / 2 / 3 ms"], body)
    device = ", ".join(sorted(rows["device"].astype(str).unique()))
    batch = rows["speed_batch"].dropna().unique() if "speed_batch" in rows else []
    lines = []
    labels = {v["id"]: v["label"] for v in variants}
    for slow, fast in speedups:
        ups = speedup(rows, slow, fast)
        if slow in published and fast in published:
            paper = f"paper {published[slow]['infer_ms']} → {published[fast]['infer_ms']} ms = " \
                    f"{published[slow]['infer_ms'] / published[fast]['infer_ms']:.2f}×"
        else:
            paper = "paper: not timed"
        seeds = f" (seed{'s' if len(ups) > 1 else ''} {', '.join(map(str, ups))})" if ups else ""
        lines.append(f"- speed-up of {labels.get(fast, fast)} over {labels.get(slow, slow)}: "
                     f"{_cell(list(ups.values()))}× over {len(ups)} seed(s){seeds} ({paper})")
    return "\n\n".join([
        "### Speed (Table 3)",
        f"On {device}: one fixed batch of {', '.join(str(int(b)) for b in batch) or '?'} validation image(s), "
        "median of timed passes after warm-up; ms/image = batch time / batch size. The paper: one GPU at 512×512 "
        "(compare speed-ups, not milliseconds).", table, "\n".join(lines)])


@report_section("lc_stages", "variant")
def stage_map_section(spec, rows, results_dir, fig_dir, rel_fig, variant):
    """Fig. 5-style: image, label, prediction and deciding stage for a few validation images, from
    the "stages" analysis of the lowest seed's run of `variant` (at the plan's eval ρ, saved when the
    run finished). Without that file the section says so in one line."""
    title = "### Which stage decides each pixel (Fig. 5 idea)"
    ok = rows[(rows["variant"] == variant) & (rows["status"] == "ok")].sort_values("seed", kind="stable")
    if not len(ok):
        return f"{title}\n\nNo finished run of `{variant}`."
    row = ok.iloc[0]
    path = analysis_file(results_dir, row["run_id"], row["eval_id"], "stages")
    if not os.path.exists(path):
        return (f"{title}\n\nNot drawn: no stage data for `{variant}` seed {int(row['seed'])} "
                f"(analysis/{row['run_id']}-{row['eval_id']}-stages.npz is not in the results folder).")
    data = load_analysis(path)
    rho = float(data["rho"])
    stages = data["stage"]
    n = len(stages)
    cmap_stage = ListedColormap(["#fde0a1", "#f07b3f", "#5c1a33"])  # stage 1, 2, 3
    share = [100 * float((stages == s).mean()) for s in (1, 2, 3)]
    name = f"{spec.name}_stages.png"
    image_grid([("image", list(data["image"]), {}),
                ("label", [shown_label(label) for label in data["label"]], LABEL_COLOURS),
                ("prediction", list(data["prediction"]), LABEL_COLOURS),
                ("deciding stage", list(stages), {"cmap": cmap_stage, "vmin": 1, "vmax": 3})],
               os.path.join(fig_dir, name),
               f"stage that decides each pixel at ρ = {rho:g} (light = stage 1, mid = 2, dark = 3); "
               f"these images: {share[0]:.0f} / {share[1]:.0f} / {share[2]:.0f} %", fontsize=10)
    return (f"{title}\n\nModel `{variant}`, seed {int(row['seed'])}, at ρ = {rho:g}; first {n} validation images. "
            f"Easy pixels (smooth background, object interiors) should leave at stage 1; the later stages "
            f"should keep the hard ones (object outlines, shapes the shallow stage cannot tell apart)."
            f"\n\n![stage map]({rel_fig}/{name})")


def probe_summary(probes):
    """One sentence over the seeds' probes: at each probed ρ, the share of pixels stage 1 is unsure about
    and each stage's accuracy on them (means over seeds)."""
    parts = []
    for r, rho in enumerate(probes[0]["rhos"]):
        unsure = np.mean([float(p["share_unsure"][r]) for p in probes])
        acc = np.mean([np.asarray(p["acc"][r][1], dtype=float) for p in probes], axis=0)
        parts.append(f"at ρ = {rho:g} stage 1 is unsure about {unsure:.1f} % of the pixels, on which stages "
                     f"1 / 2 / 3 are {' / '.join(f'{a:.1f}' for a in acc)} % accurate")
    return "; ".join(parts) + f" (means over {len(probes)} seed{'s' if len(probes) > 1 else ''})."


@report_section("lc_probe", "variant")
def probe_section(spec, rows, results_dir, fig_dir, rel_fig, variant):
    """The probe of the mechanism, per seed of `variant` (the DSN model: every stage trained on
    every pixel): share of pixels stage 1 is unsure about at each probed ρ, and each stage's
    accuracy on them and on the confident rest (analysis "stage_probe"). (A sentence of the means over
    seeds for the report, the table per seed and ρ for the appendix.)"""
    title = "### Probe: do the hard pixels need the deep stage?"
    ok = rows[(rows["variant"] == variant) & (rows["status"] == "ok")].sort_values("seed", kind="stable")
    body, probes = [], []
    for _, row in ok.iterrows():
        path = analysis_file(results_dir, row["run_id"], row["eval_id"], "stage_probe")
        if not os.path.exists(path):
            continue
        probe = load_analysis(path)
        probes.append(probe)
        for r, rho in enumerate(probe["rhos"]):
            acc = probe["acc"][r]
            body.append([int(row["seed"]), f"{rho:g}", fmt(float(probe["share_unsure"][r]), 1),
                         " / ".join(fmt(float(a), 1) for a in acc[1]), " / ".join(fmt(float(a), 1) for a in acc[0])])
    if not body:
        return f"{title}\n\nNo probe data for `{variant}` in the results folder."
    return f"**Probe of the mechanism** (do the hard pixels need the deep stage?): {probe_summary(probes)} " \
        "Per seed and ρ: appendix.", "\n\n".join([title, (
        f"Model `{variant}` (DSN: all three stages trained on every pixel), validation pixels at the feature "
        "resolution. *Unsure* = stage 1's top probability ≤ ρ (the pixels the cascade sends on). The mechanism "
        "has something to bite on when the unsure pixels are a minority and stage 3 is clearly more accurate "
        "than stage 1 on them."),
        md_table(["seed", "ρ", "unsure % of pixels", "stage 1 / 2 / 3 acc % on unsure", "stage 1 / 2 / 3 acc % on confident"], body)])

"""Effective receptive field (Luo et al., NeurIPS 2016) of trained segmentation runs: how much each
input pixel moves the score of one output pixel, |∂ score / ∂ input|, averaged over validation
images. GCN's Fig. 3 argues with the *valid* receptive field; this measures it on the trained
models of a table instead of asserting it.

The maps are computed when a run finishes (engine/measurements.py, analysis "erf") and kept in
results/analysis/; this module only draws them: a figure and a table of mass radii.
"""
import math
import os

import numpy as np

from engine.analysis import analysis_file, load_analysis
from report.common import md_table, plt, report_section, save_figure

MASS_FRACTIONS = (0.5, 0.9)


def mass_radius(erf, fraction):
    """Radius (px) of the smallest disc around the centre pixel that holds `fraction` of the map's
    total gradient mass: one number for how far the model looks."""
    erf = np.asarray(erf, dtype=np.float64)
    h, w = erf.shape
    yy, xx = np.meshgrid(np.arange(h) - h // 2, np.arange(w) - w // 2, indexing="ij")
    dist = np.sqrt(yy.astype(np.float64) ** 2 + xx.astype(np.float64) ** 2).ravel()
    order = np.argsort(dist, kind="stable")
    mass = np.cumsum(erf.ravel()[order])
    if mass[-1] <= 0:
        return math.nan
    return float(dist[order][int(np.flatnonzero(mass >= fraction * mass[-1])[0])])


def variant_erf(rows, variant, results_dir):
    """(mean ERF over the variant's seeds that have one, those seeds, seeds without one, numbers of
    images the maps were averaged over)."""
    ok = rows[(rows["variant"] == variant) & (rows["status"] == "ok")]
    ok = ok.drop_duplicates(["run_id", "eval_id"]).sort_values("seed", kind="stable")
    maps, used, missing, n_images = [], [], [], set()
    for _, row in ok.iterrows():
        path = analysis_file(results_dir, row["run_id"], row["eval_id"], "erf")
        if not os.path.exists(path):
            missing.append(int(row["seed"]))
            continue
        data = load_analysis(path)
        maps.append(data["erf"].astype(np.float64))
        n_images.add(int(data["n_images"]))
        used.append(int(row["seed"]))
    return (np.mean(maps, axis=0) if maps else None), used, missing, sorted(n_images)


@report_section("erf", "variants")
def erf_section(spec, rows, results_dir, fig_dir, rel_fig, variants):
    """(Markdown of the report: a figure comparing the effective receptive fields of `variants` (ids of
    spec.variants), from the analysis files of the rows used; of the appendix: the table of mass radii, or
    None). A variant or seed without its file gets one line saying so; it never fails for a missing file."""
    labels = {v["id"]: v["label"] for v in spec.variants}
    found, notes, n_images = [], [], set()
    for vid in variants:
        label = labels.get(vid, vid)
        erf, used, missing, n = variant_erf(rows, vid, results_dir)
        n_images.update(n)
        if erf is None:
            notes.append(f"{label}: no ERF data (analysis/<run_id>-<eval_id>-erf.npz not in the results folder"
                         + (f" for seed(s) {', '.join(map(str, missing))}" if missing else ", no finished run") + ")")
            continue
        if missing:
            notes.append(f"{label}: no ERF data for seed(s) {', '.join(map(str, missing))}, left out of its mean")
        found.append((label, erf, used))
    images = ", ".join(map(str, sorted(n_images))) or "the first 64"
    parts = ["### Effective receptive field (beyond the paper)",
             f"Mean |∂ score / ∂ input| of the centre output pixel's predicted-class logit over {images} "
             "validation images and the seeds listed (engine/measurements.py); each panel scaled to its maximum. "
             "Radii: the smallest disc around the centre holding 50 % / 90 % of the gradient mass."]
    if found:
        fig, axes = plt.subplots(1, len(found), figsize=(3.2 * len(found), 3.4), squeeze=False)
        for ax, (label, erf, _) in zip(axes[0], found):
            peak = erf.max()
            ax.imshow(erf / peak if peak > 0 else erf, cmap="magma", vmin=0, vmax=1)
            h, w = erf.shape
            for fraction, style in zip(MASS_FRACTIONS, ("-", "--")):
                radius = mass_radius(erf, fraction)
                if not math.isnan(radius):
                    ax.add_patch(plt.Circle((w // 2, h // 2), radius, fill=False, color="cyan", ls=style, lw=0.8))
            ax.set_title(label, fontsize=9)
            ax.axis("off")
        fig.suptitle("effective receptive field of the centre pixel (circles: 50 % / 90 % of the mass)", fontsize=9)
        fig.tight_layout()
        save_figure(fig, os.path.join(fig_dir, f"{spec.name}_erf.png"), 100)
        parts.append(f"![{spec.name} effective receptive field]({rel_fig}/{spec.name}_erf.png)")
        header = ["model", "seeds"] + [f"{int(100 * f)} % mass radius (px)" for f in MASS_FRACTIONS]
        body = [[label, ", ".join(map(str, used))] + [f"{mass_radius(erf, f):.1f}" for f in MASS_FRACTIONS]
                for label, erf, used in found]
        radii = "\n\n".join(["### Effective receptive field: mass radii", md_table(header, body)])
        parts[1] += " The radii per model: appendix."
    else:
        radii = None
    if notes:
        parts.append("\n".join(f"- {n}" for n in notes))
    return "\n\n".join(parts), radii

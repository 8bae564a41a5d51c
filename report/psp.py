"""PSPNet's own report parts: why a local receptive field cannot solve the embedded dataset's
scene-context task and how many seeds learned it (psp_pool's REPORT_SECTIONS "psp_context"), and
the training curves with and without the auxiliary loss (psp_aux's "psp_curves")."""
import json
import math
import os

import numpy as np

from engine.analysis import analysis_file, data_analysis_file, load_analysis, model_analysis_file
from engine.measurements import band_distances
from engine.rows import OK
from report.common import fmt, md_table, plt, report_section, save_figure

# A seed "learned the context rule" when its context_acc is at least halfway between chance (one kind of
# scene in `contexts`: 50 % of today's two) and perfect: the rule fixed before looking at any result.
LEARNED_CONTEXT_ACC = 75.0  # at two kinds of scene


def learned_threshold(data_cfg):
    """The rule's context_acc threshold for a data config: halfway between chance and 100 %."""
    chance = 100.0 / data_cfg.get("contexts", 2)
    return (chance + 100.0) / 2


def context_failures(rows, threshold=LEARNED_CONTEXT_ACC):
    """[(variant, finished seeds, seeds that learned the context rule (context_acc >= threshold),
    share of seeds that did not, %)] in the rows' variant order; rows without context_acc count
    as not finished."""
    ok = rows[(rows["status"] == OK) & rows["context_acc"].notna()] if "context_acc" in rows else rows.iloc[:0]
    out = []
    for variant in dict.fromkeys(rows["variant"]):
        acc = ok.loc[ok["variant"] == variant, "context_acc"].astype(float)
        learned = int((acc >= threshold).sum())
        out.append((variant, len(acc), learned, 100.0 * (len(acc) - learned) / len(acc) if len(acc) else math.nan))
    return out


def failures_table(rows, threshold=LEARNED_CONTEXT_ACC):
    return md_table(["variant", "seeds", f"learned the rule (context_acc ≥ {threshold:g} %)", "failure rate"],
                    [(v, n, k, f"{fmt(rate, 0)} %" if n else "–") for v, n, k, rate in context_failures(rows, threshold)])


@report_section("psp_context", "heads")
def context_section(spec, rows, results_dir, fig_dir, rel_fig, heads):
    """Report section (markdown): for each kind of head in `heads`, the share of object pixels whose
    receptive field contains a band pixel (its network's "reach" analysis), a histogram of
    object-to-band distances against the baseline's reach, and a sample scene with the receptive field
    drawn (the dataset's "context_bands" analysis). Only for the embedded dataset in scene-context
    mode (empty otherwise)."""
    data_cfg = json.loads(rows.iloc[0]["data_config"])
    chance, learned = 100.0 / data_cfg.get("contexts", 2), learned_threshold(data_cfg)
    if data_cfg.get("name") != "synthetic" or not data_cfg.get("context"):
        return ""
    title = "### Why a local receptive field cannot solve the context task"
    bands_file = data_analysis_file(results_dir, data_cfg, "context_bands")
    if not os.path.exists(bands_file):
        return f"{title}\n\nNot drawn: {os.path.relpath(bands_file, results_dir)} is not in the results folder."
    bands = load_analysis(bands_file)
    size, band = int(bands["size"]), int(bands["band_rows"])
    grid = int(bands["grid"]) if "grid" in bands else 1  # G × G sub-regions, each with its band on top
    where = f"rows 0-{band - 1}" if grid == 1 else f"the top {band} rows of each of the {grid}×{grid} sub-regions"
    distances, counts = bands["distances"], bands["counts"]
    configs = {v: g.iloc[0]["model_config"] for v, g in rows.groupby("variant", sort=False)}
    lines = ["| head | reach upwards (px) | object pixels whose receptive field holds a band pixel |",
             "|---|---|---|"]
    reach_of = {}
    for variant in heads:
        path = model_analysis_file(results_dir, data_cfg, json.loads(configs[variant]), "reach") \
            if variant in configs else None
        if path is None or not os.path.exists(path):
            continue
        reach = float(load_analysis(path)["reach"])
        reach = reach if math.isinf(reach) else int(reach)
        reach_of[variant] = reach
        lines.append(f"| {variant} | {'whole image' if math.isinf(reach) else reach} | "
                     f"{100 * (counts[distances <= reach].sum() / counts.sum()):.1f} % |")
    local = min(reach_of.get("baseline", size), size)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].hist(distances, bins=np.arange(0, size + 2, 2) - 0.5, weights=counts, color="tab:blue")  # 2-row bins
    axes[0].set_xlim(0, size)
    axes[0].axvline(local, color="tab:red", label=f"baseline reach ({local} px)")
    axes[0].set_xlabel("rows from an object pixel up to the band")
    axes[0].set_ylabel("object pixels (val)")
    axes[0].legend()
    axes[1].imshow(bands["image"])  # the scene whose object comes nearest the band
    ys, xs = (bands["label"] > 0).nonzero()
    top = int(band_distances(bands["label"][None], grid).argmin())  # nearest its band
    y, x = int(ys[top]), int(xs[top])
    axes[1].add_patch(plt.Rectangle((x - local, y - local), 2 * local, 2 * local, fill=False, color="white",
                                    linestyle="--"))
    axes[1].plot([x], [y], "w+")
    axes[1].set_title(f"baseline's receptive field (± {local} px) at the "
                      f"{'topmost object pixel' if grid == 1 else 'object pixel nearest its band'}\n"
                      f"(band: {where})", fontsize=9)
    axes[1].axis("off")
    fig.tight_layout()
    name = f"{spec.name}_context.png"
    save_figure(fig, os.path.join(fig_dir, name), 100)
    return "\n\n".join([
        title,
        (f"Only the band in rows 0–{band - 1} shows the kind of scene; every object lies ≥ {int(distances.min())} "
         "rows below it." if grid == 1 else
         f"Only the band along each sub-region's top ({band} rows; a {grid}×{grid} grid) shows that sub-region's "
         f"kind of scene; every object lies ≥ {int(distances.min())} rows below its own.")
        + " Reach: the exact upward receptive field of each row's architecture "
        f"(engine/measurements.upward_reach); a head that cannot see the band guesses (context_acc ≈ {chance:g} %).",
        "\n".join(lines),
        f"![{spec.name} context]({rel_fig}/{name})",
        "#### How many seeds learned the context rule",
        f"Learned: context_acc ≥ {learned:g} % (halfway from chance, {chance:g} %, to 100 %; fixed before looking at "
        "the results). A head that can see the band may still fail to learn the rule; a variant's mean ± std mixes "
        "both kinds.",
        failures_table(rows, learned),
    ])


# --- training curves (psp_aux) ------------------------------------------------------------------

CURVE_POINTS = (0.25, 0.5, 1.0)  # fractions of training at which the table gives the main loss
CURVE_WINDOW = 0.1  # ... as the mean of the logged losses over the last 10 % of training up to there


def variant_curves(rows, variant, results_dir):
    """({key: [seeds, points] array} of the variant's finished seeds that have a saved curve (only
    the iterations all of them logged), seeds without one)."""
    ok = rows[(rows["variant"] == variant) & (rows["status"] == OK)]
    ok = ok.drop_duplicates(["run_id", "eval_id"]).sort_values("seed", kind="stable")
    curves, missing = [], []
    for _, row in ok.iterrows():
        path = analysis_file(results_dir, row["run_id"], row["eval_id"], "curve")
        if os.path.exists(path):
            curves.append(load_analysis(path))
        else:
            missing.append(int(row["seed"]))
    if not curves:
        return {}, missing
    common = sorted(set.intersection(*(set(c["iteration"].tolist()) for c in curves)))
    keys = [k for k in curves[0] if all(k in c for c in curves)]
    out = {}
    for key in keys:
        out[key] = np.stack([c[key][np.isin(c["iteration"], common)] for c in curves])
    return out, missing


def loss_at(iterations, losses, fraction, window=CURVE_WINDOW):
    """Mean of `losses` (any leading axes, last axis along `iterations`) over the logged iterations
    in (fraction − window, fraction] of training (the last logged iteration being 100 %)."""
    iterations = np.asarray(iterations, dtype=float)
    end = iterations.max()
    keep = (iterations > (fraction - window) * end) & (iterations <= fraction * end)
    return float(np.mean(np.asarray(losses)[..., keep])) if keep.any() else math.nan


@report_section("psp_curves")
def curve_section(spec, rows, results_dir, fig_dir, rel_fig, loss="main_loss"):
    """Report section (markdown): the main loss against the iteration, mean over seeds per variant
    (with the auxiliary loss, where there is one, beside it), and a table of the main loss at 25, 50
    and 100 % of training. One line when no run has a saved curve (analysis "curve")."""
    curves, notes = {}, []
    for variant in dict.fromkeys(rows["variant"]):
        data, missing = variant_curves(rows, variant, results_dir)
        if data and loss in data:
            curves[variant] = data
        if missing:
            notes.append(f"{variant}: no saved curve for seed(s) {', '.join(map(str, missing))}")
    title = "### Training curves: does the auxiliary loss speed up the main loss?"
    if not curves:
        return f"{title}\n\nNot drawn: no run of this table has a saved training curve (analysis \"curve\")."
    labels = {v["id"]: v.get("label", v["id"]) for v in spec.variants}
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for i, (variant, data) in enumerate(curves.items()):  # one colour per variant in both panels
        it, style = data["iteration"][0], {"label": labels.get(variant, variant), "color": f"C{i}"}
        axes[0].plot(it, data[loss].mean(0), **style)
        if "aux_loss" in data:
            axes[1].plot(it, data["aux_loss"].mean(0), **style)
    axes[0].set_title("main loss (mean over seeds)", fontsize=9)
    axes[1].set_title("auxiliary head's loss (mean over seeds)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    axes[0].set_ylabel("cross-entropy (one batch)")
    fig.tight_layout()
    name = f"{spec.name}_curves.png"
    save_figure(fig, os.path.join(fig_dir, name), 100)
    header = ["variant", "seeds"] + [f"main loss at {int(100 * f)} %" for f in CURVE_POINTS]
    table = [[labels.get(v, v), len(d[loss])] + [fmt(loss_at(d["iteration"][0], d[loss], f), 3) for f in CURVE_POINTS]
             for v, d in curves.items()]
    return "\n\n".join([
        title,
        "Where deep supervision works, the main head's loss falls faster early in training. Losses of single "
        "training batches (engine/trainer.py); the table: mean over seeds and over the logged iterations in the "
        f"last {int(100 * CURVE_WINDOW)} % of training up to each point.",
        md_table(header, table),
        f"![{spec.name} curves]({rel_fig}/{name})",
    ] + (["Missing curves: " + "; ".join(notes) + "."] if notes else []))

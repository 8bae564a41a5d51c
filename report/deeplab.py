"""DeepLab v1's own report parts. deeplab_fov's: how the variants as run map to the paper's, the
measured training-speed ratios beside the paper's, and Table 1(a) (no CRF) beside the reproduced
mIoU. deeplab_crf's: Table 1(a) and Table 2 before and after the CRF, where its gain sits (boundary
vs internal accuracy, and the trimap of the paper's Fig. 5), the CRF's settings as chosen per model,
and a few images before and after it."""
import json
import math
import os

from engine.analysis import analysis_file, load_analysis, model_analysis_file
from engine.design import seed_values
from engine.rows import OK, read_rows
from engine.tuning import choose_crfs, crf_optimum, crf_point_index, crf_scores, selection_csv
from report.common import (LABEL_COLOURS, fmt, image_grid, md_table, mean_std, mean_text, per_seed, plt, report_section,
                           save_figure, shown_label)


def run_fov(rows, results_dir, variant):
    """The "fov" analysis of the network `variant`'s rows trained (its data and model config), or None."""
    ok = rows[rows["variant"] == variant]
    if not len(ok):
        return None
    row = ok.iloc[0]
    path = model_analysis_file(results_dir, json.loads(row["data_config"]), json.loads(row["model_config"]), "fov")
    return load_analysis(path) if os.path.exists(path) else None


@report_section("deeplab_fov", "published_no_crf", "receptive_field")
def fov_sections(spec, rows, results_dir, fig_dir, rel_fig, paper_fov, published_no_crf, receptive_field):
    """(Markdown of the report: the mapping of each variant as run (its rows' "fov" analysis) to the paper's
    (paper_fov(variant id): at paper size, from the config alone; receptive_field: the paper's Table 2) and
    training-speed ratios to 7×7 beside the paper's; of the appendix: Table 1(a) (published_no_crf) beside
    the reproduced mIoU)."""
    preset = ", ".join(sorted(rows["preset"].astype(str).unique()))
    params = per_seed(rows, "params")
    mapping, run = [], None
    for v in spec.variants:
        k, d, c = paper_fov(v["id"])["fc6"]
        line = [v["label"], f"{k}×{k}, dil {d}, {c}", receptive_field[v["id"]],
                fmt(spec.published[v["id"]]["params"] / 1e6, 1) + "M"]
        fov = run_fov(rows, results_dir, v["id"])
        if fov is not None:
            run = fov
            k, d, c = (int(x) for x in fov["fc6"])
            line += [f"{k}×{k}, dil {d}, {c}", int(fov["receptive_field"]), fmt(mean_std(params.get(v["id"], []))[0])]
        else:
            line += ["not run" if v["id"] not in set(rows["variant"]) else "no fov analysis", "–", "–"]
        mapping.append(line)
    trunk = (f"Receptive field of the conv trunk alone (before fc6): paper "
             f"{paper_fov('largefov')['trunk_receptive_field']} px"
             + (f", run {int(run['trunk_receptive_field'])} px" if run is not None else "")
             + f" (image: {rows.iloc[0].get('image_size')} px).")
    parts = [f"### Variants as run (preset `{preset}`) beside the paper's",
             md_table(["variant", "paper fc6 (k, dil, filters)", "paper receptive field", "paper #params",
                       "run fc6 (k, dil, filters)", "run receptive field (same formula)", "run #params"],
                      mapping), trunk]

    speed = per_seed(rows, "train_img_per_s")
    base = mean_std(speed.get("k7d4", []))[0]
    body = []
    for v in spec.variants:
        mean, std, n = mean_std(speed.get(v["id"], []))
        pub = spec.published[v["id"]]["train_img_per_s"]
        body.append([v["label"], fmt(pub), fmt(pub / spec.published["k7d4"]["train_img_per_s"]) + "×",
                     f"{fmt(mean, 1)} ± {fmt(std, 1)} ({n})" if n else "not run",
                     fmt(mean / base) + "×" if n and not math.isnan(base) else "–"])
    parts += ["### Training speed: ratio to 7×7 (timed after training, one run at a time, on a fixed batch)",
              md_table(["variant", "paper img/s", "paper ratio", "reproduced img/s (mean ± std, n)",
                        "reproduced ratio"], body)]

    miou = per_seed(rows, "mIoU")
    body = []
    for v in spec.variants:
        body.append([v["label"], fmt(published_no_crf.get(v["id"])), fmt(spec.published[v["id"]]["mIoU"]),
                     mean_text(miou.get(v["id"], []))])
    before_crf = "\n\n".join([
        "### Table 1(a): before the CRF (as reproduced here)",
        "Without the CRF the paper's LargeFOV (62.25) is 2.1 points below 7×7 (64.38); the "
        "'matches' of Table 2 holds after the CRF.",
        md_table(["variant", "published no CRF", "published + CRF (Table 2)", "reproduced (no CRF)"], body)])
    parts.append("Table 1(a) before the CRF beside these rows: appendix (the paper's LargeFOV is 2.1 points below "
                 "7×7 without the CRF; Table 2's 'matches' holds after it).")
    return "\n\n".join(parts), before_crf


def crf_gain(rows, variant, metric="mIoU"):
    """[after − before per seed]: the CRF's gain on each trained model of `variant` (its rows with and
    without the CRF share a run id per seed, so the difference is per model)."""
    values = seed_values(rows, metric)
    before, after = values.get(variant, {}), values.get(f"{variant}_crf", {})
    return [after[s] - before[s] for s in sorted(set(before) & set(after)) if math.isfinite(after[s] - before[s])]


@report_section("deeplab_crf", "table_1a", "table_2")
def crf_sections(spec, rows, results_dir, fig_dir, rel_fig, table_1a, table_2):
    """(Markdown of the report: Table 1(a) and Table 2 before / after the CRF beside the paper's, the CRF's
    gain on boundary and internal pixels, the trimap's figure and a figure of examples; of the appendix: the
    trimap's table and the CRF's settings as chosen per model on held-out training images, or None)."""
    label = {v["id"]: v["label"] for v in spec.variants}
    miou = per_seed(rows, "mIoU")
    pub = {v: spec.published.get(v, {}).get("mIoU") for v in label}
    body = [[label[v], fmt(pub[v]), fmt(pub[f"{v}_crf"]), fmt(pub[f"{v}_crf"] - pub[v]),
             mean_text(miou.get(v, [])), mean_text(miou.get(f"{v}_crf", [])), mean_text(crf_gain(rows, v))]
            for v in table_1a]
    parts = ["### Table 1(a): before and after the CRF",
             md_table(["variant", "published no CRF", "published + CRF", "published gain", "reproduced no CRF",
                       "reproduced + CRF", "reproduced gain (per model: mean ± std, n)"], body)]
    body = [[label[v], fmt(pub[f"{v}_crf"]), mean_text(miou.get(f"{v}_crf", [])), mean_text(miou.get(v, []))]
            for v in table_2]
    parts += ["### Table 2 after the CRF, as the paper reports it (deeplab_fov judges its claims before the CRF)",
              md_table(["variant", "published (after CRF)", "reproduced + CRF", "reproduced no CRF"], body)]
    body = []
    for v in table_1a + [v for v in table_2 if v not in table_1a]:
        line = [label[v]]
        for metric in ("boundary_acc", "internal_acc"):
            values = per_seed(rows, metric)
            line += [f"{fmt(mean_std(values.get(v, []))[0])} → {fmt(mean_std(values.get(f'{v}_crf', []))[0])}",
                     mean_text(crf_gain(rows, v, metric))]
        body.append(line)
    band = rows["boundary_band"].dropna()
    parts += ["### Where the CRF's gain sits: boundary vs internal pixels",
              f"Pixel accuracy within {fmt(band.iloc[0]) if len(band) else '–'} px of a label boundary and "
              "elsewhere (GCN Table 5's band), before → after the CRF, and the gain per model.",
              md_table(["variant", "boundary acc % (before → after)", "boundary gain", "internal acc % (before → after)",
                        "internal gain"], body)]
    trimap, trimap_table = trimap_section(spec, rows, fig_dir, rel_fig, table_1a) or (None, None)
    if trimap:
        parts.append(trimap)
    selection = crf_selection(spec, results_dir)
    if selection:
        parts.append("The CRF's settings were chosen per model on held-out training images (the grid and each "
                     "model's choice: appendix).")
    figure = crf_figure(spec, rows, results_dir, fig_dir, rel_fig)
    if figure:
        parts.append(figure)
    return "\n\n".join(parts), "\n\n".join(t for t in (trimap_table, selection) if t) or None


def trimap_rows(rows, variant):
    """{width: [mIoU per finished run]} of a variant's trimap (eval option trimap), by band width."""
    ok = rows[(rows["variant"] == variant) & (rows["status"] == OK)]
    out = {}
    for text in (ok["trimap"].dropna() if "trimap" in ok else []):
        for width, score in json.loads(text).items():
            out.setdefault(float(width), []).append(score["mIoU"])
    return out


def trimap_section(spec, rows, fig_dir, rel_fig, variants):
    """DeepLab v1's Fig. 5: mIoU of the pixels within a band of w px around the label boundaries, for
    each width, before and after the CRF (mean over seeds): (a figure, a table), or None."""
    curves = {v: (trimap_rows(rows, v), trimap_rows(rows, f"{v}_crf")) for v in variants}
    widths = sorted({w for before, after in curves.values() for w in list(before) + list(after)})
    if not widths:
        return None
    label = {v["id"]: v["label"] for v in spec.variants}
    body = [[label[v]] + [f"{fmt(mean_std(before.get(w, []))[0])} → {fmt(mean_std(after.get(w, []))[0])}"
                          for w in widths] for v, (before, after) in curves.items()]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for i, (v, (before, after)) in enumerate(curves.items()):
        for ax, data in zip(axes, (before, after)):
            ax.plot(widths, [mean_std(data.get(w, []))[0] for w in widths], "o-", color=f"C{i}", label=label[v])
    for ax, title in zip(axes, ("before the CRF", "after the CRF")):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("trimap width (px)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mIoU % within the band (mean over seeds)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    name = f"{spec.name}_trimap.png"
    save_figure(fig, os.path.join(fig_dir, name), 100)
    title = "### Trimap: mIoU near the boundaries, before → after the CRF (the paper's Fig. 5)"
    return "\n\n".join([
        title, "mIoU of the pixels within w px of a label boundary, mean over seeds (the paper's widths run to 40 px "
        "on ~500-px images, these to 10 px on 128-px ones; the table: appendix).",
        f"![{spec.name} trimap]({rel_fig}/{name})"]), "\n\n".join([title, md_table(["variant", *[f"{w:g} px" for w in widths]], body)])


def crf_selection(spec, results_dir):
    """The CRF grid on held-out training images: each point's settings and each tuned model's mIoU
    there, the point chosen for each model."""
    path = selection_csv(results_dir, spec.name)
    if not os.path.exists(path):
        return None
    rows = read_rows(path)
    rows = rows[rows["plan_id"] == rows["plan_id"].iloc[-1]]
    chosen = choose_crfs(spec, rows)
    tuned = [v["id"] for v in spec.variants if v.get("tune_crf")]
    grid = {}  # point index → (settings, {tuned variant: cell})
    for _, row in rows.iterrows():
        for vid in tuned:
            point = crf_point_index(row["variant"], vid)
            if point is None:
                continue
            settings = json.loads(row["eval_config"])["crf"]
            cell = fmt(row["mIoU"]) if row["status"] == OK else row["status"]
            grid.setdefault(point, (settings, {}))[1][vid] = f"**{cell}**" if chosen.get(vid) == settings else cell
    label = {v["id"]: v["label"] for v in spec.variants}
    body = [[", ".join(f"{k} {v:g}" for k, v in sorted(settings.items()))] + [cells.get(v, "–") for v in tuned]
            for _, (settings, cells) in sorted(grid.items())]
    data = json.loads(rows.iloc[0]["data_config"])
    scored = json.loads(rows.iloc[0]["eval_config"]).get("images")
    on = f"the first {scored} of those {data['holdout']}" if scored else f"those {data['holdout']}"
    optimum = crf_optimum_table(spec, rows, tuned, label)
    return "\n\n".join([
        "### The CRF's settings, chosen per model on held-out training images",
        f"Each model is trained once more on the training split less its last {data['holdout']} images and "
        f"evaluated at every point of the grid on {on} images; the best mean mIoU is chosen "
        "for that model (bold; a tie: the earlier point). The validation split is never used to choose. w2 = 3, "
        "θγ = 3 and 10 iterations are fixed (the paper's).",
        md_table(["settings", *[f"held-out mIoU %: {label.get(v, v)}" for v in tuned]], body)] + optimum)


def crf_optimum_table(spec, rows, tuned, label):
    """Where each model's chosen point lies against the paper's ranges (the preset's grid "range"), and how
    its fine search ended: [] for a grid without a fine search."""
    grid = spec.presets.get(rows.iloc[0]["preset"], {}).get("tuning", {}).get("crf", {})
    if not grid.get("range"):
        return []
    body = []
    for vid in tuned:
        where = crf_optimum(grid, [(settings, score) for _, settings, score in crf_scores(rows, vid)])
        if where:
            body.append([label.get(vid, vid), ", ".join(f"{k} {v:g}" for k, v in sorted(where["settings"].items())),
                         *[where["places"][k] for k in sorted(grid["range"])], where["ended"]])
    ranges = ", ".join(f"{k} {lo:g}–{hi:g}" for k, (lo, hi) in sorted(grid["range"].items()))
    return ["Coarse to fine, as the paper: the coarse points, then round by round the best point's neighbours one "
            f"fine step away ({', '.join(f'{k} {v:g}' for k, v in sorted(grid['fine'].items()))}), beyond the "
            f"paper's range ({ranges}) wherever the best lies on its edge, until the best is a local optimum or "
            f"{grid['fine_points']} points are spent (a rule fixed before any run). Where each optimum lies:",
            md_table(["model", "chosen", *[f"{k} against the range" for k in sorted(grid["range"])], "search ended"],
                     body)]


def crf_figure(spec, rows, results_dir, fig_dir, rel_fig):
    """Image, label, before and after the CRF for a few validation images: the "crf_examples" analysis
    of the lowest seed's run of the variant that keeps it."""
    variant = next((v["id"] for v in spec.variants if "crf_examples" in v.get("analyses", [])), None)
    ok = rows[(rows["variant"] == variant) & (rows["status"] == OK)].sort_values("seed", kind="stable")
    if not len(ok):
        return None
    row = ok.iloc[0]
    path = analysis_file(results_dir, row["run_id"], row["eval_id"], "crf_examples")
    if not os.path.exists(path):
        return f"Figure not drawn: {os.path.relpath(path, results_dir)} is not in the results folder."
    data = load_analysis(path)
    name = f"{spec.name}_examples.png"
    image_grid([("image", list(data["image"]), {}),
                ("label", [shown_label(label) for label in data["label"]], LABEL_COLOURS),
                ("before CRF", list(data["before"]), LABEL_COLOURS), ("after CRF", list(data["after"]), LABEL_COLOURS)],
               os.path.join(fig_dir, name), f"{variant}, seed {int(row['seed'])}: validation images before and after the CRF")
    return f"### Before and after the CRF\n\n![CRF examples]({rel_fig}/{name})"

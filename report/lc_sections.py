"""Layer Cascade's own report parts, called through the lc ablations' `extra_sections` hook:
Table 3 (speed per ρ, per-stage times, speed-ups beside the paper's) and a Fig. 5-style figure
(which stage decided each pixel of a few validation images)."""
import os

import numpy as np
import torch
from matplotlib.colors import ListedColormap

from report.build import fmt, md_table, mean_std, per_seed, plt  # build sets the Agg backend first


def _cell(values, digits=2):
    mean, std, n = mean_std(values)
    if not n:
        return "–"
    return f"{fmt(mean, digits)} ± {fmt(std, digits)}" if n > 1 else fmt(mean, digits)


def speedup(rows, slow, fast):
    """Per-seed speed-ups ms(slow) / ms(fast) of two variants timed in the same run group."""
    ms = per_seed(rows, "infer_ms")
    return [a / b for a, b in zip(ms.get(slow, []), ms.get(fast, [])) if b > 0]


def speed_section(rows, variants, published, slow_ids=("r1", "r0985"), fast_id="r08"):
    """Table 3 as reproduced: per ρ the median ms/image, images/s and per-stage ms (mean ± std over
    seeds), the paper's numbers beside where it has them, then the speed-ups of ρ = 0.8."""
    if "infer_ms" not in rows:
        return "### Speed (Table 3)\n\nNo timings in these results (eval without `speed_repeats`)."
    body = []
    for v in variants:
        stages = " / ".join(_cell(per_seed(rows, f"stage{i}_ms").get(v["id"], []), 2) for i in (1, 2, 3))
        pub = published.get(v["id"])
        body.append([v["label"], _cell(per_seed(rows, "mIoU").get(v["id"], [])),
                     _cell(per_seed(rows, "infer_ms").get(v["id"], []), 2),
                     _cell(per_seed(rows, "infer_fps_median").get(v["id"], []), 1), stages,
                     fmt(pub["infer_ms"], 1) if pub else "–", fmt(pub["fps"], 1) if pub else "–",
                     " / ".join(fmt(t, 1) for t in pub["stage_ms"]) if pub else "–"])
    table = md_table(["ρ", "mIoU", "ms/image", "images/s", "stage 1 / 2 / 3 ms", "paper ms", "paper FPS",
                      "paper stage 1 / 2 / 3 ms"], body)
    device = ", ".join(sorted(rows["device"].astype(str).unique()))
    batch = rows["speed_batch"].dropna().unique() if "speed_batch" in rows else []
    lines = []
    labels = {v["id"]: v["label"] for v in variants}
    for slow in slow_ids:
        ups = speedup(rows, slow, fast_id)
        if slow == "r0985":
            paper = f"paper {published[slow]['infer_ms']} → {published[fast_id]['infer_ms']} ms = " \
                    f"{published[slow]['infer_ms'] / published[fast_id]['infer_ms']:.2f}×"
        else:
            paper = "paper: not timed"
        lines.append(f"- speed-up of {labels.get(fast_id, fast_id)} over {labels.get(slow, slow)}: "
                     f"{_cell(ups)}× over {len(ups)} seed(s) ({paper})")
    return "\n\n".join([
        "### Speed (Table 3)",
        f"Measured on {device}: one fixed batch of {', '.join(str(int(b)) for b in batch) or '?'} validation "
        "image(s), warm-up passes then repeated timed passes, median (synchronised on GPU); ms/image = batch "
        "time / batch size; stage times as the model records them. The paper's numbers are one GPU at 512×512: "
        "compare speed-ups, not milliseconds.", table, "\n".join(lines)])


def stage_map_section(rows, results_dir, fig_dir, rel_fig, variant, rho, n_images=6):
    """Fig. 5-style: image, label, prediction and deciding stage for a few validation images, from
    the first seed's model of `variant` at threshold rho."""
    title = "### Which stage decides each pixel (Fig. 5 idea)"
    ok = rows[(rows["variant"] == variant) & (rows["status"] == "ok")].sort_values("seed")
    if not len(ok):
        return f"{title}\n\nNo finished run of `{variant}`."
    row = ok.iloc[0]
    from ablations.runs import load_trained_run
    loaded = load_trained_run(results_dir, row["run_id"])
    if loaded is None:
        return f"{title}\n\nNot drawn: the trained model is not in {results_dir}/runs/{row['run_id']} (run folders are not committed)."
    model, val = loaded
    n = min(n_images, len(val))
    images = torch.stack([val[i][0] for i in range(n)])
    labels = torch.stack([val[i][1] for i in range(n)])
    with torch.no_grad():
        pred = model.predict(images, rho=rho)[0].argmax(1)
        stages = model.decision_map(images, rho)
    stages = torch.nn.functional.interpolate(stages[:, None].float(), size=images.shape[-2:], mode="nearest")[:, 0]
    fig, axes = plt.subplots(4, n, figsize=(2 * n, 8.2), squeeze=False)
    shown = images.permute(0, 2, 3, 1).numpy()
    shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-6)
    cmap_stage = ListedColormap(["#fde0a1", "#f07b3f", "#5c1a33"])  # stage 1, 2, 3
    for i in range(n):
        lab = labels[i].numpy().astype(float)
        lab[lab == 255] = np.nan
        for ax, img, kwargs in ((axes[0, i], shown[i], {}),
                                (axes[1, i], lab, {"cmap": "tab10", "vmin": 0, "vmax": 9}),
                                (axes[2, i], pred[i].numpy(), {"cmap": "tab10", "vmin": 0, "vmax": 9}),
                                (axes[3, i], stages[i].numpy(), {"cmap": cmap_stage, "vmin": 1, "vmax": 3})):
            ax.imshow(img, interpolation="nearest", **kwargs)
            ax.axis("off")
    for r, name in enumerate(("image", "label", "prediction", "deciding stage")):
        axes[r, 0].set_title(name, fontsize=9, loc="left")
    share = [100 * float((stages == s).float().mean()) for s in (1, 2, 3)]
    fig.suptitle(f"stage that decides each pixel at ρ = {rho:g} (light = stage 1, mid = 2, dark = 3); "
                 f"these images: {share[0]:.0f} / {share[1]:.0f} / {share[2]:.0f} %", fontsize=10)
    fig.tight_layout()
    name = f"{row['ablation']}_stages.png"
    fig.savefig(os.path.join(fig_dir, name), dpi=90)
    plt.close(fig)
    return (f"{title}\n\nModel `{variant}`, seed {int(row['seed'])}, at ρ = {rho:g}; first {n} validation images. "
            f"Easy pixels (smooth background, object interiors) should leave at stage 1; the later stages "
            f"should keep the hard ones (object outlines, shapes the shallow stage cannot tell apart)."
            f"\n\n![stage map]({rel_fig}/{name})")


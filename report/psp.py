"""PSPNet's own report part, named in psp_pool's REPORT_SECTIONS: why a local receptive field cannot
solve the embedded dataset's scene-context task."""
import json
import math
import os

import numpy as np

from ablations.analysis import band_distances, upward_reach
from report.common import plt, save_figure

HEADS = ("baseline", "control", "b1_ave", "b1236_ave_dr")


def run_model(model_config, num_classes):
    """The network a row trained, rebuilt from its model_config column, untrained: the upward reach
    depends on the architecture only (upward_reach makes every weight positive), so no trained
    weights, and no analysis file, are needed, and the section stays exact for any committed CSV.
    Pretrained weights are not loaded (they would not change the reach)."""
    from segmodels import build_model
    cfg = json.loads(model_config)
    cfg["backbone"] = {k: v for k, v in cfg["backbone"].items() if k != "weights"}
    return build_model(cfg, num_classes)


def context_section(spec, rows, results_dir, fig_dir, rel_fig, heads=HEADS):
    """Report section (markdown): for each kind of head, the share of object pixels whose receptive
    field contains a band pixel, a histogram of object-to-band distances against the baseline's
    reach, and a sample scene with the receptive field drawn. Only for the embedded dataset in
    scene-context mode (empty otherwise)."""
    from data.synthetic import SyntheticScenes, cue_rows

    data_cfg = json.loads(rows.iloc[0]["data_config"])
    if data_cfg.get("name") != "synthetic" or not data_cfg.get("context"):
        return ""
    configs = {v: g.iloc[0]["model_config"] for v, g in rows.groupby("variant", sort=False)}
    val = SyntheticScenes("val", **{k: v for k, v in data_cfg.items() if k != "name"})
    size, band = val.labels.shape[-1], cue_rows(val.labels.shape[-1])
    dist = band_distances(val)
    lines = ["| head | reach upwards (px) | object pixels whose receptive field holds a band pixel |",
             "|---|---|---|"]
    reach_of = {}
    for variant in heads:
        if variant not in configs:
            continue
        reach = upward_reach(run_model(configs[variant], val.num_classes), size)
        reach_of[variant] = reach
        lines.append(f"| {variant} | {'whole image' if math.isinf(reach) else reach} | "
                     f"{100 * np.mean(dist <= reach):.1f} % |")
    local = min(reach_of.get("baseline", size), size)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    axes[0].hist(dist, bins=np.arange(0, size + 2, 2) - 0.5, color="tab:blue")  # 2-row bins
    axes[0].set_xlim(0, size)
    axes[0].axvline(local, color="tab:red", label=f"baseline reach ({local} px)")
    axes[0].set_xlabel("rows from an object pixel up to the band")
    axes[0].set_ylabel("object pixels (val)")
    axes[0].legend()
    i = int(np.argmin([(lab > 0).nonzero()[:, 0].min().item() if (lab > 0).any() else size
                       for lab in val.labels[:50]]))  # the scene whose object comes nearest the band
    axes[1].imshow(val.images[i].permute(1, 2, 0).numpy())
    ys, xs = (val.labels[i] > 0).nonzero(as_tuple=True)
    top = int(ys.argmin())
    y, x = int(ys[top]), int(xs[top])
    axes[1].add_patch(plt.Rectangle((x - local, y - local), 2 * local, 2 * local, fill=False, color="white",
                                    linestyle="--"))
    axes[1].plot([x], [y], "w+")
    axes[1].set_title(f"baseline's receptive field (± {local} px) at the topmost object pixel\n"
                      f"(band: rows 0-{band - 1})", fontsize=9)
    axes[1].axis("off")
    fig.tight_layout()
    name = f"{spec.NAME}_context.png"
    save_figure(fig, os.path.join(fig_dir, name), 100)
    return "\n\n".join([
        "### Why a local receptive field cannot solve the context task",
        f"The kind of scene (which decides between look-alike classes) is shown only by the band in "
        f"rows 0–{band - 1}; every object lies ≥ {int(dist.min())} rows below it. The reach is the "
        "exact receptive field of the architecture each row trained (its model_config), upwards "
        "(ablations/analysis.upward_reach). Where no object pixel's receptive field holds a band pixel, a head "
        "can only guess the kind of scene (context_acc ≈ 50 %); pyramid pooling sees the whole image.",
        "\n".join(lines),
        f"![{spec.NAME} context]({rel_fig}/{name})",
    ])

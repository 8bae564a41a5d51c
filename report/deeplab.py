"""DeepLab v1's own report part, named in deeplab_fov's REPORT_SECTIONS: how the variants as run map
to the paper's, the measured training-speed ratios beside the paper's, and Table 1(a) (no CRF)
beside the reproduced mIoU."""
import json
import math

import torch

from report.common import fmt, md_table, mean_std, per_seed


def run_model(model_config):
    """The network a row trained, rebuilt on the meta device (shapes only, no weights read) from
    its model_config column: the report never re-plans runs from the current ablation file."""
    from segmodels import build_model
    cfg = json.loads(model_config)
    cfg["backbone"] = {k: v for k, v in cfg["backbone"].items() if k != "weights"}
    with torch.device("meta"):
        return build_model(cfg, 2)


def fov_sections(spec, rows, results_dir, fig_dir, rel_fig):
    """Markdown: the mapping of each variant as run (rebuilt from its rows' model_config) to the
    paper's, training-speed ratios to 7×7 beside the paper's, and Table 1(a) beside the reproduced mIoU."""
    from segmodels.backbones import receptive_field
    from segmodels.deeplab import fov_receptive_field

    preset = ", ".join(sorted(rows["preset"].astype(str).unique()))
    configs = {v: g.iloc[0]["model_config"] for v, g in rows.groupby("variant", sort=False)}
    params = per_seed(rows, "params")
    mapping, run = [], None
    for v in spec.VARIANTS:
        paper = spec.paper_model(v["id"]).backbone.fc6
        line = [v["label"], f"{paper.kernel_size}×{paper.kernel_size}, dil {paper.dilation}, "
                f"{paper.conv.out_channels}", spec.RECEPTIVE_FIELD[v["id"]],
                fmt(spec.PUBLISHED[v["id"]]["params"] / 1e6, 1) + "M"]
        if v["id"] in configs:
            run = run_model(configs[v["id"]])
            fc6 = run.backbone.fc6
            line += [f"{fc6.kernel_size}×{fc6.kernel_size}, dil {fc6.dilation}, {fc6.conv.out_channels}",
                     fov_receptive_field(run), fmt(mean_std(params.get(v["id"], []))[0])]
        else:
            line += ["not run", "–", "–"]
        mapping.append(line)
    trunk = (f"Receptive field of the conv trunk alone (before fc6): paper "
             f"{receptive_field(spec.paper_model('largefov').backbone.features)} px"
             + (f", run {receptive_field(run.backbone.features)} px" if run is not None else "")
             + f" (image: {rows.iloc[0].get('image_size')} px).")
    parts = [f"### Variants as run (preset `{preset}`) beside the paper's",
             md_table(["variant", "paper fc6 (k, dil, filters)", "paper receptive field", "paper #params",
                       "run fc6 (k, dil, filters)", "run receptive field (same formula)", "run #params"],
                      mapping), trunk]

    speed = per_seed(rows, "train_img_per_s")
    base = mean_std(speed.get("k7d4", []))[0]
    body = []
    for v in spec.VARIANTS:
        mean, std, n = mean_std(speed.get(v["id"], []))
        pub = spec.PUBLISHED[v["id"]]["train_img_per_s"]
        body.append([v["label"], fmt(pub), fmt(pub / spec.PUBLISHED["k7d4"]["train_img_per_s"]) + "×",
                     f"{fmt(mean, 1)} ± {fmt(std, 1)} ({n})" if n else "not run",
                     fmt(mean / base) + "×" if n and not math.isnan(base) else "–"])
    parts += ["### Training speed: ratio to 7×7 (timed after training, one run at a time, on a fixed batch)",
              md_table(["variant", "paper img/s", "paper ratio", "reproduced img/s (mean ± std, n)",
                        "reproduced ratio"], body)]

    miou = per_seed(rows, "mIoU")
    body = []
    for v in spec.VARIANTS:
        mean, std, n = mean_std(miou.get(v["id"], []))
        pub = spec.PUBLISHED_NO_CRF.get(v["id"])
        body.append([v["label"], fmt(pub), fmt(spec.PUBLISHED[v["id"]]["mIoU"]),
                     f"{fmt(mean)} ± {fmt(std)} ({n})" if n else "not run"])
    parts += ["### Table 1(a): before the CRF (as reproduced here)",
              "Without the CRF the paper's LargeFOV (62.25) is 2.1 points below 7×7 (64.38); the "
              "'matches' of Table 2 holds after the CRF.",
              md_table(["variant", "published no CRF", "published + CRF (Table 2)", "reproduced (no CRF)"], body)]
    return "\n\n".join(parts)

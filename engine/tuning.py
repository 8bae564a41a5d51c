"""What the selection runs choose, read from their rows: the lr of each "tune_lr" variant and the CRF
settings of each "tune_crf" variant. The runs are planned by engine/plans.py (selection_plans); the
report reads the same rows through these functions, so both choose alike.

A selection run's variant id names its variant and its grid point, written and read here only:
'<id>@<scale>' (trained at the preset's lr × scale) and '<id>@crf<i>' (the i-th point of the CRF grid).
"""
import json
import math
import os

from engine.rows import OK


def tuned(variant, scales, series):
    """A "_tuned" copy of a variant: the same model, trained at the lr of `scales` × the preset's lr
    that scores best on held-out training images."""
    return {**variant, "id": f"{variant['id']}_tuned", "label": f"{variant['label']}, best lr", "series": series,
            "tune_lr": scales}


def lr_point_id(variant_id, scale):
    return f"{variant_id}@{scale:g}"


def crf_point_id(variant_id, index):
    return f"{variant_id}@crf{index}"


def crf_point_index(point_id, variant_id):
    """i of '<variant_id>@crf<i>', or None for any other id."""
    prefix = f"{variant_id}@crf"
    return int(point_id[len(prefix):]) if point_id.startswith(prefix) and point_id[len(prefix):].isdigit() else None


def selection_csv(out_dir, name):
    """Rows of the selection runs (held-out scores), beside the ablation's CSV."""
    return os.path.join(out_dir, "tuning", f"{name}.csv")


def crf_grid(grid):
    """The CRF settings of a grid {setting: [values], optionally "points": [settings]} (a preset's
    tuning "crf"): every combination of the values, in a fixed order (the settings sorted by name,
    each one's values as listed), then each extra point not among them (e.g. the authors' settings)."""
    axes = {k: v for k, v in grid.items() if k != "points"}
    points = [{}]
    for name in sorted(axes):
        points = [{**point, name: value} for point in points for value in axes[name]]
    return points + [p for i, p in enumerate(grid.get("points", [])) if p not in points + grid["points"][:i]]


def choose_crfs(spec, rows):
    """{variant id: CRF settings}: for each variant with "tune_crf", the grid point (its settings read
    from the rows' eval_config) of the best mean held-out mIoU over the selection rows; a tie goes to
    the earlier point of the grid."""
    ok = rows[rows["status"] == OK]
    chosen = {}
    for v in spec.variants:
        if not v.get("tune_crf"):
            continue
        scores = []
        for vid, runs in ok.groupby("variant"):
            point = crf_point_index(vid, v["id"])
            if point is not None and not math.isnan(runs["mIoU"].mean()):
                scores.append((runs["mIoU"].mean(), -point, json.loads(runs["eval_config"].iloc[0])["crf"]))
        if scores:
            chosen[v["id"]] = max(scores, key=lambda s: s[:2])[2]
    return chosen


def choose_lrs(spec, rows):
    """{variant id: lr}: for each variant with "tune_lr", the lr of the best mean held-out mIoU over
    its selection runs. An lr at which any run diverged (a failed row) is not chosen: the tuned
    comparison uses each variant's best stable lr. With no stable lr, the variant keeps none and its
    tuned rows are not planned (the report says so)."""
    ok = rows[rows["status"] == OK]
    failed = set(rows.loc[rows["status"] != OK, "variant"])
    chosen = {}
    for v in spec.variants:
        if not v.get("tune_lr"):
            continue
        scores = {}
        for scale in v["tune_lr"]:
            vid = lr_point_id(v["id"], scale)
            runs = ok[ok["variant"] == vid]
            if len(runs) and vid not in failed:
                scores[float(runs["lr"].iloc[0])] = runs["mIoU"].mean()
        if scores:
            chosen[v["id"]] = max(scores, key=lambda lr: (scores[lr], -lr))  # a tie goes to the smaller lr
    return chosen

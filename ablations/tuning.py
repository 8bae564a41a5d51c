"""Learning-rate and CRF selection, read from rows: where the selection runs' rows go, which lr each
"tune_lr" variant gets and which CRF settings each "tune_crf" variant gets. The runs themselves are
planned by ablations/runs.py (tuning_plans); the report reads the same rows through these
functions, so both choose alike.
"""
import json
import math
import os

from ablations.rows import OK


def tuned(variant, scales, series):
    """A "_tuned" copy of a variant: the same model, trained at the lr of `scales` × the preset's lr
    that scores best on held-out training images."""
    return {**variant, "id": f"{variant['id']}_tuned", "label": f"{variant['label']}, best lr", "series": series,
            "tune_lr": scales}


def tuning_csv_path(out_dir, name):
    """Rows of the learning-rate selection runs (held-out scores), beside the ablation's CSV."""
    return os.path.join(out_dir, "tuning", f"{name}.csv")


def crf_grid(axes):
    """The CRF settings of a grid {setting: [values]} (a preset's tuning "crf"), every combination, in
    a fixed order (the settings sorted by name, each one's values as listed)."""
    points = [{}]
    for name in sorted(axes):
        points = [{**point, name: value} for point in points for value in axes[name]]
    return points


def choose_crfs(spec, rows):
    """{variant id: CRF settings}: for each variant with "tune_crf", the grid point (its settings read
    from the rows' eval_config) of the best mean held-out mIoU over the rows of tuning_plans; a tie
    goes to the earlier point of the grid."""
    ok = rows[rows["status"] == OK]
    chosen = {}
    for v in spec.VARIANTS:
        if not v.get("tune_crf"):
            continue
        scores = []
        for vid, runs in ok[ok["variant"].str.startswith(f"{v['id']}@crf")].groupby("variant"):
            point = int(vid.rsplit("@crf", 1)[1])
            if not math.isnan(runs["mIoU"].mean()):
                scores.append((runs["mIoU"].mean(), -point, json.loads(runs["eval_config"].iloc[0])["crf"]))
        if scores:
            chosen[v["id"]] = max(scores, key=lambda s: s[:2])[2]
    return chosen


def choose_lrs(spec, rows):
    """{variant id: lr}: for each variant with "tune_lr", the lr of the best mean held-out mIoU over
    its selection runs (rows of tuning_plans). An lr at which any run diverged (a failed row) is
    not chosen: the tuned comparison uses each variant's best stable lr. With no stable lr, the
    variant keeps none and its tuned rows are not planned (the report says so)."""
    ok = rows[rows["status"] == OK]
    failed = set(rows.loc[rows["status"] != OK, "variant"])
    chosen = {}
    for v in spec.VARIANTS:
        if not v.get("tune_lr"):
            continue
        scores = {}
        for scale in v["tune_lr"]:
            vid = f"{v['id']}@{scale:g}"
            runs = ok[ok["variant"] == vid]
            if len(runs) and vid not in failed:
                scores[float(runs["lr"].iloc[0])] = runs["mIoU"].mean()
        if scores:
            chosen[v["id"]] = max(scores, key=lambda lr: (scores[lr], -lr))  # a tie goes to the smaller lr
    return chosen

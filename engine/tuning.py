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


# keys of a preset's CRF grid that are not its axes: extra points, and the fine search's steps and budget
CRF_SEARCH_KEYS = ("points", "fine", "fine_points", "range")


def crf_grid(grid):
    """The coarse CRF settings of a grid {setting: [values], optionally "points": [settings]} (a preset's
    tuning "crf"): every combination of the values, in a fixed order (the settings sorted by name,
    each one's values as listed), then each extra point not among them (e.g. the authors' settings)."""
    axes = {k: v for k, v in grid.items() if k not in CRF_SEARCH_KEYS}
    points = [{}]
    for name in sorted(axes):
        points = [{**point, name: value} for point in points for value in axes[name]]
    extra = grid.get("points", [])
    return points + [p for i, p in enumerate(extra) if p not in points + extra[:i]]


def best_crf(scored):
    """The best of [(settings, mean held-out mIoU)] in grid order (NaN never; a tie: the earlier point), or None."""
    ok = [(score, -i, settings) for i, (settings, score) in enumerate(scored) if not math.isnan(score)]
    return max(ok, key=lambda s: s[:2])[2] if ok else None


def next_crf_points(grid, scored):
    """The fine search after the coarse grid, as the paper's coarse-to-fine search (a rule fixed before any
    run): the points one fine step (grid["fine"]: {setting: step}) from the best point so far on each
    setting, that are not scored yet; none once every neighbour of the best is scored (the best is a local
    optimum at the fine steps) or grid["fine_points"] points beyond the coarse grid are scored. The search
    leaves the paper's range (grid["range"], which the report compares the optimum with) wherever the best
    lies on its edge: that is the widening. scored: [(settings, mean mIoU)] in the order they were scored."""
    best, seen = best_crf(scored), [settings for settings, _ in scored]
    if best is None or len(seen) - len(crf_grid(grid)) >= grid.get("fine_points", 0):
        return []
    out = []
    for name, step in sorted(grid.get("fine", {}).items()):
        for sign in (-1, 1):
            point = {**best, name: round(best[name] + sign * step, 6)}
            if point[name] > 0 and point not in seen + out:
                out.append(point)
    return out


def crf_optimum(grid, scored):
    """Where the best of scored ([(settings, mean mIoU)]) lies against the paper's range (grid["range"]):
    {setting: 'inside' | 'on its edge' | 'beyond it'}, and whether the fine search ended at a local optimum
    (every neighbour scored) or on its budget. None if nothing scored."""
    best = best_crf(scored)
    if best is None:
        return None
    places = {}
    for name, (lo, hi) in sorted(grid.get("range", {}).items()):
        value = best[name]
        places[name] = "beyond it" if not lo <= value <= hi else "on its edge" if value in (lo, hi) else "inside"
    local = not next_crf_points({**grid, "fine_points": math.inf}, scored)
    return {"settings": best, "places": places, "ended": "local optimum" if local else "budget spent"}


def crf_scores(rows, variant_id):
    """[(point index, CRF settings, mean held-out mIoU)] of a "tune_crf" variant's selection rows, by index;
    a point none of whose rows finished has NaN (it is scored, and never chosen)."""
    out = []
    for vid, runs in rows.groupby("variant"):
        point = crf_point_index(vid, variant_id)
        if point is not None:
            ok = runs[runs["status"] == OK]
            out.append((point, json.loads(runs["eval_config"].iloc[0])["crf"],
                        ok["mIoU"].mean() if len(ok) else math.nan))
    return sorted(out, key=lambda s: s[0])


def choose_crfs(spec, rows):
    """{variant id: CRF settings}: for each variant with "tune_crf", the grid point (its settings read
    from the rows' eval_config) of the best mean held-out mIoU over the selection rows, the coarse grid's
    and the fine search's; a tie goes to the earlier point."""
    chosen = {}
    for v in spec.variants:
        if v.get("tune_crf"):
            best = best_crf([(settings, score) for _, settings, score in crf_scores(rows, v["id"])])
            if best is not None:
                chosen[v["id"]] = best
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

"""Mechanism probes (issue 37): does the embedded data, at the settings a table uses, carry the
mechanism a paper's assertion relies on? Each probe measures one mechanism on held-out TRAINING
images (never the validation split the verdicts use) and passes at a threshold stated beside it,
chosen by what it measures (seed noise, sampling error), never by the verdict that follows.

A probe takes its measurements as inputs where they need a trained model (so it is testable without
training) and returns a ProbeResult; where the measurements are cheap a function beside it computes
them (from predictions, probabilities or the data itself). data/MECHANISMS.md lists them.
"""
import functools
import json
import os
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from scipy.ndimage import find_objects, label as connected_components

from engine.measurements import readout_accuracy
from engine.metrics import confusion_matrix, scores

SEED_SD = 1.0  # mIoU points: the suite's seed noise (median sd 0.93; issue 37 keeps it <= 1.0)


@dataclass(frozen=True)
class ProbeResult:
    mechanism: str
    passed: bool
    figure: float  # the probe's number, compared with the threshold
    threshold: float
    detail: str  # one line: the measurements behind the figure
    measurements: dict = field(default_factory=dict)  # those measurements by name (plain numbers)


# ---- overfitting: a many-parameter k×k head on limited labels (GCN Tables 2-4, "degrades with k")
# The train − held-out mIoU gap must grow across the k range by more than twice the seed noise: a gap
# is a difference of two scores of one run, so a smaller growth cannot be told from noise.
OVERFIT_GROWTH = 2 * SEED_SD


def miou(pred, labels, num_classes):
    """mIoU (percent) of class maps pred against labels (tensors of one shape; 255 ignored)."""
    return scores(confusion_matrix(torch.as_tensor(pred), torch.as_tensor(labels), num_classes))["mIoU"]


def train_heldout_gap(train_pred, train_labels, heldout_pred, heldout_labels, num_classes):
    """A model's mIoU on the images it trained on minus on held-out training images."""
    return miou(train_pred, train_labels, num_classes) - miou(heldout_pred, heldout_labels, num_classes)


def overfitting_present(ks, gaps):
    """gaps[seed][i] (or gaps[i]): a head's train − held-out mIoU gap at kernel size ks[i]. The figure:
    the growth of the mean gap across the k range, from its least-squares line."""
    ks, mean_gap = np.asarray(ks, float), np.atleast_2d(np.asarray(gaps, float)).mean(0)
    slope = np.polyfit(ks, mean_gap, 1)[0]
    growth = slope * (ks.max() - ks.min())
    return ProbeResult("overfitting grows with k", bool(growth >= OVERFIT_GROWTH), float(growth), OVERFIT_GROWTH,
                       "train − held-out gap per k: " + ", ".join(f"k={k:g}: {g:.1f}" for k, g in zip(ks, mean_gap)),
                       {"ks": ks.tolist(), "mean_gap": mean_gap.tolist()})


# ---- scale: objects over >= 8× in scale that one test scale handles unequally (PSPNet multi-scale testing)
# Sizes must span 8× (3 octaves; issue 37 and DESIGN.md ask as much of the data, real scenes span more),
# and the best octave's accuracy must lie 5 points above the worst's: what multi-scale testing could
# recover, 5× the seed noise, and at least twice its own standard error (so not the bins' sampling).
SCALE_SPAN = 8.0
SCALE_SPREAD = 5.0
MIN_OBJECTS_PER_BIN = 20  # an octave with fewer objects is left out (its mean too noisy)


def labelled_objects(labels, ignore_index=255):
    """Every object of label maps [N,H,W] (a connected region of one class other than background, per
    image): (its image's label map, the class, the class's region map, the region's index in it, its
    bounding box)."""
    for lab in np.asarray(labels):
        for cls in np.unique(lab):
            if cls in (0, ignore_index):
                continue
            regions, _ = connected_components(lab == cls)
            for index, box in enumerate(find_objects(regions), 1):
                yield lab, cls, regions, index, box


def object_regions(label, ignore_index=255):
    """The objects of one label map [H,W]: (class, boolean mask) of each."""
    for _, cls, regions, index, _ in labelled_objects(np.asarray(label)[None], ignore_index):
        yield cls, regions == index


def scale_present(sizes, accuracies):
    """Single-scale accuracy varies with object scale: objects binned by octave of size; the figure
    is the best octave's mean accuracy minus the worst's. Passes if the sizes span SCALE_SPAN, the
    spread is at least SCALE_SPREAD and at least twice its standard error."""
    sizes, accuracies = np.asarray(sizes, float), np.asarray(accuracies, float)
    span = sizes.max() / sizes.min() if len(sizes) else 0.0
    octave = np.floor(np.log2(sizes / sizes.min())).astype(int) if len(sizes) else np.array([], int)
    bins = [accuracies[octave == o] for o in np.unique(octave) if (octave == o).sum() >= MIN_OBJECTS_PER_BIN]
    if len(bins) < 2:
        return ProbeResult("accuracy varies with scale", False, 0.0, SCALE_SPREAD,
                           f"size span {span:.1f}×; fewer than 2 octaves with {MIN_OBJECTS_PER_BIN} objects",
                       {"span": float(span)})
    means = [b.mean() for b in bins]
    best, worst = bins[int(np.argmax(means))], bins[int(np.argmin(means))]
    spread = max(means) - min(means)
    stderr = np.sqrt(best.var(ddof=1) / len(best) + worst.var(ddof=1) / len(worst))
    passed = span >= SCALE_SPAN and spread >= SCALE_SPREAD and spread >= 2 * stderr
    return ProbeResult("accuracy varies with scale", bool(passed), float(spread), SCALE_SPREAD,
                       f"size span {span:.1f}× (needs {SCALE_SPAN:g}×); accuracy per octave "
                       + ", ".join(f"{m:.1f} (n={len(b)})" for m, b in zip(means, bins)) + f"; spread se {stderr:.1f}",
                       {"span": float(span), "octave_accuracy": [float(m) for m in means], "spread_se": float(stderr)})


# ---- sub-region context: pooled 2×2 / 3×3 / 6×6 features tell what 1×1 pooling cannot (PSPNet Table 1)
# The read-out is linear on a fixed, untrained feature (each pixel's colour, 4 levels a channel: a
# 64-bin histogram), average-pooled per cell as the pyramid pools, read at each object pixel from the
# cells that hold it. The pyramid must beat the global pooling by 20 points of accuracy: on today's
# single band, where by construction the sub-regions carry nothing the whole image lacks, the
# pyramid's read-out came out 2-8 points ahead over five sets of 200 images (the read-out's own noise:
# more features fit more easily); 20 is over twice the largest. (With a 2×2 grid of 4 kinds: ~50.)
CONTEXT_GAIN = 20.0
PYRAMID_BINS = (1, 2, 3, 6)
COLOUR_LEVELS = 4
# the read-outs are fitted on the 200 held-out training images (data.synthetic.HELDOUT_IMAGES): the 1×1
# read-out has 64 features that vary only per image, so it needs >= 100 images


def pooled_colours(images, bins):
    """images uint8 [N,3,H,W] -> the colour histogram [N, 64, b, b] of each of the b × b cells (pixel
    (y, x) lies in cell (y·b // H, x·b // W))."""
    levels = np.minimum(np.asarray(images).astype(np.int64) * COLOUR_LEVELS // 256, COLOUR_LEVELS - 1)
    colour = (levels[:, 0] * COLOUR_LEVELS + levels[:, 1]) * COLOUR_LEVELS + levels[:, 2]  # [N,H,W]
    n, h, w = colour.shape
    colours = COLOUR_LEVELS ** 3
    cell = (np.arange(h) * bins // h)[:, None] * bins + (np.arange(w) * bins // w)[None, :]  # [H,W]
    index = (np.arange(n)[:, None, None] * bins * bins + cell) * colours + colour
    counts = np.bincount(index.ravel(), minlength=n * bins * bins * colours).reshape(n, bins, bins, colours)
    area = np.bincount(cell.ravel(), minlength=bins * bins).reshape(bins, bins, 1)
    return (counts / area).transpose(0, 3, 1, 2)


def context_features(images, labels, context_of_class, bins, stride=4):
    """Per object pixel on a stride grid: the pooled colours of the cell holding it at each level of
    bins (concatenated), its image's index and its class's kind of scene. Returns (X, image, y)."""
    labels = np.asarray(labels)
    groups = np.array([-1 if g is None else g for g in context_of_class] + [-1] * (256 - len(context_of_class)))
    h, w = labels.shape[1:]
    pooled = [pooled_colours(images, b) for b in bins]
    rows, image_of, targets = [], [], []
    for n in range(len(labels)):
        ys, xs = np.nonzero(groups[labels[n, ::stride, ::stride]] >= 0)
        ys, xs = ys * stride, xs * stride
        rows.append(np.concatenate([p[n][:, ys * b // h, xs * b // w].T for p, b in zip(pooled, bins)], 1))
        image_of.append(np.full(len(ys), n))
        targets.append(groups[labels[n, ys, xs]])
    return np.concatenate(rows), np.concatenate(image_of), np.concatenate(targets)


def context_readouts(images, labels, context_of_class):
    """(global accuracy, pyramid accuracy): the read-out of each object pixel's kind of scene from 1×1
    pooling alone and from the pyramid's 1×1, 2×2, 3×3, 6×6."""
    return tuple(readout_accuracy(*context_features(images, labels, context_of_class, bins))
                 for bins in ((1,), PYRAMID_BINS))


def subregion_context_present(global_accuracy, pyramid_accuracy):
    gain = pyramid_accuracy - global_accuracy
    return ProbeResult("sub-region context", bool(gain >= CONTEXT_GAIN), float(gain), CONTEXT_GAIN,
                       f"kind of scene read from 1×1 pooling {global_accuracy:.1f} %, "
                       f"from the pyramid {'/'.join(map(str, PYRAMID_BINS))} {pyramid_accuracy:.1f} %",
                       {"global_accuracy": float(global_accuracy), "pyramid_accuracy": float(pyramid_accuracy)})


# ---- hard pixels: a shallow stage confidently wrong (Layer Cascade, "too small a ρ hurts")
# Of the pixels stage 1 decides at ρ = 0.8, at least 1 % must be wrong: a pixel decided there is never
# revisited, so this share bounds what a small ρ can cost; below the suite's seed noise (~1 point) the
# cost could not show. (Today's data: 0.2 %.)
HARD_RHO = 0.8
HARD_ERROR = 1.0


def decided_error(probabilities, labels, rho=HARD_RHO, ignore_index=255):
    """Stage-1 class probabilities [N,C,H,W] and labels [N,H,W]: (share of the labelled pixels decided,
    i.e. top probability above rho; the error among them), both in percent. (engine.measurements'
    stage_probe gives the same: 100 − acc[ρ, confident, stage 1].)"""
    probabilities, labels = torch.as_tensor(probabilities), torch.as_tensor(labels)
    top, pred = probabilities.max(1)
    labelled = labels != ignore_index
    decided = labelled & (top > rho)
    if not decided.any():
        return 0.0, float("nan")
    wrong = (pred != labels) & decided
    return 100 * decided.sum().item() / labelled.sum().item(), 100 * wrong.sum().item() / decided.sum().item()


def hard_pixels_present(error_among_decided):
    error = 0.0 if np.isnan(error_among_decided) else float(error_among_decided)
    return ProbeResult("shallow stage confidently wrong", error >= HARD_ERROR, error, HARD_ERROR,
                       f"stage 1 wrong on {error:.2f} % of the pixels it decides at ρ = {HARD_RHO}",
                       {"error_among_decided": error})


# ---- CRF below its ceiling (DeepLab Table 1(a)): room left above the CRF, and a grid that brackets it
# The best CRF setting's mIoU must leave 5 points to 100 (5 × the seed noise: post-CRF differences of a
# few points can still show), and on every axis of the grid with >= 2 values the best setting must
# lie strictly inside the axis's range (at an edge, a better setting may lie beyond the grid).
CRF_HEADROOM = 5 * SEED_SD


def crf_below_ceiling(grid, points, scores_of_points):
    """grid {setting: [values]} (a preset's tuning "crf"), points [settings dicts] (engine.tuning.crf_grid),
    scores_of_points [mIoU] (held-out, after the CRF at each point)."""
    best = points[int(np.argmax(scores_of_points))]
    headroom = 100 - float(max(scores_of_points))
    at_edge = [name for name, values in grid.items() if name != "points" and len(values) >= 2
               and best[name] in (min(values), max(values))]
    passed = headroom >= CRF_HEADROOM and not at_edge
    return ProbeResult("CRF below its ceiling", bool(passed), headroom, CRF_HEADROOM,
                       "best CRF " + ", ".join(f"{k} {v:g}" for k, v in sorted(best.items()))
                       + f" at {max(scores_of_points):.1f} mIoU; "
                       + (f"at the grid's edge on {', '.join(at_edge)}" if at_edge else "inside the grid"),
                       {"best": dict(best), "best_score": float(max(scores_of_points)), "at_edge": at_edge})


# =====================================================================================================
# The probes as the ablation files name them (engine.claims.Mechanism): probe(inputs, **args) with a
# ProbeInputs, returning a ProbeResult, or None while what it reads has not been measured yet (e.g. the
# "heldout" run analysis of committed rows that predate it: the regeneration measures it).

CEILING = 100 - 5 * SEED_SD  # a score above this leaves under 5 seed sds for any change to show in


@dataclass(frozen=True)
class ProbeInputs:
    """What a probe reads: the ablation (engine.spec.Ablation), the rows the report uses for it (one plan)
    and the results folder (its analyses, its tuning rows)."""
    spec: object
    rows: object  # pandas.DataFrame
    results_dir: str


def ok_rows(inputs, variant):
    rows = inputs.rows
    return rows[(rows["variant"] == variant) & (rows["status"] == "ok")]


def run_analyses(inputs, variants, name):
    """{variant: [{key: array} per finished run]} of a "run" analysis; None if any finished run lacks it
    (or a variant has none)."""
    from engine.analysis import analysis_file, load_analysis
    found = {}
    for variant in variants:
        runs = ok_rows(inputs, variant)
        paths = [analysis_file(inputs.results_dir, r.run_id, r.eval_id, name) for r in runs.itertuples()]
        if not paths or not all(os.path.exists(p) for p in paths):
            return None
        found[variant] = [load_analysis(p) for p in paths]
    return found


def heldout_means(inputs, variants, keys):
    """{variant: {key: mean over its runs}} from the "heldout" analysis, or None while it is missing."""
    found = run_analyses(inputs, variants, "heldout")
    if found is None:
        return None
    return {v: {k: float(np.mean([float(a[k]) for a in runs])) for k in keys} for v, runs in found.items()}


def row_config(inputs, variant, column):
    """A config column of the variant's first row (of any row if variant is None); None if it has no row."""
    runs = inputs.rows[inputs.rows["variant"] == variant] if variant else inputs.rows
    return json.loads(runs[column].iloc[0]) if len(runs) else None


def overfitting(inputs, variants):
    """variants {variant id: k}: the train − held-out mIoU gap of each variant's runs (the "heldout"
    analysis), its mean per k, and its growth across k (overfitting_present)."""
    means = heldout_means(inputs, variants, ("train_miou", "heldout_miou"))
    if means is None:
        return None
    ks = list(variants.values())
    return overfitting_present(ks, [means[v]["train_miou"] - means[v]["heldout_miou"] for v in variants])


def below_ceiling(what, values):
    """Passes if every value ({name: percent}) lies below CEILING: the figure is the least headroom."""
    headroom = min(100 - v for v in values.values())
    return ProbeResult(what, bool(headroom >= 100 - CEILING), float(headroom), 100 - CEILING,
                       "; ".join(f"{name} {v:.1f} %" for name, v in values.items()) + f" (ceiling {CEILING:g})",
                       dict(values))


# capacity: depth or width can add only where the model does not already fit its own training images:
# its train mIoU must leave 5 seed sds to 100 (the headroom a few-point effect needs to show)
def capacity_below_ceiling(inputs, variant):
    means = heldout_means(inputs, [variant], ("train_miou",))
    return None if means is None else below_ceiling(
        "capacity left", {f"{variant} train mIoU": means[variant]["train_miou"]})


# GCN and BR lift boundary and interior accuracy only where both have room: each below the same ceiling
def boundary_interior_below_ceiling(inputs, variant):
    means = heldout_means(inputs, [variant], ("heldout_boundary_acc", "heldout_internal_acc"))
    return None if means is None else below_ceiling("boundary and interior below ceiling", {
        f"{variant} boundary": means[variant]["heldout_boundary_acc"],
        f"{variant} interior": means[variant]["heldout_internal_acc"]})


def scale(inputs, variants):
    """Single-scale accuracy varies with object scale (scale_present on the "heldout" analysis' objects of
    the variants' runs, pooled over seeds), and the variants train with random resize as PSPNet trains (data
    option `resize`): without it the mechanism is absent whatever the objects show."""
    configs = [row_config(inputs, v, "data_config") for v in variants]
    if None in configs:
        return None
    unresized = [v for v, data in zip(variants, configs) if not data.get("resize")]
    if unresized:
        return ProbeResult("accuracy varies with scale", False, 0.0, SCALE_SPREAD,
                           f"{', '.join(unresized)} trained without random resize (data option resize)",
                           {"unresized": unresized})
    found = run_analyses(inputs, variants, "heldout")
    if found is None:
        return None
    runs = [a for v in variants for a in found[v]]
    return scale_present(np.concatenate([a["object_size"] for a in runs]),
                         np.concatenate([a["object_acc"] for a in runs]))


# ---- reach: objects larger than what the base sees (GCN's large kernels, DeepLab's field of view)
# Of the object pixels of held-out training images, the share whose object is wider (its bounding box's
# longer side) than the base variant's receptive field: a pixel there cannot see its whole object, which is
# what a larger kernel or field of view adds. At least 5 %: a gain confined to those pixels moves mIoU by at
# most about their share, and below 5 points (5 seed sds) it could not show.
REACH_SHARE = 5 * SEED_SD


@dataclass(frozen=True)
class HeldOutScenes:
    images: np.ndarray  # uint8 [N,3,H,W]
    labels: np.ndarray  # uint8 [N,H,W]
    num_classes: int
    knobs: object  # data.scene_knobs.SceneKnobs


def heldout_scenes(data_cfg):
    """The held-out training images of an embedded data config (data split 'heldout': training-distribution
    images no model saw, as the "heldout" run analysis reads them); kept for the process, since a report
    build reads one config several times."""
    return scenes_of(json.dumps(data_cfg, sort_keys=True))


@functools.cache
def scenes_of(data_json):
    from data import build_dataset
    data = build_dataset({k: v for k, v in json.loads(data_json).items() if k != "holdout"}, "heldout")
    return HeldOutScenes(data.images.numpy(), data.labels.numpy(), data.num_classes, data.knobs)


def object_widths(labels, ignore_index=255):
    """(width, pixels) of every object (labelled_objects); its width is its bounding box's longer side (px)."""
    widths, pixels = [], []
    for _, _, regions, _, box in labelled_objects(labels, ignore_index):
        widths.append(max(box[0].stop - box[0].start, box[1].stop - box[1].start))
        pixels.append(int((regions[box] > 0).sum()))
    return np.array(widths), np.array(pixels)


def reach_share_present(widths, pixels, field):
    wider = float(100 * pixels[widths > field].sum() / max(pixels.sum(), 1))
    return ProbeResult("objects wider than the base sees", wider >= REACH_SHARE, wider, REACH_SHARE,
                       f"{wider:.0f} % of object pixels in objects wider than the base's {field:g}-px field "
                       f"(widths {np.percentile(widths, 10):.0f}–{np.percentile(widths, 90):.0f} px)",
                       {"field": float(field), "median_width": float(np.median(widths))})


def receptive_field_of(model_cfg, num_classes, image_size):
    """The network's structural receptive field (px): twice its exact upward reach (engine.measurements
    upward_reach, measured on the untrained network) plus one; the image's size where it reaches the top."""
    return field_of(json.dumps(model_cfg, sort_keys=True), num_classes, image_size)


def field_of(model_json, num_classes, image_size):
    reach = reach_of(model_json, num_classes, image_size)
    return float(image_size) if reach == float("inf") else 2 * reach + 1


@functools.cache
def reach_of(model_json, num_classes, image_size):
    """engine.measurements.upward_reach of a model config's untrained network (inf: the whole image)."""
    from engine.measurements import untrained, upward_reach
    return upward_reach(untrained(json.loads(model_json), num_classes), image_size)


def reach_needed(inputs, variant):
    data, model = row_config(inputs, variant, "data_config"), row_config(inputs, variant, "model_config")
    if data is None or data.get("name") != "synthetic":
        return None  # not run, or real data: its held-out images are the "heldout" analysis' to read
    scenes = heldout_scenes(data)
    field = receptive_field_of(model, scenes.num_classes, scenes.labels.shape[-1])
    return reach_share_present(*object_widths(scenes.labels), field)


# ---- pooled context, from the data itself (no network): the read-outs on the
# held-out training scenes of the rows' data config
# global context: the 1×1 pooled colours must tell each object pixel's kind of scene 20 points above chance
# (the same margin as the pyramid's gain over it: the read-out's own noise was under 8 points)
GLOBAL_CONTEXT_GAIN = CONTEXT_GAIN


@functools.cache
def readouts_of(data_json):
    """(global, pyramid, chance) read-out accuracies of a context-mode data config (JSON: cached per build)."""
    data = json.loads(data_json)
    scenes = heldout_scenes(data)
    kinds, shapes = range(scenes.knobs.contexts), range(scenes.knobs.classes)
    context_of_class = [None] + [kind for kind in kinds for _ in shapes]
    return (*context_readouts(scenes.images, scenes.labels, context_of_class),
            100 / scenes.knobs.contexts)


def context_data(inputs):
    """The rows' data config as JSON if it is the embedded data in context mode, else None."""
    data = row_config(inputs, None, "data_config") or {}
    return json.dumps(data, sort_keys=True) if data.get("name") == "synthetic" and data.get("context") else None


def subregion_context(inputs):
    data = context_data(inputs)
    return None if data is None else subregion_context_present(*readouts_of(data)[:2])


def global_context(inputs):
    data = context_data(inputs)
    if data is None:
        return None
    accuracy, _, chance = readouts_of(data)
    gain = accuracy - chance
    return ProbeResult("global context", bool(gain >= GLOBAL_CONTEXT_GAIN), float(gain), GLOBAL_CONTEXT_GAIN,
                       f"kind of scene read from 1×1 pooling {accuracy:.1f} % (chance {chance:.0f} %)",
                       {"global_accuracy": float(accuracy), "chance": float(chance)})


# ---- what a local field cannot see (PSPNet: pooled context "tells what a local field cannot"): of the object
# pixels of the held-out training scenes, the share whose own band lies beyond the local head's upward reach
# must be REACH_SHARE or more (reach_needed's margin: a gain confined to those pixels cannot exceed about
# their share of mIoU). On the one-band scenes no object is within reach; on a G × G grid some are.
def context_beyond_reach(inputs, variant):
    from engine.measurements import band_distances
    data, model = row_config(inputs, variant, "data_config"), row_config(inputs, variant, "model_config")
    if data is None or data.get("name") != "synthetic" or not data.get("context"):
        return None
    scenes = heldout_scenes(data)
    reach = reach_of(json.dumps(model, sort_keys=True), scenes.num_classes, scenes.labels.shape[-1])
    distances = band_distances(torch.as_tensor(scenes.labels.astype(np.int64)), scenes.knobs.context_grid)
    beyond = float(100 * (distances > reach).mean()) if len(distances) else 0.0
    return ProbeResult("context beyond a local head's reach", beyond >= REACH_SHARE, beyond, REACH_SHARE,
                       f"{beyond:.0f} % of object pixels lie farther below their band than {variant}'s "
                       f"{reach:g}-px upward reach (nearest {distances.min():.0f} px)",
                       {"reach": float(reach), "share_beyond": beyond})


# ---- a flip adds information (PSPNet "+ DA"): objects unlike their own mirror image
# The mean IoU of each object's mask with its mirror image (about its own bounding box's vertical axis) must
# lie below 0.9: mirror-symmetric shapes rasterised off the pixel grid (today's, plain and context mode) come
# out at 0.98-0.99 on average, so below 0.9 the flipped objects differ by more than their outlines' rounding
# and a flip shows the net unseen shapes (the `asymmetric` knob's: 0.71).
FLIP_IOU = 0.9


def mirror_iou(labels, ignore_index=255):
    """IoU of every object (connected region of one class) with its own left-right mirror image (about its
    bounding box's vertical axis); an object cut by the image's edge is left out (its outline there is the
    frame's, not its own)."""
    ious = []
    for lab, _, regions, index, box in labelled_objects(labels, ignore_index):
        h, w = lab.shape
        if box[0].start == 0 or box[1].start == 0 or box[0].stop == h or box[1].stop == w:
            continue
        mask = regions[box] == index
        ious.append((mask & mask[:, ::-1]).sum() / (mask | mask[:, ::-1]).sum())
    return np.array(ious)


def mirror_present(ious):
    mean = float(np.mean(ious)) if len(ious) else 1.0
    return ProbeResult("a flip adds an unseen shape", mean < FLIP_IOU, mean, FLIP_IOU,
                       f"objects' IoU with their own mirror image {mean:.2f} on average (passes below {FLIP_IOU:g})",
                       {"mean_mirror_iou": mean})


def flip_adds_information(inputs, variant):
    data = row_config(inputs, variant, "data_config") or {}
    return None if data.get("name") != "synthetic" else mirror_present(mirror_iou(heldout_scenes(data).labels))


# ---- the cascade (Layer Cascade), from the DSN model's "heldout_stage_probe" run analysis (engine/measurements.py:
# the stage probe on the first 300 held-out training images; the report's own "stage_probe" figure reads the
# validation images, which a probe must not)
def stage_probe_counts(inputs, variant):
    """The variant's heldout_stage_probe analyses summed over its runs: (rhos, count [R,2,3], correct [R,2,3]),
    or None."""
    found = run_analyses(inputs, [variant], "heldout_stage_probe")
    if found is None:
        return None
    runs = found[variant]
    return runs[0]["rhos"], sum(a["count"] for a in runs), sum(a["correct"] for a in runs)


def hard_pixels(inputs, variant):
    """hard_pixels_present on the stage_probe: stage 1's error among the pixels it decides at HARD_RHO."""
    counts = stage_probe_counts(inputs, variant)
    if counts is None:
        return None
    rhos, count, correct = counts
    r = int(np.argmin(np.abs(rhos - HARD_RHO)))
    decided = count[r, 0, 0]
    result = hard_pixels_present(100 * (1 - correct[r, 0, 0] / decided) if decided else float("nan"))
    return replace(result, detail=result.detail + " (held-out training images)")


# there must be easy pixels for a cascade to save work or to focus on hard ones: stage 1 must decide at least
# 10 % of the pixels at the assertion's ρ; below that the later stages keep over 90 % of their work, a saving
# (and a shift of their training) too small for the timing's and the seeds' noise
CASCADE_SPLIT = 10.0


def cascade_split(inputs, variant, rho):
    counts = stage_probe_counts(inputs, variant)
    if counts is None:
        return None
    rhos, count, _ = counts
    r = int(np.argmin(np.abs(rhos - rho)))
    share = float(100 * count[r, 0, 0] / count[r, :, 0].sum())
    return ProbeResult("easy pixels for stage 1", share >= CASCADE_SPLIT, share, CASCADE_SPLIT,
                       f"stage 1 decides {share:.0f} % of the pixels at ρ = {rhos[r]:g} (held-out training images)",
                       {"rho": float(rhos[r]), "decided_share": share})


# ---- the CRF (DeepLab Table 1(a)): crf_below_ceiling on each listed variant's CRF tuning rows
def crf_room(inputs, variants):
    """crf_room_of the ablation's CRF tuning rows (results/tuning/)."""
    from engine.rows import read_rows
    from engine.tuning import selection_csv
    return crf_room_of(read_rows(selection_csv(inputs.results_dir, inputs.spec.name)), variants)


def crf_room_of(tuning, variants):
    """crf_below_ceiling of each "tune_crf" variant over every point its search scored (tuning rows); passes
    if every one passes; the figure is the least headroom. None while a variant has no scored point."""
    from engine.tuning import crf_scores
    if not len(tuning):
        return None
    results = []
    for variant in variants:
        scored = [(settings, score) for _, settings, score in crf_scores(tuning, variant) if not np.isnan(score)]
        if not scored:
            return None
        # the grid as searched: every value scored on each axis (the fine search widens the coarse grid)
        searched = {name: sorted({settings[name] for settings, _ in scored}) for name in scored[0][0]}
        results.append((variant, crf_below_ceiling(searched, *zip(*scored))))
    worst = min(results, key=lambda vr: (vr[1].passed, vr[1].figure))
    failed = [v for v, r in results if not r.passed]
    return ProbeResult("CRF below its ceiling", not failed, worst[1].figure, CRF_HEADROOM,
                       (f"fails for {'every variant' if len(failed) == len(results) else ', '.join(failed)}; "
                        if failed else "") + f"{worst[0]}: {worst[1].detail}",
                       {v: r.measurements for v, r in results})


# ---- speed from fewer FLOPs (DeepLab "LargeFOV trains faster"): fc6's multiply-adds per output position
# of the two models at the rows' model configs; a speed-up of the paper's size (3.36×) needs fc6 to cost at
# least 2× as much in the slower model (fc6 and fc7 carry most of the net's compute)
FLOPS_RATIO = 2.0


def fc6_flops(model_cfg):
    """Multiply-adds of fc6 per output position: kernel² × in-channels × filters."""
    from engine.measurements import untrained
    conv = untrained(model_cfg, 2, "meta").backbone.fc6.conv
    return conv.kernel_size[0] * conv.kernel_size[1] * conv.in_channels * conv.out_channels


def flops_ratio(inputs, slow, fast):
    configs = {v: row_config(inputs, v, "model_config") for v in (slow, fast)}
    if None in configs.values():
        return None
    flops = {v: fc6_flops(model) for v, model in configs.items()}
    ratio = flops[slow] / flops[fast]
    return ProbeResult("fewer FLOPs", ratio >= FLOPS_RATIO, float(ratio), FLOPS_RATIO,
                       f"fc6 multiply-adds per position {slow} {flops[slow]:,} / {fast} {flops[fast]:,}", flops)


# ---- the auxiliary loss eases optimisation (PSPNet's reason for it: a deep trunk's early layers learn
# faster with a loss of their own). Measured on the training loss itself, never on the validation split: the
# main loss (the auxiliary head's own loss left out) over the first half of training, without and with the
# auxiliary loss, paired by seed; the mechanism is present where the mean paired difference (without − with)
# is at least AUX_EASE_T standard errors above 0 (two: a one-sided 5 % level at a few seeds' t is ~2-3; the
# figure is the t statistic, so seed noise, not a fixed loss size, decides). The first half: an eased
# optimisation shows early (psp_aux.md's depth probe saw it "from the first 50 iterations on"); near the end
# the poly schedule's vanishing lr flattens both curves alike.
AUX_EASE_T = 2.0


def early_main_loss(curve):
    """Mean main loss (the total where no part is logged) over the logged iterations of the first half."""
    iterations = np.asarray(curve["iteration"], float)
    losses = np.asarray(curve["main_loss"] if "main_loss" in curve else curve["loss"], float)
    return float(losses[iterations <= iterations.max() / 2].mean())


def aux_speeds_main_loss(without, with_aux):
    """without, with_aux: {seed: curve} of the two variants; their paired early main losses' t statistic.
    None below two seeds in common (no paired sd)."""
    seeds = sorted(set(without) & set(with_aux))
    if len(seeds) < 2:
        return None
    differences = np.array([early_main_loss(without[s]) - early_main_loss(with_aux[s]) for s in seeds])
    sd = float(differences.std(ddof=1))
    mean = float(differences.mean())
    t = mean / (sd / np.sqrt(len(seeds))) if sd > 0 else (np.inf if mean > 0 else 0.0)
    return ProbeResult("the auxiliary loss speeds the main loss", bool(t >= AUX_EASE_T), float(t), AUX_EASE_T,
                       f"first-half main loss {mean:+.4f} lower with it (paired sd {sd:.4f}, {len(seeds)} seeds)",
                       {"mean_difference": mean, "sd": sd, "seeds": len(seeds)})


def aux_eases_optimisation(inputs, without, with_aux):
    """aux_speeds_main_loss on the "curve" run analyses of the two variants' finished runs, by seed."""
    found = run_analyses(inputs, [without, with_aux], "curve")
    if found is None:
        return None
    by_seed = {v: dict(zip(ok_rows(inputs, v)["seed"].astype(int), found[v])) for v in (without, with_aux)}
    return aux_speeds_main_loss(by_seed[without], by_seed[with_aux])


# ---- DR (PSPNet "DR helps"): the reduced projection keeps the context features. Measured as a linear
# read-out of each object pixel's kind of scene from the projected pyramid features of a trained model on
# held-out training images (the run analysis "projection_context", engine/measurements.py: key readout_acc,
# percent; chance key chance): 20 points above chance as the global read-out. None where no run saved it.
def projection_keeps_context(inputs, variants):
    """Passes if the read-out from every listed variant's projection (mean over its runs) is 20 points above
    chance; the figure is the least gain."""
    found = run_analyses(inputs, variants, "projection_context")
    if found is None:
        return None
    accuracy = {v: float(np.mean([float(a["readout_acc"]) for a in runs])) for v, runs in found.items()}
    chance = float(found[variants[0]][0]["chance"])
    gain = min(accuracy.values()) - chance
    return ProbeResult("projection keeps the context", gain >= GLOBAL_CONTEXT_GAIN, gain, GLOBAL_CONTEXT_GAIN,
                       "kind of scene read from the projected features " +
                       ", ".join(f"{v} {a:.1f} %" for v, a in accuracy.items()) + f" (chance {chance:.0f} %)",
                       {"readout_acc": accuracy, "chance": chance})

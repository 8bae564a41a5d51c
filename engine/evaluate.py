"""Evaluate a trained model on a validation set: confusion-matrix scores, boundary/internal
accuracy, per-class-group accuracy (if the dataset groups its classes), and the CRF where asked.
(Speed is measured apart, in the timing phase: engine/timing.py.)"""
import json
import time

import torch

from data import IGNORE_INDEX, PAD_LABEL, HeldOut
from data.transforms import pad_collate
from engine.metrics import boundary_counts, class_map, check_trimap, confusion_matrix, group_accuracy, scores, trimap_mask
from engine.presets import EVAL_KEYS as ENGINE_KEYS
from segmodels.crf import check_crf, crf_labels


def model_options(model, cfg):
    """The model's evaluation options in an eval cfg (every key the engine does not use); checked."""
    opts = {k: v for k, v in cfg.items() if k not in ENGINE_KEYS}
    model.eval_options(opts)  # unknown names fail here, before any work
    if cfg.get("crf") is not None:
        check_crf(cfg["crf"])
    check_trimap(cfg.get("trimap", []), cfg.get("trimap_around", "void"))
    return opts


def first_images(dataset, images):
    """The dataset's first `images` images (eval option images; None: all of them), or one clear error."""
    if images is None:
        return dataset
    if isinstance(images, bool) or not isinstance(images, int) or not 0 < images <= len(dataset):
        raise ValueError(f"eval option images must be an int in 1..{len(dataset)} (the first images of "
                         f"the {len(dataset)} scored), got {images!r}")
    return HeldOut(dataset, 0, images)


def forward_key(cfg):
    """What an evaluation's network outputs depend on besides the model and dataset: the model's
    options, the batch size and the images scored (not the CRF, the trimap or the boundary band)."""
    opts = {k: v for k, v in cfg.items() if k not in ENGINE_KEYS}
    return json.dumps([opts, cfg["batch_size"], cfg.get("images")], sort_keys=True, default=str)


@torch.no_grad()
def evaluate(model, dataset, cfg, device="cpu", passes=None):
    """cfg: {'batch_size', 'boundary_band', optional 'speed_repeats' (see time_inference), ...}.
    Any other key is an evaluation option of the model (e.g. a cascade's threshold), passed to
    every model.predict call. Statistics the model returns (e.g. the share of pixels per stage)
    are averaged per image. With cfg['crf'] (segmodels/crf.py), the labels scored are those after
    DeepLab v1's fully connected CRF, run on each image without its padding; infer_fps stays the
    network's, crf_ms is the CRF's per image. With cfg['trimap'] (band widths in px), DeepLab v1's
    trimap: mIoU and pixel accuracy of the pixels within each width of the void pixels, as the authors'
    code draws it (metrics.trimap_mask; cfg['trimap_around'] 'class_edges': of the label changes, for data
    without a void ring) (result 'trimap': {width: {'mIoU', 'pixel_acc'}}). With cfg['images'] = N, only the first N images are scored.

    Padding (label PAD_LABEL, beyond each image) is scored nowhere and is no boundary: every score
    of an image is what it gets alone.

    passes: a list the caller shares among evaluations of one model on one dataset with the same
    forward_key (a run's plans with and without the CRF, the CRF grid's points): the first fills it
    with each batch's network output (logits, the model's statistics, its seconds), the others read
    them back: the same forward, so the same floats."""
    model_opts = model_options(model, cfg)
    dataset = first_images(dataset, cfg.get("images"))
    model.to(device).eval()
    n = dataset.num_classes
    cm = torch.zeros(n, n, dtype=torch.int64)
    trimap = {float(w): torch.zeros(n, n, dtype=torch.int64) for w in cfg.get("trimap", [])}
    counts = {"boundary": [0, 0], "internal": [0, 0]}
    # real validation images differ in size: a batch is padded to its largest (labels with PAD_LABEL)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg["batch_size"], shuffle=False, collate_fn=pad_collate)
    infer_s, crf_s, images_seen = 0.0, 0.0, 0
    extra_sums = {}
    for batch, (images, labels) in enumerate(loader):
        images = images.to(device)
        if passes is not None and batch < len(passes):
            logits, stats, seconds = passes[batch]
        else:
            if device != "cpu":
                torch.cuda.synchronize()
            tick = time.perf_counter()
            logits, stats = model.predict(images, **model_opts)
            if device != "cpu":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - tick
            if passes is not None:
                passes.append((logits.cpu(), stats, seconds))  # kept on the host: a GPU holds one batch
        pred = class_map(logits)
        infer_s += seconds
        images_seen += len(images)
        pred = pred.cpu()
        extent = labels != PAD_LABEL  # each image (padding lies bottom/right of it)
        labels = labels.masked_fill(~extent, IGNORE_INDEX)
        if cfg.get("crf") is not None:
            tick = time.perf_counter()
            pred = crf_labels(logits.cpu(), dataset.to_rgb(images.cpu()), cfg["crf"], extent)
            crf_s += time.perf_counter() - tick
        cm += confusion_matrix(pred, labels, n, IGNORE_INDEX)
        for region, (correct, total) in boundary_counts(pred, labels, cfg["boundary_band"], IGNORE_INDEX,
                                                        extent).items():
            counts[region][0] += correct
            counts[region][1] += total
        for width in trimap:
            band = trimap_mask(labels, width, IGNORE_INDEX, extent, cfg.get("trimap_around", "void"))
            trimap[width] += confusion_matrix(pred[band], labels[band], n, IGNORE_INDEX)
        for key, value in stats.items():
            extra_sums[key] = extra_sums.get(key, 0.0) + value * len(images)
    result = scores(cm)
    # datasets may group their classes (e.g. by kind of scene): "<name>_acc" per grouping
    for name, groups in getattr(dataset, "class_groups", {}).items():
        result[f"{name}_acc"] = group_accuracy(cm, groups)
    for region, (correct, total) in counts.items():
        result[f"{region}_acc"] = 100 * correct / total if total else float("nan")
    result["boundary_band"] = cfg["boundary_band"]
    result["infer_fps"] = images_seen / infer_s if infer_s > 0 else float("nan")
    if cfg.get("crf") is not None:
        result["crf_ms"] = 1000 * crf_s / images_seen
    if trimap:
        result["trimap"] = {f"{w:g}": {k: scores(c)[k] for k in ("mIoU", "pixel_acc")} for w, c in trimap.items()}
    result.update({k: v / images_seen for k, v in extra_sums.items()})
    return result

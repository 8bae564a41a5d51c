"""Evaluate a trained model on a validation set: confusion-matrix scores, boundary/internal
accuracy, per-class-group accuracy (if the dataset groups its classes) and inference speed."""
import time

import torch

from ablations.metrics import boundary_counts, confusion_matrix, group_accuracy, scores
from data import IGNORE_INDEX


@torch.no_grad()
def evaluate(model, dataset, cfg, device="cpu"):
    """cfg: {'batch_size', 'boundary_band', ...}. Any other key is an evaluation option of the
    model (e.g. a cascade's threshold), passed to model.set_eval_options."""
    model_opts = {k: v for k, v in cfg.items() if k not in ("batch_size", "boundary_band")}
    if model_opts:
        if not hasattr(model, "set_eval_options"):
            raise ValueError(f"evaluation options {sorted(model_opts)} given, but "
                             f"{type(model).__name__} takes none")
        model.set_eval_options(**model_opts)
    model.to(device).eval()
    n = dataset.num_classes
    cm = torch.zeros(n, n, dtype=torch.int64)
    counts = {"boundary": [0, 0], "internal": [0, 0]}
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg["batch_size"], shuffle=False)
    infer_s, images_seen = 0.0, 0
    extra_sums = {}
    for images, labels in loader:
        images = images.to(device)
        if device != "cpu":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        logits = model(images)
        pred = logits.argmax(1)
        if device != "cpu":
            torch.cuda.synchronize()
        infer_s += time.perf_counter() - tick
        images_seen += len(images)
        pred = pred.cpu()
        cm += confusion_matrix(pred, labels, n, IGNORE_INDEX)
        for region, (correct, total) in boundary_counts(pred, labels, cfg["boundary_band"]).items():
            counts[region][0] += correct
            counts[region][1] += total
        # models may report per-batch statistics of their own (e.g. share of pixels per stage)
        for key, value in getattr(model, "eval_stats", lambda: {})().items():
            extra_sums[key] = extra_sums.get(key, 0.0) + value * len(images)
    result = scores(cm)
    # datasets may group their classes (e.g. by kind of scene): "<name>_acc" per grouping
    for name, groups in getattr(dataset, "class_groups", {}).items():
        result[f"{name}_acc"] = group_accuracy(cm, groups)
    for region, (correct, total) in counts.items():
        result[f"{region}_acc"] = 100 * correct / total if total else float("nan")
    result["boundary_band"] = cfg["boundary_band"]
    result["infer_fps"] = images_seen / infer_s if infer_s > 0 else float("nan")
    result.update({k: v / images_seen for k, v in extra_sums.items()})
    return result

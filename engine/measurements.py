"""What the analyses measure (engine/analysis.py says which, when and where they are kept): of a
trained model — its effective receptive field, which cascade stage decides each pixel, each stage's
accuracy on the pixels stage 1 is unsure about, its training curve, images before and after the CRF;
of a network's structure — how far up an output pixel sees, DeepLab's field of view; of a dataset —
sample images, how far the objects lie from the context band.

Every function returns {name: numpy array}; none writes anything.
"""
import copy
import json
import math
import os

import numpy as np
import torch

from data import IGNORE_INDEX
from engine.metrics import class_map

ERF_IMAGES = 64  # validation images the effective receptive field is averaged over
STAGE_IMAGES = 6  # validation images of the stage map
CRF_IMAGES = 4  # validation images shown before and after the CRF


# --- effective receptive field -------------------------------------------------------------------

def effective_receptive_field(model, images, batch_size=16):
    """Effective receptive field (Luo et al., NeurIPS 2016): [H, W] map, the mean over `images`
    [N,3,H,W] of |∂ s / ∂ x| summed over input channels, where s is the centre output pixel's logit
    of the class the model predicts there. In eval mode (BatchNorm on running statistics) images do
    not interact, so one backward pass of the summed centre scores of a batch gives every image's
    own gradient."""
    model.eval()
    total = torch.zeros(images.shape[-2:], dtype=torch.float64)
    device = next(model.parameters()).device
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device).requires_grad_(True)
        logits = model(x)
        centre = logits[:, :, logits.shape[-2] // 2, logits.shape[-1] // 2]  # [B, classes]
        score = centre.gather(1, centre.argmax(1, keepdim=True)).sum()
        (grad,) = torch.autograd.grad(score, x)
        total += grad.abs().sum(1).sum(0).double().cpu()
    return total / len(images)


def erf_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """The run's ERF over the first ERF_IMAGES validation images of the first image's size (real
    validation sets vary in size: the maps must line up). The model's plain forward is used: the
    ERF is asked of GCN-style heads, which take no evaluation options."""
    first = val_set[0][0]
    images = [img for img in (val_set[i][0] for i in range(min(ERF_IMAGES, len(val_set))))
              if img.shape == first.shape]
    model.to(device).eval()
    erf = effective_receptive_field(model, torch.stack(images))
    return {"erf": erf.numpy().astype(np.float32), "n_images": np.int64(len(images))}


# --- which cascade stage decides each pixel (Layer Cascade, Fig. 5 idea) --------------------------

@torch.no_grad()
def stages_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """For the first STAGE_IMAGES validation images at the plan's eval rho: the image for display
    (uint8 [N,H,W,3], min-max scaled over these images), the label and the prediction (uint8
    [N,H,W], void = data.IGNORE_INDEX = 255) and the stage (1, 2, 3) that decided each pixel (uint8 [N,H,W], the
    feature-resolution map upsampled to the image by nearest neighbour)."""
    rho = float(eval_cfg.get("rho", 1.0))
    n = min(STAGE_IMAGES, len(val_set))
    images = torch.stack([val_set[i][0] for i in range(n)])
    labels = torch.stack([val_set[i][1] for i in range(n)])
    model.to(device).eval()
    images = images.to(device)
    logits, stages = model.predict(images, rho=rho)[0], model.decision_map(images, rho)
    pred = class_map(logits).cpu()
    stages = torch.nn.functional.interpolate(stages[:, None].float().cpu(), size=images.shape[-2:],
                                             mode="nearest")[:, 0]
    shown = images.cpu().permute(0, 2, 3, 1)
    shown = (shown - shown.min()) / max(float(shown.max() - shown.min()), 1e-6)
    return {"image": (shown * 255).round().clamp(0, 255).to(torch.uint8).numpy(),
            "label": labels.to(torch.uint8).numpy(), "prediction": pred.to(torch.uint8).numpy(),
            "stage": stages.to(torch.uint8).numpy(), "rho": np.float64(rho)}


# --- does the cascade's mechanism have something to bite on? (Layer Cascade probe) ---------------

PROBE_RHOS = (0.8, 0.985)  # the thresholds the claims compare
PROBE_IMAGES = 300  # validation images the probe counts over (at most)


@torch.no_grad()
def stage_probe(model, images, labels, rhos=PROBE_RHOS, batch_size=50):
    """Accuracy of each stage's head on its own, on the feature-resolution pixels (labels sampled at
    each stride cell's centre, as the losses are), split by stage 1's confidence: "confident" pixels
    are those stage 1 would decide at threshold rho (top probability > rho, as in the cascade), the
    rest are "unsure". Every stage runs densely (rho = 1). Returns numpy arrays: rhos [R]; share_unsure
    [R] (% of the valid pixels); correct and count [R, 2 (confident, unsure), 3 (stage)]; acc =
    100 correct / count (nan where no pixel). The mechanism is present when the unsure pixels are a
    minority and stage 3 is clearly more accurate than stage 1 on them."""
    model.eval()
    device = next(model.parameters()).device
    rhos = [float(r) for r in rhos]
    correct = torch.zeros(len(rhos), 2, 3, dtype=torch.float64)
    count = torch.zeros(len(rhos), 2, 3, dtype=torch.float64)
    s = model.stride
    for start in range(0, len(images), batch_size):
        out, _ = model.cascade(images[start:start + batch_size].to(device), 1.0)
        target = labels[start:start + batch_size, s // 2::s, s // 2::s].to(device)
        valid = target != IGNORE_INDEX
        conf1 = out[0][1].softmax(1).amax(1)
        hits = [(class_map(logits) == target) & valid for _, logits in out]
        for r, rho in enumerate(rhos):
            for c, part in enumerate((conf1 > rho, conf1 <= rho)):
                sel = part & valid
                for i, hit in enumerate(hits):
                    correct[r, c, i] += float((hit & sel).sum())
                    count[r, c, i] += float(sel.sum())
    acc = torch.where(count > 0, 100 * correct / count.clamp(min=1), torch.full_like(count, math.nan))
    total = count[:, :, 0].sum(1)
    share = torch.where(total > 0, 100 * count[:, 1, 0] / total.clamp(min=1), torch.full_like(total, math.nan))
    return {"rhos": np.array(rhos), "share_unsure": share.numpy(), "correct": correct.numpy(),
            "count": count.numpy(), "acc": acc.numpy()}


def stage_probe_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """stage_probe over the first PROBE_IMAGES validation images at PROBE_RHOS (an analysis of a
    DSN-trained cascade; the plan's own rho does not enter): the report's figure of the stages."""
    return stage_probe_of(model, val_set, device)


def heldout_stage_probe_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """stage_probe over the first PROBE_IMAGES held-out training images (never the validation split):
    what issue 37's cascade probes (hard pixels, easy pixels) read."""
    from data import build_dataset
    return stage_probe_of(model, build_dataset(data_cfg, "heldout"), device)


def stage_probe_of(model, dataset, device):
    n = min(PROBE_IMAGES, len(dataset))
    images = torch.stack([dataset[i][0] for i in range(n)])
    labels = torch.stack([dataset[i][1] for i in range(n)])
    model.to(device)
    return stage_probe(model, images, labels)


def format_probe(probe):
    """The probe as text lines (for the probe script and the report's deviations)."""
    lines = []
    for r, rho in enumerate(probe["rhos"]):
        acc = probe["acc"][r]
        lines.append(f"rho {rho:g}: unsure {probe['share_unsure'][r]:.1f}% of pixels; accuracy of stage 1/2/3 "
                     f"on unsure {acc[1][0]:.1f}/{acc[1][1]:.1f}/{acc[1][2]:.1f}, "
                     f"on confident {acc[0][0]:.1f}/{acc[0][1]:.1f}/{acc[0][2]:.1f}")
    return lines



# --- images the model trained on against held-out training images (issue 37's mechanism probes) ---

HELDOUT_TRAIN_IMAGES = 200  # the first images of the run's training split, scored unaugmented


def heldout_eval(eval_cfg):
    """What of an eval config the "heldout" analysis uses: the batch size, the boundary band and the
    model's evaluation options at a single scale (a multi-scale option, scales, set to the image's own;
    the rest, e.g. a cascade's rho or PSPNet's flip, as the plan evaluates). Plans of one run that agree
    on it share one computation (engine/analysis.py same_for)."""
    from engine.presets import EVAL_KEYS
    options = {k: v for k, v in eval_cfg.items() if k not in EVAL_KEYS}
    if "scales" in options:
        options["scales"] = [1.0]
    return {"batch_size": eval_cfg["batch_size"], "boundary_band": eval_cfg["boundary_band"], "options": options}


@torch.no_grad()
def class_maps(model, dataset, options, batch_size, device):
    """(predicted class maps, labels), int64 [N,H,W] on the host, of a dataset's unaugmented
    images (all of one size) by model.predict with `options`, as evaluation predicts."""
    model.to(device).eval()
    preds, labels = [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        logits, _ = model.predict(torch.stack([image for image, _ in items]).to(device), **options)
        preds.append(class_map(logits).cpu())
        labels.append(torch.stack([label for _, label in items]))
    return torch.cat(preds), torch.cat(labels)


def heldout_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """The trained model on training-distribution images, at a single scale (heldout_eval), never on
    the validation split: train_miou on the first HELDOUT_TRAIN_IMAGES images of its training split
    (unaugmented; with the data option holdout, of the part it trains on); on the HELDOUT_IMAGES
    held-out training images (data/synthetic.py, split 'heldout'), heldout_miou, heldout_boundary_acc
    and heldout_internal_acc (evaluation's definitions and the eval config's boundary band), and per
    object (a 4-connected region of one class) object_size (√pixels) and object_acc (% of its pixels
    predicted as its class). mIoU and accuracies in percent. The embedded dataset only."""
    from data import HeldOut, build_dataset
    from engine.metrics import boundary_counts, confusion_matrix, object_accuracies, scores
    cfg = heldout_eval(eval_cfg)
    train_set, heldout_set = build_dataset(data_cfg, "train"), build_dataset(data_cfg, "heldout")
    train_part = HeldOut(train_set, 0, min(HELDOUT_TRAIN_IMAGES, len(train_set)))
    n = heldout_set.num_classes
    pred, labels = class_maps(model, train_part, cfg["options"], cfg["batch_size"], device)
    train_miou = scores(confusion_matrix(pred, labels, n))["mIoU"]
    pred, labels = class_maps(model, heldout_set, cfg["options"], cfg["batch_size"], device)
    counts = boundary_counts(pred, labels, cfg["boundary_band"])
    sizes, accuracies = object_accuracies(pred, labels)
    return {"train_miou": np.float64(train_miou),
            "heldout_miou": np.float64(scores(confusion_matrix(pred, labels, n))["mIoU"]),
            **{f"heldout_{region}_acc": np.float64(100 * right / total if total else math.nan)
               for region, (right, total) in counts.items()},
            "object_size": sizes, "object_acc": accuracies,
            "train_images": np.int64(len(train_part)), "heldout_images": np.int64(len(heldout_set))}


# --- what a PSPNet's pyramid levels carry (the "DR helps" mechanism) ---------------------------

RIDGE = 0.1  # the least-squares read-out's ridge, per pixel, on standardised features


def readout_accuracy(features, image_of, targets):
    """A ridge least-squares linear read-out's accuracy (percent) on the pixels of images it was not
    fitted on: fitted on the first half of the images and tested on the second, then the other way
    round; the mean of the two."""
    kinds = np.unique(targets)
    onehot = (targets[:, None] == kinds[None]).astype(float)
    first = image_of < (image_of.max() + 1) // 2
    accuracies = []
    for fit in (first, ~first):
        mean, sd = features[fit].mean(0), features[fit].std(0) + 1e-6  # standardised: one ridge for every feature
        x = np.hstack([(features - mean) / sd, np.ones((len(features), 1))])
        a = x[fit]
        weights = np.linalg.solve(a.T @ a + RIDGE * len(a) * np.eye(a.shape[1]), a.T @ onehot[fit])
        accuracies.append(100 * float((kinds[(x[~fit] @ weights).argmax(1)] == targets[~fit]).mean()))
    return float(np.mean(accuracies))


@torch.no_grad()
def projection_context_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """How much of each object pixel's kind of scene a trained PSPNet's pyramid levels carry after their
    projection (with DR: reduced to 1/N channels), on the held-out training images (never the validation
    split): the levels' outputs at the feature map's resolution, at every cell whose centre pixel is an
    object, read out linearly (readout_accuracy). readout_acc and chance (one kind in `kinds`) in percent.
    A context-mode embedded dataset and a model with a pyramid only."""
    from data import build_dataset
    from torch.nn import functional as F
    if getattr(model, "ppm", None) is None:
        raise ValueError("the projection_context analysis reads a PSPNet's pyramid levels: this model has none")
    heldout = build_dataset(data_cfg, "heldout")
    context = getattr(heldout, "class_groups", {}).get("context")
    if context is None:
        raise ValueError("the projection_context analysis needs scenes of the context mode (kinds of scene)")
    kind_of = torch.tensor([-1 if g is None else g for g in context] + [-1] * (256 - len(context)))
    model.to(device).eval()
    features, image_of, targets = [], [], []
    for start in range(0, len(heldout), eval_cfg["batch_size"]):
        items = [heldout[i] for i in range(start, min(start + eval_cfg["batch_size"], len(heldout)))]
        images, labels = torch.stack([i for i, _ in items]).to(device), torch.stack([t for _, t in items])
        x = next(reversed(model.backbone(images).values()))
        levels = torch.cat([F.interpolate(level(x), size=x.shape[-2:], mode="bilinear", align_corners=True)
                            for level in model.ppm.levels], 1).cpu()
        (h, w), (height, width) = levels.shape[-2:], labels.shape[-2:]
        ys, xs = ((torch.arange(h) + 0.5) * height / h).long(), ((torch.arange(w) + 0.5) * width / w).long()
        kinds = kind_of[labels[:, ys][:, :, xs].long()]  # [B,h,w]: the kind of scene at each cell's centre
        for b in range(len(items)):
            inside = kinds[b] >= 0
            features.append(levels[b][:, inside].T.double().numpy())
            targets.append(kinds[b][inside].numpy())
            image_of.append(np.full(int(inside.sum()), start + b))
    targets = np.concatenate(targets)
    return {"readout_acc": np.float64(readout_accuracy(np.concatenate(features), np.concatenate(image_of), targets)),
            "chance": np.float64(100.0 / len(set(g for g in context if g is not None))),
            "pixels": np.int64(len(targets))}


# --- training curve ----------------------------------------------------------------------------

def read_curve(log_path):
    """{key: array} of a run's log.jsonl (engine/trainer.py writes one line every LOG_EVERY
    iterations): iteration, loss, lr and the loss parts the model reports (main_loss, aux_loss…).
    A resumed run logs again the iterations between its checkpoint and where it was stopped; the
    last line of each iteration is kept (exact resume makes them equal). Keys that some lines lack
    are left out."""
    lines = {}
    with open(log_path) as f:
        for line in f:
            if line.strip():
                entry = json.loads(line)
                lines[int(entry["iteration"])] = entry
    if not lines:
        raise ValueError(f"empty training log: {log_path}")
    entries = [lines[i] for i in sorted(lines)]
    keys = [k for k in entries[0] if all(k in e for e in entries)]
    return {k: np.array([e[k] for e in entries], dtype=np.int64 if k == "iteration" else np.float64)
            for k in keys}


def curve_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """The run's training curve, from run_dir/log.jsonl (see read_curve)."""
    return read_curve(os.path.join(run_dir, "log.jsonl"))


@torch.no_grad()
def crf_examples_analysis(model, val_set, eval_cfg, device, run_dir=None, data_cfg=None):
    """The first CRF_IMAGES validation images (8-bit RGB), their labels, and the labels predicted before
    and after the CRF of eval_cfg['crf'] (segmodels/crf.py)."""
    from segmodels.crf import crf_labels
    images = torch.stack([val_set[i][0] for i in range(min(CRF_IMAGES, len(val_set)))])
    labels = torch.stack([val_set[i][1] for i in range(len(images))])
    model.to(device).eval()
    logits = model.predict(images.to(device))[0].cpu()
    rgb = val_set.to_rgb(images)
    return {"image": rgb, "label": labels.numpy(), "before": class_map(logits).numpy(),
            "after": crf_labels(logits, rgb, eval_cfg["crf"]).numpy()}


# --- of the network's structure and of the dataset (no trained model) ---------------------------

PREVIEW_IMAGES = 8  # validation images of the report's dataset figure


def preview_analysis(val_set):
    """The first PREVIEW_IMAGES validation images of the first one's size (8-bit RGB [N,H,W,3]), their
    labels and the class names: the report's figure of the dataset a table used."""
    first = val_set[0][0]
    items = [val_set[i] for i in range(min(PREVIEW_IMAGES, len(val_set)))]
    items = [(image, label) for image, label in items if image.shape == first.shape]
    return {"image": val_set.to_rgb(torch.stack([image for image, _ in items])),
            "label": torch.stack([label for _, label in items]).to(torch.uint8).numpy(),
            "class_names": np.array(list(val_set.class_names))}


def context_bands_analysis(val_set, scenes=50):
    """The embedded dataset's context task (scene-context mode): how many object pixels lie d rows
    below their sub-region's context band, for every d over the split (distances, counts), a band's
    rows (band_rows: its height), the grid's side (grid: G × G sub-regions, each with its band along its
    top), and the scene among the first `scenes` whose object comes nearest its band (image, label)."""
    from data.synthetic import cue_rows
    size, grid = val_set.labels.shape[-1], val_set.knobs.context_grid
    distances, counts = np.unique(band_distances(val_set.labels, grid), return_counts=True)
    i = int(np.argmin([band_distances(lab[None], grid).min() if (lab > 0).any() else size
                       for lab in val_set.labels[:scenes]]))
    return {"distances": distances.astype(np.int64), "counts": counts.astype(np.int64),
            "band_rows": np.int64(cue_rows(size / grid)), "grid": np.int64(grid), "size": np.int64(size),
            "image": val_set.images[i].permute(1, 2, 0).numpy(), "label": val_set.labels[i].numpy()}


def untrained(model_cfg, num_classes, device=None):
    """The network of a model config, untrained and without pretrained weights (its structure is all
    a "model" analysis reads); on the meta device (shapes only) if device is "meta"."""
    from segmodels import build_model, without_weights
    if device is None:
        return build_model(without_weights(model_cfg), num_classes)
    with torch.device(device):
        return build_model(without_weights(model_cfg), num_classes)


def reach_analysis(model_cfg, val_set):
    """upward_reach of the network (rows; inf: the whole image) at the dataset's image size."""
    size = val_set[0][0].shape[-1]
    return {"reach": np.float64(upward_reach(untrained(model_cfg, val_set.num_classes), size))}


def fov_analysis(model_cfg, val_set):
    """DeepLab's field of view as run: fc6's kernel, dilation and filters, the receptive field of fc6
    (segmodels.deeplab.fov_receptive_field) and of the conv trunk before it."""
    from segmodels.backbones import receptive_field
    from segmodels.deeplab import fov_receptive_field
    model = untrained(model_cfg, 2, "meta")
    fc6 = model.backbone.fc6
    return {"fc6": np.array([fc6.kernel_size, fc6.dilation, fc6.conv.out_channels], dtype=np.int64),
            "receptive_field": np.int64(fov_receptive_field(model)),
            "trunk_receptive_field": np.int64(receptive_field(model.backbone.features))}



# --- architecture measurements (PSPNet's context task) -----------------------------------------

def upward_reach(model, image_size):
    """How many rows above an output pixel the farthest input pixel that influences it lies: the
    net's exact structural receptive field, upwards. Measured by back-propagation on a copy whose
    parameters are all made positive and whose input is all ones, so no ReLU is ever off and every
    path through the net carries gradient (a random net could hide some). It depends on the
    architecture only, not on trained weights. Measured from the bottom rows (all 8 phases of the
    stride-8 grid), so the image's top edge does not cut it short; inf if the influence reaches the
    top row (the whole image, as with global pooling)."""
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_().add_(0.01)
        for name, buf in probe.named_buffers():
            if name.endswith("running_mean"):
                buf.zero_()
            elif name.endswith("running_var"):
                buf.fill_(1.0)
    reach = 0
    for y in range(image_size - 8, image_size):
        x = torch.ones(1, 3, image_size, image_size, requires_grad=True)
        probe(x)[0, :, y, image_size // 2].sum().backward()
        top = int((x.grad[0].abs().sum(dim=(0, 2)) > 0).nonzero()[:, 0].min())
        if top == 0:
            return math.inf
        reach = max(reach, y - top)
    return reach


def band_distances(labels, grid=1):
    """Rows between every object pixel of labels [N,H,W] and the last row of the context band above it
    (the embedded dataset in scene-context mode). With a G × G context grid each sub-region has its
    band along its own top (data/synthetic.py make_scene): a pixel is measured to its sub-region's."""
    from data.synthetic import cue_rows
    labels = torch.as_tensor(labels)  # an array too (the report's figure passes one)
    size = labels.shape[-1]
    side = size / grid
    tops = torch.tensor([int(round(i * side)) for i in range(grid)])  # each grid row's first row, as drawn
    rows = torch.arange(size)
    band_end = tops[torch.searchsorted(tops, rows, right=True) - 1] + cue_rows(side) - 1  # per image row
    return (rows - band_end).view(1, size, 1).expand_as(labels)[labels > 0].numpy()

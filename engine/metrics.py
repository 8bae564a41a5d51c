"""Segmentation metrics from a confusion matrix, the boundary band of GCN's Table 5 and DeepLab's
trimap (scores within bands of several widths around the label boundaries)."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from data import IGNORE_INDEX


def class_map(logits):
    """Each pixel's class: the index of its first largest score along dim 1, as argmax gives it; max's
    indices are the same map, 2-6× faster on CPU (argmax reduces NCHW's channel dim slowly)."""
    return logits.max(1).indices


def confusion_matrix(pred, target, num_classes, ignore_index=IGNORE_INDEX):
    """[num_classes, num_classes] int64 counts, rows = ground truth, columns = prediction.
    Pixels labelled ignore_index are left out; any other label, or any prediction of a scored pixel,
    outside 0..num_classes-1 is an error (it would be counted in another class's row)."""
    keep = target != ignore_index
    t, p = target[keep].long(), pred[keep].long()
    if t.numel() and (t.min() < 0 or t.max() >= num_classes):
        bad = t[(t < 0) | (t >= num_classes)][0].item()
        raise ValueError(f"label value {bad} is outside 0..{num_classes - 1} and is not {ignore_index}")
    if p.numel() and (p.min() < 0 or p.max() >= num_classes):
        bad = p[(p < 0) | (p >= num_classes)][0].item()
        raise ValueError(f"predicted class {bad} is outside 0..{num_classes - 1} (the model's classes are not "
                         "the dataset's?)")
    return torch.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores(cm):
    """mIoU, pixel accuracy, mean class accuracy (percent) and per-class IoU from a confusion matrix.
    Classes absent from both ground truth and prediction have no IoU (NaN) and are left out of the mean."""
    cm = cm.double()
    tp = cm.diag()
    gt, pr = cm.sum(1), cm.sum(0)
    union = gt + pr - tp
    iou = torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, math.nan))
    acc = torch.where(gt > 0, tp / gt.clamp(min=1), torch.full_like(tp, math.nan))
    total = cm.sum()
    return {
        "mIoU": 100 * iou.nanmean().item(),
        "pixel_acc": 100 * (tp.sum() / total).item() if total > 0 else math.nan,
        "mean_acc": 100 * acc.nanmean().item(),
        "per_class_iou": [round(100 * v, 3) if not math.isnan(v) else None for v in iou.tolist()],
    }


def group_accuracy(cm, groups):
    """Share (percent) of pixels, among those of a grouped class that are predicted as some grouped
    class, whose predicted class is in the right group. groups[c] is class c's group or None.
    E.g. groups = each class's kind of scene: the share of object pixels given the right context,
    whatever shape was predicted (chance = 1 / number of groups). NaN if no pixel qualifies."""
    if len(groups) != cm.shape[0]:
        raise ValueError(f"groups lists {len(groups)} classes, the confusion matrix has {cm.shape[0]}")
    grouped = [c for c, g in enumerate(groups) if g is not None]
    same = torch.tensor([[groups[t] == groups[p] for p in grouped] for t in grouped])
    sub = cm[grouped][:, grouped].double()
    total = sub.sum()
    return 100 * (sub[same].sum() / total).item() if total > 0 else math.nan


def neighbour_pairs(x, dim):
    """The two sides of every pair of neighbours along dim (horizontal: -1, vertical: -2) of x [B,H,W]."""
    n = x.shape[dim]
    return x.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1)


def class_edges(t, valid):
    """bool [B,H,W]: the labelled pixels with a labelled 4-neighbour of another class."""
    edge = torch.zeros_like(valid)
    for dim in (-1, -2):
        (a, b), (va, vb) = neighbour_pairs(t, dim), neighbour_pairs(valid, dim)
        change = (a != b) & va & vb
        for side in neighbour_pairs(edge, dim):
            side.logical_or_(change)
    return edge


def boundary_mask(target, band, ignore_index=IGNORE_INDEX, extent=None):
    """The boundary band of the label map target [B,H,W]: bool [B,H,W], True for every labelled
    (non-ignored) pixel within Euclidean distance `band` of an object boundary, as GCN's Table 5
    defines it ("within 7 px of a boundary"; DeepLab's trimap is trimap_mask).

    The boundary set is every ignored (void) pixel with a labelled 4-neighbour, plus every labelled
    pixel with a 4-neighbour of another labelled class. VOC and Cityscapes draw a void band of a few
    pixels around objects, so there the object boundary is the void band's edge; counting only label
    changes between labelled neighbours would leave the band empty. Ignored pixels are never in the
    band (they are scored nowhere). The image border is not a boundary, and neither is the edge of
    the padding evaluation adds beyond it: extent (bool [B,H,W], True inside each image; None: all)
    marks the image, and a padded batch gives each image the band it has alone."""
    t = target.long()
    inside = torch.ones_like(t, dtype=torch.bool) if extent is None else extent.bool()
    valid = (t != ignore_index) & inside
    void = (t == ignore_index) & inside
    edge = class_edges(t, valid)
    for dim in (-1, -2):  # void beside a labelled pixel
        (xa, xb), (va, vb) = neighbour_pairs(void, dim), neighbour_pairs(valid, dim)
        edge.narrow(dim, 0, t.shape[dim] - 1).logical_or_(xa & vb)
        edge.narrow(dim, 1, t.shape[dim] - 1).logical_or_(va & xb)
    r = int(math.floor(band))
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    disk = ((yy ** 2 + xx ** 2) <= band ** 2).float()[None, None]
    # zero padding: outside the image is no boundary
    near = F.conv2d(edge.float()[:, None], disk, padding=r)[:, 0] > 0
    return near & valid


TRIMAP_SEEDS = ("void", "class_edges")


def check_trimap(widths, around):
    """One clear error for trimap widths that are not whole pixels or seeds not in TRIMAP_SEEDS."""
    if around not in TRIMAP_SEEDS:
        raise ValueError(f"eval option trimap_around must be one of {', '.join(TRIMAP_SEEDS)}, got {around!r}")
    for width in widths:
        if isinstance(width, bool) or not isinstance(width, (int, float)) or width < 0 or not float(width).is_integer():
            raise ValueError(f"a trimap width is a whole number of pixels (a (2w + 1) square), got {width!r}")


def trimap_mask(target, width, ignore_index=IGNORE_INDEX, extent=None, around="void"):
    """DeepLab v1's trimap band (its Fig. 5), as the authors' MyVOCevalsegBoundary.m draws it: the void
    pixels dilated by a (2·width + 1)-px square; the labelled pixels it covers are scored. VOC's annotators
    ring every object with void, so that is its boundary; label changes between labelled pixels are not
    seeds. around="class_edges", for data without a void ring (the embedded scenes): the labelled pixels
    with a 4-neighbour of another class are the seeds instead, dilated the same way. The image border
    and the padding beyond extent (bool [B,H,W], True inside each image) seed nothing."""
    check_trimap([width], around)
    t = target.long()
    inside = torch.ones_like(t, dtype=torch.bool) if extent is None else extent.bool()
    valid = (t != ignore_index) & inside
    seeds = (t == ignore_index) & inside if around == "void" else class_edges(t, valid)
    w = int(width)
    # max pooling pads with −inf: outside the image seeds nothing, as MATLAB's imdilate
    near = F.max_pool2d(seeds.float()[:, None], 2 * w + 1, stride=1, padding=w)[:, 0] > 0
    return near & valid


def boundary_counts(pred, target, band, ignore_index=IGNORE_INDEX, extent=None):
    """(correct, total) pixel counts in the boundary band and in the interior (the rest)."""
    near = boundary_mask(target, band, ignore_index, extent)
    inner = (target != ignore_index) & ~near
    correct = pred == target
    return {"boundary": ((correct & near).sum().item(), near.sum().item()),
            "internal": ((correct & inner).sum().item(), inner.sum().item())}


def object_accuracies(pred, labels, ignore_index=IGNORE_INDEX):
    """Per object, a connected region (4-connectivity) of one class other than background (0) in one
    image: its size, the square root of its pixel count, and the share (percent) of its pixels predicted
    as its class. pred, labels: class maps [N,H,W] (arrays or tensors). Returns (sizes, accuracies) as
    float arrays, objects in the order image, class, region (scipy's labelling order)."""
    from scipy.ndimage import label as connected_components
    pred, labels = np.asarray(pred), np.asarray(labels)
    sizes, accuracies = [], []
    for p, lab in zip(pred, labels):
        for cls in np.unique(lab):
            if cls in (0, ignore_index):
                continue
            regions, count = connected_components(lab == cls)
            pixels = np.bincount(regions.ravel(), minlength=count + 1)[1:]
            right = np.bincount(regions.ravel(), weights=(p == cls).ravel(), minlength=count + 1)[1:]
            sizes.extend(np.sqrt(pixels))
            accuracies.extend(100 * (right / pixels))
    return np.array(sizes, dtype=float), np.array(accuracies, dtype=float)

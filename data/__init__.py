"""Where pixels come from. Every dataset yields (image float32 [3,H,W] normalised, label int64 [H,W])
with IGNORE_INDEX for pixels that carry no label, and has `num_classes` and `class_names`. Padding
that evaluation adds beyond an image is labelled PAD_LABEL.

A training item is asked for as `dataset[(index, aug_seed)]`: the augmentation randomness is a pure
function of aug_seed, so a resumed run sees exactly the batches it would have seen.
`dataset[index]` (no seed) gives the un-augmented item, as used for evaluation.
"""
import os

import torch

IGNORE_INDEX = 255
# The label of the padding evaluation adds bottom/right of an image (data/transforms.py): outside the
# image, so never scored and never next to a boundary (a void band around objects is IGNORE_INDEX).
# Evaluation turns it into IGNORE_INDEX after taking the image's extent from it; training never sees it.
PAD_LABEL = 254
DATASETS = ("synthetic", "voc", "ade20k", "cityscapes")
DEFAULT_CACHE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache")


def cache_dir():
    """Where generated datasets and data-check stamps are kept ($SEGABL_CACHE, else data/cache)."""
    return os.environ.get("SEGABL_CACHE", DEFAULT_CACHE)


def split_item(item):
    """`dataset[(i, seed)]` or `dataset[i]` -> (i, seed or None)."""
    return item if isinstance(item, tuple) else (item, None)


class HeldOut(torch.utils.data.Dataset):
    """Part of a training split, standing in for a split of its own: with the data option
    `holdout: H`, 'train' is the training split's first N − H images and 'val' its last H. Learning
    rates are chosen on such a part, so the choice never sees the validation split the verdicts use.
    (Any dataset's images start..stop: a dry run evaluates the first few validation images so.)"""

    def __init__(self, dataset, start, stop):
        self.dataset, self.indices = dataset, range(start, stop)
        self.num_classes, self.ignore_index = dataset.num_classes, getattr(dataset, "ignore_index", IGNORE_INDEX)
        self.class_names = getattr(dataset, "class_names", None)
        if hasattr(dataset, "class_groups"):
            self.class_groups = dataset.class_groups

    def check(self):
        if hasattr(self.dataset, "check"):
            self.dataset.check()

    def __len__(self):
        return len(self.indices)

    def to_rgb(self, images):
        return self.dataset.to_rgb(images)

    def __getitem__(self, item):
        if isinstance(item, tuple):  # (index, augmentation seed) from the trainer's batches
            return self.dataset[(self.indices[item[0]], item[1])]
        return self.dataset[self.indices[item]]


def build_dataset(cfg: dict, split: str):
    """cfg is the resolved data config of a run (plain dict); split is 'train', 'val' or 'heldout'.
    With cfg['holdout'] = H, 'train' and 'val' are parts of the training split (HeldOut); with
    cfg['holdout'] = "heldout", 'train' is the whole training split and 'val' the 'heldout' images (for a
    training set too small to carve one from: selection then trains on what the table trains on).
    'heldout' (the embedded dataset only): training images no run of cfg trains on, the training split's
    stream after its last image (data/synthetic.py); with or without holdout the same images, since a
    holdout run trains on fewer of the training split's images, never on others."""
    if split not in ("train", "val", "heldout"):
        raise ValueError(f"split must be 'train', 'val' or 'heldout', got {split!r}")
    if split == "heldout":
        if cfg["name"] != "synthetic":
            raise ValueError(f"held-out training images are the embedded dataset's only, not {cfg['name']!r}'s")
        cfg = {k: v for k, v in cfg.items() if k != "holdout"}
    if cfg.get("holdout") == "heldout":  # the whole training split, scored on the held-out training images
        whole = {k: v for k, v in cfg.items() if k != "holdout"}
        return build_dataset(whole, "train" if split == "train" else "heldout")
    if cfg.get("holdout") is not None:
        holdout, whole = cfg["holdout"], build_dataset({k: v for k, v in cfg.items() if k != "holdout"}, "train")
        if not isinstance(holdout, int) or not 0 < holdout < len(whole):
            raise ValueError(f"data option holdout must be an int in 1..{len(whole) - 1} "
                             f"(images held out of the {len(whole)} training images) or \"heldout\" (the "
                             f"held-out training images beyond them), got {holdout!r}")
        cut = len(whole) - holdout
        return HeldOut(whole, 0, cut) if split == "train" else HeldOut(whole, cut, len(whole))
    name = cfg["name"]
    opts = {k: v for k, v in cfg.items() if k not in ("name", "root")}
    cls = dataset_class(name)
    if name == "synthetic":
        return cls(split=split, **opts)
    if not cfg.get("root"):
        raise ValueError(f"--data {name} needs --data-root DIR (the folder that holds the dataset)")
    return cls(cfg["root"], split, **opts)


def dataset_class(name):
    """The class that builds dataset `name` (its keyword options are the data options it takes)."""
    if name == "synthetic":
        from data.synthetic import SyntheticScenes
        return SyntheticScenes
    if name in ("voc", "ade20k", "cityscapes"):
        return real_dataset(name)
    raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def real_dataset(name):
    """The class of a real dataset (voc, ade20k, cityscapes): its num_classes, class_names, loader."""
    if name == "voc":
        from data.voc import VOCSegmentation
        return VOCSegmentation
    if name == "ade20k":
        from data.ade20k import ADE20K
        return ADE20K
    if name == "cityscapes":
        from data.cityscapes import Cityscapes
        return Cityscapes
    raise ValueError(f"unknown real dataset {name!r}; choose one of: voc, ade20k, cityscapes")

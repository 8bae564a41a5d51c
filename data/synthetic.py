"""The embedded generated dataset: scenes whose pixel classes depend on an object's global shape.

Every object is filled with a texture drawn from one distribution shared by all classes (stripes,
checks, dots or blocks in two random colours), so no local patch tells a circle from a square:
only the object's outline, seen across most of the object, does. Objects are large against the
small backbone's receptive field, so a head that widens the receptive field (GCN's large kernels,
DeepLab's field of view) has something to gain. The background is smooth and easy, as in real
scenes where most pixels are easy (what a layer cascade exploits). Edges are sharp, so boundary
accuracy is measurable.

Scene-context mode (`context=True`, for PSPNet): every scene has a colour band along its top edge,
red or blue; it is the only difference between the two kinds of scene. An object's class is its
shape *and* the scene's band: a circle under a red band and a circle under a blue band are two
look-alike classes (as a "car" on a road and a "boat" on water). Objects stay in the lower part of
the image, at least 3/8 of the image height below the band (48 px at 128 px), so a net whose
receptive field is smaller than that cannot see the band from the objects: only context gathered
from the whole image (global pooling) tells the look-alikes apart. `class_groups["context"]`
gives each class's band (None for background), from which evaluation computes "context accuracy"
(and `class_groups["shape"]` its shape: "shape accuracy").

Difficulty mode (`hard=True`, for the layer cascade): most pixels easy, a few hard. Small objects
(radius 0.12-0.18 of the image) of two shapes (circle, square) on the wide smooth background, so
objects are a small minority of the pixels. Each object is one of a look-alike pair: "plain" or
"ringed". A ringed object has a thin ring of one solid random colour around it, concentric, at a
gap of 0.09-0.14 of the image beyond its edge (the ring's pixels are labelled background: it is a
marker, like the context band). Plain and ringed objects share shape, texture and colour
statistics; only the ring, 12-18 px (at 128 px) from the object's edge and 27-41 px from its centre,
tells them apart, so a pixel of the object needs a receptive field reaching the ring (the later,
dilated stages of the cascade's trunk) while background pixels are decided by a shallow one.
Objects are placed so that no object lies inside another's ring. Classes: background, circle,
square, circle-ringed, square-ringed.

Scenes are a pure function of (seed, split, index). A built dataset is cached on disk (one .pt
file per configuration), so every run and every process reads the same tensors. Besides 'train'
(indices 0 … n_train − 1 of the training stream) and 'val', the split 'heldout' holds HELDOUT_IMAGES
held-out training images: indices n_train … n_train + HELDOUT_IMAGES − 1 of the training stream, the
training distribution (same knobs), never augmented and never trained on (the mechanism probes' images). The three kinds of
scene (plain, context, hard) are MODES; the data config's two switches `context` and `hard` name
one of them (scene_mode).

Named knobs (data/scene_knobs.py) set the properties the papers' mechanisms need: more and asymmetric
shapes, a wider range of scales, a context that varies across sub-regions, confidently wrong pixels,
soft low-contrast edges; and the data option `resize` adds PSPNet's random-resize training
augmentation. At their defaults the scenes are those of before the knobs.
"""
import functools
import hashlib
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from data import cache_dir as default_cache_dir, split_item
from data.scene_knobs import (CONTEXT_PALETTE, DEFAULT_KNOBS, KNOB_NAMES, asymmetric_shape_mask, changed_knobs,
                               draw_radius, number_range, paint, scene_knobs)
from data.transforms import random_resize, to_rgb
from files import atomic_write

PIXEL_MEAN, PIXEL_STD = 0.5, 0.25  # the images' normalisation: [0, 1] pixels → about [−2, 2]

SHAPES = ("circle", "square", "triangle", "cross")
# scene-context mode: the band's colour per kind of scene, and the layout as fractions of the size
CONTEXTS = tuple(name for name, _ in CONTEXT_PALETTE[:2])  # red, blue: the default two kinds
CUE_COLOURS = tuple(colour for _, colour in CONTEXT_PALETTE[:2])
CUE_BAND = 1 / 16  # the band covers the top 1/16 of the image
OBJECT_TOP = 7 / 16  # no object pixel above this: the gap to the band is 7/16 - 1/16 = 3/8
CONTEXT_RADIUS = (0.16, 0.28)  # default object size in context mode (2 × 0.28 fits below OBJECT_TOP)
_SPLIT_ID = {"train": 0, "val": 1}
HELDOUT_IMAGES = 200  # the 'heldout' split: training images after the n_train a run trains on
# difficulty mode: the shapes, the object size and the ring's gap and width as fractions of the size
HARD_SHAPES = ("circle", "square")
HARD_RADIUS = (0.12, 0.18)
HARD_GAP = (0.09, 0.14)
HARD_RING_WIDTH = 3 / 128


def _texture(rng, h, w):
    """Two random, contrasting colours laid out by a random periodic or blocky pattern."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(4)
    period = rng.uniform(4, 14)
    if kind == 0:  # stripes at a random angle
        theta = rng.uniform(0, np.pi)
        pattern = np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period + rng.uniform(0, 6.3)) > 0
    elif kind == 1:  # checks
        p = int(period)
        pattern = ((xx // p + yy // p) % 2) > 0
    elif kind == 2:  # dots
        p = period + 2
        pattern = ((xx % p) - p / 2) ** 2 + ((yy % p) - p / 2) ** 2 < (0.32 * p) ** 2
    else:  # random blocks
        cells = rng.integers(0, 2, size=(h // 6 + 1, w // 6 + 1)).astype(bool)
        pattern = np.kron(cells, np.ones((6, 6), bool))[:h, :w]
    c1 = rng.uniform(0, 1, 3)
    c2 = rng.uniform(0, 1, 3)
    while np.abs(c1 - c2).mean() < 0.3:  # keep the pattern visible
        c2 = rng.uniform(0, 1, 3)
    return np.where(pattern[..., None], c1, c2).astype(np.float32)


def _background(rng, h, w):
    """A smooth, low-contrast gradient: easy to tell from any textured object."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    base = rng.uniform(0.25, 0.75, 3)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(theta) + yy * np.sin(theta))[..., None] * rng.uniform(-0.25, 0.25, 3)
    return (base + ramp).astype(np.float32)


def shape_mask(shape, h, w, cy, cx, r):
    """Boolean mask of one shape of 'radius' r (half its extent) centred at (cy, cx)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    if shape == "circle":
        return dx ** 2 + dy ** 2 <= r ** 2
    if shape == "square":  # side 1.6 r: about the circle's area
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.8 * r
    if shape == "triangle":  # upward, base at cy + r/2, apex at cy - r
        inside_base = dy <= 0.5 * r
        # the two slanted sides of an equilateral triangle of circumradius r
        return inside_base & (np.abs(dx) * np.sqrt(3) <= (dy + r))
    if shape == "cross":  # a plus sign with arms of width 0.8 r
        arm = 0.4 * r
        return ((np.abs(dx) <= r) & (np.abs(dy) <= arm)) | ((np.abs(dy) <= r) & (np.abs(dx) <= arm))
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def cue_rows(image_size):
    """Rows [0, cue_rows) hold the band in context mode."""
    return int(round(CUE_BAND * image_size))


def make_hard_scene(seed, split, index, image_size=128, max_objects=2, radius=HARD_RADIUS, noise=0.03,
                    knobs=DEFAULT_KNOBS):
    """One scene of the difficulty mode (module docstring): label 0 = background, 1 + shape index
    (plain), 1 + len(HARD_SHAPES) + shape index (ringed). The ring's pixels are background."""
    rng = np.random.default_rng([seed, _SPLIT_ID[split], index, 7])  # 7: not the default mode's stream
    h = w = image_size
    image = _background(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    placed = []  # (cy, cx, r, ring radius): no object inside another's ring
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(30):
            r = draw_radius(rng, radius, knobs.log_radius) * image_size
            ring = r + rng.uniform(*HARD_GAP) * image_size
            cy, cx = rng.uniform(0.12, 0.88, 2) * image_size
            if all(np.hypot(cy - y, cx - x) > max(ring + q, g + r) + 3 for y, x, q, g in placed):
                break
        else:
            continue
        placed.append((cy, cx, r, ring))
        cls = int(rng.integers(len(HARD_SHAPES)))
        # at the default share, the draw of before the knob (the same scenes)
        ringed = bool(rng.integers(2)) if knobs.ringed_share == 0.5 else bool(rng.random() < knobs.ringed_share)
        if ringed:
            dist = np.hypot(yy - cy, xx - cx)
            band = np.abs(dist - ring) <= HARD_RING_WIDTH * image_size / 2
            image[band] = rng.uniform(0, 1, 3).astype(np.float32)
        mask = shape_mask(HARD_SHAPES[cls], h, w, cy, cx, r)
        paint(image, mask, _texture(rng, h, w), knobs.edge_blur, knobs.contrast)
        label[mask] = cls + 1 + (len(HARD_SHAPES) if ringed else 0)
    image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), label


def make_scene(seed, split, index, image_size=128, max_objects=2, radius=(0.22, 0.40), noise=0.03,
               context=False, knobs=DEFAULT_KNOBS):
    """One scene: (image uint8 [H,W,3], label uint8 [H,W]); label 0 = background, 1 + shape index,
    or in context mode 1 + shape index + knobs.classes × the kind of scene of the object's sub-region."""
    rng = np.random.default_rng([seed, _SPLIT_ID[split], index])
    h = w = image_size
    image = _background(rng, h, w)
    label = np.zeros((h, w), np.uint8)
    if context:  # a G × G grid of sub-regions (G = 1: the whole image), each with its band and kind
        grid = knobs.context_grid
        kinds = rng.integers(knobs.contexts, size=grid * grid)
        side = h / grid  # a sub-region's side (px)
        for region, kind in enumerate(kinds):
            y0, x0 = int(round(region // grid * side)), int(round(region % grid * side))
            image[y0:y0 + cue_rows(side), x0:x0 + int(round(side))] = CONTEXT_PALETTE[kind][1]
    placed = []  # (cy, cx, r): keep objects mostly apart so each outline stays visible
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            r = draw_radius(rng, radius, knobs.log_radius) * image_size
            if context:  # the whole object below its sub-region's OBJECT_TOP and inside the sub-region
                region = int(rng.integers(grid * grid)) if grid > 1 else 0  # G = 1: no draw, today's scenes
                y0, x0 = region // grid * side, region % grid * side
                cy, cx = rng.uniform(y0 + OBJECT_TOP * side + r, y0 + side - r), rng.uniform(x0 + r, x0 + side - r)
            else:
                cy, cx = rng.uniform(0.15, 0.85, 2) * image_size
            if all(np.hypot(cy - y, cx - x) > 0.9 * (r + q) for y, x, q in placed):
                break
        else:
            continue
        placed.append((cy, cx, r))
        cls = int(rng.integers(knobs.classes))
        if knobs.asymmetric:  # mirrored at random: the set of scenes stays mirror-symmetric
            mask = asymmetric_shape_mask(cls, h, w, cy, cx, r, mirror=bool(rng.integers(2)))
        else:
            mask = shape_mask(SHAPES[cls], h, w, cy, cx, r)
        paint(image, mask, _texture(rng, h, w), knobs.edge_blur, knobs.contrast)
        label[mask] = cls + 1 + (knobs.classes * int(kinds[region]) if context else 0)
    image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), label


@dataclass(frozen=True)
class SceneMode:
    """One kind of scene: its generator (seed, split, index, image_size, max_objects, radius, knobs=) ->
    (image, label), its classes at the default knobs and its default object radius (fraction of the image)."""
    make: object
    class_names: tuple
    radius: tuple


MODES = {
    "plain": SceneMode(functools.partial(make_scene, context=False), ("background",) + SHAPES, (0.22, 0.40)),
    "context": SceneMode(functools.partial(make_scene, context=True),
                         ("background",) + tuple(f"{shape}-{ctx}" for ctx in CONTEXTS for shape in SHAPES),
                         CONTEXT_RADIUS),
    "hard": SceneMode(make_hard_scene, ("background",) + HARD_SHAPES + tuple(f"{s}-ringed" for s in HARD_SHAPES),
                      HARD_RADIUS),
}


def class_names(mode, knobs=DEFAULT_KNOBS):
    """The class names of a mode's scenes as its knobs make them."""
    if mode == "hard":
        return MODES["hard"].class_names
    shapes = tuple(f"shape{i}" for i in range(knobs.classes)) if knobs.asymmetric else SHAPES[:knobs.classes]
    if mode == "plain":
        return ("background",) + shapes
    return ("background",) + tuple(f"{shape}-{name}" for name, _ in CONTEXT_PALETTE[:knobs.contexts]
                                   for shape in shapes)


def scene_mode(context=False, hard=False):
    """The MODES name of a data config's switches (kept as two booleans: they are part of every run id)."""
    if context and hard:
        raise ValueError("synthetic dataset: choose one of the context and hard modes, not both")
    return "context" if context else "hard" if hard else "plain"


def build_split(split, n, seed, image_size, max_objects, radius, mode="plain", knobs=DEFAULT_KNOBS, first=0):
    """Scenes first … first + n − 1 of a split's stream ('train' or 'val'), as tensors."""
    images = np.empty((n, image_size, image_size, 3), np.uint8)
    labels = np.empty((n, image_size, image_size), np.uint8)
    for i in range(n):
        images[i], labels[i] = MODES[mode].make(seed, split, first + i, image_size, max_objects, radius, knobs=knobs)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(labels)


NORMALISED = {}  # split -> (cache file key, its normalised images): SyntheticScenes.normalised


class SyntheticScenes(torch.utils.data.Dataset):
    """The embedded dataset, one split ('train', 'val' or 'heldout': module docstring). Options are the
    data config of a run (plain values): those
    named here, and the scene knobs (data/scene_knobs.py). `resize` [low, high]: the training split's
    random resize by a factor in that range (PSPNet trains with 0.5-2), cropped or padded back to the
    image size."""

    ignore_index = 255
    KNOB_OPTIONS = KNOB_NAMES  # taken through **knob_options: named for the config check (engine/plans.py)

    def __init__(self, split="train", image_size=128, n_train=2000, n_val=300, seed=0,
                 max_objects=2, radius=None, context=False, hard=False, flip=True, resize=None, cache_dir=None,
                 **knob_options):
        for name, flag in (("context", context), ("hard", hard), ("flip", flip)):
            if not isinstance(flag, bool):
                raise ValueError(f"synthetic dataset: option {name} must be true or false, got {flag!r}")
        mode = scene_mode(context, hard)
        knobs = scene_knobs(knob_options, mode)
        if image_size < 32 or image_size % 8:
            raise ValueError(f"synthetic image_size must be a multiple of 8 and >= 32, got {image_size}")
        radius = number_range("radius", radius, 0.5) if radius is not None else MODES[mode].radius  # of the image
        grid = knobs.context_grid
        if context and 2 * radius[1] > (1 - OBJECT_TOP) / grid:
            raise ValueError(f"synthetic context mode: objects must fit below the band's gap "
                             f"(radius <= {(1 - OBJECT_TOP) / 2 / grid:.4g} of the image), got radius {list(radius)}")
        if context and cue_rows(image_size / grid) < 1:
            raise ValueError(f"synthetic context mode: a {grid}×{grid} grid leaves no band at image_size "
                             f"{image_size} (sub-regions of at least 16 px are needed)")
        resize = number_range("resize", resize, 4) if resize is not None else None
        # flip, resize: the training split's random mirror and resize
        self.split, self.mode, self.flip, self.resize, self.knobs = split, mode, flip, resize, knobs
        self.class_names = class_names(mode, knobs)
        self.num_classes = len(self.class_names)
        if context:  # each class's kind of scene and shape: evaluation reports context_acc, shape_acc
            kinds, shapes = range(knobs.contexts), range(knobs.classes)
            self.class_groups = {"context": [None] + [i for i in kinds for _ in shapes],
                                 "shape": [None] + [i for _ in kinds for i in shapes]}
        if split not in ("train", "val", "heldout"):
            raise ValueError(f"synthetic dataset: split must be 'train', 'val' or 'heldout', got {split!r}")
        n = {"train": n_train, "val": n_val, "heldout": HELDOUT_IMAGES}[split]
        params = dict(split=split, n=n, seed=seed, image_size=image_size, max_objects=max_objects,
                      radius=list(radius), version=1)
        if split == "heldout":  # where in the training stream they start: after every image a run trains on
            params["first"] = n_train
        if context:  # only when set, so the plain dataset's cache files keep their names
            params["context"] = True
        if hard:  # likewise
            params["hard"] = True
        params.update(changed_knobs(knobs))  # likewise
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
        cache_dir = cache_dir or default_cache_dir()
        path = os.path.join(cache_dir, f"synthetic-{split}-{n}-{image_size}px-{key}.pt")
        self.path, self.params, self.n, self.image_size = path, params, n, image_size
        if os.path.exists(path):
            try:
                blob = torch.load(path, weights_only=True)
            except Exception as err:  # torch.load fails on a damaged file with many exception types
                why = (str(err).splitlines() or [""])[0]
                raise ValueError(f"synthetic dataset cache {path} is unreadable ({type(err).__name__}: {why}); "
                                 "delete it to regenerate") from None
        else:
            stream, first = ("train", n_train) if split == "heldout" else (split, 0)
            images, labels = build_split(stream, n, seed, image_size, max_objects, radius, mode, knobs, first)
            blob = {"images": images, "labels": labels, "params": json.dumps(params)}
            os.makedirs(cache_dir, exist_ok=True)
            atomic_write(path, lambda tmp: torch.save(blob, tmp))  # parallel runs may build the same file
        blob = blob if isinstance(blob, dict) else {}  # check() says what is wrong with a foreign file
        self.images, self.labels, self.cached_params = blob.get("images"), blob.get("labels"), blob.get("params")
        stat = os.stat(path)
        self.file_key = (path, stat.st_mtime_ns, stat.st_size)  # which file's images: normalised()

    def check(self):
        """Fail before any training on tensors that are not what this configuration generates (a
        damaged or foreign cache file): their count, shape and dtype, the labels' values (each
        below num_classes) and the parameters stored with them. Raises ValueError naming the file."""
        n, size = self.n, self.image_size
        expected = {"images": ((n, 3, size, size), torch.uint8), "labels": ((n, size, size), torch.uint8)}
        problem = None
        for name, (shape, dtype) in expected.items():
            tensor = getattr(self, name)
            if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape or tensor.dtype != dtype:
                got = (f"{tuple(tensor.shape)} {tensor.dtype}" if isinstance(tensor, torch.Tensor)
                       else type(tensor).__name__)
                problem = f"{name} are {got}, expected {shape} {dtype}"
                break
        else:
            if n and int(self.labels.max()) >= self.num_classes:
                problem = f"label value {int(self.labels.max())}, valid are 0..{self.num_classes - 1}"
            elif self.cached_params != json.dumps(self.params):
                problem = f"made with {self.cached_params}, expected {json.dumps(self.params)}"
        if problem:
            raise ValueError(f"synthetic dataset cache {self.path}: {problem}; delete it to regenerate")

    def __len__(self):
        return len(self.images)

    def to_rgb(self, images):
        """A batch of __getitem__'s images [N,3,H,W] back to the stored uint8 pixels, [N,H,W,3]."""
        return to_rgb(images, (PIXEL_MEAN,) * 3, (PIXEL_STD,) * 3)

    def normalised(self):
        """The split's images as float, normalised: computed once per process for the whole split
        (the same elementwise operations as image by image, so the same floats) and kept for the
        split's latest cache file (its path, time and size), so a process keeps at most one per split."""
        key, images = NORMALISED.get(self.split, (None, None))
        if key != self.file_key:
            images = self.images.float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD)
            NORMALISED[self.split] = (self.file_key, images)
        return images

    def __getitem__(self, item):
        index, aug_seed = split_item(item)
        image = self.normalised()[index].clone()  # a copy: a caller may change it in place
        label = self.labels[index].long()
        if (self.flip or self.resize) and aug_seed is not None and self.split == "train":
            gen = torch.Generator().manual_seed(aug_seed)
            if self.flip and torch.rand((), generator=gen) < 0.5:  # horizontal flip
                image, label = image.flip(-1), label.flip(-1)
            if self.resize:  # drawn after the flip, so a resize leaves every flip as it was
                image, label = random_resize(image, label, gen, self.resize, self.ignore_index)
        return image, label

"""Formula-driven pretraining images: fractals of iterated function systems (IFS), a class per system.

All four papers fine-tune an ImageNet-pretrained backbone; ImageNet cannot be had here, so the CPU
presets' backbones are pretrained as classifiers on images no dataset is needed for (FractalDB,
Kataoka et al., ACCV 2020 / IJCV 2022), in the variant of Anderson & Farrell (WACV 2022): systems of
2-4 contractive affine maps whose singular values are bounded so the attractor is neither a dot nor a
blur, drawn in a random colour at a random scale and position on a random background.

- A class is one IFS, drawn from (seed, class): maps x ↦ A x + b with A = R(θ) diag(σ₁, σ₂) R(φ) D
  (D a random reflection), the σ's rescaled so that Σᵢ (σ₁ᵢ + 2σ₂ᵢ) — the "σ-factor" — lies in
  [(5 + N)/2, (6 + N)/2] for N maps (Anderson & Farrell's bound for well-defined shapes), each map
  picked with probability ∝ |det A|.
- An image is the chaos game of its class from (seed, class, index): CHAINS points iterated STEPS
  times (the first BURN_IN not drawn), the attractor scaled to a random size and placed at a random
  position, one random colour on a smooth random background, pixel noise.

Pure functions of their seeds; a built split is cached on disk like the embedded scenes, and its
items are normalised the same way (data/synthetic.py's PIXEL_MEAN, PIXEL_STD).
"""
import hashlib
import json
import os

import numpy as np
import torch

from data import cache_dir as default_cache_dir, split_item
from data.synthetic import PIXEL_MEAN, PIXEL_STD, _background
from files import atomic_write

CHAINS, STEPS, BURN_IN = 1500, 24, 6
MAPS = (2, 3, 4)


def ifs(seed, cls):
    """(matrices [N,2,2], offsets [N,2], probabilities [N]) of class `cls`'s system."""
    rng = np.random.default_rng([seed, cls, 1])
    n = int(rng.choice(MAPS))
    sigma = rng.uniform(0.05, 1.0, (n, 2))
    sigma = np.stack([sigma.max(1), sigma.min(1)], 1)  # σ₁ ≥ σ₂
    target = rng.uniform((5 + n) / 2, (6 + n) / 2)
    sigma *= target / (sigma[:, 0] + 2 * sigma[:, 1]).sum()
    sigma = np.minimum(sigma, 0.98)  # contractive
    mats = []
    for (s1, s2) in sigma:
        theta, phi = rng.uniform(0, 2 * np.pi, 2)
        rot = lambda a: np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        flip = np.diag(rng.choice([-1.0, 1.0], 2))
        mats.append(rot(theta) @ np.diag([s1, s2]) @ rot(phi) @ flip)
    mats = np.stack(mats)
    offsets = rng.uniform(-1, 1, (n, 2))
    det = np.abs(np.linalg.det(mats)) + 1e-3
    return mats, offsets, det / det.sum()


def colour_class(colour):
    """The coarse colour of an RGB triple in [0, 1]: which channels exceed 0.5, as 3 bits (8 classes)."""
    return int(4 * (colour[0] > 0.5) + 2 * (colour[1] > 0.5) + (colour[2] > 0.5))


def render(seed, cls, index, size=64, noise=0.03, with_colour=False):
    """One image (uint8 [size, size, 3]) of class `cls`: its attractor by the chaos game; with_colour:
    (image, colour_class of the attractor's colour)."""
    mats, offsets, prob = ifs(seed, cls)
    rng = np.random.default_rng([seed, cls, index, 2])
    points = rng.uniform(-1, 1, (CHAINS, 2))
    drawn = []
    for step in range(STEPS):
        pick = rng.choice(len(prob), CHAINS, p=prob)
        points = np.einsum("nij,nj->ni", mats[pick], points) + offsets[pick]
        if step >= BURN_IN:
            drawn.append(points)
    pts = np.concatenate(drawn)
    lo, hi = np.percentile(pts, 1, 0), np.percentile(pts, 99, 0)  # robust extent of the attractor
    extent = max(float((hi - lo).max()), 1e-6)
    scale = rng.uniform(0.5, 0.95) * size / extent
    centre = rng.uniform(0.3, 0.7, 2) * size
    xy = (pts - (lo + hi) / 2) * scale + centre
    keep = (xy >= 0).all(1) & (xy < size).all(1)
    ix = xy[keep].astype(np.int64)
    mask = np.zeros((size, size), bool)
    mask[ix[:, 1], ix[:, 0]] = True
    image = _background(rng, size, size)
    colour = rng.uniform(0, 1, 3).astype(np.float32)
    while np.abs(colour - image[size // 2, size // 2]).mean() < 0.25:  # visible on its background
        colour = rng.uniform(0, 1, 3).astype(np.float32)
    image[mask] = colour
    image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    image = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    return (image, colour_class(colour)) if with_colour else image


class FractalImages(torch.utils.data.Dataset):
    """`classes` IFS classes, `per_class` images each, split into 'train' (the first per_class −
    held_out of each class) and 'val' (the rest); items (image normalised [3,H,W], class), or with
    colour=True (image, class, colour_class of the attractor). A training item asked for as (index,
    aug_seed) is flipped at random, as the embedded scenes are."""

    def __init__(self, split="train", classes=64, per_class=120, held_out=20, size=64, seed=0, cache_dir=None,
                 colour=False):
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not 0 < held_out < per_class:
            raise ValueError(f"fractals: held_out must be in 1..{per_class - 1}, got {held_out}")
        indices = range(per_class - held_out) if split == "train" else range(per_class - held_out, per_class)
        params = dict(split=split, classes=classes, per_class=per_class, held_out=held_out, size=size, seed=seed,
                      chains=CHAINS, steps=STEPS, burn_in=BURN_IN, version=1)
        if colour:  # the same images, with their colour classes (the key of a class-only split unchanged)
            params["colour"] = True
        key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
        cache_dir = cache_dir or default_cache_dir()
        path = os.path.join(cache_dir, f"fractals-{split}-{classes}x{len(indices)}-{size}px-{key}.pt")
        if os.path.exists(path):
            blob = torch.load(path, weights_only=True)
        else:
            drawn = [render(seed, c, i, size, with_colour=True) for c in range(classes) for i in indices]
            blob = {"images": torch.from_numpy(np.stack([im for im, _ in drawn])).permute(0, 3, 1, 2).contiguous(),
                    "labels": torch.arange(classes).repeat_interleave(len(indices))}
            if colour:
                blob["colours"] = torch.tensor([c for _, c in drawn])
            os.makedirs(cache_dir, exist_ok=True)
            atomic_write(path, lambda tmp: torch.save(blob, tmp))
        self.images, self.labels, self.split, self.num_classes = blob["images"], blob["labels"], split, classes
        self.colours = blob.get("colours")

    def __len__(self):
        return len(self.images)

    def __getitem__(self, item):
        index, aug_seed = split_item(item)
        image = self.images[index].float().div_(255).sub_(PIXEL_MEAN).div_(PIXEL_STD)
        if aug_seed is not None and self.split == "train":
            if torch.rand((), generator=torch.Generator().manual_seed(aug_seed)) < 0.5:
                image = image.flip(-1)
        if self.colours is not None:
            return image, self.labels[index], self.colours[index]
        return image, self.labels[index]
